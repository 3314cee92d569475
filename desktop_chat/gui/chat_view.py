"""The chat pane's message list: a windowed item model and a delegate that paints Markdown.

Opening a conversation loads only the newest page of its active thread; older
pages are prepended when the user scrolls to the top. While a reply streams,
only its row changes. Every per-message action (copy, edit, regenerate, pin,
delete, branch arrows, code-block Copy) is a link inside the painted document,
so rows stay painted rather than becoming widgets.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QPointF,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QMouseEvent,
    QPainter,
    QPalette,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTextBrowser,
    QWidget,
)

from desktop_chat.core.types import Message, MessageStatus, Role
from desktop_chat.gui.links import ACTION_SCHEME, COPY_SCHEME, SAFE_SCHEMES
from desktop_chat.storage import Repository

PAGE = 100
Index = QModelIndex | QPersistentModelIndex


class Roles(enum.IntEnum):
    MESSAGE = Qt.ItemDataRole.UserRole + 1
    HTML = enum.auto()
    CODE_BLOCKS = enum.auto()
    BRANCH = enum.auto()
    INCLUDED = enum.auto()
    LAYOUT = enum.auto()  # what the row's rendering depends on, for the delegate's caches


class ChatModel(QAbstractListModel):
    """The visible messages of one conversation's active thread, newest page first loaded."""

    sig_older_loaded = Signal(int)  # how many rows were prepended

    def __init__(self, repo: Repository, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._repo = repo
        self.conversation_id: str | None = None
        self._rows: list[Message] = []
        self._oldest_id: str | None = None  # includes hidden messages, for paging
        self._has_more = False
        self._html: dict[tuple[str, int, str, bool], tuple[str, list[str]]] = {}
        self._branches: dict[str, tuple[int, int]] = {}
        self._excluded: set[str] = set()
        self.dark = False
        self._roles: dict[int, Callable[[Message], Any]] = {
            Roles.MESSAGE: lambda message: message,
            Roles.HTML: lambda message: self._render(message)[0],
            Roles.CODE_BLOCKS: lambda message: self._render(message)[1],
            Roles.BRANCH: lambda message: self._branches.get(message.id, (0, 1)),
            Roles.INCLUDED: lambda message: message.id not in self._excluded,
            Roles.LAYOUT: self._layout_key,
            Qt.ItemDataRole.DisplayRole: lambda message: message.content,
            Qt.ItemDataRole.ToolTipRole: lambda message: message.created_at.astimezone().strftime(
                "%A %d %B %Y, %H:%M:%S"
            ),
        }

    # -- loading -----------------------------------------------------------

    def load(self, conversation_id: str | None, *, leaf_id: str | None = None) -> None:
        """The newest page of the active thread, or of the thread ending at ``leaf_id``."""
        self.beginResetModel()
        self.conversation_id = conversation_id
        self._rows, self._oldest_id, self._has_more = [], None, False
        self._branches, self._excluded = {}, set()
        if conversation_id is not None:
            page = self._repo.thread_page(conversation_id, leaf_id=leaf_id, limit=PAGE)
            self._take_page(page.messages, page.has_more, prepend=False)
        self.endResetModel()

    def reload(self) -> None:
        self.load(self.conversation_id)

    def _take_page(
        self, messages: list[Message], has_more: bool, *, prepend: bool
    ) -> list[Message]:
        self._has_more = has_more
        if messages:
            self._oldest_id = messages[0].id
        visible = [m for m in messages if not m.hidden]
        self._branches.update(self._repo.branch_positions([m.id for m in visible]))
        if prepend:
            self._rows[:0] = visible
        else:
            self._rows = visible
        return visible

    @property
    def has_more(self) -> bool:
        return self._has_more

    def load_older(self) -> int:
        """Prepend the previous page; return how many rows were added."""
        if not self._has_more or self.conversation_id is None or self._oldest_id is None:
            return 0
        page = self._repo.thread_page(self.conversation_id, before_id=self._oldest_id, limit=PAGE)
        if not page.messages:
            self._has_more = False
            return 0
        visible = [m for m in page.messages if not m.hidden]
        if visible:
            self.beginInsertRows(QModelIndex(), 0, len(visible) - 1)
        self._take_page(page.messages, page.has_more, prepend=True)
        if visible:
            self.endInsertRows()
        self.sig_older_loaded.emit(len(visible))
        return len(visible)

    # -- live updates ------------------------------------------------------

    def append(self, message: Message) -> None:
        row = len(self._rows)
        self.beginInsertRows(QModelIndex(), row, row)
        self._rows.append(message)
        self.endInsertRows()

    def show_stored(self, message: Message) -> bool:
        """Show a stored message's latest state: in its row, or as a new row when it
        follows the last one. False when it belongs elsewhere (reload the page then)."""
        row = self.row_of(message.id)
        if row < 0 and (not self._rows or self._rows[-1].id != message.parent_id):
            return False
        self._branches.update(self._repo.branch_positions([message.id]))
        if row < 0:
            self.append(message)
        else:
            self._rows[row] = message
            self.dataChanged.emit(self.index(row), self.index(row))
        return True

    def update_message(self, message_id: str, **changes: Any) -> None:
        """Change one row in place (streamed text, final status) and repaint only it."""
        for row in range(len(self._rows) - 1, -1, -1):
            if self._rows[row].id == message_id:
                self._rows[row] = replace(self._rows[row], **changes)
                index = self.index(row)
                self.dataChanged.emit(index, index)
                return

    def set_excluded(self, message_ids: set[str]) -> None:
        """Mark messages the next request will not carry."""
        if message_ids != self._excluded:
            self._excluded = message_ids
            if self._rows:
                self.dataChanged.emit(self.index(0), self.index(len(self._rows) - 1))

    def message_at(self, row: int) -> Message:
        return self._rows[row]

    def messages(self) -> list[Message]:
        return list(self._rows)

    def row_of(self, message_id: str) -> int:
        for row, message in enumerate(self._rows):
            if message.id == message_id:
                return row
        return -1

    def set_dark(self, dark: bool) -> None:
        self.dark = dark
        self._html.clear()

    # -- model API ---------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        # Asked for each row on every layout, several roles each: compute only the one asked.
        value = self._roles.get(role)
        return None if value is None else value(self._rows[index.row()])

    def _layout_key(self, message: Message) -> tuple[Any, ...]:
        """Everything a row's rendering depends on (see MessageDelegate._document)."""
        return (
            message.id,
            len(message.content),
            message.status.value,
            message.pinned,
            message.model,
            message.error,
            message.metadata.get("finish_reason"),
            isinstance(message.metadata.get("thinking"), str),
            self._branches.get(message.id, (0, 1)),
            message.id not in self._excluded,
            self.dark,
        )

    def _render(self, message: Message) -> tuple[str, list[str]]:
        key = (message.id, len(message.content), message.status.value, self.dark)
        cached = self._html.get(key)
        if cached is None:
            text, note = displayable(message.content)
            if message.role is Role.USER:
                # What the user typed is shown as typed, not as Markdown.
                import html as html_lib

                body = html_lib.escape(text).replace("\n", "<br>")
                cached = (f"<p>{body}</p>", [])
            else:
                from desktop_chat.gui import render  # Markdown and Pygments load on first use

                cached = render.to_html(text, dark=self.dark)
            if note:
                cached = (cached[0] + f"<p><i>{note}</i></p>", cached[1])
            if len(self._html) > 2000:
                self._html.clear()
            self._html[key] = cached
        return cached


DISPLAY_LIMIT = 20_000  # characters laid out per message; the rest is a click away
DISPLAY_LINES = 1_000  # and lines (Markdown parses 2,000 short lines in ~45 ms)
LONG_RUN = re.compile(r"\S{200}")


def displayable(text: str) -> tuple[str, str | None]:
    """What the view lays out: at most DISPLAY_LIMIT characters and DISPLAY_LINES
    lines, long runs breakable.

    Qt's text layout is quadratic on one unbroken run (a million "x" took a
    minute), so runs get zero-width break opportunities; copying and export
    always use the full text.
    """
    lines = text.split("\n", DISPLAY_LINES)
    more_lines = len(lines) > DISPLAY_LINES and bool(lines[-1].strip())  # not just blank ones
    shown = "\n".join(lines[:DISPLAY_LINES]) if more_lines else text
    note = None
    if len(shown) > DISPLAY_LIMIT:
        note = f"Showing the first {DISPLAY_LIMIT:,} of {len(text):,} characters. "
        shown = shown[:DISPLAY_LIMIT]
    elif more_lines:
        total = text.rstrip().count("\n") + 1
        note = f"Showing the first {DISPLAY_LINES:,} of {total:,} lines. "
    if note is not None:
        note += "Copy or export the message for all of it."
    return LONG_RUN.sub(lambda m: m.group(0) + "\u200b", shown), note


def _actions_html(message: Message, branch: tuple[int, int], streaming: bool) -> str:
    links = []
    if branch[1] > 1:
        prev_link = f'<a href="{ACTION_SCHEME}prev">&lsaquo;</a>' if branch[0] > 0 else "&lsaquo;"
        last = branch[0] >= branch[1] - 1
        next_link = "&rsaquo;" if last else f'<a href="{ACTION_SCHEME}next">&rsaquo;</a>'
        links.append(f"{prev_link} {branch[0] + 1}/{branch[1]} {next_link}")
    if not streaming:
        if isinstance(message.metadata.get("thinking"), str):
            links.append(f'<a href="{ACTION_SCHEME}thinking">Reasoning</a>')
        links.append(f'<a href="{ACTION_SCHEME}copy">Copy</a>')
        if message.role is Role.USER:
            links.append(f'<a href="{ACTION_SCHEME}edit">Edit</a>')
        if message.role is Role.ASSISTANT:
            links.append(f'<a href="{ACTION_SCHEME}regenerate">Regenerate</a>')
            cut_off = message.metadata.get("finish_reason") == "length"
            stopped = message.status in (MessageStatus.STOPPED, MessageStatus.INTERRUPTED)
            # A reply that failed part-way keeps its text and can go on from it too.
            partial = message.status is MessageStatus.ERROR and bool(message.content)
            if cut_off or stopped or partial:
                links.append(f'<a href="{ACTION_SCHEME}continue">Continue</a>')
            if message.status is MessageStatus.ERROR:
                links.append(f'<a href="{ACTION_SCHEME}retry">Retry</a>')
        pin = "Unpin" if message.pinned else "Pin to context"
        links.append(f'<a href="{ACTION_SCHEME}pin">{pin}</a>')
        links.append(f'<a href="{ACTION_SCHEME}delete">Delete</a>')
    return " &nbsp;·&nbsp; ".join(links)


def _header_html(message: Message, included: bool) -> str:
    who = {Role.USER: "You", Role.ASSISTANT: "Assistant", Role.SYSTEM: "System", Role.TOOL: "Tool"}
    parts = [f"<b>{who[message.role]}</b>"]
    if message.role is Role.ASSISTANT and message.model:
        parts.append(message.model)
    parts.append(message.created_at.astimezone().strftime("%H:%M"))
    badges = {
        MessageStatus.STREAMING: "● streaming",
        MessageStatus.STOPPED: "■ stopped",
        MessageStatus.INTERRUPTED: "⚠ interrupted",
        MessageStatus.ERROR: "⚠ error",
    }
    if message.status in badges:
        parts.append(f"<i>{badges[message.status]}</i>")
    if message.metadata.get("finish_reason") == "length":
        parts.append("<i>cut off at the reply limit</i>")
    if message.pinned:
        parts.append("📌 pinned")
    if not included:
        parts.append("<i>not sent with the next message</i>")
    return " &nbsp;·&nbsp; ".join(parts)


class MessageDelegate(QStyledItemDelegate):
    """Paints a message as a rich-text document; its links are the message's actions."""

    sig_action = Signal(str, str)  # action, message id
    sig_copy_code = Signal(str)

    MARGIN = 12

    def __init__(self, view: QListView) -> None:
        super().__init__(view)
        self._view = view
        self._sizes: dict[tuple[Any, ...], QSize] = {}
        # Laid-out documents of the rows last measured, painted or hovered: a streaming
        # reply's row is measured and painted for each batch, and hovering asks on each move.
        self._documents: dict[tuple[Any, ...], QTextDocument] = {}

    def _document(self, index: Index, width: int) -> QTextDocument:
        message: Message = index.data(Roles.MESSAGE)
        included = bool(index.data(Roles.INCLUDED))
        streaming = message.status is MessageStatus.STREAMING
        palette = self._view.palette()
        dim = palette.color(QPalette.ColorRole.PlaceholderText).name()
        link = palette.color(QPalette.ColorRole.Link).name()
        html = [
            f'<div style="color:{dim}; font-size:small;">{_header_html(message, included)}</div>',
            index.data(Roles.HTML),
        ]
        if message.error:
            import html as html_lib

            html.append(
                '<p style="color:#c62828;"><b>Not answered:</b> '
                f"{html_lib.escape(message.error)}</p>"
            )
        html.append(
            f'<div style="font-size:small; color:{link};">'
            f"{_actions_html(message, index.data(Roles.BRANCH), streaming)}</div>"
        )
        document = QTextDocument()
        document.setDefaultFont(self._view.font())
        document.setDefaultStyleSheet(f"a {{ color: {link}; text-decoration: none; }}")
        document.setDocumentMargin(self.MARGIN)
        document.setHtml("".join(html))
        document.setTextWidth(width)
        return document

    def _width(self, option: QStyleOptionViewItem) -> int:
        return max(200, option.rect.width() or self._view.viewport().width())

    def forget(self) -> None:
        """Drop the kept sizes and documents: the view's font or palette changed."""
        self._sizes.clear()
        self._documents.clear()

    def _laid_out(self, index: Index, width: int) -> QTextDocument:
        key = (*index.data(Roles.LAYOUT), width)
        document = self._documents.pop(key, None)
        if document is None:
            document = self._document(index, width)
            if len(self._documents) >= 64:
                del self._documents[next(iter(self._documents))]  # the least recently used
        self._documents[key] = document
        return document

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        # Asked for every loaded row on each layout (each batch of a streaming reply):
        # one model call, then a dict lookup.
        width = self._width(option)
        key = (*index.data(Roles.LAYOUT), width)
        size = self._sizes.get(key)
        if size is None:
            document = self._laid_out(index, width)
            size = QSize(width, int(document.size().height()) + 4)
            if len(self._sizes) > 5000:
                self._sizes.clear()
            self._sizes[key] = size
        return size

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        message: Message = index.data(Roles.MESSAGE)
        rect = QRectF(option.rect)
        painter.save()
        palette = self._view.palette()
        if message.role is Role.USER:
            painter.fillRect(
                rect.adjusted(4, 2, -4, -2), palette.color(QPalette.ColorRole.AlternateBase)
            )
        if not index.data(Roles.INCLUDED):
            painter.setOpacity(0.55)
        if message.status is MessageStatus.ERROR:
            painter.fillRect(
                QRectF(rect.left(), rect.top() + 2, 3, rect.height() - 4), QColor("#c62828")
            )
        document = self._laid_out(index, int(rect.width()))
        painter.translate(rect.topLeft())
        document.drawContents(painter, QRectF(0, 0, rect.width(), rect.height()))
        painter.restore()

    def anchor_at(self, index: Index, pos: QPointF) -> str:
        rect = self._view.visualRect(index)
        document = self._laid_out(index, rect.width())
        local = pos - QPointF(rect.topLeft())
        return document.documentLayout().anchorAt(local)

    def editorEvent(
        self, event: QEvent, model: Any, option: QStyleOptionViewItem, index: Index
    ) -> bool:
        if event.type() == QEvent.Type.MouseButtonRelease and isinstance(event, QMouseEvent):
            anchor = self.anchor_at(index, event.position())
            message: Message = index.data(Roles.MESSAGE)
            if anchor.startswith(ACTION_SCHEME):
                self.sig_action.emit(anchor.removeprefix(ACTION_SCHEME), message.id)
                return True
            if anchor.startswith(COPY_SCHEME):
                blocks = index.data(Roles.CODE_BLOCKS)
                number = int(anchor.removeprefix(COPY_SCHEME))
                if 0 <= number < len(blocks):
                    QGuiApplication.clipboard().setText(blocks[number])
                    self.sig_copy_code.emit(blocks[number])
                return True
            if anchor.startswith(SAFE_SCHEMES):
                from PySide6.QtCore import QUrl
                from PySide6.QtGui import QDesktopServices

                QDesktopServices.openUrl(QUrl(anchor))
                return True
        if event.type() == QEvent.Type.MouseMove and isinstance(event, QMouseEvent):
            anchor = self.anchor_at(index, event.position())
            cursor = Qt.CursorShape.PointingHandCursor if anchor else Qt.CursorShape.ArrowCursor
            self._view.viewport().setCursor(cursor)
        return False

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: Index) -> QWidget:
        """A read-only browser over the row, so its text can be selected and copied."""
        editor = QTextBrowser(parent)
        editor.setOpenLinks(False)
        editor.setFrameShape(QTextBrowser.Shape.NoFrame)
        editor.setDocument(self._document(index, option.rect.width()))
        editor.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        editor.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        return editor

    def setEditorData(self, editor: QWidget, index: Index) -> None:
        """The document was set in createEditor; nothing to copy back or forth."""

    def setModelData(self, editor: QWidget, model: Any, index: Index) -> None:
        """Read-only: selection never changes the message."""


