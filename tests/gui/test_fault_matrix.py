"""Every failure through the real window: shown inline, nothing lost, still usable, Retry works."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop_chat.core.types import MessageStatus, Role
from desktop_chat.gui.main_window import MainWindow
from desktop_chat.services.workspace import Workspace
from tests.gui.conftest import click_link, seen_text
from tests.support.fake_openai import FakeOpenAI, stream
from tests.support.faults import (
    FAULT_PARAMS,
    PARTIAL_FAULT_PARAMS,
    RECOVERED,
    STALL_TIMEOUT,
    Fault,
    closed_port_url,
)

TIMEOUT = 15_000


@pytest.fixture
def short_stall_timeout(workspace: Workspace) -> None:
    """Timeouts in seconds, not minutes: the provider's own setting."""
    workspace.settings.provider().stall_timeout = STALL_TIMEOUT


def send(qtbot: QtBot, window: MainWindow, text: str) -> None:
    window.composer.edit.setFocus()
    qtbot.keyClicks(window.composer.edit, text)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)


@pytest.mark.usefixtures("short_stall_timeout")
@pytest.mark.parametrize("fault", FAULT_PARAMS)
def test_window_shows_the_failure_keeps_the_reply_and_retries(
    qtbot: QtBot,
    window: MainWindow,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    fault: Fault,
) -> None:
    if fault.refused:
        monkeypatch.setenv("OPENAI_BASE_URL", closed_port_url())
    fake_openai.enqueue(*fault.replies)
    send(qtbot, window, "Question?")
    qtbot.waitUntil(lambda: not window.streams, timeout=TIMEOUT)

    # Told inline on the failed reply and in the status line, in the same words.
    assert window.chat_model.rowCount() == 2
    failed = window.chat_model.message_at(1)
    assert (failed.role, failed.content, failed.status) == (
        Role.ASSISTANT,
        fault.partial,
        fault.status,
    )
    painted = seen_text(window, 1)
    shown = window.status_line.text()
    for words in fault.words:
        assert words in painted
        assert words in shown
    assert f"Not answered: {shown}" in painted
    links = painted.splitlines()[-1].split("  ·  ")
    assert "Retry" in links
    # "Use Continue or Retry" is said, and Continue offered, when there is text to go on from.
    assert ("Continue" in links) == bool(fault.partial) == ("Continue" in shown)
    if fault.partial:
        assert painted.index(fault.partial) < painted.index("Not answered")
    # On disk: the question, and the reply with what arrived and why it stopped.
    question, reply = window.repo.thread(window.current_id or "")
    assert (question.content, question.status) == ("Question?", MessageStatus.COMPLETE)
    assert (reply.id, reply.content, reply.status) == (failed.id, fault.partial, fault.status)
    assert reply.error == shown

    # Still usable: Send is back and the composer takes text.
    assert window.composer.button.text() == "Send"
    assert window.composer.button.isEnabled()
    assert window.composer.edit.isEnabled()
    qtbot.keyClicks(window.composer.edit, "draft")
    assert window.composer.edit.toPlainText() == "draft"
    window.composer.edit.clear()

    # The server recovers; Retry answers the same question again.
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    fake_openai.reset()
    fake_openai.enqueue(stream(RECOVERED))
    click_link(qtbot, window, 1, "retry")
    qtbot.waitUntil(lambda: not window.streams, timeout=TIMEOUT)
    assert [m.content for m in window.chat_model.messages()] == ["Question?", RECOVERED]
    assert window.chat_model.message_at(1).status is MessageStatus.COMPLETE
    assert window.status_line.text() == ""
    assert fake_openai.chat_requests()[-1].body["messages"] == [
        {"role": "user", "content": "Question?"}
    ]
    question, answer = window.repo.thread(window.current_id or "")
    assert (answer.content, answer.status, answer.error) == (
        RECOVERED,
        MessageStatus.COMPLETE,
        None,
    )
    # The failed attempt stays as the other branch, text and status intact.
    kept = {m.id: m for m in window.repo.siblings(answer.id)}[failed.id]
    assert (kept.content, kept.status) == (fault.partial, fault.status)
    assert window.composer.button.text() == "Send"


@pytest.mark.usefixtures("short_stall_timeout")
@pytest.mark.parametrize("fault", PARTIAL_FAULT_PARAMS)
def test_continue_goes_on_from_the_text_that_arrived(
    qtbot: QtBot, window: MainWindow, fake_openai: FakeOpenAI, fault: Fault
) -> None:
    fake_openai.enqueue(*fault.replies)
    send(qtbot, window, "Question?")
    qtbot.waitUntil(lambda: not window.streams, timeout=TIMEOUT)
    failed = window.chat_model.message_at(1)
    assert (failed.content, failed.status) == (fault.partial, fault.status)

    fake_openai.reset()
    fake_openai.enqueue(stream(" and the rest."), stream("Title"))
    click_link(qtbot, window, 1, "continue")
    qtbot.waitUntil(lambda: not window.streams, timeout=TIMEOUT)
    # The first complete reply titles the chat in the background: let it finish.
    conversation_id = window.current_id or ""
    qtbot.waitUntil(lambda: window.repo.get_conversation(conversation_id).title == "Title")
    whole = f"{fault.partial} and the rest."
    assert [m.content for m in window.chat_model.messages()] == ["Question?", whole]
    # The text that arrived is sent once, last, for the model to go on from.
    assert fake_openai.chat_requests()[0].body["messages"] == [
        {"role": "user", "content": "Question?"},
        {"role": "assistant", "content": fault.partial},
    ]
    reply = window.repo.thread(conversation_id)[-1]
    assert (reply.id, reply.content, reply.status, reply.error) == (
        failed.id,
        whole,
        MessageStatus.COMPLETE,
        None,
    )
    assert window.status_line.text() == ""
    assert "Not answered" not in seen_text(window, 1)
