"""Backups with SQLite's online backup API: snapshots, rolling copies, restore, quarantine.

The backup API copies a consistent database even while the app is writing to
it (WAL included), which a plain file copy does not. A backup is encrypted like
its source: an SQLCipher database is copied through SQLCipher with the same
key (``key``, ignored for plain files), so no clear copy is ever written.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from desktop_chat.errors import StorageError
from desktop_chat.storage import encryption

SUFFIX = ".sqlite3"


@dataclass(frozen=True)
class Backup:
    path: Path
    kind: str  # "auto", "manual" or "pre-migration"
    created_at: datetime
    size: int

    @property
    def name(self) -> str:
        return self.path.name


def _connect(path: Path, key: str | None, *, encrypted: bool, readonly: bool = False) -> Any:
    """The standard module for a plain file, SQLCipher with ``key`` for an encrypted one."""
    if encrypted:
        return encryption.connect(path, key, readonly=readonly)
    if readonly:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    return sqlite3.connect(path)


def copy_database(source: Path, target: Path, *, key: str | None = None) -> None:
    """A consistent copy of ``source`` at ``target`` (0600), through the backup API."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    os.close(fd)
    encrypted = encryption.is_encrypted(source)
    errors: tuple[type[BaseException], ...] = (*encryption.driver_errors(), OSError)
    try:
        src = _connect(source, key, encrypted=encrypted, readonly=True)
        try:
            dst = _connect(partial, key, encrypted=encrypted)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")  # a backup is one self-contained file
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(partial, target)
    except errors as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(f"Could not back up the database to {target}: {exc}.") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def create(database: Path, folder: Path, kind: str = "manual", *, key: str | None = None) -> Backup:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{kind}-{stamp}{SUFFIX}"
    copy_database(database, target, key=key)
    return _describe(target)


def _describe(path: Path) -> Backup:
    kind = path.name.split("-", 1)[0] if "-" in path.name else "manual"
    if path.name.startswith("pre-migration"):
        kind = "pre-migration"
    stat = path.stat()
    return Backup(path, kind, datetime.fromtimestamp(stat.st_mtime, UTC), stat.st_size)


def list_backups(folder: Path) -> list[Backup]:
    """Backups, newest first."""
    if not folder.is_dir():
        return []
    found = [_describe(p) for p in folder.glob(f"*{SUFFIX}") if p.is_file()]
    return sorted(found, key=lambda b: b.created_at, reverse=True)


def rolling(
    database: Path,
    folder: Path,
    *,
    every: float = 86_400,
    keep: int = 7,
    key: str | None = None,
) -> Backup | None:
    """Make an automatic backup if the newest is older than ``every`` seconds; keep ``keep``."""
    autos = [b for b in list_backups(folder) if b.kind == "auto"]
    made = None
    if not autos or time.time() - autos[0].created_at.timestamp() >= every:
        made = create(database, folder, "auto", key=key)
        autos.insert(0, made)
    for old in autos[keep:]:
        old.path.unlink(missing_ok=True)
    return made


def restore(backup: Path, database: Path, *, key: str | None = None) -> Path | None:
    """Put ``backup`` in place of ``database``; the current file is moved aside, not deleted.

    Returns where the replaced database was moved (None if there was none).
    """
    if not backup.is_file():
        raise StorageError(f"No backup at {backup}.")
    check = integrity(backup, key=key)
    if check != "ok":
        raise StorageError(f"The backup {backup.name} is damaged ({check}); choose another.")
    moved = quarantine(database, reason="replaced") if database.exists() else None
    copy_database(backup, database, key=key)
    return moved


def quarantine(database: Path, *, reason: str = "corrupt") -> Path:
    """Move the database (and its WAL/SHM files) aside, never deleting anything."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = database.with_name(f"{database.name}.{reason}-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        side = Path(f"{database}{suffix}")
        if side.exists():
            os.replace(side, Path(f"{target}{suffix}"))
    return target


def integrity(path: Path, *, key: str | None = None) -> str:
    """``PRAGMA quick_check`` of a database file ("ok" when healthy), read-only.

    An encrypted file is checked with ``key``; without the right one the
    answer is the reason it cannot be read.
    """
    errors: tuple[type[BaseException], ...] = (*encryption.driver_errors(), StorageError)
    try:
        conn = _connect(path, key, encrypted=encryption.is_encrypted(path), readonly=True)
        try:
            row = conn.execute("PRAGMA quick_check").fetchone()
        finally:
            conn.close()
    except errors as exc:
        return str(exc)
    return str(row[0]) if row else "no result"
