"""Hostile text: huge, NUL, lone surrogates, RTL, emoji, many lines; stored, searched, exported."""

from __future__ import annotations

import io
import json

import pytest

from desktop_chat.core.types import Role
from desktop_chat.services import transfer
from desktop_chat.services.workspace import Workspace
from tests.support.hostile import TEXTS


@pytest.mark.parametrize("name", TEXTS)
def test_stored_searched_and_exported_intact(name: str) -> None:
    text = TEXTS[name]
    workspace = Workspace.open()
    conv = workspace.repo.create_conversation(title=name)
    message = workspace.repo.append_message(conv.id, None, Role.USER, text)
    assert workspace.repo.get_message(message.id).content == text
    probe = {"unbroken": "xxxxx", "lines": "line 9999", "nul": "before"}.get(name, text[:6])
    hits = workspace.repo.search(probe)
    assert any(h.message_id == message.id for h in hits)
    assert all(len(h.snippet) < 200 for h in hits)
    out = io.StringIO()
    transfer.export_json(workspace.repo, out, None)
    exported = json.loads(out.getvalue())
    assert exported["conversations"][0]["tree"][0]["content"] == text


def test_lone_surrogates_are_replaced_not_fatal() -> None:
    workspace = Workspace.open()
    conv = workspace.repo.create_conversation(title="bad \udc00 title")
    message = workspace.repo.append_message(
        conv.id, None, Role.USER, "bad \ud800 text", metadata={"k": "\udfff"}
    )
    stored = workspace.repo.get_message(message.id)
    assert stored.content == "bad \ufffd text"
    assert stored.metadata == {"k": "\ufffd"}
    assert workspace.repo.get_conversation(conv.id).title == "bad \ufffd title"
    workspace.repo.update_message(message.id, content="again \udc80")
    assert workspace.repo.get_message(message.id).content == "again \ufffd"


def test_search_queries_never_raise() -> None:
    workspace = Workspace.open()
    conv = workspace.repo.create_conversation(title="t")
    workspace.repo.append_message(conv.id, None, Role.USER, "some text")
    for query in ['"', '""', "\x00", "a\x00b", "*", "NEAR(", "AND OR NOT", "'", "%_", "\ud800"]:
        assert isinstance(workspace.repo.search(query), list)
