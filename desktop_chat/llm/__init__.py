"""The OpenAI SDK wrapped as a synchronous, cancellable stream of events.

Importing this package is cheap: the SDK itself is imported on first request.
"""

from desktop_chat.llm.client import (
    Cancel,
    ChatClient,
    Delta,
    Finished,
    ProviderConfig,
    StreamEvent,
    Thinking,
    Usage,
    is_retryable,
)

__all__ = [
    "Cancel",
    "ChatClient",
    "Delta",
    "Finished",
    "ProviderConfig",
    "StreamEvent",
    "Thinking",
    "Usage",
    "is_retryable",
]
