"""Import fuzzing: any file imports cleanly or fails with one line, the database untouched.

Every supported format (this app's JSON, ChatGPT's conversations.json as JSON
and as a zip, Claude's conversations.json) gets 1,000 generated or mutated
files through the real entry point, ``transfer.import_file``, into a real
SQLite database that already holds conversations. Each file either imports
(and the database passes SQLite's and FTS5's integrity checks and reads back)
or raises :class:`BadInputError` with one line, and then every table is
byte-for-byte what it was. Anything else - another exception, an open
transaction, a changed row - is a bug. The database is put back after each
clean import, so every example starts from the same state.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from desktop_chat.errors import BadInputError
from desktop_chat.services import transfer
from desktop_chat.services.workspace import Workspace
from tests.unit.services.test_import_chatgpt import paths
from tests.unit.storage.sample import populate

SAMPLES = Path(__file__).resolve().parents[2] / "data"
EXAMPLES = 1000
# Far above any example here (they take milliseconds): only a hang or a runaway loop hits it.
SLOW = 10.0
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # One database per test on purpose (opening one per example costs more than the import);
    # `Harness` puts it back after every example.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# -- the database side -----------------------------------------------------------------


def fingerprint(database: Path) -> tuple[dict[str, int], str]:
    """Row counts and a hash of every row of every real table (FTS shadow tables too)."""
    conn = sqlite3.connect(database)
    try:
        tables = [
            name
            for name, sql in conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
            if not sql.upper().startswith("CREATE VIRTUAL")
        ]
        digest = hashlib.sha256()
        counts = {}
        for table in tables:
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()  # b-tree order
            counts[table] = len(rows)
            digest.update(repr((table, rows)).encode("utf-8", "surrogatepass"))
        digest.update(repr(conn.execute("SELECT * FROM sqlite_master").fetchall()).encode())
        return counts, digest.hexdigest()
    finally:
        conn.close()


def assert_healthy(database: Path) -> None:
    conn = sqlite3.connect(database)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        conn.execute("INSERT INTO message_fts (message_fts, rank) VALUES ('integrity-check', 1)")
        assert conn.execute(
            "SELECT count(*) FROM conversation c WHERE message_count != "
            "(SELECT count(*) FROM message m WHERE m.conversation_id = c.id)"
        ).fetchone() == (0,)
    finally:
        conn.close()


class Harness:
    """One workspace with a history in it; each attempt leaves it exactly as it found it."""

    def __init__(self, workspace: Workspace, folder: Path) -> None:
        self.workspace = workspace
        self.repo = workspace.repo
        self.database = workspace.paths.database
        self.path = folder / "input"
        self.seeds: list[Any] = []
        self._snapshot = sqlite3.connect(":memory:")
        self.rebase()

    def rebase(self) -> None:
        """Take the database as it is now as the state every attempt must leave."""
        self.repo.db.connection().backup(self._snapshot)
        self.pristine = fingerprint(self.database)

    def close(self) -> None:
        self._snapshot.close()
        self.workspace.close()

    def attempt(self, content: bytes, fmt: str = "auto") -> None:
        """Import ``content``: a clean import or a one-line BadInputError, nothing else."""
        self.path.write_bytes(content)
        started = time.monotonic()
        try:
            try:
                _, result = transfer.import_file(self.repo, self.path, fmt=fmt)
            except BadInputError as exc:
                message = str(exc)
                assert message.strip(), "an empty error message"
                assert len(message.splitlines()) == 1, message
                assert not self.repo.db.in_transaction()
                assert fingerprint(self.database) == self.pristine, f"changed by: {message}"
                event("refused")
                return
            assert not self.repo.db.in_transaction()
            assert_healthy(self.database)
            counts, _ = fingerprint(self.database)
            before, _ = self.pristine
            assert counts["conversation"] == before["conversation"] + result.conversations_added
            assert counts["message"] == before["message"] + result.messages_added
            # What landed can be read back: the sidebar and a full export.
            self.repo.list_conversations(limit=1000)
            self.repo.list_conversations(limit=1000, archived=True)
            transfer.export_json(self.repo, io.StringIO(), None)
            added = result.conversations_added + result.messages_added
            event("imported, rows added" if added else "imported, all there already")
        finally:
            assert time.monotonic() - started < SLOW, "an import that (nearly) hangs"
            self._restore()

    def _restore(self) -> None:
        if self.repo.db.in_transaction():  # only after a failed assertion above
            self.repo.db.rollback()
        if fingerprint(self.database) != self.pristine:
            self._snapshot.backup(self.repo.db.connection())
            assert fingerprint(self.database) == self.pristine


@pytest.fixture
def harness(data_dir: Path, tmp_path: Path) -> Iterator[Harness]:
    workspace = Workspace.open(data_dir)
    populate(workspace.repo)
    opened = Harness(workspace, tmp_path)
    yield opened
    opened.close()


# -- values that break things ----------------------------------------------------------

# Keys the readers look at, so generated objects reach past the first check.
KEYS = (
    # ours
    "format", "version", "conversations", "id", "title", "created_at", "updated_at", "model",
    "provider", "system_prompt", "params", "memory_policy", "pinned", "archived", "summary",
    "summary_upto_id", "metadata", "current_leaf_id", "messages", "tree", "parent_id", "role",
    "content", "status", "token_count", "prompt_tokens", "completion_tokens", "error",
    "kind", "last_n", "recent_tokens",
    # ChatGPT
    "mapping", "message", "parent", "children", "author", "name", "content_type", "parts",
    "create_time", "update_time", "current_node", "recipient", "text", "thoughts",
    "asset_pointer", "language", "is_visually_hidden_from_conversation", "default_model_slug",
    "conversation_id", "is_archived", "is_starred", "pinned_time", "channel", "end_turn",
    "model_slug", "user_context_message_data", "is_user_system_message", "result", "url",
    # Claude
    "uuid", "chat_messages", "sender", "parent_message_uuid", "type", "input", "is_error",
    "tool_use_id", "thinking", "attachments", "files", "file_name", "extracted_content",
    "file_uuid", "current_leaf_message_uuid", "project",
)  # fmt: skip
WORDS = (
    "desktop-chat", "user", "assistant", "system", "tool", "human", "critic", "all", "python",
    "text", "code", "multimodal_text", "thoughts", "reasoning_recap", "execution_output",
    "tether_quote", "tether_browsing_display", "system_error", "user_editable_context",
    "image_asset_pointer", "tool_use", "tool_result", "complete", "error", "streaming",
    "stopped", "interrupted", "summary", "last_n", "full", "finished_successfully", "auto",
    "00000000-0000-4000-8000-000000000000", "a", "b", "c",
)  # fmt: skip
# Times at the edges of what datetime and SQLite's REAL hold, in both notations the readers take.
TIMES = (
    "2024-01-01T00:00:00Z", "2024-01-01T00:00:00", "2024-01-01", "2024-02-30T00:00:00Z",
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.999999+00:00", "1969-12-31T23:59:59Z", "2024-01-01T25:00:00Z",
    "1700000000", "1700000000.5", "-62135596801", "253402300800", "1e20", "-1e20", "nan",
    "inf", " 1700000000 ", "\uff11\uff17\uff10\uff10",  # full-width digits: float() reads them
)  # fmt: skip
HOSTILE_TEXT = (
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfff", "\ud83d\ude00", "\u2028", "\n", "\r\n",
    "\u202eevil", "👩‍👩‍👧‍👦", "\ufeff", "null", "-1", "\\", '"', "```", "}]",
)  # fmt: skip
NUMBERS = (
    0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30),
    1e308, -1e308, 5e-324, -0.0, 1.5, float("nan"), float("inf"), float("-inf"),
)  # fmt: skip
# Spliced into the file as raw JSON text (json.dumps cannot write them), by name.
RAW = {
    "5000 digits": "1" * 5000,
    "-4301 digits": "-" + "9" * 4301,
    "4300 digits": "1" * 4300,
    "1e400": "1e400",
    "-1e400": "-1e400",
    "1E-400": "1E-400",
    "-0": "-0",
    "50 deep": "[" * 50 + "]" * 50,
    "900 deep": "[" * 900 + "]" * 900,
    "1000 deep": "[" * 1000 + "]" * 1000,
    "1023 deep": "[" * 1023 + "]" * 1023,
    "1100 deep": "[" * 1100 + "]" * 1100,
    "990 deep objects": '{"a":' * 990 + "{}" + "}" * 990,
    "100000 deep": "[" * 100_000 + "]" * 100_000,
}

characters = st.characters(codec=None, exclude_categories=())  # lone surrogates included
SCALARS = (
    st.none()
    | st.booleans()
    | st.sampled_from(NUMBERS)
    | st.integers()
    | st.floats()
    | st.sampled_from(WORDS)
    | st.sampled_from(TIMES)
    | st.sampled_from(HOSTILE_TEXT)
    | st.integers(1000, 20_000).map("x".__mul__)
    | st.text(characters, max_size=10)
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(KEYS) | st.text(characters, max_size=4), inner, max_size=5
        )
    ),
    max_leaves=12,
)


class Raw:
    """A value written into the file as raw JSON text."""

    def __init__(self, text: str) -> None:
        self.text = text


def serialize(doc: Any, *, ascii_only: bool) -> bytes:
    """JSON bytes; lone surrogates become escapes (or invalid UTF-8 without ascii_only)."""
    raws: list[str] = []

    def plain(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value.text)
            return f"\x00RAW{len(raws) - 1}\x00"
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    text = json.dumps(plain(doc), ensure_ascii=ascii_only)
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00RAW{index}\x00"), raw, 1)
    return text.encode("utf-8", "surrogatepass")


# -- mutations --------------------------------------------------------------------------

ID_KEYS = {"id", "uuid", "conversation_id"}
LINK_KEYS = {
    "parent_id", "parent", "parent_message_uuid", "current_leaf_id", "current_node",
    "summary_upto_id", "current_leaf_message_uuid",
}  # fmt: skip
Where = tuple[Any, ...]


def get(doc: Any, path: Where) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def put(doc: Any, path: Where, value: Any) -> Any:
    if not path:
        return value
    get(doc, path[:-1])[path[-1]] = value
    return doc


def ids_in(doc: Any) -> list[str]:
    """Every id-like string: id/uuid fields and ChatGPT mapping keys."""
    found: list[str] = []
    for path in paths(doc):
        value = get(doc, path)
        if path and path[-1] in ID_KEYS and isinstance(value, str):
            found.append(value)
        if path and path[-1] == "mapping" and isinstance(value, dict):
            found += [k for k in value if isinstance(k, str)]
    return found


def renamed(value: Any, old: str, new: str) -> Any:
    """Every occurrence of the string ``old``, as a value or a key, replaced by ``new``."""
    if isinstance(value, dict):
        return {(new if k == old else k): renamed(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [renamed(v, old, new) for v in value]
    return new if value == old else value


# Hostile values of the same type, so the document stays valid and reaches the database.
SAME_TYPE: dict[type, st.SearchStrategy[Any]] = {
    str: st.sampled_from(HOSTILE_TEXT + TIMES) | st.text(characters, max_size=20),
    int: st.sampled_from([n for n in NUMBERS if isinstance(n, int)]) | st.integers(),
    float: st.sampled_from(NUMBERS) | st.floats(),
    bool: st.booleans(),
}
# Hypothesis leans towards the first choice: the edit that keeps a file importable.
OPS = (
    "same type", "rename", "same type", "rename", "same type", "relink",
    "replace", "delete", "retype", "copy", "raw", "grow",
)  # fmt: skip


def mutate(data: st.DataObject, doc: Any) -> Any:
    """One to four edits: a hostile value (of the same type or not), a deleted or duplicated
    key or element, an id renamed everywhere (a new conversation), a parent link or id
    pointed at another id (cycles, dangling links, duplicate ids), raw JSON text."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        # Not the whole document (generated ones replace that), and deepest first: hypothesis
        # leans towards the first choice, and the envelope's "format" is a dull one.
        every = paths(doc)[:0:-1]
        if not every:
            break
        op = data.draw(st.sampled_from(OPS), label="op")
        ids = ids_in(doc)
        links = [p for p in every if p[-1] in LINK_KEYS | ID_KEYS]
        if op == "rename" and ids:
            old = data.draw(st.sampled_from(ids), label="old id")
            new = data.draw(st.uuids().map(str) | SAME_TYPE[str], label="new id")
            doc = renamed(doc, old, new)
        elif op == "relink" and ids and links:
            target = data.draw(st.sampled_from(links), label="link")
            doc = put(doc, target, data.draw(st.sampled_from(ids), label="to"))
        else:
            doc = edit_value(data, doc, op, data.draw(st.sampled_from(every), label="path"))
    return doc


