"""One window per data dir: a second launch asks the running one to come forward, then exits."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QCryptographicHash, QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from desktop_chat import APP_ID

TIMEOUT_MS = 500


def server_name(data_dir: Path) -> str:
    # Qt's hash, already loaded: hashlib would load OpenSSL (~5 ms) before the first paint.
    digest = QCryptographicHash.hash(
        str(data_dir.resolve()).encode(), QCryptographicHash.Algorithm.Sha256
    )
    return f"{APP_ID}-{digest.toHex().toStdString()[:16]}"


def ask_running_instance(name: str) -> bool:
    """True if another instance is listening (and was asked to show itself)."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(TIMEOUT_MS):
        return False
    socket.write(b"activate\n")
    socket.waitForBytesWritten(TIMEOUT_MS)
    socket.disconnectFromServer()
    return True


class InstanceServer(QObject):
    """Listens for later launches and emits ``sig_activate`` when one knocks."""

    sig_activate = Signal()

    def __init__(self, name: str, parent: QObject | None = None) -> None:
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
