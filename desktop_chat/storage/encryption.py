"""Encryption at rest with SQLCipher: open with a key, tell files apart, convert both ways.

The key is 32 random bytes as 64 hex digits, given to SQLCipher as a raw key
(``x'...'``), so opening skips the passphrase KDF and costs no start-up time.
SQLCipher (the ``sqlcipher3`` module, installed where it has binary wheels)
is only imported when an encrypted file is involved; plain databases keep
using the standard ``sqlite3`` module. A file is never open through both
libraries at once: each keeps its own POSIX locks, and mixing them in one
process defeats SQLite's locking.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any

import peewee

from desktop_chat.errors import EncryptedDatabaseError, StorageError

PLAIN_HEADER = b"SQLite format 3\x00"
_KEY = re.compile(r"[0-9a-f]{64}")

NOT_INSTALLED = (
    "Encrypting the database needs the SQLCipher module, which is not installed here "
    "(it has no ready-made build for this platform). Install it with `pip install sqlcipher3`."
)


def available() -> bool:
    """Whether the SQLCipher module can be imported."""
    try:
        driver()
    except StorageError:
        return False
    return True


def driver() -> ModuleType:
    """The ``sqlcipher3`` DB-API module, or a StorageError saying how to install it."""
    try:
        from sqlcipher3 import dbapi2
    except ImportError as exc:
        raise StorageError(NOT_INSTALLED) from exc
    return dbapi2


def driver_errors() -> tuple[type[Exception], ...]:
    """Exceptions a database call can raise, whichever library made it."""
    try:
        from sqlcipher3 import dbapi2
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, dbapi2.Error)


def is_encrypted(path: Path) -> bool:
    """True for an existing, non-empty file that does not start like a plain SQLite database.

    SQLCipher files begin with a random salt; plain ones with SQLite's magic
    string. (A damaged plain file also fails this test: callers decide with
    what they know, such as a key in the keyring.)
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(len(PLAIN_HEADER))
    except FileNotFoundError:
        return False
    return bool(head) and head != PLAIN_HEADER


def key_pragma(key: str) -> str:
    """The value SQLCipher takes as a raw 256-bit key (``x'<64 hex>'``)."""
    if not _KEY.fullmatch(key):
        raise EncryptedDatabaseError("The database key in the OS keyring is malformed.")
    return f"x'{key}'"


