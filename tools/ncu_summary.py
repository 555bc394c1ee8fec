"""Sums `ncu --csv --metrics gpu__time_duration.sum` output by kernel name: a markdown table of
GPU time per kernel (share of the total, launches, mean), for the decode-step breakdowns in
benchmarks/results. Usage: python3 tools/ncu_summary.py ncu.csv"""
import csv
import sys
from collections import defaultdict


def main(path: str) -> None:
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu prints its own log lines before the CSV
    total = defaultdict(float)
    count = defaultdict(int)
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        name = row["Kernel Name"].split("(")[0]
        value = float(row["Metric Value"].replace(",", ""))
        unit = row.get("Metric Unit", "nsecond")
        scale = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6}.get(unit, 1e-3)
        total[name] += value * scale
        count[name] += 1
    grand = sum(total.values())
    print(f"{sum(count.values())} kernels, {grand:.1f} us of GPU time\n")
    print("| kernel | us | share | launches | mean us |")
    print("|---|---|---|---|---|")
    for name, us in sorted(total.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {us:.1f} | {100 * us / grand:.1f}% | {count[name]} | {us / count[name]:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1])