class ChatView(QListView):
    """The message list: loads older pages at the top and keeps the reader's place."""

    def __init__(self, model: ChatModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setModel(model)
        self.chat_model = model
        self.delegate = MessageDelegate(self)
        self.setItemDelegate(self.delegate)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked)
        self.setMouseTracking(True)
        self.setWordWrap(True)
        self.setUniformItemSizes(False)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setFrameShape(QListView.Shape.NoFrame)
        self.setSpacing(2)
        self.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self._follow = True  # keep the newest message in view while it grows
        model.rowsInserted.connect(self._on_rows_inserted)
        model.dataChanged.connect(self._on_data_changed)
        model.modelReset.connect(self._on_reset)

    def paintEvent(self, event: Any) -> None:
        super().paintEvent(event)
        if self.chat_model.rowCount() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(
                self.viewport().rect(),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                "Start a conversation below.\n\nEverything you write is kept on this computer, "
                "searchable with Ctrl+K,\nand sent to the model with as much of the history "
                "as fits.",
            )
            painter.end()

    def _on_reset(self) -> None:
        self._follow = True
        self.scrollToBottom()

    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._follow = value >= bar.maximum() - 4
        if value == bar.minimum() and self.chat_model.has_more:
            before = bar.maximum()
            if self.chat_model.load_older():
                self.doItemsLayout()
                # Keep the message the reader was looking at under their eyes.
                bar.setValue(bar.maximum() - before)

    def _on_rows_inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        if last == self.chat_model.rowCount() - 1 and self._follow:
            self.scrollToBottom()

    def changeEvent(self, event: QEvent) -> None:
        # Rows are measured and painted from kept documents in this font and palette.
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.PaletteChange):
            self.delegate.forget()
            self.scheduleDelayedItemsLayout()
        super().changeEvent(event)

    def _on_data_changed(self, *args: Any) -> None:
        if self._follow:
            self.scrollToBottom()
