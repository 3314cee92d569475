"""What the next request carries: every payload message with its tokens and why it is in."""

from __future__ import annotations

import json
from collections import Counter

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QGuiApplication, QMouseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QProgressBar,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop_chat.core.context import ContextPlan
from desktop_chat.services.chat import DRAFT_ID

Index = QModelIndex | QPersistentModelIndex

ROLES = {"system": "System", "user": "You", "assistant": "Assistant", "tool": "Tool"}
WHY_IN = {
    "system": "system prompt",
    "summary": "summary of older messages",
    "pinned": "pinned",
    "recent": "recent",
    "newest": "newest (always sent)",
}
WHY_OUT = {
    "over_budget": "did not fit the token budget",
    "last_n": "older than the last N",
    "summarized": "covered by the summary",
    "hidden": "hidden (never sent)",
}
PREVIEW = 160  # characters of each message shown in the table


class ContextMeter(QProgressBar):
    """Tokens the next request carries out of the window; a click shows them all."""

    sig_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(
            event.position().toPoint()
        ):
            self.sig_clicked.emit()
        super().mouseReleaseEvent(event)


class PayloadModel(QAbstractTableModel):
    """One row per message of the request, in the order the model reads them."""

    HEADERS = ("Role", "Why it is sent", "Tokens", "Text")

    def __init__(self, plan: ContextPlan, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows = [
            (
                ROLES.get(item.role, item.role),
                "your message" if item.message_id == DRAFT_ID else WHY_IN.get(item.reason, ""),
                item.tokens,
                message,
            )
            for item, message in zip(plan.included, plan.messages, strict=True)
        ]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> str | None:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return str(section + 1)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        who, why, tokens, message = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 3:
                text = " ".join(message["content"].split())
                return text[:PREVIEW] + ("…" if len(text) > PREVIEW else "")
            return (who, why, f"{tokens:,}")[column] if column < 3 else None
        if role == Qt.ItemDataRole.ToolTipRole and column == 3:
            return message["content"][:2000]
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


def summary_text(plan: ContextPlan) -> str:
    """The plan in two sentences: what is sent, and what is left out and why."""
    sent = sum(1 for item in plan.included if item.message_id not in (None, DRAFT_ID))
    approx = "about " if plan.estimate else ""
    lines = [
        f"Sending what you have typed carries it and {sent:,} message(s) of this chat: "
        f"{approx}{plan.total_tokens:,} tokens of the model's {plan.window:,}-token window, "
        f"with {plan.reserve:,} kept for the reply."
    ]
    reasons = Counter(d.reason for d in plan.dropped)
    if reasons:
        parts = [f"{n:,} {WHY_OUT.get(reason, reason)}" for reason, n in reasons.items()]
        lines.append("Left out: " + "; ".join(parts) + ". They stay in the chat, dimmed.")
    else:
        lines.append("Nothing in this chat is left out.")
    return "\n".join(lines)


class ContextDialog(QDialog):
    """Read-only view of a :class:`ContextPlan`, with the exact payload to copy."""

    def __init__(self, plan: ContextPlan, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"What the next request carries: {title}")
        self.resize(820, 520)
        self._plan = plan
        layout = QVBoxLayout(self)
        self.summary = QLabel(summary_text(plan), self)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.summary)
        self.table = QTableView(self)
        self.table.setObjectName("payloadTable")
        self.table.setModel(PayloadModel(plan, self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        for column in range(3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.scrollToBottom()
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        copy = buttons.addButton("Copy as JSON", QDialogButtonBox.ButtonRole.ActionRole)
        copy.setToolTip("The messages exactly as they will be sent (OpenAI chat format)")
        copy.clicked.connect(self.copy_payload)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def copy_payload(self) -> None:
        text = json.dumps(self._plan.messages, ensure_ascii=False, indent=2)
        QGuiApplication.clipboard().setText(text)
