"""The one API over the database: conversations, message trees, threads, import and export."""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import peewee

from desktop_chat.core.tokens import encoding_name_for
from desktop_chat.core.types import (
    Conversation,
    ConversationLine,
    ConversationTree,
    MemoryPolicy,
    Message,
    MessageStatus,
    Role,
    SearchHit,
    from_timestamp,
)
from desktop_chat.errors import BadInputError, CancelledError, NotFoundError, StorageError
from desktop_chat.storage import search as fts
from desktop_chat.storage.schema import ConversationRow, MessageRow
from desktop_chat.storage.text import json_object, one_line, storable

_UNSET: Any = object()
_CHUNK = 500  # SQLite's variable limit is 32766 since 3.32; stay far below it

_MESSAGE_COLUMNS = (
    "m.uuid, p.uuid, m.role, m.content, m.created_at, m.status, m.model, m.token_count, "
    "m.pinned, m.prompt_tokens, m.completion_tokens, m.error, m.metadata, m.depth"
)
_CONVERSATION_SELECT = (
    "SELECT c.uuid, c.title, c.created_at, c.updated_at, c.pinned, c.archived, c.model, "
    "c.provider, c.system_prompt, c.params, c.memory_policy, leaf.uuid, c.message_count, "
    "c.summary, upto.uuid, c.metadata "
    "FROM conversation c "
    "LEFT JOIN message leaf ON leaf.id = c.current_leaf_id "
    "LEFT JOIN message upto ON upto.id = c.summary_upto_id "
)


def _storable_opt(text: str | None) -> str | None:
    return None if text is None else storable(text)


def _encoding(model: str | None) -> str:
    return encoding_name_for(model or "")[0]


