"""The continuous-batching peer: Hugging Face transformers serving a workload of tools/make_workload.py.

Run on the GPU machine (transformers 5.17 there). Loads the model as tools/bench_transformers.py does
(MXFP4 experts dequantized to bf16 with Mxfp4Config(dequantize=True), so this column is bf16), then
replays the workload through transformers' continuous batching (ContinuousBatchingManager, the engine
under model.generate_batch): requests are submitted at their arrival_s (all at once, or at Poisson
arrival times), optionally capped at --max-concurrency requests in flight; greedy (do_sample=False);
EOS disabled (eos_token_id=-1, for the generation config and for every request), so every request
generates exactly max_new_tokens (checked: results.short_requests counts the ones that did not).

    python3 tools/bench_transformers_batch.py MODEL_DIR WORKLOAD.json --json OUT.json
        [--num-blocks 2048] [--max-batch-tokens 2048] [--block-size N] [--max-concurrency C]
        [--time-limit S] [--warmup-requests 4] [--cb KEY=VALUE ...] [--device cuda|cuda:N|cpu]

--num-blocks / --max-batch-tokens are passed explicitly (transformers' own sizing ran out of memory
on the H200: shared/device/NOTES.md); 2048 / 2048 are the settings of the run measured there.
--block-size defaults to transformers' own default (256 tokens in 5.17; the value used is reported).
--cb sets any other ContinuousBatchingConfig field (value parsed as JSON, else taken as a string),
e.g. --cb use_cuda_graph=false --cb max_requests_per_batch=256.
--time-limit S stops the run S seconds after the first submission (a hard stop: unfinished requests
are cancelled) and reports what was done by then (results.time_limited = true; the tokens of
unfinished requests count in output_tokens). Before the timed run, --warmup-requests short requests
(16 new tokens, prompts unlike the workload's) go through the same manager, untimed.

Timing. Every request's submission time is taken on the host when it is handed to the manager; its
first token and end come from the manager's own per-request records (record_timestamps=True: a
time.perf_counter() stamp per generated token, and lifespan[1] when it finished), on the same clock.
    ttft_s     first generated token - submission (completed requests)
    latency_s  end - submission (completed requests)
    wall_s     from the first submission to the last completion (or to the stop, when time-limited)

Output JSON (the schema Osprey's batch benchmark writes too; keys beyond these are informative):
{
  "engine": "transformers",                          lower-case engine name ("osprey" for Osprey)
  "versions": {"transformers", "torch", "cuda", "driver", "python"},   strings (null where none)
  "device": {"name": str, "kind": "cuda"|"cpu", "memory_gib": float|null},
  "model": {"path", "model_type", "layers", "hidden", "intermediate", "heads", "kv_heads", "head_dim",
            "experts", "top_k", "vocab", "sliding_window", "quantization" ("bf16"|"mxfp4"), "weight_bytes"},
  "workload": {"name": str, "file": str, "requests": int, "prompt_tokens": int (sum over requests),
               "max_new_tokens": int, "arrival": "all-at-once" | {"rate_per_s": float},
               "concurrency": int|null (requests in flight at most: --max-concurrency, else the number
               of requests for an all-at-once workload, else null)},
  "settings": {engine settings: for this peer num_blocks, max_batch_tokens, block_size (as resolved
               by transformers), max_requests_per_batch, attention, cuda graphs, dtype, ...},
  "results": {
    "wall_s": float, "output_tokens": int, "output_tok_s": float (output_tokens / wall_s),
    "total_tok_s": float ((prompt tokens of requests that produced a token + output_tokens) / wall_s),
    "ttft_s": {"p50", "p90", "p99", "mean", "max", "n"} | null,   seconds, completed requests
    "latency_s": {same keys} | null,
    "completed": int (requests that finished), "requests": int, "expected_output_tokens": int,
    "short_requests": int (completed with fewer than max_new_tokens), "time_limited": bool,
    "peak_gib": float|null (device memory in use, driver total - free, peak of samples taken after
                load and about every 0.25 s during the run; null on the CPU),
    "torch_max_allocated_gib": float|null, "after_load_gib": float|null
    (informative, this peer: submitted, failed, first_failure, error, generated_min_max, load_s,
     warmup_s, cb_allocated_gib (what the manager allocated: KV cache and buffers),
     max_submission_lag_s (host submission - arrival_s; with --max-concurrency it includes the wait
     for a free slot, and TTFT / latency are counted from the submission, as a client would see them))
  },
  "date": "YYYY-MM-DDTHH:MM:SSZ", "command": str
}
Percentiles interpolate linearly between order statistics (numpy's default).
"""
import argparse
import collections
import datetime
import json
import math
import os
import platform
import sys
import time

