#!/usr/bin/env python3
"""A bounded load test of a running `osprey serve` on loopback: many concurrent streaming clients,
some of which hang up mid-stream, then checks that the server is clean afterwards.

Usage: tools/server_load_test.py BASE_URL [--clients 64] [--duration 60] [--disconnect-fraction 0.25]
                                 [--max-tokens 16] [--api-key KEY] [--endpoint completions|chat]
                                 [--json-out FILE] [--require-kv-check]

--clients takes a comma-separated list (1,8,64) to measure latency against the client count: each
level runs for --duration seconds, one after the other. Every client loops until its level's time
is up, sending one streaming request at a time with `stream_options.include_usage`:

  - completions (default): a random prompt of 4..24 token ids below 256 (bytes of a byte-level
    vocabulary), temperature 1 with a random seed; chat: a random short user message.
  - with probability --disconnect-fraction the client closes the connection after the first 1..3
    events (a "cancelled" request; the server must cancel it and free its KV blocks).

What is checked, and why it is exact:
  - no response with a 5xx status and no transport error on a request the client did not cancel
    (429s are counted and retried after a pause: not a failure — the admission bound is working);
  - every completed stream is framed `data: <json>\\n\\n` ... `data: [DONE]\\n\\n`, has one
    finish_reason and a usage chunk;
  - token counts: the count is `usage.completion_tokens` of the final chunk (text chunks are not
    tokens: the detokenizer holds back partial UTF-8 and special tokens produce no text).
    finish_reason "length" must have exactly max_tokens tokens; "stop" (the model sampled EOS or a
    stop token) must have 1..max_tokens; the number of text chunks may not exceed the token count.
    A random model samples EOS now and then, so "stop" is allowed but counted in the summary.
  - afterwards, once the server is idle, every KV block is free: read from GET /metrics (Prometheus
    text or JSON: a free-blocks and a total-blocks value) or GET /health (JSON). If the server
    exposes neither, the check is reported as "unavailable" (a failure only with
    --require-kv-check).
  - the server still answers /health at the end.

TTFT is measured from sending the request to the first event with text (or any delta); ITL is the
gap between successive text events (a text event can carry several tokens, so this is inter-chunk
latency, an upper bound of inter-token latency). Prints a JSON summary (also to --json-out) and
exits 1 on any failure. A hard timeout (duration x levels + 120 s) bounds the whole run.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import sys
import time

try:
    import httpx
except ImportError:  # pragma: no cover
    sys.exit("error: install httpx first: python3 -m pip install httpx")


def pct(values, q):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return round(s[k] * 1000, 2)  # milliseconds


class Level:
    """What one client-count level saw."""

    def __init__(self, clients):
        self.clients = clients
        self.sent = 0
        self.completed = 0
        self.cancelled = 0
        self.status = {}
        self.finish = {}
        self.tokens = 0
        self.ttft = []
        self.itl = []
        self.failures = []
        self.rate_limited = 0
        self.elapsed = 0.0

    def fail(self, msg):
        if len(self.failures) < 50:
            self.failures.append(msg)
        elif len(self.failures) == 50:
            self.failures.append("... (more failures not listed)")


async def one_request(client, args, model, lvl: Level, rng: random.Random, deadline: float):
    disconnect = rng.random() < args.disconnect_fraction
    cut_after = rng.randint(1, 3)
    if args.endpoint == "completions":
        path = "/v1/completions"
        body = {"model": model, "prompt": [rng.randrange(32, 127) for _ in range(rng.randint(4, 24))],
                "max_tokens": args.max_tokens, "temperature": 1.0, "seed": rng.randrange(1 << 31),
                "stream": True, "stream_options": {"include_usage": True}}
    else:
        path = "/v1/chat/completions"
        words = ["hello", "tell", "me", "about", "the", "sea", "why", "is", "sky", "blue", "count", "to", "ten"]
        body = {"model": model, "messages": [{"role": "user", "content": " ".join(rng.choices(words, k=rng.randint(2, 8)))}],
                "max_tokens": args.max_tokens, "temperature": 1.0, "seed": rng.randrange(1 << 31),
                "stream": True, "stream_options": {"include_usage": True}}
    lvl.sent += 1
    t0 = time.monotonic()
    events = 0
    try:
        async with client.stream("POST", path, json=body) as resp:
            lvl.status[resp.status_code] = lvl.status.get(resp.status_code, 0) + 1
            if resp.status_code != 200:
                text = (await resp.aread())[:300]
                if resp.status_code == 429:
                    lvl.rate_limited += 1
                    await asyncio.sleep(0.05 + rng.random() * 0.1)
                elif resp.status_code >= 500:
                    lvl.fail(f"HTTP {resp.status_code} on {path}: {text!r}")
                else:
                    lvl.fail(f"HTTP {resp.status_code} on {path}: {text!r}")
                return
            buf = ""
            done = False
            finishes, usage, text_events, last_text_t, first_t = [], None, 0, None, None
            async for piece in resp.aiter_text():
                buf += piece
                while "\n\n" in buf:
                    ev, buf = buf.split("\n\n", 1)
                    events += 1
                    if not ev.startswith("data: ") or "\n" in ev:
                        lvl.fail(f"bad SSE event {ev[:100]!r}")
                        return
                    data = ev[6:]
                    if data == "[DONE]":
                        done = True
                        continue
                    if done:
                        lvl.fail("event after [DONE]")
                        return
                    obj = json.loads(data)
                    if "error" in obj:
                        lvl.fail(f"error event in the stream: {obj['error']}")
                        return
                    if obj.get("usage"):
                        usage = obj["usage"]
                    for ch in obj.get("choices") or []:
                        piece_text = ch.get("text") if args.endpoint == "completions" else (
                            (ch.get("delta") or {}).get("content") or (ch.get("delta") or {}).get("reasoning_content")
                            or ((ch.get("delta") or {}).get("tool_calls") and "<tool>"))
                        now = time.monotonic()
                        if piece_text:
                            text_events += 1
                            if first_t is None:
                                first_t = now
                                lvl.ttft.append(now - t0)
                            elif last_text_t is not None:
                                lvl.itl.append(now - last_text_t)
                            last_text_t = now
                        if ch.get("finish_reason") is not None:
                            finishes.append(ch["finish_reason"])
                    if disconnect and events >= cut_after:
                        lvl.cancelled += 1
                        return  # leaving the `async with` closes the connection mid-stream
            if disconnect and not done:
                pass
            if buf.strip():
                lvl.fail(f"trailing bytes after the last event: {buf[:100]!r}")
            if not done:
                lvl.fail(f"stream ended without [DONE] after {events} events")
                return
            if len(finishes) != 1:
                lvl.fail(f"{len(finishes)} finish_reason values: {finishes}")
                return
            if usage is None:
                lvl.fail("no usage chunk")
                return
            n, finish = usage.get("completion_tokens"), finishes[0]
            lvl.finish[finish] = lvl.finish.get(finish, 0) + 1
            if finish == "length" and n != args.max_tokens:
                lvl.fail(f"finish_reason length with {n} tokens, max_tokens {args.max_tokens}")
            elif finish == "stop" and not (1 <= n <= args.max_tokens):
                lvl.fail(f"finish_reason stop with {n} tokens (max_tokens {args.max_tokens})")
            elif finish not in ("length", "stop", "tool_calls"):
                lvl.fail(f"finish_reason {finish!r}")
            if text_events > n:
                lvl.fail(f"{text_events} text events but only {n} tokens")
            if usage.get("total_tokens") != usage.get("prompt_tokens", 0) + n:
                lvl.fail(f"usage does not add up: {usage}")
            if args.endpoint == "completions" and usage.get("prompt_tokens") != len(body["prompt"]):
                lvl.fail(f"prompt_tokens {usage.get('prompt_tokens')} for {len(body['prompt'])} prompt ids")
            lvl.completed += 1
            lvl.tokens += n
    except (httpx.TransportError, httpx.StreamError) as e:
        if time.monotonic() > deadline + args.request_timeout:
            lvl.fail(f"request still running {args.request_timeout}s after the level ended: {type(e).__name__}")
        else:
            lvl.fail(f"transport error on a request not cancelled ({events} events in): {type(e).__name__}: {e}")
    except json.JSONDecodeError as e:
        lvl.fail(f"an event is not JSON: {e}")


async def run_level(args, model, clients, headers) -> Level:
    lvl = Level(clients)
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)
    timeout = httpx.Timeout(args.request_timeout, connect=10.0)
    async with httpx.AsyncClient(base_url=args.base, headers=headers, limits=limits, timeout=timeout) as client:
        start = time.monotonic()
        deadline = start + args.duration

        async def worker(i):
            rng = random.Random(args.seed * 1000003 + clients * 1009 + i)
            while time.monotonic() < deadline:
                await one_request(client, args, model, lvl, rng, deadline)

        await asyncio.gather(*(worker(i) for i in range(clients)))
        lvl.elapsed = time.monotonic() - start
    return lvl


def find_number(obj, patterns):
    """The first number in nested JSON whose key path matches one of the regexes."""
    stack = [("", obj)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, dict):
            stack.extend((f"{path}.{k}".lower(), x) for k, x in v.items())
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            if any(re.search(p, path) for p in patterns):
                return v
    return None


FREE = [r"free_?blocks", r"kv.*free", r"blocks?_free", r"free.*kv"]
TOTAL = [r"total_?blocks", r"kv.*total", r"blocks?_total", r"num_?blocks"]
RUNNING = [r"running", r"in_?flight", r"active"]


async def kv_state(client):
    """(free, total, running, where) from /metrics or /health, or None if neither exposes KV blocks."""
    for path in ("/metrics", "/health"):
        try:
            r = await client.get(path)
        except httpx.HTTPError:
            continue
        if r.status_code != 200:
            continue
        try:
            obj = r.json()
        except ValueError:
            obj = {}
            for line in r.text.splitlines():  # Prometheus text: `name{labels} value`
                m = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eE]+|NaN)", line)
                if m and not line.startswith("#"):
                    try:
                        obj[m.group(1) + (m.group(2) or "")] = float(m.group(3))
                    except ValueError:
                        pass
        free, total = find_number(obj, FREE), find_number(obj, TOTAL)
        if free is not None and total is not None:
            return free, total, find_number(obj, RUNNING), path
    return None


async def kv_probe(args, headers, model):
    """Whether a request needing nearly the whole KV pool completes (None when no probe is asked for)."""
    if args.kv_probe_tokens <= 1:
        return None
    rng = random.Random(7)
    body = {"model": model, "prompt": [rng.randrange(32, 127) for _ in range(args.kv_probe_tokens - 1)],
            "max_tokens": 1, "temperature": 0}
    async with httpx.AsyncClient(base_url=args.base, headers=headers, timeout=args.idle_timeout + 60) as client:
        end = time.monotonic() + args.idle_timeout
        while True:
            try:
                r = await client.post("/v1/completions", json=body)
                if r.status_code == 200:
                    return "ok"
                if r.status_code != 429 or time.monotonic() > end:
                    return f"HTTP {r.status_code}: {r.text[:200]}"
            except httpx.HTTPError as e:
                return f"{type(e).__name__}: {e}"
            await asyncio.sleep(0.5)


async def after_checks(args, headers, failures, summary):
    async with httpx.AsyncClient(base_url=args.base, headers=headers, timeout=10.0) as client:
        try:
            h = await client.get("/health")
            if h.status_code != 200:
                failures.append(f"GET /health after the load -> {h.status_code}")
        except httpx.HTTPError as e:
            failures.append(f"GET /health after the load failed: {e}")
        state = await kv_state(client)
        if state is None and summary.get("kv_probe_before") == "ok":
            after = await kv_probe(args, headers, summary["model"])
            summary["kv_probe_after"] = after
            if after == "ok":
                summary["kv_check"] = (f"pass (indirect): a request of {args.kv_probe_tokens} positions, nearly the whole "
                                       "KV pool, still completes after the load; the server exposes no KV block counts")
            else:
                summary["kv_check"] = (f"FAIL (indirect): a request of {args.kv_probe_tokens} positions completed before the "
                                       f"load but not after it ({after}): KV blocks leaked")
                failures.append(summary["kv_check"])
            return
        if state is None:
            summary["kv_check"] = ("unavailable: neither GET /metrics nor GET /health exposes free and total KV blocks "
                                   "(needed: e.g. /metrics with osprey_kv_blocks_free and osprey_kv_blocks_total)")
            print(f"WARN {summary['kv_check']}", file=sys.stderr, flush=True)
            if args.require_kv_check:
                failures.append(summary["kv_check"])
            return
        end = time.monotonic() + args.idle_timeout  # cancelled requests are freed at the next engine step
        while True:
            free, total, running, where = state
            if free == total and not running:
                summary["kv_check"] = f"pass: {int(free)}/{int(total)} KV blocks free ({where})"
                return
            if time.monotonic() > end:
                summary["kv_check"] = f"FAIL: {free}/{total} KV blocks free, running {running}, {args.idle_timeout}s after the load ({where})"
                failures.append(summary["kv_check"])
                return
            await asyncio.sleep(0.5)
            state = await kv_state(client) or state


async def main_async(args) -> int:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    async with httpx.AsyncClient(base_url=args.base, headers=headers, timeout=10.0) as c:
        r = await c.get("/v1/models")
        r.raise_for_status()
        model = r.json()["data"][0]["id"]
    summary = {"base_url": args.base, "endpoint": args.endpoint, "model": model, "max_tokens": args.max_tokens,
               "duration_s": args.duration, "disconnect_fraction": args.disconnect_fraction, "levels": []}
    failures = []
    summary["kv_probe_before"] = await kv_probe(args, headers, model)
    if summary["kv_probe_before"] not in (None, "ok"):
        print(f"WARN the KV probe fails before any load ({summary['kv_probe_before']}): it is not used",
              file=sys.stderr, flush=True)
    for clients in args.clients:
        lvl = await run_level(args, model, clients, headers)
        fives = sum(n for s, n in lvl.status.items() if s >= 500)
        row = {"clients": clients, "elapsed_s": round(lvl.elapsed, 2), "requests": lvl.sent, "completed": lvl.completed,
               "cancelled": lvl.cancelled, "rate_limited_429": lvl.rate_limited,
               "status": {str(k): v for k, v in sorted(lvl.status.items())}, "finish_reason": lvl.finish,
               "tokens": lvl.tokens, "tokens_per_s": round(lvl.tokens / lvl.elapsed, 1) if lvl.elapsed else None,
               "requests_per_s": round(lvl.completed / lvl.elapsed, 2) if lvl.elapsed else None,
               "ttft_ms": {"p50": pct(lvl.ttft, 50), "p90": pct(lvl.ttft, 90), "p99": pct(lvl.ttft, 99),
                           "mean": round(statistics.mean(lvl.ttft) * 1000, 2) if lvl.ttft else None},
               "itl_ms": {"p50": pct(lvl.itl, 50), "p90": pct(lvl.itl, 90), "p99": pct(lvl.itl, 99)},
               "server_errors_5xx": fives, "failures": lvl.failures}
        summary["levels"].append(row)
        print(f"clients {clients}: {lvl.completed} completed, {lvl.cancelled} cancelled, {lvl.rate_limited} x 429, "
              f"{row['tokens_per_s']} tok/s, TTFT p50 {row['ttft_ms']['p50']} ms p99 {row['ttft_ms']['p99']} ms, "
              f"ITL p50 {row['itl_ms']['p50']} ms p99 {row['itl_ms']['p99']} ms, {len(lvl.failures)} failures",
              file=sys.stderr, flush=True)
        failures += [f"clients {clients}: {f}" for f in lvl.failures]
        if lvl.completed == 0:
            failures.append(f"clients {clients}: no request completed")
    await after_checks(args, headers, failures, summary)
    summary["failures"] = failures
    summary["ok"] = not failures
    text = json.dumps(summary, indent=2)
    print(text, flush=True)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr, flush=True)
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base_url")
    ap.add_argument("--clients", default="64", help="concurrent clients, or a comma-separated list of levels")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per level")
    ap.add_argument("--disconnect-fraction", type=float, default=0.25)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--endpoint", choices=["completions", "chat"], default="completions")
    ap.add_argument("--request-timeout", type=float, default=60.0, help="seconds a request may take")
    ap.add_argument("--idle-timeout", type=float, default=15.0, help="seconds the KV pool gets to drain after the load")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--kv-probe-tokens", type=int, default=0,
                    help="positions of the indirect KV-leak probe (0: off); e.g. (num_blocks - 3) x block_size")
    ap.add_argument("--require-kv-check", action="store_true", help="fail when the server exposes no KV block counts")
    args = ap.parse_args()
    args.base = args.base_url.rstrip("/")
    if args.base.endswith("/v1"):
        args.base = args.base[:-3]
    args.clients = [int(x) for x in str(args.clients).split(",") if x.strip()]
    if not args.clients or min(args.clients) < 1 or not (0 <= args.disconnect_fraction <= 1) or args.max_tokens < 1:
        ap.error("--clients must be ≥ 1, --disconnect-fraction in [0, 1], --max-tokens ≥ 1")
    hard = args.duration * len(args.clients) + args.request_timeout + args.idle_timeout + 60

    def on_alarm(*_):
        print(f"FAIL hard timeout: the load test ran past {hard:.0f}s", file=sys.stderr, flush=True)
        os._exit(2)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(hard) + 1)
    try:
        return asyncio.run(asyncio.wait_for(main_async(args), timeout=hard))
    except (asyncio.TimeoutError, TimeoutError):
        print(f"FAIL hard timeout: the load test ran past {hard:.0f}s", file=sys.stderr, flush=True)
        return 2
    except httpx.HTTPError as e:
        print(f"FAIL could not reach the server: {e}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
