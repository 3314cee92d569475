"""Import and export of files: whole-file semantics, bad files, Markdown, folders, file names."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop_chat.errors import BadInputError
from desktop_chat.services import transfer
from desktop_chat.services.workspace import Workspace
from tests.unit.storage.sample import digest, populate


@pytest.fixture
def workspace(data_dir: Path) -> Iterator[Workspace]:
    opened = Workspace.open()
    yield opened
    opened.close()


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Workspace]:
    opened = Workspace.open(tmp_path / "other")
    yield opened
    opened.close()


def export_file(workspace: Workspace, path: Path, ids: list[str] | None = None) -> Any:
    with path.open("w", encoding="utf-8") as handle:
        transfer.export_json(workspace.repo, handle, ids)
    return json.loads(path.read_text(encoding="utf-8"))


def test_file_round_trip_and_reimport(
    workspace: Workspace, other: Workspace, tmp_path: Path
) -> None:
    populate(workspace.repo)
    first = export_file(workspace, tmp_path / "first.json")
    fmt, result = transfer.import_file(other.repo, tmp_path / "first.json")
    total = sum(len(c["tree"]) for c in first["conversations"])
    assert fmt == "desktop-chat"
    assert (result.conversations_added, result.messages_added) == (3, total)
    second = export_file(other, tmp_path / "second.json")
    assert second["conversations"] == first["conversations"]
    before = digest(other.paths.database)
    _, again = transfer.import_file(other.repo, tmp_path / "second.json")
    assert (again.conversations_added, again.messages_added) == (0, 0)
    assert (again.conversations_existing, again.messages_existing) == (3, total)
    assert digest(other.paths.database) == before


def test_progress_is_reported(workspace: Workspace, other: Workspace, tmp_path: Path) -> None:
    populate(workspace.repo)
    export_file(workspace, tmp_path / "all.json")
    calls: list[tuple[int, int | None]] = []
    transfer.import_file(
        other.repo, tmp_path / "all.json", progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]


def valid_document(workspace: Workspace) -> dict[str, Any]:
    ids = populate(workspace.repo)
    out = io.StringIO()
    transfer.export_json(workspace.repo, out, ids)  # trip (with messages) first
    return json.loads(out.getvalue())


BAD_FILES: dict[str, tuple[bytes | None, str]] = {
    "missing": (None, "no such file"),
    "empty": (b"", "is empty"),
    "invalid JSON": (b"{not json}", "not valid JSON"),
    "truncated": (b'{"format": "desktop-chat", "version": 1, "conversations": [{"id"', "truncated"),
    "not UTF-8": (b"\x80\x81 garbage", "not a text file"),
    "a bare list": (b"[1, 2, 3]", "not an export"),
    "wrong format": (
        b'{"format": "other-app", "version": 1, "conversations": []}',
        "not an export",
    ),
    "future version": (
        b'{"format": "desktop-chat", "version": 7, "conversations": []}',
        "newer than this app",
    ),
    "deeply nested": (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_raise_bad_input_and_change_nothing(
    case: str, other: Workspace, tmp_path: Path
) -> None:
    content, words = BAD_FILES[case]
    path = tmp_path / "input.json"
    if content is not None:
        path.write_bytes(content)
    before = digest(other.paths.database)
    with pytest.raises(BadInputError, match=words) as caught:
        transfer.import_file(other.repo, path)
    assert "\n" not in str(caught.value)
    assert digest(other.paths.database) == before


def test_a_folder_is_refused(other: Workspace, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="is a folder"):
        transfer.import_file(other.repo, tmp_path)


@pytest.mark.parametrize(
    "case",
    [
        ("title", 1, "conversations[1].title"),
        ("created_at", "not a time", "conversations[1].created_at"),
        ("archived", "no", "conversations[1].archived"),
        ("tree", None, "conversations[1].tree"),
    ],
)
def test_second_conversation_bad_rolls_back_the_first(
    workspace: Workspace, other: Workspace, tmp_path: Path, case: tuple[str, Any, str]
) -> None:
    field, value, named = case
    document = valid_document(workspace)
    document["conversations"][1][field] = value
    path = tmp_path / "half.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    before = digest(other.paths.database)
    with pytest.raises(BadInputError, match=named.replace("[", r"\[").replace("]", r"\]")):
        transfer.import_file(other.repo, path)
    assert digest(other.paths.database) == before
    assert other.repo.conversation_ids() == []


class FailingFile(io.StringIO):
    """A file that fills up after ``room`` characters, as a full disk does."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room

    def write(self, text: str) -> int:
        if self.tell() + len(text) > self.room:
            raise OSError(28, "No space left on device")
        return super().write(text)


