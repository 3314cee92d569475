"""Preferences → Data: the encryption checkbox saves the setting; the next start applies it."""

from __future__ import annotations

import pytest
from pytestqt.qtbot import QtBot

from desktop_chat.core.types import Role
from desktop_chat.gui.settings_dialog import SettingsDialog
from desktop_chat.services.workspace import Workspace
from desktop_chat.storage import encryption

pytest.importorskip("sqlcipher3")


def test_checkbox_encrypts_at_next_start_and_back(qtbot: QtBot, workspace: Workspace) -> None:
    conv = workspace.repo.create_conversation(title="private plans")
    workspace.repo.append_message(conv.id, None, Role.USER, "a secret worth keeping")
    dialog = SettingsDialog(workspace)
    qtbot.addWidget(dialog)
    assert dialog.encrypt.isEnabled()
    assert not dialog.encrypt.isChecked()
    assert dialog.encrypt_note.text() == "The database is not encrypted."
    dialog.encrypt.setChecked(True)
    assert "will be encrypted the next time" in dialog.encrypt_note.text()
    dialog._save()
    assert workspace.settings.encrypt_database is True
    workspace.close()
    assert not encryption.is_encrypted(workspace.paths.database)  # not under an open window

    reopened = Workspace.open(check_integrity=True)
    try:
        assert encryption.is_encrypted(reopened.paths.database)
        assert [m.content for m in reopened.repo.thread(conv.id)] == ["a secret worth keeping"]
        dialog = SettingsDialog(reopened)
        qtbot.addWidget(dialog)
        assert dialog.encrypt.isChecked()
        assert dialog.encrypt_note.text().startswith("The database is encrypted")
        dialog.encrypt.setChecked(False)
        dialog._save()
    finally:
        reopened.close()
    again = Workspace.open()
    try:
        assert not encryption.is_encrypted(again.paths.database)
        assert again.db_key is None
        assert [m.content for m in again.repo.thread(conv.id)] == ["a secret worth keeping"]
    finally:
        again.close()