def _dumps(value: dict[str, Any] | None) -> str:
    if not value:
        return "{}"
    return storable(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


# Looked up per stored message on export: a dict is several times faster than Role(value).
_fromtimestamp = datetime.fromtimestamp
_ROLES = {role.value: role for role in Role}
_STATUSES = {status.value: status for status in MessageStatus}


def _message(conversation_id: str, row: Sequence[Any]) -> Message:
    # Positional, in the field order, and the time converted inline: this runs once
    # per message on export (1,000,000 in bench/storage.py).
    return Message(
        row[0],
        conversation_id,
        row[1],
        _ROLES[row[2]],
        row[3],
        _fromtimestamp(row[4], UTC),
        _STATUSES[row[5]],
        row[6],
        row[7],
        bool(row[8]),
        row[9],
        row[10],
        row[11],
        json_object(row[12]),
        row[13],
    )


@functools.lru_cache(maxsize=64)
def _policy(text: str | None) -> MemoryPolicy:
    """Parsed once per distinct text: most conversations share a few (it is immutable)."""
    return MemoryPolicy.from_json(json_object(text))


def _conversation(row: Sequence[Any]) -> Conversation:
    return Conversation(
        id=row[0],
        title=row[1],
        created_at=from_timestamp(row[2]),
        updated_at=from_timestamp(row[3]),
        pinned=bool(row[4]),
        archived=bool(row[5]),
        model=row[6],
        provider=row[7],
        system_prompt=row[8],
        params=json_object(row[9]),
        memory_policy=_policy(row[10]),
        current_leaf_id=row[11],
        message_count=row[12],
        summary=row[13],
        summary_upto_id=row[14],
        metadata=json_object(row[15]),
    )


@dataclass(frozen=True, slots=True)
class ThreadPage:
    """A slice of the active thread, oldest first; ``has_more`` if older ones exist."""

    messages: list[Message]
    has_more: bool


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import added and what was already there."""

    conversations_added: int = 0
    conversations_updated: int = 0
    conversations_existing: int = 0
    messages_added: int = 0
    messages_existing: int = 0

    def __add__(self, other: ImportResult) -> ImportResult:
        return ImportResult(
            self.conversations_added + other.conversations_added,
            self.conversations_updated + other.conversations_updated,
            self.conversations_existing + other.conversations_existing,
            self.messages_added + other.messages_added,
            self.messages_existing + other.messages_existing,
        )


ProgressFn = Callable[[int, int | None], None]


class Repository:
    """Every read and write of conversations and messages goes through here."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        # Per-repository model classes: binding the shared ones would send every
        # Repository's writes to whichever database was opened last.
        self._conversations = _bound(ConversationRow, db)
        self._messages = _bound(MessageRow, db)
        # Called after each write transaction commits (the search index upkeep listens).
        self.after_write: Callable[[], None] | None = None

    def close(self) -> None:
        """Close the calling thread's connection (Peewee keeps one per thread)."""
        if not self.db.is_closed():
            self.db.close()

    def leave_checkpoints_to_other_threads(self) -> None:
        """This thread's commits stop copying the WAL into the database file.

        SQLite checkpoints in whichever connection commits past 1,000 WAL pages.
        After an import (a transaction of 100+ MB) that a reader kept from being
        checkpointed, that is the next small commit, which then copies the whole
        WAL (seen: 180 ms for 170 MB with the file cached; seconds from disk). The
        window's thread calls this; the reply and job threads, which write too,
        keep checkpointing, and closing the last connection checkpoints as well.
        """
        if isinstance(self.db, peewee.SqliteDatabase):
            self.db.execute_sql("PRAGMA wal_autocheckpoint = 0")

    def keep_a_small_cache(self) -> None:
        """This thread's connection keeps 2 MB of pages instead of 8.

        For the window's thread, which lives as long as the app and reads a page of
        messages at a time (searches and imports run on other threads, with the
        larger cache): the OS keeps the file cached anyway, and this gives back
        ~5 MB of resident memory after a few long chats.
        """
        if isinstance(self.db, peewee.SqliteDatabase):
            self.db.execute_sql("PRAGMA cache_size = -2000")

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """A write transaction whose failures reach the user as a StorageError.

        On SQLite it takes the write lock up front (IMMEDIATE): a deferred one
        that reads first cannot wait for a busy writer and fails with "database
        is locked" when the GUI, a reply stream and a CLI command write at once.
        A full disk or a read-only folder rolls the transaction back, so what
        was saved before stays as it was.
        """
        atomic = (
            self.db.atomic("IMMEDIATE")
            if isinstance(self.db, peewee.SqliteDatabase)
            else self.db.atomic()
        )
        try:
            with atomic:
                yield
        except peewee.OperationalError as exc:
            raise _write_error(exc) from exc
        if self.after_write is not None:
            self.after_write()

    def _sql(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.db.execute_sql(sql, params).fetchall())

    # -- conversations ---------------------------------------------------

    def create_conversation(
        self,
        *,
        title: str = "",
        model: str | None = None,
        provider: str | None = None,
        system_prompt: str = "",
        params: dict[str, Any] | None = None,
        memory_policy: MemoryPolicy | None = None,
    ) -> Conversation:
        now = time.time()
        row = self._conversations.create(
            uuid=str(uuid.uuid4()),
            title=storable(title),
            created_at=now,
            updated_at=now,
            model=model,
            provider=provider,
            system_prompt=storable(system_prompt),
            params=_dumps(params),
            memory_policy=_dumps((memory_policy or MemoryPolicy()).to_json()),
        )
        return self.get_conversation(row.uuid)

    def get_conversation(self, conversation_id: str) -> Conversation:
        rows = self._sql(_CONVERSATION_SELECT + "WHERE c.uuid = ?", (conversation_id,))
        if not rows:
            raise NotFoundError(f"No conversation with id {conversation_id}.")
        return _conversation(rows[0])

    def list_conversations(
        self, *, limit: int = 100, offset: int = 0, archived: bool = False
    ) -> list[Conversation]:
        """Pinned first, then most recently updated."""
        rows = self._sql(
            _CONVERSATION_SELECT + "WHERE c.archived = ? "
            "ORDER BY c.pinned DESC, c.updated_at DESC, c.id DESC LIMIT ? OFFSET ?",
            (int(archived), limit, offset),
        )
        return [_conversation(row) for row in rows]

    def list_lines(
        self, *, limit: int | None = None, archived: bool = False
    ) -> list[ConversationLine]:
        """``list_conversations`` in brief and all at once (``limit`` None: every one)."""
        rows = self._sql(
            "SELECT uuid, title, created_at, updated_at, message_count, pinned, archived, model "
            "FROM conversation WHERE archived = ? "
            "ORDER BY pinned DESC, updated_at DESC, id DESC LIMIT ?",
            (int(archived), -1 if limit is None else limit),
        )
        return [
            ConversationLine(
                uuid,
                title,
                from_timestamp(created),
                from_timestamp(updated),
                count,
                bool(pinned),
                bool(archived_),
                model,
            )
            for uuid, title, created, updated, count, pinned, archived_, model in rows
        ]

    def count_conversations(self, *, archived: bool = False) -> int:
        return int(
            self._sql("SELECT count(*) FROM conversation WHERE archived = ?", (int(archived),))[0][
                0
            ]
        )

    def conversation_ids(self) -> list[str]:
        """Every conversation id, newest first (archived included)."""
        rows = self._sql("SELECT uuid FROM conversation ORDER BY updated_at DESC, id DESC")
        return [row[0] for row in rows]

    def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str = _UNSET,
        pinned: bool = _UNSET,
        archived: bool = _UNSET,
        model: str | None = _UNSET,
        provider: str | None = _UNSET,
        system_prompt: str = _UNSET,
        params: dict[str, Any] = _UNSET,
        memory_policy: MemoryPolicy = _UNSET,
        summary: str | None = _UNSET,
        summary_upto_id: str | None = _UNSET,
        touch: bool = False,
    ) -> Conversation:
        """Change the given fields; ``touch`` also moves it to the top of the list."""
        fields: dict[str, Any] = {}
        for name, value in (
            ("title", title),
            ("pinned", pinned),
            ("archived", archived),
            ("model", model),
            ("provider", provider),
            ("system_prompt", system_prompt),
            ("summary", summary),
        ):
            if value is not _UNSET:
                fields[name] = _storable_opt(value) if isinstance(value, str) else value
        if params is not _UNSET:
            fields["params"] = _dumps(params)
        if memory_policy is not _UNSET:
            fields["memory_policy"] = _dumps(memory_policy.to_json())
        if summary_upto_id is not _UNSET:
            fields["summary_upto_id"] = (
                None if summary_upto_id is None else self._message_pk(summary_upto_id)
            )
        if touch:
            fields["updated_at"] = time.time()
        if not fields:
            return self.get_conversation(conversation_id)
        with self._write():
            before = self.get_conversation(conversation_id)
            rows = self._conversations
            rows.update(fields).where(rows.uuid == conversation_id).execute()
            if model is not _UNSET and _encoding(before.model) != _encoding(model):
                # Cached counts are in the old model's encoding.
                self.db.execute_sql(
                    "UPDATE message SET token_count = NULL WHERE conversation_id = "
                    "(SELECT id FROM conversation WHERE uuid = ?)",
                    (conversation_id,),
                )
        return self.get_conversation(conversation_id)

    def delete_conversation(self, conversation_id: str) -> None:
        with self._write():
            pk = self._conversation_pk(conversation_id)
            self.db.execute_sql("DELETE FROM message WHERE conversation_id = ?", (pk,))
            self.db.execute_sql("DELETE FROM conversation WHERE id = ?", (pk,))

    def _conversation_pk(self, conversation_id: str) -> int:
        rows = self._sql("SELECT id FROM conversation WHERE uuid = ?", (conversation_id,))
        if not rows:
            raise NotFoundError(f"No conversation with id {conversation_id}.")
        return int(rows[0][0])

    def _message_pk(self, message_id: str) -> int:
        rows = self._sql("SELECT id FROM message WHERE uuid = ?", (message_id,))
        if not rows:
            raise NotFoundError(f"No message with id {message_id}.")
        return int(rows[0][0])

    # -- messages ----------------------------------------------------------

    def append_message(
        self,
        conversation_id: str,
        parent_id: str | None,
        role: Role,
        content: str,
        *,
        status: MessageStatus = MessageStatus.COMPLETE,
        model: str | None = None,
        token_count: int | None = None,
        metadata: dict[str, Any] | None = None,
        make_current: bool = True,
    ) -> Message:
        """Add a message under ``parent_id`` (None: a new root), committed at once."""
        now = time.time()
        with self._write():
            conversation_pk = self._conversation_pk(conversation_id)
            parent_pk, depth = None, 0
            if parent_id is not None:
                rows = self._sql(
                    "SELECT id, depth, conversation_id FROM message WHERE uuid = ?", (parent_id,)
                )
                if not rows or rows[0][2] != conversation_pk:
                    raise NotFoundError(f"No message {parent_id} in this conversation.")
                parent_pk, depth = rows[0][0], rows[0][1] + 1
            row = self._messages.create(
                uuid=str(uuid.uuid4()),
                conversation_id=conversation_pk,
                parent_id=parent_pk,
                depth=depth,
                role=role.value,
                content=storable(content),
                created_at=now,
                status=status.value,
                model=model,
                token_count=token_count,
                metadata=_dumps(metadata),
            )
            leaf_sql = ", current_leaf_id = ?" if make_current else ""
            leaf_param = (row.id,) if make_current else ()
            self.db.execute_sql(
                "UPDATE conversation SET message_count = message_count + 1, updated_at = ?"
                f"{leaf_sql} WHERE id = ?",
                (now, *leaf_param, conversation_pk),
            )
        return self.get_message(row.uuid)

    def get_message(self, message_id: str) -> Message:
        rows = self._sql(
            f"SELECT {_MESSAGE_COLUMNS}, c.uuid FROM message m "
            "JOIN conversation c ON c.id = m.conversation_id "
            "LEFT JOIN message p ON p.id = m.parent_id WHERE m.uuid = ?",
            (message_id,),
        )
        if not rows:
            raise NotFoundError(f"No message with id {message_id}.")
        return _message(rows[0][-1], rows[0])

    def update_message(
        self,
        message_id: str,
        *,
        content: str = _UNSET,
        status: MessageStatus = _UNSET,
        error: str | None = _UNSET,
        model: str | None = _UNSET,
        token_count: int | None = _UNSET,
        pinned: bool = _UNSET,
        prompt_tokens: int | None = _UNSET,
        completion_tokens: int | None = _UNSET,
        metadata: dict[str, Any] = _UNSET,
    ) -> None:
        fields: dict[str, Any] = {}
        for name, value in (
            ("content", content),
            ("error", error),
            ("model", model),
            ("token_count", token_count),
            ("pinned", pinned),
            ("prompt_tokens", prompt_tokens),
            ("completion_tokens", completion_tokens),
        ):
            if value is not _UNSET:
                fields[name] = _storable_opt(value) if isinstance(value, str) else value
        if status is not _UNSET:
            fields["status"] = status.value
        if metadata is not _UNSET:
            fields["metadata"] = _dumps(metadata)
        if content is not _UNSET and token_count is _UNSET:
            fields["token_count"] = None  # the cached count no longer matches the text
        if not fields:
            return
        with self._write():
            rows = self._messages
            updated = rows.update(fields).where(rows.uuid == message_id).execute()
        if not updated:
            raise NotFoundError(f"No message with id {message_id}.")

    def set_token_counts(self, counts: dict[str, int]) -> None:
        """Cache token counts computed by the context builder."""
        if counts:
            with self._write():
                cursor = self.db.cursor()
                cursor.executemany(
                    "UPDATE message SET token_count = ? WHERE uuid = ?",
                    [(count, mid) for mid, count in counts.items()],
                )

    def mark_interrupted(self) -> int:
        """Mark replies left ``streaming`` by a crash as ``interrupted``; return how many."""
        if not self._sql("SELECT 1 FROM message WHERE status = 'streaming' LIMIT 1"):
            return 0  # the usual case: no write at all (a read-only folder still opens)
        with self._write():
            cursor = self.db.execute_sql(
                "UPDATE message SET status = 'interrupted' WHERE status = 'streaming'"
            )
        return int(cursor.rowcount)

    def delete_message(self, message_id: str) -> None:
        """Delete a message and every reply below it; the thread moves to what remains."""
        with self._write():
            message = self.get_message(message_id)
            pk = self._message_pk(message_id)
            conversation_pk = self._conversation_pk(message.conversation_id)
            subtree = [
                row[0]
                for row in self._sql(
                    "WITH RECURSIVE sub(id) AS (SELECT ? UNION ALL "
                    "SELECT m.id FROM message m JOIN sub ON m.parent_id = sub.id) "
                    "SELECT id FROM sub",
                    (pk,),
                )
            ]
            leaf = self._sql(
                "SELECT current_leaf_id FROM conversation WHERE id = ?", (conversation_pk,)
            )
            for start in range(0, len(subtree), _CHUNK):
                chunk = subtree[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                self.db.execute_sql(
                    f"UPDATE conversation SET summary_upto_id = NULL "
                    f"WHERE id = ? AND summary_upto_id IN ({marks})",
                    (conversation_pk, *chunk),
                )
            # Children first: parent_id has no cascade (deep chains would exceed
            # SQLite's trigger depth), so delete in reverse insertion order.
            for start in range(0, len(subtree), _CHUNK):
                chunk = sorted(subtree, reverse=True)[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                self.db.execute_sql(f"DELETE FROM message WHERE id IN ({marks})", chunk)
            self.db.execute_sql(
                "UPDATE conversation SET message_count = message_count - ? WHERE id = ?",
                (len(subtree), conversation_pk),
            )
            if leaf and leaf[0][0] in set(subtree):
                new_leaf = None
                if message.parent_id is not None:
                    new_leaf = self._descend(self._message_pk(message.parent_id))
                else:
                    roots = self._sql(
                        "SELECT id FROM message WHERE conversation_id = ? AND parent_id IS NULL "
                        "ORDER BY id DESC LIMIT 1",
                        (conversation_pk,),
                    )
                    new_leaf = self._descend(roots[0][0]) if roots else None
                self.db.execute_sql(
                    "UPDATE conversation SET current_leaf_id = ? WHERE id = ?",
                    (new_leaf, conversation_pk),
                )

    def _descend(self, pk: int) -> int:
        """The leaf reached from ``pk`` by always taking the newest child."""
        row = self._sql(
            "WITH RECURSIVE down(id, n) AS (SELECT ?, 0 UNION ALL "
            "SELECT (SELECT c.id FROM message c WHERE c.parent_id = down.id "
            "ORDER BY c.id DESC LIMIT 1), n + 1 FROM down WHERE down.id IS NOT NULL) "
            "SELECT id FROM down WHERE id IS NOT NULL ORDER BY n DESC LIMIT 1",
            (pk,),
        )
        return int(row[0][0]) if row else pk

    def set_current_leaf(self, conversation_id: str, message_id: str) -> str:
        """Make the thread through ``message_id`` active (down to its newest leaf)."""
        with self._write():
            conversation_pk = self._conversation_pk(conversation_id)
            rows = self._sql(
                "SELECT id FROM message WHERE uuid = ? AND conversation_id = ?",
                (message_id, conversation_pk),
            )
            if not rows:
                raise NotFoundError(f"No message {message_id} in this conversation.")
            leaf = self._descend(rows[0][0])
            self.db.execute_sql(
                "UPDATE conversation SET current_leaf_id = ? WHERE id = ?", (leaf, conversation_pk)
            )
            return str(self._sql("SELECT uuid FROM message WHERE id = ?", (leaf,))[0][0])

    def siblings(self, message_id: str) -> list[Message]:
        """The message and its siblings (same parent), oldest first."""
        message = self.get_message(message_id)
        conversation_pk = self._conversation_pk(message.conversation_id)
        if message.parent_id is None:
            where, params = "m.parent_id IS NULL AND m.conversation_id = ?", (conversation_pk,)
        else:
            where, params = "m.parent_id = ?", (self._message_pk(message.parent_id),)
        rows = self._sql(
            f"SELECT {_MESSAGE_COLUMNS} FROM message m "
            f"LEFT JOIN message p ON p.id = m.parent_id WHERE {where} ORDER BY m.id",
            params,
        )
        return [_message(message.conversation_id, row) for row in rows]

    def thread(self, conversation_id: str, leaf_id: str | None = None) -> list[Message]:
        """The active thread (or the one ending at ``leaf_id``), root first."""
        return self.thread_page(conversation_id, leaf_id=leaf_id, limit=None).messages

    def thread_page(
        self,
        conversation_id: str,
        *,
        before_id: str | None = None,
        leaf_id: str | None = None,
        limit: int | None = 100,
    ) -> ThreadPage:
        """The newest ``limit`` messages of the thread that come before ``before_id``.

        Walks up from the leaf through the primary key, so the cost is the page
        size, not the conversation's length.
        """
        conversation_pk = self._conversation_pk(conversation_id)
        if before_id is not None:
            rows = self._sql(
                "SELECT parent_id FROM message WHERE uuid = ? AND conversation_id = ?",
                (before_id, conversation_pk),
            )
            if not rows:
                raise NotFoundError(f"No message {before_id} in this conversation.")
            start = rows[0][0]
        elif leaf_id is not None:
            start = self._message_pk(leaf_id)
        else:
            start = self._sql(
                "SELECT current_leaf_id FROM conversation WHERE id = ?", (conversation_pk,)
            )[0][0]
        if start is None:
            return ThreadPage([], False)
        cap = -1 if limit is None else limit
        # The step is a primary-key subquery, not a join: for a join SQLite
        # (3.38+) builds a Bloom filter by scanning the whole message table,
        # which made every page cost the size of the database. The root's
        # NULL parent ends the walk and drops out in the join below.
        rows = self._sql(
            "WITH RECURSIVE up(id, n) AS (SELECT ?, 1 UNION ALL "
            "SELECT (SELECT parent_id FROM message WHERE id = up.id), up.n + 1 FROM up "
            "WHERE up.id IS NOT NULL AND (? < 0 OR up.n < ?)) "
            f"SELECT {_MESSAGE_COLUMNS} FROM up JOIN message m ON m.id = up.id "
            "LEFT JOIN message p ON p.id = m.parent_id ORDER BY up.n DESC",
            (start, cap, cap),
        )
        messages = [_message(conversation_id, row) for row in rows]
        return ThreadPage(messages, bool(messages) and messages[0].parent_id is not None)

    def branch_positions(self, message_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """For each message, its position among its siblings and how many there are."""
        positions: dict[str, tuple[int, int]] = {}
        ids = list(message_ids)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            for uuid_, before, total in self._sql(_branch_positions_sql(len(chunk)), chunk):
                positions[uuid_] = (int(before), int(total))
        return positions

    def usage_totals(self, conversation_id: str) -> tuple[int, int]:
        """Prompt and completion tokens the server reported, summed over the conversation."""
        row = self._sql(
            "SELECT COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0) "
            "FROM message WHERE conversation_id = ?",
            (self._conversation_pk(conversation_id),),
        )[0]
        return int(row[0]), int(row[1])

    # -- search ------------------------------------------------------------

    def search(self, query: str, *, limit: int = 50) -> list[SearchHit]:
        return fts.search(self.db, query, limit=limit)

    # -- import and export -------------------------------------------------

    def iter_trees(
        self, conversation_ids: Iterable[str] | None = None
    ) -> Iterator[ConversationTree]:
        """Whole conversations (every branch)."""
        for conversation, rows in self.iter_message_rows(conversation_ids):
            yield self.tree_from_rows(conversation, rows)

    @staticmethod
    def tree_from_rows(conversation: Conversation, rows: list[tuple[Any, ...]]) -> ConversationTree:
        """``iter_message_rows``'s rows as a tree of ``Message``."""
        return ConversationTree(conversation, [_message(conversation.id, row) for row in rows])

    def snapshot(self) -> contextlib.AbstractContextManager[object]:
        """One read transaction on the calling thread: everything read inside it is
        from one moment, whatever other threads write meanwhile. An export reads in one,
        so a chat the user deletes or extends during it comes out whole or not at all.
        Write nothing inside it: the write would join the transaction.

        Open it in the frame that reads, not in a generator: a generator abandoned by
        an error would keep the transaction open (and the WAL from being checkpointed)
        until it is collected, perhaps on another thread."""
        return self.db.atomic()

    def iter_message_rows(
        self, conversation_ids: Iterable[str] | None = None
    ) -> Iterator[tuple[Conversation, list[tuple[Any, ...]]]]:
        """Whole conversations (every one, newest first, or those of
        ``conversation_ids``) with their messages as stored, for export: ``(id,
        parent_id, role, content, created_at, status, model, token_count, pinned,
        prompt_tokens, completion_tokens, error, metadata, depth)``, the time in seconds
        since 1970 and the metadata as JSON text. Read them inside ``snapshot()`` for
        every header and its messages to be from one moment (an export does).

        Exporting a million messages this way takes about 60% of the time it takes
        through ``Message`` objects, which cost more to build than to write out.
        """
        if conversation_ids is None:  # the headers in one query
            headers = self._sql(_CONVERSATION_SELECT + "ORDER BY c.updated_at DESC, c.id DESC")
            for conversation in [_conversation(row) for row in headers]:
                yield conversation, self._message_rows(conversation.id)
            return
        for conversation_id in list(conversation_ids):
            with self.db.atomic():  # closed before the caller gets it (it may write)
                conversation = self.get_conversation(conversation_id)
                rows = self._message_rows(conversation_id)
            yield conversation, rows

    def _message_rows(self, conversation_id: str) -> list[tuple[Any, ...]]:
        return self._sql(
            f"SELECT {_MESSAGE_COLUMNS} FROM message m "
            "LEFT JOIN message p ON p.id = m.parent_id "
            "WHERE m.conversation_id = (SELECT id FROM conversation WHERE uuid = ?) "
            "ORDER BY m.id",
            (conversation_id,),
        )

    def import_trees(
        self,
        trees: Iterable[ConversationTree],
        *,
        progress: ProgressFn | None = None,
        total: int | None = None,
        cancel: threading.Event | None = None,
    ) -> ImportResult:
        """Insert conversations, skipping what is already stored (matched by id).

        All or nothing: one transaction for the whole import, so a bad tree or
        a cancel half-way leaves the database as it was.
        """
        result = ImportResult()
        with self._write():
            next_pk = fts.next_free_id(self.db)
            with fts.bulk_indexing(self.db, next_pk):
                for done, tree in enumerate(trees, start=1):
                    if cancel is not None and cancel.is_set():
                        raise CancelledError("Import cancelled; nothing was added.")
                    added, next_pk = self._import_tree(tree, next_pk)
                    result += added
                    if progress is not None:
                        progress(done, total)
        return result

    def index_pending(self, chars: int) -> int:
        """Index about ``chars`` characters of the messages a large import left for
        later, in one transaction; how many ids it covered (0: the index is complete)."""
        with self._write():
            return fts.index_pending(self.db, chars)

    def count_unindexed(self) -> int:
        """How many messages wait to be indexed (search reads them directly meanwhile)."""
        return fts.pending_count(self.db)

    def merge_search_index(self, pages: int) -> bool:
        """One bounded step of merging the search index; False when nothing needed it."""
        return fts.merge_step(self.db, pages)

    def _import_tree(self, tree: ConversationTree, next_pk: int) -> tuple[ImportResult, int]:
        conv = tree.conversation
        title = one_line(conv.title or "Untitled")  # for error messages
        existing = self._sql("SELECT id, updated_at FROM conversation WHERE uuid = ?", (conv.id,))
        by_id = {m.id: m for m in tree.messages}
        if len(by_id) != len(tree.messages):
            raise BadInputError(f'Conversation "{title}" has two messages with the same id.')

        known = self._stored_messages(tree, by_id, title, existing[0][0] if existing else None)

        if existing:
            conversation_pk = int(existing[0][0])
        else:
            conversation_pk = self.db.execute_sql(
                "INSERT INTO conversation (uuid, title, created_at, updated_at, pinned, "
                "archived, model, provider, system_prompt, params, memory_policy, summary, "
                "metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conv.id,
                    storable(conv.title),
                    conv.created_at.timestamp(),
                    conv.updated_at.timestamp(),
                    int(conv.pinned),
                    int(conv.archived),
                    _storable_opt(conv.model),
                    _storable_opt(conv.provider),
                    storable(conv.system_prompt),
                    _dumps(conv.params),
                    _dumps(conv.memory_policy.to_json()),
                    _storable_opt(conv.summary),
                    _dumps(conv.metadata),
                ),
            ).lastrowid

        order = _parents_first(tree, by_id, title)

        rows = []
        for message in order:
            if message.id in known:
                continue
            parent_pk, depth = (None, 0)
            if message.parent_id is not None:
                parent_pk, parent_depth = known[message.parent_id]
                depth = parent_depth + 1
            known[message.id] = (next_pk, depth)
            rows.append(
                (
                    next_pk,
                    message.id,
                    conversation_pk,
                    parent_pk,
                    depth,
                    message.role.value,
                    storable(message.content),
                    message.created_at.timestamp(),
                    message.status.value,
                    _storable_opt(message.model),
                    message.token_count,
                    int(message.pinned),
                    message.prompt_tokens,
                    message.completion_tokens,
                    _storable_opt(message.error),
                    _dumps(message.metadata),
                )
            )
            next_pk += 1
        if rows:
            self.db.cursor().executemany(
                "INSERT INTO message (id, uuid, conversation_id, parent_id, depth, role, "
                "content, created_at, status, model, token_count, pinned, prompt_tokens, "
                "completion_tokens, error, metadata) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        if not existing or rows:
            leaf = conv.current_leaf_id if conv.current_leaf_id in known else None
            leaf_pk = known[leaf][0] if leaf else self._newest_leaf(conversation_pk)
            upto = conv.summary_upto_id
            self.db.execute_sql(
                "UPDATE conversation SET message_count = "
                "(SELECT count(*) FROM message WHERE conversation_id = ?), current_leaf_id = ?, "
                "summary_upto_id = ?, updated_at = MAX(updated_at, ?) WHERE id = ?",
                (
                    conversation_pk,
                    leaf_pk,
                    known[upto][0] if upto in known else None,
                    conv.updated_at.timestamp(),
                    conversation_pk,
                ),
            )
        messages_existing = len(tree.messages) - len(rows)
        if not existing:
            return ImportResult(1, 0, 0, len(rows), messages_existing), next_pk
        return ImportResult(
            0, int(bool(rows)), int(not rows), len(rows), messages_existing
        ), next_pk

    def _stored_messages(
        self,
        tree: ConversationTree,
        by_id: dict[str, Message],
        title: str,
        conversation_pk: int | None,
    ) -> dict[str, tuple[int, int]]:
        """(pk, depth) of the tree's messages already stored, and of parents outside it."""
        known: dict[str, tuple[int, int]] = {}
        ids = list(by_id)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self._sql(
                f"SELECT uuid, id, depth, conversation_id FROM message WHERE uuid IN ({marks})",
                chunk,
            ):
                if row[3] != conversation_pk:
                    # Taking it as "already there" would graft this tree onto another one.
                    raise BadInputError(
                        f'Conversation "{title}": message {one_line(row[0])} already belongs to '
                        "another conversation."
                    )
                known[row[0]] = (row[1], row[2])
        outside = {m.parent_id for m in tree.messages if m.parent_id and m.parent_id not in by_id}
        for parent in outside:
            rows = self._sql("SELECT id, depth FROM message WHERE uuid = ?", (parent,))
            if not rows:
                raise BadInputError(
                    f'Conversation "{title}": message parent {one_line(parent)} is not in the file.'
                )
            known[parent] = (rows[0][0], rows[0][1])
        return known

    def _newest_leaf(self, conversation_pk: int) -> int | None:
        rows = self._sql(
            "SELECT m.id FROM message m WHERE m.conversation_id = ? AND NOT EXISTS "
            "(SELECT 1 FROM message c WHERE c.parent_id = m.id) "
            "ORDER BY m.created_at DESC, m.id DESC LIMIT 1",
            (conversation_pk,),
        )
        return int(rows[0][0]) if rows else None


def _bound(model: type[peewee.Model], db: peewee.Database) -> Any:
    """A subclass of ``model`` that uses ``db`` and no other database."""
    meta = type("Meta", (), {"database": db, "table_name": model._meta.table_name})
    return type(model.__name__, (model,), {"Meta": meta, "__module__": model.__module__})


def _write_error(exc: peewee.OperationalError) -> StorageError:
    text = str(exc).lower()
    if "full" in text:
        what = "the disk is full"
        fix = "Free some space, then try again; what was saved before is intact."
    elif "readonly" in text or "read-only" in text:
        what = "the data folder is read-only"
        fix = "Make it writable (or start with --data-dir elsewhere); nothing saved was lost."
    elif "locked" in text or "busy" in text:
        what = "another program kept the database busy"
        fix = "Try again in a moment."
    else:
        what = str(exc)
        fix = "Nothing saved before was changed."
    return StorageError(f"Could not save to the database: {what}. {fix}", details=repr(exc))


def _parents_first(tree: ConversationTree, by_id: dict[str, Message], title: str) -> list[Message]:
    """The tree's messages ordered so every parent comes before its children."""
    seen: set[str] = set()
    for message in tree.messages:
        if message.parent_id in by_id and message.parent_id not in seen:
            break
        seen.add(message.id)
    else:
        # Already parents first (as exported): keep the file's order, so the
        # next export lists the tree exactly as this one did.
        return list(tree.messages)
    children: dict[str | None, list[Message]] = defaultdict(list)
    for message in tree.messages:
        children[message.parent_id].append(message)
    order: list[Message] = []
    # Reversed onto a stack so siblings keep the file's order (it is the
    # branch order the user sees, and ChatGPT's "child 0").
    stack = [m for m in tree.messages if m.parent_id is None or m.parent_id not in by_id]
    stack.reverse()
    while stack:
        message = stack.pop()
        order.append(message)
        stack.extend(reversed(children.get(message.id, ())))
    if len(order) != len(tree.messages):
        raise BadInputError(f'Conversation "{title}": its messages form a cycle.')
    return order


def _branch_positions_sql(count: int) -> str:
    marks = ",".join("?" * count)
    return (
        "SELECT m.uuid, "
        "(SELECT count(*) FROM message s WHERE s.conversation_id = m.conversation_id "
        " AND s.parent_id IS m.parent_id AND s.id < m.id), "
        "(SELECT count(*) FROM message s WHERE s.conversation_id = m.conversation_id "
        " AND s.parent_id IS m.parent_id) "
        f"FROM message m WHERE m.uuid IN ({marks})"
    )