@pytest.mark.parametrize("writer", [transfer.export_json, transfer.export_markdown])
def test_a_failed_export_leaves_no_transaction_open(workspace: Workspace, writer: Any) -> None:
    """An export that fails half-way (a full disk) ends its read transaction there and
    then: left open, it would hold the WAL back and swallow this thread's next writes."""
    repo = workspace.repo
    populate(repo)
    with pytest.raises(OSError, match="No space") as failed:
        writer(repo, FailingFile(room=200), None)
    # The error is still held, as it is while a job thread reports it and cleans up.
    assert failed.traceback
    assert not repo.db.in_transaction()
    repo.update_conversation(repo.conversation_ids()[0], title="Written after")
    other = Workspace.open()  # another connection sees it: it was committed
    try:
        assert other.repo.get_conversation(repo.conversation_ids()[0]).title == "Written after"
    finally:
        other.close()


def test_export_markdown_of_several(workspace: Workspace) -> None:
    ids = populate(workspace.repo)
    out = io.StringIO()
    assert transfer.export_markdown(workspace.repo, out, ids[:2]) == 2
    text = out.getvalue()
    assert text.startswith("# Trip to Kyoto 京都\n")
    assert "\n---\n\n# Sourdough\n" in text
    assert "Nishiki Market has" in text
    assert "Try 75%." in text


@pytest.mark.parametrize(
    ("title", "taken", "expected"),
    [
        ("Plain", set(), "Plain"),
        ('a/b\\c:d*e?f"g<h>i|j', set(), "a b c d e f g h i j"),
        ("tabs\tand\nnewlines", set(), "tabs and newlines"),
        ("  dots and spaces. . ", set(), "dots and spaces"),
        ("", set(), "Untitled"),
        ("///", set(), "Untitled"),
        ("CON", set(), "_CON"),
        ("nul.txt", set(), "_nul.txt"),
        ("Same", {"same"}, "Same (2)"),
        ("Same", {"same", "same (2)"}, "Same (3)"),
        ("x" * 300, set(), "x" * 80),
        ("日本語のタイトル", set(), "日本語のタイトル"),
    ],
)
def test_safe_filename(title: str, taken: set[str], expected: str) -> None:
    before = set(taken)
    assert transfer.safe_filename(title, taken) == expected
    assert taken == before | {expected.lower()}


def test_safe_filename_collisions_in_a_row() -> None:
    taken: set[str] = set()
    names = [transfer.safe_filename(t, taken) for t in ("Notes", "notes", "NOTES", "Notes?")]
    assert names == ["Notes", "notes (2)", "NOTES (3)", "Notes (4)"]


def test_export_folder(workspace: Workspace, tmp_path: Path) -> None:
    ids = populate(workspace.repo)
    workspace.repo.create_conversation(title="Sourdough")  # the same title twice
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "Trip to Kyoto 京都.json").write_text("someone else's file")
    progress: list[tuple[int, int | None]] = []
    count = transfer.export_folder(
        workspace.repo, folder, None, progress=lambda d, t: progress.append((d, t))
    )
    assert count == 4
    assert progress[-1] == (4, 4)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        [
            "Trip to Kyoto 京都.json",  # untouched
            "Trip to Kyoto 京都 (2).json",
            "Trip to Kyoto 京都 (2).md",
            "Sourdough.json",
            "Sourdough.md",
            "Sourdough (2).json",
            "Sourdough (2).md",
            "Untitled.json",
            "Untitled.md",
        ]
    )
    assert (folder / "Trip to Kyoto 京都.json").read_text() == "someone else's file"
    one = json.loads((folder / "Trip to Kyoto 京都 (2).json").read_text(encoding="utf-8"))
    assert [c["id"] for c in one["conversations"]] == [ids[0]]
    markdown = (folder / "Trip to Kyoto 京都 (2).md").read_text(encoding="utf-8")
    assert markdown.startswith("# Trip to Kyoto 京都\n")
    # Each file imports on its own.
    fresh = Workspace.open(tmp_path / "fresh")
    _, result = transfer.import_file(fresh.repo, folder / "Trip to Kyoto 京都 (2).json")
    assert result.conversations_added == 1
    fresh.close()


# -- found by tests/unit/services/test_import_fuzz.py -------------------------------------


def own_document(conversation: dict[str, Any], node: dict[str, Any] | None = None) -> bytes:
    tree = [{"id": "m", "content": "hi", "created_at": "2024-01-01T00:00:00Z", **(node or {})}]
    base = {"id": "c", "created_at": "2024-01-01T00:00:00Z", "tree": tree, **conversation}
    document = {"format": "desktop-chat", "version": 1, "conversations": [base]}
    return json.dumps(document).encode()


