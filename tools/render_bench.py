"""Osprey beside the transformers peer: turns the JSON of `osprey bench` and of
tools/bench_transformers.py --json (one schema, Sources/osprey/BenchReport.swift) into a markdown
table (Osprey, transformers, ratio Osprey/transformers) with the roofline beside each figure, and
PNG plots (decode tok/s against batch size, prefill tok/s against prompt length) when matplotlib
is importable.

The rooflines come from the model config in the JSON and the ceilings measured on the GPU machine
(shared/device/NOTES.md): decode is bound by the bytes a step moves (weights as each engine holds
them: MXFP4 experts at 17/32 byte per weight, bf16 at 2; the experts a batch touches under uniform
routing; the KV cache at bf16) against ~4.3 TB/s (measured device copy; the HBM spec is ~4.8 TB/s);
prefill by its FLOPs per token (2 per weight used, plus attention scores) against 816 TFLOP/s (bf16
GEMM through cuBLASLt measured 780-816). Both are upper bounds, not predictions.

    python3 tools/render_bench.py osprey.json transformers.json --out benchmarks/results/NAME
            [--also "Osprey dequantized=osprey-dequantized.json" ...]
        writes NAME.md, NAME-decode.png, NAME-prefill.png and (with GPU memory figures) NAME-memory.png;
        each --also run gets its own table (ratios to Osprey's main run and to transformers) and plot lines.
"""
import argparse
import json
import os
import sys

HBM_COPY_BYTES_S = 4.3e12    # measured device-to-device copy, read + write (NOTES.md)
HBM_SPEC_BYTES_S = 4.8e12    # H200 HBM3e spec
BF16_GEMM_FLOP_S = 816e12    # cuBLASLt bf16 GEMM 8192^3, best of 780-816 TFLOP/s (NOTES.md)
MXFP4_BYTES_PER_WEIGHT = 17 / 32  # 4-bit values + one 8-bit scale per 32


def load(path):
    with open(path) as f:
        report = json.load(f)
    for key in ("engine", "device", "model", "settings", "results"):
        if key not in report:
            sys.exit(f"error: {path} has no {key!r}: not the osprey bench schema")
    return report


# MARK: - Rooflines

def dims(m):
    h, heads, kv, hd = m["hidden"], m["heads"], m["kv_heads"], m["head_dim"]
    attn = h * heads * hd + 2 * h * kv * hd + heads * hd * h   # q, k, v, o projections
    expert = 3 * h * m["intermediate"]                          # gate_up (2 I x H) + down (H x I)
    return attn, expert, h * m["experts"], m["vocab"] * h        # ..., router, lm_head


def expert_bytes_per_weight(m):
    return MXFP4_BYTES_PER_WEIGHT if m.get("quantization") == "mxfp4" else 2


def decode_bytes_per_step(m, batch, context):
    """Bytes one decode step of `batch` sequences at `context` tokens reads at least."""
    attn, expert, router, head = dims(m)
    E, k, L = m["experts"], m["top_k"], m["layers"]
    touched = E * (1 - (1 - k / E) ** batch)   # expected distinct experts per layer, uniform routing
    window = m.get("sliding_window") or context
    kv_rows = sum(min(context, window) if i % 2 == 0 else context for i in range(L))  # even layers slide
    kv = batch * kv_rows * 2 * m["kv_heads"] * m["head_dim"] * 2
    return L * (2 * (attn + router) + touched * expert * expert_bytes_per_weight(m)) + 2 * head + kv


def prefill_flops_per_token(m, tokens):
    """FLOPs per prompt token: 2 per weight used (lm_head once per prompt) + QK^T and PV over the
    mean context (a sliding layer sees at most its window)."""
    attn, expert, router, head = dims(m)
    L, k = m["layers"], m["top_k"]
    window = m.get("sliding_window") or tokens
    mean_ctx = sum(min(tokens / 2, window) if i % 2 == 0 else tokens / 2 for i in range(L))
    return L * 2 * (attn + router + k * expert) + 2 * head / tokens + 4 * mean_ctx * m["heads"] * m["head_dim"]


