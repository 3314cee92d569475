"""The export format: matches its JSON Schema, round-trips losslessly, rejects bad documents."""

from __future__ import annotations

import copy
import io
import json
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from desktop_chat.core.types import MessageStatus, Role
from desktop_chat.errors import BadInputError
from desktop_chat.storage import ImportResult, Repository, open_database, transfer
from tests.unit.storage.sample import digest, populate

Doc = dict[str, Any]


def load_schema() -> dict[str, Any]:
    """The schema as installed with the package (desktop_chat.resources)."""
    text = resources.files("desktop_chat.resources") / "schema" / "desktop-chat-export.schema.json"
    return json.loads(text.read_text(encoding="utf-8"))


VALIDATOR = jsonschema.Draft202012Validator(
    load_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def open_repo(folder: Path) -> Repository:
    return Repository(open_database(folder / "desktop-chat.sqlite3"))


@pytest.fixture
def repo(data_dir: Path) -> Iterator[Repository]:
    repository = open_repo(data_dir)
    yield repository
    repository.close()


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[Repository]:
    repository = open_repo(tmp_path / "elsewhere")
    yield repository
    repository.close()


def export(repo: Repository, ids: list[str] | None = None) -> Doc:
    out = io.StringIO()
    count = transfer.write_json(repo.iter_message_rows(ids), out)
    document = json.loads(out.getvalue())
    assert count == len(document["conversations"])
    return document


def import_doc(repo: Repository, document: Doc) -> ImportResult:
    return repo.import_trees(transfer.parse_document(document))


def test_schema_is_valid_draft_2020_12() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_export_validates_against_the_schema(repo: Repository) -> None:
    ids = populate(repo)
    document = export(repo)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(document)]
    assert errors == []
    assert (document["format"], document["version"]) == ("desktop-chat", 1)
    assert document["exported_at"].endswith("Z")
    assert [c["id"] for c in document["conversations"]] == ids[::-1]  # newest first
    trip = document["conversations"][2]
    assert trip["memory_policy"] == {"kind": "summary", "last_n": 8, "recent_tokens": 2000}
    assert {n["status"] for n in trip["tree"]} == {
        "complete",
        "error",
        "stopped",
        "interrupted",
    }
    assert trip["messages"] == [
        {"role": "system", "content": "You are a travel agent."},
        {"role": "user", "content": "Plan three days in Kyoto"},
        {
            "role": "assistant",
            "content": "Day 1: Fushimi Inari at dawn.\n\nDay 2: Arashiyama.",
        },
        {"role": "user", "content": "And where to eat? 🍜"},
        {"role": "assistant", "content": "Nishiki Market has"},
    ]  # hidden and tool messages left out; the active branch only


def test_a_message_reads_the_same_in_show_and_in_the_export(repo: Repository) -> None:
    """``show --json`` writes messages with ``message_json``; the export from stored rows."""
    populate(repo)
    exported = {n["id"]: n for c in export(repo)["conversations"] for n in c["tree"]}
    shown = {
        m.id: json.loads(transfer.encode(transfer.message_json(m))) for m in all_messages(repo)
    }
    assert shown == exported
    written = {key for node in exported.values() for key in node}
    assert {"metadata", "model", "error", "prompt_tokens"} <= written


def test_a_snapshot_reads_one_moment_while_chats_change(repo: Repository) -> None:
    """A chat deleted in the middle of a long export is exported whole or not at all,
    never as a header whose messages are gone (that file could not be imported back)."""
    populate(repo)
    last_id = repo.conversation_ids()[-1]
    with repo.snapshot():
        stored = repo.iter_message_rows()
        first = next(stored)
        deleting = threading.Thread(target=repo.delete_conversation, args=(last_id,))
        deleting.start()
        deleting.join()
        exported = [first, *stored]
    assert exported[-1][0].id == last_id
    assert exported[-1][1]  # its messages, as they were when the export began
    assert last_id not in repo.conversation_ids()


