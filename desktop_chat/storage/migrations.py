"""Named, ordered, append-only schema migrations, recorded in the ``migrations`` table.

Each migration is frozen SQL: never edit one that has shipped; add a new one.
``migrate`` applies the missing ones in order, each in its own transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import peewee

MigrationFn = Callable[[peewee.Database], None]
MIGRATIONS: list[tuple[str, MigrationFn]] = []


def migration(fn: MigrationFn) -> MigrationFn:
    """Register ``fn`` as the next migration, named after the function."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def _run(db: peewee.Database, script: str) -> None:
    """Execute a multi-statement script inside the caller's transaction.

    ``executescript`` would commit first, so statements are split here; trigger
    bodies contain semicolons, hence ``complete_statement`` decides the ends.
    """
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n;"):
                db.execute_sql(statement)
            statement = ""


@migration
def m001_initial(db: peewee.Database) -> None:
    _run(
        db,
        """
        CREATE TABLE conversation (
            id INTEGER PRIMARY KEY,
            uuid TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            pinned INTEGER NOT NULL DEFAULT 0,
            archived INTEGER NOT NULL DEFAULT 0,
            model TEXT,
            provider TEXT,
            system_prompt TEXT NOT NULL DEFAULT '',
            params TEXT NOT NULL DEFAULT '{}',
            memory_policy TEXT NOT NULL DEFAULT '{}',
            current_leaf_id INTEGER,
            message_count INTEGER NOT NULL DEFAULT 0,
            summary TEXT,
            summary_upto_id INTEGER,
            metadata TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX conversation_list
            ON conversation (archived, pinned DESC, updated_at DESC, id DESC);
        CREATE TABLE message (
            id INTEGER PRIMARY KEY,
            uuid TEXT NOT NULL UNIQUE,
            conversation_id INTEGER NOT NULL
                REFERENCES conversation (id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES message (id),
            depth INTEGER NOT NULL DEFAULT 0,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            created_at REAL NOT NULL,
            status TEXT NOT NULL DEFAULT 'complete',
            model TEXT,
            token_count INTEGER,
            pinned INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            error TEXT,
            metadata TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX message_conversation ON message (conversation_id, id);
        CREATE INDEX message_parent ON message (parent_id);
        CREATE INDEX message_streaming ON message (status) WHERE status = 'streaming'
        """,
    )


@migration
def m002_full_text_search(db: peewee.Database) -> None:
    # Trigram so substrings match in languages written without spaces (Chinese,
    # Japanese) and inside words; external content keeps one copy of the text.
    _run(
        db,
        """
        CREATE VIRTUAL TABLE message_fts USING fts5(
            content, content='message', content_rowid='id', tokenize='trigram'
        );
        CREATE TRIGGER message_fts_insert AFTER INSERT ON message BEGIN
            INSERT INTO message_fts (rowid, content) VALUES (new.id, new.content);
        END;
        CREATE TRIGGER message_fts_delete AFTER DELETE ON message BEGIN
            INSERT INTO message_fts (message_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
        END;
        CREATE TRIGGER message_fts_update AFTER UPDATE OF content ON message BEGIN
            INSERT INTO message_fts (message_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
            INSERT INTO message_fts (rowid, content) VALUES (new.id, new.content);
        END;
        CREATE VIRTUAL TABLE conversation_fts USING fts5(
            title, content='conversation', content_rowid='id', tokenize='trigram'
        );
        CREATE TRIGGER conversation_fts_insert AFTER INSERT ON conversation BEGIN
            INSERT INTO conversation_fts (rowid, title) VALUES (new.id, new.title);
        END;
        CREATE TRIGGER conversation_fts_delete AFTER DELETE ON conversation BEGIN
            INSERT INTO conversation_fts (conversation_fts, rowid, title)
                VALUES ('delete', old.id, old.title);
        END;
        CREATE TRIGGER conversation_fts_update AFTER UPDATE OF title ON conversation BEGIN
            INSERT INTO conversation_fts (conversation_fts, rowid, title)
                VALUES ('delete', old.id, old.title);
            INSERT INTO conversation_fts (rowid, title) VALUES (new.id, new.title);
        END
        """,
    )