# MARK: - Table

def fmt(x, digits=1):
    return "—" if x is None else f"{x:,.{digits}f}"


def ratio(a, b):
    return "—" if a is None or b in (None, 0) else f"{a / b:.2f}x"


def bound(measured, ceiling, note):
    if ceiling is None:
        return "—"
    share = "" if measured is None else f", {100 * measured / ceiling:.1f}%"
    return f"{ceiling:,.0f} tok/s ({note}){share}"


def rows_by(report, section, key):
    return {r[key]: r for r in report["results"].get(section, [])}


def render(osp, peer, name):
    om, pm = osp["model"], peer["model"]
    context = osp["settings"]["prompt_tokens"] + osp["settings"]["decode_tokens"] // 2
    lines = [f"# Osprey vs transformers: {name}", ""]
    if not osp["device"].startswith(peer["device"].split(",")[0]) or osp["device"].startswith("cpu"):
        lines += [f"**Devices: Osprey on {osp['device']}; transformers on {peer['device']}. "
                  "The ceilings below are the H200's: on any other device they are not this run's limits.**", ""]
    lines += [
        f"- Osprey: {osp['engine']}, {osp['device']}" + (f", driver {osp.get('driver')}, CUDA {osp.get('cuda')}" if osp.get("driver") else ""),
        f"  - `{osp.get('command', '')}` ({osp.get('date', '')})",
        f"- transformers: {peer['engine']}, {peer['device']}",
        f"  - `{peer.get('command', '')}` ({peer.get('date', '')})",
        f"- model: {om.get('model_type')} {om['layers']} layers, hidden {om['hidden']}, {om['experts']} experts (top {om['top_k']}), "
        f"vocab {om['vocab']}; weights as loaded: Osprey {om['quantization']} {om['weight_bytes'] / 1e9:.2f} GB, "
        f"transformers {pm['quantization']} {pm['weight_bytes'] / 1e9:.2f} GB",
        f"- decode: {osp['settings']['decode_tokens']} tokens timed after a {osp['settings']['prompt_tokens']}-token prompt, greedy; "
        f"each figure the median of {osp['settings']['repeat']} (Osprey) / {peer['settings']['repeat']} (transformers) runs",
        f"- ceilings (shared/device/NOTES.md): decode {HBM_COPY_BYTES_S / 1e12:.1f} TB/s measured copy "
        f"(spec ~{HBM_SPEC_BYTES_S / 1e12:.1f} TB/s) over the bytes a step reads (weights, experts touched, KV at bf16, context {context}); "
        f"prefill {BF16_GEMM_FLOP_S / 1e12:.0f} TFLOP/s bf16 cuBLASLt (780–816 measured) over the FLOPs per token",
        "",
        "| figure | Osprey | transformers | Osprey/transformers | roofline for Osprey (% reached) | roofline for transformers (% reached) |",
        "|---|---|---|---|---|---|",
    ]
    ores, pres = osp["results"], peer["results"]
    for label, key in (("load, first (s)", "load_s"), ("load, warm page cache (s)", "load_warm_s")):
        lines.append(f"| {label} | {fmt(ores.get(key), 2)} | {fmt(pres.get(key), 2)} | {ratio(ores.get(key), pres.get(key))} | — | — |")
    od, pd = rows_by(osp, "decode", "batch"), rows_by(peer, "decode", "batch")
    for b in sorted(set(od) | set(pd)):
        o, p = od.get(b, {}).get("tok_s"), pd.get(b, {}).get("tok_s")
        ob, pb = decode_bytes_per_step(om, b, context), decode_bytes_per_step(pm, b, context)
        lines.append(f"| decode, batch {b} (tok/s) | {fmt(o) if o else '— (batch > 1: issue 8)'} | {fmt(p)} | {ratio(o, p)} | "
                     f"{bound(o, b * HBM_COPY_BYTES_S / ob, f'{ob / 1e9:.2f} GB/step')} | "
                     f"{bound(p, b * HBM_COPY_BYTES_S / pb, f'{pb / 1e9:.2f} GB/step')} |")
    op, pp = rows_by(osp, "prefill", "tokens"), rows_by(peer, "prefill", "tokens")
    for n in sorted(set(op) | set(pp)):
        o, p = op.get(n, {}).get("tok_s"), pp.get(n, {}).get("tok_s")
        f = prefill_flops_per_token(om, n)
        cell = lambda x: bound(x, BF16_GEMM_FLOP_S / f, f"{f / 1e9:.2f} GFLOP/token")
        lines.append(f"| prefill, {n} tokens (tok/s) | {fmt(o, 0)} | {fmt(p, 0)} | {ratio(o, p)} | {cell(o)} | {cell(p)} |")
    om_mem, pm_mem = ores.get("memory_gib") or {}, pres.get("memory_gib") or {}
    for label, key in (("GPU memory after load (GiB)", "after_load"), ("GPU memory, peak (GiB)", "peak")):
        o, p = om_mem.get(key), pm_mem.get(key)
        lines.append(f"| {label} | {fmt(o, 2)} | {fmt(p, 2)} | {ratio(o, p)} | weights {om['weight_bytes'] / 2**30:.2f} | "
                     f"weights {pm['weight_bytes'] / 2**30:.2f} |")
    lines += ["", "Memory is the driver's total − free (CUDA context included), sampled after each phase. "
              "transformers' decode is steady decode: generate(N) less generate(1), so its prefill is not counted."]
    return lines


