"""Plain records shared by every layer: conversations, messages, search hits."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple


class Role(enum.StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class MessageStatus(enum.StrEnum):
    COMPLETE = "complete"
    STREAMING = "streaming"
    STOPPED = "stopped"
    ERROR = "error"
    INTERRUPTED = "interrupted"


class PolicyKind(enum.StrEnum):
    TOKEN_BUDGET = "token_budget"
    LAST_N = "last_n"
    SUMMARY = "summary"


@dataclass(frozen=True, slots=True)
class MemoryPolicy:
    """How much history a request carries.

    ``last_n`` is used by :attr:`PolicyKind.LAST_N`; ``recent_tokens`` optionally
    caps the recent part of :attr:`PolicyKind.SUMMARY` (``None`` = what fits).
    """

    kind: PolicyKind = PolicyKind.TOKEN_BUDGET
    last_n: int = 20
    recent_tokens: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "last_n": self.last_n, "recent_tokens": self.recent_tokens}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> MemoryPolicy:
        if not data:
            return cls()
        return cls(
            kind=PolicyKind(data.get("kind", PolicyKind.TOKEN_BUDGET)),
            last_n=int(data.get("last_n", 20)),
            recent_tokens=data.get("recent_tokens"),
        )


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, microseconds only when present."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def from_timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True)
class Message:
    """One node of a conversation's message tree."""

    id: str
    conversation_id: str
    parent_id: str | None
    role: Role
    content: str
    created_at: datetime
    status: MessageStatus = MessageStatus.COMPLETE
    model: str | None = None
    token_count: int | None = None
    pinned: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    depth: int = 0

    @property
    def hidden(self) -> bool:
        """Kept in the tree but not shown or sent (e.g. ChatGPT's hidden system nodes)."""
        return bool(self.metadata.get("hidden"))


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation's header; its messages are loaded separately."""

    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    pinned: bool = False
    archived: bool = False
    model: str | None = None
    provider: str | None = None
    system_prompt: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    memory_policy: MemoryPolicy = field(default_factory=MemoryPolicy)
    current_leaf_id: str | None = None
    message_count: int = 0
    summary: str | None = None
    summary_upto_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class ConversationLine(NamedTuple):
    """What a listing of many conversations shows of each: ``Conversation`` in brief,
    read without its settings and tree (the CLI lists thousands at once)."""

    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    message_count: int
    pinned: bool
    archived: bool
    model: str | None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A full-text match: which conversation and message, and a snippet.

    ``highlights`` are ``(start, end)`` character spans in ``snippet`` that
    matched the query. ``message_id`` is ``None`` for a title match.
    """

    conversation_id: str
    conversation_title: str
    message_id: str | None
    role: Role | None
    snippet: str
    highlights: tuple[tuple[int, int], ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ConversationTree:
    """A conversation with all of its messages: the unit of import and export.

    ``messages`` may come in any order; every ``parent_id`` names another
    message of the same tree (or is ``None`` for a root).
    """

    conversation: Conversation
    messages: list[Message]
