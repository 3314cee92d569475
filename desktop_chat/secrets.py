"""Secrets in the OS keyring: API keys (one per provider, ``OPENAI_API_KEY`` overrides)
and the database encryption key.

Keys never touch the database, the settings file, logs or exports.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from desktop_chat.errors import SecretStoreError

SERVICE = "desktop-chat"
ENV_KEY = "OPENAI_API_KEY"

_NO_BACKEND = (
    "No usable OS keyring was found, so the API key cannot be stored safely. "
    "Install and unlock a Secret Service (e.g. `sudo apt install gnome-keyring`), "
    f"or set the {ENV_KEY} environment variable instead."
)


def _keyring() -> ModuleType:
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring) or backend.priority <= 0:
        raise SecretStoreError(_NO_BACKEND)
    return keyring


_seen: set[str] = set()  # keys this process has handled, for log redaction


def known_keys() -> set[str]:
    """Every API key this process has read or stored (so logs can blank them out)."""
    return set(_seen)


def get_api_key(provider: str = "openai") -> str | None:
    """The key to use: ``$OPENAI_API_KEY`` if set, else the keyring's, else None."""
    from_env = os.environ.get(ENV_KEY)
    if from_env:
        _seen.add(from_env)
        return from_env
    try:
        keyring = _keyring()
        key: str | None = keyring.get_password(SERVICE, provider)
        if key:
            _seen.add(key)
        return key
    except SecretStoreError:
        return None
    except Exception as exc:  # keyring backends raise many types (dbus, locked, ...)
        raise SecretStoreError(
            f"The OS keyring could not be read ({type(exc).__name__}). {_NO_BACKEND}"
        ) from exc


def set_api_key(provider: str, key: str) -> None:
    _seen.add(key)
    keyring = _keyring()
    try:
        keyring.set_password(SERVICE, provider, key)
    except Exception as exc:
        raise SecretStoreError(
            f"The OS keyring refused to store the key ({type(exc).__name__}). {_NO_BACKEND}"
        ) from exc


def delete_api_key(provider: str) -> bool:
    """Remove the stored key; False if there was none."""
    import keyring.errors

    keyring_module = _keyring()
    try:
        keyring_module.delete_password(SERVICE, provider)
    except keyring.errors.PasswordDeleteError:
        return False
    return True


# -- the database encryption key ------------------------------------------------

_NO_DB_BACKEND = (
    "No usable OS keyring was found, so the database encryption key cannot be stored or read. "
    "Install and unlock a Secret Service (e.g. `sudo apt install gnome-keyring`)."
)


def _database_entry(database: Path) -> str:
    """The keyring user name for one database file (one key per data dir)."""
    return f"database:{database.resolve()}"


def get_database_key(database: Path) -> str | None:
    """The encryption key of ``database`` from the keyring, or None when there is none."""
    keyring = _keyring_for_database()
    try:
        key: str | None = keyring.get_password(SERVICE, _database_entry(database))
    except Exception as exc:
        raise SecretStoreError(
            f"The OS keyring could not be read ({type(exc).__name__}). {_NO_DB_BACKEND}"
        ) from exc
    if key:
        _seen.add(key)
    return key or None


def ensure_database_key(database: Path) -> str:
    """The key of ``database``, generated (32 random bytes, hex) and stored if missing."""
    key = get_database_key(database)
    if key:
        return key
    key = os.urandom(32).hex()  # what secrets.token_hex does; that module loads OpenSSL
    _seen.add(key)
    try:
        _keyring_for_database().set_password(SERVICE, _database_entry(database), key)
    except Exception as exc:
        raise SecretStoreError(
            f"The OS keyring refused to store the database key ({type(exc).__name__}). "
            f"{_NO_DB_BACKEND}"
        ) from exc
    return key


def _keyring_for_database() -> ModuleType:
    try:
        return _keyring()
    except SecretStoreError as exc:
        raise SecretStoreError(_NO_DB_BACKEND) from exc
