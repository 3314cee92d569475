"""Every failure the client knows, scripted on the fake server: one table for the CLI and GUI.

Each :class:`Fault` says how the fake server misbehaves, the words the user must
see, and what is stored: the reply row is always ``error``, with the text that
arrived before the failure (``partial``) kept in it. Failures the ``openai`` SDK
retries by itself before the first token (429, 5xx, timeouts, refused
connections) are scripted once per attempt, so the app's real retry policy runs
and still ends in the error.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import pytest

from desktop_chat.core.types import MessageStatus
from tests.support.fake_openai import Reply, error, stream

ATTEMPTS = 3  # the first try and the SDK's two retries (ProviderConfig.max_retries)
STALL_TIMEOUT = 0.5  # seconds; written to the provider's settings by the tests
RECOVERED = "Recovered answer."


@dataclass(frozen=True)
class Fault:
    id: str
    replies: tuple[Reply, ...]  # answered in order; empty when nothing listens
    words: tuple[str, ...]  # all of them appear in what the user is told
    partial: str = ""  # the reply text that arrived before the failure, kept
    status: MessageStatus = MessageStatus.ERROR
    refused: bool = False  # point the app at a port nothing listens on


def _every_attempt(reply: Reply) -> tuple[Reply, ...]:
    return (reply,) * ATTEMPTS


def _partial(**options: object) -> Reply:
    return stream("Partial", " answer", " never seen", **options)


FAULTS = [
    Fault(
        "401-bad-key",
        (error(401, "Incorrect API key provided", code="invalid_api_key"),),
        ("API key was rejected (401)", "Settings → Providers"),
    ),
    Fault(
        "403-forbidden",
        (error(403, "Forbidden", kind="permission_error"),),
        ("API key was rejected (403)", "Settings → Providers"),
    ),
    Fault(
        "404-no-model",
        (error(404, "The model `gpt-4o-mini` does not exist", code="model_not_found"),),
        ("does not know the model 'gpt-4o-mini' (404)", "Choose another model"),
    ),
    Fault(
        "429-rate-limit",
        _every_attempt(error(429, "Rate limit reached", code="rate_limit_exceeded")),
        ("rate-limiting requests (429)", "Wait a moment and retry"),
    ),
    Fault(
        "429-quota",
        _every_attempt(error(429, "You exceeded your current quota", code="insufficient_quota")),
        ("run out of credit (429 insufficient quota)", "Add credit"),
    ),
    Fault(
        "400-context-length",
        (
            error(
                400,
                "This model's maximum context length is 128000 tokens",
                code="context_length_exceeded",
            ),
        ),
        ("longer than the model's context window (400)", "smaller memory setting"),
    ),
    Fault(
        "500-server",
        _every_attempt(error(500, "Internal error", kind="server_error")),
        ("internal error (500)", "Retry in a moment"),
    ),
    Fault(
        "503-unavailable",
        _every_attempt(error(503, "Overloaded", kind="server_error")),
        ("(503)", "Retry in a moment"),
    ),
    Fault(
        "connection-refused",
        (),
        ("Could not reach", "the connection was refused", "Settings → Providers"),
        refused=True,
    ),
    Fault(
        "timeout-before-reply",
        _every_attempt(Reply(header_delay=STALL_TIMEOUT * 4)),
        ("did not answer in time", "retry"),
    ),
    Fault(
        "stall-mid-stream",
        (_partial(stall_after=2, stall_seconds=STALL_TIMEOUT * 4),),
        ("stopped sending the reply", "What arrived is kept"),
        partial="Partial answer",
    ),
    Fault(
        "disconnect-mid-stream",
        (_partial(disconnect_after=2),),
        ("connection to", "broke during the reply", "What arrived is kept"),
        partial="Partial answer",
    ),
    Fault(
        "malformed-chunk",
        (_partial(malformed_after=2),),
        ("malformed piece of the reply", "What arrived is kept"),
        partial="Partial answer",
    ),
    Fault(
        "empty-stream",
        (Reply(texts=[], finish_reason=None, usage=None),),
        ("answered with an empty reply", "context window"),
    ),
    Fault(
        "missing-done",
        (stream("Partial", " answer", finish_reason=None, usage=None, send_done=False),),
        ("ended before it was complete", "What arrived is kept"),
        partial="Partial answer",
    ),
]

FAULT_PARAMS = [pytest.param(fault, id=fault.id) for fault in FAULTS]
PARTIAL_FAULT_PARAMS = [pytest.param(fault, id=fault.id) for fault in FAULTS if fault.partial]


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return f"http://127.0.0.1:{port}/v1"
