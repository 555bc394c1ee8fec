#!/usr/bin/env python3
"""The server benchmark's levels as one markdown table and one PNG against concurrency.

    python3 tools/render_server_bench.py LEVEL.json [LEVEL.json ...] --out DIR/NAME
        writes NAME.md (a table: output tok/s, requests/s, TTFT p50/p99, inter-token latency p50/p99,
        errors, and the server's own view) and NAME.png (throughput, TTFT and ITL against
        concurrency; skipped with a note in NAME.md when matplotlib is missing).

LEVEL.json is what `tools/server_bench.py run --json-out` writes, one file per concurrency level;
device, date and the commands come from its --meta fields (scripts/server-bench sets them).
Standard library only, but for the optional plot.
"""
import argparse
import json
import os
import sys


def fmt(v, digits=1):
    if v is None:
        return "—"
    if isinstance(v, float) and v.is_integer() and digits == 0:
        return f"{int(v):,}"
    return f"{v:,.{digits}f}" if isinstance(v, (int, float)) else str(v)


def pair(d, a="p50", b="p99"):
    d = d or {}
    return f"{fmt(d.get(a))} / {fmt(d.get(b))}"


def plot(levels, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed here: no plot"
    c = [r["concurrency"] for r in levels]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].plot(c, [r["output_tok_s"] for r in levels], "o-", label="output tok/s")
    axes[0].set_ylim(bottom=0)
    axes[0].set_title("throughput")
    axes[0].set_ylabel("output tokens / s")
    for ax, key, title in ((axes[1], "ttft_ms", "time to first token"), (axes[2], "itl_ms", "inter-token latency")):
        for q, style in (("p50", "o-"), ("p99", "s--")):
            ax.plot(c, [r[key].get(q) for r in levels], style, label=f"client {q}")
        server = "ttft" if key == "ttft_ms" else "itl"
        if any((r.get("server") or {}).get(server, {}).get("p50_ms") is not None for r in levels):
            ax.plot(c, [(r.get("server") or {}).get(server, {}).get("p50_ms") for r in levels], "^:", label="server p50")
        ax.set_title(title)
        ax.set_ylabel("ms")
        ax.set_yscale("log")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(c)
        ax.set_xticklabels([str(x) for x in c])
        ax.set_xlabel("concurrent streaming clients")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    first = levels[0]
    fig.suptitle(f"osprey serve, {first.get('device', '?')}: prompts of {first['prompt_tokens']} tokens, "
                 f"{first['max_tokens']} new, {fmt(first['seconds'], 0)} s per level")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return None


def render(levels, out):
    levels = sorted(levels, key=lambda r: r["concurrency"])
    first = levels[0]
    name = os.path.basename(out)
    lines = [f"# osprey serve under streaming load ({name})", ""]
    for key, label in (("device", "device"), ("date", "date"), ("command", "command"), ("serve_command", "server"),
                       ("model_dir", "model")):
        if first.get(key):
            value = first[key]
            lines.append(f"- {label}: `{value}`" if "command" in key else f"- {label}: {value}")
    lines.append(f"- load: per level, N clients each streaming one /v1/completions request after another "
                 f"(prompts of {first['prompt_tokens']} random token ids, max_tokens {first['max_tokens']}, "
                 f"temperature 1, no hang-ups) for {fmt(first['seconds'], 0)} s; requests in flight then finish.")
    lines += ["", "| concurrency | output tok/s | requests/s | TTFT p50 / p99 (ms) | ITL p50 / p99 (ms) | completed | errors "
              "| server TTFT p50 / p99 (ms) | server ITL p50 / p99 (ms) | batch mean / max | preemptions |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in levels:
        s = r.get("server") or {}
        lines.append(
            f"| {r['concurrency']} | {fmt(r['output_tok_s'])} | {fmt(r['requests_s'], 2)} | {pair(r['ttft_ms'])} "
            f"| {pair(r['itl_ms'])} | {r['requests_completed']} | {r['errors']} "
            f"| {pair(s.get('ttft'), 'p50_ms', 'p99_ms')} | {pair(s.get('itl'), 'p50_ms', 'p99_ms')} "
            f"| {fmt(s.get('batch_size_mean'))} / {fmt(s.get('batch_size_max'), 0)} | {fmt(s.get('preemptions'), 0)} |")
    lines += ["", "Client side: TTFT from sending a request to its first token's event; ITL every gap between "
              "consecutive token events (the model view's tokenizer gives each token visible text, so one event "
              "is one token: `token_events_per_token` in the JSON checks it); output tok/s counts tokens that "
              "arrived inside the window, requests/s requests completed inside it. Server side: the "
              "/metrics histograms over the same level (quantiles interpolated inside buckets), and the batch "
              "size sampled once a second."]
    problems = [f"- concurrency {r['concurrency']}: {r['errors']} errors {r['errors_by_kind']}" for r in levels if r["errors"]]
    problems += [f"- concurrency {r['concurrency']}: {r['token_events_per_token']} token events per token"
                 for r in levels if r.get("token_events_per_token") not in (None, 1.0)]
    if problems:
        lines += ["", "Problems:", ""] + problems
    note = plot(levels, out + ".png")
    lines += ["", f"_{note}_" if note else f"![{name}.png]({name}.png)", ""]
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines))
    return out + ".md"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("levels", nargs="+")
    ap.add_argument("--out", required=True, help="DIR/NAME: writes NAME.md and NAME.png")
    args = ap.parse_args()
    levels = []
    for path in args.levels:
        with open(path) as f:
            r = json.load(f)
        for key in ("concurrency", "output_tok_s", "ttft_ms", "itl_ms", "errors"):
            if key not in r:
                sys.exit(f"error: {path} has no {key!r}: not a tools/server_bench.py level")
        levels.append(r)
    print(render(levels, args.out))


if __name__ == "__main__":
    main()
