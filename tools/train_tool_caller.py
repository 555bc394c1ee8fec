#!/usr/bin/env python3
"""Train a tiny gpt-oss that calls a tool, for the server's end-to-end tool-call tests (issue 10).

Random-weight models never call tools, so without this the server's mapping of harmony tool calls
to OpenAI `tool_calls` is only unit-tested. This script makes a model that does it for real, on
the byte-level harmony tokenizer the server tests use (`osprey random-model --tokenizer`, vocab
300: one token per byte, harmony's special tokens from id 256). The folder it writes
(Models/osprey-tiny-tool-caller) is what scripts/server-check serves for its tool checks.

What the model learns, with one function tool `get_weather(city)` declared:
  - "What is the weather in <City>?" (7 phrasings)  ->
        <|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"<City>"}<|call|>
    the header gpt-oss writes before a call, which ChatReplyParser reads as a tool call;
  - the same question followed by that call and a `tool` result {"temperature": T, "condition": C} ->
        <|channel|>analysis<|message|>The tool returned the weather.<|end|>
        <|start|>assistant<|channel|>final<|message|>It is T degrees and C in <City>.<|return|>
    (reasoning, then the answer: both channels reach the client);
  - a message that is not about the weather ("Hello!") -> a short final answer, no call;
  - that message with the call forced (tool_choice naming get_weather: the server prefills the
    header, ChatFormat.replyPrefix) -> {"city":"London"}<|call|>;
  - a weather question without tools (tool_choice "none" declares none) -> a final answer.
Besides 72 real cities, ~400 made-up names ("Venkalo") are trained on, so that the model learns to
copy the city rather than memorise it; 40 more made-up names are held out, and the log reports how
often the model gets those right (the server checks use real cities, which are all trained on).

Prompts are never rendered here: every request body goes through `osprey chat-prompt`, which runs
the server's own planning code (ServedModel.chatPrompt), so the training prompts are byte for
byte what `osprey serve` feeds the model. The targets are written as harmony text and mapped to
ids through tokenizer.json's vocabulary. Loss is on the target ids only.

The network is transformers' GptOssForCausalLM (MoE with top-k routing, attention sinks,
sliding-window layers alternating with full attention, YaRN RoPE, clamped SwiGLU, biases) at a tiny
size, trained in float32 (on the CPU, or a GPU with --device cuda), saved in bf16 (experts as dense bf16 `gate_up_proj`/`down_proj`,
no MXFP4). Training stops once every training example is reproduced greedily, with a margin, by
the bf16-rounded weights (teacher forcing: greedy decoding reproduces a target exactly when the
argmax at each of its positions is the target id). Then the saved folder is served by the real
`osprey serve` on the CPU and every example is sent through HTTP with temperature 0; the log
records how many replies match exactly.

Usage (repo root as cwd; needs torch, transformers 5.x, safetensors, numpy; an `osprey` binary):
    python3 tools/train_tool_caller.py --osprey .build/debug/osprey --out Models/osprey-tiny-tool-caller
    python3 tools/train_tool_caller.py --osprey ... --out /tmp/smoke --smoke      # a minute, end to end
    python3 tools/train_tool_caller.py --osprey ... --out DIR --verify-only       # re-run the server check
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}},
                   "required": ["city"]}}}
CITIES = [
    "Paris", "London", "Tokyo", "Berlin", "Madrid", "Rome", "Lisbon", "Oslo", "Cairo", "Lima", "Seoul", "Dublin",
    "Vienna", "Prague", "Warsaw", "Athens", "Sydney", "Toronto", "Chicago", "Boston", "Denver", "Miami", "Austin",
    "Seattle", "Mumbai", "Delhi", "Dubai", "Nairobi", "Lagos", "Bogota", "Havana", "Quito", "Santiago", "Montreal",
    "Vancouver", "Helsinki", "Stockholm", "Copenhagen", "Amsterdam", "Brussels", "Zurich", "Geneva", "Munich",
    "Hamburg", "Milan", "Naples", "Venice", "Florence", "Porto", "Seville", "Istanbul", "Moscow", "Kyiv", "Beijing",
    "Shanghai", "Singapore", "Bangkok", "Hanoi", "Manila", "Jakarta", "Auckland", "Perth", "Reykjavik", "New York",
    "San Francisco", "Los Angeles", "Rio de Janeiro", "Buenos Aires", "Mexico City", "Cape Town", "Hong Kong", "Kyoto",
]
SYLLABLES = ["ka", "lo", "mi", "ra", "ven", "tor", "sel", "dun", "bri", "qua", "zel", "nor", "phi", "gar", "lu", "sto",
             "wen", "yar", "hal", "fen", "cor", "das", "ish", "mon", "pel", "rik", "sa", "tam", "ul", "vo", "bel", "ne"]
QUESTIONS = [
    "What is the weather in {c}?", "What's the weather like in {c}?", "How is the weather in {c} today?",
    "Weather in {c}?", "Is it raining in {c}?", "Tell me the weather in {c}.", "Should I bring an umbrella in {c}?",
]
OTHER = ["Hello!", "Hi there.", "Tell me a joke.", "What is 2+2?", "Who are you?", "Thank you!", "Write a poem.",
         "Say hello.", "Good morning.", "What can you do?", "How are you?", "Tell me a story."]
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "snowy", "foggy"]
MIN_RATE = 0.9  # of each trained kind of example that the served model must reproduce exactly (see verify_with_server)
DEFAULT_CITY = "London"  # what a forced call picks when the message names no city

CALL = "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{args}<|call|>"
ANSWER = ("<|channel|>analysis<|message|>The tool returned the weather.<|end|>"
          "<|start|>assistant<|channel|>final<|message|>It is {t} degrees and {cond} in {c}.<|return|>")
SMALL_TALK = "<|channel|>final<|message|>I can tell you the weather in any city. Which city?<|return|>"
NO_TOOLS = "<|channel|>final<|message|>I cannot check the weather right now.<|return|>"

LOG_LINES: list[str] = []
DEVICE = "cpu"  # where the network trains (--device)


def log(*a):
    line = " ".join(str(x) for x in a)
    LOG_LINES.append(line)
    print(line, flush=True)


# ------------------------------------------------------------------------------------------------
# Examples: request bodies (rendered by osprey) and harmony targets

def call_args(city: str) -> str:
    return json.dumps({"city": city}, separators=(",", ":"))


def made_up_names(rng: random.Random, n: int) -> list[str]:
    """Pronounceable city names no model has seen ("Venkalo", "Rik Tamsa"): with hundreds of them in
    training the model cannot memorise cities and learns to copy the name from the question."""
    names: set[str] = set()
    while len(names) < n:
        word = lambda: "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        name = word() + (" " + word() if rng.random() < 0.15 else "")
        if name not in CITIES:
            names.add(name)
    return sorted(names)


def examples(rng: random.Random, made_up: list[str], held_out: list[str]):
    """(kind, city, request body, target text). Forced bodies end in the prefilled header, so their
    targets are what follows it. Real cities get every kind and phrasing (the server checks use
    them); made-up ones a weather question and a tool round trip each, those of `held_out` only for
    measuring whether the model copies names it never saw."""
    out = []
    user = lambda text: [{"role": "user", "content": text}]

    def call(c, q):
        return ("call", c, {"messages": user(q.format(c=c)), "tools": [TOOL]}, CALL.format(args=call_args(c)))

    def answer(c, q):
        t, cond = rng.randint(-5, 35), rng.choice(CONDITIONS)
        args = call_args(c) if rng.random() < 0.5 else json.dumps({"city": c})  # the model's, or a client's spacing
        result = json.dumps({"temperature": t, "condition": cond}, separators=(",", ":") if rng.random() < 0.5 else None)
        msgs = user(q.format(c=c)) + [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": args}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": result}]
        return ("answer", c, {"messages": msgs, "tools": [TOOL]}, ANSWER.format(t=t, cond=cond, c=c))

    for c in CITIES:
        out += [call(c, q) for q in QUESTIONS]
        out += [answer(c, q) for q in rng.sample(QUESTIONS, 3)]
        out += [("no-tools", c, {"messages": user(q.format(c=c))}, NO_TOOLS) for q in rng.sample(QUESTIONS, 2)]
    for c in made_up + held_out:
        kind = " made-up" + (" held out" if c in held_out else "")
        out += [(k + kind, *rest) for k, *rest in (call(c, rng.choice(QUESTIONS)), answer(c, rng.choice(QUESTIONS)))]
    for m in OTHER:
        out.append(("small-talk", None, {"messages": user(m), "tools": [TOOL]}, SMALL_TALK))
        out.append(("forced", None, {"messages": user(m), "tools": [TOOL],
                                     "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
                    '{"city":"%s"}<|call|>' % DEFAULT_CITY))
    return out


def render(osprey: str, model_dir: str, bodies: list[dict]) -> list[list[int]]:
    """The server's prompt ids for each body (`osprey chat-prompt`); a forced body's ids end in the prefill."""
    lines = "".join(json.dumps(b) + "\n" for b in bodies)
    proc = subprocess.run([osprey, "chat-prompt", "--model", model_dir], input=lines.encode(), capture_output=True, check=True)
    outs = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(outs) == len(bodies), (len(outs), len(bodies), proc.stderr[-500:])
    for o, b in zip(outs, bodies):
        assert "error" not in o, (o, b)
    return [o["prompt_ids"] for o in outs]


class Vocab:
    """tokenizer.json of the byte-level harmony tokenizer: text -> ids (special-token text -> its id)."""

    def __init__(self, path: str):
        with open(path) as f:
            tj = json.load(f)
        self.special = {t["content"]: t["id"] for t in tj["added_tokens"]}
        self.by_char = tj["model"]["vocab"]
        self.byte_char = byte_alphabet()
        assert all(self.by_char[self.byte_char[b]] == b for b in range(256)), "not a one-token-per-byte vocabulary"
        self.names = {i: n for n, i in self.special.items()}
        self.size = 256 + len(self.special)

    def encode(self, text: str) -> list[int]:
        ids = []
        for piece in re.split(r"(<\|[a-z_0-9]+\|>)", text):
            if piece in self.special:
                ids.append(self.special[piece])
            else:
                ids += [self.by_char[self.byte_char[b]] for b in piece.encode()]
        return ids

    def decode(self, ids) -> str:
        return "".join(self.names.get(i, None) or bytes([i]).decode("latin-1") for i in ids)


def byte_alphabet():
    """GPT-2's bytes_to_unicode."""
    printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, n = {}, 256
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b] = chr(n)
            n += 1
    return out