def edit_value(data: st.DataObject, doc: Any, op: str, path: Where) -> Any:
    value = get(doc, path)
    if op == "delete":
        del get(doc, path[:-1])[path[-1]]
    elif op == "grow" and isinstance(value, list | dict) and value:
        # A repeated element or a second key with the same value: duplicates.
        if isinstance(value, list):
            value.append(copy.deepcopy(data.draw(st.sampled_from(value))))
        else:
            key = data.draw(st.sampled_from(list(value)))
            value[f"{key}-dup"] = copy.deepcopy(value[key])
    elif op == "same type" and type(value) in SAME_TYPE:
        doc = put(doc, path, data.draw(SAME_TYPE[type(value)], label="value"))
    elif op == "retype":
        retyped = [[], {}, None, True, 0, 1.5, "", [value], {"x": value}, str(value)[:30]]
        doc = put(doc, path, data.draw(st.sampled_from(retyped)))
    elif op == "copy":
        # Another value of the same document here: duplicate ids, swapped fields.
        source = get(doc, data.draw(st.sampled_from(paths(doc)[1:])))
        doc = put(doc, path, copy.deepcopy(source))
    elif op == "raw":
        doc = put(doc, path, Raw(RAW[data.draw(st.sampled_from(sorted(RAW)))]))
    else:
        doc = put(doc, path, data.draw(JSONISH, label="value"))
    return doc


