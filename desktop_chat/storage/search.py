"""Full-text search over message text and conversation titles (SQLite FTS5, trigram).

Hits come newest first: FTS5 walks its index in rowid order and stops at the
limit, so a query stays fast even when it matches a large part of the history
(ranking by bm25 would have to score every match first). Snippets are cut
here from the matched text: FTS5's ``snippet()`` is quadratic on repetitive
text (a message of a million "x" took minutes), this is linear.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

import peewee

from desktop_chat.core.types import Role, SearchHit, from_timestamp
from desktop_chat.storage.text import storable

START, END = "\x02", "\x03"  # highlight markers; never typed, stripped from the text
_TRIGRAM = 3  # the trigram tokenizer only indexes runs of 3+ characters


# An import of this many messages or more commits before they are indexed; the
# window's background upkeep (or the CLI, right after) indexes them in steps.
DEFER_INDEXING_AT = 5_000


@contextlib.contextmanager
def bulk_indexing(db: peewee.Database, first_id: int) -> Iterator[None]:
    """Index the messages inserted inside the block in one pass at its end, or later.

    Call inside a write transaction. Feeding FTS5 one row at a time from the
    insert trigger is about three times slower than one ``INSERT ... SELECT``
    over the new rows, so the trigger is dropped for the block and put back
    (DDL is transactional in SQLite: a failure rolls both back, and other
    connections never see the trigger missing). Messages inserted in the
    block must have ids >= ``first_id``.

    Indexing is most of a large import's time (the trigram index holds every
    three-character sequence), so from ``DEFER_INDEXING_AT`` messages on only
    their id range is noted, in the same transaction, for ``index_pending``.
    """
    (trigger,) = db.execute_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'message_fts_insert'"
    ).fetchone()
    db.execute_sql("DROP TRIGGER message_fts_insert")
    yield
    (last_id,) = db.execute_sql("SELECT MAX(id) FROM message").fetchone()
    added = 0 if last_id is None else last_id - first_id + 1
    if added >= DEFER_INDEXING_AT:
        db.execute_sql(
            "INSERT INTO message_fts_pending (first_id, last_id) VALUES (?, ?)",
            (first_id, last_id),
        )
    elif added > 0:
        _index_range(db, first_id, last_id)
    db.execute_sql(trigger)


def next_free_id(db: peewee.Database) -> int:
    """The first message id above every stored message and every waiting range.

    Ids are SQLite's (the largest + 1), so deleting the newest messages frees ids
    that a range may still cover; an import must not note them a second time.
    """
    (last,) = db.execute_sql(
        "SELECT MAX(COALESCE((SELECT MAX(id) FROM message), 0), "
        "COALESCE((SELECT MAX(last_id) FROM message_fts_pending), 0))"
    ).fetchone()
    return int(last) + 1


def _index_range(db: peewee.Database, first_id: int, last_id: int) -> None:
    db.execute_sql(
        "INSERT INTO message_fts (rowid, content) "
        "SELECT id, content FROM message WHERE id BETWEEN ? AND ?",
        (first_id, last_id),
    )


def pending_count(db: peewee.Database) -> int:
    """How many message ids wait to be indexed (some may have been deleted since)."""
    (count,) = db.execute_sql(
        "SELECT COALESCE(SUM(last_id - first_id + 1), 0) FROM message_fts_pending"
    ).fetchone()
    return int(count)


def index_pending(db: peewee.Database, chars: int) -> int:
    """Index waiting messages, oldest first, about ``chars`` characters of their text
    (at least one message); how many message ids it covered, 0 when none wait.

    Measured in text, not messages: indexing takes as long as the text is long, and
    the caller holds the write lock meanwhile. Call inside a write transaction: the
    index and the waiting ranges change together.
    """
    row = db.execute_sql(
        "SELECT first_id, last_id FROM message_fts_pending ORDER BY first_id LIMIT 1"
    ).fetchone()
    if row is None:
        return 0
    first_id, last_id = row
    upto, taken = last_id, 0
    cursor = db.execute_sql(
        "SELECT id, length(content) FROM message WHERE id BETWEEN ? AND ? ORDER BY id",
        (first_id, last_id),
    )
    for message_id, length in cursor:
        taken += length
        if taken >= chars:
            upto = message_id
            break
    cursor.close()
    _index_range(db, first_id, upto)
    if upto == last_id:
        db.execute_sql("DELETE FROM message_fts_pending WHERE first_id = ?", (first_id,))
    else:
        db.execute_sql(
            "UPDATE message_fts_pending SET first_id = ? WHERE first_id = ?", (upto + 1, first_id)
        )
    return int(upto - first_id + 1)


def merge_step(db: peewee.Database, pages: int) -> bool:
    """Merge the message index's segments by about ``pages`` pages; False when none needed it.

    Each step is its own short write transaction, so a message write waits for
    one step at most (see migration m005). FTS5 changes two or more rows when it
    merged something, none or one when nothing was due.
    """
    connection = db.connection()
    before = connection.total_changes
    db.execute_sql("INSERT INTO message_fts (message_fts, rank) VALUES ('merge', ?)", (pages,))
    return bool(connection.total_changes - before >= 2)


def _terms(query: str) -> list[str]:
    """Whitespace-separated terms; "quoted phrases" stay whole."""
    cleaned = storable(query).replace("\x00", " ").replace(START, "").replace(END, "")
    terms = [a or b for a, b in re.findall(r'"([^"]+)"|(\S+)', cleaned)]
    return [t for t in terms if t.strip()]


def _match_expression(terms: list[str]) -> str:
    return " AND ".join('"' + term.replace('"', '""') + '"' for term in terms)


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _spans(marked: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Strip highlight markers and return the plain text with the marked spans."""
    text: list[str] = []
    spans: list[tuple[int, int]] = []
    start = 0
    length = 0
    for piece in re.split(f"([{START}{END}])", marked):
        if piece == START:
            start = length
        elif piece == END:
            spans.append((start, length))
        else:
            text.append(piece)
            length += len(piece)
    return "".join(text), tuple(spans)