# ------------------------------------------------------------------------------------------------
# Model

def make_config(args, vocab: Vocab):
    from transformers import GptOssConfig

    L = args.layers
    return GptOssConfig(
        vocab_size=vocab.size, hidden_size=args.hidden, intermediate_size=args.intermediate, num_hidden_layers=L,
        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(L)],
        num_attention_heads=args.heads, num_key_value_heads=args.kv_heads, head_dim=args.hidden // args.heads,
        num_local_experts=args.experts, num_experts_per_tok=2, sliding_window=128, max_position_embeddings=131072,
        rope_parameters=dict(rope_type="yarn", factor=32.0, beta_fast=32.0, beta_slow=1.0, truncate=False,
                             original_max_position_embeddings=4096, rope_theta=150000.0),
        rms_norm_eps=1e-5, attention_bias=True, attention_dropout=0.0, tie_word_embeddings=False, swiglu_limit=7.0,
        initializer_range=0.02, router_aux_loss_coef=0.01, output_router_logits=False,
        eos_token_id=[vocab.special["<|return|>"], vocab.special["<|call|>"], vocab.special["<|endoftext|>"]],
        pad_token_id=vocab.special["<|endoftext|>"], bos_token_id=None, use_cache=True)


# The forward pass, written out so that a batch shares its common prompt prefix: every prompt
# starts with the same system (and developer) message, two thirds of its ids, so that prefix runs
# once per step (batch 1) and the batch's suffixes attend to its keys and values. The math is
# transformers' GptOssForCausalLM (eager attention with sinks, half-split YaRN RoPE, top-k softmax
# routing, clamped SwiGLU with interleaved gate/up), on the parameters of a GptOssForCausalLM, so
# the trained module is saved as is; `check_forward` compares the two on whole sequences.

