"""ChatGPT's data export (``conversations.json``) read into conversation trees."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from desktop_chat.core.types import ConversationTree, Role, utcnow
from desktop_chat.errors import BadInputError
from desktop_chat.services.importers import (
    Node,
    assemble,
    break_cycles,
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

SOURCE = "chatgpt"
ROLES = {role.value: role for role in Role}
# Content types whose text is the model thinking, not its answer.
REASONING_TYPES = {"thoughts", "reasoning_recap"}


def looks_like_chatgpt(data: Any) -> bool:
    """True for ChatGPT's shapes: conversations carry a ``mapping`` of nodes.

    An empty list counts too: it is what ChatGPT exports for an account without
    chats, and importing it should add nothing rather than fail.
    """
    if isinstance(data, list) and not data:
        return True
    first = first_conversation(data, "mapping")
    return isinstance(first, dict) and isinstance(first.get("mapping"), dict)


def parse_chatgpt(data: Any, *, now: datetime | None = None) -> Iterator[ConversationTree]:
    """Every conversation of a ChatGPT export, whole trees with hidden nodes kept.

    ``data`` is the parsed JSON: a list of conversations, ``{"conversations":
    [...]}`` or one conversation object. Raises :class:`BadInputError` (one
    line naming the conversation and field) for structurally invalid input;
    the shape of the whole file is checked before the first conversation is
    read. ``now`` stands in for times a conversation does not have at all.
    """
    conversations = conversation_list(data, app="ChatGPT", marker="mapping")
    return _parse_all(conversations, now or utcnow())


def _parse_all(conversations: list[Any], now: datetime) -> Iterator[ConversationTree]:
    for index, conversation in enumerate(conversations):
        yield _parse_conversation(conversation, describe("ChatGPT", index, conversation), now)


def _parse_conversation(conv: Any, where: str, now: datetime) -> ConversationTree:
    if not isinstance(conv, dict):
        raise BadInputError(f"{where} is not a JSON object.")
    source_id = opt_str(conv.get("id")) or opt_str(conv.get("conversation_id"))
    if not source_id:
        raise BadInputError(f'{where} has no "id".')
    mapping = conv.get("mapping")
    if not isinstance(mapping, dict):
        raise BadInputError(f'{where} has no "mapping" object of messages.')

    parents, ranks = _source_links(mapping, where)
    nodes: dict[str, Node] = {}
    for index, (key, entry) in enumerate(mapping.items()):
        message = entry.get("message")
        if message is None:
            continue  # a structural root (or gap): its children move up to its parent
        node_where = f'{where}, node "{shorten(key, 60)}"'
        if not isinstance(message, dict):
            raise BadInputError(f"{node_where}: message is not a JSON object.")
        nodes[key] = _node(key, message, node_where, ranks.get(key, 1 << 30), index)
        nodes[key].parent = _message_parent(key, parents, mapping)

    current = opt_str(conv.get("current_node"))
    if current is not None and current not in nodes and current in mapping:
        # current_node on a null-message node (a chat with nothing in it yet):
        # its nearest message ancestor is what the user saw last.
        current = _message_parent(current, parents, mapping)

    metadata: dict[str, Any] = {}
    for key in ("default_model_slug", "gizmo_id", "conversation_template_id"):
        if opt_str(conv.get(key)):
            metadata[key] = conv[key]
    return assemble(
        source=SOURCE,
        source_id=source_id,
        title=opt_str(conv.get("title")),
        nodes=nodes,
        created=parse_time(conv.get("create_time")),
        updated=parse_time(conv.get("update_time")),
        current=current,
        now=now,
        archived=conv.get("is_archived") is True,
        pinned=conv.get("is_starred") is True or parse_time(conv.get("pinned_time")) is not None,
        model=_model_name(conv.get("default_model_slug")),
        conversation_metadata=metadata,
    )


def _model_name(slug: Any) -> str | None:
    """A model ChatGPT names; "auto" is its router, so the answers' own models say more."""
    name = opt_str(slug)
    return None if not name or name == "auto" else name


def _source_links(
    mapping: dict[Any, Any], where: str
) -> tuple[dict[str, str | None], dict[str, int]]:
    """Each node's parent key (loops cut) and its position among its parent's children.

    ``parent`` is the truth; ``children`` lists only fill in a node that has no
    ``parent`` key at all (hand-written fixtures) and give sibling order.
    """
    parents: dict[str, str | None] = {}
    for key, entry in mapping.items():
        if not isinstance(key, str):
            raise BadInputError(f"{where}: node key {key!r} is not text.")
        if not isinstance(entry, dict):
            raise BadInputError(f'{where}, node "{shorten(key, 60)}" is not a JSON object.')
        parent = entry.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise BadInputError(f'{where}, node "{shorten(key, 60)}": parent is not a node id.')
        parents[key] = parent
    ranks: dict[str, int] = {}
    for key, entry in mapping.items():
        children = entry.get("children")
        if children is None:
            continue
        if not isinstance(children, list):
            raise BadInputError(f'{where}, node "{shorten(key, 60)}": children is not a list.')
        for position, child in enumerate(children):
            if not isinstance(child, str) or child not in mapping or child == key:
                continue  # a dangling child link carries nothing to import
            ranks.setdefault(child, position)
            if "parent" not in mapping[child]:
                parents[child] = key
    break_cycles(parents)
    return parents, ranks


