"""The real window driven like a user would, against the fake server; asserts on screen and disk."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import QApplication, QPushButton
from pytestqt.qtbot import QtBot

from desktop_chat.core.types import MemoryPolicy, MessageStatus, PolicyKind, Role
from desktop_chat.gui.chat_view import ChatModel
from desktop_chat.gui.chat_view import Roles as ChatRoles
from desktop_chat.gui.conversation_list import ConversationListModel
from desktop_chat.gui.conversation_list import Roles as ListRoles
from desktop_chat.gui.main_window import MainWindow
from desktop_chat.services.workspace import Workspace
from tests.gui.conftest import click_link, seed, seen_text
from tests.support.fake_openai import FakeOpenAI, error, stream

TIMEOUT = 10_000


def send(qtbot: QtBot, window: MainWindow, text: str) -> None:
    window.composer.edit.setFocus()
    qtbot.keyClicks(window.composer.edit, text)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)


def wait_idle(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.streams, timeout=TIMEOUT)


def wait_titled(qtbot: QtBot, window: MainWindow, title: str = "Title") -> None:
    """The background title request has used its scripted reply."""
    conversation_id = window.current_id or ""
    qtbot.waitUntil(lambda: window.repo.get_conversation(conversation_id).title == title)


def shown(window: MainWindow) -> list[tuple[Role, str, MessageStatus]]:
    model = window.chat_model
    messages = [model.data(model.index(r), ChatRoles.MESSAGE) for r in range(model.rowCount())]
    return [(m.role, m.content, m.status) for m in messages]


def test_models_pass_qtmodeltester(qtmodeltester, qtbot: QtBot, workspace: Workspace) -> None:
    ids = seed(workspace, ["Alpha", "Beta", "Gamma"], replies=3)
    conversations = ConversationListModel(workspace.repo)
    qtmodeltester.check(conversations)
    with qtbot.waitSignal(conversations.sig_searched):  # searched in the background
        conversations.set_query("question")
    assert conversations.rowCount() == 9
    qtmodeltester.check(conversations)
    chat = ChatModel(workspace.repo)
    chat.load(ids[0])
    qtmodeltester.check(chat)


def test_new_chat_send_and_stream(
    qtbot: QtBot, window: MainWindow, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(stream("Hello", " world", "!"), stream("Greeting chat"))
    send(qtbot, window, "Say hello")
    wait_idle(qtbot, window)
    assert shown(window) == [
        (Role.USER, "Say hello", MessageStatus.COMPLETE),
        (Role.ASSISTANT, "Hello world!", MessageStatus.COMPLETE),
    ]
    assert window.composer.edit.toPlainText() == ""
    assert window.composer.button.text() == "Send"
    conv = window.repo.get_conversation(window.current_id or "")
    assert [m.content for m in window.repo.thread(conv.id)] == ["Say hello", "Hello world!"]
    # The model titles the chat in the background.
    qtbot.waitUntil(lambda: window.repo.get_conversation(conv.id).title == "Greeting chat")
    qtbot.waitUntil(lambda: window.title_label.text() == "Greeting chat")
    assert "tokens" in window.meter.format()


def test_sending_in_an_open_chat_appends_without_a_reload(
    qtbot: QtBot, window: MainWindow, workspace: Workspace, fake_openai: FakeOpenAI
) -> None:
    """A reload lays the page out again (100-200 ms in a long chat): the new rows are added."""
    (conv_id,) = seed(workspace, ["Long"], replies=30)
    window.open_conversation(conv_id)
    resets: list[int] = []
    window.chat_model.modelReset.connect(lambda: resets.append(1))
    fake_openai.enqueue(stream("More."))
    send(qtbot, window, "Go on")
    wait_idle(qtbot, window)
    assert not resets
    assert shown(window)[-2:] == [
        (Role.USER, "Go on", MessageStatus.COMPLETE),
        (Role.ASSISTANT, "More.", MessageStatus.COMPLETE),
    ]
    assert window.chat_model.rowCount() == 62


def slow_store(
    window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Event, threading.Event]:
    """Storing the next message waits for the first event returned (an FTS5 merge, say);
    the second is set once the reply's thread has begun storing it."""
    release, storing = threading.Event(), threading.Event()
    real_send = window.service.send

    def send(*args: Any, **kwargs: Any) -> Any:
        storing.set()
        assert release.wait(10)
        return real_send(*args, **kwargs)

    monkeypatch.setattr(window.service, "send", send)
    return release, storing


