"""This app's own JSON export format (version 1) and Markdown, both ways where it applies.

The format is documented by ``resources/schema/desktop-chat-export.schema.json``.
Each conversation carries its active thread as plain OpenAI ``messages`` (for
reuse in API calls) and its whole ``tree``; importing the tree back is
lossless. Reading validates every field and names the first bad one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any, TypeVar

import orjson

from desktop_chat.core.types import (
    Conversation,
    ConversationTree,
    MemoryPolicy,
    Message,
    MessageStatus,
    Role,
    from_timestamp,
    to_iso,
    utcnow,
)
from desktop_chat.errors import BadInputError
from desktop_chat.storage.text import json_object, one_line, storable

FORMAT = "desktop-chat"
VERSION = 1

# A message as ``Repository.iter_message_rows`` gives it (see there for the columns).
Row = tuple[Any, ...]
T = TypeVar("T")
_fromtimestamp = datetime.fromtimestamp  # once per exported message


def active_thread(tree: ConversationTree) -> list[Message]:
    """The path from the current leaf to the root, root first."""
    by_id = {m.id: m for m in tree.messages}
    return _path(by_id, tree.conversation.current_leaf_id, lambda m: m.parent_id)


def _path(by_id: dict[str, T], leaf_id: str | None, parent: Callable[[T], str | None]) -> list[T]:
    """From ``leaf_id`` up to its root, root first (a cycle in bad data ends it)."""
    path: list[T] = []
    seen: set[str] = set()
    current_id = leaf_id
    while current_id is not None and current_id not in seen and current_id in by_id:
        seen.add(current_id)
        path.append(by_id[current_id])
        current_id = parent(by_id[current_id])
    path.reverse()
    return path


def openai_messages(
    conversation: Conversation, thread: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """The thread (``tree`` entries) as plain OpenAI chat ``messages``: system prompt,
    then what is shown.

    Tool messages are left out: the API only accepts them paired with the
    ``tool_calls`` that asked for them, which imported histories do not carry.
    """
    messages = []
    if conversation.system_prompt:
        messages.append({"role": "system", "content": conversation.system_prompt})
    for entry in thread:
        if entry["role"] != Role.TOOL and not entry.get("metadata", {}).get("hidden"):
            messages.append({"role": entry["role"], "content": entry["content"]})
    return messages


def message_json(message: Message) -> dict[str, Any]:
    """The message as the export's ``tree`` holds it (``encode`` writes it)."""
    fields = (
        message.id,
        message.parent_id,
        message.role,
        message.content,
        None,  # the stored time, given decoded below
        message.status,
        message.model,
        message.token_count,
        message.pinned,
        message.prompt_tokens,
        message.completion_tokens,
        message.error,
    )
    return _entry(fields, message.created_at, message.metadata)


def _entry(row: Row, created_at: datetime, metadata: dict[str, Any]) -> dict[str, Any]:
    """A ``tree`` entry from a stored row, its time and metadata decoded.

    The time is left a datetime for the encoder, role and status plain strings (or
    StrEnums): formatting them here was a noticeable part of exporting everything.
    """
    data: dict[str, Any] = {
        "id": row[0],
        "parent_id": row[1],
        "role": row[2],
        "content": row[3],
        "created_at": created_at,
        "status": row[5],
    }
    if row[6] is not None:
        data["model"] = row[6]
    if row[7] is not None:
        data["token_count"] = row[7]
    if row[9] is not None:
        data["prompt_tokens"] = row[9]
    if row[10] is not None:
        data["completion_tokens"] = row[10]
    if row[11] is not None:
        data["error"] = row[11]
    if row[8]:
        data["pinned"] = True
    if metadata:
        data["metadata"] = metadata
    return data


def conversation_json(conv: Conversation, rows: list[Row]) -> dict[str, Any]:
    """The conversation as the export holds it, from its stored message rows."""
    tree = [_entry(row, _fromtimestamp(row[4], UTC), json_object(row[12])) for row in rows]
    by_id = {entry["id"]: entry for entry in tree}
    thread = _path(by_id, conv.current_leaf_id, lambda entry: entry["parent_id"])
    return {
        "id": conv.id,
        "title": conv.title,
        "created_at": conv.created_at,
        "updated_at": conv.updated_at,
        "model": conv.model,
        "provider": conv.provider,
        "system_prompt": conv.system_prompt,
        "params": conv.params,
        "memory_policy": conv.memory_policy.to_json(),
        "pinned": conv.pinned,
        "archived": conv.archived,
        "summary": conv.summary,
        "summary_upto_id": conv.summary_upto_id,
        "metadata": conv.metadata,
        "current_leaf_id": conv.current_leaf_id,
        "messages": openai_messages(conv, thread),
        "tree": tree,
    }