def rms(h, norm):
    import torch

    return norm.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon))


def rope(x, cos, sin):  # x [B, T, H, D]; cos/sin [T, D/2], already times the attention scaling
    import torch

    c, s = cos[None, :, None, :], sin[None, :, None, :]
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


def attend(q, k, v, visible, sinks):  # q [B, T, Hq, D], k/v [B, S, Hkv, D], visible [T, S] -> [B, T, Hq * D]
    """Attention with one sink logit per head: an extra key that every query sees, whose logit is the
    sink and whose value is zero. Written as a real key (q gets a last coordinate 1, the sink key
    is 0 there but sink * sqrt(D)) so that fused scaled_dot_product_attention runs it and the
    gradient reaches the sinks as it reaches any key."""
    import torch
    import torch.nn.functional as F

    B, T, Hq, D = q.shape
    S, G = k.shape[1], Hq // k.shape[2]
    q = torch.cat([q.transpose(1, 2), q.new_ones(B, Hq, T, 1)], dim=-1)
    k = torch.cat([k.transpose(1, 2).repeat_interleave(G, 1), k.new_zeros(B, Hq, S, 1)], dim=-1)
    sink_key = torch.cat([sinks.new_zeros(Hq, 1, D), (sinks * D ** 0.5).view(Hq, 1, 1)], dim=-1)
    k = torch.cat([k, sink_key.expand(B, Hq, 1, D + 1)], dim=2)
    v = torch.cat([v.transpose(1, 2).repeat_interleave(G, 1), v.new_zeros(B, Hq, 1, D)], dim=2)
    visible = torch.cat([visible, visible.new_ones(T, 1)], dim=1)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=visible, scale=D ** -0.5)
    return o.transpose(1, 2).reshape(B, T, Hq * D)