def all_messages(repo: Repository) -> list[Any]:
    return [m for tree in repo.iter_trees() for m in tree.messages]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d.update(version=2), ["version"]),
        (lambda d: d["conversations"][0].update(created_at="2024-01-01T00:00:00+02:00"), None),
        (lambda d: d["conversations"][0]["tree"][0].update(role="robot"), None),
        (lambda d: d["conversations"][0]["tree"][0].update(status="done"), None),
        (lambda d: d["conversations"][0]["tree"][0].update(id=7), None),
        (lambda d: d["conversations"][0]["tree"][0].pop("parent_id"), None),
        (lambda d: d["conversations"][0].update(surprise=True), None),
    ],
)
def test_the_schema_is_not_vacuous(
    repo: Repository, change: Callable[[Doc], Any], where: list[str] | None
) -> None:
    document = export(repo, populate(repo))
    change(document)
    errors = list(VALIDATOR.iter_errors(document))
    assert errors
    if where is not None:
        assert list(errors[0].absolute_path) == where


def test_export_import_export_is_lossless(repo: Repository, empty: Repository) -> None:
    ids = populate(repo)
    first = export(repo)
    result = import_doc(empty, first)
    total = sum(len(c["tree"]) for c in first["conversations"])
    assert result == ImportResult(3, 0, 0, total, 0)
    second = export(empty)
    assert second["conversations"] == first["conversations"]
    for conv_id in ids:
        before, after = repo.get_conversation(conv_id), empty.get_conversation(conv_id)
        assert after == before
        assert empty.thread(conv_id) == repo.thread(conv_id)
        assert empty.usage_totals(conv_id) == repo.usage_totals(conv_id)
    trip = ids[0]
    leaf = repo.get_conversation(trip).current_leaf_id
    assert leaf is not None
    siblings = [m.id for m in repo.siblings(leaf)]
    assert [m.id for m in empty.siblings(leaf)] == siblings
    assert len(siblings) == 2
    assert empty.search("Fushimi")
    assert [h.message_id for h in empty.search("Fushimi")] == [
        h.message_id for h in repo.search("Fushimi")
    ]


def test_reimport_adds_nothing_and_says_so(repo: Repository, data_dir: Path) -> None:
    populate(repo)
    document = export(repo)
    before = digest(data_dir / "desktop-chat.sqlite3")
    total = sum(len(c["tree"]) for c in document["conversations"])
    assert import_doc(repo, document) == ImportResult(0, 0, 3, 0, total)
    assert digest(data_dir / "desktop-chat.sqlite3") == before


def test_reimport_adds_only_new_messages(repo: Repository, empty: Repository) -> None:
    ids = populate(repo)
    import_doc(empty, export(repo))
    recipe = ids[1]
    tail = repo.get_conversation(recipe).current_leaf_id
    added = repo.append_message(recipe, tail, Role.USER, "And for a baguette?")
    result = import_doc(empty, export(repo))
    assert result.conversations_updated == 1
    assert result.conversations_existing == 2
    assert result.messages_added == 1
    assert empty.get_message(added.id).parent_id == tail
    assert empty.get_conversation(recipe).current_leaf_id == added.id
    assert empty.get_conversation(recipe).message_count == 3


def test_markdown_is_the_active_thread(repo: Repository) -> None:
    ids = populate(repo)
    (tree,) = repo.iter_trees([ids[0]])
    text = transfer.to_markdown(tree)
    assert text.startswith("# Trip to Kyoto 京都\n")
    assert "model gpt-4o" in text
    assert "## System\n\nYou are a travel agent." in text
    assert "## You\n\nPlan three days in Kyoto" in text
    assert "## Assistant (gpt-4o)\n\nDay 1: Fushimi Inari at dawn." in text
    assert "## Assistant [stopped]\n\nNishiki Market has" in text
    assert "The server timed out" not in text  # the failed branch is not on the thread
    assert "still typing" not in text
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## System",
        "## You",
        "## Assistant (gpt-4o)",
        "## Tool",
        "## You",
        "## Assistant [stopped]",
    ]
    (untitled,) = repo.iter_trees([ids[2]])
    assert transfer.to_markdown(untitled).startswith("# Untitled\n")


