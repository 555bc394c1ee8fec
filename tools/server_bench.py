#!/usr/bin/env python3
"""Streaming throughput and latency of a running `osprey serve` at one concurrency level, measured
from the client, with the Python standard library only (the GPU machine has no httpx or openai).
scripts/server-bench drives it level after level and tools/render_server_bench.py draws the results.

    python3 tools/server_bench.py prepare MODEL_DIR VIEW_DIR
        VIEW_DIR gets MODEL_DIR's files as symbolic links plus a tokenizer.json in which every id
        decodes at once to visible ASCII (id 123 is " t123"), so that each generated token is one
        SSE event and the events' arrival times are the tokens'. (A random checkpoint's own
        tokenizer makes every id from 256 on a special token, which a completion skips: most tokens
        would send no event at all.) The view serves /v1/completions only: it has no chat format.
    python3 tools/server_bench.py run BASE_URL --concurrency N [--seconds 60] [--prompt-tokens 200]
        [--max-tokens 256] [--json-out FILE] [--api-key KEY] [--meta KEY=VALUE ...]
        N clients, each sending one streaming /v1/completions request after another (a prompt of
        --prompt-tokens random ids, temperature 1 with its own seed, stream_options.include_usage)
        until --seconds have passed; the requests then in flight run to their end (no hang-ups).
    python3 tools/server_bench.py selftest
        The SSE client and the statistics against a fake server on loopback with known token
        timings (a few seconds, no osprey needed).

What one level reports (JSON, also printed): per request the time to first token (request sent →
first token's event) and every inter-token gap (between consecutive token events), as p50/p90/p99
and mean in ms; output tok/s = tokens that arrived inside the window / window length; requests/s =
requests completed inside it; errors by kind (HTTP status, transport error, an error event, a stream
without [DONE], fewer events than usage.completion_tokens says — that would make the gaps wrong);
and the server's view over the same level, from GET /metrics before and after it: its TTFT and
inter-token histograms (count, mean, p50/p99 interpolated in the buckets), tokens, preemptions, and
the batch size and KV blocks in use sampled once a second. Clients run in several processes
(--procs, default one per 64 clients) so that the client's own parsing does not become the latency
it measures; time.monotonic() is one clock for all of them on Linux.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import http.client
import json
import os
import random
import re
import sys
import threading
import time
import urllib.parse


# --- prepare -----------------------------------------------------------------------------------

BYTE_SPACE = "\u0120"  # byte-level BPE's character for the byte 0x20 (GPT-2's bytes_to_unicode)


def prepare(model_dir: str, view_dir: str) -> None:
    """VIEW_DIR: MODEL_DIR's files linked, and a tokenizer whose every id decodes to ` t<id>`."""
    with open(os.path.join(model_dir, "config.json")) as f:
        vocab = int(json.load(f)["vocab_size"])
    os.makedirs(view_dir, exist_ok=True)
    for name in os.listdir(model_dir):
        if name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja") or name.endswith(".tiktoken"):
            continue
        dst = os.path.join(view_dir, name)
        if os.path.lexists(dst):
            os.remove(dst)
        os.symlink(os.path.abspath(os.path.join(model_dir, name)), dst)
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
        "pre_tokenizer": byte_level, "post_processor": None, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {f"{BYTE_SPACE}t{i}": i for i in range(vocab)}, "merges": []},
    }
    with open(os.path.join(view_dir, "tokenizer.json"), "w") as f:
        json.dump(tokenizer, f)
    print(f"prepared {view_dir}: {vocab} ids, each decoding to ' t<id>'", file=sys.stderr)


# --- one streaming request ---------------------------------------------------------------------

