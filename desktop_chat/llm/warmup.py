"""Load the OpenAI SDK's lazily imported parts ahead of the first request.

The SDK imports dozens of modules and builds pydantic schemas on first use,
about a second on this class of machine. The window starts this in the
background right after its first paint, so the user's first Send does not
pay for it. Every ``ChatClient`` calls ``prewarm`` before it touches the SDK,
so no two threads import it at once (see ``client._openai``). (A crash first
blamed on importing in a thread was PySide6 6.12.0's signal bug; see
pyproject.toml and tests/gui/test_qt_threads.py.)
"""

from __future__ import annotations

import threading

_done = threading.Event()
_lock = threading.Lock()


def prewarm() -> None:
    """Import and initialise what a request needs. Idempotent, thread-safe, offline.

    Tried once: should warming up fail (an SDK release that validates differently),
    requests go on without it rather than each trying again and failing the same way.
    """
    if _done.is_set():
        return
    with _lock:
        if not _done.is_set():
            try:
                _load()
            finally:
                _done.set()


def _load() -> None:
    import httpx
    import openai
    from openai.types import Model
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    client = openai.OpenAI(api_key="prewarm", base_url="http://127.0.0.1:9/v1", max_retries=0)
    # Touching the resources imports them; validating builds the pydantic schemas.
    _ = (client.chat.completions, client.models, httpx.Timeout(1.0))
    ChatCompletionChunk.model_validate(
        {
            "id": "x",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}],
        }
    )
    ChatCompletion.model_validate(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "x"},
                    "finish_reason": "stop",
                }
            ],
        }
    )
    Model.model_validate({"id": "m", "object": "model", "created": 0, "owned_by": "x"})
    client.close()