@migration
def m003_full_text_index_memory(db: peewee.Database) -> None:
    # FTS5 buffers new index entries in memory up to "hashsize" bytes (1 MB by
    # default) before writing a segment; a bulk import then writes thousands of
    # small segments and merges them again. 64 MB, used only while one write
    # transaction indexes that much text, makes imports about 1.4x faster.
    db.execute_sql(
        "INSERT INTO message_fts (message_fts, rank) VALUES ('hashsize', ?)", (64 * 1024 * 1024,)
    )


@migration
def m004_full_text_index_merges(db: peewee.Database) -> None:
    # FTS5 merges index segments once 4 of a size exist ("automerge"); over a large
    # history an import then spends most of its time rewriting the same entries.
    # Merging at 16 imports 200,000 messages ~1.3x faster (and the later ones ~2x),
    # while a search reads a few more segments (bench/storage.py: p95 still far
    # below its budget at 1,000,000 messages).
    db.execute_sql("INSERT INTO message_fts (message_fts, rank) VALUES ('automerge', 16)")


@migration
def m005_full_text_index_merges_in_background(db: peewee.Database) -> None:
    # FTS5 finishes a level's merge inside whichever write fills the level to
    # "crisismerge" segments (16). After a bulk import the level holds the import's
    # large segments, so a single message write then rewrote them all: 2-3 s after
    # 50,000 imported messages, 7-9 s after 200,000 (bench/write_stalls.py), holding
    # the write lock throughout. The window merges in small background steps instead
    # (storage.search.merge_step, at 16 segments as automerge does), and a write
    # merges a level whole only at 1,000 segments, which that upkeep never lets happen.
    db.execute_sql("INSERT INTO message_fts (message_fts, rank) VALUES ('usermerge', 16)")
    db.execute_sql("INSERT INTO message_fts (message_fts, rank) VALUES ('crisismerge', 1000)")


@migration
def m006_search_index_follows_large_imports(db: peewee.Database) -> None:
    # A large import commits its messages without indexing them; their id ranges
    # wait here until the index catches up (storage.search.index_pending), and
    # search scans them directly meanwhile. FTS5 must not be told to delete a row
    # it never indexed, nor index one twice, so the triggers skip waiting rows (a
    # new message can take a waiting id when the newest ones were deleted): the
    # index reads their current text when it gets to them.
    _run(
        db,
        """
        CREATE TABLE message_fts_pending (
            first_id INTEGER PRIMARY KEY,
            last_id INTEGER NOT NULL
        );
        DROP TRIGGER message_fts_insert;
        DROP TRIGGER message_fts_delete;
        DROP TRIGGER message_fts_update;
        CREATE TRIGGER message_fts_insert AFTER INSERT ON message
        WHEN NOT EXISTS (
            SELECT 1 FROM message_fts_pending p WHERE new.id BETWEEN p.first_id AND p.last_id
        )
        BEGIN
            INSERT INTO message_fts (rowid, content) VALUES (new.id, new.content);
        END;
        CREATE TRIGGER message_fts_delete AFTER DELETE ON message
        WHEN NOT EXISTS (
            SELECT 1 FROM message_fts_pending p WHERE old.id BETWEEN p.first_id AND p.last_id
        )
        BEGIN
            INSERT INTO message_fts (message_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
        END;
        CREATE TRIGGER message_fts_update AFTER UPDATE OF content ON message
        WHEN NOT EXISTS (
            SELECT 1 FROM message_fts_pending p WHERE old.id BETWEEN p.first_id AND p.last_id
        )
        BEGIN
            INSERT INTO message_fts (message_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
            INSERT INTO message_fts (rowid, content) VALUES (new.id, new.content);
        END
        """,
    )


def applied(db: peewee.Database) -> list[str]:
    """Names of the migrations already applied, in order."""
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    rows = db.execute_sql("SELECT name FROM migrations ORDER BY rowid").fetchall()
    return [row[0] for row in rows]


def pending(db: peewee.Database) -> list[str]:
    done = set(applied(db))
    return [name for name, _ in MIGRATIONS if name not in done]


def migrate(db: peewee.Database) -> list[str]:
    """Apply every pending migration, each atomically; return the names applied."""
    done = set(applied(db))
    ran = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        # IMMEDIATE: two processes starting at once must not both migrate.
        with db.atomic("IMMEDIATE") if isinstance(db, peewee.SqliteDatabase) else db.atomic():
            if name in set(applied(db)):
                continue
            fn(db)
            db.execute_sql(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, time.time())
            )
        ran.append(name)
    return ran