def zipped(*members: tuple[str, bytes], encrypted: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members:
            archive.writestr(name, content)
    data = buffer.getvalue()
    if encrypted:  # the "encrypted" flag of the first central directory entry
        at = data.find(b"PK\x01\x02") + 8
        data = data[:at] + b"\x01\x00" + data[at + 2 :]
    return data


def broken_deflate() -> bytes:
    data = zipped(("conversations.json", b'[{"id": "x", "mapping": {}}]' * 20))
    at = data.find(b"conversations.json") + len("conversations.json")  # the deflate stream
    return data[:at] + b"\xff" * 8 + data[at + 8 :]  # block type 3: "invalid block type"


CHATGPT_ONE = b'[{"id": "x", "mapping": {}}]'
FUZZ_FINDS: dict[str, tuple[bytes, str]] = {
    # ValueError from json: Python reads at most 4300 digits (orjson had given up first).
    "a 5000-digit number": (b"[" + b"1" * 5000 + b"]", "number too long"),
    # orjson reads 1024 levels; json.dumps of the metadata then ran out of stack.
    "metadata 1000 deep": (
        own_document({}, {"metadata": {"x": "DEEP"}}).replace(b'"DEEP"', b"[" * 1000 + b"]" * 1000),
        "nests too deeply",
    ),
    # Stored as seconds, then unreadable: "year 10000 is out of range" on every later read.
    "a time past year 9999 in UTC": (
        own_document({"created_at": "9999-12-31T23:59:59-01:00"}),
        "conversations[0].created_at",
    ),
    "a time before year 1 in UTC": (
        own_document({}, {"created_at": "0001-01-01T00:00:00+01:00"}),
        "conversations[0].tree[0].created_at",
    ),
    # OverflowError from int(inf) in MemoryPolicy.from_json.
    "memory_policy.last_n 1e400": (
        own_document({"memory_policy": "X"}).replace(b'"X"', b'{"last_n": 1e400}'),
        "conversations[0].memory_policy",
    ),
    # OverflowError from sqlite3: an INTEGER column holds 64 bits.
    "token_count 2**63": (
        own_document({}, {"token_count": 2**63}),
        "conversations[0].tree[0].token_count",
    ),
    # The message quoted a parent id with a line break in it: two lines.
    "a parent id with a line break": (
        own_document({}, {"parent_id": "Day 1\n\nDay 2"}),
        "parent_id: Day 1 Day 2 is not in this tree",
    ),
    # RuntimeError, zlib.error and NotImplementedError escaped from ZipFile.read.
    "an encrypted zip member": (
        zipped(("conversations.json", CHATGPT_ONE), encrypted=True),
        "damaged zip",
    ),
    "a broken deflate stream": (broken_deflate(), "damaged zip"),
    # AttributeError (5 .get) and a dict's keys silently taken as conversations.
    "a zip shard that is a number": (
        zipped(("conversations-000.json", CHATGPT_ONE), ("conversations-001.json", b"5")),
        "conversations-001.json does not hold a list",
    ),
    "a zip shard whose conversations is an object": (
        zipped(
            ("conversations-000.json", CHATGPT_ONE),
            ("conversations-001.json", b'{"conversations": {"id": "y"}}'),
        ),
        "conversations-001.json does not hold a list",
    ),
}


@pytest.mark.parametrize("case", FUZZ_FINDS)
def test_fuzz_finds_are_refused_in_one_line(case: str, other: Workspace, tmp_path: Path) -> None:
    populate(other.repo)
    content, words = FUZZ_FINDS[case]
    path = tmp_path / "input.bin"
    path.write_bytes(content)
    before = digest(other.paths.database)
    with pytest.raises(BadInputError, match=re.escape(words)) as caught:
        transfer.import_file(other.repo, path)
    assert len(str(caught.value).splitlines()) == 1
    assert digest(other.paths.database) == before


def test_lone_surrogates_in_ids_and_models_are_stored(other: Workspace, tmp_path: Path) -> None:
    """UnicodeEncodeError from sqlite3 (and uuid5): ids and model names skipped storable()."""
    path = tmp_path / "own.json"
    path.write_bytes(own_document({"id": "c\ud800", "model": "m\udfff"}, {"id": "m\udc00"}))
    transfer.import_file(other.repo, path)
    tree = next(other.repo.iter_trees(["c\ufffd"]))
    assert tree.conversation.model == "m\ufffd"
    assert [m.id for m in tree.messages] == ["m\ufffd"]
    chatgpt = [
        {
            "id": "g\ud800",
            "default_model_slug": "\ud800",
            "mapping": {  # two keys that differ only in their lone surrogate
                f"k{chr(0xDC00 + i)}": {"message": {"author": {"role": "user"}, "content": None}}
                for i in range(2)
            },
        }
    ]
    path.write_text(json.dumps(chatgpt), encoding="ascii")
    _, result = transfer.import_file(other.repo, path)
    assert (result.conversations_added, result.messages_added) == (1, 2)  # keys stay distinct
    assert other.repo.list_conversations()[0].model == "\ufffd"


def test_times_outside_what_is_stored_fall_back(other: Workspace, tmp_path: Path) -> None:
    """OverflowError from astimezone and math.isfinite; year 10000 on reading it back."""
    times = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999999Z", 10**400, "1e400"]
    conversations = [
        {"id": f"t{i}", "create_time": value, "mapping": {}} for i, value in enumerate(times)
    ]
    path = tmp_path / "chatgpt.json"
    path.write_text(json.dumps(conversations), encoding="utf-8")
    _, result = transfer.import_file(other.repo, path)
    assert result.conversations_added == len(times)
    transfer.export_json(other.repo, io.StringIO(), None)  # every stored time reads back
