"""Readers for other apps' exports (ChatGPT, Claude) into conversation trees."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from desktop_chat.core.types import (
    Conversation,
    ConversationTree,
    Message,
    Role,
    from_timestamp,
)
from desktop_chat.errors import BadInputError

# Fixed forever: every imported id is derived from it, so re-importing a file
# (or a newer export of the same chats) maps onto the rows already stored.
NAMESPACE = uuid.UUID("731cc6c9-89a9-4847-9a4b-862f03d379f8")

# Longest tool input / result shown inline; the full value stays in metadata.
SHORT_TEXT = 160


def stable_id(*parts: str) -> str:
    """A uuid5 of ``"part:part:..."``, e.g. ``stable_id("chatgpt", conv_id, node_key)``."""
    name = ":".join(parts)
    try:
        return str(uuid.uuid5(NAMESPACE, name))
    except UnicodeEncodeError:
        # A lone surrogate (from a JSON escape) has no UTF-8: spell its bytes out, so
        # distinct keys keep distinct ids.
        name = name.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")
        return str(uuid.uuid5(NAMESPACE, name))


def fence(text: str, language: str = "") -> str:
    """A Markdown fenced block that survives backticks inside ``text``."""
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{text.rstrip(chr(10))}\n{ticks}"


def json_text(value: Any, *, indent: int | None = None) -> str:
    """Readable JSON for content we have no renderer for; never raises."""
    try:
        return json.dumps(value, ensure_ascii=False, indent=indent, default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(value)[:10_000]


def shorten(text: str, limit: int = SHORT_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def opt_str(value: Any) -> str | None:
    """Optional text fields: absent, null or of the wrong type all read as missing."""
    return value if isinstance(value, str) else None


def opt_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_time(value: Any) -> datetime | None:
    """Epoch seconds (number or numeric text) or ISO 8601 text; anything unusable is None.

    Times are optional everywhere, so a bad one falls back like a missing one
    instead of failing a whole import.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = value.strip()
    try:
        if isinstance(value, str):
            moment = datetime.fromisoformat(value)
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        elif isinstance(value, int | float) and math.isfinite(value):
            moment = datetime.fromtimestamp(value, UTC)
        else:
            return None
        # Stored as seconds, it must read back: 9999-12-31T23:59:59.999999 rounds to year 10000.
        from_timestamp(moment.timestamp())
    except (OverflowError, OSError, ValueError):
        # Also what astimezone past year 1 or 9999, and isfinite of a huge int, raise.
        return None
    return moment


@dataclass(slots=True)
class Node:
    """One source message before ids, times and the current leaf are settled.

    ``parent`` is the key of another Node (or None); ``rank`` orders siblings
    the way the source does; ``time`` is the source's own time, if any.
    """

    key: str
    parent: str | None
    role: Role
    content: str
    time: datetime | None
    rank: tuple[int, int]
    model: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def break_cycles(parent: dict[str, str | None]) -> None:
    """Make ``parent`` a forest, in place: a parent link that closes a loop is cut.

    A parent that is not a key of ``parent`` is cut too, so every remaining
    link points inside the same conversation. Iterative, so long chains are fine.
    """
    for key, up in list(parent.items()):
        if up is not None and (up not in parent or up == key):
            parent[key] = None
    done: set[str] = set()
    for start in parent:
        path: list[str] = []
        on_path: set[str] = set()
        current: str | None = start
        while current is not None and current not in done:
            if current in on_path:
                parent[current] = None  # the walk came back: cut the link that closes the loop
                break
            on_path.add(current)
            path.append(current)
            current = parent[current]
        done.update(path)


def preorder(nodes: dict[str, Node]) -> list[str]:
    """Keys parents-first, siblings in source order (``nodes`` must be a forest)."""
    children: dict[str | None, list[str]] = {}
    for key, node in nodes.items():
        children.setdefault(node.parent, []).append(key)
    for siblings in children.values():
        siblings.sort(key=lambda k: nodes[k].rank)
    order: list[str] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        key = stack.pop()
        order.append(key)
        stack.extend(reversed(children.get(key, [])))
    return order


def newest_leaf(nodes: dict[str, Node], order: list[str]) -> str | None:
    """The leaf with the latest source time; without times, the last leaf in tree order.

    The last key of a preorder walk is the leaf reached by always taking the
    last child, which is where the source's own UI would end up.
    """
    if not order:
        return None
    has_children = {node.parent for node in nodes.values()}
    position = {key: i for i, key in enumerate(order)}
    timed = [k for k in order if k not in has_children and nodes[k].time is not None]
    if timed:
        return max(timed, key=lambda k: (nodes[k].time, position[k]))
    return order[-1]


