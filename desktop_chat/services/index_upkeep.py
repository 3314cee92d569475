"""Merge the full-text index in the background, a few pages at a time.

FTS5 would otherwise merge inside a user's write, and after a bulk import that
write rewrites the import's whole index while holding the write lock (seconds;
see migration m005). The window runs this thread; CLI commands, which write
only by importing, leave the merging to the next window.
"""

from __future__ import annotations

import logging
import threading
import time

import peewee

from desktop_chat.storage import search

log = logging.getLogger(__name__)


class IndexUpkeep:
    """A daemon thread that merges the message index whenever the database changed.

    It merges ``pages`` pages per step, pausing ``pause`` seconds between steps
    so waiting writers get the lock, until nothing is left to merge. It looks
    when ``notify`` is called (after each of this process's writes) and every
    ``interval`` seconds (SQLite's ``data_version``, which other processes'
    commits change too, such as an import by the CLI).
    """

    def __init__(
        self,
        db: peewee.Database,
        *,
        pages: int = 100,
        pause: float = 0.02,
        interval: float = 5.0,
    ) -> None:
        self._db = db
        self._pages = pages
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
            self._thread.join()

    def _run(self) -> None:
        seen = None
        try:
            while not self._stopping:
                version = self._db.execute_sql("PRAGMA data_version").fetchone()[0]
                if version != seen:
                    seen = version
                    self._merge_all()
                self._wake.wait(self._interval)
                self._wake.clear()
        except peewee.DatabaseError as exc:  # never fatal: FTS5 merges on its own then
            log.warning("full-text index upkeep stopped: %s", exc)
        finally:
            self._db.close()  # this thread's connection only

    def _merge_all(self) -> None:
        while not self._stopping:
            try:
                merged = search.merge_step(self._db, self._pages)
            except peewee.OperationalError as exc:  # busy or locked: try again next time
                log.info("full-text index merge deferred: %s", exc)
                return
            if not merged:
                return
            time.sleep(self._pause)
