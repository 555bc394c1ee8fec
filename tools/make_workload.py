"""Write a batch-serving workload: the one JSON file that Osprey and the transformers peer
(tools/bench_transformers_batch.py) both replay, so the two engines see the same prompts.

Format (JSON object; token ids, no text, so no tokenizer is involved):

    {
      "name": str,                 workload label, e.g. "seed", "b", "c"
      "seed": int,                 seed of the generator that made the prompts and arrivals
      "vocab_size": int,           prompt ids are uniform in [1, vocab_size - 1)
      "max_new_tokens": int,       tokens to generate for every request (no early stop at EOS)
      "arrival": "all-at-once" | {"rate_per_s": float},
      "requests": [
        {"id": int, "prompt": [int, ...], "arrival_s": float}, ...
      ]
    }

`id` runs 0..N-1 in file order. `arrival_s` is the time after the start of the run at which the
request is submitted: 0 for every request when arrival is "all-at-once"; for {"rate_per_s": R} a
Poisson process of rate R (exponential gaps of mean 1/R, cumulative, shifted so the first request
arrives at 0), non-decreasing in file order. Prompt lengths are uniform integers in [MIN, MAX].
The same arguments always write the same bytes (Python's random.Random(seed); lengths first, then
ids, then arrivals).

Presets (the workloads of the batching issues; any flag given explicitly overrides the preset):
    seed  500 prompts of 60-200 tokens, 512 new tokens each, all at once
    b     64 prompts of 100-300 tokens, 256 new tokens each, all at once
    c     "1,000 in / 1,000 out at high concurrency": N prompts of 1,000 tokens, 1,000 new each
          (N = --prompts, default 256), all at once

    python3 tools/make_workload.py --preset seed --out /tmp/seed.json
    python3 tools/make_workload.py --preset c --prompts 64 --out /tmp/c-64.json
    python3 tools/make_workload.py --name poisson --prompts 200 --prompt-len 60-200 --new-tokens 512 \\
        --vocab 201088 --seed 7 --rate 4 --out /tmp/poisson.json
"""
import argparse
import json
import random
import sys

GPT_OSS_VOCAB = 201088

PRESETS = {
    "seed": {"prompts": 500, "prompt_len": (60, 200), "new_tokens": 512},
    "b": {"prompts": 64, "prompt_len": (100, 300), "new_tokens": 256},
    "c": {"prompts": 256, "prompt_len": (1000, 1000), "new_tokens": 1000},
}


def length_range(text):
    """'MIN-MAX' or 'N' -> (MIN, MAX), both positive, MIN <= MAX."""
    parts = text.split("-")
    try:
        lo, hi = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None or lo <= 0 or hi < lo:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX (1 <= MIN <= MAX) or N, got {text!r}")
    return lo, hi


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--preset", choices=sorted(PRESETS), help="one of the issues' workloads (flags override it)")
    p.add_argument("--name", help="workload name (default: the preset's name)")
    p.add_argument("--prompts", type=positive_int, help="number of requests")
    p.add_argument("--prompt-len", type=length_range, help="prompt length MIN-MAX (uniform) or N")
    p.add_argument("--new-tokens", type=positive_int, help="tokens generated per request")
    p.add_argument("--vocab", type=positive_int, default=GPT_OSS_VOCAB, help=f"vocabulary size (default {GPT_OSS_VOCAB}, gpt-oss)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument("--rate", type=positive_float, help="Poisson arrivals at this many requests per second (default: all at once)")
    p.add_argument("--out", required=True, help="output JSON file ('-' for standard output)")
    args = p.parse_args(argv)
    preset = PRESETS.get(args.preset, {})
    args.name = args.name or args.preset
    args.prompts = args.prompts or preset.get("prompts")
    args.prompt_len = args.prompt_len or preset.get("prompt_len")
    args.new_tokens = args.new_tokens or preset.get("new_tokens")
    missing = [flag for flag, v in (("--name", args.name), ("--prompts", args.prompts),
                                    ("--prompt-len", args.prompt_len), ("--new-tokens", args.new_tokens)) if v is None]
    if missing:
        p.error(f"without --preset, {', '.join(missing)} must be given")
    if args.vocab < 3:
        p.error("--vocab must be at least 3 (ids are drawn from [1, vocab - 1))")
    return args


def make(name, prompts, prompt_len, new_tokens, vocab, seed=0, rate=None):
    """The workload object (see the module docstring)."""
    rng = random.Random(seed)
    lo, hi = prompt_len
    lengths = [rng.randint(lo, hi) for _ in range(prompts)]
    ids = [[rng.randrange(1, vocab - 1) for _ in range(n)] for n in lengths]
    if rate is None:
        arrivals = [0.0] * prompts
    else:
        t, arrivals = 0.0, []
        for _ in range(prompts):
            arrivals.append(t)
            t += rng.expovariate(rate)
    return {
        "name": name, "seed": seed, "vocab_size": vocab, "max_new_tokens": new_tokens,
        "arrival": "all-at-once" if rate is None else {"rate_per_s": rate},
        "requests": [{"id": i, "prompt": p, "arrival_s": round(a, 6)} for i, (p, a) in enumerate(zip(ids, arrivals))],
    }


def dumps(workload):
    """JSON text with one request per line (valid JSON; diffable; same bytes for the same workload)."""
    head = {k: v for k, v in workload.items() if k != "requests"}
    lines = ["{"] + [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()] + ['  "requests": [']
    reqs = [json.dumps(r, separators=(",", ":")) for r in workload["requests"]]
    lines += [f"    {r}," for r in reqs[:-1]] + [f"    {r}" for r in reqs[-1:]]
    return "\n".join(lines + ["  ]", "}"]) + "\n"


def main(argv):
    args = parse_args(argv)
    workload = make(args.name, args.prompts, args.prompt_len, args.new_tokens, args.vocab, args.seed, args.rate)
    text = dumps(workload)
    if args.out == "-":
        sys.stdout.write(text)
        return
    with open(args.out, "w") as f:
        f.write(text)
    n_prompt = sum(len(r["prompt"]) for r in workload["requests"])
    print(f"{args.out}: {workload['name']}, {args.prompts} requests, {n_prompt} prompt tokens, "
          f"{args.new_tokens} new each, arrival {json.dumps(workload['arrival'])}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