def connect(path: Path | str, key: str | None, *, readonly: bool = False) -> Any:
    """A SQLCipher DB-API connection to ``path``, keyed when ``key`` is given.

    The key is checked at once: a wrong key raises EncryptedDatabaseError.
    """
    module = driver()
    target = f"file:{path}?mode=ro" if readonly else str(path)
    conn = module.connect(target, uri=readonly, isolation_level=None)
    try:
        # Errors reach the caller as exceptions; SQLCipher's own log would
        # print them to stderr as well.
        conn.execute("PRAGMA cipher_log_level = NONE")
        if key is not None:
            conn.execute(f'PRAGMA key = "{key_pragma(key)}"')
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except module.DatabaseError as exc:
        conn.close()
        raise wrong_key(path, exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def wrong_key(path: Path | str, exc: BaseException) -> EncryptedDatabaseError:
    return EncryptedDatabaseError(
        f"The database at {path} is encrypted and cannot be opened with the key in the "
        "OS keyring (the key is wrong or the file is damaged). Nothing was changed; "
        "restore the keyring entry or a backup.",
        details=repr(exc),
    )


def peewee_database(path: Path, key: str, pragmas: dict[str, Any]) -> peewee.SqliteDatabase:
    """Peewee's SqlCipherDatabase over ``path`` with the raw ``key``."""
    driver()  # a clear error when the module is missing, before Peewee's ImportError
    from playhouse.sqlcipher_ext import SqlCipherDatabase

    # Peewee quotes the passphrase itself: SQLCipher reads back x'<hex>', a raw key.
    # Logging goes first so a wrong key is not also printed to stderr.
    ordered = {"cipher_log_level": "NONE", **pragmas}
    db: peewee.SqliteDatabase = SqlCipherDatabase(
        str(path), passphrase=key_pragma(key), pragmas=ordered
    )
    return db


def table_counts(conn: Any, schema: str = "main") -> dict[str, int]:
    """Rows in every table of ``schema``, FTS shadow tables included."""
    names = [
        row[0]
        for row in conn.execute(
            f"SELECT name FROM {schema}.sqlite_schema WHERE type = 'table' AND rootpage > 0 "
            "ORDER BY name"
        )
    ]
    return {
        name: conn.execute(f'SELECT count(*) FROM {schema}."{name}"').fetchone()[0]
        for name in names
    }


def convert(database: Path, *, key_from: str | None, key_to: str | None) -> None:
    """Rewrite ``database`` encrypted with ``key_to`` (None: plain), in place.

    ``sqlcipher_export`` writes a new file beside it, which is checked
    (integrity_check, every table's row count) before it atomically replaces
    the old one. The old file stays, hard-linked, until the new one opens in
    its place; on any failure the original is left exactly as it was. Every
    connection to the database must be closed; another process using it makes
    this fail with "in use" before anything is written.
    """
    if key_from is None and key_to is None:
        raise ValueError("convert needs a key on at least one side")
    partial = database.with_name(database.name + ".converting")
    kept = database.with_name(database.name + ".before-conversion")
    for leftover in (partial, Path(f"{partial}-journal"), kept):
        leftover.unlink(missing_ok=True)
    errors: tuple[type[BaseException], ...] = (*driver_errors(), OSError)
    try:
        fd = os.open(partial, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        os.close(fd)
        expected = _export(database, partial, key_from=key_from, key_to=key_to)
        _verify(partial, key_to, expected)
    except EncryptedDatabaseError:
        partial.unlink(missing_ok=True)
        raise
    except errors as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(
            f"Converting the database failed ({exc}); the original is unchanged.",
            details=repr(exc),
        ) from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    try:
        try:
            os.link(database, kept)
        except OSError:  # a file system without hard links
            shutil.copyfile(database, kept)
        os.replace(partial, database)
        for suffix in ("-wal", "-shm"):  # the old file's, if any were left
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        _verify(database, key_to, expected)
    except BaseException as exc:
        if kept.exists():
            os.replace(kept, database)
        partial.unlink(missing_ok=True)
        if isinstance(exc, errors):
            raise StorageError(
                f"Converting the database failed ({exc}); the original was put back.",
                details=repr(exc),
            ) from exc
        raise
    # Nothing must keep a clear copy once the encrypted one is in place.
    kept.unlink()


def _export(database: Path, partial: Path, *, key_from: str | None, key_to: str | None) -> Any:
    """Copy everything into ``partial`` with ``sqlcipher_export``; the source's row counts."""
    src = connect(database, key_from)
    try:
        original = str(src.execute("PRAGMA journal_mode").fetchone()[0])
        # Leaving WAL folds the WAL into the file and needs sole access: this
        # is where another process using the database is noticed.
        try:
            mode = src.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
        except driver_errors() as exc:
            mode = str(exc)
        if str(mode).lower() != "delete":
            raise StorageError(
                "The database is in use by another Desktop Chat window or command. "
                "Close it and try again; nothing was changed."
            )
        try:
            return _copy(src, partial, key_to)
        except BaseException:
            # Leave the original exactly as it was, journal mode included.
            with contextlib.suppress(*driver_errors()):
                src.execute(f"PRAGMA journal_mode = {original}")
            raise
    finally:
        src.close()


def _copy(src: Any, partial: Path, key_to: str | None) -> dict[str, int]:
    target = key_pragma(key_to) if key_to is not None else ""
    src.execute("ATTACH DATABASE ? AS converted KEY ?", (str(partial), target))
    try:
        src.execute("BEGIN")  # one snapshot, and no writer until it is copied
        try:
            expected = table_counts(src)
            src.execute("SELECT sqlcipher_export('converted')")
            src.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(*driver_errors()):
                src.execute("ROLLBACK")
            raise
    finally:
        with contextlib.suppress(*driver_errors()):
            src.execute("DETACH DATABASE converted")
    return expected


def _verify(path: Path, key: str | None, expected: dict[str, int]) -> None:
    conn = connect(path, key)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise StorageError(f"The converted database failed its integrity check ({check}).")
        got = table_counts(conn)
        if got != expected:
            raise StorageError("The converted database does not hold the same rows.")
    finally:
        conn.close()
