"""Osprey beside the transformers peer under continuous batching: turns result JSON files of the
batch schema (tools/bench_transformers_batch.py's docstring; Osprey's batch benchmark writes the same)
into a markdown table and, where a workload was run at several concurrency levels, PNG plots.

    python3 tools/render_batch.py RESULT.json [RESULT.json ...] --out benchmarks/results/NAME
        writes NAME.md, and for every workload run at two or more concurrency levels
        NAME-WORKLOAD-throughput.png (output tok/s against concurrency) and
        NAME-WORKLOAD-ttft.png (time to first token p50 / p99 against concurrency).

Files are matched by (workload name, concurrency) and told apart by their "engine" field ("osprey",
"transformers", or any other peer); give each engine's file for each workload / concurrency level,
in any order. The concurrency of a run is workload.concurrency (requests in flight at most: the
client's cap, or the number of requests when all arrive at once; null for an arrival rate without cap).
The ratio column is each engine's output tok/s over transformers' on the same workload and
concurrency. Plots need matplotlib; without it only the markdown is written.
"""
import argparse
import json
import os
import re
import sys

BASELINE = "transformers"
ENGINE_ORDER = {"osprey": 0, "transformers": 1}
STYLES = ["o-", "s-", "^-", "D-", "v-"]


def load(path):
    with open(path) as f:
        report = json.load(f)
    for key in ("engine", "workload", "results"):
        if key not in report:
            sys.exit(f"error: {path} has no {key!r}: not a batch result (tools/bench_transformers_batch.py)")
    for key in ("name", "requests", "max_new_tokens"):
        if key not in report["workload"]:
            sys.exit(f"error: {path}: workload has no {key!r}")
    for key in ("wall_s", "output_tokens", "output_tok_s"):
        if key not in report["results"]:
            sys.exit(f"error: {path}: results have no {key!r}")
    report["_path"] = path
    report["_engine"] = str(report["engine"]).split()[0].lower()
    return report


def concurrency_of(report):
    w = report["workload"]
    if "concurrency" in w:
        return w["concurrency"]
    return w["requests"] if w.get("arrival", "all-at-once") == "all-at-once" else None


def group(reports):
    """{(workload name, concurrency): {engine: report}}; two files for one cell is an error."""
    cells = {}
    for r in reports:
        key = (r["workload"]["name"], concurrency_of(r))
        cell = cells.setdefault(key, {})
        if r["_engine"] in cell:
            sys.exit(f"error: two {r['_engine']} results for workload {key[0]!r} at concurrency {key[1]}: "
                     f"{cell[r['_engine']]['_path']} and {r['_path']}")
        cell[r["_engine"]] = r
    return cells


def engines_of(reports):
    return sorted({r["_engine"] for r in reports}, key=lambda e: (ENGINE_ORDER.get(e, 2), e))


def cell_key(key):
    name, conc = key
    return (name, conc is None, conc or 0)


# MARK: - Table

def fmt(x, digits=1):
    return "—" if x is None else f"{x:,.{digits}f}"


def pair(stats, digits=2):
    if not stats:
        return "—"
    return f"{fmt(stats.get('p50'), digits)} / {fmt(stats.get('p99'), digits)}"


def arrival_text(arrival):
    if arrival in (None, "all-at-once"):
        return "all at once"
    if isinstance(arrival, dict) and "rate_per_s" in arrival:
        return f"Poisson {arrival['rate_per_s']:g}/s"
    return json.dumps(arrival)


def workload_text(w, counts=None):
    """One line about a workload; `counts` lists the request counts of a sweep (prompt total then varies)."""
    n = w["requests"]
    mean_in = w.get("prompt_tokens", 0) / max(n, 1)
    many = counts and len(counts) > 1
    head = " / ".join(str(c) for c in counts) if many else str(n)
    total = "" if many else f" ({w.get('prompt_tokens', 0):,} in all)"
    return (f"{head} requests, prompts of {mean_in:,.0f} tokens on average{total}, "
            f"{w['max_new_tokens']:,} new tokens each, {arrival_text(w.get('arrival'))}")