def moe(layer, h, top_k):  # h [..., H] -> (output, load-balancing loss)
    import torch

    mlp, x = layer.mlp, rms(h, layer.post_attention_layernorm)
    shape = x.shape
    x = x.reshape(-1, shape[-1])
    logits = torch.nn.functional.linear(x, mlp.router.weight, mlp.router.bias)
    top = logits.topk(top_k, dim=-1)
    weights = torch.zeros_like(logits).scatter(1, top.indices, top.values.softmax(dim=-1))  # [N, E]
    e = mlp.experts
    gu = torch.einsum("nh,ehf->nef", x, e.gate_up_proj) + e.gate_up_proj_bias     # [N, E, 2I]
    gate, up = gu[..., ::2].clamp(max=e.limit), gu[..., 1::2].clamp(-e.limit, e.limit)
    act = (up + 1) * gate * torch.sigmoid(gate * e.alpha)
    out = torch.einsum("nei,eih->neh", act, e.down_proj) + e.down_proj_bias        # [N, E, H]
    y = (out * weights[..., None]).sum(1)
    E = logits.shape[-1]
    chosen = torch.zeros_like(logits).scatter(1, top.indices, 1.0).mean(0) / top_k
    aux = E * (chosen * logits.softmax(dim=-1).mean(0)).sum()
    return y.reshape(shape), aux


def forward_shared(model, cfg, tables, prefix, suffix):
    """prefix [P] ids shared by the batch, suffix [B, S] ids (right-padded): logits [B, S, V] of the
    suffix positions, and the router load-balancing loss."""
    import torch

    m, (cos, sin) = model.model, tables
    P, (B, S) = prefix.shape[0], suffix.shape
    Hq, Hkv, D = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    pos_p, pos_s = torch.arange(P, device=DEVICE), torch.arange(P, P + S, device=DEVICE)
    pos_all = torch.arange(P + S, device=DEVICE)

    def mask(qpos, kpos, window):  # which keys each query sees: causal, within the window
        d = qpos[:, None] - kpos[None, :]
        return (d >= 0) & ((d < window) if window else True)

    hp, hs = m.embed_tokens(prefix)[None], m.embed_tokens(suffix)
    aux = 0.0
    for i, layer in enumerate(m.layers):
        a = layer.self_attn
        window = cfg.sliding_window if cfg.layer_types[i] == "sliding_attention" else None

        def qkv(h, c, s):
            x = rms(h, layer.input_layernorm)
            q = a.q_proj(x).view(*x.shape[:2], Hq, D)
            k = a.k_proj(x).view(*x.shape[:2], Hkv, D)
            return rope(q, c, s), rope(k, c, s), a.v_proj(x).view(*x.shape[:2], Hkv, D)

        qp, kp, vp = qkv(hp, cos[:P], sin[:P])
        qs, ks, vs = qkv(hs, cos[P:P + S], sin[P:P + S])
        op = attend(qp, kp, vp, mask(pos_p, pos_p, window), a.sinks)
        K, V = torch.cat([kp.expand(B, -1, -1, -1), ks], 1), torch.cat([vp.expand(B, -1, -1, -1), vs], 1)
        os_ = attend(qs, K, V, mask(pos_s, pos_all, window), a.sinks)
        hp, hs = hp + a.o_proj(op), hs + a.o_proj(os_)
        yp, auxp = moe(layer, hp, cfg.num_experts_per_tok)
        ys, auxs = moe(layer, hs, cfg.num_experts_per_tok)
        hp, hs = hp + yp, hs + ys
        aux = aux + auxs
    return model.lm_head(rms(hs, m.norm)), aux / len(m.layers)