def _mark(text: str, terms: list[str]) -> str:
    """Put highlight markers around every case-insensitive occurrence of the terms."""
    pattern = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.sub(pattern, lambda m: f"{START}{m.group(0)}{END}", text, flags=re.IGNORECASE)


def _plain_snippet(content: str, terms: list[str], width: int = 100) -> str:
    """About ``width`` characters around the first match, every term marked."""
    # Centre on the whole query if it occurs, else on the longest term.
    first = last = 0
    for candidate in (" ".join(terms), *sorted(terms, key=len, reverse=True)):
        match = re.search(re.escape(candidate), content, re.IGNORECASE)
        if match:
            first, last = match.span()
            break
    begin = max(0, first - width // 3)
    if begin:  # start at a word, not inside one ("…uestion"), where words have spaces
        space = re.search(r"\s", content[begin : min(first, begin + 20)])
        begin += space.end() if space else 0
    end = max(begin + width, last)  # a long phrase is shown whole, so it can be marked
    window = _mark(content[begin:end], terms)
    prefix = "…" if begin else ""
    suffix = "…" if end < len(content) else ""
    return prefix + window.replace("\n", " ") + suffix


def search(db: peewee.Database, query: str, *, limit: int = 50) -> list[SearchHit]:
    """Conversations whose title matches, then messages, newest first."""
    terms = _terms(query)
    if not terms:
        return []
    long_terms = [t for t in terms if len(t) >= _TRIGRAM]
    short_terms = [t for t in terms if len(t) < _TRIGRAM]
    # One read transaction, so every query sees the same moment: the index and the
    # messages still waiting for it change together in the background.
    with db.atomic():
        hits = _title_hits(db, terms, long_terms, short_terms, limit)
        hits += _message_hits(db, terms, long_terms, short_terms, limit - len(hits))
    return hits


def _title_hits(
    db: peewee.Database,
    terms: list[str],
    long_terms: list[str],
    short_terms: list[str],
    limit: int,
) -> list[SearchHit]:
    if limit <= 0:
        return []
    likes = " AND ".join("c.title LIKE ? ESCAPE '\\'" for _ in short_terms)
    params: list[Any] = [_like(t) for t in short_terms]
    if long_terms:
        sql = (
            "SELECT c.uuid, c.title, c.updated_at FROM conversation_fts f "
            "JOIN conversation c ON c.id = f.rowid WHERE conversation_fts MATCH ? "
            + (f"AND {likes} " if likes else "")
            + "ORDER BY f.rowid DESC LIMIT ?"
        )
        params = [_match_expression(long_terms), *params, min(limit, 10)]
    else:
        sql = f"SELECT c.uuid, c.title, c.updated_at FROM conversation c WHERE {likes} " + (
            "ORDER BY c.id DESC LIMIT ?"
        )
        params = [*params, min(limit, 10)]
    hits = []
    for uuid, title, updated in db.execute_sql(sql, params).fetchall():
        snippet, spans = _spans(_mark(title, terms))
        hits.append(SearchHit(uuid, title, None, None, snippet, spans, from_timestamp(updated)))
    return hits


def _message_hits(
    db: peewee.Database,
    terms: list[str],
    long_terms: list[str],
    short_terms: list[str],
    limit: int,
) -> list[SearchHit]:
    if limit <= 0:
        return []
    if long_terms:
        likes = "".join(" AND m.content LIKE ? ESCAPE '\\'" for _ in short_terms)
        sql = (
            f"SELECT {_HIT_COLUMNS} FROM message_fts f JOIN message m ON m.id = f.rowid "
            "JOIN conversation c ON c.id = m.conversation_id "
            f"WHERE message_fts MATCH ?{likes}{_VISIBLE} ORDER BY f.rowid DESC LIMIT ?"
        )
        params = [_match_expression(long_terms), *[_like(t) for t in short_terms], limit]
        rows = db.execute_sql(sql, params).fetchall()
        # Messages of a large import that the index has not caught up with yet are
        # read directly (LIKE folds ASCII case only; the index folds all).
        waiting = db.execute_sql("SELECT first_id, last_id FROM message_fts_pending").fetchall()
        for first_id, last_id in waiting:
            rows += _scan(db, terms, limit, "m.id BETWEEN ? AND ?", [first_id, last_id])
        if waiting:
            rows = sorted(rows, key=lambda row: int(row[0]), reverse=True)[:limit]
    else:
        rows = _scan(db, short_terms, limit)
    hits = []
    for _, message_id, conv_id, title, role, created, text in rows:
        snippet, spans = _spans(_plain_snippet(text, terms))
        hits.append(
            SearchHit(
                conv_id, title, message_id, Role(role), snippet, spans, from_timestamp(created)
            )
        )
    return hits


_HIT_COLUMNS = "m.id, m.uuid, c.uuid, c.title, m.role, m.created_at, m.content"
# Hidden messages (e.g. imported custom instructions) are kept, not shown.
_VISIBLE = " AND (m.metadata = '{}' OR json_extract(m.metadata, '$.hidden') IS NOT 1)"


def _scan(
    db: peewee.Database, terms: list[str], limit: int, where: str = "1", params: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """Messages containing every term, read without the index, newest first."""
    likes = "".join(" AND m.content LIKE ? ESCAPE '\\'" for _ in terms)
    sql = (
        f"SELECT {_HIT_COLUMNS} FROM message m JOIN conversation c ON c.id = m.conversation_id "
        f"WHERE {where}{likes}{_VISIBLE} ORDER BY m.id DESC LIMIT ?"
    )
    return list(db.execute_sql(sql, [*params, *[_like(t) for t in terms], limit]).fetchall())
