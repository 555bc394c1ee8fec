#!/usr/bin/env bash
# CPU throughput of `osprey generate` (the oracle backend, f32 compute, both cores) on two random
# gpt-oss checkpoints with MXFP4 experts: one fixture-sized, one bigger (~60M parameters).
# Writes a markdown table to benchmarks/results/cpu-generate.md (or $1) with the machine and date.
# Usage: bash benchmarks/cpu-generate.sh [results-file]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/cpu-generate.md}
swift build -c release --product osprey >/dev/null
bin=.build/release/osprey
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" random-model --out "$tmp/tiny" --mxfp4 --vocab 256 --hidden 64 --intermediate 64 --layers 4 \
    --heads 4 --kv-heads 2 --head-dim 16 --experts 4 --top-k 2 --window 8 >/dev/null
"$bin" random-model --out "$tmp/big" --mxfp4 --vocab 32000 --hidden 512 --intermediate 512 --layers 8 \
    --heads 8 --kv-heads 2 --head-dim 64 --experts 16 --top-k 4 --window 128 >/dev/null

prompt=$(seq -s, 1 64)
{
    echo "# CPU generate throughput"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
    echo "- command: bash benchmarks/cpu-generate.sh (osprey generate --device cpu --prompt-ids 1..64 --max-new-tokens 64 --stats, best of 3)"
    echo "- models: random gpt-oss, MXFP4 experts; tiny = 4 layers, hidden 64, 4 experts top-2, vocab 256;"
    echo "  big = 8 layers, hidden 512, 16 experts top-4, 8 q / 2 kv heads of 64, vocab 32000"
    echo
    echo "| model | parameters | load s | prefill tok/s (64 tokens) | decode tok/s (63 tokens) |"
    echo "|---|---|---|---|---|"
    for m in tiny big; do
        params=$("$bin" inspect "$tmp/$m" | awk '/^parameters:/{print $2}')
        best=""
        for _ in 1 2 3; do
            line=$("$bin" generate --model "$tmp/$m" --device cpu --prompt-ids "$prompt" --max-new-tokens 64 --stats 2>&1 >/dev/null)
            decode=$(echo "$line" | sed -E 's/.*decode [0-9]+ tokens ([0-9.]+) tok\/s.*/\1/')
            if [ -z "$best" ] || awk "BEGIN{exit !($decode > $(echo "$best" | sed -E 's/.*decode [0-9]+ tokens ([0-9.]+) tok\/s.*/\1/'))}"; then best=$line; fi
        done
        load=$(echo "$best" | sed -E 's/load ([0-9.]+) s.*/\1/')
        prefill=$(echo "$best" | sed -E 's/.*prefill [0-9]+ tokens ([0-9.]+) tok\/s.*/\1/')
        decode=$(echo "$best" | sed -E 's/.*decode [0-9]+ tokens ([0-9.]+) tok\/s.*/\1/')
        echo "| $m | $params | $load | $prefill | $decode |"
    done
} | tee "$out"
