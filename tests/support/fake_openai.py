"""A fake OpenAI-compatible server: real HTTP on 127.0.0.1, scripted replies, recorded requests.

Tests enqueue replies (streamed SSE, plain JSON, HTTP errors, slow drips, stalls,
malformed chunks, mid-stream disconnects, streams without ``[DONE]``) and
assert on ``requests``. The code under test talks to it through the real
``openai`` SDK. ``python -m tests.support.fake_openai [--port N] [--script FILE]``
serves it on its own, for subprocesses and manual runs of the app.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer to a chat completion request."""

    texts: list[str] = field(default_factory=lambda: ["Hello", " from", " the fake", " server."])
    status: int = 200
    error: dict[str, Any] | None = None  # OpenAI-style {"message", "type", "code"}
    delay: float = 0.0  # seconds between chunks
    usage: tuple[int, int] | None = (12, 4)
    finish_reason: str | None = "stop"
    send_done: bool = True
    stall_after: int | None = None  # chunks sent before going silent
    stall_seconds: float = 5.0
    disconnect_after: int | None = None  # chunks sent before dropping the connection
    malformed_after: int | None = None  # chunks sent before a chunk that is not JSON
    reject_stream_options: bool = False
    reject_status: int = 400  # how stream_options is rejected (FastAPI servers say 422)
    # Fields refused as OpenAI's reasoning models refuse them ("max_tokens", "temperature"),
    # in every request that carries them.
    refuse: tuple[str, ...] = ()
    header_delay: float = 0.0  # seconds before the status line: the client's timeout fires first
    # When set, the streamed body is exactly these ``data:`` payloads (a str is sent as is,
    # anything else as JSON) instead of role/text/finish/usage chunks; ``send_done`` still applies.
    raw_events: list[Any] | None = None
    model: str = "gpt-4o-mini"
    # Streamed before the text, as llama.cpp, vLLM and DeepSeek stream a reasoning model's
    # thoughts (Ollama names the field "reasoning").
    reasoning: list[str] = field(default_factory=list)
    reasoning_field: str = "reasoning_content"


def stream(*texts: str, **options: Any) -> Reply:
    return Reply(texts=list(texts) or Reply().texts, **options)


def error(
    status: int, message: str, *, code: str | None = None, kind: str = "invalid_request_error"
) -> Reply:
    return Reply(status=status, error={"message": message, "type": kind, "code": code})


# OpenAI's words (2025-2026) when a reasoning model is sent a field it does not take.
REFUSALS = {
    "max_tokens": {
        "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
        "Use 'max_completion_tokens' instead.",
        "type": "invalid_request_error",
        "param": "max_tokens",
        "code": "unsupported_parameter",
    },
    "temperature": {
        "message": "Unsupported value: 'temperature' does not support 0.2 with this model. "
        "Only the default (1) value is supported.",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "unsupported_value",
    },
}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    client_went_away: bool = False


