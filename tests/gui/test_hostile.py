"""Hostile messages render without freezing the window, and Markdown stays inert."""

from __future__ import annotations

import time

from pytestqt.qtbot import QtBot

from desktop_chat.core.types import Role
from desktop_chat.gui import render
from desktop_chat.gui.chat_view import DISPLAY_LIMIT
from desktop_chat.gui.chat_view import Roles as ChatRoles
from desktop_chat.gui.main_window import MainWindow
from desktop_chat.services.workspace import Workspace
from tests.support.hostile import TEXTS


def test_hostile_messages_render_promptly(
    qtbot: QtBot, window: MainWindow, workspace: Workspace
) -> None:
    for name, text in TEXTS.items():
        conv = workspace.repo.create_conversation(title=name)
        user = workspace.repo.append_message(conv.id, None, Role.USER, "show me")
        workspace.repo.append_message(conv.id, user.id, Role.ASSISTANT, text)
        started = time.monotonic()
        window.open_conversation(conv.id)
        window.grab()
        # A generous bound: the point is "does not freeze" (it took a minute before
        # long runs were made breakable); the real figure is in bench/gui.py.
        assert time.monotonic() - started < 10, name
        html = window.chat_model.data(window.chat_model.index(1), ChatRoles.HTML)
        if len(text) > DISPLAY_LIMIT:
            assert "Copy or export the message for all of it." in html
    assert "Showing the first 1,000 of 10,000 lines" in html_of(window, "lines")


def html_of(window: MainWindow, title: str) -> str:
    (conversation,) = [c for c in window.repo.list_conversations() if c.title == title]
    window.open_conversation(conversation.id)
    return str(window.chat_model.data(window.chat_model.index(1), ChatRoles.HTML))


def test_a_long_message_is_shown_in_part_and_copied_whole() -> None:
    from desktop_chat.gui.chat_view import displayable

    assert displayable("short\ntext") == ("short\ntext", None)
    thousand = "\n".join(f"line {i}" for i in range(1_000))
    assert displayable(thousand + "\n\n") == (thousand + "\n\n", None)
    _shown, note = displayable(thousand + "\nline 1000\n")
    assert note is not None
    assert note.startswith("Showing the first 1,000 of 1,001 lines.")
    shown, note = displayable("\n".join(f"line {i}" for i in range(1_500)))
    assert shown.count("\n") == 999
    assert shown.endswith("line 999")
    assert note is not None
    assert note.startswith("Showing the first 1,000 of 1,500 lines.")
    shown, note = displayable("word " * 5_000)
    assert len(shown) == DISPLAY_LIMIT
    assert note is not None
    assert note.startswith("Showing the first 20,000 of 25,000 characters.")


def test_markdown_and_html_are_inert() -> None:
    html, _ = render.to_html(
        "<script>alert(1)</script> <b>raw</b> [js](javascript:alert(1)) [file](file:///etc/passwd) "
        "[ok](https://example.com) [mail](mailto:a@b.c) ![img](http://example.com/x.png)"
    )
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<b>raw</b>" not in html
    assert 'href="javascript:' not in html
    assert 'href="file:' not in html
    assert 'href="https://example.com"' in html
    assert 'href="mailto:a@b.c"' in html
    assert "<img" not in html  # images are never fetched, only linked
