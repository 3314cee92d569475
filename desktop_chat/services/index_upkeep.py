"""Keep the full-text index up to date and merged, in the background, in small steps.

A large import commits before its messages are indexed (migration m006); this
thread indexes them a few hundred kilobytes of text at a time. FTS5 would also merge segments
inside a user's write, and after a bulk import that write rewrites the import's
whole index while holding the write lock (seconds; migration m005); this thread
merges a few pages at a time instead. The window runs it; the CLI indexes what
it imports before it exits and leaves the merging to the next window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import peewee

from desktop_chat.errors import StorageError
from desktop_chat.storage import Repository

log = logging.getLogger(__name__)


class IndexUpkeep:
    """A daemon thread that indexes and merges whenever the database changed.

    Each step, its own short transaction (~25 ms here), indexes ``chars`` characters
    of waiting messages or merges ``pages`` pages; it pauses ``pause`` seconds
    between steps so waiting writers get the lock, until nothing is left to do.
    It waits at most ``busy`` seconds for the lock itself (another process may
    hold it for long), then tries again later. It looks
    when ``notify`` is called (after each of this process's writes) and every
    ``interval`` seconds (SQLite's ``data_version``, which other processes'
    commits change too, such as an import by the CLI).
    """

    def __init__(
        self,
        repo: Repository,
        *,
        chars: int = 128_000,
        pages: int = 100,
        pause: float = 0.05,
        interval: float = 5.0,
        busy: float = 0.2,
    ) -> None:
        self._repo = repo
        self._chars = chars
        self._pages = pages
        self._busy = busy
        self._pause = pause
        self._interval = interval
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="index-upkeep", daemon=True)

    @staticmethod
    def applies_to(db: peewee.Database) -> bool:
        """Only a SQLite file has the index (an in-memory database is per connection)."""
        return isinstance(db, peewee.SqliteDatabase) and db.database != ":memory:"

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """The database was written: look soon."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the current step and end the thread (a step is short)."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)  # a daemon: never hold up quitting for long

    @property
    def alive(self) -> bool:
        """Running (it ends only when stopped, or when the database cannot be read)."""
        return self._thread.is_alive()

    def _run(self) -> None:
        seen = None
        try:
            self._repo.db.execute_sql(f"PRAGMA busy_timeout = {int(self._busy * 1000)}")
            while not self._stopping:
                try:
                    version = self._repo.db.execute_sql("PRAGMA data_version").fetchone()[0]
                except peewee.OperationalError as exc:  # e.g. locked a moment: next time
                    log.info("full-text index upkeep deferred: %s", exc)
                    version = None
                if version is not None and version != seen:
                    done = self._steps(
                        lambda: self._repo.index_pending(self._chars) > 0
                    ) and self._steps(lambda: self._repo.merge_search_index(self._pages))
                    seen = version if done else None  # None: try again after the interval
                self._wake.wait(self._interval)
                self._wake.clear()
        except peewee.DatabaseError as exc:  # damaged: search still reads what waits
            log.warning("full-text index upkeep stopped: %s", exc)
        finally:
            self._repo.close()  # this thread's connection only

    def _steps(self, step: Callable[[], bool]) -> bool:
        """Run ``step`` until it has nothing left to do; False if it could not go on."""
        while not self._stopping:
            try:
                more = step()
            except (peewee.OperationalError, StorageError) as exc:  # busy, disk full
                log.info("full-text index upkeep deferred: %s", exc)
                return False
            if not more:
                return True
            time.sleep(self._pause)
        return False
