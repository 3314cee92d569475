"""The conversation list: an item model over the repository, a painted delegate, and search.

One model serves both modes: the list of conversations (pinned first, then by
last activity, fetched a page at a time as the user scrolls) and, while the
search box has text, the full-text hits with highlighted snippets.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QFont,
    QFontMetrics,
    QPainter,
    QPalette,
    QTextCharFormat,
    QTextLayout,
    QTextOption,
)
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from desktop_chat.core.types import Conversation, SearchHit
from desktop_chat.storage import Repository

log = logging.getLogger(__name__)

PAGE = 200
Index = QModelIndex | QPersistentModelIndex


class Roles(enum.IntEnum):
    CONVERSATION_ID = Qt.ItemDataRole.UserRole + 1
    MESSAGE_ID = enum.auto()
    SUBTITLE = enum.auto()
    HIGHLIGHTS = enum.auto()
    PINNED = enum.auto()
    WHEN = enum.auto()


def _when(moment: datetime) -> str:
    local = moment.astimezone()
    now = datetime.now().astimezone()
    if local.date() == now.date():
        return local.strftime("%H:%M")
    if local.year == now.year:
        return local.strftime("%d %b")
    return local.strftime("%Y-%m-%d")


class ConversationListModel(QAbstractListModel):
    """Conversations, or search hits while a query is set."""

    sig_searched = Signal()  # the hits of the newest query are in

    def __init__(self, repo: Repository, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._repo = repo
        self._conversations: list[Conversation] = []
        self._hits: list[SearchHit] = []
        self._query = ""
        self._more = False
        self._generation = 0  # of the newest search; older answers are dropped
        self.archived = False  # show the archive instead of the active list
        self.reload()

    @property
    def searching(self) -> bool:
        return bool(self._query)

    def reload(self) -> None:
        self._generation += 1
        if self._query:
            self._search(self._query, self._generation)
            return
        self.beginResetModel()
        self._conversations = self._repo.list_conversations(limit=PAGE, archived=self.archived)
        self._more = len(self._conversations) == PAGE
        self.endResetModel()

    def _search(self, query: str, generation: int) -> None:
        """Search in the background: a short term scans every message (seconds in a
        large history), and typing must not wait for it. The newest query wins."""
        from desktop_chat.gui.workers import run_job

        def found(hits: list[SearchHit]) -> None:
            if generation == self._generation:
                self.beginResetModel()
                self._hits = hits
                self.endResetModel()
                self.sig_searched.emit()

        def failed(exc: Exception) -> None:
            log.error("search failed", exc_info=exc)

        run_job(lambda: self._repo.search(query, limit=100), found, failed, owner=self)

    def set_archived(self, archived: bool) -> None:
        self.archived = archived
        self.reload()

    def set_query(self, query: str) -> None:
        self._query = query.strip()
        self.reload()

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and not self._query and self._more

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        page = self._repo.list_conversations(
            limit=PAGE, offset=len(self._conversations), archived=self.archived
        )
        self._more = len(page) == PAGE
        if page:
            first = len(self._conversations)
            self.beginInsertRows(QModelIndex(), first, first + len(page) - 1)
            self._conversations.extend(page)
            self.endInsertRows()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid():
            return 0
        return len(self._hits) if self._query else len(self._conversations)

    def flags(self, index: Index) -> Qt.ItemFlag:
        flags = super().flags(index)
        if index.isValid() and not self._query:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < self.rowCount():
            return None
        if self._query:
            return self._hit_data(self._hits[index.row()], role)
        conv = self._conversations[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return conv.title or "New chat"
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{conv.title or 'New chat'}\n{conv.message_count} messages"
        values: dict[int, Any] = {
            Roles.CONVERSATION_ID: conv.id,
            Roles.SUBTITLE: conv.model or "",
            Roles.PINNED: conv.pinned,
            Roles.WHEN: _when(conv.updated_at),
            Roles.HIGHLIGHTS: (),
        }
        return values.get(role)

    def _hit_data(self, hit: SearchHit, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return hit.conversation_title or "New chat"
        values: dict[int, Any] = {
            Roles.CONVERSATION_ID: hit.conversation_id,
            Roles.MESSAGE_ID: hit.message_id,
            Roles.SUBTITLE: hit.snippet,
            Roles.HIGHLIGHTS: hit.highlights,
            Roles.PINNED: False,
            Roles.WHEN: _when(hit.created_at),
        }
        return values.get(role)

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or self._query or not index.isValid():
            return False
        title = str(value).strip()
        if not title:
            return False
        conv = self._repo.update_conversation(self._conversations[index.row()].id, title=title)
        self._conversations[index.row()] = conv
        self.dataChanged.emit(index, index)
        return True

    def row_of(self, conversation_id: str) -> int:
        ids = (
            [h.conversation_id for h in self._hits]
            if self._query
            else [c.id for c in self._conversations]
        )
        return ids.index(conversation_id) if conversation_id in ids else -1


def fit_snippet(
    text: str,
    highlights: tuple[tuple[int, int], ...],
    advance: Callable[[str], int],
    width: int,
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The snippet cut so its first match shows on a line ``width`` wide, and the
    match spans moved with it. Uncut when the match fits; else it starts a little
    before the match, at a word where words have spaces ("…5: how", not "…uestion 5")."""
    if not highlights or advance(text[: highlights[0][1]]) <= width:
        return text, highlights
    first = highlights[0][0]
    start = max(0, first - 20)
    space = re.search(r"\s", text[start:first])
    start += space.end() if space else 0
    if not start:
        return text, highlights
    return "…" + text[start:], tuple((a - start + 1, b - start + 1) for a, b in highlights)