def render_also(osp, peer, extras):
    """Other runs of Osprey (e.g. --dequantize) beside the main two: each figure, its ratio to
    Osprey's main run and to transformers, and its roofline."""
    if not extras:
        return []
    context = osp["settings"]["prompt_tokens"] + osp["settings"]["decode_tokens"] // 2
    lines = ["", "## Other Osprey runs in the same call", ""]
    for label, r in extras:
        m, res = r["model"], r["results"]
        lines += [f"### {label}: {m['quantization']} weights, {m['weight_bytes'] / 1e9:.2f} GB as loaded", "",
                  f"`{r.get('command', '')}` ({r.get('date', '')})", "",
                  f"| figure | {label} | Osprey | ÷ Osprey | transformers | ÷ transformers | roofline (% reached) |",
                  "|---|---|---|---|---|---|---|"]
        for key, name in (("load_s", "load, first (s)"), ("load_warm_s", "load, warm page cache (s)")):
            x, o, p = res.get(key), osp["results"].get(key), peer["results"].get(key)
            lines.append(f"| {name} | {fmt(x, 2)} | {fmt(o, 2)} | {ratio(x, o)} | {fmt(p, 2)} | {ratio(x, p)} | — |")
        xd, od, pd = rows_by(r, "decode", "batch"), rows_by(osp, "decode", "batch"), rows_by(peer, "decode", "batch")
        for b in sorted(xd):
            x, o, p = xd[b]["tok_s"], od.get(b, {}).get("tok_s"), pd.get(b, {}).get("tok_s")
            bytes_ = decode_bytes_per_step(m, b, context)
            lines.append(f"| decode, batch {b} (tok/s) | {fmt(x)} | {fmt(o)} | {ratio(x, o)} | {fmt(p)} | {ratio(x, p)} | "
                         f"{bound(x, b * HBM_COPY_BYTES_S / bytes_, f'{bytes_ / 1e9:.2f} GB/step')} |")
        xp, op, pp = rows_by(r, "prefill", "tokens"), rows_by(osp, "prefill", "tokens"), rows_by(peer, "prefill", "tokens")
        for n in sorted(xp):
            x, o, p = xp[n]["tok_s"], op.get(n, {}).get("tok_s"), pp.get(n, {}).get("tok_s")
            f = prefill_flops_per_token(m, n)
            lines.append(f"| prefill, {n} tokens (tok/s) | {fmt(x, 0)} | {fmt(o, 0)} | {ratio(x, o)} | {fmt(p, 0)} | {ratio(x, p)} | "
                         f"{bound(x, BF16_GEMM_FLOP_S / f, f'{f / 1e9:.2f} GFLOP/token')} |")
        xm, om_, pm_ = res.get("memory_gib") or {}, osp["results"].get("memory_gib") or {}, peer["results"].get("memory_gib") or {}
        for key, name in (("after_load", "GPU memory after load (GiB)"), ("peak", "GPU memory, peak (GiB)")):
            x, o, p = xm.get(key), om_.get(key), pm_.get(key)
            lines.append(f"| {name} | {fmt(x, 2)} | {fmt(o, 2)} | {ratio(x, o)} | {fmt(p, 2)} | {ratio(x, p)} | weights {m['weight_bytes'] / 2**30:.2f} |")
    return lines


