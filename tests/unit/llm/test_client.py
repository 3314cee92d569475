"""The LLM client through the real openai SDK against the fake server over real HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from desktop_chat.errors import ApiError
from desktop_chat.llm.client import (
    Cancel,
    ChatClient,
    Delta,
    Finished,
    ProviderConfig,
    Thinking,
    Usage,
    is_retryable,
)
from tests.support.fake_openai import FakeOpenAI, Reply, error, stream

MESSAGES = [{"role": "user", "content": "Hi"}]


def client_for(server: FakeOpenAI, **options: object) -> ChatClient:
    config = {"base_url": server.base_url, "api_key": "sk-test", "max_retries": 0}
    config.update(options)
    return ChatClient(ProviderConfig(**config))  # type: ignore[arg-type]


def test_streams_deltas_usage_and_finish(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(stream("Hel", "lo", "!", usage=(7, 3)))
    events = list(client_for(fake_openai).stream("gpt-4o-mini", MESSAGES, temperature=0.2))
    assert [e.text for e in events if isinstance(e, Delta)] == ["Hel", "lo", "!"]
    assert Usage(7, 3) in events
    assert events[-1] == Finished("stop")
    assert sum(isinstance(e, Finished) for e in events) == 1
    body = fake_openai.chat_requests()[0].body
    assert body["messages"] == MESSAGES
    assert body["model"] == "gpt-4o-mini"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.2
    assert fake_openai.chat_requests()[0].headers["Authorization"] == "Bearer sk-test"


def test_works_without_usage(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(stream("ok", usage=None, finish_reason="length"))
    events = list(client_for(fake_openai).stream("m", MESSAGES))
    assert not any(isinstance(e, Usage) for e in events)
    assert events == [Delta("ok"), Finished("length")]
    body = fake_openai.chat_requests()[0].body
    # Unset options are left out rather than sent as null, which some servers reject.
    assert "temperature" not in body
    assert "max_tokens" not in body


@pytest.mark.parametrize("status", [400, 422])
def test_retries_without_stream_options_when_rejected(fake_openai: FakeOpenAI, status: int) -> None:
    fake_openai.enqueue(Reply(texts=["fine"], reject_stream_options=True, reject_status=status))
    events = list(client_for(fake_openai).stream("m", MESSAGES))
    assert [e.text for e in events if isinstance(e, Delta)] == ["fine"]
    first, second = fake_openai.chat_requests()
    assert "stream_options" in first.body
    assert "stream_options" not in second.body


def test_a_reasoning_model_gets_the_fields_it_takes(fake_openai: FakeOpenAI) -> None:
    """Like OpenAI's o-series and gpt-5: max_tokens and temperature are refused with a 400;
    the client asks again without them, and remembers it for the next request."""
    client = client_for(fake_openai)
    reasoning = ("max_tokens", "temperature")
    fake_openai.enqueue(stream("thought", refuse=reasoning))
    events = list(client.stream("o9", MESSAGES, temperature=0.2, max_tokens=500))
    assert [e.text for e in events if isinstance(e, Delta)] == ["thought"]
    accepted = fake_openai.chat_requests()[-1].body
    assert accepted["max_completion_tokens"] == 500
    assert "max_tokens" not in accepted
    assert "temperature" not in accepted
    assert len(fake_openai.chat_requests()) == 3

    fake_openai.enqueue(Reply(texts=["A title"], refuse=reasoning))
    assert client.complete("o9", MESSAGES, max_tokens=24, temperature=0.2) == "A title"
    assert len(fake_openai.chat_requests()) == 4  # learned: no refused request this time
    assert fake_openai.chat_requests()[-1].body["max_completion_tokens"] == 24

    fake_openai.enqueue(stream("plain"))  # another model on the same server keeps its fields
    list(client.stream("gpt-4o-mini", MESSAGES, temperature=0.2, max_tokens=500))
    assert fake_openai.chat_requests()[-1].body["max_tokens"] == 500
    assert fake_openai.chat_requests()[-1].body["temperature"] == 0.2


def test_openai_itself_is_sent_max_completion_tokens() -> None:
    """api.openai.com takes it for every model (max_tokens is deprecated there)."""
    request = {"model": "gpt-5", "max_tokens": 24}
    assert ChatClient(ProviderConfig())._adapted(request) == {
        "model": "gpt-5",
        "max_completion_tokens": 24,
    }
    local = ChatClient(ProviderConfig(base_url="http://127.0.0.1:8080/v1"))
    assert local._adapted(request) == request


@pytest.mark.parametrize(
    ("message", "param"),
    [
        # OpenAI: a value out of range, not a refused field.
        (
            "max_tokens is too large: 900000. This model supports at most 16384 completion tokens.",
            "max_tokens",
        ),
        # vLLM: names max_completion_tokens too, and is about the context length.
        (
            "'max_tokens' or 'max_completion_tokens' is too large: 900000. This model's "
            "maximum context length is 4096 tokens and your request has 12 input tokens.",
            None,
        ),
        ("-1 is less than the minimum of 0 - 'temperature'", "temperature"),
    ],
)
def test_other_bad_requests_are_not_retried(
    fake_openai: FakeOpenAI, message: str, param: str | None
) -> None:
    body = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    fake_openai.enqueue(Reply(status=400, error=body))
    with pytest.raises(ApiError) as info:
        list(client_for(fake_openai).stream("m", MESSAGES, max_tokens=900_000, temperature=-1))
    assert message in (info.value.details or "") + info.value.message
    assert len(fake_openai.chat_requests()) == 1


def test_cancel_between_chunks_closes_the_stream(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(stream(*[f"w{i} " for i in range(200)], delay=0.02))
    cancel = threading.Event()
    seen = []
    for event in client_for(fake_openai).stream("m", MESSAGES, cancel=cancel):
        seen.append(event)
        if len(seen) == 3:
            cancel.set()
    assert seen[-1] == Finished("cancelled")
    assert len([e for e in seen if isinstance(e, Delta)]) == 3
    deadline = time.monotonic() + 5
    while not fake_openai.chat_requests()[0].client_went_away and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_openai.chat_requests()[0].client_went_away


@pytest.mark.parametrize("flag", [Cancel, threading.Event])
def test_cancel_interrupts_a_silent_server(fake_openai: FakeOpenAI, flag: type) -> None:
    fake_openai.enqueue(stream("a", "b", stall_after=1, stall_seconds=10))
    cancel = flag()
    started = time.monotonic()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    events = list(client_for(fake_openai, stall_timeout=30).stream("m", MESSAGES, cancel=cancel))
    timer.join()
    assert events == [Delta("a"), Finished("cancelled")]
    assert time.monotonic() - started < 3  # not the 30 s stall timeout


def test_cancel_already_set_sends_nothing(fake_openai: FakeOpenAI) -> None:
    cancel = threading.Event()
    cancel.set()
    assert list(client_for(fake_openai).stream("m", MESSAGES, cancel=cancel)) == [
        Finished("cancelled")
    ]
    assert fake_openai.requests == []


def test_cancel_while_the_consumer_handles_a_delta_does_not_wait_for_more(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.enqueue(stream("a", "b", stall_after=1, stall_seconds=3))
    cancel = threading.Event()
    seen = []
    started = time.monotonic()
    for event in client_for(fake_openai, stall_timeout=30).stream("m", MESSAGES, cancel=cancel):
        seen.append(event)
        cancel.set()  # Stop pressed while the first delta is on screen
    assert seen == [Delta("a"), Finished("cancelled")]
    assert time.monotonic() - started < 2


def test_a_reused_cancel_flag_does_not_keep_finished_streams(fake_openai: FakeOpenAI) -> None:
    cancel = Cancel()
    client = client_for(fake_openai)
    for _ in range(3):
        assert list(client.stream("m", MESSAGES, cancel=cancel))[-1] == Finished("stop")
    assert cancel._hooks == []  # each stream unregisters its interrupt hook when it ends


def test_closing_the_generator_closes_the_stream(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(stream(*[f"w{i} " for i in range(200)], delay=0.02))
    events = client_for(fake_openai).stream("m", MESSAGES)
    next(events)
    events.close()
    deadline = time.monotonic() + 5
    while not fake_openai.chat_requests()[0].client_went_away and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_openai.chat_requests()[0].client_went_away


@pytest.mark.parametrize(
    ("reply", "kind", "words"),
    [
        (error(401, "Incorrect API key provided", code="invalid_api_key"), "auth", "Settings"),
        (error(403, "Forbidden"), "auth", "rejected"),
        (
            error(404, "The model `nope` does not exist", code="model_not_found"),
            "not_found",
            "nope",
        ),
        (error(429, "Rate limit reached", code="rate_limit_exceeded"), "rate_limit", "Wait"),
        (
            error(429, "You exceeded your current quota", code="insufficient_quota"),
            "quota",
            "credit",
        ),
        (
            error(
                400,
                "This model's maximum context length is 8192 tokens",
                code="context_length_exceeded",
            ),
            "context_length",
            "context window",
        ),
        (error(400, "Invalid value for temperature"), "bad_request", "temperature"),
        (
            error(
                400,
                "request (9000 tokens) exceeds the available context size (4096 tokens)",
                kind="exceed_context_size_error",
            ),
            "context_length",
            "memory setting",
        ),
        (error(500, "Internal error", kind="server_error"), "server", "500"),
        (error(503, "Overloaded", kind="server_error"), "server", "503"),
    ],
)
def test_http_errors_become_actionable_api_errors(
    fake_openai: FakeOpenAI, reply: Reply, kind: str, words: str
) -> None:
    fake_openai.enqueue(reply)
    with pytest.raises(ApiError) as info:
        list(client_for(fake_openai).stream("nope", MESSAGES))
    assert info.value.kind == kind
    assert words in info.value.message
    assert info.value.status == reply.status
    assert reply.error is not None
    assert reply.error["message"] in (info.value.details or "")
    assert is_retryable(info.value) == (kind in ("rate_limit", "server"))


def test_stall_mid_stream_is_a_timeout(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(stream("a", "b", "c", stall_after=2, stall_seconds=3))
    seen: list[object] = []
    events = client_for(fake_openai, stall_timeout=0.5).stream("m", MESSAGES)
    with pytest.raises(ApiError) as info:
        seen.extend(events)
    assert info.value.kind == "stalled"
    assert "What arrived is kept" in info.value.message
    assert [e.text for e in seen if isinstance(e, Delta)] == ["a", "b"]


def test_disconnect_mid_stream(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(stream("a", "b", "c", disconnect_after=2))
    seen: list[object] = []
    with pytest.raises(ApiError) as info:
        seen.extend(client_for(fake_openai).stream("m", MESSAGES))
    assert info.value.kind == "incomplete"
    assert seen == [Delta("a"), Delta("b")]
    assert "RemoteProtocolError" in (info.value.details or "")


def test_malformed_chunk(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(stream("a", "b", "c", malformed_after=1))
    seen: list[object] = []
    with pytest.raises(ApiError) as info:
        seen.extend(client_for(fake_openai).stream("m", MESSAGES))
    assert info.value.kind == "malformed"
    assert seen == [Delta("a")]
    assert "JSONDecodeError" in (info.value.details or "")


def chunk(content: Any, finish: Any = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}


@pytest.mark.parametrize(
    "payload",
    [
        "[1, 2]",
        '"just a string"',
        {"choices": "abc"},
        {"choices": [1]},
        chunk(5),
        chunk("x", finish=7),
    ],
    ids=["list", "string", "choices-string", "choice-int", "content-int", "finish-int"],
)
def test_chunks_of_an_unexpected_shape_are_malformed(fake_openai: FakeOpenAI, payload: Any) -> None:
    # The SDK builds chunks without validating them; the client has to notice.
    fake_openai.enqueue(Reply(raw_events=[chunk("ok"), payload, chunk("never", "stop")]))
    seen: list[object] = []
    with pytest.raises(ApiError) as info:
        seen.extend(client_for(fake_openai).stream("m", MESSAGES))
    assert info.value.kind == "malformed"
    assert "What arrived is kept" in info.value.message
    assert seen == [Delta("ok")]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_is_streamed_apart_from_the_answer(fake_openai: FakeOpenAI, field: str) -> None:
    fake_openai.enqueue(
        stream("42", reasoning=["Let me", " think."], reasoning_field=field, usage=None)
    )
    events = list(client_for(fake_openai).stream("m", MESSAGES))
    assert events == [Thinking("Let me"), Thinking(" think."), Delta("42"), Finished("stop")]


def test_tolerates_chunks_without_choices_and_partial_usage(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        Reply(
            raw_events=[
                {"id": "keep-alive"},
                chunk("hi", "stop"),
                {"choices": None, "usage": {"prompt_tokens": 5}},
            ]
        )
    )
    events = list(client_for(fake_openai).stream("m", MESSAGES))
    assert events == [Delta("hi"), Usage(5, 0), Finished("stop")]


@pytest.mark.parametrize(
    ("error_body", "kind", "words"),
    [
        (
            {
                "code": 400,
                "message": "request (4476 tokens) exceeds the available context size (4096 tokens)",
                "type": "exceed_context_size_error",
            },
            "context_length",
            "context window",
        ),
        ({"message": "worker crashed", "type": "server_error"}, "server", "worker crashed"),
    ],
)
def test_error_event_inside_a_stream(
    fake_openai: FakeOpenAI, error_body: dict[str, Any], kind: str, words: str
) -> None:
    fake_openai.enqueue(Reply(raw_events=[chunk("par"), {"error": error_body}]))
    seen: list[object] = []
    with pytest.raises(ApiError) as info:
        seen.extend(client_for(fake_openai).stream("m", MESSAGES))
    assert info.value.kind == kind
    assert words in info.value.message
    assert seen == [Delta("par")]
    assert error_body["message"] in (info.value.details or "")


def test_stream_without_done_or_finish_is_incomplete(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(stream("a", "b", finish_reason=None, usage=None, send_done=False))
    with pytest.raises(ApiError) as info:
        list(client_for(fake_openai).stream("m", MESSAGES))
    assert info.value.kind == "incomplete"


def test_missing_done_after_a_finish_reason_is_fine(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(stream("a", send_done=False))
    assert list(client_for(fake_openai).stream("m", MESSAGES))[-1] == Finished("stop")


@pytest.mark.parametrize(
    "reply",
    [
        Reply(texts=[], finish_reason=None, usage=None, send_done=True),
        Reply(raw_events=[], send_done=False),  # 200 and not a single byte of body
        Reply(raw_events=[], send_done=True),
    ],
    ids=["role-chunk-and-done", "no-body", "only-done"],
)
def test_empty_200_stream(fake_openai: FakeOpenAI, reply: Reply) -> None:
    fake_openai.enqueue(reply)
    with pytest.raises(ApiError) as info:
        list(client_for(fake_openai).stream("m", MESSAGES))
    assert info.value.kind == "empty"
    assert "context window" in info.value.message


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_names_the_server() -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/v1"
    client = ChatClient(ProviderConfig(base_url=base_url, max_retries=0))
    with pytest.raises(ApiError) as info:
        list(client.stream("m", MESSAGES))
    assert info.value.kind == "connection"
    assert base_url in info.value.message
    assert "refused" in info.value.message
    assert "Settings → Providers" in info.value.message
    assert is_retryable(info.value)


def test_dns_failure_names_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    # Resolution fails in the socket layer (below httpx and the SDK), so the test
    # needs no network and no resolver.
    def no_such_name(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    client = ChatClient(ProviderConfig(base_url="http://llm.example.invalid/v1", max_retries=0))
    with pytest.raises(ApiError) as info:
        client.list_models()
    assert info.value.kind == "connection"
    assert "http://llm.example.invalid/v1" in info.value.message
    assert "could not be resolved" in info.value.message
    assert "gaierror" in (info.value.details or "")


def test_no_answer_before_the_timeout(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(header_delay=1.5))
    with pytest.raises(ApiError) as info:
        list(client_for(fake_openai, stall_timeout=0.3).stream("m", MESSAGES))
    assert info.value.kind == "timeout"
    assert fake_openai.base_url in info.value.message
    assert is_retryable(info.value)


def test_complete_waits_for_the_whole_request_timeout_not_the_stall_bound(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.enqueue(Reply(texts=["slow but fine"], header_delay=0.6))
    client = client_for(fake_openai, stall_timeout=0.2, timeout=5)
    assert client.complete("m", MESSAGES) == "slow but fine"
    fake_openai.enqueue(Reply(header_delay=1.5))
    with pytest.raises(ApiError) as info:
        client_for(fake_openai, stall_timeout=30, timeout=0.3).complete("m", MESSAGES)
    assert info.value.kind == "timeout"


def test_sdk_retries_a_500_before_the_first_token(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(error(500, "boom", kind="server_error"), stream("after retry"))
    events = list(client_for(fake_openai, max_retries=1).stream("m", MESSAGES))
    assert [e.text for e in events if isinstance(e, Delta)] == ["after retry"]
    assert len(fake_openai.chat_requests()) == 2


def test_complete_and_models(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(stream("A short", " title"))
    client = client_for(fake_openai)
    assert client.complete("m", MESSAGES, max_tokens=20) == "A short title"
    assert fake_openai.chat_requests()[0].body["stream"] is False
    assert fake_openai.chat_requests()[0].body["max_tokens"] == 20
    assert client.list_models() == ["gpt-4o", "gpt-4o-mini"]
    assert fake_openai.requests[-1].path == "/v1/models"
    fake_openai.models = None  # a server without /models
    assert client.list_models() == []


def test_complete_maps_errors(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(error(404, "model 'gone' not found", code="model_not_found"))
    with pytest.raises(ApiError) as info:
        client_for(fake_openai).complete("gone", MESSAGES)
    assert info.value.kind == "not_found"
    assert "'gone'" in info.value.message


def test_list_models_with_a_rejected_key(fake_openai: FakeOpenAI) -> None:
    fake_openai.models = error(401, "Incorrect API key provided", code="invalid_api_key")
    with pytest.raises(ApiError) as info:
        client_for(fake_openai).list_models()
    assert info.value.kind == "auth"
    assert "Settings → Providers" in info.value.message


def test_local_servers_get_a_placeholder_key(fake_openai: FakeOpenAI) -> None:
    client = ChatClient(ProviderConfig(base_url=fake_openai.base_url, max_retries=0))
    assert client.complete("m", MESSAGES) == "Hello from the fake server."
    assert fake_openai.chat_requests()[0].headers["Authorization"] == "Bearer not-needed"


def test_importing_the_package_leaves_the_sdk_and_qt_unloaded() -> None:
    code = (
        "import sys, desktop_chat.llm; "
        "print(sorted(m for m in ('openai', 'httpx', 'PySide6') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == "[]"


def test_a_request_waits_while_another_thread_loads_the_sdk(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing the SDK from two threads at once once left a reply empty: pydantic came
    back half-initialised to the request's thread while the window's prewarm imported it."""
    from desktop_chat.llm import warmup

    warmup.prewarm()  # loaded already, so only waiting can hold the request back
    monkeypatch.setattr(warmup, "_done", threading.Event())  # as while it is loading
    fake_openai.enqueue(stream("Loaded."))
    events: list[Any] = []
    request = threading.Thread(
        target=lambda: events.extend(client_for(fake_openai).stream("m", MESSAGES))
    )
    with warmup._lock:  # what the prewarm holds while it loads
        request.start()
        request.join(0.5)
        assert request.is_alive()
        assert not fake_openai.requests
    request.join(10)
    assert [e.text for e in events if isinstance(e, Delta)] == ["Loaded."]


def test_a_failed_warm_up_does_not_stop_requests(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tried once; the request goes on and the next one does not try again."""
    from desktop_chat.llm import warmup

    tries: list[int] = []

    def broken() -> None:
        tries.append(1)
        raise ValueError("the SDK validates differently now")

    monkeypatch.setattr(warmup, "_done", threading.Event())
    monkeypatch.setattr(warmup, "_load", broken)
    fake_openai.enqueue(stream("Still here."), stream("Again."))
    for text in ("Still here.", "Again."):
        events = list(client_for(fake_openai).stream("m", MESSAGES))
        assert [e.text for e in events if isinstance(e, Delta)] == [text]
    assert tries == [1]