def assemble(
    *,
    source: str,
    source_id: str,
    title: str | None,
    nodes: dict[str, Node],
    created: datetime | None,
    updated: datetime | None,
    current: str | None,
    now: datetime,
    archived: bool = False,
    pinned: bool = False,
    model: str | None = None,
    conversation_metadata: dict[str, Any] | None = None,
) -> ConversationTree:
    """Settle a conversation's nodes into a :class:`ConversationTree`.

    ``nodes`` parents may name missing keys or form loops; those become roots.
    ``current`` (a key) that is unknown is replaced by the newest leaf. Missing
    conversation times fall back to the earliest/latest message time, then to
    each other, then to ``now``; a message without a time takes its parent's.
    An empty message that is not the current leaf (or any empty system
    message) is kept but hidden, as ChatGPT's UI does not show them either.
    """
    parent = {key: node.parent for key, node in nodes.items()}
    break_cycles(parent)
    for key, parent_key in parent.items():
        nodes[key].parent = parent_key
    order = preorder(nodes)
    if current not in nodes:
        current = newest_leaf(nodes, order)

    times = [node.time for node in nodes.values() if node.time is not None]
    created = created or (min(times) if times else None) or updated
    updated = updated or (max(times) if times else None) or created
    created = created or now
    updated = updated or now

    conversation_id = stable_id(source, source_id)
    ids = {key: stable_id(source, source_id, key) for key in nodes}
    settled: dict[str, tuple[datetime, int]] = {}
    messages: list[Message] = []
    for key in order:  # parents first, so a parent's time and depth are known
        node = nodes[key]
        up = settled.get(node.parent) if node.parent is not None else None
        moment = node.time or (up[0] if up else created)
        depth = up[1] + 1 if up else 0
        settled[key] = (moment, depth)
        metadata = node.metadata
        if not node.content.strip() and (node.role is Role.SYSTEM or key != current):
            metadata.setdefault("hidden", True)
            metadata.setdefault("hidden_reason", "empty")
        messages.append(
            Message(
                id=ids[key],
                conversation_id=conversation_id,
                parent_id=ids[node.parent] if node.parent is not None else None,
                role=node.role,
                content=node.content,
                created_at=moment,
                model=node.model,
                metadata=metadata,
                depth=depth,
            )
        )
    if model is None:
        # The model the conversation last answered with: the active thread's
        # last assistant message that names one, else any message that does.
        by_key = dict(zip(order, messages, strict=True))
        thread = [by_key[k] for k in reversed(thread_keys(nodes, current))]
        newest = sorted(messages, key=lambda m: m.created_at, reverse=True)
        model = next(
            (m.model for m in (*thread, *newest) if m.role is Role.ASSISTANT and m.model), None
        )
    conversation = Conversation(
        id=conversation_id,
        title=(title or "").strip() or "Untitled",
        created_at=created,
        updated_at=updated,
        pinned=pinned,
        archived=archived,
        model=model,
        current_leaf_id=ids[current] if current is not None else None,
        message_count=len(messages),
        metadata={"source": source, "source_id": source_id, **(conversation_metadata or {})},
    )
    return ConversationTree(conversation=conversation, messages=messages)


def thread_keys(nodes: dict[str, Node], leaf: str | None) -> list[str]:
    """Keys from the root down to ``leaf`` (``nodes`` must be a forest)."""
    path: list[str] = []
    while leaf is not None and leaf in nodes:
        path.append(leaf)
        leaf = nodes[leaf].parent
    path.reverse()
    return path


def conversation_list(data: Any, *, app: str, marker: str) -> list[Any]:
    """The conversations of an export: a list, ``{"conversations": [...]}``, or one object.

    ``marker`` is the key a single conversation object has (``mapping``,
    ``chat_messages``).
    """
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        if marker in data:
            return [data]
        inner = data.get("conversations")
        if isinstance(inner, list):
            return inner
    raise BadInputError(
        f"This is not a {app} export: expected a list of conversations, "
        f'an object with "conversations", or one conversation with "{marker}".'
    )


def first_conversation(data: Any, marker: str) -> Any:
    """The first conversation of an export shape (for format detection), or None."""
    if isinstance(data, dict):
        if marker in data:
            return data
        data = data.get("conversations")
    if isinstance(data, list) and data:
        return data[0]
    return None


def describe(app: str, index: int, conversation: Any) -> str:
    """``ChatGPT conversation #3 ("Title")``: how error messages name a conversation."""
    title = (
        opt_str(conversation.get("title") or conversation.get("name"))
        if isinstance(conversation, dict)
        else None
    )
    label = f"{app} conversation #{index + 1}"
    return f'{label} ("{shorten(title, 60)}")' if title else label
