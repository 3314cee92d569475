"""Start the GUI: the QApplication, the theme, the workspace and the main window."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QWidget

from desktop_chat import APP_ID, APP_NAME, __version__
from desktop_chat.errors import UserFacingError

# Only what the first paint needs here; message boxes and palettes load their
# enums (~1.5 ms) when they are used. See also gui.main_window.
if TYPE_CHECKING:
    from PySide6.QtGui import QIcon, QPalette

log = logging.getLogger(__name__)


def app_icon() -> QIcon:
    from importlib import resources

    from PySide6.QtGui import QIcon

    icon = QIcon()
    try:
        folder = resources.files("desktop_chat.resources").joinpath("icons")
        for size in (16, 32, 48, 64, 128, 256, 512):
            png = folder.joinpath(f"{APP_ID}-{size}.png")
            if png.is_file():
                icon.addFile(str(png))
    except (ModuleNotFoundError, FileNotFoundError):
        log.debug("no icon resources")
    return icon


def _dark_palette() -> QPalette:
    from PySide6.QtGui import QColor, QPalette

    palette = QPalette()
    role = QPalette.ColorRole
    for name, color in (
        (role.Window, "#202124"),
        (role.WindowText, "#e8eaed"),
        (role.Base, "#17181a"),
        (role.AlternateBase, "#2a2b2e"),
        (role.Text, "#e8eaed"),
        (role.PlaceholderText, "#9aa0a6"),
        (role.Button, "#2d2e31"),
        (role.ButtonText, "#e8eaed"),
        (role.Highlight, "#1a73e8"),
        (role.HighlightedText, "#ffffff"),
        (role.Link, "#8ab4f8"),
        (role.ToolTipBase, "#2d2e31"),
        (role.ToolTipText, "#e8eaed"),
        (role.Mid, "#3c4043"),
    ):
        palette.setColor(name, QColor(color))
    return palette


def apply_theme(theme: str, chat_model: Any = None, *, starting: bool = False) -> None:
    """Light, dark, or whatever the desktop uses ("system").

    The color-scheme hint is honoured only by some platform themes, so an
    explicit choice also sets Fusion's palette; "system" keeps the platform's.
    Starting with "system", the hint is left as the platform set it: Qt's
    enums take ~35 ms to load, which the first paint does not wait for.
    """
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return
    app.setStyle("Fusion")
    style = app.style()
    if theme == "dark":
        app.setPalette(_dark_palette())
    elif style is not None:
        app.setPalette(style.standardPalette())
    if theme != "system" or not starting:
        from PySide6.QtCore import Qt

        QGuiApplication.styleHints().setColorScheme(
            {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}.get(
                theme, Qt.ColorScheme.Unknown
            )
        )
    if chat_model is not None:
        chat_model.set_dark(is_dark(theme))


def is_dark(theme: str) -> bool:
    """Whether ``theme`` ("light", "dark" or "system") shows dark now."""
    from PySide6.QtCore import Qt

    scheme = QGuiApplication.styleHints().colorScheme()
    return theme == "dark" or (theme == "system" and scheme == Qt.ColorScheme.Dark)


def _saved_theme(settings_file: Path) -> str:
    """The theme the user chose, read before anything else so the first paint has it.

    Only this one value, with ``json`` alone: the settings module and what it
    loads can wait until the window is up (an unreadable file is reported then).
    """
    import json

    try:
        theme = json.loads(settings_file.read_text(encoding="utf-8")).get("theme")
    except (OSError, ValueError, AttributeError):
        return "system"
    return theme if theme in {"light", "dark"} else "system"


def create_application(argv: list[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    QGuiApplication.setDesktopFileName(APP_ID)
    app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    return app


def start_prewarm(*, sdk: bool = False) -> threading.Thread:
    """Load the tokenizer (and with ``sdk`` the OpenAI SDK) in the background.

    Both take a noticeable moment the first time (see llm.warmup). The tokenizer
    loads after the first paint, for the first context plan; the SDK (~46 MB, a
    second) when the user starts writing a message, so the Send does not wait
    for it and reading old conversations never pays for it.
    """
    import gc

    from desktop_chat.core import tokens
    from desktop_chat.llm.warmup import prewarm

    def warm() -> None:
        try:
            tokens.encoding_for("")  # o200k_base: current OpenAI models, and the fallback
            if sdk:
                prewarm()
            # What is loaded now lives as long as the app: keep it out of the garbage
            # collector's full passes, which otherwise hold the GIL (and the window) ~60 ms.
            gc.freeze()
        except Exception:
            if not sys.is_finalizing():  # the app quit first: imports fail at shutdown
                log.warning("loading the tokenizer or the OpenAI SDK ahead failed", exc_info=True)

    thread = threading.Thread(target=warm, name="prewarm", daemon=True)
    thread.start()
    if QApplication.instance() is not None:
        _forget_sources_after(thread)
    return thread


def _forget_sources_after(thread: threading.Thread) -> None:
    """Empty ``linecache`` on the GUI thread once ``thread`` has loaded its modules.

    PySide6's import hook reads the source of every module imported after it (to
    see whether it uses PySide), and ``linecache`` keeps every line: ~8 MB after
    the tokenizer and the window's modules, ~10 MB more after the OpenAI SDK.
    Tracebacks read a file again when they need it. (A traceback being formatted on
    another thread at that very moment could miss a line it had just looked up; its
    log record would then be lost. Rare: this happens once or twice a session.)
    """
    import linecache

    def check() -> None:
        if thread.is_alive():
            QTimer.singleShot(250, check)
        else:
            linecache.clearcache()

    QTimer.singleShot(250, check)


def _start_index_upkeep(window: Any, workspace: Any) -> None:
    """Index and merge for search in the background, once the window has settled: it
    is never urgent (search reads what waits), and opening the list and the last chat
    should not share the machine with it."""
    workspace.start_index_upkeep()
    window.show_indexing()


def _start_rolling_backup(workspace: Any) -> None:
    """A backup in the background when one is due (Preferences → Data: every day and the
    newest seven kept, unless changed there)."""
    from desktop_chat.gui.workers import run_job
    from desktop_chat.storage import backup

    settings = workspace.settings
    if workspace.repo.db.database == ":memory:" or not workspace.paths.database.exists():
        return
    if settings.backup_every_days <= 0:
        return
    run_job(
        lambda: backup.rolling(
            workspace.paths.database,
            workspace.paths.backups,
            every=settings.backup_every_days * 86_400,
            keep=max(1, settings.backups_kept),
            key=workspace.db_key,
        ),
        lambda made: log.info("automatic backup: %s", made.name if made else "not due"),
        lambda exc: log.warning("automatic backup failed: %s", exc),
    )


def run_gui(data_dir: str | None = None, db_url: str | None = None) -> int:
    """Show the window's frame as fast as Qt can, then open the chat in it.

    The frame needs only Qt; the database, the chat service and the chat pane
    load just after its first paint, so the window is on screen while they do.
    """
    from desktop_chat import paths
    from desktop_chat.gui.main_window import MainWindow, read_state, state_file
    from desktop_chat.gui.single_instance import (
        InstanceServer,
        ask_running_instance,
        claim,
        release,
        server_name,
    )

    app = create_application()
    where = paths.resolve(data_dir).ensure()  # the lock below lives in the data dir
    first = claim(where.data)
    # Lock taken: that window is alive, though maybe not listening yet (it listens once
    # painted), so keep asking a while. No locks here (None): ask once, as before.
    patience = 5.0 if first is False else 0
    if first is not True and ask_running_instance(server_name(where.data), patience=patience):
        log.info("another window is open on this data dir; asked it to come forward")
        return 0
    servers: list[InstanceServer] = []
    # An exception escaping a slot would otherwise only reach stderr.
    sys.excepthook = lambda _kind, error, _tb: report_unexpected(app.activeWindow(), error)
    theme = _saved_theme(where.settings_file)
    apply_theme(theme, starting=True)
    window = MainWindow(state=read_state(state_file(where.config)))
    window.show()
    opened: list[Any] = []  # the workspace, once open
    damaged: list[str] = []

    def once_painted() -> None:
        servers.append(InstanceServer(server_name(where.data), app))
        servers[0].sig_activate.connect(window.bring_forward)
        _open_in(
            window, data_dir=data_dir, db_url=db_url, theme=theme, opened=opened, damaged=damaged
        )

    after_first_paint(window, once_painted)
    try:
        return app.exec()
    finally:
        for server in servers:
            server.close()
        for workspace in opened:
            workspace.end_session(clean=not damaged)
            workspace.close()
        if window.restart_requested:
            release()  # the new process takes the lock while this one is still ending
            _relaunch()


def after_first_paint(widget: QWidget, callback: Any, *, at_latest_ms: int = 500) -> None:
    """Call ``callback`` once, as soon as ``widget`` has been painted the first time
    (or after ``at_latest_ms``: a window started minimized may not paint for long).

    A zero timer alone is not enough: on X11 the paint waits for the server's
    expose event, and the timer would run first and hold the paint back.
    """
    done: list[bool] = []

    def once() -> None:
        if not done:
            done.append(True)
            widget.removeEventFilter(watcher)
            callback()

    class Watcher(QObject):
        def eventFilter(self, _watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and not done:
                QTimer.singleShot(0, once)  # after this paint reaches the screen
            return False

    watcher = Watcher(widget)
    widget.installEventFilter(watcher)
    QTimer.singleShot(at_latest_ms, once)


def _open_in(
    window: Any,
    *,
    data_dir: str | None,
    db_url: str | None,
    theme: str,
    opened: list[Any],
    damaged: list[str],
) -> None:
    """Open the workspace and show it in ``window``; a database that cannot be opened
    is told and the app quits with its exit code."""
    from PySide6.QtWidgets import QMessageBox

    from desktop_chat.services.workspace import Workspace, last_session_ended_cleanly

    QApplication.setWindowIcon(app_icon())  # ~10 ms: not before the first paint
    # Until now a signal ended the process at once: nothing was open to lose.
    _close_on_termination()
    # After a crash the database is checked before anything reads it; after a
    # clean exit, in the background once the window is up.
    check_now = not last_session_ended_cleanly(data_dir)
    try:
        workspace = Workspace.open(data_dir, db_url=db_url, check_integrity=check_now)
    except UserFacingError as exc:
        QMessageBox.critical(window, APP_NAME, exc.message)
        QApplication.exit(exc.exit_code)
        return
    opened.append(workspace)
    workspace.begin_session()
    window.attach(workspace)
    window.chat_model.set_dark(is_dark(theme))
    if workspace.notice:
        QTimer.singleShot(0, lambda: QMessageBox.warning(window, APP_NAME, workspace.notice or ""))
    if workspace.interrupted_on_open:
        window.statusBar().showMessage(
            f"{workspace.interrupted_on_open} reply(ies) were cut off when the app last closed; "
            "they are kept and marked interrupted.",
            10_000,
        )
    _start_rolling_backup(workspace)
    QTimer.singleShot(3000, lambda: _start_index_upkeep(window, workspace))
    QTimer.singleShot(0, start_prewarm)
    if not check_now:
        QTimer.singleShot(0, lambda: _check_integrity_later(window, workspace, damaged))


def _relaunch() -> None:
    """Start the app again, as it was started (a restore happens as it opens)."""
    import subprocess

    frozen = getattr(sys, "frozen", False)
    command = [sys.executable, *([] if frozen else ["-m", "desktop_chat"]), *sys.argv[1:]]
    log.info("starting again: %s", command)
    subprocess.Popen(command, start_new_session=True)


def report_unexpected(parent: Any, error: BaseException) -> None:
    """An error no code expected: logged with its traceback, and told once with copyable
    details (a bug that repeats must not bury the window in dialogs)."""
    import traceback

    from PySide6.QtWidgets import QMessageBox

    from desktop_chat.services.workspace import redact

    log.error("unexpected error", exc_info=error)
    if _reported:
        return
    _reported.append(error)
    box = QMessageBox(
        QMessageBox.Icon.Critical,
        APP_NAME,
        f"Something went wrong: {redact(f'{type(error).__name__}: {error}')}\n\n"
        f"What you saved is safe. {APP_NAME} keeps running; the details (below, and in "
        "the log file) help to report the bug.",
        parent=parent,
    )
    box.setDetailedText(redact("".join(traceback.format_exception(error))))
    box.exec()


_reported: list[BaseException] = []


def _close_on_termination() -> None:
    """SIGTERM (logout, shutdown, ``kill``) and Ctrl-C close the windows as Quit does.

    Qt's event loop never hands control to Python's signal handlers, so the
    signal is turned into a readable byte on a socket Qt watches. A signal that
    comes before the event loop runs is handled as soon as it does.
    """
    import signal
    import socket

    from PySide6.QtCore import QSocketNotifier

    reader, writer = socket.socketpair()
    for end in (reader, writer):
        end.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: None)  # the wake-up byte does the work
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, QApplication.instance())

    def close() -> None:
        reader.recv(64)
        log.info("asked to quit by a signal")
        QApplication.closeAllWindows()

    notifier.activated.connect(close)
    _signal_sockets[:] = [reader, writer]  # open as long as the process


_signal_sockets: list[Any] = []


def _check_integrity_later(window: Any, workspace: Any, damaged: list[str]) -> None:
    """Check the whole database in the background; on damage, say so and how it is fixed.

    The next start repairs it (the damaged file moved aside, never deleted, and
    the newest good backup offered), as it does after a crash.
    """
    from PySide6.QtWidgets import QMessageBox

    from desktop_chat.gui.workers import run_job

    def found(problem: str | None) -> None:
        if problem is None:
            log.info("database check: ok")
            return
        log.error("database check found damage: %s", problem)
        damaged.append(problem)
        answer = QMessageBox.critical(
            window,
            APP_NAME,
            f"{APP_NAME} found damage in its database ({problem}).\n\nQuit and start "
            f"{APP_NAME} again to repair it: the damaged file is moved aside (never deleted) "
            "and your newest good backup is offered. Until then, what you add may not be "
            "saved.",
            QMessageBox.StandardButton.Close | QMessageBox.StandardButton.Ignore,
            QMessageBox.StandardButton.Close,
        )
        if answer == QMessageBox.StandardButton.Close:
            window.close()

    run_job(
        workspace.integrity_problem,
        found,
        lambda exc: log.warning("database check could not run: %s", exc),
    )
