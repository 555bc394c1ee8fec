"""The peer for Osprey's GPU figures: Hugging Face transformers on the same checkpoint and workload.

Run on the GPU machine (transformers 5.17 there): loads a gpt-oss folder (MXFP4 experts are
dequantized to bf16 with Mxfp4Config(dequantize=True): the MXFP4 kernels come from a hub that
machine cannot reach, so this column is bf16). Measures load time (a first load, dropped, then a
second with the page cache warm), greedy decode per batch size (generate on a batch of distinct
prompts of one length; no early stop) and prefill per prompt length (one forward pass).

    python3 tools/bench_transformers.py MODEL_DIR
        prints the short object scripts/gpu-check reads: load_s, decode_tok_s (128 new tokens after
        a 128-token prompt, prefill included), prefill_2048_tok_s, peak_gib, device.
    python3 tools/bench_transformers.py MODEL_DIR --json OUT.json [--prefill-lengths 128,512,2048]
            [--decode-tokens 128] [--prompt-tokens 128] [--batch-sizes 1,8,32] [--repeat 3] [--device cuda|cpu]
        writes (and prints) the schema of `osprey bench` (Sources/osprey/BenchReport.swift), for
        tools/render_bench.py. Decode tok/s there is steady decode, as Osprey times it: the time of
        generate(N new) less that of generate(1 new) (the prefill and first token), over B x (N - 1).
Each figure is the median of --repeat timed runs after one untimed warm-up.
"""
import argparse
import datetime
import gc
import json
import os
import statistics
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, Mxfp4Config


def positive_list(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def positive_int(text):
    (value,) = positive_list(text)
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="model folder (config.json + safetensors)")
    p.add_argument("--json", help="write the osprey bench schema here (and print it)")
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--decode-tokens", type=positive_int, default=128)
    p.add_argument("--prompt-tokens", type=positive_int, default=128)
    p.add_argument("--prefill-lengths", type=positive_list, default=[128, 512, 2048])
    p.add_argument("--batch-sizes", type=positive_list, default=[1])
    p.add_argument("--repeat", type=positive_int, default=3)
    return p.parse_args(argv)


class Device:
    """Synchronisation and memory readings that work on the CPU as well as on CUDA."""

    def __init__(self, name):
        self.name = name
        self.cuda = name.startswith("cuda")

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def used_bytes(self):
        if not self.cuda:
            return None
        free, total = torch.cuda.mem_get_info()
        return total - free

    def describe(self):
        if self.cuda:
            props = torch.cuda.get_device_properties(self.name)
            return f"{props.name}, sm_{props.major}{props.minor}, {props.total_memory >> 30} GiB"
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "unknown")
        return f"cpu: {cpu}, {os.cpu_count()} cores"


def load(path, device):
    dtype = torch.bfloat16
    t = time.perf_counter()
    placement = {"device_map": device.name} if device.cuda else {}  # the CPU is the default (and needs no accelerate)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, quantization_config=Mxfp4Config(dequantize=True), **placement)
    device.sync()
    return model, time.perf_counter() - t


def timed(device, fn):
    device.sync()
    t = time.perf_counter()
    fn()
    device.sync()
    return time.perf_counter() - t


def median_rate(device, work, fn, repeat):
    """Median of `repeat` rates work / seconds after one untimed run; also the samples."""
    fn()
    samples = [work / timed(device, fn) for _ in range(repeat)]
    return round(statistics.median(samples), 1), [round(s, 1) for s in samples]


def prompts(vocab, batch, length, device):
    rows = [[(i * 7919 + 13 + 101 * b) % vocab for i in range(length)] for b in range(batch)]
    return torch.tensor(rows, device=device.name)


def generate(model, ids, new):
    model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                   do_sample=False, pad_token_id=0)


