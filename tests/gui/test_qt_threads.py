"""The installed PySide6 survives signals crossing threads (6.12.0 did not; see pyproject)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest
from pytestqt.qtbot import QtBot

from desktop_chat.gui.main_window import MainWindow
from tests.support.fake_openai import FakeOpenAI, stream

STRESS = textwrap.dedent(
    """
    import faulthandler, os, time
    faulthandler.enable()
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QObject, QThread, Signal, Slot
    from PySide6.QtWidgets import QApplication

    class Worker(QObject):
        sig_text = Signal(str, str, str)
        sig_done = Signal(str, object)

        @Slot()
        def run(self):
            for i in range(3000):
                self.sig_text.emit("conversation", "message", "x" * (i % 50))
                time.sleep(0.0005)
            self.sig_done.emit("conversation", ("finished", None))

    class Receiver(QObject):
        count = 0
        def on_text(self, a, b, c):
            self.count += 1
        def on_done(self, a, result):
            self.count += 1

    app = QApplication([])
    thread, worker, receiver = QThread(), Worker(), Receiver()
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    worker.sig_text.connect(receiver.on_text)
    worker.sig_done.connect(receiver.on_done)
    worker.sig_done.connect(thread.quit)
    thread.start()
    while not thread.isFinished():
        app.processEvents()
    thread.wait()
    print(receiver.count)
    """
)


def test_queued_signals_across_threads_do_not_crash() -> None:
    done = subprocess.run(
        [sys.executable, "-c", STRESS], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "3001"


def test_a_job_whose_widget_is_gone_does_not_call_back(qtbot: QtBot) -> None:
    """A dialog closed (deleted) while its job runs: the answer is dropped, not crashed on."""
    import shiboken6
    from PySide6.QtWidgets import QWidget

    from desktop_chat.gui.application import create_application
    from desktop_chat.gui.workers import run_job

    create_application()
    called: list[str] = []
    release = threading.Event()
    gone, alive = QWidget(), QWidget()
    qtbot.addWidget(alive)
    run_job(release.wait, lambda _: called.append("gone"), owner=gone)
    run_job(release.wait, lambda _: called.append("alive"), owner=alive)
    shiboken6.delete(gone)
    release.set()
    qtbot.waitUntil(lambda: called == ["alive"])
    qtbot.wait(50)  # the other answer has had its chance to arrive
    assert called == ["alive"]


def test_the_window_thread_leaves_wal_checkpoints_to_other_threads(
    qtbot: QtBot, window: MainWindow
) -> None:
    """A checkpoint copies the whole WAL (100+ MB after an import): never on the GUI thread."""

    def autocheckpoint() -> int:
        return int(window.repo.db.execute_sql("PRAGMA wal_autocheckpoint").fetchone()[0])

    assert autocheckpoint() == 0
    elsewhere: list[int] = []
    thread = threading.Thread(target=lambda: elsewhere.append(autocheckpoint()))
    thread.start()
    thread.join()
    assert elsewhere == [1000]


def test_the_window_thread_keeps_a_smaller_page_cache(qtbot: QtBot, window: MainWindow) -> None:
    """It lives as long as the app; searches and imports run elsewhere with 8 MB."""

    def cache_size() -> int:
        return int(window.repo.db.execute_sql("PRAGMA cache_size").fetchone()[0])

    assert cache_size() == -2000
    elsewhere: list[int] = []
    thread = threading.Thread(target=lambda: elsewhere.append(cache_size()))
    thread.start()
    thread.join()
    assert elsewhere == [-8000]


def test_a_reply_worker_is_handed_back_to_the_gui_thread_when_done(
    qtbot: QtBot, window: MainWindow, fake_openai: FakeOpenAI
) -> None:
    """Deleted in its own thread, the worker took Qt's signal lock and then waited for
    the GIL, which the GUI thread held while waiting for that lock: the window hung."""
    from PySide6.QtCore import QCoreApplication, Qt

    fake_openai.enqueue(stream("Hi", header_delay=0.3))  # finished after the connect below
    window.composer.edit.setFocus()
    qtbot.keyClicks(window.composer.edit, "Hello")
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    worker = next(iter(window.streams.values())).worker
    gui_thread = QCoreApplication.instance().thread()
    on_gui_thread: list[bool] = []
    worker.sig_finished.connect(lambda *_: on_gui_thread.append(worker.thread() is gui_thread))
    qtbot.waitUntil(lambda: not window.streams, timeout=10_000)
    assert on_gui_thread == [True]


def test_finished_replies_are_let_go(
    qtbot: QtBot, window: MainWindow, fake_openai: FakeOpenAI
) -> None:
    """Each reply's handle, thread and text were kept for the whole session (the slot
    that forgets the handle held it through the thread the handle holds)."""
    import gc
    import weakref

    from PySide6.QtCore import Qt

    handles = []
    for n in range(3):
        fake_openai.enqueue(stream(f"Reply {n}"), stream("Title"))
        window.composer.edit.setFocus()
        qtbot.keyClicks(window.composer.edit, f"Question {n}")
        qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
        handles.append(weakref.ref(next(iter(window.streams.values()))))
        qtbot.waitUntil(lambda: not window.streams and not window._ending, timeout=10_000)
    gc.collect()
    assert [handle() for handle in handles] == [None, None, None]


def test_module_sources_read_at_import_are_let_go(qtbot: QtBot) -> None:
    """PySide6's import hook reads each imported module's source into linecache: ~8 MB
    after start-up that nothing reads again."""
    import linecache

    from desktop_chat.gui.application import create_application, start_prewarm

    create_application()
    linecache.getlines(__file__)
    assert linecache.cache
    start_prewarm().join()
    qtbot.waitUntil(lambda: not linecache.cache, timeout=5000)


def test_a_failed_warm_up_is_logged(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Tried once, so said once where a user's log shows it."""
    from desktop_chat.core import tokens
    from desktop_chat.gui.application import start_prewarm

    def broken(model: str) -> None:
        raise ValueError("the tokenizer file is damaged")

    monkeypatch.setattr(tokens, "encoding_for", broken)
    start_prewarm().join()
    assert [r.levelname for r in caplog.records if "ahead failed" in r.message] == ["WARNING"]
    assert "damaged" in caplog.text