def settings_text(report):
    s = report.get("settings") or {}
    keys = ("num_blocks", "max_batch_tokens", "block_size", "max_requests_per_batch", "attention", "max_concurrency")
    parts = [f"{k} {s[k]}" for k in keys if s.get(k) is not None]
    return ", ".join(parts) or "—"


def device_text(report):
    d = report.get("device")
    return d.get("name", "?") if isinstance(d, dict) else str(d)


def notes(report):
    res, w = report["results"], report["workload"]
    out = []
    if res.get("time_limited"):
        out.append(f"time-limited at {fmt(res.get('wall_s'))} s")
    done = res.get("completed")
    if done is not None and done < w["requests"]:
        out.append(f"{done}/{w['requests']} done")
    if res.get("short_requests"):
        out.append(f"{res['short_requests']} stopped short")
    if res.get("error"):
        out.append("error: " + str(res["error"]))
    return "; ".join(out)


def render(reports, name):
    cells = group(reports)
    engines = engines_of(reports)
    lines = [f"# Continuous batching: {' vs '.join(engines)} ({name})", ""]
    devices = {device_text(r) for r in reports}
    if len(devices) > 1:
        lines += [f"**Devices differ: {'; '.join(sorted(devices))}.**", ""]
    for e in engines:
        first = next(r for r in reports if r["_engine"] == e)
        versions = first.get("versions") or {}
        vtext = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if v)
        m = first.get("model") or {}
        mtext = (f"{m.get('model_type', '?')} {m.get('layers', '?')} layers, {m.get('quantization', '?')}"
                 + (f" {m['weight_bytes'] / 1e9:.2f} GB" if m.get("weight_bytes") else ""))
        lines.append(f"- {e}: {vtext or 'versions not given'}; {device_text(first)}; model {mtext}")
        for r in sorted((r for r in reports if r["_engine"] == e), key=lambda r: cell_key((r["workload"]["name"], concurrency_of(r)))):
            lines.append(f"  - {r['workload']['name']} @ {concurrency_of(r)}: `{r.get('command', os.path.basename(r['_path']))}` "
                         f"({r.get('date', '')}); {settings_text(r)}")
    lines.append("- workloads:")
    for wname in sorted({key[0] for key in cells}):
        runs = [r for key in sorted(cells, key=cell_key) if key[0] == wname for r in cells[key].values()]
        counts = sorted({r["workload"]["requests"] for r in runs})
        lines.append(f"  - {wname}: {workload_text(runs[0]['workload'], counts)}")
    for key in sorted(cells, key=cell_key):
        w = next(iter(cells[key].values()))["workload"]
        shapes = {(r["workload"]["requests"], r["workload"].get("prompt_tokens"), r["workload"]["max_new_tokens"])
                  for r in cells[key].values()}
        if len(shapes) > 1:
            lines.append(f"  - **{w['name']} @ {key[1]}: the engines ran different workloads "
                         f"(requests, prompt tokens, new tokens): {sorted(shapes)}**")
    ratio_head = "Osprey/transformers" if engines == ["osprey", BASELINE] else f"÷ {BASELINE} (output tok/s)"
    lines += [
        "",
        f"| workload | concurrency | engine | output tok/s | total tok/s | {ratio_head} | TTFT p50 / p99 (s) | "
        "latency p50 / p99 (s) | peak GiB | notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(cells, key=cell_key):
        cell = cells[key]
        base = cell.get(BASELINE, {}).get("results", {}).get("output_tok_s")
        for e in engines:
            r = cell.get(e)
            if r is None:
                continue
            res = r["results"]
            out = res.get("output_tok_s")
            ratio = "—" if e == BASELINE or out is None or not base else f"{out / base:.2f}x"
            lines.append(f"| {key[0]} | {'—' if key[1] is None else key[1]} | {e} | {fmt(out)} | {fmt(res.get('total_tok_s'))} | "
                         f"{ratio} | {pair(res.get('ttft_s'))} | {pair(res.get('latency_s'))} | "
                         f"{fmt(res.get('peak_gib'), 2)} | {notes(r)} |")
    lines += ["", "Output tok/s is all generated tokens over the wall time from the first submission to the last "
              "completion; total tok/s adds the prompt tokens. TTFT and latency are per request, from its submission; "
              "peak GiB is the device memory in use (driver total − free) at its highest sample."]
    return lines


# MARK: - Plots

def sweeps(reports):
    """{workload name: {engine: [report, ...] sorted by concurrency}} for workloads at >= 2 concurrency levels."""
    out = {}
    for name in sorted({r["workload"]["name"] for r in reports}):
        runs = [r for r in reports if r["workload"]["name"] == name and concurrency_of(r) is not None]
        if len({concurrency_of(r) for r in runs}) < 2:
            continue
        by_engine = {}
        for r in runs:
            by_engine.setdefault(r["_engine"], []).append(r)
        out[name] = {e: sorted(rs, key=concurrency_of) for e, rs in by_engine.items()}
    return out


def slug(text):
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "workload"


def concurrency_axis(ax, by_engine):
    """Log-2 x axis ticked at the concurrency levels run, labelled as plain numbers."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter
    levels = sorted({concurrency_of(r) for rs in by_engine.values() for r in rs})
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(levels))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("concurrency (requests in flight)")


def plot(reports, out):
    todo = sweeps(reports)
    if not todo:
        return [], None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "(no plots: matplotlib is not importable here)"
    written = []
    device = device_text(reports[0]).split(",")[0]
    for name, by_engine in todo.items():
        engines = sorted(by_engine, key=lambda e: (ENGINE_ORDER.get(e, 2), e))
        path = f"{out}-{slug(name)}-throughput.png"
        fig, ax = plt.subplots(figsize=(6, 4))
        for i, e in enumerate(engines):
            rs = by_engine[e]
            ax.plot([concurrency_of(r) for r in rs], [r["results"]["output_tok_s"] for r in rs],
                    STYLES[i % len(STYLES)], label=e)
        concurrency_axis(ax, by_engine)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("output tok/s")
        ax.set_title(f"{name}: throughput on {device}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)

        series = [(e, [r for r in by_engine[e] if r["results"].get("ttft_s")]) for e in engines]
        if not any(rs for _, rs in series):
            continue
        path = f"{out}-{slug(name)}-ttft.png"
        fig, ax = plt.subplots(figsize=(6, 4))
        for i, (e, rs) in enumerate(series):
            if not rs:
                continue
            xs = [concurrency_of(r) for r in rs]
            style = STYLES[i % len(STYLES)]
            line, = ax.plot(xs, [r["results"]["ttft_s"]["p50"] for r in rs], style, label=f"{e} p50")
            ax.plot(xs, [r["results"]["ttft_s"]["p99"] for r in rs], style[0] + "--", color=line.get_color(),
                    alpha=0.7, label=f"{e} p99")
        concurrency_axis(ax, by_engine)
        ax.set_yscale("log")
        ax.set_ylabel("time to first token (s)")
        ax.set_title(f"{name}: TTFT on {device}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written, None


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("results", nargs="+", help="batch result JSON files (any engines, workloads, concurrency levels)")
    p.add_argument("--out", required=True, help="path without extension: writes OUT.md and OUT-*.png")
    args = p.parse_args(argv)
    out = args.out[:-3] if args.out.endswith(".md") else args.out
    reports = [load(path) for path in args.results]
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    lines = render(reports, os.path.basename(out))
    pngs, why = plot(reports, out)
    lines += [""] + [f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in pngs]
    if why:
        lines.append(why)
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(out + ".md", *pngs)


if __name__ == "__main__":
    main(sys.argv[1:])
