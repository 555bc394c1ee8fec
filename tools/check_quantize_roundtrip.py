#!/usr/bin/env python3
"""`osprey quantize` against transformers (issue 6, deliverable 4): proof that the folders it writes are what
transformers writes and reads.

For a few random bf16 gpt-oss checkpoints (`osprey random-model`), quantized by `osprey quantize` with each rule:
  1. the MXFP4 bytes equal numpy's: tools/train_tiny_gpt_oss.py's quantizer (triton's bit trick, what
     transformers' `quantize_to_mxfp4` runs) for the default rule, tools/make_gpt_oss_fixtures.py's OCP one
     for --rule ocp; every other tensor equals the source byte for byte;
  2. transformers 5 loads the folder (`Mxfp4Config(dequantize=True)`), and its expert weights equal the numpy
     decoding of the files, bit for bit;
  3. transformers' greedy continuation (float32, eager, CPU) equals `osprey generate`'s on the same folder.
No GPU is needed. The log of a run is committed beside this file (check_quantize_roundtrip.log).

Usage: python3 tools/check_quantize_roundtrip.py --osprey .build/debug/osprey [--work /tmp/qrt]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_gpt_oss_fixtures import mxfp4_dequantize, mxfp4_quantize as fixture_quantize  # noqa: E402
from train_tiny_gpt_oss import mxfp4_quantize as transformers_quantize  # noqa: E402

SHAPES = [  # random-model flags
    ["--layers", "2", "--hidden", "64", "--intermediate", "64", "--seed", "5"],
    ["--layers", "3", "--hidden", "96", "--intermediate", "160", "--experts", "5", "--top-k", "3", "--heads", "6",
     "--kv-heads", "2", "--window", "4", "--seed", "9"],
]
PROMPT = [5, 6, 7, 8, 9, 10, 11]
STEPS = 16


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stderr}"
    return out.stdout


def read_folder(folder):
    from safetensors import safe_open

    index = os.path.join(folder, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    tensors = {}
    for fn in files:
        with safe_open(os.path.join(folder, fn), framework="pt") as f:
            for k in f.keys():
                tensors[k] = f.get_tensor(k)
    return tensors


def check(osprey, work, shape, rule):
    import torch
    from transformers import GptOssForCausalLM, Mxfp4Config

    src, dst = os.path.join(work, "bf16"), os.path.join(work, f"mxfp4-{rule}")
    run([osprey, "random-model", "--out", src] + shape)
    print(run([osprey, "quantize", "--model", src, "--to", "mxfp4", "--out", dst, "--rule", rule, "--max-shard-size", "100KB"]).strip())
    a, b = read_folder(src), read_folder(dst)
    for k, v in a.items():
        if k + "_blocks" in b:
            w = v.float().numpy().transpose(0, 2, 1)  # [E, out, in]
            blocks, scales = transformers_quantize(w) if rule == "transformers" else fixture_quantize(w, "ocp")
            assert np.array_equal(blocks, b[k + "_blocks"].numpy()) and np.array_equal(scales, b[k + "_scales"].numpy()), k
        else:
            assert torch.equal(v.view(torch.uint8) if v.dtype != torch.uint8 else v, b[k].view(torch.uint8)), k
    print(f"  1. {sum(k.endswith('_blocks') for k in b)} MXFP4 tensors equal numpy's {rule} rule; "
          f"{sum(not k.endswith(('_blocks', '_scales')) for k in b)} other tensors byte-identical")
    model = GptOssForCausalLM.from_pretrained(dst, quantization_config=Mxfp4Config(dequantize=True), dtype=torch.float32,
                                              attn_implementation="eager", experts_implementation="eager").float().eval()
    params = dict(model.named_parameters())
    for k in b:
        if k.endswith("_blocks"):
            base = k[: -len("_blocks")]
            expected = mxfp4_dequantize(b[k].numpy(), b[base + "_scales"].numpy()).transpose(0, 2, 1)
            assert np.array_equal(params[base].detach().double().numpy(), expected), base
    print("  2. transformers loads it; its experts equal the numpy decoding bit for bit")
    seq = torch.tensor([PROMPT])
    with torch.no_grad():
        for _ in range(STEPS):
            seq = torch.cat([seq, model(input_ids=seq).logits[0, -1].argmax().view(1, 1)], 1)
    hf = seq[0, len(PROMPT):].tolist()
    out = json.loads(run([osprey, "generate", "--model", dst, "--prompt-ids", ",".join(map(str, PROMPT)), "--max-new-tokens",
                          str(STEPS), "--min-new-tokens", str(STEPS), "--temperature", "0", "--json", "--device", "cpu"]))
    assert out["generated_ids"] == hf, (out["generated_ids"], hf)
    print(f"  3. greedy ids, transformers == osprey: {hf}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--osprey", required=True, help="the osprey binary")
    ap.add_argument("--work", default="/tmp/osprey-quantize-roundtrip")
    args = ap.parse_args()
    import torch
    import transformers

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, numpy {np.__version__}")
    for i, shape in enumerate(SHAPES):
        for rule in ("transformers", "ocp"):
            print(f"shape {i} ({' '.join(shape)}), rule {rule}")
            check(os.path.abspath(args.osprey), os.path.join(args.work, f"s{i}"), shape, rule)
    print("ALL OK")


if __name__ == "__main__":
    main()
