"""GUI fixtures: the real main window over a real database, talking to the fake server."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, cast

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from pytestqt.qtbot import QtBot

from desktop_chat.core.types import MessageStatus, Role
from desktop_chat.gui.application import apply_theme, create_application
from desktop_chat.gui.links import ACTION_SCHEME
from desktop_chat.gui.main_window import MainWindow
from desktop_chat.services.workspace import Workspace
from tests.support.fake_openai import FakeOpenAI


@pytest.fixture(autouse=True)
def no_modal_dialogs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A message box left to run its own event loop would wait for a click forever:
    in tests it fails with its text instead."""
    from PySide6.QtWidgets import QMessageBox

    def refuse(box: QMessageBox) -> int:
        raise AssertionError(f"a modal dialog opened: {box.text()!r}")

    monkeypatch.setattr(QMessageBox, "exec", refuse)


@pytest.fixture
def workspace(fake_openai: FakeOpenAI) -> Iterator[Workspace]:
    create_application()
    opened = Workspace.open()
    yield opened
    opened.close()


@pytest.fixture
def window(qtbot: QtBot, workspace: Workspace) -> Iterator[MainWindow]:
    apply_theme("light")
    main = MainWindow(workspace)
    qtbot.addWidget(main)
    main.resize(1100, 760)
    main.show()
    qtbot.waitExposed(main)
    yield main
    main.close()


def seed(workspace: Workspace, titles: list[str], replies: int = 1) -> list[str]:
    """Conversations with a question and Markdown answers; returns their ids."""
    ids = []
    for title in titles:
        conv = workspace.repo.create_conversation(title=title, model="gpt-4o-mini")
        parent = None
        for n in range(replies):
            user = workspace.repo.append_message(
                conv.id, parent, Role.USER, f"{title}: question {n}"
            )
            answer = workspace.repo.append_message(
                conv.id,
                user.id,
                Role.ASSISTANT,
                f"Answer {n} about **{title}**.\n\n```python\nprint({n})\n```",
                model="gpt-4o-mini",
                status=MessageStatus.COMPLETE,
            )
            parent = answer.id
        ids.append(conv.id)
    return ids


def seen_text(window: MainWindow, row: int) -> str:
    """The row as painted: header, text, inline error and action links."""
    view = window.chat_view
    index = window.chat_model.index(row)
    return view.delegate._laid_out(index, view.visualRect(index).width()).toPlainText()


def click_link(qtbot: QtBot, window: MainWindow, row: int, action: str) -> None:
    """Click the action's link where it is painted, as a user would."""
    view = window.chat_view
    index = window.chat_model.index(row)
    view.scrollTo(index)
    rect = view.visualRect(index)
    document = view.delegate._laid_out(index, rect.width())
    layout = document.documentLayout()
    document.size()  # lays the document out: lines exist from here on
    href = ACTION_SCHEME + action
    block = document.begin()
    while block.isValid():
        for item in cast(Iterable[Any], block):  # PySide6 iterates; its stubs do not say
            fragment = item.fragment()
            if fragment.charFormat().anchorHref() != href:
                continue
            offset = fragment.position() - block.position() + fragment.length() // 2
            line = block.layout().lineForTextPosition(offset)
            assert line.isValid()
            origin = layout.blockBoundingRect(block).topLeft()
            x = origin.x() + cast(tuple[float, int], line.cursorToX(offset))[0]
            y = origin.y() + line.y() + line.height() / 2
            assert layout.anchorAt(QPointF(x, y)) == href
            pos = rect.topLeft() + QPoint(int(x), int(y))
            qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
            return
        block = block.next()
    raise AssertionError(f"no {action} link in: {document.toPlainText()!r}")
