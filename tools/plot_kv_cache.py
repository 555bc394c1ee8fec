"""Plots `osprey gpu-check --long-decode N --long-decode-csv F` output: KV-cache bytes against the
generated length for the config-aware cache and for one that keeps every layer full, and decode
tok/s over each 1,024-token stretch (the seed's Figure 5 for Osprey).
Usage: python3 tools/plot_kv_cache.py samples.csv out.png"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(path: str, out: str) -> None:
    series = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            series[row["cache"]].append((int(row["generated"]), int(row["kv_bytes"]) / 2**30, float(row["tokens_per_second"])))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, pts in series.items():
        pts.sort()
        a.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=name)
        b.plot([p[0] for p in pts], [p[2] for p in pts], marker=".", label=name)
    a.set_xlabel("generated tokens (after a 1,024-token prompt)")
    a.set_ylabel("KV cache held (GiB)")
    a.set_title("KV cache memory")
    b.set_xlabel("generated tokens")
    b.set_ylabel("decode tok/s (per 1,024-token stretch)")
    b.set_title("Decode speed, batch 1")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
