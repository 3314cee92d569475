"""Encryption at rest: SQLCipher files, keys in the keyring, conversion both ways, no clear copy."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from desktop_chat import secrets
from desktop_chat.core.types import Role
from desktop_chat.errors import CorruptDatabaseError, EncryptedDatabaseError, StorageError
from desktop_chat.services import encryption as service
from desktop_chat.services.workspace import Workspace
from desktop_chat.storage import backup, encryption, open_database

pytest.importorskip("sqlcipher3")

CANARY = "zebra-canary-7731 secret recipe"


def _seed(workspace: Workspace) -> dict[str, list[str]]:
    """Three conversations with a canary in a message and a title; their messages' text."""
    kept: dict[str, list[str]] = {}
    for n in range(3):
        conv = workspace.repo.create_conversation(title=f"chat {n} {CANARY}")
        parent = None
        texts = []
        for i in range(5):
            text = f"message {i} of chat {n}: {CANARY if i == 2 else 'ordinary words'}"
            parent = workspace.repo.append_message(
                conv.id, parent.id if parent else None, Role.USER, text
            )
            texts.append(text)
        kept[conv.id] = texts
    return kept


def _contents(workspace: Workspace) -> dict[str, list[str]]:
    return {
        c.id: [m.content for m in workspace.repo.thread(c.id)]
        for c in workspace.repo.list_conversations(limit=1000)
    }


def _file_bytes(database: Path) -> bytes:
    return b"".join(
        Path(f"{database}{s}").read_bytes() for s in ("", "-wal") if Path(f"{database}{s}").exists()
    )


def _dump(database: Path) -> list[str]:
    """Every schema entry and row of a plain database, as SQL."""
    conn = sqlite3.connect(database)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _plain_open_fails(database: Path) -> None:
    conn = sqlite3.connect(database)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="file is not a database"):
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    finally:
        conn.close()


def test_plain_to_encrypted_keeps_everything_and_hides_it(data_dir: Path) -> None:
    workspace = Workspace.open()
    kept = _seed(workspace)
    paths, settings = workspace.paths, workspace.settings
    workspace.close()
    assert CANARY.encode() in _file_bytes(paths.database)

    assert service.set_encryption(paths, settings, enabled=True)

    assert encryption.is_encrypted(paths.database)
    assert oct(paths.database.stat().st_mode & 0o777) == "0o600"
    assert not list(paths.data.glob("*.converting")) + list(paths.data.glob("*.before-*"))
    _plain_open_fails(paths.database)
    key = secrets.get_database_key(paths.database)
    assert key is not None
    assert len(bytes.fromhex(key)) == 32
    # The key is in the keyring only: not in settings, not in any file of the data dir.
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path

    workspace = Workspace.open(check_integrity=True)
    assert workspace.db_key == key
    assert workspace.settings.encrypt_database is True
    assert _contents(workspace) == kept
    hits = workspace.repo.search("zebra-canary", limit=50)
    assert len([h for h in hits if h.message_id]) == 3
    conv = next(iter(kept))
    workspace.repo.append_message(
        conv, None, Role.USER, "written while encrypted " + CANARY, make_current=False
    )
    # Written pages sit in the WAL now: it is encrypted too.
    wal = Path(f"{paths.database}-wal")
    assert wal.exists()
    assert wal.stat().st_size > 0
    assert CANARY.encode() not in _file_bytes(paths.database)
    workspace.close()
    assert CANARY.encode() not in _file_bytes(paths.database)
    _plain_open_fails(paths.database)


def test_opening_without_the_key_is_a_clear_error_not_damage(data_dir: Path) -> None:
    workspace = Workspace.open()
    _seed(workspace)
    paths, settings = workspace.paths, workspace.settings
    workspace.close()
    service.set_encryption(paths, settings, enabled=True)
    key = secrets.get_database_key(paths.database)
    assert key is not None

    wrong = "00" * 32
    with pytest.raises(EncryptedDatabaseError, match="cannot be opened with the key"):
        open_database(paths.database, key=wrong)
    assert not isinstance(EncryptedDatabaseError("x"), CorruptDatabaseError)

    # The keyring entry is lost: the app says so and moves nothing aside.
    import keyring

    keyring.delete_password(secrets.SERVICE, f"database:{paths.database.resolve()}")
    for integrity in (False, True):
        with pytest.raises(EncryptedDatabaseError, match="key is not in the OS keyring"):
            Workspace.open(check_integrity=integrity)
    assert paths.database.exists()
    assert [p.name for p in paths.data.iterdir() if ".corrupt-" in p.name] == []

    # A wrong key in the keyring: same, the file stays where it is.
    keyring.set_password(secrets.SERVICE, f"database:{paths.database.resolve()}", wrong)
    with pytest.raises(EncryptedDatabaseError, match="cannot be opened with the key"):
        Workspace.open(check_integrity=True)
    assert [p.name for p in paths.data.iterdir() if ".corrupt-" in p.name] == []

    keyring.set_password(secrets.SERVICE, f"database:{paths.database.resolve()}", key)
    Workspace.open(check_integrity=True).close()


