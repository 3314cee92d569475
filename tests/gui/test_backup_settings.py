"""Preferences → Data: how often the window backs up, and how many backups it keeps."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from desktop_chat.gui.application import _start_rolling_backup, create_application
from desktop_chat.gui.settings_dialog import SettingsDialog
from desktop_chat.services.workspace import Workspace
from desktop_chat.storage import backup


def autos(workspace: Workspace) -> list[backup.Backup]:
    return [b for b in backup.list_backups(workspace.paths.backups) if b.kind == "auto"]


def test_backup_schedule_is_set_in_preferences_and_used(qtbot: QtBot, workspace: Workspace) -> None:
    create_application()
    workspace.repo.create_conversation(title="worth keeping")
    paths = workspace.paths
    for _ in range(3):  # three older automatic backups
        backup.rolling(paths.database, paths.backups, every=0)
    assert len(autos(workspace)) == 3

    dialog = SettingsDialog(workspace)
    qtbot.addWidget(dialog)
    assert (dialog.backup_every.value(), dialog.backups_kept.value()) == (1, 7)  # defaults
    dialog.backup_every.setValue(0)
    assert dialog.backup_every.text() == "Never"
    dialog._save()
    assert workspace.settings.backup_every_days == 0
    _start_rolling_backup(workspace)  # never: nothing made, nothing pruned
    qtbot.wait(200)
    assert len(autos(workspace)) == 3

    dialog = SettingsDialog(workspace)
    qtbot.addWidget(dialog)
    dialog.backup_every.setValue(2)
    dialog.backups_kept.setValue(2)
    dialog._save()
    reloaded = workspace.settings
    assert (reloaded.backup_every_days, reloaded.backups_kept) == (2, 2)
    _start_rolling_backup(workspace)  # not due (the newest is fresh): only the oldest goes
    qtbot.waitUntil(lambda: len(autos(workspace)) == 2)