import torch
import transformers
from transformers import ContinuousBatchingConfig, GenerationConfig
from transformers.generation.continuous_batching import RequestStatus

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_transformers import Device, driver_version, load, model_summary  # noqa: E402

WARMUP_NEW_TOKENS = 16
NO_EOS = -1  # transformers' continuous batching drops negative EOS ids: the request never stops early


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text):
    return 0 if text.strip() == "0" else positive_int(text)


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def cb_option(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("model", help="model folder (config.json + safetensors)")
    p.add_argument("workload", help="workload JSON written by tools/make_workload.py")
    p.add_argument("--json", required=True, help="write the results here (and print them)")
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--num-blocks", type=positive_int, default=2048, help="KV cache blocks (default 2048)")
    p.add_argument("--max-batch-tokens", type=positive_int, default=2048, help="tokens per forward at most (default 2048)")
    p.add_argument("--block-size", type=positive_int, help="tokens per KV block (default: transformers' default)")
    p.add_argument("--max-concurrency", type=positive_int, help="requests in flight at most (client side; default: no cap)")
    p.add_argument("--time-limit", type=positive_float, help="stop this many seconds after the first submission")
    p.add_argument("--warmup-requests", type=non_negative_int, default=4, help="untimed short requests first (default 4)")
    p.add_argument("--cb", type=cb_option, action="append", default=[], metavar="KEY=VALUE",
                   help="another ContinuousBatchingConfig field (repeatable)")
    return p.parse_args(argv)


# MARK: - Workload

def load_workload(path):
    with open(path) as f:
        w = json.load(f)
    for key in ("name", "vocab_size", "max_new_tokens", "arrival", "requests"):
        if key not in w:
            sys.exit(f"error: {path} has no {key!r}: not a workload of tools/make_workload.py")
    arrival = w["arrival"]
    if arrival != "all-at-once" and not (isinstance(arrival, dict) and arrival.get("rate_per_s", 0) > 0):
        sys.exit(f"error: {path}: arrival must be \"all-at-once\" or {{\"rate_per_s\": R > 0}}, got {arrival!r}")
    if not isinstance(w["max_new_tokens"], int) or w["max_new_tokens"] <= 0:
        sys.exit(f"error: {path}: max_new_tokens must be a positive integer")
    if not w["requests"]:
        sys.exit(f"error: {path} has no requests")
    ids = set()
    for r in w["requests"]:
        if not r.get("prompt") or not all(isinstance(t, int) and t >= 0 for t in r["prompt"]):
            sys.exit(f"error: {path}: request {r.get('id')} has an empty or invalid prompt")
        if r["id"] in ids:
            sys.exit(f"error: {path}: request id {r['id']} appears twice")
        ids.add(r["id"])
        r.setdefault("arrival_s", 0.0)
    return w


def concurrency(workload, max_concurrency):
    if max_concurrency:
        return min(max_concurrency, len(workload["requests"]))
    return len(workload["requests"]) if workload["arrival"] == "all-at-once" else None


# MARK: - Measurement

def summary(values):
    """p50 / p90 / p99 (linear interpolation), mean, max and count of `values` in seconds; None if empty."""
    v = sorted(values)
    if not v:
        return None

    def q(p):
        k = (len(v) - 1) * p
        lo = math.floor(k)
        hi = min(lo + 1, len(v) - 1)
        return v[lo] + (v[hi] - v[lo]) * (k - lo)
    r = lambda x: round(x, 4)
    return {"p50": r(q(0.5)), "p90": r(q(0.9)), "p99": r(q(0.99)), "mean": r(sum(v) / len(v)), "max": r(v[-1]), "n": len(v)}


class MemoryPeak:
    """Peak of the driver's used bytes (total - free) over the samples taken; None on the CPU."""

    def __init__(self, device, every_s=0.25):
        self.device, self.every_s, self.peak, self.last = device, every_s, None, 0.0

    def sample(self, force=False):
        now = time.perf_counter()
        if not self.device.cuda or (not force and now - self.last < self.every_s):
            return
        self.last = now
        used = self.device.used_bytes()
        self.peak = used if self.peak is None else max(self.peak, used)


def make_manager(model, workload, args):
    gen = GenerationConfig(max_new_tokens=workload["max_new_tokens"], do_sample=False, eos_token_id=NO_EOS)
    fields = {"num_blocks": args.num_blocks, "max_batch_tokens": args.max_batch_tokens}
    if args.block_size:
        fields["block_size"] = args.block_size
    fields.update(dict(args.cb))
    try:
        cb = ContinuousBatchingConfig(**fields)
    except TypeError as e:
        sys.exit(f"error: ContinuousBatchingConfig rejected {fields}: {e}")
    kwargs = {"generation_config": gen, "continuous_batching_config": cb}
    try:  # the hints generate_batch passes (sizes the block table and the requests per batch)
        from transformers.generation.continuous_batching.utils import WorkloadHints
        kwargs["workload_hints"] = WorkloadHints(
            max_prompt_length=max(len(r["prompt"]) for r in workload["requests"]),
            max_generated_length=workload["max_new_tokens"], num_requests=len(workload["requests"]))
    except ImportError:
        pass
    manager = model.init_continuous_batching(**kwargs)
    if hasattr(manager, "warmup"):
        manager.warmup()  # CUDA graph capture, when transformers decides to use graphs
    manager.start()
    return manager


def resolved_settings(manager, model, args):
    cfg = getattr(manager, "continuous_batching_config", None)
    keys = ("num_blocks", "max_batch_tokens", "block_size", "max_requests_per_batch", "max_blocks_per_request",
            "use_cuda_graph", "use_async_batching", "allow_block_sharing", "scheduler_type", "max_memory_percent",
            "default_compile_level")
    out = {}
    for k in keys:
        v = getattr(cfg, k, None)
        out[k] = list(v) if isinstance(v, tuple) else v
    out["attention"] = getattr(model.config, "_attn_implementation", None)
    return out


def wait_finished(manager, ids, deadline_s):
    """Wait until the requests `ids` have finished (warm-up); fails loudly if the manager dies."""
    left, end = set(ids), time.perf_counter() + deadline_s
    while left:
        if time.perf_counter() > end:
            sys.exit(f"error: warm-up requests {sorted(left)} did not finish in {deadline_s:.0f} s")
        r = manager.get_result(timeout=0.5)
        if r is None:
            if not manager.is_running():
                sys.exit("error: the continuous batching thread stopped during the warm-up")
            continue
        if r.is_finished():
            if r.error:
                sys.exit(f"error: warm-up request {r.request_id} failed: {r.error}")
            left.discard(r.request_id)


def warm_up(manager, workload, count, vocab):
    if count == 0:
        return 0.0
    length = min(64, max(len(r["prompt"]) for r in workload["requests"]))
    t = time.perf_counter()
    ids = []
    for b in range(count):  # a fixed pattern, unlike the workload's random prompts (no prefix-cache hits)
        prompt = [(i * 7919 + 13 + 101 * b) % (vocab - 1) + 1 for i in range(length)]
        ids.append(manager.add_request(prompt, request_id=f"warmup_{b}", max_new_tokens=WARMUP_NEW_TOKENS,
                                       record_timestamps=True, eos_token_id=NO_EOS))
    wait_finished(manager, ids, 600)
    return time.perf_counter() - t


def replay(manager, workload, args, memory):
    """Submit every request at its arrival time (and under the concurrency cap), collect the outputs.
    Returns (t0, t_stop, submitted {rid: (request, host time)}, outputs {rid: GenerationOutput}, time_limited, error)."""
    new = workload["max_new_tokens"]
    pending = collections.deque(sorted(workload["requests"], key=lambda r: (r["arrival_s"], r["id"])))
    cap = args.max_concurrency
    submitted, outputs = {}, {}
    in_flight, time_limited, error = 0, False, None
    next_report = 10.0
    t0 = time.perf_counter()
    while pending or in_flight:
        now = time.perf_counter()
        if args.time_limit and now - t0 >= args.time_limit:
            time_limited = True
            break
        while pending and t0 + pending[0]["arrival_s"] <= now and (cap is None or in_flight < cap):
            r = pending.popleft()
            rid = f"w{r['id']}"
            submitted[rid] = (r, time.perf_counter())
            if manager.add_request(r["prompt"], request_id=rid, max_new_tokens=new,
                                   record_timestamps=True, eos_token_id=NO_EOS) is None:
                error = f"the manager refused request {rid}"
                break
            in_flight += 1
        if error:
            break
        wait = 0.25
        if pending and (cap is None or in_flight < cap):
            wait = min(wait, t0 + pending[0]["arrival_s"] - time.perf_counter())
        result = manager.get_result(timeout=max(wait, 0.001))
        memory.sample()
        if now - t0 >= next_report:
            next_report += 10.0
            print(f"  {now - t0:6.1f} s: {len(outputs)}/{len(workload['requests'])} requests done, "
                  f"{len(submitted)} submitted", file=sys.stderr, flush=True)
        if result is None:
            if not manager.is_running():
                error = "the continuous batching thread stopped"
                break
            continue
        if result.is_finished() and result.request_id in submitted and result.request_id not in outputs:
            outputs[result.request_id] = result
            in_flight -= 1
    t_stop = time.perf_counter()
    memory.sample(force=True)
    return t0, t_stop, submitted, outputs, time_limited, error


def drain(manager, outputs, submitted):
    """After a hard stop: the outputs of the cancelled requests (their partial tokens)."""
    while True:
        r = manager.get_result(timeout=0.5)
        if r is None:
            return
        if r.is_finished() and r.request_id in submitted and r.request_id not in outputs:
            outputs[r.request_id] = r


def measure(workload, t0, t_stop, submitted, outputs, time_limited):
    new = workload["max_new_tokens"]
    ok = {rid: o for rid, o in outputs.items() if o.error is None and o.status == RequestStatus.FINISHED}
    ends = [o.lifespan[1] for o in ok.values() if o.lifespan and o.lifespan[1] > 0]
    t_end = t_stop if time_limited or len(ok) < len(workload["requests"]) else max(ends, default=t_stop)
    wall = max(t_end - t0, 1e-9)
    out_tokens = sum(len(o.generated_tokens) for o in outputs.values())
    prompt_done = sum(len(submitted[rid][0]["prompt"]) for rid, o in outputs.items() if o.generated_tokens)
    ttft, latency = [], []
    for rid, o in ok.items():
        sent = submitted[rid][1]
        if o.timestamps:
            ttft.append(o.timestamps[0] - sent)
        if o.lifespan and o.lifespan[1] > 0:
            latency.append(o.lifespan[1] - sent)
    lags = [sent - (t0 + r["arrival_s"]) for r, sent in submitted.values()]
    failed = {rid: o.error for rid, o in outputs.items() if rid not in ok}
    return {
        "wall_s": round(wall, 3), "output_tokens": out_tokens, "output_tok_s": round(out_tokens / wall, 1),
        "total_tok_s": round((prompt_done + out_tokens) / wall, 1),
        "ttft_s": summary(ttft), "latency_s": summary(latency),
        "completed": len(ok), "requests": len(workload["requests"]), "submitted": len(submitted),
        "expected_output_tokens": len(workload["requests"]) * new,
        "short_requests": sum(1 for o in ok.values() if len(o.generated_tokens) != new),
        "generated_min_max": [min((len(o.generated_tokens) for o in ok.values()), default=None),
                              max((len(o.generated_tokens) for o in ok.values()), default=None)],
        "failed": len(failed), "first_failure": next(iter(failed.values()), None),
        "time_limited": time_limited, "max_submission_lag_s": round(max(lags, default=0.0), 4),
    }


def main(argv):
    args = parse_args(argv)
    workload = load_workload(args.workload)
    device = Device(args.device)
    if device.cuda and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch sees no GPU (use --device cpu)")
    if device.cuda and torch.device(device.name).index is not None:
        torch.cuda.set_device(device.name)  # cuda:N: so that the memory readings below are of that device
    gib = lambda b: None if b is None else round(b / 2**30, 2)

    model, load_s = load(args.model, device)
    vocab = model.config.vocab_size
    top = max(t for r in workload["requests"] for t in r["prompt"])
    if top >= vocab:
        sys.exit(f"error: the workload has token id {top}, the model's vocabulary is {vocab}: "
                 f"make it with --vocab {vocab}")
    if workload["vocab_size"] != vocab:
        print(f"note: workload made for vocab {workload['vocab_size']}, the model has {vocab}", file=sys.stderr)
    after_load = device.used_bytes()
    memory = MemoryPeak(device)
    memory.sample(force=True)
    allocated_before = torch.cuda.memory_allocated() if device.cuda else None

    manager = make_manager(model, workload, args)
    try:
        settings = resolved_settings(manager, model, args)
        warmup_s = warm_up(manager, workload, args.warmup_requests, vocab)
        if device.cuda:
            torch.cuda.reset_peak_memory_stats()
        memory.sample(force=True)
        print(f"running {workload['name']}: {len(workload['requests'])} requests, {workload['max_new_tokens']} new each, "
              f"settings {settings}", file=sys.stderr, flush=True)
        t0, t_stop, submitted, outputs, time_limited, error = replay(manager, workload, args, memory)
        cb_allocated = torch.cuda.memory_allocated() - allocated_before if device.cuda else None
        peak_allocated = torch.cuda.max_memory_allocated() if device.cuda else None
    except BaseException:
        manager.stop(block=True, timeout=120, hard_stop=True)
        raise
    manager.stop(block=True, timeout=120, hard_stop=bool(time_limited or error))
    if time_limited or error:
        drain(manager, outputs, submitted)
    if error:
        print(f"error during the run: {error}", file=sys.stderr)

    results = measure(workload, t0, t_stop, submitted, outputs, time_limited)
    results.update({"peak_gib": gib(memory.peak), "torch_max_allocated_gib": gib(peak_allocated),
                    "after_load_gib": gib(after_load), "cb_allocated_gib": gib(cb_allocated),
                    "load_s": round(load_s, 2), "warmup_s": round(warmup_s, 2), "error": error})
    weight_bytes = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    summary_model = model_summary(model, args.model, weight_bytes)
    settings.update({"dtype": "bfloat16", "dequantize_mxfp4": True, "do_sample": False, "eos_token_id": NO_EOS,
                     "max_concurrency": args.max_concurrency, "time_limit_s": args.time_limit,
                     "warmup_requests": args.warmup_requests, "requested": {
                         "num_blocks": args.num_blocks, "max_batch_tokens": args.max_batch_tokens,
                         "block_size": args.block_size, "cb": dict(args.cb)},
                     "api": "ContinuousBatchingManager (model.init_continuous_batching): add_request + get_result, "
                            "record_timestamps=True"})
    props = torch.cuda.get_device_properties(device.name) if device.cuda else None
    report = {
        "engine": "transformers",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "cuda": torch.version.cuda if device.cuda else None,
                     "driver": driver_version() if device.cuda else None, "python": platform.python_version()},
        "device": {"name": device.describe(), "kind": "cuda" if device.cuda else "cpu",
                   "memory_gib": gib(props.total_memory) if props else None},
        "model": {"path": args.model, **summary_model},
        "workload": {"name": workload["name"], "file": args.workload, "requests": len(workload["requests"]),
                     "prompt_tokens": sum(len(r["prompt"]) for r in workload["requests"]),
                     "max_new_tokens": workload["max_new_tokens"], "arrival": workload["arrival"],
                     "concurrency": concurrency(workload, args.max_concurrency), "seed": workload.get("seed")},
        "settings": settings,
        "results": results,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python3 " + " ".join(sys.argv),
    }
    text = json.dumps(report, indent=2, sort_keys=True)
    with open(args.json, "w") as f:
        f.write(text + "\n")
    print(text)
    if error:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