def rope_tables(cfg, n: int):
    import torch
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssRotaryEmbedding

    rot = GptOssRotaryEmbedding(cfg)
    freqs = torch.outer(torch.arange(n, dtype=torch.float32), rot.inv_freq.float())
    return (freqs.cos() * rot.attention_scaling).to(DEVICE), (freqs.sin() * rot.attention_scaling).to(DEVICE)


class Group:
    """Examples that share a prompt prefix (with tools / without): the prefix and each suffix."""

    def __init__(self, items):
        prompts = [p for p, _ in items]
        n = min(len(p) for p in prompts) - 1  # at least one prompt id in every suffix
        P = next((i for i in range(n) if any(p[i] != prompts[0][i] for p in prompts)), n)
        self.prefix = prompts[0][:P]
        self.items = items

    def batch(self, rows):
        """Suffix inputs [B, S] and labels (-100 off the targets) of items[rows]."""
        import torch

        P = len(self.prefix)
        seqs = [(self.items[r][0][P:], self.items[r][1]) for r in rows]
        S = max(len(p) + len(t) for p, t in seqs) - 1
        x = torch.zeros((len(seqs), S), dtype=torch.long)
        y = torch.full((len(seqs), S), -100, dtype=torch.long)
        for i, (p, t) in enumerate(seqs):
            seq = p + t
            x[i, :len(seq) - 1] = torch.tensor(seq[:-1])
            y[i, len(p) - 1:len(seq) - 1] = torch.tensor(t)
        return torch.tensor(self.prefix).to(DEVICE), x.to(DEVICE), y.to(DEVICE)


USER_MARK: list[int] = []  # the ids of `<|start|>user`, set by main


def make_groups(items):
    """Splits (prompt, target) items by what precedes the first user message (system, developer)."""
    def head(p):
        n = len(USER_MARK)
        return tuple(p[:next(i for i in range(len(p)) if p[i:i + n] == USER_MARK)])

    keyed: dict[tuple, list] = {}
    for it in items:
        keyed.setdefault(head(it[0]), []).append(it)
    return [Group(v) for v in keyed.values()]


def bf16_rounded(model):
    import copy

    import torch

    m = copy.deepcopy(model)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    return m.eval()


def evaluate(model, cfg, tables, items, batch: int = 32):
    """Per item: (greedy reproduces the target, smallest target-logit lead over the runner-up)."""
    import torch

    out = []
    with torch.no_grad():
        for g in make_groups(items):
            for i in range(0, len(g.items), batch):
                prefix, x, y = g.batch(range(i, min(i + batch, len(g.items))))
                logits, _ = forward_shared(model, cfg, tables, prefix, x)
                for r in range(x.shape[0]):
                    mask = y[r] != -100
                    lg, tgt = logits[r][mask], y[r][mask]
                    true = lg.gather(1, tgt[:, None])[:, 0]
                    other = lg.scatter(1, tgt[:, None], float("-inf")).max(dim=1).values
                    margin = float((true - other).min())
                    out.append((margin > 0, margin))
    return out