def encode(document: Any) -> bytes:
    """Compact UTF-8 JSON, times as ISO 8601 UTC with a ``Z`` (``to_iso``); orjson where
    it can, the standard library where it cannot.

    orjson refuses integers beyond 64 bits (imported metadata may hold them).
    """
    try:
        return orjson.dumps(document, option=orjson.OPT_UTC_Z)
    except orjson.JSONEncodeError:
        return json.dumps(
            document, ensure_ascii=False, separators=(",", ":"), default=json_default
        ).encode()


def json_default(value: Any) -> str:
    """For ``json.dump``: the datetimes in ``message_json`` and ``conversation_json``."""
    if isinstance(value, datetime):
        return to_iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _byte_writer(out: IO[str]) -> Callable[[bytes], object]:
    """Write UTF-8 bytes to ``out``: straight to its buffer when it is a UTF-8 text file
    (no decoding and encoding again of a gigabyte), else as text."""
    raw = getattr(out, "buffer", None)
    encoding = (getattr(out, "encoding", None) or "").lower().replace("-", "")
    if raw is None or encoding != "utf8":
        return lambda data: out.write(data.decode())
    out.flush()
    return raw.write


def write_json(conversations: Iterable[tuple[Conversation, list[Row]]], out: IO[str]) -> int:
    """Stream an export document of ``conversations`` (as ``Repository.iter_message_rows``
    gives them) to ``out``; return how many it holds.

    Written piece by piece so exporting a large history never holds the whole
    document in memory.
    """
    write = _byte_writer(out)
    write(
        f'{{"format": "{FORMAT}", "version": {VERSION}, '
        f'"exported_at": "{to_iso(utcnow())}", "conversations": ['.encode()
    )
    count = 0
    for conversation, rows in conversations:
        write(b",\n" if count else b"\n")
        write(encode(conversation_json(conversation, rows)))
        count += 1
    write(b"\n]}\n")
    getattr(out, "buffer", out).flush()
    return count


def to_markdown(tree: ConversationTree) -> str:
    """The active thread as a readable Markdown document."""
    conv = tree.conversation
    lines = [f"# {conv.title or 'Untitled'}", ""]
    facts = [f"Created {to_iso(conv.created_at)}"]
    if conv.model:
        facts.append(f"model {conv.model}")
    lines += [f"*{', '.join(facts)}*", ""]
    if conv.system_prompt:
        lines += ["## System", "", conv.system_prompt, ""]
    names = {
        Role.USER: "You",
        Role.ASSISTANT: "Assistant",
        Role.SYSTEM: "System",
        Role.TOOL: "Tool",
    }
    for message in active_thread(tree):
        if message.hidden:
            continue
        heading = names[message.role]
        if message.role is Role.ASSISTANT and message.model:
            heading += f" ({message.model})"
        if message.status not in (MessageStatus.COMPLETE, MessageStatus.STREAMING):
            heading += f" [{message.status.value}]"
        lines += [f"## {heading}", "", message.content, ""]
    return "\n".join(lines).rstrip() + "\n"


# -- reading ---------------------------------------------------------------