def model_summary(model, path, used_bytes_of_weights):
    c = json.load(open(os.path.join(path, "config.json")))
    heads = c.get("num_attention_heads")
    return {
        "model_type": c.get("model_type"), "layers": c.get("num_hidden_layers"), "hidden": c.get("hidden_size"),
        "intermediate": c.get("intermediate_size"), "heads": heads, "kv_heads": c.get("num_key_value_heads", heads),
        "head_dim": c.get("head_dim") or c.get("hidden_size", 0) // max(heads or 1, 1),
        "experts": c.get("num_local_experts"), "top_k": c.get("num_experts_per_tok", c.get("experts_per_token")),
        "vocab": c.get("vocab_size"), "sliding_window": c.get("sliding_window"),
        "quantization": "bf16", "weight_bytes": used_bytes_of_weights,
    }


def driver_version():
    try:
        words = open("/proc/driver/nvidia/version").read().split()
    except OSError:
        return "unknown"
    return next((w for w in words if w.count(".") >= 1 and w.replace(".", "").isdigit()), "unknown")


def main(argv):
    args = parse_args(argv)
    device = Device(args.device)
    if device.cuda and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch sees no GPU (use --device cpu)")
    first, load_s = load(args.model, device)
    del first
    gc.collect()
    if device.cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model, load_warm_s = load(args.model, device)
    used = [device.used_bytes()]
    vocab = model.config.vocab_size
    n = args.decode_tokens

    decode, legacy_decode = [], None
    with torch.inference_mode():
        for b in args.batch_sizes:
            ids = prompts(vocab, b, args.prompt_tokens, device)
            generate(model, ids, 8)  # warm-up
            t_one = statistics.median(timed(device, lambda: generate(model, ids, 1)) for _ in range(args.repeat))
            t_all = [timed(device, lambda: generate(model, ids, n)) for _ in range(args.repeat)]
            steady = [b * (n - 1) / max(t - t_one, 1e-9) for t in t_all]
            decode.append({"batch": b, "tok_s": round(statistics.median(steady), 1), "samples": [round(s, 1) for s in steady],
                           "generate_tok_s": round(statistics.median(b * n / t for t in t_all), 1)})
            if b == 1:
                legacy_decode = decode[-1]["generate_tok_s"]
            used.append(device.used_bytes())
        prefill = []
        for length in args.prefill_lengths:
            ids = prompts(vocab, 1, length, device)
            rate, samples = median_rate(device, length, lambda: model(ids), args.repeat)
            prefill.append({"tokens": length, "tok_s": rate, "samples": samples})
            used.append(device.used_bytes())

    gib = lambda b: round(b / 2**30, 2)
    peak_allocated = gib(torch.cuda.max_memory_allocated()) if device.cuda else None
    if not args.json:
        p2048 = next((p["tok_s"] for p in prefill if p["tokens"] == 2048), None)
        print(json.dumps({
            "engine": f"transformers {transformers.__version__} (bf16 experts via Mxfp4Config(dequantize=True), eager attention)",
            "load_s": round(load_s, 2), "decode_tok_s": legacy_decode, "prefill_2048_tok_s": p2048,
            "peak_gib": peak_allocated, "device": device.describe(),
        }))
        return
    weight_bytes = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    attn = getattr(model.config, "_attn_implementation", None)
    report = {
        "engine": f"transformers {transformers.__version__} (torch {torch.__version__}; bf16 experts via "
                  f"Mxfp4Config(dequantize=True); {attn} attention)",
        "device": device.describe(),
        "model": model_summary(model, args.model, weight_bytes),
        "settings": {"model": args.model, "device": args.device, "dequantize": True, "decode_tokens": n,
                     "prompt_tokens": args.prompt_tokens, "prefill_lengths": args.prefill_lengths,
                     "batch_sizes": args.batch_sizes, "repeat": args.repeat, "json": args.json,
                     "attn_implementation": attn},
        "results": {"load_s": round(load_s, 2), "load_warm_s": round(load_warm_s, 2), "decode": decode, "prefill": prefill},
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python3 " + " ".join(sys.argv),
    }
    if device.cuda:
        report["driver"], report["cuda"] = driver_version(), torch.version.cuda
        report["results"]["memory_gib"] = {"after_load": gib(used[0]), "peak": gib(max(used)), "torch_max_allocated": peak_allocated,
                                           "method": "driver total - free, sampled after load, each decode batch and each prefill"}
    text = json.dumps(report, indent=2, sort_keys=True)
    with open(args.json, "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