def damage(data: st.DataObject, content: bytes) -> bytes:
    """Sometimes break the bytes too: truncate, splice, re-encode."""
    how = data.draw(
        st.sampled_from(["none"] * 12 + ["truncate", "splice", "utf16", "bom", "latin1"]),
        label="damage",
    )
    if how == "truncate":
        return content[: data.draw(st.integers(1, max(1, len(content) - 1)))]
    if how == "splice":
        at = data.draw(st.integers(0, len(content)))
        cut = data.draw(st.integers(0, 8))
        return content[:at] + data.draw(st.binary(max_size=8)) + content[at + cut :]
    if how == "utf16":
        return content.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass")
    if how == "bom":
        return b"\xef\xbb\xbf" + content
    if how == "latin1":
        return content.replace(b"a", b"\xe9", 3)
    return content


def document_bytes(data: st.DataObject, doc: Any) -> bytes:
    return damage(data, serialize(doc, ascii_only=data.draw(st.booleans(), label="ascii")))


def fuzz_input(data: st.DataObject, seeds: list[Any], generated: st.SearchStrategy[Any]) -> Any:
    """A generated document (one in four) or a mutated seed."""
    if data.draw(st.integers(0, 3), label="generated?") == 0:
        return data.draw(generated, label="generated")
    return mutate(data, data.draw(st.sampled_from(seeds), label="seed"))


