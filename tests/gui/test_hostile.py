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
            assert f"{len(text):,} characters" in html


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
