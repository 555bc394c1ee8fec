"""The peer for Osprey's GPU figures: Hugging Face transformers on the same checkpoint and workload.

Run on the GPU machine (transformers 5.17 there): loads a gpt-oss folder (MXFP4 experts are
dequantized to bf16 with Mxfp4Config(dequantize=True): the MXFP4 kernels come from a hub that
machine cannot reach, so this column is bf16), then measures batch-1 greedy decode after a
128-token prompt (128 new tokens, no early stop) and one 2,048-token prefill. Prints one JSON
object. Usage: python3 tools/bench_transformers.py MODEL_DIR
"""
import json
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, Mxfp4Config


def main(path: str) -> None:
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.bfloat16, device_map="cuda", quantization_config=Mxfp4Config(dequantize=True))
    torch.cuda.synchronize()
    load = time.time() - t0
    vocab = model.config.vocab_size
    prompt = torch.tensor([[(i * 7919 + 13) % vocab for i in range(128)]], device="cuda")
    long_prompt = torch.tensor([[(i * 31 + 7) % vocab for i in range(2048)]], device="cuda")
    with torch.inference_mode():
        model.generate(prompt, max_new_tokens=8, min_new_tokens=8, do_sample=False)  # warm-up
        torch.cuda.synchronize()
        t = time.time()
        model.generate(prompt, max_new_tokens=128, min_new_tokens=128, do_sample=False)
        torch.cuda.synchronize()
        decode = 128 / (time.time() - t)
        model(long_prompt)
        torch.cuda.synchronize()
        t = time.time()
        model(long_prompt)
        torch.cuda.synchronize()
        prefill = 2048 / (time.time() - t)
    print(json.dumps({
        "engine": f"transformers {transformers.__version__} (bf16 experts via Mxfp4Config(dequantize=True), eager attention)",
        "load_s": round(load, 2), "decode_tok_s": round(decode, 1), "prefill_2048_tok_s": round(prefill, 1),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "device": torch.cuda.get_device_name(0),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