def test_round_trip_back_to_plain_and_backups_follow(data_dir: Path) -> None:
    workspace = Workspace.open()
    kept = _seed(workspace)
    paths, settings = workspace.paths, workspace.settings
    plain_backup = backup.create(paths.database, paths.backups, "manual")
    workspace.close()

    service.set_encryption(paths, settings, enabled=True)
    # The backup taken before is encrypted now too: no clear copy is left.
    assert encryption.is_encrypted(plain_backup.path)
    assert CANARY.encode() not in plain_backup.path.read_bytes()

    workspace = Workspace.open()
    made = backup.create(paths.database, paths.backups, "manual", key=workspace.db_key)
    assert encryption.is_encrypted(made.path)
    assert CANARY.encode() not in made.path.read_bytes()
    assert backup.integrity(made.path, key=workspace.db_key) == "ok"
    assert backup.integrity(made.path) != "ok"
    workspace.close()

    assert service.set_encryption(paths, settings, enabled=False)
    assert not encryption.is_encrypted(paths.database)
    assert not encryption.is_encrypted(made.path)
    assert backup.integrity(made.path) == "ok"
    conn = sqlite3.connect(paths.database)
    try:
        assert conn.execute("SELECT count(*) FROM message").fetchone()[0] == 15
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    workspace = Workspace.open(check_integrity=True)
    assert workspace.db_key is None
    assert _contents(workspace) == kept
    assert len(workspace.repo.search("zebra-canary", limit=50)) >= 3
    workspace.close()


def test_a_new_database_is_created_encrypted_when_the_setting_is_on(data_dir: Path) -> None:
    workspace = Workspace.open()
    paths, settings = workspace.paths, workspace.settings
    workspace.close()
    paths.database.unlink()
    for side in ("-wal", "-shm"):
        Path(f"{paths.database}{side}").unlink(missing_ok=True)
    settings.encrypt_database = True
    workspace.save_settings()

    workspace = Workspace.open()
    _seed(workspace)
    workspace.close()
    assert encryption.is_encrypted(paths.database)
    assert CANARY.encode() not in _file_bytes(paths.database)


def test_a_pending_setting_is_applied_at_the_next_open(data_dir: Path) -> None:
    workspace = Workspace.open()
    kept = _seed(workspace)
    workspace.settings.encrypt_database = True  # as Preferences saves it
    workspace.save_settings()
    workspace.close()
    assert not encryption.is_encrypted(workspace.paths.database)

    workspace = Workspace.open(check_integrity=True)
    assert workspace.notice is None
    assert encryption.is_encrypted(workspace.paths.database)
    assert _contents(workspace) == kept
    assert service.status(workspace.paths, workspace.settings).pending is False
    workspace.close()


def test_a_failure_mid_conversion_leaves_the_original_intact(data_dir: Path) -> None:
    workspace = Workspace.open()
    kept = _seed(workspace)
    for n in range(200):  # enough pages that the copy is cut off part-way
        workspace.repo.create_conversation(title=f"filler {n} " + "words " * 200)
    paths = workspace.paths
    workspace.close()
    size = paths.database.stat().st_size
    before = _dump(paths.database)

    # A real short write: the file-size limit stops the new file half-way (EFBIG).
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        from desktop_chat.errors import StorageError
        from desktop_chat.services import encryption, settings
        from desktop_chat import paths
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        app = paths.resolve()
        loaded = settings.load(app.settings_file)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({size // 2}, {size // 2}))
        try:
            encryption.set_encryption(app, loaded, enabled=True)
        except StorageError as exc:
            print("failed:", exc)
            sys.exit(3)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 3, done.stderr
    assert "the original is unchanged" in done.stdout

    # Only SQLite's change counter may differ: every row and the journal mode are as before.
    assert _dump(paths.database) == before
    conn = sqlite3.connect(paths.database)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert not encryption.is_encrypted(paths.database)
    assert not list(paths.data.glob("*.converting*"))
    workspace = Workspace.open(check_integrity=True)
    assert workspace.notice is None
    assert workspace.settings.encrypt_database is None  # the setting was put back
    assert {k: v for k, v in _contents(workspace).items() if k in kept} == kept
    workspace.close()


def test_conversion_refuses_while_another_process_uses_the_database(data_dir: Path) -> None:
    workspace = Workspace.open()
    _seed(workspace)
    paths, settings = workspace.paths, workspace.settings
    workspace.close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
            "c.execute('SELECT count(*) FROM message').fetchone(); print('ready', flush=True);"
            "sys.stdin.read()",
            str(paths.database),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StorageError, match="in use by another"):
            service.set_encryption(paths, settings, enabled=True)
    finally:
        holder.communicate("", timeout=30)
    assert not encryption.is_encrypted(paths.database)
    assert settings.encrypt_database is None
