"""Errors a user can act on, as opposed to bugs.

A :class:`UserFacingError` carries a message written for the user ("The API key
was rejected (401). Open Settings → Providers to replace it."). Anything else
that escapes is a bug: it is logged with its traceback and shown once.
"""

from __future__ import annotations


class UserFacingError(Exception):
    """An error whose message is meant for the user, in words they can act on.

    ``exit_code`` is what the CLI exits with: 1 for a failure the user can act
    on, 2 for bad usage or bad input.
    """

    exit_code = 1

    def __init__(self, message: str, *, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class BadInputError(UserFacingError):
    """The user gave us input we cannot use (a bad file, an unknown id, ...)."""

    exit_code = 2


class NotFoundError(BadInputError):
    """A conversation or message the user named does not exist."""


class StorageError(UserFacingError):
    """The database cannot be read or written (disk full, read-only, corrupt)."""


class ContextTooLargeError(UserFacingError):
    """The system prompt, pinned messages and the new message alone exceed the window."""


class SecretStoreError(UserFacingError):
    """The OS keyring is missing or refused to store or read a key."""


class ApiError(UserFacingError):
    """A request to a model provider failed.

    ``kind`` is a stable machine-readable tag ("auth", "not_found", "rate_limit",
    "quota", "context_length", "bad_request", "server", "connection", "timeout",
    "stalled", "malformed", "incomplete", "empty") so callers can decide on
    retries and tests can assert without matching prose. ``status`` is the HTTP
    status when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status: int | None = None,
        details: str | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.kind = kind
        self.status = status


class CancelledError(UserFacingError):
    """The user cancelled a long operation; nothing it started was kept."""


class CorruptDatabaseError(StorageError):
    """The database file is damaged or is not a database at all."""


class EncryptedDatabaseError(StorageError):
    """The database is encrypted and the key is missing or does not open it.

    Not a :class:`CorruptDatabaseError`: the file is not moved aside, since the
    right key (or the optional SQLCipher module) makes it readable again.
    """