def fmt_for(data: st.DataObject, native: str) -> str:
    """Mostly auto-detection; sometimes a --format, right or wrong."""
    return data.draw(st.sampled_from(["auto"] * 8 + [native] * 2 + list(transfer.FORMATS[1:])))


# -- documents: seeds and grammars ------------------------------------------------------


def maybe(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nearly always a plausible value (so many documents import), now and then anything."""
    # (one_of would not weigh a repeated strategy more: it keeps one of equal branches)
    return st.integers(0, 31).flatmap(lambda n: JSONISH if n == 31 else good)


node_ids = st.sampled_from(["a", "b", "c", "d", "e"])
times = st.sampled_from(TIMES)
texts = st.sampled_from(HOSTILE_TEXT) | st.text(characters, max_size=20)

# Valid ISO times, the edges of the range included; invalid ones come from `maybe`.
iso_times = st.sampled_from(
    [t for t in TIMES if "T" in t and "25:" not in t and "02-30" not in t]
) | st.datetimes(timezones=st.timezones() | st.none()).map(lambda d: d.isoformat())


def own_node(node_id: str, parent: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {"id": maybe(st.just(node_id)), "content": maybe(texts), "created_at": maybe(iso_times)},
        optional={
            "parent_id": maybe(parent),
            "role": maybe(st.sampled_from(["user", "assistant", "system", "tool"])),
            "status": maybe(st.sampled_from(["complete", "error", "stopped", "streaming"])),
            "model": maybe(texts),
            "token_count": maybe(st.sampled_from(NUMBERS) | st.integers()),
            "pinned": maybe(st.booleans()),
            "error": maybe(texts),
            "metadata": maybe(st.dictionaries(st.text(max_size=3), JSONISH, max_size=3)),
        },
    )


@st.composite
def own_conversation(draw: st.DrawFn) -> dict[str, Any]:
    """A conversation whose parents mostly come earlier in its tree (a few point anywhere)."""
    ids = draw(st.lists(node_ids | SAME_TYPE[str], max_size=6, unique=True))
    tree = [
        draw(own_node(node_id, st.none() | st.sampled_from(ids[: index + 1] or [None])))
        for index, node_id in enumerate(ids)
    ]
    known = st.sampled_from(ids or [None])
    conversation = {
        "id": draw(maybe(st.uuids().map(str) | SAME_TYPE[str])),
        "created_at": draw(maybe(iso_times)),
        "tree": draw(maybe(st.just(tree))),
    }
    optional = {
        "title": maybe(texts),
        "updated_at": maybe(iso_times),
        "current_leaf_id": maybe(known),
        "summary_upto_id": maybe(known),
        "memory_policy": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "kind": st.sampled_from(["full", "last_n", "summary", "nope"]),
                    "last_n": maybe(st.integers()),
                    "recent_tokens": maybe(st.integers()),
                },
            )
        ),
        "params": maybe(st.dictionaries(st.text(max_size=3), JSONISH, max_size=3)),
        "pinned": maybe(st.booleans()),
        "archived": maybe(st.booleans()),
        "system_prompt": maybe(texts),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            conversation[key] = draw(strategy)
    return conversation


OWN_GENERATED = st.fixed_dictionaries(
    {
        "format": maybe(st.just("desktop-chat")),
        "version": maybe(st.just(1)),
        "conversations": maybe(st.lists(own_conversation(), min_size=1, max_size=3)),
    }
)

CHATGPT_CONTENT = st.fixed_dictionaries(
    {"content_type": maybe(st.sampled_from(WORDS))},
    optional={
        "parts": maybe(st.lists(texts | JSONISH, max_size=3)),
        "text": maybe(texts),
        "language": maybe(st.sampled_from(["python", "unknown", ""])),
        "thoughts": maybe(st.lists(JSONISH, max_size=2)),
    },
)
CHATGPT_MESSAGE = st.fixed_dictionaries(
    {
        "author": maybe(
            st.fixed_dictionaries({"role": maybe(st.sampled_from(["user", "assistant", "tool"]))})
        ),
        "content": maybe(CHATGPT_CONTENT),
    },
    optional={
        "create_time": maybe(st.sampled_from(NUMBERS) | times),
        "recipient": maybe(st.sampled_from(["all", "python", "browser"])),
        "metadata": maybe(st.dictionaries(st.sampled_from(KEYS), JSONISH, max_size=3)),
        "status": maybe(texts),
    },
)
CHATGPT_NODE = st.fixed_dictionaries(
    {"message": st.none() | CHATGPT_MESSAGE},
    optional={
        "parent": maybe(st.none() | node_ids),
        "children": maybe(st.lists(node_ids, max_size=3)),
    },
)
CHATGPT_CONVERSATION = st.fixed_dictionaries(
    {
        "id": maybe(st.sampled_from(["g1", "g2"])),
        "mapping": st.dictionaries(node_ids, CHATGPT_NODE),
    },
    optional={
        "title": maybe(texts),
        "create_time": maybe(st.sampled_from(NUMBERS) | times),
        "update_time": maybe(st.sampled_from(NUMBERS) | times),
        "current_node": maybe(node_ids),
        "default_model_slug": maybe(texts),
        "is_archived": maybe(st.booleans()),
    },
)
CHATGPT_GENERATED = st.lists(CHATGPT_CONVERSATION, min_size=1, max_size=3) | st.fixed_dictionaries(
    {"conversations": st.lists(CHATGPT_CONVERSATION, min_size=1, max_size=3)}
)

CLAUDE_BLOCK = st.fixed_dictionaries(
    {"type": maybe(st.sampled_from(["text", "thinking", "tool_use", "tool_result", "image"]))},
    optional={
        "text": maybe(texts),
        "thinking": maybe(texts),
        "name": maybe(texts),
        "input": JSONISH,
        "content": maybe(st.lists(JSONISH, max_size=2)),
        "is_error": maybe(st.booleans()),
    },
)
CLAUDE_MESSAGE = st.fixed_dictionaries(
    {"uuid": maybe(node_ids), "sender": maybe(st.sampled_from(["human", "assistant", "x"]))},
    optional={
        "text": maybe(texts),
        "content": maybe(st.lists(CLAUDE_BLOCK, max_size=3)),
        "parent_message_uuid": maybe(
            st.none() | node_ids | st.just("00000000-0000-4000-8000-000000000000")
        ),
        "created_at": maybe(times | st.sampled_from(NUMBERS)),
        "attachments": maybe(st.lists(JSONISH, max_size=2)),
        "files": maybe(st.lists(JSONISH, max_size=2)),
    },
)
CLAUDE_CONVERSATION = st.fixed_dictionaries(
    {
        "uuid": maybe(st.sampled_from(["k1", "k2"])),
        "chat_messages": st.lists(CLAUDE_MESSAGE, max_size=5),
    },
    optional={
        "name": maybe(texts),
        "created_at": maybe(times),
        "updated_at": maybe(times),
        "current_leaf_message_uuid": maybe(node_ids),
        "summary": maybe(texts),
        "project": maybe(JSONISH),
    },
)
CLAUDE_GENERATED = st.lists(CLAUDE_CONVERSATION, min_size=1, max_size=3)


def chatgpt_node(parent: str | None, children: list[str], message: Any) -> dict[str, Any]:
    return {"id": "x", "parent": parent, "children": children, "message": message}


def chatgpt_message(role: str, content: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"author": {"role": role}, "content": content, "create_time": 1.7e9, **extra}


# A small list-shaped export with what the reader handles: a null root, a branch, code run
# by the code interpreter, its output, thoughts, an image, a quote and custom instructions.
CHATGPT_SEED = [
    {
        "id": "seed-1",
        "title": "Seed",
        "create_time": 1700000000.0,
        "update_time": 1700000500.0,
        "current_node": "n6",
        "default_model_slug": "gpt-4o",
        "mapping": {
            "root": chatgpt_node(None, ["n0"], None),
            "n0": chatgpt_node(
                "root",
                ["n1"],
                chatgpt_message(
                    "system",
                    {"content_type": "text", "parts": [""]},
                    metadata={
                        "is_user_system_message": True,
                        "user_context_message_data": {"about_user_message": "I cook."},
                    },
                ),
            ),
            "n1": chatgpt_node(
                "n0",
                ["n2", "n3"],
                chatgpt_message(
                    "user",
                    {
                        "content_type": "multimodal_text",
                        "parts": [
                            "Plot this",
                            {
                                "content_type": "image_asset_pointer",
                                "asset_pointer": "file-service://f1",
                            },
                        ],
                    },
                ),
            ),
            "n2": chatgpt_node(
                "n1",
                [],
                chatgpt_message("assistant", {"content_type": "text", "parts": ["Old answer"]}),
            ),
            "n3": chatgpt_node(
                "n1",
                ["n4"],
                chatgpt_message(
                    "assistant",
                    {"content_type": "code", "language": "unknown", "text": "print(1)"},
                    recipient="python",
                ),
            ),
            "n4": chatgpt_node(
                "n3",
                ["n5"],
                chatgpt_message("tool", {"content_type": "execution_output", "text": "1"}),
            ),
            "n5": chatgpt_node(
                "n4",
                ["n6"],
                chatgpt_message(
                    "assistant",
                    {"content_type": "thoughts", "thoughts": [{"summary": "S", "content": "C"}]},
                ),
            ),
            "n6": chatgpt_node(
                "n5",
                [],
                chatgpt_message(
                    "assistant",
                    {
                        "content_type": "tether_quote",
                        "url": "https://example.com",
                        "title": "Ex",
                        "text": "quoted",
                    },
                    metadata={"model_slug": "gpt-4o"},
                ),
            ),
        },
    }
]


def load(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def own_seed(harness: Harness) -> dict[str, Any]:
    """What the app's own exporter writes for the history the database holds."""
    out = io.StringIO()
    transfer.export_json(harness.repo, out, None)
    return json.loads(out.getvalue())


def preload(harness: Harness, documents: list[Any]) -> Harness:
    """Import the seeds first, so mutated files overlap what is stored (updates, clashes)."""
    for document in documents:
        harness.path.write_bytes(serialize(document, ascii_only=True))
        transfer.import_file(harness.repo, harness.path)
    harness.rebase()
    harness.seeds = documents
    return harness


# -- the fuzz tests ---------------------------------------------------------------------


@pytest.fixture
def own_harness(harness: Harness) -> Harness:
    harness.seeds = [own_seed(harness)]  # already stored: re-importing it adds nothing
    return harness


@FUZZ
@given(data=st.data())
def test_own_format(own_harness: Harness, data: st.DataObject) -> None:
    doc = fuzz_input(data, own_harness.seeds, OWN_GENERATED)
    own_harness.attempt(document_bytes(data, doc), fmt_for(data, "desktop-chat"))


@pytest.fixture
def chatgpt_harness(harness: Harness) -> Harness:
    return preload(harness, [CHATGPT_SEED, load("chatgpt-envelope.json")])


@FUZZ
@given(data=st.data())
def test_chatgpt(chatgpt_harness: Harness, data: st.DataObject) -> None:
    doc = fuzz_input(data, chatgpt_harness.seeds, CHATGPT_GENERATED)
    chatgpt_harness.attempt(document_bytes(data, doc), fmt_for(data, "chatgpt"))


@pytest.fixture
def claude_harness(harness: Harness) -> Harness:
    return preload(harness, [load("claude-linear.json"), load("claude-branches.json")])


@FUZZ
@given(data=st.data())
def test_claude(claude_harness: Harness, data: st.DataObject) -> None:
    doc = fuzz_input(data, claude_harness.seeds, CLAUDE_GENERATED)
    claude_harness.attempt(document_bytes(data, doc), fmt_for(data, "claude"))


def zip_bytes(members: list[tuple[str, bytes]], *, deflate: bool) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, content in members:
            archive.writestr(name, content)
    return buffer.getvalue()


def patch_central(content: bytes, offset: int, value: bytes) -> bytes:
    """Overwrite a field of the first central directory entry (flags at 8, method at 10)."""
    at = content.find(b"PK\x01\x02")
    if at < 0:
        return content
    return content[: at + offset] + value + content[at + offset + len(value) :]


def zip_damage(data: st.DataObject, content: bytes) -> bytes:
    how = data.draw(
        st.sampled_from(["none"] * 6 + ["byte", "truncate", "encrypted", "method", "tail"]),
        label="zip damage",
    )
    if how == "byte":  # often inside the compressed data: bad CRC or a broken deflate stream
        at = data.draw(st.integers(0, len(content) - 1))
        return (
            content[:at] + bytes([content[at] ^ data.draw(st.integers(1, 255))]) + content[at + 1 :]
        )
    if how == "truncate":
        return content[: data.draw(st.integers(1, len(content) - 1))]
    if how == "encrypted":
        return patch_central(content, 8, b"\x01\x00")
    if how == "method":
        return patch_central(content, 10, data.draw(st.sampled_from([b"\x63\x00", b"\x0c\x00"])))
    if how == "tail":  # a JSON file that merely ends like a zip
        return b"[]" + content[-22:]
    return content


@FUZZ
@given(data=st.data())
def test_chatgpt_zip(chatgpt_harness: Harness, data: st.DataObject) -> None:
    doc = fuzz_input(data, chatgpt_harness.seeds, CHATGPT_GENERATED)
    layout = data.draw(
        st.sampled_from(["single", "single", "folder", "shards", "shards", "none"]), label="layout"
    )
    if layout == "shards":
        # Newer exports shard conversations.json; any shard may be odd on its own.
        items = doc if isinstance(doc, list) else [doc]
        cut = data.draw(st.integers(0, len(items)))
        shards: list[Any] = [items[:cut], items[cut:]]
        if data.draw(st.booleans(), label="odd shard"):
            shards[data.draw(st.integers(0, 1))] = data.draw(JSONISH | st.sampled_from([{}, 5]))
        members = [
            (f"conversations-{i:03d}.json", document_bytes(data, shard))
            for i, shard in enumerate(shards)
        ]
    else:
        name = {"single": "conversations.json", "folder": "export/conversations.json"}.get(
            layout, "chat.json"
        )
        members = [(name, document_bytes(data, doc))]
    members.append(("chat.html", b"<html></html>"))
    content = zip_bytes(members, deflate=data.draw(st.booleans(), label="deflate"))
    chatgpt_harness.attempt(zip_damage(data, content), fmt_for(data, "chatgpt"))


# -- the real command line --------------------------------------------------------------


def deep_metadata(depth: int) -> bytes:
    nested = "[" * depth + "]" * depth
    return (
        '{"format": "desktop-chat", "version": 1, "conversations": [{"id": "c", '
        '"created_at": "2024-01-01T00:00:00Z", "tree": [{"id": "m", "content": "hi", '
        f'"created_at": "2024-01-01T00:00:00Z", "metadata": {{"x": {nested}}}}}]}}]}}'
    ).encode()


def nasty_files() -> dict[str, tuple[bytes, str]]:
    """Files each of which once ended the CLI with a traceback; what the error names."""
    good = serialize(CHATGPT_SEED, ascii_only=True)
    deflated = zip_bytes([("conversations.json", good * 2)], deflate=True)
    middle = deflated.find(b"conversations.json") + 40
    return {
        "a 5000-digit number": (
            b'{"format": "desktop-chat", "version": ' + b"1" * 5000 + b"}",
            "number too long",
        ),
        "metadata 1000 deep": (deep_metadata(1000), "nests too deeply"),
        "a time past year 9999 in UTC": (
            b'{"format": "desktop-chat", "version": 1, "conversations": [{"id": "c", '
            b'"created_at": "9999-12-31T23:59:59-01:00", "tree": []}]}',
            "conversations[0].created_at",
        ),
        "a broken deflate stream": (
            deflated[:middle] + b"\xff" * 8 + deflated[middle + 8 :],
            "damaged zip",
        ),
        "a zip shard that is a number": (
            zip_bytes(
                [("conversations-000.json", good), ("conversations-001.json", b"5")],
                deflate=False,
            ),
            "conversations-001.json does not hold a list",
        ),
        "an encrypted zip member": (
            patch_central(zip_bytes([("conversations.json", good)], deflate=False), 8, b"\x01\x00"),
            "encrypted",
        ),
        "NUL bytes": (b"\x00" * 64, "not valid JSON"),
    }


def cli() -> list[str]:
    script = shutil.which("desktop-chat-cli", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "desktop_chat"]


def test_cli_exits_2_with_one_line_on_nasty_files(tmp_path: Path) -> None:
    target = tmp_path / "data"
    workspace = Workspace.open(target)
    populate(workspace.repo)
    workspace.close()
    before = fingerprint(target / "desktop-chat.sqlite3")
    for name, (content, words) in nasty_files().items():
        path = tmp_path / "nasty.bin"
        path.write_bytes(content)
        done = subprocess.run(
            [*cli(), "--data-dir", str(target), "import", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, (name, done.returncode, done.stderr)
        assert words in done.stderr, (name, done.stderr)
        assert done.stderr.endswith("\n"), name
        assert done.stderr.count("\n") == 1, (name, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout, name
        assert done.stdout == "", name
        assert fingerprint(target / "desktop-chat.sqlite3") == before, name
