"""Open the database: SQLite in WAL mode with foreign keys, 0600, migrated to the latest schema.

With a key, the file is opened through SQLCipher instead (see storage.encryption).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import peewee

from desktop_chat.errors import CorruptDatabaseError, StorageError
from desktop_chat.storage import backup, encryption
from desktop_chat.storage.migrations import MIGRATIONS, migrate, pending

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    # WAL with NORMAL is durable against an application crash (the case we
    # promise); only an OS crash or power loss can drop the last commits.
    "synchronous": "normal",
    "busy_timeout": 10_000,
    # 8 MB per connection (each thread has one): with 32 MB the GUI grew by
    # ~25 MB while opening 20 long chats; the OS page cache keeps the rest warm.
    "cache_size": -8_000,
    "temp_store": "memory",
}


def open_database(
    path: Path | None = None,
    *,
    url: str | None = None,
    backups: Path | None = None,
    key: str | None = None,
) -> peewee.Database:
    """Open (creating if needed) and migrate the database at ``path`` or ``url``.

    A ``url`` in Peewee's db_url form (``sqlite:///...``, ``postgresql://...``)
    wins over ``path``; SQLite is the embedded default. With ``key`` (64 hex
    digits) the file at ``path`` is an SQLCipher database; a wrong key raises
    EncryptedDatabaseError, never CorruptDatabaseError. Before migrating an
    existing SQLite database, a snapshot is saved in ``backups`` (encrypted
    like the database); if the migration fails, the snapshot is put back and
    the user is told.
    """
    if key is not None and (url or path is None):
        raise ValueError("an encryption key needs a database path, not a url")
    if url:
        from playhouse.db_url import connect  # ~10 ms, for a --db-url only

        db = connect(url, pragmas=SQLITE_PRAGMAS) if url.startswith("sqlite") else connect(url)
        db_path = Path(db.database) if isinstance(db, peewee.SqliteDatabase) else None
    elif path is not None and key is not None:
        db = encryption.peewee_database(path, key, SQLITE_PRAGMAS)
        db_path = path
    elif path is not None:
        db = peewee.SqliteDatabase(str(path), pragmas=SQLITE_PRAGMAS)
        db_path = path
    else:
        raise ValueError("open_database needs a path or a url")
    if db_path is not None and str(db_path) != ":memory:":
        _create_private(db_path)
    try:
        db.connect(reuse_if_open=True)
        todo = pending(db)
    except peewee.DatabaseError as exc:
        with contextlib.suppress(peewee.DatabaseError):
            db.close()
        if key is not None and "not a database" in str(exc):
            raise encryption.wrong_key(db_path or "", exc) from exc
        raise CorruptDatabaseError(
            f"The database at {db_path or url} cannot be read: {exc}.", details=repr(exc)
        ) from exc
    snapshot = None
    upgrading = 0 < len(todo) < len(MIGRATIONS)  # an existing database, not a new one
    if upgrading and db_path is not None and backups is not None:
        snapshot = backup.create(db_path, backups, kind="pre-migration", key=key)
    try:
        migrate(db)
    except Exception as exc:
        with contextlib.suppress(peewee.DatabaseError):
            db.close()
        if snapshot is None or db_path is None:
            raise StorageError(
                f"The database at {db_path or url} could not be updated: {exc}.",
                details=repr(exc),
            ) from exc
        backup.restore(snapshot.path, db_path, key=key)
        raise StorageError(
            f"Updating the database to this version failed ({exc}). It was restored from "
            f"the copy taken just before ({snapshot.path}); nothing was lost. "
            "Please report this problem.",
            details=repr(exc),
        ) from exc
    if db_path is not None and str(db_path) != ":memory:":
        _tighten(db_path)
    return db


def _create_private(path: Path) -> None:
    """Create the file 0600 before SQLite does, so it is never world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def _tighten(path: Path) -> None:
    """Keep the database and its WAL/SHM side files private."""
    for suffix in ("", "-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if side.stat().st_mode & 0o077:
                side.chmod(0o600)


def integrity_check(db: peewee.Database) -> str:
    """SQLite's ``PRAGMA quick_check`` result ("ok" when healthy)."""
    try:
        row = db.execute_sql("PRAGMA quick_check").fetchone()
    except (peewee.DatabaseError, sqlite3.DatabaseError) as exc:
        return str(exc)
    return str(row[0]) if row else "no result"