def test_a_message_still_being_stored_when_another_chat_opens(
    qtbot: QtBot,
    window: MainWindow,
    workspace: Workspace,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, other = seed(workspace, ["First", "Other"])
    window.open_conversation(first)
    release, _ = slow_store(window, monkeypatch)
    fake_openai.enqueue(stream("Stored."))
    send(qtbot, window, "Hello first")
    window.open_conversation(other)
    assert window.composer.edit.toPlainText() == "Hello first"  # not stored yet
    release.set()
    wait_idle(qtbot, window)
    assert window.composer.edit.toPlainText() == ""  # or Enter would send it again, here
    contents = [m.content for m in workspace.repo.thread(first)]
    assert contents[-2:] == ["Hello first", "Stored."]
    assert len(workspace.repo.thread(other)) == 2


def test_stop_while_the_message_is_stored_sends_nothing(
    qtbot: QtBot,
    window: MainWindow,
    workspace: Workspace,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (conv_id,) = seed(workspace, ["Kept"])
    window.open_conversation(conv_id)
    release, storing = slow_store(window, monkeypatch)
    send(qtbot, window, "Never mind")
    assert window.composer.button.text() == "Stop"
    # Stop while it is being stored, not before its thread got there (a busy machine).
    qtbot.waitUntil(storing.is_set)
    qtbot.mouseClick(window.composer.button, Qt.MouseButton.LeftButton)
    release.set()
    wait_idle(qtbot, window)
    assert window.composer.button.text() == "Send"
    # The message is kept (it is in the chat, so the composer is empty); no request went out.
    assert [m.content for m in workspace.repo.thread(conv_id)][-1] == "Never mind"
    assert shown(window)[-1][1] == "Never mind"
    assert window.composer.edit.toPlainText() == ""
    assert not fake_openai.chat_requests()


def test_stop_keeps_the_partial_reply(
    qtbot: QtBot, window: MainWindow, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(stream(*[f"w{i} " for i in range(300)], delay=0.02))
    send(qtbot, window, "Count")
    qtbot.waitUntil(lambda: window.composer.button.text() == "Stop")
    qtbot.waitUntil(
        lambda: len(shown(window)) == 2 and "w3" in shown(window)[1][1], timeout=TIMEOUT
    )
    qtbot.mouseClick(window.composer.button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    reply = window.repo.thread(window.current_id or "")[-1]
    assert reply.status is MessageStatus.STOPPED
    assert reply.content.startswith("w0 w1 w2 w3")
    assert shown(window)[-1][2] is MessageStatus.STOPPED


def test_a_reasoning_model_thinks_then_answers(
    qtbot: QtBot, window: MainWindow, fake_openai: FakeOpenAI
) -> None:
    from PySide6.QtWidgets import QDialog, QPlainTextEdit

    said: list[str] = []
    window.status_line.setText = said.append  # type: ignore[method-assign]
    fake_openai.enqueue(stream("Four.", reasoning=["Two and two", " make four."]), stream("Sums"))
    send(qtbot, window, "2 + 2?")
    wait_idle(qtbot, window)
    assert "Thinking…" in said
    assert shown(window)[-1][1] == "Four."
    assert "Reasoning" in seen_text(window, 1)
    click_link(qtbot, window, 1, "thinking")
    dialog = window.findChild(QDialog, "reasoning")
    assert dialog is not None
    assert dialog.isVisible()
    assert dialog.findChild(QPlainTextEdit).toPlainText() == "Two and two make four."
    dialog.close()


def test_regenerate_and_switch_branches(
    qtbot: QtBot, window: MainWindow, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(stream("first"), stream("Title"))
    send(qtbot, window, "Question")
    wait_idle(qtbot, window)
    wait_titled(qtbot, window)
    first_id = window.chat_model.message_at(1).id
    fake_openai.enqueue(stream("second"))
    window.chat_view.delegate.sig_action.emit("regenerate", first_id)
    wait_idle(qtbot, window)
    assert [text for _, text, _ in shown(window)] == ["Question", "second"]  # not "first" too
    second_id = window.chat_model.message_at(1).id
    assert window.chat_model.data(window.chat_model.index(1), ChatRoles.BRANCH) == (1, 2)
    window.chat_view.delegate.sig_action.emit("prev", second_id)
    assert shown(window)[-1][1] == "first"
    assert window.repo.get_conversation(window.current_id or "").current_leaf_id == first_id


def test_edit_and_resend_makes_a_branch(
    qtbot: QtBot, window: MainWindow, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QInputDialog

    fake_openai.enqueue(stream("one"), stream("Title"))
    send(qtbot, window, "Original")
    wait_idle(qtbot, window)
    wait_titled(qtbot, window)
    user_id = window.chat_model.message_at(0).id
    monkeypatch.setattr(QInputDialog, "getMultiLineText", lambda *a, **k: ("Edited", True))
    fake_openai.enqueue(stream("two"))
    window.chat_view.delegate.sig_action.emit("edit", user_id)
    wait_idle(qtbot, window)
    assert [c for _, c, _ in shown(window)] == ["Edited", "two"]
    assert len(window.repo.siblings(user_id)) == 2


def test_switching_conversations_mid_stream_keeps_it_running(
    qtbot: QtBot, window: MainWindow, workspace: Workspace, fake_openai: FakeOpenAI
) -> None:
    (other,) = seed(workspace, ["Other chat"])
    window.reload_list()
    fake_openai.enqueue(stream(*[f"t{i} " for i in range(60)], delay=0.02), stream("Title"))
    send(qtbot, window, "Long answer please")
    streaming_id = window.current_id
    qtbot.waitUntil(lambda: len(shown(window)) == 2, timeout=TIMEOUT)
    window.open_conversation(other)
    assert shown(window)[0][1] == "Other chat: question 0"
    window.open_conversation(streaming_id)
    assert window.composer.button.text() in ("Stop", "Send")
    wait_idle(qtbot, window)
    assert shown(window)[-1][1].strip().endswith("t59")
    assert shown(window)[-1][2] is MessageStatus.COMPLETE


def test_search_and_jump(qtbot: QtBot, window: MainWindow, workspace: Workspace) -> None:
    seed(workspace, ["Tomatoes", "Peppers", "Onions"], replies=3)
    window.reload_list()
    qtbot.keyClicks(window.search_box, "Peppers: question 1")
    qtbot.waitUntil(lambda: window.list_model.searching and window.list_model.rowCount() > 0)
    index = window.list_model.index(window.list_model.rowCount() - 1)
    assert index.data(ListRoles.HIGHLIGHTS)
    hit = window.list_model.index(0)
    assert hit.data(ListRoles.MESSAGE_ID)
    rect = window.list_view.visualRect(hit)
    qtbot.mouseClick(window.list_view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.title_label.text() == "Peppers"
    assert window.chat_model.row_of(hit.data(ListRoles.MESSAGE_ID)) >= 0


def test_rename_delete_and_undo(qtbot: QtBot, window: MainWindow, workspace: Workspace) -> None:
    (conv_id,) = seed(workspace, ["Old name"])
    window.reload_list()
    index = window.list_model.index(window.list_model.row_of(conv_id))
    assert window.list_model.setData(index, "New name")
    assert workspace.repo.get_conversation(conv_id).title == "New name"
    window.delete_conversation(conv_id)
    qtbot.waitUntil(lambda: "Deleted" in window.statusBar().currentMessage(), timeout=TIMEOUT)
    assert workspace.repo.count_conversations() == 0
    assert window.list_model.row_of(conv_id) < 0
    window.findChild(QPushButton, "undoDelete").click()
    qtbot.waitUntil(lambda: window.current_id == conv_id, timeout=TIMEOUT)
    assert window.list_model.row_of(conv_id) == 0
    restored = workspace.repo.get_conversation(conv_id)
    assert restored.title == "New name"
    assert workspace.repo.thread(conv_id)[0].content == "Old name: question 0"


def test_delete_a_message_and_the_replies_below_it(
    qtbot: QtBot, window: MainWindow, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QMessageBox

    (conv_id,) = seed(workspace, ["Pruned"], replies=2)
    window.open_conversation(conv_id)
    asked: list[str] = []

    def question(_parent: object, _title: str, text: str) -> QMessageBox.StandardButton:
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", question)
    click_link(qtbot, window, 2, "delete")  # the second question
    assert asked == ["Delete this message and every reply below it?"]
    qtbot.waitUntil(lambda: window.chat_model.rowCount() == 2, timeout=TIMEOUT)
    assert [m.content for m in workspace.repo.thread(conv_id)] == [
        "Pruned: question 0",
        "Answer 0 about **Pruned**.\n\n```python\nprint(0)\n```",
    ]
    assert workspace.repo.search("question 1") == []  # gone from search too


def test_error_shown_inline_then_retry(
    qtbot: QtBot, window: MainWindow, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(*[error(500, "down", kind="server_error")] * 3)
    send(qtbot, window, "Will it fail?")
    wait_idle(qtbot, window)
    failed = window.chat_model.message_at(1)
    assert failed.status is MessageStatus.ERROR
    assert "internal error (500)" in (failed.error or "")
    assert "internal error (500)" in window.status_line.text()
    fake_openai.enqueue(stream("Recovered."), stream("Title"))
    window.chat_view.delegate.sig_action.emit("retry", failed.id)
    wait_idle(qtbot, window)
    assert shown(window)[-1][1:] == ("Recovered.", MessageStatus.COMPLETE)


def test_a_row_is_painted_anew_when_only_its_error_or_reasoning_changes(
    qtbot: QtBot, window: MainWindow, workspace: Workspace
) -> None:
    """Rows are painted from laid-out documents kept between paints: a retry that fails
    again before any text arrives changes the error alone, not the text's length."""
    (conv_id,) = seed(workspace, ["Failing"])
    window.open_conversation(conv_id)
    answer = window.chat_model.message_at(1)
    first = replace(answer, status=MessageStatus.ERROR, error="The server timed out.")
    window.chat_model.show_stored(first)
    assert "The server timed out." in seen_text(window, 1)
    window.chat_model.show_stored(replace(first, error="The API key was refused."))
    assert "The API key was refused." in seen_text(window, 1)
    assert "Reasoning" not in seen_text(window, 1)
    thought = replace(first, metadata={**first.metadata, "thinking": "First, ..."})
    window.chat_model.show_stored(thought)
    assert "Reasoning" in seen_text(window, 1)


def test_rows_are_measured_and_painted_anew_in_a_new_font(
    qtbot: QtBot, window: MainWindow, workspace: Workspace
) -> None:
    (conv_id,) = seed(workspace, ["Fonts"])
    window.open_conversation(conv_id)
    view = window.chat_view
    index = window.chat_model.index(1)
    width = view.visualRect(index).width()
    before = view.delegate._laid_out(index, width)
    height = view.sizeHintForIndex(index).height()
    font = view.font()
    font.setPointSize(font.pointSize() * 2)
    view.setFont(font)
    after = view.delegate._laid_out(index, width)
    assert after is not before
    assert after.defaultFont().pointSize() == font.pointSize()
    assert view.sizeHintForIndex(index).height() > height


def test_copy_action_puts_text_on_the_clipboard(
    qtbot: QtBot, window: MainWindow, workspace: Workspace
) -> None:
    (conv_id,) = seed(workspace, ["Copy me"])
    window.open_conversation(conv_id)
    answer = window.chat_model.message_at(1)
    window.chat_view.delegate.sig_action.emit("copy", answer.id)
    assert QApplication.clipboard().text() == answer.content


def test_export_from_the_menu(
    qtbot: QtBot,
    window: MainWindow,
    workspace: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from PySide6.QtWidgets import QFileDialog

    seed(workspace, ["Exported"])
    target = tmp_path / "out.json"
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "JSON (*.json)")
    )
    window.export_all()
    qtbot.waitUntil(target.exists, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: "Exported 1" in window.statusBar().currentMessage(), timeout=TIMEOUT)
    data = json.loads(target.read_text())
    assert data["conversations"][0]["title"] == "Exported"


def test_export_all_to_a_folder_from_the_menu(
    qtbot: QtBot,
    window: MainWindow,
    workspace: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from PySide6.QtWidgets import QFileDialog

    seed(workspace, ["Same title", "Same title", "a/b: c?"])
    target = tmp_path / "chats"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(target))
    menu = {a.text(): a for a in window.menuBar().actions()[0].menu().actions()}
    menu["Export all to a &folder…"].trigger()
    qtbot.waitUntil(lambda: "Exported 3" in window.statusBar().currentMessage(), timeout=TIMEOUT)
    names = sorted(p.name for p in target.iterdir())
    assert names == [
        "Same title (2).json",
        "Same title (2).md",
        "Same title.json",
        "Same title.md",
        "a b c.json",
        "a b c.md",
    ]
    document = json.loads((target / "a b c.json").read_text())
    assert document["conversations"][0]["title"] == "a/b: c?"
    assert "a/b: c?" in (target / "a b c.md").read_text()


SHARED_EXPORT = (
    Path(__file__).resolve().parents[3]
    / "shared/data/chatgpt-exports/cosmax2018-2025-12-full-export.json"
)


def test_import_from_the_menu_and_cancel_it(
    qtbot: QtBot, window: MainWindow, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """File → Import…: a real ChatGPT export comes in; a cancelled import adds nothing."""
    from PySide6.QtWidgets import QFileDialog, QMessageBox, QProgressDialog, QPushButton

    from desktop_chat.services import transfer

    told: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda _p, _t, text: told.append(text))
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text, *a: told.append(text))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(SHARED_EXPORT), ""))
    real_import = transfer.import_file

    def import_after_cancel(*args: object, cancel: object, **kwargs: object) -> object:
        assert cancel.wait(5)  # type: ignore[attr-defined]  # the user pressed Cancel
        return real_import(*args, cancel=cancel, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(transfer, "import_file", import_after_cancel)
    window.import_file()
    dialog = window.findChild(QProgressDialog)
    qtbot.waitUntil(dialog.isVisible, timeout=TIMEOUT)  # shown once the work takes a while
    (cancel_button,) = dialog.findChildren(QPushButton)
    assert cancel_button.text() == "Cancel"
    cancel_button.click()
    qtbot.waitUntil(lambda: bool(told), timeout=TIMEOUT)
    assert "cancelled" in told[0].lower()
    assert workspace.repo.count_conversations() == 0

    monkeypatch.setattr(transfer, "import_file", real_import)
    told.clear()
    window.import_file()
    qtbot.waitUntil(lambda: bool(told), timeout=TIMEOUT)
    assert told[0].startswith("Imported 37 conversation(s) and 775 message(s) from a chatgpt")
    assert window.list_model.rowCount() == 37


def test_long_conversation_opens_at_the_newest_and_pages_back(
    qtbot: QtBot, window: MainWindow, workspace: Workspace
) -> None:
    (conv_id,) = seed(workspace, ["Long"], replies=150)  # 300 messages
    window.open_conversation(conv_id)
    assert window.chat_model.rowCount() == 100
    assert window.chat_model.message_at(99).content.startswith("Answer 149")
    bar = window.chat_view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.value() == bar.maximum())
    bar.setValue(bar.minimum())
    qtbot.waitUntil(lambda: window.chat_model.rowCount() == 200)
    assert bar.value() > bar.minimum()  # the reader's place is kept, not jumped to the top
    assert window.chat_model.message_at(0).content == "Long: question 50"


def test_first_run_shows_the_two_paths(
    qtbot: QtBot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    window._update_welcome()
    assert window.right_stack.currentWidget() is window.welcome
    texts = {b.text() for b in window.welcome.findChildren(type(window.composer.button))}
    assert "Enter an OpenAI API key" in texts
    assert any("local server" in t for t in texts)


def test_disk_full_keeps_the_draft_and_says_why(
    qtbot: QtBot, window: MainWindow, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QMessageBox

    from tests.unit.storage.test_disk_full import fill_up

    (conv_id,) = seed(workspace, ["Full disk"])
    window.open_conversation(conv_id)
    shown_errors: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "warning", lambda _parent, _title, text: shown_errors.append(text)
    )
    fill_up(workspace)
    draft = "a long draft " * 20_000
    window.composer.edit.setPlainText(draft)
    qtbot.mouseClick(window.composer.button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(shown_errors), timeout=TIMEOUT)  # stored off the GUI thread
    assert window.composer.edit.toPlainText() == draft  # nothing the user typed is lost
    assert window.composer.button.text() == "Send"
    assert "disk is full" in shown_errors[0]
    assert [c for _, c, _ in shown(window)] == [
        "Full disk: question 0",
        "Answer 0 about **Full disk**.\n\n```python\nprint(0)\n```",
    ]
    assert not window.streams


def test_archive_and_find_it_again(qtbot: QtBot, window: MainWindow, workspace: Workspace) -> None:
    (conv_id,) = seed(workspace, ["Old project"])
    window.reload_list()
    window._update_conversation(conv_id, archived=True)
    assert window.list_model.row_of(conv_id) < 0  # gone from the active list
    window.archive_action.trigger()
    assert window.list_model.row_of(conv_id) == 0  # and there in the archive
    window._update_conversation(conv_id, archived=False)
    window.archive_action.trigger()
    assert window.list_model.row_of(conv_id) == 0


def test_the_meter_shows_exactly_what_the_next_request_carries(
    qtbot: QtBot, window: MainWindow, workspace: Workspace, fake_openai: FakeOpenAI
) -> None:
    (conversation_id,) = seed(workspace, ["Memory"], replies=4)
    policy = MemoryPolicy(kind=PolicyKind.LAST_N, last_n=3)
    workspace.repo.update_conversation(
        conversation_id, memory_policy=policy, system_prompt="Be brief."
    )
    window.open_conversation(conversation_id)
    qtbot.keyClicks(window.composer.edit, "And now?")
    qtbot.waitUntil(lambda: "tokens" in window.meter.format())  # planned after the first paint
    qtbot.mouseClick(window.meter, Qt.MouseButton.LeftButton)
    dialog = window.context_dialog
    qtbot.waitExposed(dialog)
    table = dialog.table.model()
    cell = lambda row, column: table.data(table.index(row, column))  # noqa: E731
    rows = [(cell(r, 0), cell(r, 1)) for r in range(table.rowCount())]
    # The draft and the two before it (last N = 3), and the question the oldest answers.
    assert rows == [
        ("System", "system prompt"),
        ("You", "recent"),
        ("Assistant", "recent"),
        ("You", "your message"),
    ]
    assert "Answer 3 about **Memory**" in cell(2, 3)
    assert "Left out: 6 older than the last N" in dialog.summary.text()
    # The six left out are dimmed in the chat, the two sent are not.
    model = window.chat_model
    included = [model.data(model.index(r), ChatRoles.INCLUDED) for r in range(model.rowCount())]
    assert included == [False] * 6 + [True] * 2

    dialog.copy_payload()
    copied = json.loads(QApplication.clipboard().text())
    dialog.close()
    assert copied[-1] == {"role": "user", "content": "And now?"}
    fake_openai.enqueue(stream("Short."))
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    wait_idle(qtbot, window)
    # What the dialog showed is exactly what went out.
    assert fake_openai.chat_requests()[0].body["messages"] == copied


def test_damage_found_after_start_is_told_and_repaired_next_time(
    qtbot: QtBot, window: MainWindow, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QMessageBox

    from desktop_chat.gui.application import _check_integrity_later
    from desktop_chat.services.workspace import last_session_ended_cleanly
    from tests.unit.storage.test_backup import damage_a_page

    told: list[str] = []

    def critical(_parent: object, _title: str, text: str, *_buttons: object) -> object:
        told.append(text)
        return QMessageBox.StandardButton.Ignore

    monkeypatch.setattr(QMessageBox, "critical", critical)
    damaged: list[str] = []
    _check_integrity_later(window, workspace, damaged)  # a sound database: nothing said
    assert QThreadPool.globalInstance().waitForDone(10_000)
    qtbot.wait(50)  # the job's callback arrives through the event loop
    assert told == []
    assert damaged == []

    workspace.begin_session()
    damage_a_page(workspace)
    _check_integrity_later(window, workspace, damaged)
    qtbot.waitUntil(lambda: bool(told))
    assert "found damage in its database" in told[0]
    assert "moved aside (never deleted)" in told[0]
    assert window.isVisible()  # "Ignore" keeps working
    workspace.end_session(clean=not damaged)
    assert not last_session_ended_cleanly()  # so the next start checks and repairs


def test_back_up_then_restore_from_the_file_menu(
    qtbot: QtBot, window: MainWindow, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QMessageBox

    from desktop_chat.services.workspace import RESTORE_REQUEST

    seed(workspace, ["Before the backup"])
    menu = {a.text(): a for a in window.menuBar().actions()[0].menu().actions()}
    menu["Back &up now"].trigger()
    qtbot.waitUntil(lambda: "Backed up to" in window.statusBar().currentMessage())
    seed(workspace, ["After the backup"])

    menu["Restore a &backup…"].trigger()
    dialog = window.backup_dialog
    qtbot.waitExposed(dialog)
    assert dialog.list.count() == 1
    assert "made by you" in dialog.list.item(0).text()
    monkeypatch.setattr(QMessageBox, "question", lambda *_: QMessageBox.StandardButton.Yes)
    qtbot.mouseClick(dialog.restore_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.isVisible())
    assert window.restart_requested
    request = workspace.paths.data / RESTORE_REQUEST
    assert request.read_text() == dialog.chosen
    # What the restarted app finds (run_gui opens the workspace the same way).
    workspace.close()
    restored = Workspace.open()
    try:
        assert [c.title for c in restored.repo.list_conversations()] == ["Before the backup"]
        assert (restored.notice or "").startswith("Restored the backup")
    finally:
        restored.close()


def test_size_splitter_and_last_chat_are_restored(
    qtbot: QtBot, window: MainWindow, workspace: Workspace
) -> None:
    first, second = seed(workspace, ["First", "Second"])
    window.reload_list()
    window.open_conversation(first)
    window.resize(720, 520)  # within the offscreen screen (800 x 600)
    window.splitter.setSizes([220, 500])
    sizes = window.splitter.sizes()
    window.close()

    again = MainWindow(workspace)
    qtbot.addWidget(again)
    again.show()
    qtbot.waitExposed(again)
    assert (again.width(), again.height()) == (720, 520)
    assert again.splitter.sizes() == sizes
    # The chat opens just after the first paint, selected in the list meanwhile.
    qtbot.waitUntil(lambda: again.current_id == first)
    assert again.title_label.text() == "First"
    assert shown(again)[0][1] == "First: question 0"
    assert second  # the other one is only in the list
    again.close()


def test_the_last_chat_is_reopened_even_far_down_the_list(
    qtbot: QtBot, window: MainWindow, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from desktop_chat.gui import conversation_list

    monkeypatch.setattr(conversation_list, "PAGE", 2)
    (old,) = seed(workspace, ["Old"])
    newer, _ = seed(workspace, ["Newer", "Newest"])
    window.reload_list()
    window.open_conversation(old)
    window.close()

    again = MainWindow(workspace)
    qtbot.addWidget(again)
    again.show()
    assert again.list_model.row_of(old) < 0  # not on the list's first page
    qtbot.waitUntil(lambda: again.current_id == old)
    assert again.title_label.text() == "Old"
    qtbot.waitUntil(lambda: "tokens" in again.meter.format())
    again.open_conversation(newer)
    again.refresh_context_meter()
    assert again.meter.format() == "Counting…"  # not the figures of the chat before
    qtbot.waitUntil(lambda: "tokens" in again.meter.format())
    again.close()


def test_the_frame_shows_first_and_the_chat_opens_in_it(
    qtbot: QtBot, window: MainWindow, workspace: Workspace
) -> None:
    """As the app starts: the window's frame (restored size and panes, the menus'
    titles) is painted before the database opens; the menus fill in with the chat."""
    from desktop_chat.gui.application import after_first_paint
    from desktop_chat.gui.main_window import read_state, state_file

    (first,) = seed(workspace, ["First"])
    window.reload_list()
    window.open_conversation(first)
    window.resize(700, 500)
    window.splitter.setSizes([200, 500])
    sizes = window.splitter.sizes()
    window.close()

    frame = MainWindow(state=read_state(state_file(workspace.paths.config)))
    qtbot.addWidget(frame)
    frame.show()
    opened: list[bool] = []
    after_first_paint(frame, lambda: opened.append(True) or frame.attach(workspace))
    assert not opened  # nothing is opened before the frame is on screen
    titles = [a.text() for a in frame.menuBar().actions()]
    assert titles == ["&File", "&View", "&Edit", "&Help"]
    assert not frame.menuBar().isEnabled()
    assert not frame.menuBar().actions()[0].menu().actions()
    qtbot.waitUntil(lambda: frame.attached, timeout=TIMEOUT)
    assert frame.menuBar().isEnabled()
    menu = {a.text(): a for a in frame.menuBar().actions()[0].menu().actions()}
    assert (frame.width(), frame.height()) == (700, 500)
    # Once laid out (a busy machine attaches before the first paint, see after_first_paint).
    qtbot.waitUntil(lambda: frame.splitter.sizes() == sizes, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: frame.current_id == first, timeout=TIMEOUT)
    menu["&New chat"].trigger()
    assert frame.current_id is None
    frame.close()


def test_an_unexpected_error_is_logged_and_told_once_with_details(
    qtbot: QtBot,
    window: MainWindow,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from PySide6.QtWidgets import QMessageBox

    from desktop_chat import secrets
    from desktop_chat.gui import application

    monkeypatch.setattr(application, "_reported", [])
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(
        QMessageBox, "exec", lambda box: shown.append((box.text(), box.detailedText()))
    )
    canary = "sk-canary-unexpected-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    assert secrets.get_api_key() == canary  # now a key the process knows

    def broken_slot() -> None:
        raise KeyError(f"no such thing with {canary}")

    for _ in range(2):
        try:
            broken_slot()
        except KeyError as exc:
            window.show_error(exc)
    assert len(shown) == 1  # told once, however often it happens
    text, details = shown[0]
    assert text.startswith("Something went wrong: KeyError")
    assert "What you saved is safe" in text
    assert "Traceback (most recent call last)" in details
    assert "broken_slot" in details
    assert canary not in text + details
    assert sum("unexpected error" in r.getMessage() for r in caplog.records) == 2


def test_a_message_too_large_for_the_model_is_an_inline_error_and_nothing_is_sent(
    qtbot: QtBot, window: MainWindow, fake_openai: FakeOpenAI
) -> None:
    huge = "word " * 140_000  # ~140k tokens: more than gpt-4o-mini's 128k window
    window.composer.edit.setPlainText(huge)
    qtbot.mouseClick(window.composer.button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert fake_openai.chat_requests() == []
    question, reply = shown(window)
    assert question == (Role.USER, huge, MessageStatus.COMPLETE)  # kept, not lost
    assert reply[0] is Role.ASSISTANT
    assert reply[2] is MessageStatus.ERROR
    failed = window.chat_model.message_at(1)
    assert "This message cannot be sent" in (failed.error or "")
    assert "cannot be sent" in window.status_line.text()
    assert window.composer.button.text() == "Send"


def test_the_sdk_loads_once_the_user_starts_writing(
    qtbot: QtBot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from desktop_chat.gui import application

    started: list[bool] = []
    monkeypatch.setattr(application, "start_prewarm", lambda *, sdk=False: started.append(sdk))
    qtbot.keyClicks(window.composer.edit, "hello")
    assert started == [True]  # once, however much is typed


def test_the_status_bar_tells_while_an_import_waits_for_the_search_index(
    qtbot: QtBot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from desktop_chat.services.index_upkeep import IndexUpkeep
    from desktop_chat.storage import search
    from tests.unit.storage.sample import imported_history

    monkeypatch.setattr(search, "DEFER_INDEXING_AT", 100)
    imported_history(window.repo, 300)
    window.show_indexing()
    assert window._indexing is None  # nothing would index it: nothing to tell
    # The window's upkeep, in small steps so it lasts long enough to be seen.
    upkeep = window.workspace.upkeep = IndexUpkeep(window.repo, chars=3_000)
    upkeep.start()
    window.show_indexing()  # as when the window opens, and after an import
    label = window._indexing
    assert label is not None
    assert not label.isHidden()
    assert re.fullmatch(r"Indexing \d+ imported messages for search…", label.text())
    qtbot.waitUntil(label.isHidden, timeout=10_000)
    assert window.repo.count_unindexed() == 0


def test_each_background_job_closes_its_database_connection(
    qtbot: QtBot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from desktop_chat.gui import workers

    assert window.repo.close in workers._after_each_job  # the window asked for it
    closed: list[tuple[int, bool]] = []
    repo_close = window.repo.close

    def close_and_note() -> None:
        had = not window.repo.db.is_closed()  # this thread's connection
        repo_close()
        closed.append((threading.get_ident(), had and window.repo.db.is_closed()))

    monkeypatch.setattr(workers, "_after_each_job", [close_and_note])
    ran_in: list[int] = []

    def job() -> int:
        ran_in.append(threading.get_ident())
        return window.repo.count_conversations()

    done: list[int] = []
    workers.run_job(job, done.append)
    qtbot.waitUntil(lambda: bool(done))
    assert closed == [(ran_in[0], True)]  # in the job's thread, after it used the database
    assert ran_in[0] != threading.get_ident()
    assert window.repo.db.is_closed() is False  # the window's own connection stays


def test_a_search_snippet_is_cut_only_to_show_its_match_and_at_a_word() -> None:
    from desktop_chat.gui.conversation_list import fit_snippet

    text = "Question 5: how does merge sort work?"
    match = ((21, 31),)
    assert fit_snippet(text, match, len, 80) == (text, match)  # it fits: uncut
    cut, spans = fit_snippet(text, match, len, 25)
    assert cut == "…5: how does merge sort work?"  # from a word, not "…uestion 5"
    assert cut[spans[0][0] : spans[0][1]] == "merge sort"
    long_cjk = "天気" * 30 + "索引の話"
    cut, spans = fit_snippet(long_cjk, ((60, 62),), len, 40)  # no spaces: cut anywhere
    assert cut[spans[0][0] : spans[0][1]] == "索引"
    assert cut.startswith("…")


def test_search_highlights_count_as_qt_does_after_emoji() -> None:
    from desktop_chat.gui.conversation_list import utf16_spans

    assert utf16_spans("merge sort", ((0, 5),)) == [(0, 5)]
    assert utf16_spans("😀😀 merge sort", ((3, 8),)) == [(5, 5)]  # two units per emoji
    assert utf16_spans("short", ((2, 40),)) == [(2, 3)]  # clipped to the text drawn