class Result:
    """What one client process saw."""

    def __init__(self):
        self.ttft, self.itl, self.latency = [], [], []
        self.tokens_in_window = 0
        self.completed = self.completed_in_window = self.sent = 0
        self.tokens = self.events = 0
        self.errors = {}
        self.examples = []

    def error(self, kind, detail=""):
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.examples) < 5 and detail:
            self.examples.append(f"{kind}: {detail}"[:300])

    def merge(self, other: "Result"):
        for k in ("ttft", "itl", "latency"):
            getattr(self, k).extend(getattr(other, k))
        for k in ("tokens_in_window", "completed", "completed_in_window", "sent", "tokens", "events"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        for k, n in other.errors.items():
            self.errors[k] = self.errors.get(k, 0) + n
        self.examples = (self.examples + other.examples)[:10]


class Connection:
    """One keep-alive HTTP/1.1 connection, read with asyncio streams (chunked bodies decoded here)."""

    def __init__(self, host, port, headers):
        self.host, self.port, self.headers = host, port, headers
        self.reader = self.writer = None

    async def close(self):
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    async def post(self, path, body: bytes):
        """Sends the request; returns (status, headers)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n{self.headers}\r\n")
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed before the status line")
        status = int(status_line.split()[1])
        headers = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers

    async def body(self, headers):
        """Yields (monotonic arrival time, bytes) for each piece of the body."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await self.reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                data = await self.reader.readexactly(size)
                now = time.monotonic()
                await self.reader.readexactly(2)
                yield now, data
        else:
            left = int(headers.get("content-length", "0"))
            while left > 0:
                data = await self.reader.read(min(left, 65536))
                if not data:
                    raise ConnectionError("connection closed inside the body")
                left -= len(data)
                yield time.monotonic(), data
        if headers.get("connection", "").lower() == "close":
            await self.close()


async def one_request(conn: Connection, args, rng: random.Random, res: Result, window):
    prompt = [rng.randrange(args.id_low, args.id_high) for _ in range(args.prompt_tokens)]
    body = json.dumps({"model": args.model, "prompt": prompt, "max_tokens": args.max_tokens, "temperature": 1.0,
                       "seed": rng.randrange(1 << 31), "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    start, end = window
    res.sent += 1
    sent = time.monotonic()
    try:
        status, headers = await conn.post("/v1/completions", body)
        if status != 200:
            text = b"".join([d async for _, d in conn.body(headers)])
            res.error(f"HTTP {status}", text[:200].decode(errors="replace"))
            if status == 429:
                await asyncio.sleep(0.05 + rng.random() * 0.1)
            return
        buf, times, usage, done = b"", [], None, False
        async for now, data in conn.body(headers):
            buf += data
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                if not event.startswith(b"data: "):
                    res.error("bad SSE event", event[:100].decode(errors="replace"))
                    continue
                payload = event[6:]
                if payload == b"[DONE]":
                    done = True
                    continue
                obj = json.loads(payload)
                if "error" in obj:
                    res.error("error event", json.dumps(obj["error"])[:200])
                    continue
                if obj.get("usage"):
                    usage = obj["usage"]
                for choice in obj.get("choices") or []:
                    if choice.get("text"):
                        times.append(now)
        if not done:
            res.error("no [DONE]")
            return
        n = (usage or {}).get("completion_tokens")
        if n is None:
            res.error("no usage chunk")
            return
        res.events += len(times)
        res.tokens += n
        if len(times) < n:
            res.error("fewer token events than tokens", f"{len(times)} events for {n} tokens")
        if times:
            res.ttft.append(times[0] - sent)
            res.itl.extend(b - a for a, b in zip(times, times[1:]))
            res.tokens_in_window += sum(1 for t in times if start <= t < end)
        done_at = time.monotonic()
        res.latency.append(done_at - sent)
        res.completed += 1
        if done_at < end:
            res.completed_in_window += 1
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
        res.error(f"transport: {type(e).__name__}", str(e))
        await conn.close()


async def run_clients(args, first_client, clients, window, deadline):
    res = Result()
    url = urllib.parse.urlsplit(args.base)
    headers = f"Authorization: Bearer {args.api_key}\r\n" if args.api_key else ""

    async def client(i):
        rng = random.Random(args.seed * 1_000_003 + i)
        conn = Connection(url.hostname, url.port or 80, headers)
        await asyncio.sleep(max(0.0, window[0] - time.monotonic()))
        while time.monotonic() < window[1]:
            await one_request(conn, args, rng, res, window)
        await conn.close()

    tasks = [asyncio.ensure_future(client(first_client + i)) for i in range(clients)]
    _, pending = await asyncio.wait(tasks, timeout=max(1.0, deadline - time.monotonic()))
    for t in pending:
        t.cancel()
        res.error("request still running at the drain limit")
    return res


def worker(args, first_client, clients, window, deadline) -> Result:
    return asyncio.run(run_clients(args, first_client, clients, window, deadline))


# --- the server's view: /metrics -----------------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(args):
    """{name{labels}: value} from GET /metrics, or {} when it cannot be read."""
    url = urllib.parse.urlsplit(args.base)
    try:
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=10)
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {args.api_key}"} if args.api_key else {})
        text = conn.getresponse().read().decode()
        conn.close()
    except (OSError, http.client.HTTPException):
        return {}
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3).replace("+Inf", "inf"))
    return out


def histogram(before, after, name):
    """count, mean (ms) and p50/p99 (ms, linear inside a bucket as Prometheus' histogram_quantile)."""
    buckets = []
    for key, v in after.items():
        m = re.fullmatch(re.escape(name) + r'_bucket\{le="([^"]+)"\}', key)
        if m:
            buckets.append((float(m.group(1).replace("+Inf", "inf")), v - before.get(key, 0.0)))
    buckets.sort()
    count = after.get(name + "_count", 0.0) - before.get(name + "_count", 0.0)
    total = after.get(name + "_sum", 0.0) - before.get(name + "_sum", 0.0)
    if not buckets or count <= 0:
        return {"count": int(count)}

    def quantile(q):
        rank, lower, below = q * count, 0.0, 0.0
        for le, n in buckets:
            if n >= rank:
                if le == float("inf"):
                    return round(lower * 1000, 2)
                return round((lower + (le - lower) * (rank - below) / max(n - below, 1e-9)) * 1000, 2)
            lower, below = le, n
        return None

    return {"count": int(count), "mean_ms": round(total / count * 1000, 2), "p50_ms": quantile(0.5), "p99_ms": quantile(0.99)}


