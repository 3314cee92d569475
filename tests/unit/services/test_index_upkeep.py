"""The window's background merging of the full-text index (services.index_upkeep)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import peewee
import pytest

from desktop_chat.core.types import Role
from desktop_chat.services.index_upkeep import IndexUpkeep
from desktop_chat.services.workspace import Workspace
from desktop_chat.storage import search
from tests.unit.storage.sample import imported_history


def merge_due(database: Path) -> bool:
    """Whether FTS5 has merge work waiting: one step tried and rolled back."""
    conn = sqlite3.connect(database, isolation_level=None, timeout=10)
    try:
        conn.execute("BEGIN IMMEDIATE")
        before = conn.total_changes
        conn.execute("INSERT INTO message_fts (message_fts, rank) VALUES ('merge', 1)")
        due = conn.total_changes - before >= 2
        conn.execute("ROLLBACK")
        return due
    finally:
        conn.close()


def wait_for(condition: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_window_indexes_and_merges_an_import_in_the_background(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = Workspace.open(data_dir)
    repo = workspace.repo
    imported_history(repo, 2000)  # indexed as it is imported: large segments
    monkeypatch.setattr(search, "DEFER_INDEXING_AT", 1000)
    imported_history(repo, 2000)  # left for later
    assert repo.count_unindexed() == 2000
    conversation = repo.create_conversation()
    parent = None
    for n in range(20):  # enough small segments beside the import's to call for a merge
        parent = repo.append_message(conversation.id, parent, Role.USER, f"after {n}").id
    database = workspace.paths.database
    assert merge_due(database)

    workspace.start_index_upkeep()
    wait_for(lambda: repo.count_unindexed() == 0 and not merge_due(database))
    # Writes while it runs are merged as well, and the index stays whole.
    for n in range(20, 40):
        parent = repo.append_message(conversation.id, parent, Role.USER, f"after {n}").id
    wait_for(lambda: not merge_due(database))
    assert [h.message_id for h in repo.search("after 39")] == [parent]
    for order in ("", "DESC"):  # the first import's and the second's
        first, text = repo.db.execute_sql(
            "SELECT uuid, content FROM message WHERE conversation_id IN "
            f"(SELECT id FROM conversation WHERE title LIKE 'Chat %') ORDER BY id {order}"
        ).fetchone()
        assert first in [h.message_id for h in repo.search(f'"{text[:40]}"')]
    repo.db.execute_sql("INSERT INTO message_fts (message_fts, rank) VALUES ('integrity-check', 1)")

    upkeep = workspace.upkeep
    assert upkeep is not None
    workspace.close()
    assert workspace.upkeep is None
    assert repo.after_write is None
    assert not upkeep._thread.is_alive()


def test_a_database_in_memory_or_on_a_server_gets_no_upkeep() -> None:
    assert not IndexUpkeep.applies_to(peewee.SqliteDatabase(":memory:"))
    assert IndexUpkeep.applies_to(peewee.SqliteDatabase("/tmp/x.sqlite3"))
    assert not IndexUpkeep.applies_to(peewee.PostgresqlDatabase("chats"))


def test_stop_is_prompt_while_idle(data_dir: Path) -> None:
    workspace = Workspace.open(data_dir)
    workspace.start_index_upkeep()
    started = time.monotonic()
    workspace.close()
    assert time.monotonic() - started < 2  # not the 5 s poll interval