# -- bad documents -------------------------------------------------------------


def first_node(d: Doc) -> Doc:
    return d["conversations"][0]["tree"][0]


BAD_FIELDS: dict[str, tuple[Callable[[Doc], Any], str]] = {
    "title a number": (
        lambda d: d["conversations"][0].update(title=5),
        "conversations[0].title",
    ),
    "created_at a number": (
        lambda d: d["conversations"][0].update(created_at=1700000000),
        "conversations[0].created_at",
    ),
    "created_at not a time": (
        lambda d: d["conversations"][0].update(created_at="yesterday"),
        "conversations[0].created_at",
    ),
    "pinned a string": (
        lambda d: d["conversations"][0].update(pinned="yes"),
        "conversations[0].pinned",
    ),
    "params a list": (
        lambda d: d["conversations"][0].update(params=[1]),
        "conversations[0].params",
    ),
    "memory policy unknown": (
        lambda d: d["conversations"][0].update(memory_policy={"kind": "forget"}),
        "conversations[0].memory_policy",
    ),
    "memory policy recent_tokens text": (
        lambda d: d["conversations"][0]["memory_policy"].update(recent_tokens="lots"),
        "conversations[0].memory_policy",
    ),
    "tree an object": (
        lambda d: d["conversations"][0].update(tree={}),
        "conversations[0].tree",
    ),
    "node a string": (
        lambda d: d["conversations"][0]["tree"].__setitem__(0, "hello"),
        "conversations[0].tree[0]",
    ),
    "node id missing": (lambda d: first_node(d).pop("id"), "conversations[0].tree[0]"),
    "node id a number": (
        lambda d: first_node(d).update(id=12),
        "conversations[0].tree[0].id",
    ),
    "content a list": (
        lambda d: first_node(d).update(content=["a"]),
        "conversations[0].tree[0].content",
    ),
    "role unknown": (
        lambda d: first_node(d).update(role="robot"),
        "conversations[0].tree[0].role",
    ),
    "status unknown": (
        lambda d: first_node(d).update(status="finished"),
        "conversations[0].tree[0].status",
    ),
    "token_count text": (
        lambda d: first_node(d).update(token_count="12"),
        "conversations[0].tree[0].token_count",
    ),
    "token_count true": (
        lambda d: first_node(d).update(token_count=True),
        "conversations[0].tree[0].token_count",
    ),
    "node created_at null": (
        lambda d: first_node(d).update(created_at=None),
        "conversations[0].tree[0].created_at",
    ),
    "metadata a string": (
        lambda d: first_node(d).update(metadata="x"),
        "conversations[0].tree[0].metadata",
    ),
    "parent not in the tree": (
        lambda d: first_node(d).update(parent_id="nowhere"),
        "conversations[0].tree[0].parent_id",
    ),
    "leaf not in the tree": (
        lambda d: d["conversations"][0].update(current_leaf_id="nowhere"),
        "conversations[0].current_leaf_id",
    ),
    "second conversation broken": (
        lambda d: d["conversations"][1]["tree"][0].update(created_at="soon"),
        "conversations[1].tree[0].created_at",
    ),
    "conversations missing": (lambda d: d.pop("conversations"), "conversations"),
}


