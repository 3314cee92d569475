"""Encryption at rest as the CLI and Preferences use it: status, turning it on or off.

The file itself says whether it is encrypted (storage.encryption.is_encrypted);
the setting ``encrypt_database`` says what the user wants, and the key lives
in the OS keyring under an entry named after the database file. Turning
encryption on or off converts the database and every backup in the backups
folder, so no clear copy of the history is left behind by the app.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from desktop_chat import paths as paths_mod
from desktop_chat import secrets
from desktop_chat.errors import EncryptedDatabaseError, StorageError, UserFacingError
from desktop_chat.services import settings as settings_io
from desktop_chat.storage import backup, encryption

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncryptionStatus:
    available: bool  # the SQLCipher module is installed
    wanted: bool  # the setting
    encrypted: bool  # the database file as it is now

    @property
    def pending(self) -> bool:
        return self.wanted != self.encrypted

    def describe(self) -> str:
        state = "encrypted (key in the OS keyring)" if self.encrypted else "not encrypted"
        line = f"The database is {state}."
        if self.pending:
            line += (
                " Encryption is turned on and will be applied when the database is next opened."
                if self.wanted
                else " Encryption is turned off and will be removed when it is next opened."
            )
        if not self.available and not self.encrypted:
            line += f" {encryption.NOT_INSTALLED}"
        return line


def status(app_paths: paths_mod.AppPaths, settings: settings_io.Settings) -> EncryptionStatus:
    encrypted = encryption.is_encrypted(app_paths.database)
    wanted = encrypted if settings.encrypt_database is None else settings.encrypt_database
    return EncryptionStatus(encryption.available(), wanted, encrypted)


def database_key(app_paths: paths_mod.AppPaths, settings: settings_io.Settings) -> str | None:
    """The key to open the database with; None to open it as plain SQLite.

    The keyring is only asked when the file is encrypted or a new encrypted one
    is to be made, so plain databases start without loading it.
    """
    database = app_paths.database
    if encryption.is_encrypted(database):
        key = secrets.get_database_key(database)
        if key is None and settings.encrypt_database:
            raise EncryptedDatabaseError(
                f"The database at {database} is encrypted, but its key is not in the OS "
                "keyring (it is stored there under the service `desktop-chat`). Unlock the "
                "keyring or restore its entry; the database was left untouched."
            )
        return key  # None: not known to be encrypted, so it is handled as damaged
    fresh = not database.exists() or database.stat().st_size == 0
    if fresh and settings.encrypt_database:
        encryption.driver()
        return secrets.ensure_database_key(database)
    return None


def apply_setting(app_paths: paths_mod.AppPaths, settings: settings_io.Settings) -> bool:
    """Convert the (closed) database if it differs from the setting; True if it was converted."""
    database = app_paths.database
    if settings.encrypt_database is None or not database.exists():
        return False
    if database.stat().st_size == 0 or encryption.is_encrypted(database) == bool(
        settings.encrypt_database
    ):
        return False
    _convert_all(app_paths, encrypt=bool(settings.encrypt_database))
    return True


def set_encryption(
    app_paths: paths_mod.AppPaths, settings: settings_io.Settings, *, enabled: bool
) -> bool:
    """Turn encryption on or off now, with the database closed; True if anything changed.

    The setting is saved first so that a crash half-way is finished at the next
    start; if the conversion fails it is put back and the error raised.
    """
    previous = settings.encrypt_database
    if enabled:
        encryption.driver()
    settings.encrypt_database = enabled
    settings_io.save(settings, app_paths.settings_file)
    try:
        return apply_setting(app_paths, settings)
    except BaseException:
        settings.encrypt_database = previous
        settings_io.save(settings, app_paths.settings_file)
        raise


def _convert_all(app_paths: paths_mod.AppPaths, *, encrypt: bool) -> None:
    database = app_paths.database
    if encrypt:
        key = secrets.ensure_database_key(database)
    else:
        found = secrets.get_database_key(database)
        if found is None:
            raise EncryptedDatabaseError(
                "The database is encrypted, but its key is not in the OS keyring, "
                "so it cannot be decrypted."
            )
        key = found
    key_from, key_to = (None, key) if encrypt else (key, None)
    encryption.convert(database, key_from=key_from, key_to=key_to)
    log.info("database %s", "encrypted" if encrypt else "decrypted")
    # Backups follow the database; one that cannot be converted is left as it is.
    for item in backup.list_backups(app_paths.backups):
        if encryption.is_encrypted(item.path) == encrypt:
            continue
        try:
            encryption.convert(item.path, key_from=key_from, key_to=key_to)
        except UserFacingError as exc:
            log.warning("backup %s was not converted: %s", item.name, exc)


def backups_left_behind(app_paths: paths_mod.AppPaths, *, encrypted: bool) -> list[str]:
    """Names of backups whose encryption differs from the database's."""
    try:
        return [
            b.name
            for b in backup.list_backups(app_paths.backups)
            if encryption.is_encrypted(b.path) != encrypted
        ]
    except OSError as exc:
        raise StorageError(f"The backups folder cannot be read: {exc}.") from exc