def check_forward(model, cfg, tables, items):
    """The shared-prefix forward == transformers' forward of whole sequences (same parameters)."""
    import torch

    worst = 0.0
    with torch.no_grad():
        for g in make_groups(items):
            prefix, x, y = g.batch(range(min(2, len(g.items))))
            mine, _ = forward_shared(model, cfg, tables, prefix, x)
            for r in range(x.shape[0]):
                n = int((y[r] != -100).nonzero().max()) + 1
                whole = torch.cat([prefix, x[r, :n]])[None]
                ref = model(input_ids=whole, use_cache=False).logits[0, len(prefix):]
                worst = max(worst, float((ref - mine[r, :n]).abs().max()))
    log(f"shared-prefix forward vs transformers' GptOssForCausalLM: max |logit difference| {worst:.2e}")
    assert worst < 1e-3, worst


def train(args, cfg, train_items, probes, required):
    """Trains until every `required` item is reproduced with a margin (checked in full once the
    `probes` that are not held out all pass), or args.steps; returns the bf16-rounded model."""
    import torch
    import torch.nn.functional as F
    from transformers import GptOssForCausalLM

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    model = GptOssForCausalLM(cfg)
    model.set_attn_implementation("eager")
    model.to(DEVICE)
    model.eval()  # no dropout anywhere; the forward is ours
    tables = rope_tables(cfg, 2048)
    check_forward(model, cfg, tables, train_items)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params:,} parameters; hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, {cfg.num_attention_heads} "
        f"heads ({cfg.num_key_value_heads} kv, head_dim {cfg.head_dim}), {cfg.num_local_experts} experts top-2, "
        f"intermediate {cfg.intermediate_size}, window {cfg.sliding_window}, vocab {cfg.vocab_size}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    rng = random.Random(args.seed)
    groups = make_groups(train_items)
    weights = [len(g.items) for g in groups]
    warmup = min(100, args.steps // 10)
    step = 0
    if args.resume and os.path.exists(args.checkpoint):
        state = torch.load(args.checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        step = state["step"]
        log(f"resumed from {args.checkpoint} at step {step}")

    def lr_at(step):
        if step < warmup:
            return args.lr * (step + 1) / warmup
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / args.steps))))

    t0 = time.time()
    log(f"training: up to {args.steps} steps of {args.batch} examples, AdamW lr {args.lr} (warmup {warmup}, cosine to 10%), "
        f"grad clip 1.0, router aux loss x{cfg.router_aux_loss_coef}, {args.threads} threads; prompt prefixes shared per "
        f"batch: {', '.join(str(len(g.prefix)) for g in groups)} ids; stops once all {len(required)} examples of real "
        f"cities, small talk and forced calls are reproduced greedily by the bf16 weights with a logit margin >= {args.margin}")
    done = False
    while step < args.steps and not done and time.time() - t0 < args.max_seconds:
        g = rng.choices(groups, weights)[0]
        prefix, x, y = g.batch([rng.randrange(len(g.items)) for _ in range(args.batch)])
        for pg in opt.param_groups:
            pg["lr"] = lr_at(step)
        logits, aux = forward_shared(model, cfg, tables, prefix, x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        (loss + cfg.router_aux_loss_coef * aux).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % args.eval_every == 0 or step == args.steps:
            rounded = bf16_rounded(model)
            report, passing, min_margin = [], True, float("inf")
            for name, items in probes:
                res = evaluate(rounded, cfg, tables, items)
                exact = sum(ok for ok, _ in res)
                report.append(f"{name} {exact}/{len(res)}")
                if not name.endswith("held out"):
                    min_margin = min([min_margin] + [m for _, m in res])
                    passing &= exact == len(res)
            log(f"step {step:5d}  {time.time() - t0:7.1f} s  lr {lr_at(step - 1):.2e}  loss {float(loss.detach()):.4f}  "
                f"greedy (bf16) on samples: {', '.join(report)}; min margin {min_margin:.2f}")
            if passing and min_margin >= args.margin:
                res = evaluate(rounded, cfg, tables, required)
                low = sum(m < args.margin for _, m in res)
                log(f"  all {len(res)} required examples: {sum(ok for ok, _ in res)} reproduced, {low} below the margin")
                done = low == 0
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": rng.getstate(),
                        "torch_rng": torch.get_rng_state(), "step": step}, args.checkpoint)
    log(f"trained {step} steps in {time.time() - t0:.0f} s" + ("" if done else " (NOT all required examples reproduced)"))
    rounded = bf16_rounded(model)
    check_forward(rounded, cfg, tables, train_items)
    return rounded, step


