"""A full disk while saving: a clear error, and nothing saved before is lost."""

from __future__ import annotations

import pytest

from desktop_chat.core.types import Role
from desktop_chat.errors import StorageError
from desktop_chat.services.workspace import Workspace


def fill_up(workspace: Workspace) -> None:
    """Cap the database at its current size, as a full disk would.

    The cap is a connection's own; the threads' connections opened later get it too.
    """
    db = workspace.repo.db
    pages = db.execute_sql("PRAGMA page_count").fetchone()[0]
    db.execute_sql(f"PRAGMA max_page_count = {pages}")
    db._pragmas = [*db._pragmas, ("max_page_count", pages)]


def test_disk_full_is_a_clear_error_and_keeps_what_was_saved() -> None:
    workspace = Workspace.open()
    conv = workspace.repo.create_conversation(title="kept")
    first = workspace.repo.append_message(conv.id, None, Role.USER, "saved before")
    fill_up(workspace)
    with pytest.raises(StorageError, match="the disk is full") as info:
        workspace.repo.append_message(conv.id, first.id, Role.USER, "word " * 50_000)
    assert "what was saved before is intact" in info.value.message
    with pytest.raises(StorageError, match="disk is full"):
        workspace.repo.update_message(first.id, content="x" * 200_000)
    thread = workspace.repo.thread(conv.id)
    assert [m.content for m in thread] == ["saved before"]
    assert workspace.repo.get_conversation(conv.id).message_count == 1


def test_read_only_database_is_a_clear_error_and_keeps_what_was_saved() -> None:
    # Root ignores file modes, so the test makes SQLite itself refuse writes,
    # with the same SQLITE_READONLY error a read-only folder or file gives.
    workspace = Workspace.open()
    conv = workspace.repo.create_conversation(title="kept")
    workspace.repo.append_message(conv.id, None, Role.USER, "saved before")
    workspace.repo.db.execute_sql("PRAGMA query_only = ON")
    with pytest.raises(StorageError, match="the data folder is read-only") as info:
        workspace.repo.append_message(conv.id, None, Role.USER, "not saved")
    assert "nothing saved was lost" in info.value.message
    workspace.repo.db.execute_sql("PRAGMA query_only = OFF")
    assert [m.content for m in workspace.repo.thread(conv.id)] == ["saved before"]
    workspace.repo.append_message(conv.id, None, Role.USER, "saved after")  # usable again