class _Reader:
    """Field access that names the exact place of the first bad value."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise BadInputError(f"{where}: expected an object, got {_kind(data)}.")
        self.data = data
        self.where = where

    def _fail(self, key: str, expected: str) -> BadInputError:
        value = self.data.get(key)
        return BadInputError(f"{self.where}.{key}: expected {expected}, got {_kind(value)}.")

    def optional_text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise self._fail(key, "a string")
        return None if value is None else storable(value)

    def required_text(self, key: str) -> str:
        if key not in self.data:
            raise BadInputError(f"{self.where}: the field {key!r} is missing.")
        value = self.data[key]
        if not isinstance(value, str):
            raise self._fail(key, "a string")
        return storable(value)  # ids too: a lone surrogate cannot go into SQLite

    def time(self, key: str, *, fallback: datetime | None = None) -> datetime:
        value = self.data.get(key)
        if value is None and fallback is not None:
            return fallback
        if not isinstance(value, str):
            raise self._fail(key, "an ISO 8601 time")
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise self._fail(key, "an ISO 8601 time") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        try:
            # Stored as seconds since 1970: it must read back (in UTC, within years 1-9999).
            from_timestamp(moment.timestamp())
        except (OverflowError, OSError, ValueError):
            raise BadInputError(
                f"{self.where}.{key}: {value!r} is out of the range of times this app stores."
            ) from None
        return moment

    def integer(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._fail(key, "a whole number")
        if not -(2**63) <= value < 2**63:  # SQLite's INTEGER is 64 bits
            raise BadInputError(f"{self.where}.{key}: the number is too large.")
        return value

    def flag(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._fail(key, "an object")
        return value

    def array(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if not isinstance(value, list):
            raise self._fail(key, "an array")
        return value

    def choice(self, key: str, enum: type[Role] | type[MessageStatus], default: str) -> Any:
        value = self.data.get(key, default)
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(e.value for e in enum)
            raise BadInputError(f"{self.where}.{key}: {value!r} is not one of {allowed}.") from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "true/false"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def is_own_format(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == FORMAT


def parse_document(data: Any) -> Iterator[ConversationTree]:
    """Validate an export document and yield its conversations.

    Raises :class:`BadInputError` naming the first bad field, e.g.
    ``conversations[3].tree[5].created_at: expected an ISO 8601 time, got a number.``
    """
    doc = _Reader(data, "the file")
    if data.get("format") != FORMAT:
        raise BadInputError("This is not a Desktop Chat export (its 'format' is not desktop-chat).")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BadInputError("The export has no valid 'version' number.")
    if version > VERSION:
        raise BadInputError(
            f"This export is version {version}, newer than this app reads ({VERSION}). "
            "Update Desktop Chat to import it."
        )
    if version < 1:
        raise BadInputError(f"Unknown export version {version}.")
    for index, item in enumerate(doc.array("conversations")):
        yield _parse_conversation(item, f"conversations[{index}]")


def _parse_conversation(item: Any, where: str) -> ConversationTree:
    conv = _Reader(item, where)
    created = conv.time("created_at")
    messages = []
    for index, node in enumerate(conv.array("tree")):
        msg = _Reader(node, f"{where}.tree[{index}]")
        messages.append(
            Message(
                id=msg.required_text("id"),
                conversation_id=conv.required_text("id"),
                parent_id=msg.optional_text("parent_id"),
                role=msg.choice("role", Role, "user"),
                content=msg.required_text("content"),
                created_at=msg.time("created_at"),
                status=msg.choice("status", MessageStatus, "complete"),
                model=msg.optional_text("model"),
                token_count=msg.integer("token_count"),
                pinned=msg.flag("pinned"),
                prompt_tokens=msg.integer("prompt_tokens"),
                completion_tokens=msg.integer("completion_tokens"),
                error=msg.optional_text("error"),
                metadata=msg.mapping("metadata"),
            )
        )
    ids = {m.id for m in messages}
    for index, message in enumerate(messages):
        if message.parent_id is not None and message.parent_id not in ids:
            raise BadInputError(
                f"{where}.tree[{index}].parent_id: {one_line(message.parent_id)} "
                "is not in this tree."
            )
    leaf = conv.optional_text("current_leaf_id")
    if leaf is not None and leaf not in ids:
        raise BadInputError(f"{where}.current_leaf_id: {one_line(leaf)} is not in this tree.")
    policy = conv.mapping("memory_policy")
    recent = policy.get("recent_tokens")
    if recent is not None and (not isinstance(recent, int) or isinstance(recent, bool)):
        raise BadInputError(
            f"{where}.memory_policy.recent_tokens: expected a whole number, got {_kind(recent)}."
        )
    try:
        memory_policy = MemoryPolicy.from_json(policy)
    except (ValueError, TypeError, OverflowError):
        raise BadInputError(f"{where}.memory_policy: not a known memory policy.") from None
    conversation = Conversation(
        id=conv.required_text("id"),
        title=conv.optional_text("title") or "",
        created_at=created,
        updated_at=conv.time("updated_at", fallback=created),
        pinned=conv.flag("pinned"),
        archived=conv.flag("archived"),
        model=conv.optional_text("model"),
        provider=conv.optional_text("provider"),
        system_prompt=conv.optional_text("system_prompt") or "",
        params=conv.mapping("params"),
        memory_policy=memory_policy,
        current_leaf_id=leaf,
        message_count=len(messages),
        summary=conv.optional_text("summary"),
        summary_upto_id=conv.optional_text("summary_upto_id"),
        metadata=conv.mapping("metadata"),
    )
    return ConversationTree(conversation, messages)