class Sampler(threading.Thread):
    """Reads the batch size and KV blocks in use once a second while a level runs."""

    def __init__(self, args):
        super().__init__(daemon=True)
        self.args, self.stop, self.batch, self.kv, self.waiting = args, threading.Event(), [], [], []

    def run(self):
        while not self.stop.wait(1.0):
            m = scrape(self.args)
            if "osprey_batch_size" in m:
                self.batch.append(m["osprey_batch_size"])
            if "osprey_kv_blocks_in_use" in m:
                self.kv.append(m["osprey_kv_blocks_in_use"])
            if "osprey_requests_waiting" in m:
                self.waiting.append(m["osprey_requests_waiting"])


# --- one level -----------------------------------------------------------------------------------

def pct(values, q):
    """The q-th percentile (nearest rank) of seconds, in ms."""
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))] * 1000, 2)


def stats(values):
    return {"p50": pct(values, 50), "p90": pct(values, 90), "p99": pct(values, 99),
            "mean": round(sum(values) / len(values) * 1000, 2) if values else None, "n": len(values)}


def run_level(args) -> dict:
    url = urllib.parse.urlsplit(args.base)
    if not args.model:
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=30)
        conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {args.api_key}"} if args.api_key else {})
        args.model = json.loads(conn.getresponse().read())["data"][0]["id"]
        conn.close()
    procs = args.procs or max(1, min(os.cpu_count() or 1, (args.concurrency + 63) // 64))
    shares = [args.concurrency // procs + (1 if i < args.concurrency % procs else 0) for i in range(procs)]
    before = scrape(args)
    sampler = Sampler(args)
    start = time.monotonic() + 0.5 + 0.2 * procs  # every process is up before the window opens
    window = (start, start + args.seconds)
    deadline = window[1] + args.drain_timeout
    total = Result()
    if procs == 1:
        sampler.start()
        total.merge(worker(args, 0, args.concurrency, window, deadline))
    else:
        with concurrent.futures.ProcessPoolExecutor(procs) as pool:
            futures = [pool.submit(worker, args, sum(shares[:i]), n, window, deadline) for i, n in enumerate(shares) if n]
            sampler.start()  # after the workers are forked: a fork copies no running thread's locks
            for f in futures:
                total.merge(f.result())
    finished = time.monotonic()
    sampler.stop.set()
    sampler.join()
    after = scrape(args)

    def delta(name):
        return after[name] - before.get(name, 0.0) if name in after else None

    server = {}
    if after:
        server = {
            "ttft": histogram(before, after, "osprey_time_to_first_token_seconds"),
            "itl": histogram(before, after, "osprey_inter_token_latency_seconds"),
            "tokens_generated": delta("osprey_tokens_generated_total"),
            "prompt_tokens": delta("osprey_prompt_tokens_total"),
            "engine_steps": delta("osprey_engine_steps_total"),
            "preemptions": delta("osprey_preemptions_total"),
            "kv_blocks_total": after.get("osprey_kv_blocks_total"),
            "kv_blocks_in_use_max": max(sampler.kv) if sampler.kv else None,
            "batch_size_mean": round(sum(sampler.batch) / len(sampler.batch), 1) if sampler.batch else None,
            "batch_size_max": max(sampler.batch) if sampler.batch else None,
            "waiting_max": max(sampler.waiting) if sampler.waiting else None,
            "http_5xx": sum(v - before.get(k, 0.0) for k, v in after.items()
                            if k.startswith("osprey_http_requests_total{") and 'status="5xx"' in k),
        }
    meta = dict(kv.split("=", 1) for kv in args.meta)
    report = {
        "concurrency": args.concurrency, "seconds": args.seconds, "prompt_tokens": args.prompt_tokens,
        "max_tokens": args.max_tokens, "model": args.model, "base_url": args.base, "client_processes": procs,
        "requests_sent": total.sent, "requests_completed": total.completed,
        "requests_completed_in_window": total.completed_in_window,
        "output_tokens": total.tokens, "output_tokens_in_window": total.tokens_in_window,
        "output_tok_s": round(total.tokens_in_window / args.seconds, 1),
        "requests_s": round(total.completed_in_window / args.seconds, 2),
        "drain_s": round(max(0.0, finished - window[1]), 2),
        "ttft_ms": stats(total.ttft), "itl_ms": stats(total.itl), "latency_ms": stats(total.latency),
        "token_events_per_token": round(total.events / total.tokens, 4) if total.tokens else None,
        "errors": sum(total.errors.values()), "errors_by_kind": total.errors, "error_examples": total.examples,
        "server": server, **meta,
    }
    return report


def main_run(args) -> int:
    args.base = args.base_url.rstrip("/")
    if args.base.endswith("/v1"):
        args.base = args.base[:-3]
    report = run_level(args)
    text = json.dumps(report, indent=2)
    print(text, flush=True)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")
    t, i = report["ttft_ms"], report["itl_ms"]
    print(f"concurrency {args.concurrency}: {report['output_tok_s']} tok/s, {report['requests_s']} req/s, "
          f"TTFT p50 {t['p50']} p99 {t['p99']} ms, ITL p50 {i['p50']} p99 {i['p99']} ms, {report['errors']} errors",
          file=sys.stderr, flush=True)
    return 1 if report["requests_completed"] == 0 else 0


# --- selftest ------------------------------------------------------------------------------------

async def fake_server(tokens, gap):
    """A loopback server answering every POST with `tokens` completion events `gap` seconds apart, chunked."""

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")

                def chunk(obj):
                    data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
                    return f"{len(data):x}\r\n".encode() + data + b"\r\n"

                for k in range(tokens):
                    await asyncio.sleep(gap)
                    writer.write(chunk({"choices": [{"text": f" t{k}", "index": 0, "finish_reason": None}]}))
                    await writer.drain()
                writer.write(chunk({"choices": [{"text": "", "index": 0, "finish_reason": "length"}]}))
                writer.write(chunk({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": tokens}}))
                writer.write(chunk(b"[DONE]") + b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def selftest() -> int:
    tokens, gap = 5, 0.02

    async def go():
        server = await fake_server(tokens, gap)
        port = server.sockets[0].getsockname()[1]
        args = argparse.Namespace(base=f"http://127.0.0.1:{port}", api_key=None, seed=0, model="fake", prompt_tokens=4,
                                  max_tokens=tokens, id_low=32, id_high=127)
        now = time.monotonic()
        res = await run_clients(args, 0, 3, (now, now + 0.5), now + 10)
        server.close()
        return res

    res = asyncio.run(go())
    checks = {
        "requests completed": res.completed >= 3 and not res.errors,
        "one event per token": res.events == res.tokens == tokens * res.completed,
        "tokens - 1 gaps per request": len(res.itl) == (tokens - 1) * res.completed,
        "gaps near the server's": all(gap * 0.5 < g < gap * 5 for g in res.itl),
        "TTFT after the first gap": all(gap * 0.5 < t < 1.0 for t in res.ttft),
    }
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'} {name}")
    print(f"selftest: {sum(checks.values())} passed, {len(checks) - sum(checks.values())} failed "
          f"(requests {res.completed}, errors {res.errors}, ITL p50 {pct(res.itl, 50)} ms)")
    return 0 if all(checks.values()) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="a model view whose every token id decodes to visible text")
    p.add_argument("model_dir")
    p.add_argument("view_dir")
    r = sub.add_parser("run", help="one concurrency level")
    r.add_argument("base_url")
    r.add_argument("--concurrency", type=int, required=True)
    r.add_argument("--seconds", type=float, default=60.0, help="length of the measured window")
    r.add_argument("--prompt-tokens", type=int, default=200)
    r.add_argument("--max-tokens", type=int, default=256)
    r.add_argument("--drain-timeout", type=float, default=180.0, help="seconds requests in flight get after the window")
    r.add_argument("--procs", type=int, default=0, help="client processes (0: one per 64 clients)")
    r.add_argument("--model", default=None, help="model id (default: the first of /v1/models)")
    r.add_argument("--id-low", type=int, default=32, help="prompt ids are drawn from [id-low, id-high)")
    r.add_argument("--id-high", type=int, default=127)
    r.add_argument("--api-key", default=None)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--json-out", default=None)
    r.add_argument("--meta", action="append", default=[], help="KEY=VALUE recorded in the JSON (device, date, command)")
    sub.add_parser("selftest", help="the client against a fake server with known timings")
    args = ap.parse_args()
    if args.command == "prepare":
        prepare(args.model_dir, args.view_dir)
        return 0
    if args.command == "selftest":
        return selftest()
    if args.concurrency < 1 or args.seconds <= 0 or args.prompt_tokens < 1 or args.max_tokens < 1:
        ap.error("--concurrency, --seconds, --prompt-tokens and --max-tokens must be positive")
    if any("=" not in kv for kv in args.meta):
        ap.error("--meta takes KEY=VALUE")
    return main_run(args)


if __name__ == "__main__":
    sys.exit(main())