@pytest.mark.parametrize("case", BAD_FIELDS)
def test_bad_fields_are_named_and_nothing_is_stored(
    case: str, repo: Repository, empty: Repository, tmp_path: Path
) -> None:
    document = export(repo, populate(repo))  # the one with branches first
    change, field = BAD_FIELDS[case]
    change(document)
    before = digest(tmp_path / "elsewhere" / "desktop-chat.sqlite3")
    with pytest.raises(BadInputError) as caught:
        import_doc(empty, document)
    assert field in str(caught.value)
    assert "\n" not in str(caught.value)
    assert digest(tmp_path / "elsewhere" / "desktop-chat.sqlite3") == before
    assert empty.list_conversations() == []


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ([], "expected an object"),
        ({"format": "chatgpt", "version": 1, "conversations": []}, "not a Desktop Chat export"),
        ({"format": "desktop-chat", "conversations": []}, "version"),
        ({"format": "desktop-chat", "version": "1", "conversations": []}, "version"),
        ({"format": "desktop-chat", "version": 2, "conversations": []}, "newer"),
        ({"format": "desktop-chat", "version": 0, "conversations": []}, "version 0"),
    ],
)
def test_bad_envelopes(document: Any, words: str) -> None:
    with pytest.raises(BadInputError, match=words):
        list(transfer.parse_document(document))


def one_tree(*nodes: tuple[str, str | None]) -> Doc:
    """A one-conversation document with the given (id, parent_id) nodes."""
    return {
        "format": "desktop-chat",
        "version": 1,
        "conversations": [
            {
                "id": "c1",
                "title": "T",
                "created_at": "2024-01-01T00:00:00Z",
                "tree": [
                    {
                        "id": mid,
                        "parent_id": parent,
                        "role": "user",
                        "content": mid,
                        "created_at": "2024-01-01T00:00:00Z",
                    }
                    for mid, parent in nodes
                ],
            }
        ],
    }


@pytest.mark.parametrize(
    ("nodes", "words"),
    [
        ([("a", "b"), ("b", "a")], "cycle"),
        ([("r", None), ("a", "b"), ("b", "c"), ("c", "a")], "cycle"),
        ([("a", "a")], "cycle"),
        ([("a", None), ("a", None)], "same id"),
    ],
)
def test_broken_trees_are_refused(
    empty: Repository, tmp_path: Path, nodes: list[tuple[str, str | None]], words: str
) -> None:
    before = digest(tmp_path / "elsewhere" / "desktop-chat.sqlite3")
    with pytest.raises(BadInputError, match=words):
        import_doc(empty, one_tree(*nodes))
    assert digest(tmp_path / "elsewhere" / "desktop-chat.sqlite3") == before


def test_minimal_document_gets_defaults(empty: Repository) -> None:
    result = import_doc(empty, one_tree(("b", "a"), ("a", None)))  # children may come first
    assert result == ImportResult(1, 0, 0, 2, 0)
    conv = empty.get_conversation("c1")
    assert conv.current_leaf_id == "b"  # no leaf given: the newest leaf
    assert conv.updated_at == conv.created_at
    assert [m.id for m in empty.thread("c1")] == ["a", "b"]
    assert [m.status for m in empty.thread("c1")] == [MessageStatus.COMPLETE] * 2


def test_a_message_id_of_another_conversation_is_refused(repo: Repository, data_dir: Path) -> None:
    ids = populate(repo)
    taken = repo.thread(ids[1])[0].id  # a message of the "Sourdough" conversation
    document = one_tree((taken, None), ("child", taken))
    before = digest(data_dir / "desktop-chat.sqlite3")
    with pytest.raises(BadInputError, match=taken):
        import_doc(repo, document)
    assert digest(data_dir / "desktop-chat.sqlite3") == before
    assert repo.get_message(taken).conversation_id == ids[1]


def test_half_way_failure_rolls_back_the_whole_file(repo: Repository, empty: Repository) -> None:
    populate(repo)
    document = export(repo)
    broken = copy.deepcopy(document)
    broken["conversations"][1]["tree"][0]["parent_id"] = broken["conversations"][1]["tree"][0]["id"]
    with pytest.raises(BadInputError, match="cycle"):
        import_doc(empty, broken)
    assert empty.list_conversations() == []
    assert empty.list_conversations(archived=True) == []
    assert empty.search("Kyoto") == []
