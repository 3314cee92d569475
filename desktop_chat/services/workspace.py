"""Open everything a session of the app needs: paths, settings, database, repository.

The GUI and every CLI subcommand start here, so both recover the same way:
replies left ``streaming`` by a crash are marked ``interrupted`` on open.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from desktop_chat import paths
from desktop_chat.errors import CorruptDatabaseError, StorageError, UserFacingError
from desktop_chat.services import encryption as encryption_service
from desktop_chat.services import settings as settings_io
from desktop_chat.services.index_upkeep import IndexUpkeep
from desktop_chat.storage import Repository, backup, encryption, open_database

log = logging.getLogger(__name__)

# Present while a window has the workspace open; left behind by a crash or a kill.
SESSION_MARKER = "window-open"
# Names the backup to put in place when the workspace is next opened.
RESTORE_REQUEST = "restore-requested"


def last_session_ended_cleanly(data_dir: str | os.PathLike[str] | None = None) -> bool:
    """False when the last window on this data dir did not close normally.

    The window checks the whole database before opening it only then; after
    a clean exit the check runs in the background (it reads every page, which
    takes seconds on a large history with a cold disk cache).
    """
    return not (paths.resolve(data_dir).data / SESSION_MARKER).exists()


@dataclass
class Workspace:
    paths: paths.AppPaths
    settings: settings_io.Settings
    repo: Repository
    interrupted_on_open: int = 0
    notice: str | None = None  # told to the user once: e.g. a damaged database moved aside
    # The SQLCipher key when the database is encrypted (for backups); never logged.
    db_key: str | None = field(default=None, repr=False)
    upkeep: IndexUpkeep | None = None

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        db_url: str | None = None,
        check_integrity: bool = False,
    ) -> Workspace:
        """Open the workspace; a damaged database is moved aside and a fresh one started.

        ``check_integrity`` runs SQLite's quick_check first (the window does;
        CLI commands skip it to start fast and rely on open errors instead).
        """
        app_paths = paths.resolve(data_dir).ensure()
        settings = settings_io.load(app_paths.settings_file)
        url = db_url or os.environ.get(paths.DB_URL_ENV) or None
        notice = None
        database = app_paths.database
        key = None
        if url is None:
            notice = _apply_encryption_setting(app_paths, settings)
            key = encryption_service.database_key(app_paths, settings)
            notice = _apply_restore_request(app_paths, key) or notice
        if url is None and check_integrity and database.exists():
            if key is not None:
                # A wrong key must stop here, not look like damage and be moved aside.
                encryption.connect(database, key).close()
            problem = backup.integrity(database, key=key)
            if problem != "ok":
                notice = _quarantine(database, app_paths.backups, problem, key)
        try:
            db = open_database(database, url=url, backups=app_paths.backups, key=key)
        except CorruptDatabaseError as exc:
            if url is not None or not database.exists():
                raise
            notice = _quarantine(database, app_paths.backups, str(exc.__cause__ or exc), key)
            key = encryption_service.database_key(app_paths, settings)
            db = open_database(database, backups=app_paths.backups, key=key)
        repo = Repository(db)
        interrupted = repo.mark_interrupted()
        if interrupted:
            log.warning("marked %d reply(ies) left streaming as interrupted", interrupted)
        return cls(
            paths=app_paths,
            settings=settings,
            repo=repo,
            interrupted_on_open=interrupted,
            notice=notice,
            db_key=key,
        )

    def save_settings(self) -> None:
        settings_io.save(self.settings, self.paths.settings_file)

    def start_index_upkeep(self) -> None:
        """Index and merge for search in the background from now on (the window does this)."""
        if self.upkeep is None and IndexUpkeep.applies_to(self.repo.db):
            self.upkeep = IndexUpkeep(self.repo)
            self.repo.after_write = self.upkeep.notify
            self.upkeep.start()

    def close(self) -> None:
        if self.upkeep is not None:
            self.repo.after_write = None
            self.upkeep.stop()
            self.upkeep = None
        self.repo.close()

    def request_restore(self, name: str) -> None:
        """Put the backup ``name`` in place the next time the workspace is opened.

        Not now: the window's threads each hold a connection to the file, and
        a database is never replaced under an open connection.
        """
        source = self.paths.backups / Path(name).name
        if not source.is_file():
            raise StorageError(f"There is no backup named {name}.")
        (self.paths.data / RESTORE_REQUEST).write_text(source.name, encoding="utf-8")

    def begin_session(self) -> None:
        """Note that a window has this workspace open (see last_session_ended_cleanly)."""
        (self.paths.data / SESSION_MARKER).touch()

    def end_session(self, *, clean: bool = True) -> None:
        """Note a normal exit; ``clean=False`` keeps the marker so the next start checks."""
        if clean:
            (self.paths.data / SESSION_MARKER).unlink(missing_ok=True)

    def integrity_problem(self) -> str | None:
        """None when SQLite's quick_check finds the database sound, else what it found.

        Reads through its own read-only connection, so it can run in a thread
        while the window uses the database.
        """
        database = self.paths.database
        if self.repo.db.database != str(database) or not database.exists():
            return None  # a --db-url database or an in-memory one: not ours to check
        problem = backup.integrity(database, key=self.db_key)
        return None if problem == "ok" else problem


def _apply_restore_request(app_paths: paths.AppPaths, key: str | None) -> str | None:
    """Restore the backup a window asked for before it closed; say what happened."""
    request = app_paths.data / RESTORE_REQUEST
    if not request.exists():
        return None
    name = Path(request.read_text(encoding="utf-8").strip()).name
    request.unlink()
    try:
        moved = backup.restore(app_paths.backups / name, app_paths.database, key=key)
    except StorageError as exc:
        log.error("restoring %s failed: %s", name, exc)
        return f"The backup {name} could not be restored: {exc.message} Nothing was changed."
    log.info("restored %s; the replaced database is %s", name, moved)
    kept = f" The database it replaced was kept as {moved.name}." if moved else ""
    return f"Restored the backup {name}.{kept}"


def _apply_encryption_setting(
    app_paths: paths.AppPaths, settings: settings_io.Settings
) -> str | None:
    """Encrypt or decrypt the database as the setting asks; a failure is told, not fatal."""
    try:
        encryption_service.apply_setting(app_paths, settings)
    except UserFacingError as exc:
        log.warning("encryption setting not applied: %s", exc)
        return f"The encryption setting could not be applied: {exc.message}"
    return None


def _quarantine(database: Path, backups: Path, problem: str, key: str | None = None) -> str:
    moved = backup.quarantine(database)
    log.error("database %s is damaged (%s); moved to %s", database, problem, moved)
    good = [b for b in backup.list_backups(backups) if backup.integrity(b.path, key=key) == "ok"]
    offer = (
        f" The newest good backup is {good[0].name} ({good[0].created_at:%Y-%m-%d %H:%M} UTC): "
        f"restore it with `desktop-chat backup restore {good[0].name}` or File → Restore a backup."
        if good
        else " There is no backup to restore."
    )
    return (
        f"Your conversation database could not be read ({problem}). It was moved to "
        f"{moved} and nothing was deleted; a new empty database was started.{offer}"
    )


_KEY_LIKE = re.compile(r"(sk-[A-Za-z0-9_\-]{6})[A-Za-z0-9_\-]+|(Bearer\s+)\S+")


def redact(text: str) -> str:
    """``text`` with every API key this process knows, and anything key-like, blanked out."""
    from desktop_chat import secrets

    for key in secrets.known_keys():
        text = text.replace(key, "[redacted]")
    return _KEY_LIKE.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", text)


class RedactSecrets(logging.Filter):
    """Blank out API keys in every log record, whatever library wrote it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def setup_logging(log_file: Path, *, debug: bool = False) -> None:
    """Log to a private file in the log dir; tracebacks go there, never to the terminal."""
    fd = os.open(log_file, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
    os.close(fd)
    if log_file.stat().st_mode & 0o077:
        log_file.chmod(0o600)
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