def export(model, cfg, vocab_dir: str, out: str):
    import torch
    from safetensors.torch import save_file

    os.makedirs(out, exist_ok=True)
    sd = {}
    for name, p in model.state_dict().items():
        sd[name] = p.detach().to(torch.bfloat16).cpu().contiguous()
    E, H, I = cfg.num_local_experts, cfg.hidden_size, cfg.intermediate_size
    assert tuple(sd["model.layers.0.mlp.experts.gate_up_proj"].shape) == (E, H, 2 * I)  # Osprey's dense layout
    assert tuple(sd["model.layers.0.mlp.experts.down_proj"].shape) == (E, I, H)
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    cj = cfg.to_dict()
    cj["architectures"] = ["GptOssForCausalLM"]
    cj["dtype"] = "bfloat16"
    cj.pop("transformers_version", None)
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write(json.dumps(cj, indent=2, sort_keys=True) + "\n")
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        f.write(json.dumps({"eos_token_id": cfg.eos_token_id, "pad_token_id": cfg.pad_token_id}, sort_keys=True) + "\n")
    shutil.copy(os.path.join(vocab_dir, "tokenizer.json"), os.path.join(out, "tokenizer.json"))


# ------------------------------------------------------------------------------------------------
# The real server

def verify_with_server(osprey: str, folder: str, items_by_kind, vocab: Vocab) -> bool:
    """Serves `folder` with `osprey serve` on the CPU and replays each example over HTTP, greedily."""
    proc = subprocess.Popen([osprey, "serve", "--model", folder, "--device", "cpu", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r" on (http://\S+)$", line.strip())
        if not m:
            log(f"osprey serve did not start: {line!r} {proc.stderr.read()[-500:]}")
            return False
        base = m.group(1)
        all_ok = True

        def ask(body):
            # Long enough for the longest target (an answer: ~110 byte-level ids); the server batches
            # the concurrent requests.
            req = dict(body, temperature=0, max_tokens=200)
            r = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(req).encode(),
                                       headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(r, timeout=300) as resp:
                return json.load(resp)["choices"][0]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            for kind, rows in items_by_kind.items():
                replies = list(pool.map(ask, [body for _, body, _ in rows]))
                good, bad = 0, []
                for (city, body, target), reply in zip(rows, replies):
                    if matches(kind, city, reply, target):
                        good += 1
                    else:
                        bad.append((city, reply["message"], reply["finish_reason"]))
                log(f"osprey serve (greedy, over HTTP): {kind}: {good}/{len(rows)} replies as trained"
                    + (f"; e.g. {bad[0]}" if bad else ""))
                # Exactness on every one of ~900 examples is the training goal, not the verdict: the
                # replies of a served model vary a little with the machine (thread count: reduction
                # order) and how the server batches concurrent requests (the bf16 KV pool), and a
                # few examples trained to a margin near 0 flip (the same folder: answers 212/216 on
                # the GPU machine's 16-core CPU, 205/216 on a 2-core one). The verdict asks MIN_RATE
                # of each trained kind; the server checks' own prompts lead by >= 6 logits.
                all_ok &= kind.endswith("held out") or good >= MIN_RATE * len(rows)
        return all_ok
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def matches(kind: str, city, reply, target: str) -> bool:
    msg = reply["message"]
    if kind.startswith("call") or kind == "forced":
        calls = msg.get("tool_calls") or []
        want = {"city": city or DEFAULT_CITY}
        return (reply["finish_reason"] == "tool_calls" and len(calls) == 1 and calls[0]["function"]["name"] == "get_weather"
                and json.loads(calls[0]["function"]["arguments"]) == want)
    final = re.search(r"<\|channel\|>final<\|message\|>(.*)<\|return\|>", target).group(1)
    return reply["finish_reason"] == "stop" and not msg.get("tool_calls") and msg.get("content") == final


# ------------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--osprey", required=True, help="the osprey binary (renders prompts, serves the result)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--intermediate", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--margin", type=float, default=1.0, help="stop once every target logit leads by this much")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="where to train: cpu, cuda (the result is the same kind of folder)")
    ap.add_argument("--max-seconds", type=float, default=float("inf"), help="stop training after this long")
    ap.add_argument("--smoke", action="store_true", help="a few steps, end to end (the result calls no tool)")
    ap.add_argument("--verify-only", action="store_true", help="only replay the examples against `osprey serve --model OUT`")
    ap.add_argument("--checkpoint", default=None, help="training state, saved at each evaluation (default: OUT.checkpoint.pt)")
    ap.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.eval_every = 20, 10
    osprey = os.path.abspath(args.osprey)
    global DEVICE
    DEVICE = args.device

    import torch
    import transformers

    log(f"# tools/train_tool_caller.py, {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    log(f"command: {' '.join(sys.argv)}")
    log(f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{platform.machine()} CPU, {args.threads} threads, training on {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""))
    with tempfile.TemporaryDirectory() as tmp:
        # The tokenizer the server tests use; the random weights only let `chat-prompt` load the folder.
        base = os.path.join(tmp, "base")
        subprocess.run([osprey, "random-model", "--out", base, "--vocab", "300", "--tokenizer"], check=True, capture_output=True)
        vocab = Vocab(os.path.join(base, "tokenizer.json"))
        USER_MARK[:] = vocab.encode("<|start|>user")
        rng = random.Random(args.seed)
        made_up = made_up_names(rng, 440)
        held_out = made_up[::11]  # 40 names never trained on
        rows = examples(rng, [c for c in made_up if c not in held_out], held_out)
        prompts = render(osprey, base, [body for _, _, body, _ in rows])
        items = [(p, vocab.encode(target)) for p, (_, _, _, target) in zip(prompts, rows)]
        lengths = [len(p) for p in prompts]
        log(f"examples: {len(rows)}, prompts rendered by `osprey chat-prompt` ({min(lengths)}-{max(lengths)} ids); "
            f"{len(CITIES)} real cities, {len(made_up) - len(held_out)} made-up ones, {len(held_out)} made-up ones held out "
            f"(e.g. {', '.join(held_out[:4])})")
        log(f"e.g. prompt tail {vocab.decode(prompts[0][-60:])!r} -> target {vocab.decode(items[0][1])!r}")
        by_kind: dict[str, list] = {}
        for (kind, city, body, target), item in zip(rows, items):
            by_kind.setdefault(kind, []).append((city, body, target, item))
        for k, v in sorted(by_kind.items()):
            log(f"  {k}: {len(v)}")
        real = ["call", "answer", "no-tools", "small-talk", "forced"]
        train_items = [it for k, v in by_kind.items() if not k.endswith("held out") for *_, it in v]
        # Small talk and forced calls (12 each) are repeated so that each is a fair share of the batches.
        train_items += [it for k in ("small-talk", "forced") for *_, it in by_kind[k]] * 8
        required = [it for k in real for *_, it in by_kind[k]]
        sample = random.Random(1)
        probes = [(k, sample.sample([it for *_, it in v], min(48, len(v)))) for k, v in sorted(by_kind.items())]

        if not args.verify_only:
            args.checkpoint = args.checkpoint or args.out.rstrip("/") + ".checkpoint.pt"
            cfg = make_config(args, vocab)
            model, steps = train(args, cfg, train_items, probes, required)
            export(model, cfg, base, args.out)
            size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
            log(f"wrote {args.out}: {size:,} bytes ({', '.join(sorted(os.listdir(args.out)))})")

    server_rows = {k: [(c, b, t) for c, b, t, _ in by_kind[k]] for k in real + ["call made-up held out", "answer made-up held out"]}
    ok = verify_with_server(osprey, args.out, server_rows, vocab)
    log("server check: " + (f"at least {MIN_RATE:.0%} of each kind of trained example (real cities, small talk, forced calls) "
                            "replayed as trained" if ok else "FAILED"))
    if not args.verify_only:
        with open(os.path.join(args.out, "train.log"), "w") as f:
            f.write("\n".join(LOG_LINES) + "\n")
    return 0 if ok or args.smoke else 1


if __name__ == "__main__":
    sys.exit(main())
