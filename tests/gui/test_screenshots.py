"""Screenshots a person can judge: light and dark, empty, a long chat with code, the settings.

They are written to ``screenshots/`` at the top of the checkout (the README says so).
Each is also checked for being a real picture, not a blank window.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from desktop_chat.core.types import MemoryPolicy, PolicyKind, Role
from desktop_chat.gui.application import apply_theme
from desktop_chat.gui.main_window import MainWindow
from desktop_chat.gui.settings_dialog import SettingsDialog
from desktop_chat.services.workspace import Workspace
from tests.conftest import REPO_ROOT

SHOTS = REPO_ROOT / "screenshots"

LONG_ANSWER = """Here is a merge sort in Python, with a few notes.

```python
def merge_sort(items: list[int]) -> list[int]:
    if len(items) <= 1:
        return items
    middle = len(items) // 2
    left, right = merge_sort(items[:middle]), merge_sort(items[middle:])
    merged = []
    while left and right:
        merged.append(left.pop(0) if left[0] <= right[0] else right.pop(0))
    return merged + left + right
```

- It is **stable**: equal items keep their order.
- It runs in *O(n log n)* time and needs O(n) extra memory.

| Algorithm | Best | Worst |
|---|---|---|
| Merge sort | n log n | n log n |
| Quick sort | n log n | n² |
"""


def save(widget: object, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / name
    assert widget.grab().save(str(path))  # type: ignore[attr-defined]
    image = QImage(str(path))
    assert image.width() > 300
    assert image.height() > 200
    # Not blank: many distinct colors in the picture.
    colors = {
        image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)
    }
    assert len(colors) > 10
    return path


def long_chat(workspace: Workspace) -> str:
    conv = workspace.repo.create_conversation(title="Sorting algorithms", model="gpt-4o")
    parent = None
    for n in range(6):
        user = workspace.repo.append_message(
            conv.id, parent, Role.USER, f"Question {n}: how does merge sort work?"
        )
        reply = workspace.repo.append_message(
            conv.id, user.id, Role.ASSISTANT, LONG_ANSWER, model="gpt-4o"
        )
        parent = reply.id
    for title in (
        "Trip plan for Lisbon",
        "Explain WAL mode",
        "Sourdough schedule",
        "Regex for ISO dates",
    ):
        workspace.repo.create_conversation(title=title, model="gpt-4o-mini")
    return conv.id


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_long_conversation_with_code(
    qtbot: QtBot, window: MainWindow, workspace: Workspace, theme: str
) -> None:
    apply_theme(theme, window.chat_model)
    conv_id = long_chat(workspace)
    window.chat_model.set_dark(theme == "dark")
    window.reload_list()
    window.open_conversation(conv_id)
    qtbot.waitUntil(lambda: "tokens" in window.meter.format())  # planned, not "Counting…"
    qtbot.wait(100)
    save(window, f"chat-{theme}.png")


def test_empty_state(qtbot: QtBot, window: MainWindow) -> None:
    window.new_chat()
    save(window, "empty.png")


def test_first_run(qtbot: QtBot, window: MainWindow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    window._update_welcome()
    save(window, "first-run.png")


def test_settings_dialog(qtbot: QtBot, window: MainWindow, workspace: Workspace) -> None:
    dialog = SettingsDialog(workspace, window)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    save(dialog, "settings.png")


def test_search_results(qtbot: QtBot, window: MainWindow, workspace: Workspace) -> None:
    long_chat(workspace)
    window.reload_list()
    qtbot.keyClicks(window.search_box, "merge sort")
    qtbot.waitUntil(lambda: window.list_model.searching and window.list_model.rowCount() > 0)
    save(window, "search.png")


def test_what_the_next_request_carries(
    qtbot: QtBot, window: MainWindow, workspace: Workspace
) -> None:
    conv_id = long_chat(workspace)
    workspace.repo.update_conversation(
        conv_id, memory_policy=MemoryPolicy(kind=PolicyKind.LAST_N, last_n=6)
    )
    window.reload_list()
    window.open_conversation(conv_id)
    qtbot.keyClicks(window.composer.edit, "And quicksort?")
    window.show_context()
    qtbot.waitExposed(window.context_dialog)
    save(window.context_dialog, "next-request.png")