class FakeOpenAI:
    """Start with :meth:`start`; ``base_url`` ends in ``/v1`` like OpenAI's."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        # GET /models: a list of ids, None for "no such route" (404), or an error Reply.
        self.models: list[str] | Reply | None = ["gpt-4o-mini", "gpt-4o"]
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def start(self, port: int = 0) -> FakeOpenAI:
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = _QuietServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.replies.clear()
            self.requests.clear()
            self.models = ["gpt-4o-mini", "gpt-4o"]

    def enqueue(self, *replies: Reply) -> None:
        with self.lock:
            self.replies.extend(replies)

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def next_reply(self) -> Reply:
        with self.lock:
            return self.replies.popleft() if self.replies else Reply()

    def push_front(self, reply: Reply) -> None:
        """Answer the next request with ``reply`` before anything already queued."""
        with self.lock:
            self.replies.appendleft(reply)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-reply is what several tests do on purpose."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: FakeOpenAI

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test output is for assertions."""

    def _record(self, body: Any) -> Recorded:
        record = Recorded(self.command, self.path, dict(self.headers.items()), body)
        with self.server_state.lock:
            self.server_state.requests.append(record)
        return record

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._record(None)
        models = self.server_state.models
        if isinstance(models, Reply) and self.path.rstrip("/").endswith("/models"):
            self._json(models.status, {"error": models.error or {"message": "error"}})
        elif self.path.rstrip("/").endswith("/models") and isinstance(models, list):
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                        for m in models
                    ],
                },
            )
        else:
            self._json(404, {"error": {"message": "Not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        record = self._record(body)
        if not self.path.endswith("/chat/completions"):
            self._json(404, {"error": {"message": "Not found", "type": "invalid_request_error"}})
            return
        reply = self.server_state.next_reply()
        if reply.header_delay:
            time.sleep(reply.header_delay)
        wants_stream = isinstance(body, dict) and body.get("stream")
        if reply.reject_stream_options and isinstance(body, dict) and "stream_options" in body:
            # Like some older local servers: a 400 (or 422) that names the field.
            self._json(
                reply.reject_status,
                {
                    "error": {
                        "message": "Unrecognized request argument: stream_options",
                        "type": "invalid_request_error",
                        "code": None,
                    }
                },
            )
            self.server_state.push_front(dataclasses.replace(reply, reject_stream_options=False))
            return
        refused = [name for name in reply.refuse if isinstance(body, dict) and name in body]
        if refused:
            self._json(400, {"error": REFUSALS[refused[0]]})
            self.server_state.push_front(reply)
            return
        if reply.status != 200:
            self._json(reply.status, {"error": reply.error or {"message": "error"}})
            return
        if not wants_stream:
            self._json(200, _completion(reply))
            return
        try:
            self._stream(reply)
        except (BrokenPipeError, ConnectionResetError):
            record.client_went_away = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, payload: Any) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self._chunk(f"data: {text}\n\n".encode())

    def _stream(self, reply: Reply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": reply.model,
        }
        if reply.raw_events is not None:
            for payload in reply.raw_events:
                self._event(payload)
            if reply.send_done:
                self._event("[DONE]")
            self._chunk(b"")
            return
        self._event(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ],
            }
        )
        for thought in reply.reasoning:
            self._event(
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": None, reply.reasoning_field: thought},
                            "finish_reason": None,
                        }
                    ],
                }
            )
        for n, text in enumerate(reply.texts):
            if reply.stall_after is not None and n == reply.stall_after:
                time.sleep(reply.stall_seconds)
                self.close_connection = True
                return
            if reply.disconnect_after is not None and n == reply.disconnect_after:
                # Drop the connection inside the chunked body: a real protocol error.
                self.wfile.write(b'ff\r\ndata: {"trunc')
                self.wfile.flush()
                self.close_connection = True
                return
            if reply.malformed_after is not None and n == reply.malformed_after:
                self._event("{this is not json")
                continue
            if reply.delay:
                time.sleep(reply.delay)
            self._event(
                {
                    **base,
                    "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
                }
            )
        if reply.finish_reason is not None:
            self._event(
                {
                    **base,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}],
                }
            )
        if reply.usage is not None:
            prompt, completion = reply.usage
            self._event(
                {
                    **base,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    },
                }
            )
        if reply.send_done:
            self._event("[DONE]")
        self._chunk(b"")  # the terminating zero-length chunk


def _completion(reply: Reply) -> dict[str, Any]:
    prompt, completion = reply.usage or (0, 0)
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(reply.texts)},
                "finish_reason": reply.finish_reason or "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted, for manual runs of the app: prints ``base_url`` first.

    ``--script FILE`` is a JSON list of :class:`Reply` keyword objects answered in
    order; after them (or without a script) every request gets the default reply.
    """
    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_openai")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--script", help="JSON list of Reply fields, one object per request")
    args = parser.parse_args(argv)
    server = FakeOpenAI().start(args.port)
    if args.script:
        with open(args.script, encoding="utf-8") as script:
            server.enqueue(*(Reply(**fields) for fields in json.load(script)))
    print(server.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
        sys.exit(0)


if __name__ == "__main__":
    main()