# MARK: - Plots

def plot(osp, peer, out, extras=()):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    context = osp["settings"]["prompt_tokens"] + osp["settings"]["decode_tokens"] // 2
    written = []
    for section, key, xlabel, ceiling, path in (
            ("decode", "batch", "batch size", lambda m, x: x * HBM_COPY_BYTES_S / decode_bytes_per_step(m, x, context), out + "-decode.png"),
            ("prefill", "tokens", "prompt length (tokens)", lambda m, x: BF16_GEMM_FLOP_S / prefill_flops_per_token(m, x), out + "-prefill.png")):
        fig, ax = plt.subplots(figsize=(6, 4))
        runs = [(osp, "Osprey", "o-"), (peer, "transformers", "s-")] + [(r, l, st) for (l, r), st in zip(extras, ("^-", "D-", "v-"))]
        for report, label, style in runs:
            rows = sorted(report["results"].get(section, []), key=lambda r: r[key])
            if rows:
                xs = [r[key] for r in rows]
                ax.plot(xs, [r["tok_s"] for r in rows], style, label=f"{label} ({report['model']['quantization']})")
                ax.plot(xs, [ceiling(report["model"], x) for x in xs], style[0] + ":", alpha=0.5, label=f"roofline, {label}'s weights")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("tok/s")
        ax.set_title(f"{section} on {osp['device'].split(',')[0]}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    # Memory: GPU memory after load and at peak, each engine's weights marked (the seed's Figure 5).
    mem = [(label, r["results"].get("memory_gib"), r["model"]) for r, label in [(osp, "Osprey"), (peer, "transformers")] + [(r, l) for l, r in extras]]
    if all(m for _, m, _ in mem):
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = range(len(mem))
        ax.bar([x - 0.2 for x in xs], [m["after_load"] for _, m, _ in mem], 0.4, label="after load")
        ax.bar([x + 0.2 for x in xs], [m["peak"] for _, m, _ in mem], 0.4, label="peak")
        ax.scatter(list(xs), [model["weight_bytes"] / 2**30 for _, _, model in mem], marker="_", s=900, color="black",
                   zorder=3, label="weights as loaded")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([f"{label} ({model['quantization']})" for label, _, model in mem])
        ax.set_ylabel("GiB")
        ax.set_title(f"GPU memory on {osp['device'].split(',')[0]}")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out + "-memory.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("osprey")
    p.add_argument("transformers")
    p.add_argument("--out", required=True, help="path without extension: writes OUT.md and OUT-*.png")
    p.add_argument("--also", action="append", default=[], metavar="LABEL=FILE",
                   help="another Osprey run (e.g. --dequantize) shown beside the two, in its own table and in the plots")
    args = p.parse_args(argv)
    out = args.out[:-3] if args.out.endswith(".md") else args.out
    osp, peer = load(args.osprey), load(args.transformers)
    extras = []
    for item in args.also:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            p.error(f"--also takes LABEL=FILE, got {item!r}")
        extras.append((label, load(path)))
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    lines = render(osp, peer, os.path.basename(out)) + render_also(osp, peer, extras)
    pngs = plot(osp, peer, out, extras)
    lines += [""] + [f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in pngs]
    if not pngs:
        lines.append("(no plots: matplotlib is not importable here)")
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(out + ".md", *pngs)


if __name__ == "__main__":
    main(sys.argv[1:])
