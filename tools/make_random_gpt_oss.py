"""Random-weight gpt-oss checkpoints in the Hugging Face layout, for benchmarks and quick checks.

Writes what openai/gpt-oss-20b and -120b ship, with random numbers: config.json (the published
config: 20b as shared/data/gpt-oss-20b.hf-config.json; 120b the same with 36 layers and 128 experts),
generation_config.json, bf16 non-expert weights (random sign and mantissa, exponent 2^-9..2^-6: |w| about
0.01; norms 1; sinks 0), MXFP4 experts as `*_blocks` (random bytes: every e2m1 value equally likely) and
`*_scales` (e8m0 bytes uniform in 119..121: |w| about 0.01 to 0.05), bf16 expert biases, sharded
safetensors (model-0000i-of-0000N.safetensors) + model.safetensors.index.json. No tokenizer (the
benchmarks feed token ids). Deterministic for a seed. Needs numpy only (the safetensors files are
written here, in 64 MiB pieces, so memory stays flat; numpy has no bf16, so bf16 values are made as bits).

    python3 tools/make_random_gpt_oss.py --shape 20b --out /tmp/gpt-oss-20b-random
    python3 tools/make_random_gpt_oss.py --shape 120b --out /dev/shm/gpt-oss-120b-random   (~65 GB)
    python3 tools/make_random_gpt_oss.py --shape tiny --out /tmp/tiny      (vocab 1,024, 2 layers: seconds)
        any of --layers --experts --top-k --vocab --hidden --intermediate --heads --kv-heads --head-dim
        --window override the shape; --shard-mb sets the shard size (default 4,000 MB); --seed.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

SHAPES = {
    "20b": dict(layers=24, experts=32, top_k=4, vocab=201088, hidden=2880, intermediate=2880, heads=64, kv_heads=8,
                head_dim=64, window=128),
    "120b": dict(layers=36, experts=128, top_k=4, vocab=201088, hidden=2880, intermediate=2880, heads=64, kv_heads=8,
                 head_dim=64, window=128),
    "tiny": dict(layers=2, experts=4, top_k=2, vocab=1024, hidden=64, intermediate=64, heads=4, kv_heads=2,
                 head_dim=16, window=8),
}


def config_json(s):
    layer_types = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(s["layers"])]
    return {
        "architectures": ["GptOssForCausalLM"], "attention_bias": True, "attention_dropout": 0.0,
        "eos_token_id": min(200002, s["vocab"] - 1), "pad_token_id": min(199999, s["vocab"] - 2),
        "experts_per_token": s["top_k"], "num_experts_per_tok": s["top_k"], "head_dim": s["head_dim"],
        "hidden_act": "silu", "hidden_size": s["hidden"], "initial_context_length": 4096, "initializer_range": 0.02,
        "intermediate_size": s["intermediate"], "layer_types": layer_types, "max_position_embeddings": 131072,
        "model_type": "gpt_oss", "num_attention_heads": s["heads"], "num_hidden_layers": s["layers"],
        "num_key_value_heads": s["kv_heads"], "num_local_experts": s["experts"], "output_router_logits": False,
        "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                           "model.embed_tokens", "lm_head"], "quant_method": "mxfp4"},
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0, "original_max_position_embeddings": 4096,
                         "rope_type": "yarn", "truncate": False},
        "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": s["window"], "swiglu_limit": 7.0,
        "tie_word_embeddings": False, "transformers_version": "4.55.0.dev0", "use_cache": True, "vocab_size": s["vocab"],
    }


CHUNK = 1 << 26  # bytes produced and written at a time (memory stays flat at any shape)


def chunks(total, make):
    """make(n) -> bytes of n elements, called for pieces of `total` elements."""
    def gen():
        done = 0
        while done < total:
            n = min(CHUNK, total - done)
            yield make(n)
            done += n
    return gen


def tensors(s, rng):
    """(name, dtype, shape, producer) in checkpoint order; a producer yields the bytes in pieces."""
    E, H, I, V = s["experts"], s["hidden"], s["intermediate"], s["vocab"]
    Hq, Hkv, D = s["heads"], s["kv_heads"], s["head_dim"]

    def normal(*shape):
        # bf16 bits from random bytes: random sign and mantissa, exponent 2^-9..2^-6, so |w| is
        # 0.002..0.016 (mean ~0.01): cheap to make at any size, the scale of trained weights.
        def make(n):
            r = np.frombuffer(rng.bytes(2 * n), dtype=np.uint16)
            return ((r & 0x807F) | ((118 + ((r >> 7) & 3)) << 7)).astype(np.uint16).tobytes()
        return chunks(int(np.prod(shape)), make)

    def const(value, *shape):
        bits = int(np.array([value], dtype=np.float32).view(np.uint32)[0] >> 16)
        return chunks(int(np.prod(shape)), lambda n: np.full(n, bits, dtype=np.uint16).tobytes())

    def blocks(*shape):
        return chunks(int(np.prod(shape)), lambda n: rng.bytes(n))

    def scales(*shape):
        return chunks(int(np.prod(shape)), lambda n: (119 + np.frombuffer(rng.bytes(n), dtype=np.uint8) % 3).astype(np.uint8).tobytes())

    out = [("model.embed_tokens.weight", "BF16", (V, H), normal(V, H))]
    for i in range(s["layers"]):
        p = f"model.layers.{i}"
        out += [
            (f"{p}.input_layernorm.weight", "BF16", (H,), const(1.0, H)),
            (f"{p}.post_attention_layernorm.weight", "BF16", (H,), const(1.0, H)),
            (f"{p}.self_attn.q_proj.weight", "BF16", (Hq * D, H), normal(Hq * D, H)),
            (f"{p}.self_attn.q_proj.bias", "BF16", (Hq * D,), normal(Hq * D)),
            (f"{p}.self_attn.k_proj.weight", "BF16", (Hkv * D, H), normal(Hkv * D, H)),
            (f"{p}.self_attn.k_proj.bias", "BF16", (Hkv * D,), normal(Hkv * D)),
            (f"{p}.self_attn.v_proj.weight", "BF16", (Hkv * D, H), normal(Hkv * D, H)),
            (f"{p}.self_attn.v_proj.bias", "BF16", (Hkv * D,), normal(Hkv * D)),
            (f"{p}.self_attn.o_proj.weight", "BF16", (H, Hq * D), normal(H, Hq * D)),
            (f"{p}.self_attn.o_proj.bias", "BF16", (H,), normal(H)),
            (f"{p}.self_attn.sinks", "BF16", (Hq,), const(0.0, Hq)),
            (f"{p}.mlp.router.weight", "BF16", (E, H), normal(E, H)),
            (f"{p}.mlp.router.bias", "BF16", (E,), normal(E)),
            (f"{p}.mlp.experts.gate_up_proj_blocks", "U8", (E, 2 * I, H // 32, 16), blocks(E, 2 * I, H // 32, 16)),
            (f"{p}.mlp.experts.gate_up_proj_scales", "U8", (E, 2 * I, H // 32), scales(E, 2 * I, H // 32)),
            (f"{p}.mlp.experts.gate_up_proj_bias", "BF16", (E, 2 * I), normal(E, 2 * I)),
            (f"{p}.mlp.experts.down_proj_blocks", "U8", (E, H, I // 32, 16), blocks(E, H, I // 32, 16)),
            (f"{p}.mlp.experts.down_proj_scales", "U8", (E, H, I // 32), scales(E, H, I // 32)),
            (f"{p}.mlp.experts.down_proj_bias", "BF16", (E, H), normal(E, H)),
        ]
    out += [("model.norm.weight", "BF16", (H,), const(1.0, H)), ("lm_head.weight", "BF16", (V, H), normal(V, H))]
    return out


def nbytes(dtype, shape):
    return int(np.prod(shape)) * (2 if dtype == "BF16" else 1)


def write_shard(path, entries):
    header, offset = {}, 0
    for name, dtype, shape, _ in entries:
        n = nbytes(dtype, shape)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for _, _, _, produce in entries:
            for piece in produce():
                f.write(piece)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="20b")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard-mb", type=float, default=4000)
    for key in SHAPES["20b"]:
        p.add_argument("--" + key.replace("_", "-"), type=int)
    a = p.parse_args(argv)
    s = dict(SHAPES[a.shape])
    for key in s:
        if getattr(a, key) is not None:
            s[key] = getattr(a, key)
    for key, v in s.items():
        if v <= 0:
            p.error(f"--{key.replace('_', '-')} must be positive, got {v}")
    if s["hidden"] % 32 or s["intermediate"] % 32:
        p.error("MXFP4 experts need --hidden and --intermediate multiples of 32")
    if s["heads"] % s["kv_heads"] or s["top_k"] > s["experts"] or a.shard_mb <= 0:
        p.error("--heads must be a multiple of --kv-heads, --top-k at most --experts, --shard-mb positive")

    start = time.time()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    entries = tensors(s, rng)
    limit = int(a.shard_mb * 1e6)
    shards, current, size = [], [], 0
    for e in entries:
        n = nbytes(e[1], e[2])
        if current and size + n > limit:
            shards.append(current)
            current, size = [], 0
        current.append(e)
        size += n
    shards.append(current)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_shard(os.path.join(a.out, name), shard)
        for e in shard:
            weight_map[e[0]] = name
            total += nbytes(e[1], e[2])
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config_json(s), f, indent=2)
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": min(199998, s["vocab"] - 3), "do_sample": True,
                   "eos_token_id": [min(200002, s["vocab"] - 1)], "pad_token_id": min(199999, s["vocab"] - 2)}, f, indent=2)
    print(f"wrote {a.out}: {a.shape} shape {s}, {total / 1e9:.2f} GB in {len(shards)} shard(s), {time.time() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