def _message_parent(
    key: str, parents: dict[str, str | None], mapping: dict[Any, Any]
) -> str | None:
    """The nearest ancestor that has a message: null-message nodes are skipped over."""
    up = parents.get(key)
    while up is not None and not isinstance(mapping[up].get("message"), dict):
        up = parents.get(up)
    return up


def _node(key: str, message: dict[str, Any], where: str, rank: int, index: int) -> Node:
    author = message.get("author")
    role_name = author.get("role") if isinstance(author, dict) else None
    if not isinstance(role_name, str):
        raise BadInputError(f"{where}: message.author.role is missing.")
    meta = opt_dict(message.get("metadata"))
    metadata: dict[str, Any] = {"source": SOURCE, "source_id": key}
    if opt_str(message.get("id")):
        metadata["source_message_id"] = message["id"]
    role = ROLES.get(role_name)
    if role is None:
        role = Role.TOOL  # "critic", "unknown", ...: shown as a tool, original kept
        metadata["source_role"] = role_name
    name = opt_str(author.get("name")) if isinstance(author, dict) else None
    if name:
        metadata["author_name"] = name

    recipient = opt_str(message.get("recipient"))
    text, extra = render_content(message.get("content"), recipient)
    metadata.update(extra)
    if role is Role.SYSTEM and not text.strip():
        text = _custom_instructions(meta)  # old exports kept them in metadata only

    if recipient and recipient != "all":
        metadata["recipient"] = recipient
        if role is Role.ASSISTANT and text.strip():
            # A tool call: visible, but never mistaken for the answer itself.
            text = f"→ {recipient}:\n{text}"
    _copy_flags(message, meta, metadata)

    model = opt_str(meta.get("model_slug")) if role is Role.ASSISTANT else None
    return Node(
        key=key,
        parent=None,
        role=role,
        content=text,
        time=parse_time(message.get("create_time")),
        rank=(rank, index),
        model=model,
        metadata=metadata,
    )


def _copy_flags(message: dict[str, Any], meta: dict[str, Any], metadata: dict[str, Any]) -> None:
    """The source fields worth keeping, and whether ChatGPT's UI hides the message."""
    for field in ("channel", "end_turn"):
        value = message.get(field)
        if isinstance(value, str | bool):
            metadata[field] = value
    status = opt_str(message.get("status"))
    if status and status != "finished_successfully":
        metadata["source_status"] = status  # e.g. "in_progress": cut off when exported
    for field in ("is_thinking_preamble_message", "reasoning_title", "finished_duration_sec"):
        if isinstance(meta.get(field), str | int | float | bool):
            metadata[field] = meta[field]
    hidden_reason = None
    if meta.get("is_user_system_message") is True or metadata.get("content_type") == (
        "user_editable_context"
    ):
        hidden_reason = "custom_instructions"  # sent by ChatGPT, never shown in the chat
    elif meta.get("is_visually_hidden_from_conversation") is True:
        hidden_reason = "visually_hidden"
    if hidden_reason:
        metadata["hidden"] = True
        metadata["hidden_reason"] = hidden_reason


def _custom_instructions(meta: dict[str, Any]) -> str:
    data = opt_dict(meta.get("user_context_message_data"))
    about_user = opt_str(data.get("about_user_message")) or ""
    about_model = opt_str(data.get("about_model_message")) or ""
    parts = []
    if about_user.strip():
        parts.append(f"About me:\n{about_user.strip()}")
    if about_model.strip():
        parts.append(f"How to respond:\n{about_model.strip()}")
    return "\n\n".join(parts)


def render_content(content: Any, recipient: str | None = None) -> tuple[str, dict[str, Any]]:
    """A message's content as Markdown text, plus metadata about what it was.

    Never raises and never drops content: an unknown shape becomes JSON text.
    """
    if content is None:
        return "", {"content_type": "none"}
    if not isinstance(content, dict):
        return json_text(content), {"content_type": "invalid"}
    kind = opt_str(content.get("content_type")) or "unknown"
    extra: dict[str, Any] = {"content_type": kind}
    if kind in REASONING_TYPES:
        extra["reasoning"] = True
    if kind == "code" and recipient == "python" and content.get("language") in (None, "unknown"):
        content = {**content, "language": "python"}  # code interpreter input, unlabelled
    text = _render_known(kind, content, extra)
    if text is None:
        rest = {k: v for k, v in content.items() if k != "content_type"}
        text = f"[{kind}]\n{fence(json_text(rest, indent=2), 'json')}"
    return text, extra


