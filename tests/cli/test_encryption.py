"""`desktop-chat encryption status|on|off` in subprocesses, with the test keyring."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from desktop_chat.storage import encryption
from tests.cli.test_cli import database, ok, run, seed

pytest.importorskip("sqlcipher3")


def test_status_on_off_round_trip(data_dir: Path) -> None:
    ids = seed()
    db = database(data_dir)
    assert ok("encryption", "status").stdout == "The database is not encrypted.\n"

    done = ok("encryption", "on")
    assert done.stderr == "The database is now encrypted.\n"
    assert encryption.is_encrypted(db)
    assert b"Tides explained" not in db.read_bytes()
    assert ok("encryption", "status").stdout.startswith("The database is encrypted (key in")
    # Every other command reads it through the keyring's key.
    listed = ok("list").stdout
    assert all(i in listed for i in ids)
    assert "Sourdough" in ok("search", "sourdough").stdout
    assert "All about Tides explained." in ok("show", ids[0]).stdout
    assert "already encrypted" in ok("encryption", "on").stderr
    assert "Created manual-" in ok("backup", "create").stderr
    (made,) = (data_dir / "backups").glob("manual-*")
    assert encryption.is_encrypted(made)

    ok("encryption", "off")
    assert not encryption.is_encrypted(db)
    assert not encryption.is_encrypted(made)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM conversation").fetchone()[0] == 3
    finally:
        conn.close()
    assert all(i in ok("list").stdout for i in ids)


def test_lost_key_is_one_line_exit_1_and_nothing_moved(data_dir: Path) -> None:
    seed()
    ok("encryption", "on")
    (data_dir.parent / "keyring.json").write_text("{}")  # the keyring entry is gone
    done = run("list")
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "is encrypted, but its key is not in the OS keyring" in done.stderr
    assert "Traceback" not in done.stderr
    assert "ERROR CORE" not in done.stderr  # SQLCipher's own log stays quiet
    assert [p.name for p in data_dir.iterdir() if ".corrupt-" in p.name] == []

    entry = f"desktop-chat\0database:{database(data_dir).resolve()}"
    (data_dir.parent / "keyring.json").write_text(json.dumps({entry: "ab" * 32}))
    done = run("list")
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "cannot be opened with the key in the OS keyring" in done.stderr
    assert "ERROR CORE" not in done.stderr
    assert [p.name for p in data_dir.iterdir() if ".corrupt-" in p.name] == []


def test_bad_action_is_usage_error() -> None:
    done = run("encryption", "maybe")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
