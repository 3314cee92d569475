"""Claude's data export (``conversations.json``) read into conversation trees."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from desktop_chat.core.types import ConversationTree, Role, utcnow
from desktop_chat.errors import BadInputError
from desktop_chat.services.importers import (
    Node,
    assemble,
    conversation_list,
    describe,
    fence,
    first_conversation,
    json_text,
    opt_dict,
    opt_str,
    parse_time,
    shorten,
)

SOURCE = "claude"
SENDERS = {"human": Role.USER, "user": Role.USER, "assistant": Role.ASSISTANT}
# claude.ai's parent of a conversation's first message: "no parent".
ROOT_PARENT = "00000000-0000-4000-8000-000000000000"


def looks_like_claude(data: Any) -> bool:
    """True for Claude's shapes: conversations carry a ``chat_messages`` list."""
    first = first_conversation(data, "chat_messages")
    return isinstance(first, dict) and isinstance(first.get("chat_messages"), list)


def parse_claude(data: Any, *, now: datetime | None = None) -> Iterator[ConversationTree]:
    """Every conversation of a Claude export as a tree.

    With ``parent_message_uuid`` (newer exports) the branches of edits and
    retries are kept and the newest leaf is current; without it the messages
    form one chain in list order. Raises :class:`BadInputError` (one line
    naming the conversation and field) for structurally invalid input. ``now``
    stands in for times a conversation does not have at all.
    """
    conversations = conversation_list(data, app="Claude", marker="chat_messages")
    return _parse_all(conversations, now or utcnow())


def _parse_all(conversations: list[Any], now: datetime) -> Iterator[ConversationTree]:
    for index, conversation in enumerate(conversations):
        yield _parse_conversation(conversation, describe("Claude", index, conversation), now)


def _parse_conversation(conv: Any, where: str, now: datetime) -> ConversationTree:
    if not isinstance(conv, dict):
        raise BadInputError(f"{where} is not a JSON object.")
    source_id = opt_str(conv.get("uuid"))
    if not source_id:
        raise BadInputError(f'{where} has no "uuid".')
    chat = conv.get("chat_messages")
    if not isinstance(chat, list):
        raise BadInputError(f'{where} has no "chat_messages" list.')

    branched = any(isinstance(m, dict) and "parent_message_uuid" in m for m in chat)
    nodes: dict[str, Node] = {}
    previous: str | None = None
    for index, message in enumerate(chat):
        message_where = f"{where}, message #{index + 1}"
        if not isinstance(message, dict):
            raise BadInputError(f"{message_where} is not a JSON object.")
        key = opt_str(message.get("uuid"))
        if not key:
            raise BadInputError(f'{message_where} has no "uuid".')
        if key in nodes:
            raise BadInputError(f"{message_where}: the uuid {shorten(key, 60)} appears twice.")
        node = _node(key, message, f'{where}, message "{shorten(key, 60)}"', index)
        if branched and "parent_message_uuid" in message:
            parent = opt_str(message.get("parent_message_uuid"))
            node.parent = None if parent in (None, ROOT_PARENT) else parent
        else:
            node.parent = previous  # no link given: it follows the message listed before it
        nodes[key] = node
        previous = key

    current = opt_str(conv.get("current_leaf_message_uuid"))
    if current not in nodes:
        # Claude's export does not say which branch was open: the newest leaf
        # (by time, then list order) is the one the user worked on last.
        current = None if branched else previous

    metadata: dict[str, Any] = {}
    summary = opt_str(conv.get("summary"))
    if summary:
        metadata["source_summary"] = summary  # claude.ai's own recap, not our memory summary
    project = opt_dict(conv.get("project"))
    if opt_str(project.get("name")):
        metadata["project"] = project["name"]
    return assemble(
        source=SOURCE,
        source_id=source_id,
        title=opt_str(conv.get("name")),
        nodes=nodes,
        created=parse_time(conv.get("created_at")),
        updated=parse_time(conv.get("updated_at")),
        current=current,
        now=now,
        pinned=conv.get("is_starred") is True,
        model=opt_str(conv.get("model")),
        conversation_metadata=metadata,
    )


