"""Backups through SQLite's backup API, migration snapshots, and damaged databases moved aside."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import peewee
import pytest

from desktop_chat.core.types import Role
from desktop_chat.errors import StorageError
from desktop_chat.services.workspace import Workspace
from desktop_chat.storage import backup, migrations, open_database
from desktop_chat.storage.repository import Repository


def _titles(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT title FROM conversation ORDER BY id")]
    finally:
        conn.close()


def _workspace_with(title: str) -> Workspace:
    workspace = Workspace.open()
    conv = workspace.repo.create_conversation(title=title)
    workspace.repo.append_message(conv.id, None, Role.USER, "remember me")
    return workspace


def test_create_list_restore_round_trip() -> None:
    workspace = _workspace_with("before")
    made = backup.create(workspace.paths.database, workspace.paths.backups)
    assert oct(made.path.stat().st_mode & 0o777) == "0o600"
    assert backup.integrity(made.path) == "ok"
    workspace.repo.create_conversation(title="after")
    workspace.close()
    assert [b.name for b in backup.list_backups(workspace.paths.backups)] == [made.name]
    moved = backup.restore(made.path, workspace.paths.database)
    assert _titles(workspace.paths.database) == ["before"]
    assert moved is not None
    assert _titles(moved) == ["before", "after"]  # kept, not deleted


def test_rolling_backups_are_daily_and_keep_seven() -> None:
    workspace = _workspace_with("x")
    folder = workspace.paths.backups
    first = backup.rolling(workspace.paths.database, folder)
    assert first is not None
    assert backup.rolling(workspace.paths.database, folder) is None  # not due yet
    for _ in range(9):
        backup.rolling(workspace.paths.database, folder, every=0)
    autos = [b for b in backup.list_backups(folder) if b.kind == "auto"]
    assert len(autos) == 7


def test_failed_migration_restores_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, folder = tmp_path / "db.sqlite3", tmp_path / "backups"
    db = open_database(path, backups=folder)
    repo = Repository(db)
    repo.create_conversation(title="precious")
    db.close()

    def m999_broken(db: peewee.Database) -> None:
        db.execute_sql("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(
        migrations, "MIGRATIONS", [*migrations.MIGRATIONS, ("m999_broken", m999_broken)]
    )
    with pytest.raises(StorageError, match="restored from the copy") as info:
        open_database(path, backups=folder)
    assert "simulated failure" in info.value.message
    assert _titles(path) == ["precious"]
    conn = sqlite3.connect(path)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    applied = [row[0] for row in conn.execute("SELECT name FROM migrations")]
    conn.close()
    assert "half_done" not in tables
    assert "m999_broken" not in applied
    snapshots = [b for b in backup.list_backups(folder) if b.kind == "pre-migration"]
    assert len(snapshots) == 1
    assert _titles(snapshots[0].path) == ["precious"]


def test_damaged_database_is_moved_aside_and_app_starts(data_dir: Path) -> None:
    workspace = _workspace_with("good")
    good = backup.create(workspace.paths.database, workspace.paths.backups, "auto")
    workspace.close()
    database = workspace.paths.database
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    raw = bytearray(database.read_bytes())
    raw[:16] = b"not a database!!"
    database.write_bytes(bytes(raw))
    damaged = bytes(raw)

    reopened = Workspace.open(check_integrity=True)
    try:
        assert reopened.notice is not None
        assert good.name in reopened.notice
        assert "nothing was deleted" in reopened.notice
        assert reopened.repo.list_conversations() == []
    finally:
        reopened.close()
    aside = [
        p
        for p in data_dir.iterdir()
        if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm"))
    ]
    assert len(aside) == 1
    assert aside[0].read_bytes() == damaged


def test_cli_reports_damaged_database_in_one_line(data_dir: Path) -> None:
    import subprocess
    import sys

    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "desktop-chat.sqlite3").write_bytes(os.urandom(4096))
    done = subprocess.run(
        [sys.executable, "-m", "desktop_chat", "list"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("desktop-chat: Your conversation database could not be read")
    assert "Traceback" not in done.stderr


def damage_a_page(workspace: Workspace) -> None:
    """Scribble over the message table's root page: the file opens, quick_check fails."""
    for n in range(300):
        workspace.repo.append_message(
            workspace.repo.create_conversation(title=f"c{n}").id, None, Role.USER, "x" * 500
        )
    db = workspace.repo.db
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    (root,) = db.execute_sql("SELECT rootpage FROM sqlite_master WHERE name = 'message'").fetchone()
    (size,) = db.execute_sql("PRAGMA page_size").fetchone()
    with workspace.paths.database.open("r+b") as handle:
        handle.seek((root - 1) * size)
        handle.write(os.urandom(size))


def test_the_window_session_marker_says_when_to_check_first() -> None:
    from desktop_chat.services.workspace import last_session_ended_cleanly

    assert last_session_ended_cleanly()  # a first start
    workspace = _workspace_with("kept")
    workspace.begin_session()
    assert not last_session_ended_cleanly()  # what a crash leaves behind
    workspace.end_session()
    assert last_session_ended_cleanly()
    workspace.begin_session()
    workspace.end_session(clean=False)  # damage found: check before the next start
    assert not last_session_ended_cleanly()
    workspace.close()


def test_integrity_problem_reads_the_file_beside_the_open_workspace() -> None:
    workspace = _workspace_with("sound")
    assert workspace.integrity_problem() is None
    damage_a_page(workspace)
    problem = workspace.integrity_problem()
    assert problem is not None
    assert problem != "ok"
    workspace.close()


def test_a_requested_restore_happens_at_the_next_open(data_dir: Path) -> None:
    workspace = _workspace_with("before")
    made = backup.create(workspace.paths.database, workspace.paths.backups, "manual")
    workspace.repo.create_conversation(title="after")
    with pytest.raises(StorageError, match="no backup named nope"):
        workspace.request_restore("nope")
    workspace.request_restore(made.name)
    workspace.close()

    reopened = Workspace.open()
    try:
        assert [c.title for c in reopened.repo.list_conversations()] == ["before"]
        assert reopened.notice is not None
        assert reopened.notice.startswith(f"Restored the backup {made.name}.")
        assert "was kept as desktop-chat.sqlite3.replaced-" in reopened.notice
    finally:
        reopened.close()
    kept = [p for p in data_dir.iterdir() if ".replaced-" in p.name and "-wal" not in p.name]
    assert _titles(next(p for p in kept if not p.name.endswith("-shm"))) == ["before", "after"]
    assert Workspace.open().notice is None  # done once


def test_a_damaged_backup_is_not_restored(data_dir: Path) -> None:
    workspace = _workspace_with("current")
    made = backup.create(workspace.paths.database, workspace.paths.backups, "manual")
    made.path.write_bytes(os.urandom(8192))
    workspace.request_restore(made.name)
    workspace.close()
    reopened = Workspace.open()
    try:
        assert reopened.notice is not None
        assert "could not be restored" in reopened.notice
        assert "Nothing was changed." in reopened.notice
        assert [c.title for c in reopened.repo.list_conversations()] == ["current"]
    finally:
        reopened.close()