def _render_known(kind: str, content: dict[str, Any], extra: dict[str, Any]) -> str | None:
    """Text for the content types ChatGPT exports; None when this shape is not one of them."""
    text = opt_str(content.get("text"))
    if kind in ("text", "multimodal_text") or (
        kind not in _RENDERERS and isinstance(content.get("parts"), list)
    ):
        parts = content.get("parts")
        if not isinstance(parts, list):
            return text
        rendered = (_render_part(part, extra) for part in parts)
        return "\n\n".join(r for r in rendered if r)
    renderer = _RENDERERS.get(kind)
    if renderer is not None:
        return renderer(content)
    return text


def _code(content: dict[str, Any]) -> str | None:
    text = opt_str(content.get("text"))
    if text is None:
        return None
    language = opt_str(content.get("language")) or ""
    return fence(text, "" if language == "unknown" else language)


def _execution_output(content: dict[str, Any]) -> str | None:
    text = opt_str(content.get("text"))
    return None if text is None else fence(text)


def _thoughts(content: dict[str, Any]) -> str | None:
    thoughts = content.get("thoughts")
    if not isinstance(thoughts, list):
        return None
    blocks = []
    for thought in thoughts:
        if not isinstance(thought, dict):
            blocks.append(json_text(thought))
            continue
        summary = (opt_str(thought.get("summary")) or "").strip()
        body = (opt_str(thought.get("content")) or "").strip()
        blocks.append("\n".join(x for x in (f"**{summary}**" if summary else "", body) if x))
    return "\n\n".join(b for b in blocks if b)


def _reasoning_recap(content: dict[str, Any]) -> str | None:
    return opt_str(content.get("content"))


def _browsing_display(content: dict[str, Any]) -> str | None:
    result = opt_str(content.get("result")) or ""
    summary = opt_str(content.get("summary")) or ""
    return (result or summary).strip()


def _quote(content: dict[str, Any]) -> str | None:
    title = (opt_str(content.get("title")) or "").strip()
    url = (opt_str(content.get("url")) or "").strip()
    text = (opt_str(content.get("text")) or "").strip()
    head = f"[{title or url}]({url})" if url else title
    quoted = "\n".join(f"> {line}" if line else ">" for line in text.splitlines())
    return "\n\n".join(x for x in (head, quoted) if x)


def _system_error(content: dict[str, Any]) -> str | None:
    name = opt_str(content.get("name"))
    text = opt_str(content.get("text")) or ""
    return f"Error ({name}): {text}" if name else f"Error: {text}"


def _editable_context(content: dict[str, Any]) -> str | None:
    profile = (opt_str(content.get("user_profile")) or "").strip()
    instructions = (opt_str(content.get("user_instructions")) or "").strip()
    return "\n\n".join(x for x in (profile, instructions) if x)


_RENDERERS = {
    "code": _code,
    "execution_output": _execution_output,
    "thoughts": _thoughts,
    "reasoning_recap": _reasoning_recap,
    "tether_browsing_display": _browsing_display,
    "tether_quote": _quote,
    "system_error": _system_error,
    "user_editable_context": _editable_context,
}


def _render_part(part: Any, extra: dict[str, Any]) -> str:
    """One element of ``parts``: text as is, images and other files as a visible placeholder."""
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return "" if part is None else json_text(part)
    kind = opt_str(part.get("content_type")) or ""
    pointer = opt_str(part.get("asset_pointer"))
    text = opt_str(part.get("text"))
    if kind == "image_asset_pointer" or (pointer and "image" in kind):
        image = {k: part[k] for k in ("asset_pointer", "width", "height") if k in part}
        extra.setdefault("images", []).append(image)
        rendered = f"[image: {_asset_name(pointer)}]"
    elif text is not None:
        rendered = text  # audio_transcription and any other part that carries text
    elif pointer:
        extra.setdefault("assets", []).append({"content_type": kind, "asset_pointer": pointer})
        rendered = f"[{kind.removesuffix('_asset_pointer') or 'file'}: {_asset_name(pointer)}]"
    else:
        rendered = json_text(part)
    return rendered


def _asset_name(pointer: str | None) -> str:
    """``sediment://file_1`` -> ``file_1``; the scheme says where ChatGPT kept it."""
    if not pointer:
        return "unknown"
    return pointer.split("://", 1)[-1] or pointer