def _node(key: str, message: dict[str, Any], where: str, index: int) -> Node:
    sender = message.get("sender")
    if not isinstance(sender, str):
        raise BadInputError(f'{where}: "sender" is missing.')
    metadata: dict[str, Any] = {"source": SOURCE, "source_id": key, "source_message_id": key}
    role = SENDERS.get(sender)
    if role is None:
        role = Role.TOOL  # a sender this reader does not know: shown as a tool, original kept
        metadata["source_role"] = sender

    blocks = message.get("content")
    if isinstance(blocks, list) and blocks:
        body = _render_blocks(blocks, metadata)
    else:
        # Older exports (and some messages) carry only the flat text.
        body = opt_str(message.get("text")) or ""
    pieces = [body.strip()] if body.strip() else []
    pieces.extend(_attachments(message, metadata))
    content = "\n\n".join(pieces)
    if not content and metadata.get("thinking"):
        # Nothing but thinking: show it rather than an empty bubble.
        content = str(metadata["thinking"])
        metadata["reasoning"] = True
    return Node(
        key=key,
        parent=None,
        role=role,
        content=content,
        time=parse_time(message.get("created_at")),
        rank=(index, index),
        metadata=metadata,
    )


def _render_blocks(blocks: list[Any], metadata: dict[str, Any]) -> str:
    """Content blocks in order: text as is, tool calls and results as one short line each.

    Thinking is kept in ``metadata["thinking"]`` rather than the text, so the
    answer reads (and is sent back to a model) as the answer; the full tool
    inputs and results are kept in metadata too.
    """
    pieces: list[str] = []
    thinking: list[str] = []
    for block in blocks:
        if not isinstance(block, dict):
            pieces.append(json_text(block))
            continue
        kind = opt_str(block.get("type")) or "unknown"
        if kind == "text":
            pieces.append(opt_str(block.get("text")) or "")
        elif kind == "thinking":
            thinking.append((opt_str(block.get("thinking")) or "").strip())
        elif kind == "tool_use":
            pieces.append(_tool_use(block, metadata))
        elif kind == "tool_result":
            pieces.append(_tool_result(block, metadata))
        else:
            metadata.setdefault("block_types", []).append(kind)
            rest = {k: v for k, v in block.items() if k != "type"}
            pieces.append(f"[{kind}]\n{fence(json_text(rest, indent=2), 'json')}")
    if any(thinking):
        metadata["thinking"] = "\n\n".join(t for t in thinking if t)
    return "\n\n".join(p.strip() for p in pieces if p.strip())


def _tool_use(block: dict[str, Any], metadata: dict[str, Any]) -> str:
    name = opt_str(block.get("name")) or "tool"
    tool_input = block.get("input")
    metadata.setdefault("tool_uses", []).append(
        {"id": opt_str(block.get("id")), "name": name, "input": tool_input}
    )
    if tool_input in (None, {}, ""):
        return f"→ {name}"
    return f"→ {name}: {shorten(json_text(tool_input))}"


def _tool_result(block: dict[str, Any], metadata: dict[str, Any]) -> str:
    name = opt_str(block.get("name")) or "tool"
    items = block.get("content")
    texts: list[str] = []
    if isinstance(items, str):
        texts.append(items)
    elif isinstance(items, list):
        for item in items:
            item_dict = opt_dict(item)
            text = opt_str(item_dict.get("text")) or opt_str(item_dict.get("title"))
            texts.append(text if text is not None else json_text(item))
    elif items is not None:
        texts.append(json_text(items))
    is_error = block.get("is_error") is True
    metadata.setdefault("tool_results", []).append(
        {
            "tool_use_id": opt_str(block.get("tool_use_id")),
            "name": name,
            "is_error": is_error,
            "text": "\n\n".join(texts),
        }
    )
    label = f"← {name} (error)" if is_error else f"← {name}"
    summary = shorten(" | ".join(t for t in texts if t.strip()))
    return f"{label}: {summary}" if summary else label


def _attachments(message: dict[str, Any], metadata: dict[str, Any]) -> list[str]:
    """Attachments with the text Claude extracted from them (what the model read), and files.

    The extracted text is part of what the user sent, so it stays in the
    message, under the file's name, for later requests to carry it too.
    """
    pieces: list[str] = []
    attachments = message.get("attachments")
    for attachment in attachments if isinstance(attachments, list) else []:
        info = opt_dict(attachment)
        name = opt_str(info.get("file_name")) or "attachment"
        kept = {k: info[k] for k in ("file_name", "file_type", "file_size") if k in info}
        metadata.setdefault("attachments", []).append(kept)
        extracted = opt_str(info.get("extracted_content")) or ""
        pieces.append(f"[attachment: {name}]" + (f"\n{fence(extracted)}" if extracted else ""))
    files = message.get("files")
    for file in files if isinstance(files, list) else []:
        info = opt_dict(file)
        name = opt_str(info.get("file_name")) or opt_str(info.get("file_uuid")) or "file"
        kept = {k: info[k] for k in ("file_name", "file_uuid", "file_kind") if k in info}
        metadata.setdefault("files", []).append(kept)
        pieces.append(f"[file: {name}]")
    return pieces
