"""File → Restore a backup: the backups newest first, and a restore that restarts the app."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from desktop_chat import APP_NAME
from desktop_chat.storage.backup import Backup

KINDS = {"auto": "daily", "manual": "made by you", "pre-migration": "before an update"}


class BackupDialog(QDialog):
    """Choose a backup; ``chosen`` is its name once the user has confirmed."""

    def __init__(self, backups: list[Backup], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Restore a backup")
        self.resize(520, 360)
        self.chosen: str | None = None
        layout = QVBoxLayout(self)
        intro = QLabel(
            f"{APP_NAME} restarts with the backup you choose. Your current conversations "
            "are not deleted: their database is moved aside and stays in the data folder.",
            self,
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.list = QListWidget(self)
        self.list.setObjectName("backupList")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        for item in backups:
            when = item.created_at.astimezone().strftime("%A %d %B %Y, %H:%M")
            row = QListWidgetItem(
                f"{when}  ·  {KINDS.get(item.kind, item.kind)}  ·  {item.size / 1e6:.1f} MB"
            )
            row.setData(Qt.ItemDataRole.UserRole, item.name)
            row.setToolTip(item.name)
            self.list.addItem(row)
        if backups:
            self.list.setCurrentRow(0)
        else:
            self.list.addItem("No backups yet: one is made each day the app is open.")
            self.list.setEnabled(False)
        layout.addWidget(self.list, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.restore_button = buttons.addButton(
            "Restore and restart", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.restore_button.setEnabled(bool(backups))
        buttons.accepted.connect(self.confirm)
        buttons.rejected.connect(self.reject)
        self.list.itemDoubleClicked.connect(lambda _item: self.confirm())
        layout.addWidget(buttons)

    def confirm(self) -> None:
        item = self.list.currentItem()
        name = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if not name:
            return
        answer = QMessageBox.question(
            self,
            "Restore a backup",
            f"Replace your conversations with the backup of {item.text().split('  ·  ')[0]}?"
            f"\n\n{APP_NAME} restarts to do it; what you have now is kept aside, not deleted.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.chosen = str(name)
            self.accept()
