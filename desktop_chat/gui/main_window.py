"""The main window: conversation list on the left, the chat pane on the right."""

from __future__ import annotations

import base64
import functools
import json
import logging
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QModelIndex, QPoint, QTimer
from PySide6.QtGui import QCloseEvent, QGuiApplication
from PySide6.QtWidgets import (
    QMainWindow,
    QMenu,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_chat import APP_NAME
from desktop_chat.errors import UserFacingError

# Only Qt and light modules here: the start-up paints this window before anything
# else loads (see MainWindow). What the chat needs is imported where it is used, and
# so is Qt's namespace of enums (``Qt``): loading it takes ~35 ms. So are QMessageBox,
# whose enums take ~1 ms to load, and the widgets of the panes: PySide6 makes each
# class the first time it is named, QLabel's and QHBoxLayout's in ~0.5 ms each.
if TYPE_CHECKING:
    from collections.abc import Callable

    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QHBoxLayout, QLabel

    from desktop_chat.core.types import ConversationTree, Message
    from desktop_chat.gui.chat_view import ChatModel, ChatView
    from desktop_chat.gui.composer import Composer
    from desktop_chat.gui.context_dialog import ContextMeter
    from desktop_chat.gui.conversation_list import ConversationListModel
    from desktop_chat.gui.workers import StreamHandle
    from desktop_chat.services.chat import ChatService, ReplyFinished, Turn
    from desktop_chat.services.workspace import Workspace

log = logging.getLogger(__name__)
UNDO_SECONDS = 10
MENU_TITLES = ("&File", "&View", "&Edit", "&Help")


class WelcomePage(QWidget):
    """First run without a key: the two ways to get going."""

    def __init__(self, window: MainWindow) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QLabel

        super().__init__(window)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        title = QLabel(f"<h1>Welcome to {APP_NAME}</h1>")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text = QLabel(
            "Every conversation is kept on this computer, searchable, and sent to the model "
            "with as much of its history as fits.<br>Choose how to connect:"
        )
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        openai_button = QPushButton("Enter an OpenAI API key")
        openai_button.setObjectName("welcomeOpenAI")
        local_button = QPushButton("Use a local server (Ollama, LM Studio, llama.cpp)")
        local_button.setObjectName("welcomeLocal")
        openai_button.clicked.connect(lambda: window.open_settings(focus="key"))
        local_button.clicked.connect(lambda: window.open_settings(focus="local"))
        for widget in (title, text):
            layout.addWidget(widget)
        buttons = QVBoxLayout()
        buttons.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        for button in (openai_button, local_button):
            button.setMinimumWidth(360)
            button.setMinimumHeight(36)
            buttons.addWidget(button)
        layout.addLayout(buttons)
        layout.addStretch(2)


class JobProgress:
    """A progress dialog for work in the thread pool: the job calls ``report(done, total)``
    from its thread, the dialog shows the latest figures ten times a second."""

    def __init__(self, label: str, parent: QWidget, cancel: threading.Event | None = None) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QProgressDialog

        self.dialog = QProgressDialog(label, "Cancel", 0, 0, parent)
        self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.dialog.setMinimumDuration(300)
        if cancel is None:
            self.dialog.setCancelButton(None)
        else:
            self.dialog.canceled.connect(cancel.set)
        self._figures = (0, 0)
        self._timer = QTimer(self.dialog, interval=100)
        self._timer.timeout.connect(self._show)
        self._timer.start()

    def report(self, done: int, total: int | None) -> None:
        self._figures = (done, total or 0)

    def _show(self) -> None:
        done, total = self._figures
        self.dialog.setMaximum(total)
        self.dialog.setValue(done)

    def close(self) -> None:
        self._timer.stop()
        self.dialog.reset()
        self.dialog.deleteLater()


def state_file(config: Path) -> Path:
    """Where the window keeps its size, splitter and last chat."""
    return config / "window.json"


def read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


class MainWindow(QMainWindow):
    """The conversation list and the chat pane.

    Built in two steps so the app can show its window as fast as Qt can: the
    frame (title, size, menus, the two panes, empty) needs only Qt; ``attach``
    opens the chat in it. ``MainWindow(workspace)`` does both at once.
    """

    workspace: Workspace
    service: ChatService
    list_model: ConversationListModel
    chat_model: ChatModel
    chat_view: ChatView
    composer: Composer
    meter: ContextMeter

    def __init__(
        self,
        workspace: Workspace | None = None,
        service: ChatService | None = None,
        *,
        state: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.streams: dict[str, StreamHandle] = {}
        self._ending: set[StreamHandle] = set()  # replies told finished, threads ending
        self.current_id: str | None = None
        self.restart_requested = False
        self.attached = False
        self._undo: ConversationTree | None = None
        self._indexing: QLabel | None = None  # "Indexing … for search", while it lasts
        self._plan_generation = 0  # results of older background plans are dropped
        self._meter_for: str | None = None  # the chat the context meter speaks of
        self._splitter_state: QByteArray | None = None  # as restored from the last session
        self.setWindowTitle(APP_NAME)
        self.resize(1100, 760)
        # Their titles only: the items come with the chat (see attach), ~4 ms after.
        self._menus = [self.menuBar().addMenu(title) for title in MENU_TITLES]
        self.splitter = self._placeholder_panes()
        if state:
            self._restore_layout(state)
        if workspace is not None:
            self.attach(workspace, service)

    def _placeholder_panes(self) -> QSplitter:
        splitter = QSplitter()  # QSplitter(self) would load Qt's enums to pick its overload
        for _ in range(2):
            splitter.addWidget(QWidget(splitter))
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([300, 800])
        self.setCentralWidget(splitter)
        self.menuBar().setEnabled(False)  # until attach: there is nothing in it yet
        return splitter

    def attach(self, workspace: Workspace, service: ChatService | None = None) -> None:
        """Open ``workspace`` in the window: the list, the chat pane, the last chat."""
        from desktop_chat.gui import workers
        from desktop_chat.gui.chat_view import ChatModel
        from desktop_chat.gui.conversation_list import ConversationListModel
        from desktop_chat.services.chat import ChatService

        self.workspace = workspace
        self.repo = workspace.repo
        self.repo.leave_checkpoints_to_other_threads()
        self.repo.keep_a_small_cache()
        workers.after_each_job(self.repo.close)  # the job thread's connection only
        self.service = service or ChatService(workspace)
        self.list_model = ConversationListModel(self.repo, self)
        self.list_model.sig_searched.connect(lambda: self._select_in_list(self.current_id))
        self.chat_model = ChatModel(self.repo, self)
        # Typing in the composer re-plans the context meter, a moment after the last key.
        self._plan_timer = QTimer(self, singleShot=True, interval=250)
        self._plan_timer.timeout.connect(self.refresh_context_meter)
        self._build_left()
        self._build_right()
        splitter = QSplitter(self)
        splitter.addWidget(self.left)
        splitter.addWidget(self.right_stack)
        splitter.setStretchFactor(1, 1)
        # The frame's panes as shown (restored, or moved by the user meanwhile); a frame
        # not laid out yet (a busy machine: attached before its first paint) has none.
        if self.isVisible() and self.splitter.width() >= self.width() // 2:
            splitter.setSizes(self.splitter.sizes())
        elif self._splitter_state is not None:
            splitter.restoreState(self._splitter_state)
        else:
            splitter.setSizes([300, 800])
        self.splitter = splitter
        self.setCentralWidget(splitter)  # the placeholder panes go
        self._fill_menus()
        self.menuBar().setEnabled(True)
        self.attached = True
        self._restore_state()

    def show_indexing(self) -> None:
        """While imported messages wait for the search index, say so in the status bar
        (search finds them meanwhile, more slowly); look again every two seconds."""
        from PySide6.QtWidgets import QLabel

        upkeep = self.workspace.upkeep
        waiting = self.repo.count_unindexed() if upkeep is not None and upkeep.alive else 0
        if self._indexing is None:
            if not waiting:
                return
            self._indexing = QLabel(self)
            self.statusBar().addPermanentWidget(self._indexing)
            self._indexing_timer = QTimer(self, interval=2000)
            self._indexing_timer.timeout.connect(self.show_indexing)
        self._indexing.setText(f"Indexing {waiting:,} imported messages for search…")
        self._indexing.setVisible(bool(waiting))
        if waiting:
            self._indexing_timer.start()
        else:
            self._indexing_timer.stop()

    # -- layout ------------------------------------------------------------

    def _build_left(self) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QListView, QToolButton

        from desktop_chat.gui.conversation_list import ConversationDelegate

        self.left = QWidget(self)
        layout = QVBoxLayout(self.left)
        layout.setContentsMargins(8, 8, 0, 8)
        top = QHBoxLayout()
        self.search_box = QLineEdit(self.left)
        self.search_box.setObjectName("searchBox")
        self.search_box.setPlaceholderText("Search all conversations (Ctrl+K)")
        self.search_box.setClearButtonEnabled(True)
        self.new_button = QToolButton(self.left)
        self.new_button.setText("+ New")
        self.new_button.setToolTip("New chat (Ctrl+N)")
        top.addWidget(self.search_box, 1)
        top.addWidget(self.new_button)
        layout.addLayout(top)
        self.list_view = QListView(self.left)
        self.list_view.setObjectName("conversationList")
        self.list_view.setModel(self.list_model)
        self.list_view.setItemDelegate(ConversationDelegate(self.list_view))
        self.list_view.setEditTriggers(
            QListView.EditTrigger.EditKeyPressed | QListView.EditTrigger.SelectedClicked
        )
        self.list_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list_view.setUniformItemSizes(True)
        layout.addWidget(self.list_view, 1)
        self._search_timer = QTimer(self, singleShot=True, interval=150)
        self._search_timer.timeout.connect(self._run_search)
        self.search_box.textChanged.connect(lambda _text: self._search_timer.start())
        self.new_button.clicked.connect(self.new_chat)
        self.list_view.clicked.connect(self._on_list_clicked)
        self.list_view.activated.connect(self._on_list_clicked)
        self.list_view.customContextMenuRequested.connect(self._on_list_menu)

    def _build_right(self) -> None:
        from PySide6.QtWidgets import QLabel

        from desktop_chat.gui.chat_view import ChatView
        from desktop_chat.gui.composer import Composer

        self.right_stack = QStackedWidget(self)
        self.welcome = WelcomePage(self)
        pane = QWidget(self)
        layout = QVBoxLayout(pane)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(self._build_header(pane))
        self.chat_view = ChatView(self.chat_model, pane)
        self.chat_view.setObjectName("chatView")
        layout.addWidget(self.chat_view, 1)
        self.status_line = QLabel("", pane)
        self.status_line.setObjectName("statusLine")
        self.status_line.setContentsMargins(14, 2, 14, 0)
        self.status_line.setWordWrap(True)
        layout.addWidget(self.status_line)
        self.composer = Composer(pane)
        self.composer.edit.enter_sends = self.workspace.settings.enter_sends
        layout.addWidget(self.composer)
        self.composer.sig_send.connect(self.send)
        self.composer.sig_stop.connect(self.stop)
        self.composer.edit.textChanged.connect(self._plan_timer.start)
        self.composer.edit.textChanged.connect(self._warm_for_sending)
        self.chat_view.delegate.sig_action.connect(self._on_message_action)
        self.chat_view.delegate.sig_copy_code.connect(
            lambda _code: self.statusBar().showMessage("Code copied", 2000)
        )
        self.chat_pane = pane
        self.right_stack.addWidget(self.welcome)
        self.right_stack.addWidget(pane)
        self._update_welcome()

    def _build_header(self, pane: QWidget) -> QHBoxLayout:
        """The chat's title, the context meter and the model button."""
        from PySide6.QtWidgets import QHBoxLayout, QLabel

        from desktop_chat.gui.context_dialog import ContextMeter

        header = QHBoxLayout()
        header.setContentsMargins(12, 8, 12, 4)
        self.title_label = QLabel("New chat", pane)
        self.title_label.setObjectName("chatTitle")
        font = self.title_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        font.setBold(True)
        self.title_label.setFont(font)
        self.model_button = QPushButton(pane)
        self.model_button.setObjectName("modelButton")
        self.model_button.setToolTip("Model, system prompt and memory for this chat")
        self.model_button.clicked.connect(self.open_conversation_settings)
        self.meter = ContextMeter(pane)
        self.meter.setObjectName("contextMeter")
        self.meter.sig_clicked.connect(self.show_context)
        self.meter.setMinimumWidth(190)
        self.meter.setMaximumWidth(260)
        self.meter.setTextVisible(True)
        header.addWidget(self.title_label, 1)
        header.addWidget(self.meter)
        header.addWidget(self.model_button)
        return header

    def _fill_menus(self) -> None:
        """The menus' items and the window's shortcuts, once there is a chat to act on."""
        from PySide6.QtGui import QKeySequence, QShortcut

        file_menu, view_menu, edit_menu, help_menu = self._menus
        self._action(file_menu, "&New chat", self.new_chat, QKeySequence.StandardKey.New)
        file_menu.addSeparator()
        self._action(file_menu, "&Import…", self.import_file, "Ctrl+I")
        self._action(file_menu, "&Export this chat…", self.export_current, "Ctrl+E")
        self._action(file_menu, "Export &all…", self.export_all)
        self._action(file_menu, "Export all to a &folder…", self.export_to_folder)
        file_menu.addSeparator()
        self._action(file_menu, "Back &up now", self.back_up_now)
        self._action(file_menu, "Restore a &backup…", self.restore_backup)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.archive_action = self._action(view_menu, "Show &archived chats", self.toggle_archive)
        self.archive_action.setCheckable(True)
        self._action(view_menu, "What the next request &carries…", self.show_context)
        self._action(edit_menu, "&Search", self.focus_search, "Ctrl+K")
        self._action(edit_menu, "Chat &settings…", self.open_conversation_settings)
        self._action(edit_menu, "&Preferences…", self.open_settings, "Ctrl+,")
        self._action(help_menu, f"&About {APP_NAME}", self.show_about)
        QShortcut(QKeySequence("Ctrl+F"), self, self.focus_search)
        QShortcut(QKeySequence("Escape"), self, self.stop)

    def _action(self, menu: QMenu, text: str, slot: Any, shortcut: Any = None) -> QAction:
        from PySide6.QtGui import QAction, QKeySequence

        action = QAction(text, self)
        if isinstance(shortcut, str):
            shortcut = [QKeySequence(shortcut)]
        if shortcut is not None:
            action.setShortcuts(shortcut)  # a standard key gets all the platform's bindings
        action.triggered.connect(lambda *_: slot())
        menu.addAction(action)
        return action

    def _update_welcome(self) -> None:
        """The first-run page until there is a key, a server URL or any conversation.

        The keyring is asked last: it is slow to load and usually not needed.
        """
        from desktop_chat import secrets

        provider = self.workspace.settings.provider()
        configured = bool(provider.base_url) or self.repo.count_conversations() > 0
        if not configured:
            try:
                configured = bool(secrets.get_api_key(provider.name))
            except UserFacingError:
                configured = False
        self.right_stack.setCurrentWidget(self.chat_pane if configured else self.welcome)

    # -- conversations ------------------------------------------------------

    def _on_list_clicked(self, index: QModelIndex) -> None:
        from desktop_chat.gui.conversation_list import Roles as ListRoles

        conversation_id = index.data(ListRoles.CONVERSATION_ID)
        message_id = index.data(ListRoles.MESSAGE_ID)
        if conversation_id:
            self.open_conversation(conversation_id, focus_message=message_id)

    def open_conversation(
        self, conversation_id: str | None, focus_message: str | None = None
    ) -> None:
        self.current_id = conversation_id
        if focus_message:
            # Jump to a search hit: make its branch the active thread first.
            try:
                self.repo.set_current_leaf(conversation_id or "", focus_message)
            except UserFacingError as exc:
                self.show_error(exc)
        self.chat_model.load(conversation_id)
        if focus_message:
            while self.chat_model.row_of(focus_message) < 0 and self.chat_model.load_older():
                pass
            row = self.chat_model.row_of(focus_message)
            if row >= 0:
                self.chat_view.scrollTo(
                    self.chat_model.index(row), self.chat_view.ScrollHint.PositionAtTop
                )
        self._update_header()
        handle = self.streams.get(conversation_id or "")
        self.composer.set_streaming(handle is not None)
        if handle is not None and handle.message_id and handle.text:
            self.chat_model.update_message(handle.message_id, content=handle.text)
        self._select_in_list(conversation_id)
        self.right_stack.setCurrentWidget(self.chat_pane)
        # Planning reads the whole thread; do it after the first paint, not before.
        QTimer.singleShot(0, self.refresh_context_meter)
        self.composer.edit.setFocus()

    def _select_in_list(self, conversation_id: str | None) -> None:
        row = self.list_model.row_of(conversation_id) if conversation_id else -1
        if row >= 0:
            self.list_view.setCurrentIndex(self.list_model.index(row))
        else:
            self.list_view.clearSelection()

    def _update_header(self) -> None:
        if self.current_id is None:
            self.title_label.setText("New chat")
            self.model_button.setText(self.workspace.settings.provider().default_model)
            self.setWindowTitle(APP_NAME)
            return
        conversation = self.repo.get_conversation(self.current_id)
        title = conversation.title or "New chat"
        self.title_label.setText(title)
        self.model_button.setText(self.service.model_for(conversation))
        self.setWindowTitle(f"{title} — {APP_NAME}")

    def new_chat(self) -> None:
        self.search_box.clear()
        self.open_conversation(None)

    def focus_search(self) -> None:
        self.search_box.setFocus()
        self.search_box.selectAll()

    def _run_search(self) -> None:
        self.list_model.set_query(self.search_box.text())
        if not self.list_model.searching:
            self._select_in_list(self.current_id)

    def toggle_archive(self) -> None:
        """Switch the list between active chats and the archive (where unarchiving is)."""
        self.list_model.set_archived(self.archive_action.isChecked())
        self.search_box.setPlaceholderText(
            "Archived chats (View → Show archived chats to go back)"
            if self.list_model.archived
            else "Search all conversations (Ctrl+K)"
        )
        self._select_in_list(self.current_id)

    def reload_list(self) -> None:
        self.list_model.reload()
        self._select_in_list(self.current_id)

    def _on_list_menu(self, pos: QPoint) -> None:
        from desktop_chat.gui.conversation_list import Roles as ListRoles

        index = self.list_view.indexAt(pos)
        conversation_id = index.data(ListRoles.CONVERSATION_ID) if index.isValid() else None
        if not conversation_id:
            return
        conversation = self.repo.get_conversation(conversation_id)
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.list_view.edit(index))
        menu.addAction(
            "Unpin" if conversation.pinned else "Pin",
            lambda: self._update_conversation(conversation_id, pinned=not conversation.pinned),
        )
        menu.addAction(
            "Unarchive" if conversation.archived else "Archive",
            lambda: self._update_conversation(conversation_id, archived=not conversation.archived),
        )
        menu.addAction("Export…", lambda: self.export_conversations([conversation_id]))
        menu.addSeparator()
        menu.addAction("Delete", lambda: self.delete_conversation(conversation_id))
        menu.exec(self.list_view.viewport().mapToGlobal(pos))

    def _update_conversation(self, conversation_id: str, **fields: Any) -> None:
        self.repo.update_conversation(conversation_id, **fields)
        self.reload_list()

    def delete_conversation(self, conversation_id: str) -> None:
        """Delete with Undo in the status bar for a few seconds; the copy for Undo and the
        delete run in the background (a long chat's search index takes a while)."""
        from desktop_chat.gui.workers import run_job

        if conversation_id in self.streams:
            self.streams[conversation_id].wait()  # its text so far is saved, then copied
        if self.current_id == conversation_id:
            self.open_conversation(None)
        repo = self.repo

        def delete() -> ConversationTree:
            tree = next(repo.iter_trees([conversation_id]))
            repo.delete_conversation(conversation_id)
            return tree

        run_job(delete, self._deleted, self.show_error, owner=self)

    def _deleted(self, tree: ConversationTree) -> None:
        self._undo = tree
        self.reload_list()
        title = tree.conversation.title or "New chat"
        undo = QPushButton("Undo", self)
        undo.setObjectName("undoDelete")
        undo.setFlat(True)
        undo.clicked.connect(self.undo_delete)
        self.statusBar().showMessage(f'Deleted "{title}"', UNDO_SECONDS * 1000)
        self.statusBar().addPermanentWidget(undo)
        QTimer.singleShot(UNDO_SECONDS * 1000, undo.deleteLater)
        self._undo_button = undo

    def undo_delete(self) -> None:
        from desktop_chat.gui.workers import run_job

        if self._undo is None:
            return
        tree, self._undo = self._undo, None
        self._undo_button.hide()

        def restored(_result: object) -> None:
            self.reload_list()
            self.open_conversation(tree.conversation.id)
            self.statusBar().showMessage("Restored", 2000)

        run_job(lambda: self.repo.import_trees([tree]), restored, self.show_error, owner=self)

    # -- sending and streaming ---------------------------------------------

    def _warm_for_sending(self) -> None:
        """The user is writing: load the OpenAI SDK now, not when they press Send."""
        from desktop_chat.gui.application import start_prewarm

        self.composer.edit.textChanged.disconnect(self._warm_for_sending)
        start_prewarm(sdk=True)

    def send(self, text: str) -> None:
        """Store the message and stream the reply, both in the reply's thread; the
        composer keeps the text until the message is stored (see ``_on_sent``)."""
        if self.current_id is None:
            try:
                self.current_id = self.service.new_conversation().id
            except UserFacingError as exc:
                self.show_error(exc)
                return
            self.chat_model.load(self.current_id)
        conversation_id, service = self.current_id, self.service
        self._start(conversation_id, lambda: service.send(conversation_id, text, plan=False))
        self.streams[conversation_id].draft = self.composer.edit.toPlainText()

    def _on_sent(self, conversation_id: str, message: Message) -> None:
        handle = self.streams.get(conversation_id)
        if handle is not None:
            handle.sent = True
        # One composer for every chat: cleared if it still holds what was sent, even when
        # another chat was opened meanwhile (Enter would send it again, there).
        if handle is not None and self.composer.edit.toPlainText() == handle.draft:
            self.composer.clear()
        if conversation_id == self.current_id:
            self._show_new(conversation_id, message)
            self._update_header()
        self.reload_list()

    def _thread_ended(self, handle: StreamHandle | None) -> None:
        """A finished reply's thread has ended: let it go (it is deleted with its handle,
        so it must have exited, which ``finished`` announces just before). Once this
        call has returned: it may be the thread's own signal, and deleting an object
        while Qt delivers to it crashes."""
        if handle is not None and handle in self._ending and handle.thread.wait(2000):
            QTimer.singleShot(0, functools.partial(self._ending.discard, handle))

    def _show_new(self, conversation_id: str, message: Message | None) -> None:
        """A message just sent or finished, shown in place or appended: reloading the
        page would lay out 100 rows again (~100-200 ms in a long chat)."""
        model = self.chat_model
        if model.conversation_id != conversation_id or message is None:
            model.load(conversation_id)
        elif not model.show_stored(message):
            model.reload()

    def _start(self, conversation_id: str, turn: Turn | Callable[[], Turn]) -> None:
        from desktop_chat.gui.workers import StreamHandle

        handle = StreamHandle(self.service, conversation_id, turn)
        self.streams[conversation_id] = handle
        worker = handle.worker
        # Bound methods of this window (a GUI-thread QObject), so the slots are
        # queued to the GUI thread; a bare lambda could run in the worker's.
        worker.sig_sent.connect(self._on_sent)
        worker.sig_started.connect(self._on_reply_started)
        worker.sig_text.connect(self._on_reply_text)
        worker.sig_status.connect(self._on_reply_status)
        worker.sig_finished.connect(self._on_reply_finished)
        if conversation_id == self.current_id:
            self.composer.set_streaming(True)
            self.status_line.setText("")
            self.refresh_context_meter()
        handle.start()

    def _on_reply_started(self, conversation_id: str, message: Message) -> None:
        handle = self.streams.get(conversation_id)
        if handle is not None:
            handle.message_id = message.id
        if conversation_id == self.current_id and self.chat_model.row_of(message.id) < 0:
            self.chat_model.append(message)

    def _on_reply_status(self, conversation_id: str, text: str) -> None:
        if conversation_id == self.current_id:
            self.status_line.setText(text)

    def _on_reply_text(self, conversation_id: str, message_id: str, text: str) -> None:
        handle = self.streams.get(conversation_id)
        if handle is not None:
            handle.text = text
        if conversation_id == self.current_id:
            self.chat_model.update_message(message_id, content=text)

    def _on_reply_finished(self, conversation_id: str, result: ReplyFinished) -> None:
        from desktop_chat.core.types import MessageStatus
        from desktop_chat.gui.workers import run_job

        handle = self.streams.pop(conversation_id, None)
        if handle is not None:
            # Its thread ends a moment later: keep it until then, without waiting here.
            self._ending.add(handle)
            # Weakly: the handle holds the thread, so a slot holding the handle would
            # keep both (and the reply's text) alive for the rest of the session.
            ending = weakref.ref(handle)
            handle.thread.finished.connect(lambda: self._thread_ended(ending()))
            if handle.thread.isFinished():
                self._thread_ended(handle)
        if handle is not None and handle.sending and not handle.sent and result.error:
            # The message could not be stored (a full disk): it stays in the composer.
            if conversation_id == self.current_id:
                self.composer.set_streaming(False)
                self.chat_model.reload()
            self.reload_list()
            self.show_error(result.error)
            return
        if conversation_id == self.current_id:
            self.composer.set_streaming(False)
            stored = self.repo.get_message(result.message_id) if result.message_id else None
            self._show_new(conversation_id, stored)
            self.status_line.setText(result.error.message if result.error else "")
            self._update_header()
            self.refresh_context_meter()
        self.reload_list()
        if result.status is MessageStatus.COMPLETE and self.workspace.settings.generate_titles:
            conversation = self.repo.get_conversation(conversation_id)
            if conversation.message_count <= 2:
                run_job(
                    lambda: self.service.generate_title(conversation_id),
                    lambda _title: self._after_title(conversation_id),
                    owner=self,
                )

    def _after_title(self, conversation_id: str) -> None:
        self.reload_list()
        if conversation_id == self.current_id:
            self._update_header()

    def stop(self) -> None:
        handle = self.streams.get(self.current_id or "")
        if handle is not None:
            handle.stop()

    # -- per-message actions ----------------------------------------------

    def _on_message_action(self, action: str, message_id: str) -> None:
        try:
            self._message_action(action, message_id)
        except UserFacingError as exc:
            self.show_error(exc)

    def _show_reasoning(self, text: str) -> None:
        """What a reasoning model thought before it answered, to read and copy."""
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QDialog, QDialogButtonBox, QPlainTextEdit

        dialog = QDialog(self)
        dialog.setObjectName("reasoning")
        dialog.setWindowTitle("The model's reasoning")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        layout = QVBoxLayout(dialog)
        layout.addWidget(QPlainTextEdit(text, readOnly=True))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dialog.close)
        layout.addWidget(buttons)
        dialog.resize(640, 480)
        dialog.show()

    def _message_action(self, action: str, message_id: str) -> None:
        from PySide6.QtWidgets import QMessageBox

        message = self.repo.get_message(message_id)
        if action == "copy":
            QGuiApplication.clipboard().setText(message.content)
            self.statusBar().showMessage("Message copied", 2000)
        elif action == "thinking":
            self._show_reasoning(str(message.metadata.get("thinking", "")))
        elif action in ("prev", "next"):
            siblings = self.repo.siblings(message_id)
            position = [s.id for s in siblings].index(message_id)
            target = siblings[position + (1 if action == "next" else -1)]
            self.repo.set_current_leaf(message.conversation_id, target.id)
            self.chat_model.reload()
            self.refresh_context_meter()
        elif action == "pin":
            self.repo.update_message(message_id, pinned=not message.pinned)
            self.chat_model.update_message(message_id, pinned=not message.pinned)
            self.refresh_context_meter()
        elif action == "delete":
            answer = QMessageBox.question(
                self, "Delete message", "Delete this message and every reply below it?"
            )
            if answer == QMessageBox.StandardButton.Yes:
                from desktop_chat.gui.workers import run_job

                def deleted(_result: object) -> None:
                    if self.current_id == message.conversation_id:
                        self.chat_model.reload()
                        self.refresh_context_meter()

                # In the background: the search index of a long reply tree takes a while.
                run_job(
                    lambda: self.repo.delete_message(message_id),
                    deleted,
                    self.show_error,
                    owner=self,
                )
        elif self.current_id in self.streams:
            self.statusBar().showMessage("Wait for the reply to finish, or stop it.", 3000)
        elif action == "edit":
            from PySide6.QtWidgets import QInputDialog

            text, ok = QInputDialog.getMultiLineText(
                self, "Edit and resend", "Your message:", message.content
            )
            if ok and text.strip():
                self._begin(self.service.edit_and_resend(message_id, text, plan=False))
        elif action in ("regenerate", "retry"):
            self._begin(self.service.regenerate(message_id, plan=False))
        elif action == "continue":
            self._begin(self.service.continue_reply(message_id, plan=False))

    def _begin(self, turn: Turn) -> None:
        # Up to where the reply goes: a regenerated reply replaces the old one on screen.
        self.chat_model.load(turn.conversation_id, leaf_id=turn.continue_id or turn.parent_id)
        self._start(turn.conversation_id, turn)

    # -- memory you can see -----------------------------------------------

    def refresh_context_meter(self) -> None:
        """Re-plan the next request in the background; the newest answer wins.

        Planning reads the whole thread and counts what has not been counted
        yet (a long imported chat: seconds), so it stays off the GUI thread.
        """
        from desktop_chat.gui.workers import run_job

        self._plan_generation += 1
        generation, conversation_id = self._plan_generation, self.current_id
        if conversation_id is None:
            self.meter.setRange(0, 1)
            self.meter.setValue(0)
            self.meter.setFormat("Empty chat")
            self._meter_for = None
            return
        if self._meter_for != conversation_id:  # not the last chat's figures meanwhile
            self._meter_for = conversation_id
            self.meter.setRange(0, 1)
            self.meter.setValue(0)
            self.meter.setFormat("Counting…")
            self.meter.setToolTip("")
        draft = self.composer.edit.toPlainText()

        def planned(plan: Any) -> None:
            if generation == self._plan_generation:
                self._show_plan(plan)

        def failed(exc: Exception) -> None:
            if generation != self._plan_generation:
                return
            if not isinstance(exc, UserFacingError):
                log.error("planning failed", exc_info=exc)
                return
            self.meter.setFormat("Over the window")
            self.meter.setToolTip(exc.message)

        run_job(
            lambda: self.service.plan(conversation_id, draft=draft), planned, failed, owner=self
        )

    def _show_plan(self, plan: Any) -> None:
        from desktop_chat.services.chat import DRAFT_ID

        used = plan.total_tokens
        self.meter.setRange(0, max(1, plan.window))
        self.meter.setValue(min(used, plan.window))
        approx = "~" if plan.estimate else ""
        self.meter.setFormat(f"{approx}{used:,} / {plan.window:,} tokens")
        sent = sum(1 for item in plan.included if item.message_id not in (None, DRAFT_ID))
        dropped = len(plan.dropped)
        self.meter.setToolTip(
            f"Sending now carries {sent} message(s) of this chat and what you typed: "
            f"{plan.total_tokens:,} tokens; {plan.reserve:,} are kept for the reply."
            + (f"\n{dropped} older message(s) will not be sent." if dropped else "")
            + "\nClick to see each message."
        )
        self.chat_model.set_excluded({d.message_id for d in plan.dropped})

    def show_context(self) -> None:
        """Every message the next request carries, its tokens and why; what is left out."""
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QMessageBox

        from desktop_chat.gui.context_dialog import ContextDialog

        if self.current_id is None:
            self.statusBar().showMessage("Nothing to send yet: this chat is empty.", 4000)
            return
        try:
            plan = self.service.plan(self.current_id, draft=self.composer.edit.toPlainText())
        except UserFacingError as exc:
            QMessageBox.information(self, APP_NAME, exc.message)
            return
        title = self.repo.get_conversation(self.current_id).title or "New chat"
        self.context_dialog = ContextDialog(plan, title, self)
        self.context_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.context_dialog.open()

    # -- dialogs ------------------------------------------------------------

    def open_settings(self, focus: str | None = None) -> None:
        from desktop_chat.gui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.workspace, self, focus=focus)
        if dialog.exec():
            self.composer.edit.enter_sends = self.workspace.settings.enter_sends
            self.service._clients.clear()
            from desktop_chat.gui.application import apply_theme

            apply_theme(self.workspace.settings.theme, self.chat_model)
            self.chat_model.reload()
            self._update_welcome()
            self._update_header()
            self.refresh_context_meter()

    def open_conversation_settings(self) -> None:
        from desktop_chat.gui.settings_dialog import ConversationDialog

        if self.current_id is None:
            self.current_id = self.service.new_conversation().id
            self.reload_list()
        dialog = ConversationDialog(self.service, self.current_id, self)
        if dialog.exec():
            self._update_header()
            self.refresh_context_meter()

    def show_about(self) -> None:
        from PySide6.QtWidgets import QMessageBox

        from desktop_chat.gui.settings_dialog import about_text

        QMessageBox.about(self, f"About {APP_NAME}", about_text(self.workspace))

    def show_error(self, exc: Exception) -> None:
        from PySide6.QtWidgets import QMessageBox

        if isinstance(exc, UserFacingError):
            QMessageBox.warning(self, APP_NAME, exc.message)
        else:
            from desktop_chat.gui.application import report_unexpected

            report_unexpected(self, exc)

    # -- import and export ------------------------------------------------

    def _with_progress(
        self,
        label: str,
        job: Callable[[Callable[[int, int | None], None]], Any],
        done: Callable[[Any], None],
        cancel: threading.Event | None = None,
    ) -> None:
        """Run ``job(report)`` in the thread pool behind a progress dialog, which closes
        before ``done`` (or the error) is shown."""
        from desktop_chat.gui.workers import run_job

        progress = JobProgress(label, self, cancel)

        def finished(result: Any) -> None:
            progress.close()
            done(result)

        def failed(exc: Exception) -> None:
            progress.close()
            self.show_error(exc)

        run_job(lambda: job(progress.report), finished, failed, owner=self)

    def import_file(self) -> None:
        from PySide6.QtWidgets import QFileDialog, QMessageBox

        path, _ = QFileDialog.getOpenFileName(
            self, "Import conversations", str(Path.home()), "Exports (*.json *.zip);;All files (*)"
        )
        if not path:
            return
        from desktop_chat.services import transfer

        def done(outcome: Any) -> None:
            fmt, result = outcome
            self.reload_list()
            self._update_welcome()
            self.show_indexing()
            QMessageBox.information(
                self,
                "Import finished",
                f"Imported {result.conversations_added} conversation(s) and "
                f"{result.messages_added} message(s) from a {fmt} export. "
                f"{result.messages_existing} message(s) were already here.",
            )

        cancel = threading.Event()
        self._with_progress(
            "Importing…",
            lambda report: transfer.import_file(
                self.repo, Path(path), progress=report, cancel=cancel
            ),
            done,
            cancel,
        )

    def export_current(self) -> None:
        if self.current_id is None:
            self.statusBar().showMessage("Open a conversation to export it.", 3000)
            return
        self.export_conversations([self.current_id])

    def export_all(self) -> None:
        self.export_conversations(None)

    def export_to_folder(self) -> None:
        """Every conversation as one JSON and one Markdown file, named after its title."""
        from PySide6.QtWidgets import QFileDialog

        from desktop_chat.services import transfer

        folder = QFileDialog.getExistingDirectory(self, "Export all to a folder", str(Path.home()))
        if not folder:
            return
        self._with_progress(
            "Exporting…",
            lambda report: transfer.export_folder(self.repo, Path(folder), None, progress=report),
            lambda count: self.statusBar().showMessage(
                f"Exported {count} conversation(s) to {folder}", 8000
            ),
        )

    def export_conversations(self, ids: list[str] | None) -> None:
        from PySide6.QtWidgets import QFileDialog

        from desktop_chat.gui.workers import run_job
        from desktop_chat.services import transfer

        path, chosen = QFileDialog.getSaveFileName(
            self,
            "Export",
            str(Path.home() / "desktop-chat-export.json"),
            "JSON (*.json);;Markdown (*.md)",
        )
        if not path:
            return
        markdown = path.endswith(".md") or chosen.startswith("Markdown")

        def write() -> int:
            with open(path, "w", encoding="utf-8") as handle:
                writer = transfer.export_markdown if markdown else transfer.export_json
                return writer(self.repo, handle, ids)

        run_job(
            write,
            lambda count: self.statusBar().showMessage(
                f"Exported {count} conversation(s) to {path}", 5000
            ),
            self.show_error,
            owner=self,
        )

    def back_up_now(self) -> None:
        from desktop_chat.gui.workers import run_job
        from desktop_chat.storage import backup

        paths = self.workspace.paths
        if self.repo.db.database != str(paths.database):
            self.statusBar().showMessage("Backups are for the built-in database.", 5000)
            return
        run_job(
            lambda: backup.create(
                paths.database, paths.backups, "manual", key=self.workspace.db_key
            ),
            lambda made: self.statusBar().showMessage(f"Backed up to {made.path}", 8000),
            self.show_error,
            owner=self,
        )

    def restore_backup(self) -> None:
        """Choose a backup; the app restarts with it (the current database is kept aside)."""
        from desktop_chat.gui.backup_dialog import BackupDialog
        from desktop_chat.storage import backup

        self.backup_dialog = BackupDialog(backup.list_backups(self.workspace.paths.backups), self)
        self.backup_dialog.accepted.connect(self._restore_chosen)
        self.backup_dialog.open()

    def _restore_chosen(self) -> None:
        name = self.backup_dialog.chosen
        if name is None:
            return
        try:
            self.workspace.request_restore(name)
        except UserFacingError as exc:
            self.show_error(exc)
            return
        self.restart_requested = True  # run_gui starts the app again once this one is closed
        self.close()

    def bring_forward(self) -> None:
        """Another launch on the same data dir asked for this window."""
        log.info("another launch on this data dir asked for the window")
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()

    # -- state and shutdown ------------------------------------------------

    @property
    def _state_file(self) -> Path:
        return state_file(self.workspace.paths.config)

    def _restore_layout(self, state: dict[str, Any]) -> None:
        """Size, place and splitter as the window was last closed (a damaged file: none)."""
        try:
            geometry = base64.b64decode(state.get("geometry") or "", validate=True)
            splitter = base64.b64decode(state.get("splitter") or "", validate=True)
        except (TypeError, ValueError):
            return
        if geometry:
            self.restoreGeometry(QByteArray(geometry))
        if splitter:
            self._splitter_state = QByteArray(splitter)
            self.splitter.restoreState(self._splitter_state)

    def _restore_state(self) -> None:
        state = read_state(self._state_file)
        if not self.isVisible():  # a frame on screen has its layout already
            self._restore_layout(state)
        last = state.get("last_conversation")
        self.open_conversation(None)
        if isinstance(last, str) and self._exists(last):
            # After the first paint: rendering its Markdown and code (and loading
            # the libraries for it) would hold the window back by ~100 ms.
            self._select_in_list(last)

            def reopen() -> None:
                if self.current_id is None:  # the user has not chosen another meanwhile
                    self.open_conversation(last)

            QTimer.singleShot(0, reopen)
        self._update_welcome()

    def _exists(self, conversation_id: str) -> bool:
        """Whether a conversation is stored (also one far down the list, or archived)."""
        try:
            self.repo.get_conversation(conversation_id)
        except UserFacingError:
            return False
        return True

    def _save_state(self) -> None:
        state = {
            "geometry": base64.b64encode(bytes(self.saveGeometry().data())).decode(),
            "splitter": base64.b64encode(bytes(self.splitter.saveState().data())).decode(),
            "last_conversation": self.current_id,
        }
        try:
            self._state_file.write_text(json.dumps(state))
        except OSError:
            log.warning("could not save the window state", exc_info=True)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop every stream (its text so far is saved) and remember the window."""
        if not self.attached:  # closed while starting: nothing to stop or remember
            super().closeEvent(event)
            return
        for handle in list(self.streams.values()):
            handle.stop()
        for handle in list(self.streams.values()):
            # A message still being stored may wait out the database's busy timeout (10 s).
            if not handle.wait(15_000 if handle.sending and not handle.sent else 5000):
                log.warning("a reply did not stop in time")
        for handle in list(self._ending):
            handle.thread.wait(2000)
        self._save_state()
        self._plan_generation += 1  # a plan still running finds no meter to show on
        super().closeEvent(event)
