#!/usr/bin/env python3
"""Checks a running `osprey serve` through the official `openai` Python client and raw HTTP (curl).

Usage: tools/server_client_check.py BASE_URL [--api-key KEY] [--max-body-bytes N] [--max-queue N]

BASE_URL is the server's root (http://127.0.0.1:8000; a trailing /v1 is accepted too). Each check
prints one line, `PASS name (0.12s)`, `FAIL name: why`, `SKIP name: why` or `NOTE name: what`
(a NOTE is a difference from OpenAI worth knowing that fails nothing). Exits 1 if any check failed.

What is checked (the model is expected to be a random one: its text is noise, so the checks are on
the shape of the answers, never on their words):
  - GET /health; models.list.
  - chat.completions non-streaming: content is a str with no spelled-out special token
    (`<|...|>`), usage adds up, finish_reason "length" means exactly max_tokens tokens.
  - chat streaming with stream_options.include_usage: chunks arrive, the deltas concatenate to the
    non-streamed reply (greedy, same seed), a final usage chunk with no choices, the stream ends.
  - tools + tool_choice "auto": a well-formed reply (tool_calls, if any, have id/type/function with
    JSON arguments); then a follow-up with an assistant tool_calls message and a `tool` message.
  - completions with a text prompt and a token-id prompt, streamed too; reasoning_effort.
  - errors through the client: n=2, max_tokens=0, temperature="hot", empty messages, a bad role,
    a bad reasoning_effort -> openai.BadRequestError; a wrong key -> openai.AuthenticationError.
  - raw HTTP with curl: SSE framing (`data: <json>\\n\\n` ... `data: [DONE]\\n\\n`), 404 with an
    OpenAI error body, 413 (Content-Length and chunked), invalid JSON -> 400, 401 without a key.
  - with --max-queue N: N open streams, then one more request -> 429 rate_limit_error; the places
    come back after the streams hang up.
  - POST /v1/responses if the server has it (skipped when it answers 404): responses.create
    non-streaming (output_text without special tokens, status, usage, incomplete_details) and
    streaming (created first, completed/incomplete last, sequence numbers, output_text deltas equal
    the non-streamed output_text), the raw `event: NAME\\ndata: JSON` framing, a function_call /
    function_call_output round trip as input items, previous_response_id -> 400.

With --tool-caller the server must serve Models/osprey-tiny-tool-caller (tools/train_tool_caller.py), a
model trained to call get_weather(city), and only these checks run, on the replies' exact words:
  - chat: a weather question -> finish_reason "tool_calls", get_weather with {"city": ...} from the
    question; the assistant message object sent back with a `tool` result -> a final answer (stop),
    with reasoning_content, no special tokens;
  - the same call streamed: delta.tool_calls assembled by index equal the non-streamed call;
  - Responses: a function_call output item (and its streamed function_call_arguments.done), then the
    call and a function_call_output as input items -> the answer;
  - tool_choice: small talk gets an answer under "auto" but a get_weather call when the function is
    named or "required" (the server prefills the call header); "none" gets an answer; Responses too.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback

try:
    import httpx
    import openai
except ImportError as e:  # pragma: no cover
    sys.exit(f"error: {e}; install the client packages first: python3 -m pip install openai httpx")

SPECIAL = re.compile(r"<\|[A-Za-z0-9_]+\|>")


class CheckFailed(Exception):
    pass


class Skip(Exception):
    pass


def expect(cond, message):
    if not cond:
        raise CheckFailed(message)


class Checker:
    def __init__(self, base: str, api_key: str | None, max_body_bytes: int, timeout: float):
        self.base = base
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.max_queue = 0
        self.timeout = timeout
        self.client = openai.OpenAI(base_url=base + "/v1", api_key=api_key or "no-key", timeout=timeout, max_retries=0)
        self.model: str | None = None
        self.results: list[tuple[str, str, str]] = []
        self.notes: list[str] = []

    # --- helpers ---------------------------------------------------------------------------

    def headers(self, key: str | None = "default") -> dict:
        h = {"Content-Type": "application/json"}
        k = self.api_key if key == "default" else key
        if k:
            h["Authorization"] = f"Bearer {k}"
        return h

    def curl(self, *args: str, data: bytes | None = None) -> tuple[int, dict, bytes]:
        """Runs curl; returns (status, lower-cased headers, body bytes)."""
        with tempfile.TemporaryDirectory() as tmp:
            hdr, body = os.path.join(tmp, "h"), os.path.join(tmp, "b")
            cmd = ["curl", "-sS", "-N", "--max-time", str(int(self.timeout)), "-D", hdr, "-o", body, *args]
            if self.api_key and not any(a.startswith("Authorization:") for a in args):
                cmd += ["-H", f"Authorization: Bearer {self.api_key}"]
            proc = subprocess.run(cmd, input=data, capture_output=True, timeout=self.timeout + 10)
            if proc.returncode != 0:
                raise CheckFailed(f"curl exited {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}")
            raw_headers = open(hdr, "rb").read().decode("latin-1")
            blocks = [b for b in raw_headers.split("\r\n\r\n") if b.strip()]
            lines = blocks[-1].split("\r\n") if blocks else [""]
            m = re.match(r"HTTP/\S+\s+(\d+)", lines[0])
            status = int(m.group(1)) if m else 0
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            return status, headers, open(body, "rb").read()

    def post_curl(self, path: str, payload, *extra: str) -> tuple[int, dict, bytes]:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.curl("-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@-",
                         *extra, self.base + path, data=data)

    @staticmethod
    def error_body(body: bytes, status: int, what: str) -> dict:
        try:
            obj = json.loads(body)
        except ValueError:
            raise CheckFailed(f"{what}: HTTP {status} body is not JSON: {body[:200]!r}")
        err = obj.get("error") if isinstance(obj, dict) else None
        expect(isinstance(err, dict), f"{what}: HTTP {status} body has no error object: {body[:200]!r}")
        expect(isinstance(err.get("message"), str) and err["message"], f"{what}: error.message missing: {err}")
        expect(isinstance(err.get("type"), str) and err["type"], f"{what}: error.type missing: {err}")
        return err

    def no_special(self, text, what):
        if text is None:
            return
        expect(isinstance(text, str), f"{what} is not a str: {text!r}")
        m = SPECIAL.search(text)
        expect(m is None, f"{what} contains special-token text {m.group(0) if m else ''!r}: {text!r}")

    @staticmethod
    def usage_ok(usage, max_tokens: int | None, finish: str | None, what: str):
        expect(usage is not None, f"{what}: no usage")
        expect(usage.prompt_tokens > 0, f"{what}: usage.prompt_tokens = {usage.prompt_tokens}")
        expect(usage.completion_tokens >= 0, f"{what}: usage.completion_tokens = {usage.completion_tokens}")
        expect(usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
               f"{what}: total_tokens {usage.total_tokens} != {usage.prompt_tokens} + {usage.completion_tokens}")
        if max_tokens is not None:
            expect(usage.completion_tokens <= max_tokens,
                   f"{what}: completion_tokens {usage.completion_tokens} > max_tokens {max_tokens}")
            if finish == "length":
                expect(usage.completion_tokens == max_tokens,
                       f"{what}: finish_reason length but completion_tokens {usage.completion_tokens} != max_tokens {max_tokens}")

    def run(self, name, fn):
        t0 = time.monotonic()
        try:
            extra = fn()
            dt = time.monotonic() - t0
            self.results.append((name, "PASS", ""))
            print(f"PASS {name} ({dt:.2f}s){' — ' + extra if extra else ''}", flush=True)
        except Skip as e:
            self.results.append((name, "SKIP", str(e)))
            print(f"SKIP {name}: {e}", flush=True)
        except CheckFailed as e:
            self.results.append((name, "FAIL", str(e)))
            print(f"FAIL {name}: {e}", flush=True)
        except openai.APIStatusError as e:
            msg = f"unexpected HTTP {e.status_code} from the server: {e.body}"
            self.results.append((name, "FAIL", msg))
            print(f"FAIL {name}: {msg}", flush=True)
        except Exception as e:  # noqa: BLE001 - any other error is a failure of this check
            msg = f"{type(e).__name__}: {e}"
            self.results.append((name, "FAIL", msg))
            print(f"FAIL {name}: {msg}", flush=True)
            traceback.print_exc(limit=3, file=sys.stdout)

    def note(self, name, text):
        self.notes.append(f"{name}: {text}")
        print(f"NOTE {name}: {text}", flush=True)

    def chat(self, **kw):
        kw.setdefault("model", self.model)
        kw.setdefault("messages", [{"role": "user", "content": "Say hello."}])
        return self.client.chat.completions.create(**kw)

    # --- checks ----------------------------------------------------------------------------

    def check_health(self):
        r = httpx.get(self.base + "/health", timeout=self.timeout)  # no key: /health stays open
        expect(r.status_code == 200, f"GET /health -> {r.status_code} {r.text[:200]}")

    def check_models(self):
        models = self.client.models.list()
        ids = [m.id for m in models.data]
        expect(ids, "models.list returned no model")
        for m in models.data:
            expect(isinstance(m.id, str) and m.id, f"model without id: {m}")
            expect(m.object == "model", f"model.object = {m.object!r}")
            expect(isinstance(m.created, int), f"model.created = {m.created!r}")
        self.model = ids[0]
        return f"model {self.model!r}"

    def check_chat(self):
        # max_tokens respected: a random model may end early with a stop token, so try a few prompts
        # greedily until one runs to the limit (then it must have exactly max_tokens tokens).
        lengths = 0
        for i, prompt in enumerate(["Say hello.", "Count to ten.", "What is 2+2?", "Write a poem.", "Hi"]):
            r = self.chat(messages=[{"role": "system", "content": "You are terse."}, {"role": "user", "content": prompt}],
                          max_tokens=6, temperature=0, seed=i)
            expect(r.object == "chat.completion", f"object = {r.object!r}")
            expect(isinstance(r.id, str) and r.id, f"id = {r.id!r}")
            expect(r.model == self.model, f"model = {r.model!r}, expected {self.model!r}")
            expect(len(r.choices) == 1, f"{len(r.choices)} choices")
            c = r.choices[0]
            expect(c.index == 0, f"choices[0].index = {c.index}")
            expect(c.message.role == "assistant", f"role = {c.message.role!r}")
            expect(c.finish_reason in ("stop", "length"), f"finish_reason = {c.finish_reason!r}")
            expect(isinstance(c.message.content, str), f"content is not a str: {c.message.content!r}")
            self.no_special(c.message.content, "message.content")
            self.no_special(getattr(c.message, "reasoning_content", None) or (c.message.model_extra or {}).get("reasoning_content"),
                            "message.reasoning_content")
            self.usage_ok(r.usage, 6, c.finish_reason, "usage")
            if c.finish_reason == "length":
                lengths += 1
                if lengths >= 2:
                    break
        expect(lengths >= 1, "no reply reached max_tokens=6 (finish_reason length) in 5 tries")
        return f"{lengths} replies hit max_tokens"

    def check_chat_stream(self):
        kw = dict(messages=[{"role": "user", "content": "Tell me a story."}], max_tokens=12, temperature=0, seed=7)
        whole = self.chat(**kw)
        stream = self.chat(**kw, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        expect(len(chunks) >= 2, f"only {len(chunks)} chunks")
        content, reasoning, finishes, usage_chunks = "", "", [], []
        for i, ch in enumerate(chunks):
            expect(ch.object == "chat.completion.chunk", f"chunk {i}: object = {ch.object!r}")
            expect(ch.id == chunks[0].id, f"chunk {i}: id {ch.id!r} != first chunk's {chunks[0].id!r}")
            if ch.usage is not None:
                usage_chunks.append(i)
                expect(ch.choices == [], f"usage chunk {i} has choices: {ch.choices}")
                continue
            expect(len(ch.choices) == 1, f"chunk {i}: {len(ch.choices)} choices")
            d = ch.choices[0].delta
            if d.content:
                content += d.content
            rc = (d.model_extra or {}).get("reasoning_content")
            if rc:
                reasoning += rc
            if ch.choices[0].finish_reason is not None:
                finishes.append((i, ch.choices[0].finish_reason))
        expect(chunks[0].choices and chunks[0].choices[0].delta.role == "assistant", "the first chunk carries no role 'assistant'")
        expect(usage_chunks == [len(chunks) - 1], f"usage chunks at {usage_chunks}, expected only the last ({len(chunks) - 1})")
        expect(len(finishes) == 1 and finishes[0][0] == len(chunks) - 2,
               f"finish_reason chunks {finishes}, expected one, just before the usage chunk")
        finish = finishes[0][1]
        usage = chunks[-1].usage
        self.usage_ok(usage, 12, finish, "stream usage")
        self.no_special(content, "streamed content")
        self.no_special(reasoning, "streamed reasoning_content")
        w = whole.choices[0]
        expect(content == (w.message.content or ""),
               f"streamed deltas {content!r} != the non-streamed content {w.message.content!r} (greedy, same seed)")
        expect(finish == w.finish_reason, f"streamed finish_reason {finish!r} != non-streamed {w.finish_reason!r}")
        expect(usage.completion_tokens == whole.usage.completion_tokens and usage.prompt_tokens == whole.usage.prompt_tokens,
               f"streamed usage {usage} != non-streamed {whole.usage}")
        return f"{len(chunks)} chunks, {usage.completion_tokens} tokens, finish {finish}"

    def check_tools(self):
        tools = [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                           "required": ["city"]}}}]
        msgs = [{"role": "user", "content": "What's the weather in Paris?"}]
        r = self.chat(messages=msgs, tools=tools, tool_choice="auto", max_tokens=24, temperature=0, seed=1)
        c = r.choices[0]
        expect(c.finish_reason in ("stop", "length", "tool_calls"), f"finish_reason = {c.finish_reason!r}")
        calls = c.message.tool_calls or []
        for call in calls:
            expect(isinstance(call.id, str) and call.id, f"tool call without id: {call}")
            expect(call.type == "function", f"tool call type {call.type!r}")
            expect(isinstance(call.function.name, str) and call.function.name, f"tool call without a name: {call}")
            try:
                json.loads(call.function.arguments)
            except ValueError:
                # The model chose the arguments: a random model may write anything. Report, don't fail.
                self.note("tools", f"tool call arguments are not JSON (random model): {call.function.arguments!r}")
        if calls:  # "length" when max_tokens cut the call
            expect(c.finish_reason in ("tool_calls", "length"), f"tool calls but finish_reason {c.finish_reason!r}")
        else:
            expect(isinstance(c.message.content, str), f"no tool call and content {c.message.content!r}")
            self.no_special(c.message.content, "content")
        # Follow-up: the history has an assistant tool call and its result.
        follow = msgs + [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_abc123", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_abc123", "content": '{"temperature": 21, "unit": "c"}'},
        ]
        r2 = self.chat(messages=follow, tools=tools, max_tokens=8, temperature=0)
        expect(r2.choices and r2.choices[0].finish_reason in ("stop", "length", "tool_calls"), f"follow-up reply {r2}")
        # tool_choice naming a function, and "none", are accepted too.
        self.chat(messages=msgs, tools=tools, tool_choice={"type": "function", "function": {"name": "get_weather"}}, max_tokens=4)
        self.chat(messages=msgs, tools=tools, tool_choice="none", max_tokens=4)
        # Streamed with tools: the stream ends with [DONE] and every tool-call delta is well formed.
        n = 0
        for ch in self.chat(messages=msgs, tools=tools, max_tokens=16, temperature=0, seed=1, stream=True):
            n += 1
            for d in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
                expect(d.function is not None and d.function.name, f"streamed tool call delta without a name: {d}")
        expect(n >= 2, f"tool stream had {n} chunks")
        return f"{len(calls)} tool call(s) in the first reply"

    def check_reasoning_effort(self):
        for effort in ("low", "medium", "high"):
            r = self.chat(reasoning_effort=effort, max_tokens=4)
            expect(r.choices[0].finish_reason in ("stop", "length"), f"{effort}: finish_reason {r.choices[0].finish_reason!r}")

    def check_completions_text(self):
        r = self.client.completions.create(model=self.model, prompt="Once upon a time", max_tokens=8, temperature=0)
        expect(r.object == "text_completion", f"object = {r.object!r}")
        expect(len(r.choices) == 1 and isinstance(r.choices[0].text, str), f"choices = {r.choices}")
        self.no_special(r.choices[0].text, "text")
        expect(r.choices[0].finish_reason in ("stop", "length"), f"finish_reason {r.choices[0].finish_reason!r}")
        self.usage_ok(r.usage, 8, r.choices[0].finish_reason, "usage")
        expect(r.usage.prompt_tokens == len("Once upon a time".encode()),
               f"prompt_tokens {r.usage.prompt_tokens} for a 16-byte prompt with a byte-level tokenizer")
        return f"finish {r.choices[0].finish_reason}, {r.usage.completion_tokens} tokens"

    def check_completions_ids(self):
        ids = [72, 101, 108, 108, 111, 44, 32]  # "Hello, " as bytes (< 256 in a byte-level vocabulary)
        lengths = 0
        for seed in range(4):
            r = self.client.completions.create(model=self.model, prompt=ids, max_tokens=10, temperature=1.0, seed=seed)
            c = r.choices[0]
            expect(r.usage.prompt_tokens == len(ids), f"prompt_tokens {r.usage.prompt_tokens} != {len(ids)} ids")
            self.usage_ok(r.usage, 10, c.finish_reason, "usage")
            lengths += c.finish_reason == "length"
        expect(lengths >= 1, "no completion reached max_tokens in 4 tries")
        # Deterministic with a seed.
        a = self.client.completions.create(model=self.model, prompt=ids, max_tokens=10, temperature=1.0, seed=42)
        b = self.client.completions.create(model=self.model, prompt=ids, max_tokens=10, temperature=1.0, seed=42)
        expect(a.choices[0].text == b.choices[0].text, f"same seed, different text: {a.choices[0].text!r} vs {b.choices[0].text!r}")
        # Ids out of the vocabulary are a 400.
        try:
            self.client.completions.create(model=self.model, prompt=[1, 10**6], max_tokens=2)
            raise CheckFailed("a token id of 10**6 was accepted")
        except openai.BadRequestError:
            pass

    def check_completions_stream(self):
        ids = [84, 104, 101, 32]  # "The "
        whole = self.client.completions.create(model=self.model, prompt=ids, max_tokens=12, temperature=0)
        chunks = list(self.client.completions.create(model=self.model, prompt=ids, max_tokens=12, temperature=0,
                                                     stream=True, stream_options={"include_usage": True}))
        expect(len(chunks) >= 2, f"{len(chunks)} chunks")
        text, finishes = "", []
        for i, ch in enumerate(chunks[:-1]):
            expect(len(ch.choices) == 1, f"chunk {i}: {len(ch.choices)} choices")
            text += ch.choices[0].text
            if ch.choices[0].finish_reason is not None:
                finishes.append((i, ch.choices[0].finish_reason))
        last = chunks[-1]
        expect(last.usage is not None and not last.choices, f"the last chunk is not a usage chunk: {last}")
        expect(len(finishes) == 1 and finishes[0][0] == len(chunks) - 2, f"finish_reason chunks {finishes}")
        self.usage_ok(last.usage, 12, finishes[0][1], "stream usage")
        expect(text == whole.choices[0].text, f"streamed text {text!r} != non-streamed {whole.choices[0].text!r}")
        expect(last.usage.completion_tokens == whole.usage.completion_tokens, f"usage {last.usage} != {whole.usage}")
        # A text prompt streams too.
        n = sum(1 for _ in self.client.completions.create(model=self.model, prompt="abc", max_tokens=4, stream=True))
        expect(n >= 1, "text-prompt stream had no chunk")
        return f"{len(chunks)} chunks"

    def expect_400(self, what, fn, param=None):
        try:
            fn()
        except openai.BadRequestError as e:
            expect(e.status_code == 400, f"{what}: status {e.status_code}")
            body = e.body if isinstance(e.body, dict) else {}
            expect(isinstance(body.get("message"), str), f"{what}: error body {e.body!r} has no message")
            if param is not None and body.get("param") != param:
                self.note("errors", f"{what}: param {body.get('param')!r}, expected {param!r}")
            return
        raise CheckFailed(f"{what}: accepted (expected openai.BadRequestError)")

    def check_errors(self):
        self.expect_400("n=2", lambda: self.chat(n=2, max_tokens=2), "n")
        self.expect_400("max_tokens=0", lambda: self.chat(max_tokens=0), "max_tokens")
        self.expect_400("max_completion_tokens=-1", lambda: self.chat(max_completion_tokens=-1), "max_completion_tokens")
        self.expect_400('temperature="hot"', lambda: self.chat(max_tokens=2, extra_body={"temperature": "hot"}), "temperature")
        self.expect_400("temperature=5", lambda: self.chat(max_tokens=2, temperature=5), "temperature")
        self.expect_400("top_p=0", lambda: self.chat(max_tokens=2, top_p=0), "top_p")
        self.expect_400("messages=[]", lambda: self.chat(messages=[], max_tokens=2), "messages")
        self.expect_400("role=wizard", lambda: self.chat(messages=[{"role": "wizard", "content": "x"}], max_tokens=2))
        self.expect_400("no messages", lambda: self.client.chat.completions.create(model=self.model, messages=None, max_tokens=2))
        self.expect_400('reasoning_effort="extreme"', lambda: self.chat(reasoning_effort="extreme", max_tokens=2), "reasoning_effort")
        self.expect_400("completions n=2", lambda: self.client.completions.create(model=self.model, prompt="a", n=2, max_tokens=2), "n")
        self.expect_400("completions prompt=[]", lambda: self.client.completions.create(model=self.model, prompt=[], max_tokens=2))
        self.expect_400("max_tokens past the context", lambda: self.chat(max_tokens=10**9))
        # An unknown model: OpenAI and vLLM answer 404; not required here.
        try:
            self.chat(model="no-such-model", max_tokens=1)
            self.note("errors", "an unknown model name is served (OpenAI and vLLM answer 404 model_not_found)")
        except openai.NotFoundError:
            pass
        except openai.BadRequestError:
            pass

    def check_auth(self):
        if not self.api_key:
            raise Skip("the server has no API key (run with --api-key KEY against a server started with one)")
        bad = openai.OpenAI(base_url=self.base + "/v1", api_key="wrong-key", timeout=self.timeout, max_retries=0)
        for what, fn in [("models.list", lambda: bad.models.list()),
                         ("chat", lambda: bad.chat.completions.create(model=self.model, messages=[{"role": "user", "content": "x"}], max_tokens=1)),
                         ("completions", lambda: bad.completions.create(model=self.model, prompt="x", max_tokens=1))]:
            try:
                fn()
                raise CheckFailed(f"{what} with a wrong key was accepted")
            except openai.AuthenticationError as e:
                expect(e.status_code == 401, f"{what}: status {e.status_code}")
        st, _, body = self.curl(self.base + "/v1/models", "-H", "Authorization: Basic x")
        expect(st == 401, f"GET /v1/models with a non-Bearer Authorization -> {st}")
        st, h, body = self.curl("-H", "X-Nothing: 1", self.base + "/v1/models", "-H", "Authorization:")
        expect(st == 401, f"GET /v1/models without Authorization -> {st}")
        self.error_body(body, st, "401")

    def check_sse_framing(self):
        payload = {"model": self.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10, "stream": True,
                   "stream_options": {"include_usage": True}}
        for path, body in [("/v1/chat/completions", payload),
                           ("/v1/completions", {"model": self.model, "prompt": "Hi", "max_tokens": 10, "stream": True})]:
            st, h, raw = self.post_curl(path, body)
            expect(st == 200, f"{path}: HTTP {st}: {raw[:200]!r}")
            expect(h.get("content-type", "").startswith("text/event-stream"), f"{path}: Content-Type {h.get('content-type')!r}")
            text = raw.decode()
            expect(text.endswith("data: [DONE]\n\n"), f"{path}: the stream does not end with 'data: [DONE]\\n\\n': {text[-80:]!r}")
            events = text.split("\n\n")
            expect(events[-1] == "", f"{path}: trailing bytes after the last event: {events[-1]!r}")
            events = events[:-1]
            for i, ev in enumerate(events):
                expect(ev.startswith("data: ") and "\n" not in ev, f"{path}: event {i} is not one 'data: ' line: {ev[:120]!r}")
                data = ev[len("data: "):]
                if i == len(events) - 1:
                    expect(data == "[DONE]", f"{path}: last event {data!r}")
                else:
                    expect(data != "[DONE]", f"{path}: [DONE] at event {i} of {len(events)}")
                    obj = json.loads(data)
                    expect("error" not in obj, f"{path}: error event {obj}")
        return f"{len(events)} events in the last stream"

    def check_404(self):
        for method in ("GET", "POST"):
            st, h, body = self.curl("-X", method, self.base + "/v1/no-such-route")
            expect(st == 404, f"{method} /v1/no-such-route -> {st}")
            expect(h.get("content-type", "").startswith("application/json"), f"404 Content-Type {h.get('content-type')!r}")
            self.error_body(body, st, "404")

    def check_413(self):
        big = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"a" * (self.max_body_bytes + 1024) + b'"}]}'
        st, _, body = self.post_curl("/v1/chat/completions", big)
        expect(st == 413, f"a {len(big)}-byte body (limit {self.max_body_bytes}) -> {st}")
        self.error_body(body, st, "413")
        # Without Content-Length (chunked): stopped while reading, same 413.
        st, _, body = self.post_curl("/v1/chat/completions", big, "-H", "Transfer-Encoding: chunked")
        expect(st == 413, f"a chunked {len(big)}-byte body -> {st}")
        self.error_body(body, st, "413 (chunked)")
        # The server still answers after both.
        self.check_health()

    def check_invalid_json(self):
        for path in ("/v1/chat/completions", "/v1/completions"):
            for bad in (b"{not json", b"", b"[1, 2]", b'{"messages": "x"}', b'{"prompt": {"a": 1}}'):
                st, h, body = self.post_curl(path, bad)
                expect(st == 400, f"POST {path} with body {bad!r} -> {st}: {body[:200]!r}")
                err = self.error_body(body, st, f"{path} {bad!r}")
                expect(err["type"] == "invalid_request_error", f"{path} {bad!r}: error.type {err['type']!r}")

    def check_queue_bound(self):
        """--max-queue N: with N streams open, one more request is a 429 with an OpenAI error body."""
        if not self.max_queue:
            raise Skip("pass --max-queue N (the server's) to check the 429 bound")
        hold = {"model": self.model, "messages": [{"role": "user", "content": "Tell a long story."}],
                "max_tokens": 2000, "stream": True}
        with httpx.Client(base_url=self.base, headers=self.headers(), timeout=self.timeout) as http:
            streams = []
            try:
                for _ in range(self.max_queue):
                    cm = http.stream("POST", "/v1/chat/completions", json=hold)
                    r = cm.__enter__()
                    streams.append(cm)
                    expect(r.status_code == 200, f"request {len(streams)} of {self.max_queue} -> {r.status_code}")
                    next(r.iter_bytes())  # admitted and streaming
                extra = http.post("/v1/completions", json={"model": self.model, "prompt": "x", "max_tokens": 1})
                expect(extra.status_code == 429, f"request {self.max_queue + 1} with {self.max_queue} in flight -> {extra.status_code}")
                err = self.error_body(extra.content, 429, "429")
                expect(err["type"] == "rate_limit_error", f"429 error.type {err['type']!r}")
            finally:
                for cm in streams:
                    cm.__exit__(None, None, None)  # hang up: the server cancels them
        # The places come back once the server has seen the hang-ups.
        end = time.monotonic() + 15
        while True:
            r = httpx.post(self.base + "/v1/completions", headers=self.headers(), timeout=self.timeout,
                           json={"model": self.model, "prompt": "x", "max_tokens": 1})
            if r.status_code == 200:
                return
            expect(r.status_code == 429 and time.monotonic() < end, f"after the hang-ups: {r.status_code} for 15 s")
            time.sleep(0.2)

    def check_responses(self):
        st, _, body = self.post_curl("/v1/responses", {"model": self.model, "input": "Hi", "max_output_tokens": 8})
        if st == 404:
            raise Skip("POST /v1/responses answers 404: the server has no Responses API")
        expect(st == 200, f"POST /v1/responses -> {st}: {body[:300]!r}")
        kw = dict(model=self.model, instructions="You are terse.", input=[{"role": "user", "content": "Tell me a story."}],
                  max_output_tokens=12, temperature=0)
        r = self.client.responses.create(**kw)
        expect(r.object == "response", f"object = {r.object!r}")
        expect(isinstance(r.id, str) and r.id.startswith("resp_"), f"id = {r.id!r}")
        expect(r.model == self.model, f"model = {r.model!r}")
        expect(r.status in ("completed", "incomplete"), f"status = {r.status!r}")
        expect(isinstance(r.output_text, str), f"output_text = {r.output_text!r}")
        self.no_special(r.output_text, "output_text")
        expect(all(item.type in ("reasoning", "message", "function_call") for item in r.output),
               f"output item types {[item.type for item in r.output]}")
        u = r.usage
        expect(u is not None and u.input_tokens > 0 and u.total_tokens == u.input_tokens + u.output_tokens
               and u.output_tokens <= 12, f"usage {u}")
        if r.status == "incomplete":
            expect(r.incomplete_details is not None and r.incomplete_details.reason == "max_output_tokens",
                   f"incomplete_details = {r.incomplete_details}")
            expect(u.output_tokens == 12, f"incomplete but output_tokens {u.output_tokens} != 12")

        events = list(self.client.responses.create(**kw, stream=True))
        types = [e.type for e in events]
        expect(types[:1] == ["response.created"], f"first events {types[:3]}")
        expect(types[-1] in ("response.completed", "response.incomplete"), f"last event {types[-1] if types else None}")
        expect([e.sequence_number for e in events] == list(range(len(events))), "sequence_number is not 0, 1, 2, ...")
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        self.no_special(text, "streamed output_text")
        expect(text == r.output_text, f"streamed deltas {text!r} != output_text {r.output_text!r} (greedy)")
        done = [e.text for e in events if e.type == "response.output_text.done"]
        expect("".join(done) == text, f"output_text.done {done!r} != the deltas {text!r}")
        final = events[-1].response
        expect(final.output_text == r.output_text and final.status == r.status, f"final response {final.status} {final.output_text!r}")
        expect(final.usage.output_tokens == u.output_tokens and final.usage.input_tokens == u.input_tokens,
               f"streamed usage {final.usage} != {u}")
        expect(types.count("response.output_item.added") == types.count("response.output_item.done") == len(final.output),
               f"output_item events {types}")

        # Raw framing: `event: NAME\ndata: {json with the same type}\n\n`.
        st, h, body = self.post_curl("/v1/responses", {"model": self.model, "input": "Hi", "max_output_tokens": 4, "stream": True})
        expect(st == 200 and h.get("content-type", "").startswith("text/event-stream"), f"stream -> {st} {h.get('content-type')}")
        blocks = body.decode().split("\n\n")
        expect(blocks[-1] == "", f"the stream does not end with a blank line: {body[-80:]!r}")
        for block in blocks[:-1]:
            lines = block.split("\n")
            expect(len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), f"bad event {block!r}")
            expect(json.loads(lines[1][6:])["type"] == lines[0][7:], f"type != event name in {block!r}")

        # A tool round trip, stateless: the call and its output go back as input items.
        tools = [{"type": "function", "name": "get_weather", "description": "The weather of a city.",
                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
        first = self.client.responses.create(model=self.model, input="Weather in Paris?", tools=tools, max_output_tokens=8, temperature=0)
        for item in first.output:
            if item.type == "function_call":
                expect(item.call_id and item.name and isinstance(item.arguments, str), f"function_call item {item}")
        follow = self.client.responses.create(model=self.model, tools=tools, max_output_tokens=8, input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": '{"sky": "sunny"}'}])
        expect(follow.status in ("completed", "incomplete"), f"follow-up status {follow.status!r}")
        self.no_special(follow.output_text, "follow-up output_text")

        # Stateless: previous_response_id is a 400 naming it.
        self.expect_400("previous_response_id", lambda: self.client.responses.create(
            model=self.model, input="Hi", previous_response_id=r.id, max_output_tokens=4), param="previous_response_id")
        return f"{len(events)} events, status {r.status}, {u.output_tokens} tokens"


class ToolCallerChecker(Checker):
    """Checks against Models/osprey-tiny-tool-caller (tools/train_tool_caller.py): a model trained to call
    get_weather(city) for weather questions, to answer a tool result with reasoning and a sentence, and
    to answer small talk without a call. Its replies are known, so these checks are on their words. Its
    tokenizer has one token per byte: a call is ~60 tokens, an answer after a tool result ~110."""

    TOOL = {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}},
                       "required": ["city"]}}}
    RESPONSES_TOOL = {"type": "function", **TOOL["function"]}
    RESULT = {"temperature": 21, "condition": "sunny"}
    ANSWER = "It is 21 degrees and sunny in {city}."

    def weather_call(self, call, city):
        expect(call.type == "function" and isinstance(call.id, str) and call.id, f"tool call {call}")
        expect(call.function.name == "get_weather", f"called {call.function.name!r}")
        try:
            args = json.loads(call.function.arguments)
        except ValueError:
            raise CheckFailed(f"arguments are not JSON: {call.function.arguments!r}")
        expect(args == {"city": city}, f"arguments {args}, expected {{'city': {city!r}}}")

    def check_round_trip(self):
        messages = [{"role": "user", "content": "What is the weather in Paris?"}]
        r = self.chat(messages=messages, tools=[self.TOOL], temperature=0, max_tokens=128)
        c = r.choices[0]
        expect(c.finish_reason == "tool_calls", f"finish_reason {c.finish_reason!r}, message {c.message}")
        expect(len(c.message.tool_calls or []) == 1, f"tool_calls {c.message.tool_calls}")
        call = c.message.tool_calls[0]
        self.weather_call(call, "Paris")
        expect(not c.message.content, f"content beside the call: {c.message.content!r}")
        self.usage_ok(r.usage, 128, c.finish_reason, "usage")
        # The client's usual loop: the assistant message object goes back as is, then the result.
        messages += [c.message, {"role": "tool", "tool_call_id": call.id, "content": json.dumps(self.RESULT)}]
        r2 = self.chat(messages=messages, tools=[self.TOOL], temperature=0, max_tokens=200)
        c2 = r2.choices[0]
        expect(c2.finish_reason == "stop" and not c2.message.tool_calls, f"follow-up: {c2.finish_reason!r} {c2.message}")
        self.no_special(c2.message.content, "content")
        expect(c2.message.content == self.ANSWER.format(city="Paris"), f"follow-up content {c2.message.content!r}")
        reasoning = (c2.message.model_extra or {}).get("reasoning_content")
        self.no_special(reasoning, "reasoning_content")
        expect(reasoning, f"no reasoning_content in the follow-up: {c2.message}")
        return f"get_weather({call.function.arguments}) -> {c2.message.content!r}"

    def check_stream(self):
        kw = dict(messages=[{"role": "user", "content": "What's the weather like in Tokyo?"}], tools=[self.TOOL],
                  temperature=0, max_tokens=128)
        calls, content, finishes = {}, "", []
        for ch in self.chat(**kw, stream=True):
            if not ch.choices:
                continue
            d = ch.choices[0].delta
            content += d.content or ""
            for t in d.tool_calls or []:
                slot = calls.setdefault(t.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = slot["id"] or t.id
                if t.function is not None:
                    slot["name"] += t.function.name or ""
                    slot["arguments"] += t.function.arguments or ""
            if ch.choices[0].finish_reason:
                finishes.append(ch.choices[0].finish_reason)
        expect(finishes == ["tool_calls"], f"finish reasons {finishes}")
        expect(list(calls) == [0] and calls[0]["id"], f"streamed tool calls {calls}")
        expect(calls[0]["name"] == "get_weather" and json.loads(calls[0]["arguments"]) == {"city": "Tokyo"},
               f"streamed call {calls[0]}")
        expect(content == "", f"streamed content beside the call: {content!r}")
        whole = self.chat(**kw).choices[0].message.tool_calls[0]
        expect((whole.function.name, whole.function.arguments) == (calls[0]["name"], calls[0]["arguments"]),
               f"streamed {calls[0]} != non-streamed {whole}")
        return f"get_weather({calls[0]['arguments']})"

    def check_responses_round_trip(self):
        first = self.client.responses.create(model=self.model, input="What is the weather in Berlin?", tools=[self.RESPONSES_TOOL],
                                             temperature=0, max_output_tokens=128)
        calls = [item for item in first.output if item.type == "function_call"]
        expect(first.status == "completed" and len(calls) == 1, f"status {first.status}, output {first.output}")
        call = calls[0]
        expect(call.name == "get_weather" and json.loads(call.arguments) == {"city": "Berlin"}, f"function_call {call}")
        expect(call.call_id, f"function_call without call_id: {call}")
        events = list(self.client.responses.create(model=self.model, input="What is the weather in Berlin?",
                                                   tools=[self.RESPONSES_TOOL], temperature=0, max_output_tokens=128, stream=True))
        done = [e.arguments for e in events if e.type == "response.function_call_arguments.done"]
        expect(done == [call.arguments], f"streamed function_call_arguments.done {done} != {call.arguments!r}")
        follow = self.client.responses.create(model=self.model, tools=[self.RESPONSES_TOOL], temperature=0, max_output_tokens=200, input=[
            {"role": "user", "content": "What is the weather in Berlin?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": json.dumps(self.RESULT)}])
        expect(follow.status == "completed", f"follow-up status {follow.status}")
        self.no_special(follow.output_text, "output_text")
        expect(follow.output_text == self.ANSWER.format(city="Berlin"), f"follow-up output_text {follow.output_text!r}")
        expect([item.type for item in follow.output] == ["reasoning", "message"], f"follow-up items {[i.type for i in follow.output]}")
        return f"function_call {call.arguments} -> {follow.output_text!r}"

    def check_tool_choice(self):
        hello = [{"role": "user", "content": "Hello!"}]
        free = self.chat(messages=hello, tools=[self.TOOL], temperature=0, max_tokens=128).choices[0]
        expect(free.finish_reason == "stop" and not free.message.tool_calls and free.message.content,
               f"small talk with tool_choice auto: {free.finish_reason!r} {free.message}")
        for choice in ({"type": "function", "function": {"name": "get_weather"}}, "required"):
            c = self.chat(messages=hello, tools=[self.TOOL], tool_choice=choice, temperature=0, max_tokens=128).choices[0]
            expect(c.finish_reason == "tool_calls" and len(c.message.tool_calls or []) == 1,
                   f"tool_choice {choice!r}: {c.finish_reason!r} {c.message}")
            expect(c.message.tool_calls[0].function.name == "get_weather", f"tool_choice {choice!r}: {c.message.tool_calls[0]}")
            args = json.loads(c.message.tool_calls[0].function.arguments)
            expect(isinstance(args, dict) and isinstance(args.get("city"), str), f"tool_choice {choice!r}: arguments {args}")
        none = self.chat(messages=[{"role": "user", "content": "What is the weather in Paris?"}], tools=[self.TOOL],
                         tool_choice="none", temperature=0, max_tokens=128).choices[0]
        expect(none.finish_reason == "stop" and not none.message.tool_calls and none.message.content,
               f"tool_choice none: {none.finish_reason!r} {none.message}")
        forced = self.client.responses.create(model=self.model, input="Hello!", tools=[self.RESPONSES_TOOL], temperature=0,
                                              max_output_tokens=128, tool_choice={"type": "function", "name": "get_weather"})
        expect([item.type for item in forced.output] == ["function_call"], f"responses, forced: {forced.output}")
        return f"auto {free.message.content!r}; forced get_weather({c.message.tool_calls[0].function.arguments})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base_url")
    ap.add_argument("--api-key", default=None, help="the server's key (enables the 401 checks)")
    ap.add_argument("--max-body-bytes", type=int, default=4 << 20, help="the server's --max-body-bytes (default 4 MiB)")
    ap.add_argument("--max-queue", type=int, default=0, help="the server's --max-queue: checks the 429 bound (0: skip)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    ap.add_argument("--tool-caller", action="store_true",
                    help="the server serves Models/osprey-tiny-tool-caller: run the end-to-end tool-call checks only")
    args = ap.parse_args()
    base = args.base_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    c = (ToolCallerChecker if args.tool_caller else Checker)(base, args.api_key, args.max_body_bytes, args.timeout)
    c.max_queue = args.max_queue
    t0 = time.monotonic()
    c.run("health", c.check_health)
    c.run("models.list", c.check_models)
    if c.model is None:
        print("FAIL: no model to test; stopping", flush=True)
        return 1
    checks = [("tool call, result, answer", c.check_round_trip), ("tool call streamed", c.check_stream),
              ("responses function_call round trip", c.check_responses_round_trip),
              ("tool_choice auto / named / required / none", c.check_tool_choice)] if args.tool_caller else [("chat", c.check_chat), ("chat stream + include_usage", c.check_chat_stream),
                     ("chat tools + tool follow-up", c.check_tools), ("chat reasoning_effort", c.check_reasoning_effort),
                     ("completions text prompt", c.check_completions_text), ("completions token-id prompt", c.check_completions_ids),
                     ("completions stream", c.check_completions_stream), ("errors -> BadRequestError", c.check_errors),
                     ("auth -> AuthenticationError", c.check_auth), ("SSE framing (curl)", c.check_sse_framing),
                     ("404 unknown route", c.check_404), ("413 oversized body", c.check_413),
                     ("invalid JSON -> 400", c.check_invalid_json), ("429 queue bound", c.check_queue_bound),
                     ("/v1/responses", c.check_responses)]
    for name, fn in checks:
        c.run(name, fn)
    failed = [r for r in c.results if r[1] == "FAIL"]
    passed = sum(r[1] == "PASS" for r in c.results)
    skipped = sum(r[1] == "SKIP" for r in c.results)
    for name, _, why in failed:
        print(f"  failed: {name}: {why}", flush=True)
    print(f"server_client_check: {len(c.notes)} notes, {time.monotonic() - t0:.1f}s", flush=True)
    print(f"server_client_check: {passed} passed, {len(failed)} failed, {skipped} skipped", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
