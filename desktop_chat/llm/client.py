"""The official ``openai`` SDK behind a synchronous, cancellable generator of events.

``ChatClient.stream`` yields ``Delta`` (text), ``Usage`` (when the server
reports it) and exactly one ``Finished``. Every failure becomes an
:class:`~desktop_chat.errors.ApiError` whose message a user can act on and
whose ``kind`` callers and tests can branch on. The SDK is imported lazily so
starting the app or a CLI command does not pay for it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from desktop_chat.errors import ApiError
from desktop_chat.llm.warmup import prewarm

log = logging.getLogger(__name__)
LOCAL_KEY = "not-needed"  # the SDK insists on a key; local servers ignore it
_CANCEL_POLL_SECONDS = 0.05  # how late Stop may be while a plain Event waits on a silent server
_KEY_PATTERN = re.compile(r"(sk-[A-Za-z0-9_\-]{3})[A-Za-z0-9_\-*]{8,}")


@dataclass(frozen=True)
class ProviderConfig:
    name: str = "openai"
    base_url: str | None = None
    api_key: str | None = None
    timeout: float = 60.0  # whole request, for non-streamed calls
    connect_timeout: float = 10.0
    stall_timeout: float = 60.0  # the longest silence tolerated inside a stream
    max_retries: int = 2  # the SDK's own: connection errors, 429 and 5xx before any token


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Thinking:
    """Reasoning streamed before the answer (``reasoning_content`` from llama.cpp, vLLM and
    DeepSeek, ``reasoning`` from Ollama and OpenRouter)."""

    text: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Finished:
    reason: str | None  # "stop", "length", "content_filter", "cancelled", ...


StreamEvent = Delta | Thinking | Usage | Finished


class Cancel(threading.Event):
    """A cancel flag that can also interrupt a read blocked on a silent server.

    The stream checks the flag between chunks; ``set`` additionally closes the
    response that is being read, so Stop works even while nothing arrives.
    """

    def __init__(self) -> None:
        super().__init__()
        self._hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def on_set(self, hook: Callable[[], None]) -> None:
        with self._lock:
            self._hooks.append(hook)
        if self.is_set():
            hook()

    def remove_hook(self, hook: Callable[[], None]) -> None:
        """Forget a hook whose stream has ended (one flag may outlive many streams)."""
        with self._lock, contextlib.suppress(ValueError):
            self._hooks.remove(hook)

    def set(self) -> None:
        super().set()
        with self._lock:
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:  # closing a finished response may complain; it is closed
                log.debug("cancel hook failed", exc_info=True)


class ChatClient:
    """One provider's endpoint. Thread-safe: the SDK client is shared, streams are not."""

    def __init__(self, provider: ProviderConfig) -> None:
        self.provider = provider
        self._client: Any = None
        self._lock = threading.Lock()
        # (model, field) pairs the server refused; later requests adapt before asking.
        self._refused: set[tuple[str, str]] = set()

    @property
    def where(self) -> str:
        return self.provider.base_url or "api.openai.com"

    def _sdk(self) -> Any:
        with self._lock:
            if self._client is None:
                import httpx

                self._client = _openai().OpenAI(
                    api_key=self.provider.api_key or LOCAL_KEY,
                    base_url=self.provider.base_url or None,
                    timeout=httpx.Timeout(
                        self.provider.timeout,
                        connect=self.provider.connect_timeout,
                        read=self.provider.stall_timeout,
                    ),
                    max_retries=self.provider.max_retries,
                )
            return self._client

    # -- requests -------------------------------------------------------------

    def stream(
        self,
        model: str,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Generator[StreamEvent, None, None]:
        """Stream a reply; leaving the generator early (``close()``) closes the HTTP stream.

        ``cancel`` is checked before the request, after every chunk and after the
        consumer has handled each chunk's events; setting it also wakes a read
        blocked on a silent server (see :func:`_watch`).
        """
        cancel = cancel or threading.Event()
        if cancel.is_set():
            yield Finished("cancelled")
            return
        response = self._open_stream(model, messages, _options(temperature, max_tokens))
        stop_watching = _watch(cancel, response)
        got_text = False
        finish: str | None = None
        try:
            with response:
                for chunk in response:
                    if cancel.is_set():
                        break
                    for event in _chunk_events(chunk):
                        if isinstance(event, Finished):
                            finish = event.reason
                        else:
                            got_text = got_text or isinstance(event, Delta | Thinking)
                            yield event
                    # Stop pressed while the consumer handled these events: do not
                    # wait for (and show) another chunk first.
                    if cancel.is_set():
                        break
        except Exception as exc:
            if cancel.is_set():
                # The read was woken by cancel (socket shut down): not a failure.
                yield Finished("cancelled")
                return
            raise self._stream_error(exc, model, got_text) from exc
        finally:
            stop_watching()
        if cancel.is_set():
            yield Finished("cancelled")
            return
        if finish is None:
            raise self._unfinished(got_text)
        yield Finished(finish)

    def _unfinished(self, got_text: bool) -> ApiError:
        """A stream that ended without a finish reason (no ``[DONE]``, or nothing at all)."""
        if not got_text:
            # A real llama.cpp server answers an over-long streamed prompt this way.
            return ApiError(
                f"The server at {self.where} answered with an empty reply. The conversation "
                "may be longer than the model's context window on that server: try a "
                "smaller memory setting or a model with a larger window.",
                kind="empty",
            )
        return ApiError(
            f"The reply from {self.where} ended before it was complete (the connection "
            "closed early). What arrived is kept; use Continue or Retry.",
            kind="incomplete",
        )

    def _open_stream(
        self, model: str, messages: list[dict[str, str]], options: dict[str, Any]
    ) -> Any:
        """Start the request, with usage reported at the end where the server can."""
        openai = _openai()

        try:
            return self._create(
                model=model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                **options,
            )
        except openai.OpenAIError as exc:
            raise self._request_error(exc, model) from exc

    def _create(self, **request: Any) -> Any:
        """``chat.completions.create``, adapted to what this server refuses for this model.

        Servers differ on optional fields: older local servers reject
        ``stream_options``; OpenAI's reasoning models (o-series, gpt-5) reject
        ``max_tokens`` for ``max_completion_tokens`` and any ``temperature`` but
        the default. A 400 (or FastAPI's 422) naming such a field is answered by
        asking again without it, and remembered for the model.
        """
        openai = _openai()

        create = self._sdk().chat.completions.create
        while True:
            request = self._adapted(request)
            try:
                return create(**request)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                # Bounded: a field is named only while the request still carries it, and
                # the adapted request leaves out (or renames) every field refused so far.
                refused = _refused_field(exc, request)
                if refused is None:
                    raise
                log.info(
                    "the server refused %s for %s; asking without it", refused, request["model"]
                )
                with self._lock:
                    self._refused.add((request["model"], refused))

    def _adapted(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            refused = {name for model, name in self._refused if model == request["model"]}
        # OpenAI itself takes max_completion_tokens for every model (max_tokens is deprecated).
        if self._is_openai:
            refused.add("max_tokens")
        adapted = {k: v for k, v in request.items() if k not in refused}
        if "max_tokens" in refused and "max_tokens" in request:
            adapted["max_completion_tokens"] = request["max_tokens"]
        return adapted

    def complete(
        self,
        model: str,
        messages: list[dict[str, str]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> str:
        """One non-streamed request (titles, summaries); the reply's text."""
        openai = _openai()

        try:
            reply = self._create(
                model=model,
                messages=messages,
                stream=False,
                timeout=self._whole_request_timeout(),
                **_options(temperature, max_tokens),
            )
        except openai.OpenAIError as exc:
            raise self._request_error(exc, model) from exc
        choices = getattr(reply, "choices", None)
        if not isinstance(choices, list):
            raise ApiError(
                f"{self.where} sent a reply this app cannot read. Check the server URL in "
                "Settings → Providers.",
                kind="malformed",
                details=self._redact(repr(reply)[:2000]),
            )
        if not choices:
            raise ApiError(f"The server at {self.where} sent no reply.", kind="empty")
        message = getattr(choices[0], "message", None)
        return str(getattr(message, "content", None) or "")

    def list_models(self) -> list[str]:
        """The provider's model ids; [] when the server has no /models route."""
        openai = _openai()

        try:
            page = self._sdk().models.list(timeout=self._whole_request_timeout())
            return sorted({str(m.id) for m in page})
        except openai.NotFoundError:
            return []
        except openai.OpenAIError as exc:
            raise self._request_error(exc, None) from exc

    def _whole_request_timeout(self) -> Any:
        """Non-streamed replies arrive all at once: wait ``timeout``, not the stall bound."""
        import httpx

        return httpx.Timeout(self.provider.timeout, connect=self.provider.connect_timeout)

    # -- errors ---------------------------------------------------------------

    def _request_error(self, exc: Exception, model: str | None) -> ApiError:  # noqa: PLR0911
        """An SDK error before any token, in words a user can act on.

        (One return per kind of failure reads better than a table of lambdas.)
        """
        import openai

        status = getattr(exc, "status_code", None)
        body = _error_body(exc)
        code = str(body.get("code") or "")
        # Servers sometimes echo the key back ("Incorrect API key provided: sk-..."):
        # what they say is shown, stored and logged, so the key is cut out first.
        server_message = self._redact(
            str(body.get("message") or getattr(exc, "message", "") or exc)
        )
        details = f"{type(exc).__name__}: {server_message}"
        if isinstance(exc, openai.APITimeoutError):
            return ApiError(
                f"{self.where} did not answer in time. Check that the server is running and "
                "reachable, then retry.",
                kind="timeout",
                details=details,
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = self._redact(_cause_chain(exc))
            return ApiError(
                f"Could not reach {self.where} ({_connection_failure(exc)}). Check the server "
                "URL in Settings → Providers and that the server is running.",
                kind="connection",
                details=cause,
            )
        if status in (401, 403):
            return ApiError(
                f"The API key was rejected ({status}). Open Settings → Providers to replace it.",
                kind="auth",
                status=status,
                details=details,
            )
        if status == 404:
            name = f"the model {model!r}" if model else "that address"
            return ApiError(
                f"{self.where} does not know {name} (404). Choose another model in this chat's "
                "settings, or check the server URL in Settings → Providers.",
                kind="not_found",
                status=status,
                details=details,
            )
        if status == 429 and (code == "insufficient_quota" or "quota" in server_message.lower()):
            account = "Your OpenAI account has" if self._is_openai else "Your account has"
            return ApiError(
                f"{account} run out of credit (429 insufficient quota). Add credit or change "
                "the plan with your provider, then retry.",
                kind="quota",
                status=status,
                details=details,
            )
        if status == 429:
            return ApiError(
                "The provider is rate-limiting requests (429). Wait a moment and retry.",
                kind="rate_limit",
                status=status,
                details=details,
            )
        if status in (400, 413) and _is_context_length(body, server_message):
            return self._context_error(status, details)
        if status is not None and 400 <= status < 500:
            return ApiError(
                f"The server refused the request ({status}): {server_message}",
                kind="bad_request",
                status=status,
                details=details,
            )
        if status is not None and status >= 500:
            return ApiError(
                f"{self.where} had an internal error ({status}). Retry in a moment.",
                kind="server",
                status=status,
                details=details,
            )
        return ApiError(
            f"The request to {self.where} failed: {server_message}", kind="server", details=details
        )

    @property
    def _is_openai(self) -> bool:
        return not self.provider.base_url or "api.openai.com" in self.provider.base_url

    def _context_error(self, status: int | None, details: str) -> ApiError:
        code = f" ({status})" if status else ""
        return ApiError(
            f"The conversation is longer than the model's context window{code}. Choose a "
            "smaller memory setting or a model with a larger window.",
            kind="context_length",
            status=status,
            details=details,
        )

    def _redact(self, text: str) -> str:
        if self.provider.api_key:
            text = text.replace(self.provider.api_key, "[redacted]")
        return _KEY_PATTERN.sub(r"\1[redacted]", text)

    def _stream_error(self, exc: Exception, model: str, got_text: bool) -> ApiError:
        """An error while reading the stream (after the request was accepted)."""
        import httpx
        import openai

        details = self._redact(f"{type(exc).__name__}: {exc}")
        # Partial text is saved by the caller; say so only when there is some.
        after = "What arrived is kept; use Continue or Retry." if got_text else "Retry in a moment."
        if isinstance(exc, httpx.ReadTimeout | openai.APITimeoutError):
            return ApiError(
                f"{self.where} stopped sending the reply (nothing for "
                f"{self.provider.stall_timeout:g} s). {after}",
                kind="stalled",
                details=details,
            )
        # ValueError covers json.JSONDecodeError (a chunk that is not JSON) and
        # UnicodeDecodeError (bytes that are not UTF-8).
        if isinstance(exc, ValueError | _MalformedChunkError):
            return ApiError(
                f"{self.where} sent a malformed piece of the reply. {after} If it happens "
                "again, check that the server URL in Settings → Providers is an "
                "OpenAI-compatible API.",
                kind="malformed",
                details=details,
            )
        if isinstance(exc, httpx.TransportError):
            return ApiError(
                f"The connection to {self.where} broke during the reply. {after}",
                kind="incomplete",
                details=details,
            )
        if isinstance(exc, openai.APIStatusError):
            return self._request_error(exc, model)
        if isinstance(exc, openai.APIError):
            return self._error_event(exc, after)
        # Not a failure we know of: most likely a bug, so keep its traceback in the log.
        log.error("unexpected error while streaming from %s", self.where, exc_info=exc)
        return ApiError(
            f"Unexpected error while reading the reply from {self.where}: {self._redact(str(exc))}",
            kind="malformed",
            details=details,
        )

    def _error_event(self, exc: Exception, after: str) -> ApiError:
        """An ``{"error": ...}`` event inside a 200 stream.

        llama.cpp and proxies report an over-long prompt or a crashed worker this
        way; the SDK raises it as a bare ``APIError`` without a status.
        """
        body = _error_body(exc)
        message = self._redact(str(body.get("message") or exc))
        details = f"{type(exc).__name__}: {message}"
        if _is_context_length(body, message):
            return self._context_error(None, details)
        return ApiError(
            f"{self.where} reported an error during the reply: {message}. {after}",
            kind="server",
            details=details,
        )


def _openai() -> ModuleType:
    """The SDK, loaded by one thread while any other waits.

    Two threads importing it at once can leave one with a half-initialised pydantic
    module: PySide6's import hook reads module attributes in the middle of imports,
    and pydantic answers such reads with imports of its own. So a request that comes
    while the window's prewarm is loading the SDK waits for it rather than import beside it.
    """
    try:
        prewarm()
    except Exception:  # only a head start: the request itself says what is wrong
        log.warning("preparing the OpenAI SDK failed", exc_info=True)
    import openai

    return openai


def _watch(cancel: threading.Event, response: Any) -> Callable[[], None]:
    """Make ``cancel.set()`` wake a read blocked on a silent server; returns "stop watching".

    Checking the flag between chunks is not enough when no chunk comes: without
    this, Stop would wait for the stall timeout. A :class:`Cancel` calls us back
    on ``set``; a plain :class:`threading.Event` (what callers usually pass)
    cannot, so a daemon thread polls it for as long as the stream is open.
    """
    if isinstance(cancel, Cancel):

        def hook() -> None:
            _interrupt(response)

        cancel.on_set(hook)
        return lambda: cancel.remove_hook(hook)
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            if cancel.wait(_CANCEL_POLL_SECONDS):
                if not done.is_set():
                    _interrupt(response)
                return

    threading.Thread(target=poll, name="llm-cancel-watch", daemon=True).start()
    return done.set


def _interrupt(stream: Any) -> None:
    """Wake a read blocked in another thread by shutting its socket down.

    Closing an httpx response does not interrupt a ``recv`` already waiting on
    a silent server; shutting the socket down does, and the reading thread then
    closes the response itself (httpx responses are not meant to be closed from
    two threads at once). Without a reachable socket, closing is all we can do.
    """
    import socket

    response = getattr(stream, "response", None)
    network = response.extensions.get("network_stream") if response is not None else None
    sock = network.get_extra_info("socket") if network is not None else None
    if sock is None:
        stream.close()
        return
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def _refused_field(exc: Exception, request: dict[str, Any]) -> str | None:
    """The optional request field a 400 says the server does not accept, if any."""
    body = _error_body(exc)
    said = f"{body.get('message') or exc} {body.get('param') or ''}"
    if "stream_options" in request and ("stream_options" in said or "include_usage" in said):
        return "stream_options"
    # Only a refusal of the field itself, not a value out of range (vLLM: "'max_tokens' or
    # 'max_completion_tokens' is too large"; OpenAI: temperature above 2).
    unsupported = "unsupported" in said.lower() or "not supported" in said.lower()
    # OpenAI: "Unsupported parameter: 'max_tokens' ... Use 'max_completion_tokens' instead."
    if "max_tokens" in request and unsupported and "max_completion_tokens" in said:
        return "max_tokens"
    # OpenAI: "Unsupported value: 'temperature' does not support 0.2 with this model."
    if "temperature" in request and unsupported and body.get("param") == "temperature":
        return "temperature"
    return None


def _options(temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if temperature is not None:
        options["temperature"] = temperature
    if max_tokens is not None:
        options["max_tokens"] = max_tokens
    return options


class _MalformedChunkError(Exception):
    """A chunk that parsed as JSON but is not shaped like a chat completion chunk.

    The SDK builds chunks without validation (``[1, 2]`` arrives as a list,
    ``"choices": "abc"`` as a string), so the shape is checked here.
    """


_PRIMITIVES = (str, bytes, int, float, list, dict, type(None))


def _chunk_events(chunk: Any) -> Iterator[StreamEvent]:
    """The events in one streamed chunk (a Finished here only carries the reason)."""
    choices = getattr(chunk, "choices", None)
    if isinstance(chunk, _PRIMITIVES) or not isinstance(choices, list | None):
        raise _MalformedChunkError(f"unexpected chunk: {chunk!r:.300}")
    usage = getattr(chunk, "usage", None)
    if usage is not None:
        yield Usage(_count(usage, "prompt_tokens"), _count(usage, "completion_tokens"))
    for choice in choices or ():
        delta = getattr(choice, "delta", None)
        text = getattr(delta, "content", None)
        thought = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None)
        reason = getattr(choice, "finish_reason", None)
        if (
            isinstance(choice, _PRIMITIVES)
            or not isinstance(text, str | None)
            or not isinstance(reason, str | None)
        ):
            raise _MalformedChunkError(f"unexpected choice: {choice!r:.300}")
        if isinstance(thought, str) and thought:
            yield Thinking(thought)
        if text:
            yield Delta(text)
        if reason:
            yield Finished(reason)


def _count(usage: Any, name: str) -> int:
    """A token count from a usage record; servers that leave one out report 0, not a crash."""
    value = getattr(usage, name, None)
    return value if isinstance(value, int) else 0


def _error_body(exc: Exception) -> dict[str, Any]:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        return inner if isinstance(inner, dict) else body
    return {}


_CONTEXT_PHRASES = (
    "context length",  # OpenAI, vLLM ("maximum context length"), LM Studio, Ollama
    "context_length",
    "maximum context",
    "context window",
    "context size",  # llama.cpp: "exceeds the available context size"
    "too many tokens",
    "input is too long",
)


def _is_context_length(body: dict[str, Any], message: str) -> bool:
    """Whether an error says the prompt does not fit the model's window."""
    tags = f"{body.get('code') or ''} {body.get('type') or ''}"
    if "context_length_exceeded" in tags or "exceed_context_size" in tags:
        return True
    text = message.lower()
    return any(phrase in text for phrase in _CONTEXT_PHRASES)


def _cause_chain(exc: BaseException) -> str:
    """The exception and its causes, innermost last: the real reason behind "Connection error."."""
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(parts) < 8:
        parts.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    return " <- ".join(parts)


def _connection_failure(exc: BaseException) -> str:
    """Why a connection failed, in a few words (the SDK only says "Connection error.")."""
    import socket

    seen: BaseException | None = exc
    text = ""
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return "its name could not be resolved"
        if isinstance(seen, ConnectionRefusedError):
            return "the connection was refused"
        text += f" {seen}"
        seen = seen.__cause__ or seen.__context__
    # httpx can flatten the OSError into its message; fall back to the words.
    if any(s in text for s in ("Name or service not known", "nodename", "getaddrinfo")):
        return "its name could not be resolved"
    if "refused" in text.lower():
        return "the connection was refused"
    return "the connection failed"


def is_retryable(error: ApiError) -> bool:
    """Worth retrying as is (as opposed to needing a settings change)."""
    return error.kind in ("rate_limit", "server", "connection", "timeout", "stalled", "incomplete")
