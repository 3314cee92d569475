"""Work off the GUI thread: one-shot background jobs and the reply-streaming worker.

Jobs follow Anki's QueryOp: the function runs in a pool thread and never
touches widgets; success or failure comes back on the GUI thread. The stream
worker is a QObject moved to its own QThread (Spyder's wiring); it batches
text so the GUI repaints about every 30 ms, and always ends with
``sig_finished`` from ``finally``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import (
    QCoreApplication,
    QObject,
    QRunnable,
    QThread,
    QThreadPool,
    Signal,
    Slot,
)

from desktop_chat.core.types import MessageStatus
from desktop_chat.errors import UserFacingError
from desktop_chat.services.chat import (
    ChatService,
    ReplyFinished,
    ReplyStarted,
    ReplyStatus,
    ReplyText,
    Turn,
)

log = logging.getLogger(__name__)
BATCH_SECONDS = 0.03

# Run at the end of every job, in its pool thread: Peewee opens a database
# connection per thread, and a pool thread's connection was never reused by its
# next job, only left open, with up to 8 MB of page cache each (12 open after
# opening 20 chats; the window grew by ~33 MB more than with them closed).
_after_each_job: list[Callable[[], None]] = []


def after_each_job(cleanup: Callable[[], None]) -> None:
    """Call ``cleanup`` in the pool thread after each job (e.g. close its connection)."""
    if cleanup not in _after_each_job:
        _after_each_job.append(cleanup)


def _clean_up_thread() -> None:
    for cleanup in _after_each_job:
        try:
            cleanup()
        except Exception:
            log.exception("cleaning up after a background job failed")


class _JobSignals(QObject):
    """Lives on the GUI thread, so its slots run there when the pool thread emits.

    Parented to the application (which keeps it alive while the job runs) and
    removed with ``deleteLater`` once it has answered: dropping the last
    reference inside its own slot would free it mid-dispatch, which crashes.
    """

    sig_done = Signal(object)
    sig_failed = Signal(object)

    def __init__(
        self,
        on_done: Callable[[Any], None],
        on_failed: Callable[[Exception], None] | None,
        owner: QObject | None,
    ) -> None:
        super().__init__(QCoreApplication.instance())
        self._on_done = on_done
        self._on_failed = on_failed
        self._owner = owner
        self.sig_done.connect(self._done)
        self.sig_failed.connect(self._failed)

    def _owner_gone(self) -> bool:
        return self._owner is not None and not shiboken6.isValid(self._owner)

    @Slot(object)
    def _done(self, result: Any) -> None:
        try:
            if not self._owner_gone():
                self._on_done(result)
        finally:
            self.deleteLater()

    @Slot(object)
    def _failed(self, exc: Exception) -> None:
        try:
            if self._on_failed is not None and not self._owner_gone():
                self._on_failed(exc)
        finally:
            self.deleteLater()


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], signals: _JobSignals) -> None:
        super().__init__()
        self._fn = fn
        self.signals = signals

    def run(self) -> None:
        try:
            result = self._fn()
        except Exception as exc:
            if not isinstance(exc, UserFacingError):
                log.exception("background job failed")
            _clean_up_thread()  # before answering: the job is over when its answer comes
            self.signals.sig_failed.emit(exc)
        else:
            _clean_up_thread()
            self.signals.sig_done.emit(result)


def run_job(
    fn: Callable[[], Any],
    on_done: Callable[[Any], None],
    on_failed: Callable[[Exception], None] | None = None,
    *,
    owner: QObject | None = None,
) -> None:
    """Run ``fn`` in the thread pool; call back on the GUI thread.

    The callbacks are skipped if ``owner`` (the widget they update) has been
    deleted meanwhile, e.g. a dialog closed while its job ran.
    """
    signals = _JobSignals(on_done, on_failed, owner)
    QThreadPool.globalInstance().start(_Job(fn, signals))


class StreamWorker(QObject):
    """Streams one reply in a worker thread."""

    # Every signal carries the conversation id so one slot serves all streams.
    sig_started = Signal(str, object)  # Message
    sig_text = Signal(str, str, str)  # message id, whole text so far
    sig_status = Signal(str, str)
    sig_finished = Signal(str, object)  # ReplyFinished
    sig_sent = Signal(str, object)  # the user's Message, once stored (see ``send``)

    def __init__(
        self, service: ChatService, conversation_id: str, turn: Turn | Callable[[], Turn]
    ) -> None:
        super().__init__()
        self.service = service
        self.conversation_id = conversation_id
        self._turn = turn
        self.cancel = threading.Event()

    @Slot()
    def run(self) -> None:
        conversation_id = self.conversation_id
        finished = ReplyFinished(None, MessageStatus.ERROR, UserFacingError("No reply."))
        last_emit = 0.0
        pending: tuple[str, str] | None = None
        try:
            turn = self._turn
            if callable(turn):
                if self.cancel.is_set():
                    # Stop before the message was stored: nothing is stored, the draft stays.
                    finished = ReplyFinished(None, MessageStatus.STOPPED)
                    return
                # Storing the user's message can take a while (an FTS5 merge after
                # an import: seen 1.3 s), so it happens here, not on the GUI thread.
                turn = turn()
                self.sig_sent.emit(conversation_id, self.service.repo.get_message(turn.parent_id))
            for event in self.service.run(turn, self.cancel):
                if isinstance(event, ReplyText):
                    pending = (event.message_id, event.text)
                    now = time.monotonic()
                    if now - last_emit >= BATCH_SECONDS:
                        self.sig_text.emit(conversation_id, *pending)
                        pending, last_emit = None, now
                elif isinstance(event, ReplyStarted):
                    self.sig_started.emit(conversation_id, event.message)
                elif isinstance(event, ReplyStatus):
                    self.sig_status.emit(conversation_id, event.text)
                elif isinstance(event, ReplyFinished):
                    finished = event
        except UserFacingError as exc:  # the message could not be stored: nothing was sent
            finished = ReplyFinished(None, MessageStatus.ERROR, exc)
        except Exception as exc:
            log.exception("stream worker failed")
            finished = ReplyFinished(
                None, MessageStatus.ERROR, UserFacingError(f"Unexpected error: {exc}")
            )
        finally:
            if pending is not None:
                self.sig_text.emit(conversation_id, *pending)
            self._hand_back()
            self.sig_finished.emit(conversation_id, finished)
            self.service.repo.close()  # this thread's connection; the thread ends

    def _hand_back(self) -> None:
        """Belong to the GUI thread again, so ``deleteLater`` deletes this worker there.

        Deleted in this thread as it ended, the worker held Qt's signal lock and
        waited for the GIL, while the GUI thread held the GIL and waited for that
        lock (laying out a message, which connects signals): the window hung.
        """
        app = QCoreApplication.instance()
        if app is not None:
            self.moveToThread(app.thread())


class StreamHandle:
    """A running reply: its worker, its thread, and how to stop it."""

    def __init__(
        self, service: ChatService, conversation_id: str, turn: Turn | Callable[[], Turn]
    ) -> None:
        """``turn`` is a prepared turn, or what prepares one in the worker thread
        (storing a new message); the worker then emits ``sig_sent`` first."""
        self.sending = callable(turn)
        self.sent = False
        self.thread = QThread()
        self.worker = StreamWorker(service, conversation_id, turn)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        self.worker.sig_finished.connect(self.thread.quit)
        self.thread.finished.connect(self.worker.deleteLater)
        self.message_id: str | None = None
        self.text = ""
        self.draft = ""  # the composer's text when sent: cleared once stored

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.worker.cancel.set()

    def wait(self, ms: int = 5000) -> bool:
        self.stop()
        self.thread.quit()
        return self.thread.wait(ms)
