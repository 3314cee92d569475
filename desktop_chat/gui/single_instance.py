"""One window per data dir: a second launch asks the running one to come forward, then exits.

The first launch only takes a lock on the data dir before its first paint; QtNetwork
(~7 ms to load) and its server wait until the window is on screen. A later launch
that finds the lock taken asks the running window, through that server, to show itself.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import QCryptographicHash, QObject, Signal

from desktop_chat import APP_ID

TIMEOUT_MS = 500
LOCK_FILE = "window.lock"
_held: list[int] = []  # the lock's file descriptor, open as long as the process runs


def claim(data_dir: Path) -> bool | None:
    """Take the data dir's window lock: True if this is the first window on it, False
    if another process holds it, None where there are no such locks (Windows).

    The OS drops the lock when the process ends, however it ends.
    """
    try:
        import fcntl
    except ImportError:
        return None
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held.append(fd)
    return True


def release() -> None:
    """Give the lock up before the process ends (a restart starts the next one first)."""
    while _held:
        os.close(_held.pop())


def server_name(data_dir: Path) -> str:
    # Qt's hash: hashlib would load OpenSSL (~3-5 ms). Loading its classes still takes
    # ~1.5 ms, so run_gui asks for the name after the first paint (unless the lock is held).
    digest = QCryptographicHash.hash(
        str(data_dir.resolve()).encode(), QCryptographicHash.Algorithm.Sha256
    )
    return f"{APP_ID}-{digest.toHex().toStdString()[:16]}"


def ask_running_instance(name: str, *, patience: float = 0.0) -> bool:
    """True if another instance is listening (and was asked to show itself).

    With ``patience`` it keeps trying that many seconds: a window that holds the lock
    may not be listening yet (it listens once it has painted).
    """
    from PySide6.QtNetwork import QLocalSocket

    deadline = time.monotonic() + patience
    while True:
        socket = QLocalSocket()
        socket.connectToServer(name)
        if socket.waitForConnected(TIMEOUT_MS):
            socket.write(b"activate\n")
            socket.waitForBytesWritten(TIMEOUT_MS)
            socket.disconnectFromServer()
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


class InstanceServer(QObject):
    """Listens for later launches and emits ``sig_activate`` when one knocks."""

    sig_activate = Signal()

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        from PySide6.QtNetwork import QLocalServer

        super().__init__(parent)
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not self._server.listen(name):
            # A stale socket from a crashed instance: nobody answered, so reclaim it.
            QLocalServer.removeServer(name)
            self._server.listen(name)
        self._server.newConnection.connect(self._on_server_new_connection)

    def _on_server_new_connection(self) -> None:
        while (socket := self._server.nextPendingConnection()) is not None:
            socket.disconnected.connect(socket.deleteLater)
            self.sig_activate.emit()

    def close(self) -> None:
        self._server.close()