def utf16_spans(text: str, highlights: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """The spans (code points, as Python counts) as Qt's (start, length) in UTF-16 units,
    clipped to ``text``: an emoji before a match is two units to Qt."""

    def utf16(index: int) -> int:
        return len(text[: min(index, len(text))].encode("utf-16-le", "surrogatepass")) // 2

    return [(utf16(a), max(0, utf16(b) - utf16(a))) for a, b in highlights]


class ConversationDelegate(QStyledItemDelegate):
    """Two lines per row: title (bold) with time, then model or a highlighted snippet."""

    PADDING = 8

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        metrics = QFontMetrics(option.font)
        return QSize(200, metrics.height() * 2 + self.PADDING * 2 + 2)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        palette: QPalette = opt.palette
        text_color = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        dim = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.PlaceholderText
        )
        rect: QRect = opt.rect.adjusted(self.PADDING, self.PADDING, -self.PADDING, -self.PADDING)
        font = QFont(opt.font)
        metrics = QFontMetrics(font)
        painter.save()
        when = index.data(Roles.WHEN) or ""
        when_width = metrics.horizontalAdvance(when) + 6
        painter.setPen(dim)
        painter.drawText(
            QRect(rect.right() - when_width, rect.top(), when_width, metrics.height()),
            Qt.AlignmentFlag.AlignRight,
            when,
        )
        bold = QFont(font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(text_color)
        title = ("📌 " if index.data(Roles.PINNED) else "") + str(index.data() or "")
        title = QFontMetrics(bold).elidedText(
            title, Qt.TextElideMode.ElideRight, rect.width() - when_width
        )
        painter.drawText(QRect(rect.left(), rect.top(), rect.width(), metrics.height()), 0, title)
        painter.setFont(font)
        painter.setPen(dim)
        subtitle = str(index.data(Roles.SUBTITLE) or "")
        self._draw_snippet(
            painter,
            QRect(rect.left(), rect.top() + metrics.height() + 2, rect.width(), metrics.height()),
            subtitle,
            index.data(Roles.HIGHLIGHTS) or (),
            font=font,
            mark=palette.color(QPalette.ColorRole.Highlight) if not selected else text_color,
        )
        painter.restore()

    @staticmethod
    def _draw_snippet(
        painter: QPainter,
        rect: QRect,
        text: str,
        highlights: tuple[tuple[int, int], ...],
        *,
        font: QFont,
        mark: Any,
    ) -> None:
        """One line of text with the matched spans in bold and the accent color."""
        metrics = QFontMetrics(font)
        bold = QFont(font)
        bold.setBold(True)
        # Measured as if all bold, and leaving room for the "…" the elision may add: a
        # match that only just fitted in the plain font was cut off when drawn bold.
        room = rect.width() - metrics.horizontalAdvance("…")
        text, highlights = fit_snippet(text, highlights, QFontMetrics(bold).horizontalAdvance, room)
        elided = metrics.elidedText(text, Qt.TextElideMode.ElideRight, rect.width())
        layout = QTextLayout(elided, font)
        option = QTextOption()
        option.setWrapMode(QTextOption.WrapMode.NoWrap)  # one line: never wrap a word away
        layout.setTextOption(option)
        formats = []
        for start, length in utf16_spans(elided, highlights):
            fmt = QTextLayout.FormatRange()
            fmt.start, fmt.length = start, length
            char_format = QTextCharFormat()
            char_format.setFontWeight(QFont.Weight.Bold)
            char_format.setForeground(mark)
            fmt.format = char_format
            formats.append(fmt)
        layout.setFormats(formats)
        layout.beginLayout()
        line = layout.createLine()
        if line.isValid():
            line.setLineWidth(rect.width())
        layout.endLayout()
        layout.draw(painter, rect.topLeft())
