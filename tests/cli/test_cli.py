"""The real `desktop-chat` entry points in subprocesses: commands, output shapes, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from desktop_chat import __version__
from desktop_chat.core.types import Role
from desktop_chat.services.workspace import Workspace
from tests.conftest import SHARED_DATA
from tests.unit.storage.sample import digest, imported_history, populate

MODULE = [sys.executable, "-m", "desktop_chat"]
SCRIPT = shutil.which("desktop-chat-cli", path=str(Path(sys.executable).parent))
ENTRY_POINTS = {
    "python -m": MODULE,
    "console script": [SCRIPT] if SCRIPT else None,
}


def run(*args: str, entry: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI with this test's environment (its data dir, no network keys)."""
    return subprocess.run(
        [*(entry or MODULE), *args], capture_output=True, text=True, timeout=60, check=False
    )


def ok(*args: str) -> subprocess.CompletedProcess[str]:
    done = run(*args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def assert_one_line_error(done: subprocess.CompletedProcess[str], words: str = "") -> None:
    """Exit 2 and exactly one line on stderr, which names the problem; no traceback."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert done.stderr.endswith("\n")
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.startswith("desktop-chat")
    assert words in done.stderr, done.stderr


def seed() -> list[str]:
    """Three plain conversations through the Python API, oldest first; their ids."""
    workspace = Workspace.open()
    ids = []
    for title in ("Tides explained", "Sourdough", "日本語のテスト"):
        conv = workspace.repo.create_conversation(title=title, model="gpt-4o")
        user = workspace.repo.append_message(conv.id, None, Role.USER, f"Tell me about {title}")
        workspace.repo.append_message(conv.id, user.id, Role.ASSISTANT, f"All about {title}.")
        ids.append(conv.id)
    workspace.close()
    return ids


def database(data_dir: Path) -> Path:
    return data_dir / "desktop-chat.sqlite3"


# -- basics ----------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_version(entry: str) -> None:
    argv = ENTRY_POINTS[entry]
    if argv is None:
        pytest.skip("the console script is not installed in this environment")
    done = run("--version", entry=argv)
    assert done.returncode == 0
    assert done.stdout == f"desktop-chat {__version__}\n"
    assert done.stderr == ""


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_help_names_every_command(entry: str) -> None:
    argv = ENTRY_POINTS[entry]
    if argv is None:
        pytest.skip("the console script is not installed in this environment")
    done = run("--help", entry=argv)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: desktop-chat")
    for command in ("list", "show", "search", "export", "import", "ask", "key", "backup"):
        assert f"\n    {command} " in done.stdout, command
    assert "--data-dir" in done.stdout
    sub = run("export", "--help", entry=argv)
    assert "--format" in sub.stdout
    assert "--all" in sub.stdout


def test_list_when_empty(data_dir: Path) -> None:
    done = ok("list")
    assert done.stdout == ""
    assert done.stderr == "No conversations yet.\n"
    assert json.loads(ok("list", "--json").stdout) == []
    assert database(data_dir).exists()  # the first command created the database


def test_list_text_and_json() -> None:
    ids = seed()
    lines = ok("list").stdout.splitlines()
    assert [line.split()[0] for line in lines] == ids[::-1]  # newest first
    assert lines[0].endswith("日本語のテスト")
    assert lines[0].split()[3] == "2"  # the message count column
    listing = json.loads(ok("list", "--json").stdout)
    assert [c["id"] for c in listing] == ids[::-1]
    for item in listing:
        assert {"id", "title", "created_at", "updated_at", "message_count"} <= set(item)
        assert isinstance(item["id"], str)
        assert item["created_at"].endswith("Z")
        assert item["updated_at"] >= item["created_at"]
        assert item["message_count"] == 2
    assert [c["title"] for c in listing] == ["日本語のテスト", "Sourdough", "Tides explained"]
    assert len(json.loads(ok("list", "--json", "--limit", "1").stdout)) == 1


def test_list_shows_pinned_first_and_hides_archived() -> None:
    ids = seed()
    workspace = Workspace.open()
    workspace.repo.update_conversation(ids[0], pinned=True)
    workspace.repo.update_conversation(ids[1], archived=True)
    workspace.close()
    listing = json.loads(ok("list", "--json").stdout)
    assert [c["id"] for c in listing] == [ids[0], ids[2]]
    assert listing[0]["pinned"] is True
    archived = json.loads(ok("list", "--json", "--archived").stdout)
    assert [c["id"] for c in archived] == [ids[1]]


def test_show_by_id_prefix_and_json() -> None:
    ids = seed()
    text = ok("show", ids[1]).stdout
    assert text.startswith("# Sourdough\n")
    assert f"id {ids[1]}" in text
    assert "[user]" in text
    assert "Tell me about Sourdough" in text
    assert "All about Sourdough." in text
    assert ok("show", ids[1][:8]).stdout == text
    shown = json.loads(ok("show", ids[0][:8], "--json").stdout)
    assert shown["id"] == ids[0]
    assert shown["title"] == "Tides explained"
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"]
    assert shown["messages"][1]["parent_id"] == shown["messages"][0]["id"]
    assert shown["current_leaf_id"] == shown["messages"][1]["id"]
    assert all(m["created_at"].endswith("Z") for m in shown["messages"])


def test_show_the_active_branch_with_statuses(data_dir: Path) -> None:
    workspace = Workspace.open()
    ids = populate(workspace.repo)
    workspace.close()
    text = ok("show", ids[0]).stdout
    assert "[system]\nYou are a travel agent." in text
    assert "Nishiki Market has" in text
    assert "· stopped" in text
    assert "Day 1: Fushimi Inari" in text
    assert "The server timed out" not in text  # another branch
    assert "still typing" not in text


def test_show_unknown_or_ambiguous_id() -> None:
    seed()
    assert_one_line_error(run("show", "ffffffff-nope"), "No conversation with id ffffffff-nope")
    assert_one_line_error(run("show", ""), "")


def test_search_text_json_and_limit() -> None:
    ids = seed()
    hits = json.loads(ok("search", "about", "--json").stdout)
    assert len(hits) == 6
    for hit in hits:
        assert {"conversation_id", "message_id", "snippet", "highlights", "role"} <= set(hit)
        start, end = hit["highlights"][0]
        assert hit["snippet"][start:end].lower() == "about"
    assert len(json.loads(ok("search", "about", "--json", "--limit", "2").stdout)) == 2
    cjk = json.loads(ok("search", "本語", "--json").stdout)
    assert {h["conversation_id"] for h in cjk} == {ids[2]}
    text = ok("search", "sourdough").stdout
    assert "[Sourdough]" in text
    assert ids[1] in text
    none = ok("search", "zebra")
    assert (none.stdout, none.stderr) == ("", "No matches for 'zebra'.\n")
    assert json.loads(ok("search", '"unbalanced', "--json").stdout) == []


# -- export and import -----------------------------------------------------------


def test_export_all_to_a_file_then_import_elsewhere(tmp_path: Path, data_dir: Path) -> None:
    workspace = Workspace.open()
    ids = populate(workspace.repo)
    workspace.close()
    target = tmp_path / "all.json"
    done = ok("export", "--all", "-o", str(target))
    assert done.stdout == ""
    assert done.stderr == "Exported 3 conversation(s).\n"
    document = json.loads(target.read_text(encoding="utf-8"))
    assert (document["format"], document["version"]) == ("desktop-chat", 1)
    assert sorted(c["id"] for c in document["conversations"]) == sorted(ids)
    messages = sum(len(c["tree"]) for c in document["conversations"])
    assert not list(tmp_path.glob(".*.partial"))

    other = tmp_path / "other"
    first = ok("--data-dir", str(other), "import", str(target))
    assert first.stdout == (
        f"Imported desktop-chat: 3 conversation(s) and {messages} message(s) added; "
        "0 conversation(s) and 0 message(s) were already there.\n"
    )
    before = digest(database(other))
    second = ok("--data-dir", str(other), "import", str(target))
    assert second.stdout == (
        "Imported desktop-chat: 0 conversation(s) and 0 message(s) added; "
        f"3 conversation(s) and {messages} message(s) were already there.\n"
    )
    assert digest(database(other)) == before
    again = tmp_path / "again.json"
    ok("--data-dir", str(other), "export", "--all", "-o", str(again))
    assert (
        json.loads(again.read_text(encoding="utf-8"))["conversations"]
        == (document["conversations"])
    )


def test_a_large_import_is_indexed_for_search_before_the_command_ends(
    tmp_path: Path, data_dir: Path
) -> None:
    workspace = Workspace.open()
    imported_history(workspace.repo, 5_100)  # past DEFER_INDEXING_AT
    (text,) = workspace.repo.db.execute_sql("SELECT content FROM message LIMIT 1").fetchone()
    workspace.close()
    ok("export", "--all", "-o", str(tmp_path / "all.json"))

    other = tmp_path / "other"
    ok("--data-dir", str(other), "import", str(tmp_path / "all.json"))
    imported = Workspace.open(other)
    try:
        assert imported.repo.count_unindexed() == 0
        (indexed,) = imported.repo.db.execute_sql(
            "SELECT count(*) FROM message_fts WHERE message_fts MATCH ?", (f'"{text[:30]}"',)
        ).fetchone()
        assert indexed >= 1
    finally:
        imported.close()
    found = ok("--data-dir", str(other), "search", "--json", text[:30])
    assert len(json.loads(found.stdout)) >= 1


def test_export_to_stdout_and_markdown() -> None:
    ids = seed()
    document = json.loads(ok("export", ids[1][:8]).stdout)
    assert [c["id"] for c in document["conversations"]] == [ids[1]]
    markdown = ok("export", ids[0], "--format", "markdown").stdout
    assert markdown == (
        "# Tides explained\n\n"
        + markdown.split("\n")[2]
        + "\n\n## You\n\nTell me about Tides explained\n\n"
        "## Assistant\n\nAll about Tides explained.\n"
    )
    assert markdown.split("\n")[2].startswith("*Created ")
    both = ok("export", ids[0], ids[2], "--format", "markdown").stdout
    assert both.count("\n---\n") == 1


def test_export_to_a_folder(tmp_path: Path) -> None:
    seed()
    folder = tmp_path / "folder"
    done = ok("export", "--all", "-o", f"{folder}/")
    assert done.stderr == "Exported 3 conversation(s).\n"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        f"{title}.{ext}"
        for title in ("Tides explained", "Sourdough", "日本語のテスト")
        for ext in ("json", "md")
    )
    one = json.loads((folder / "Sourdough.json").read_text(encoding="utf-8"))
    assert [c["title"] for c in one["conversations"]] == ["Sourdough"]


def test_export_usage_errors(tmp_path: Path) -> None:
    ids = seed()
    assert_one_line_error(run("export"), "--all")
    assert_one_line_error(run("export", ids[0], "--all"), "--all")
    assert_one_line_error(run("export", "nope"), "No conversation with id nope")
    blocked = tmp_path / "missing-folder" / "deeper" / "out.json"
    done = run("export", "--all", "-o", str(blocked))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "Cannot write" in done.stderr


def test_import_chatgpt_zip(tmp_path: Path) -> None:
    source = SHARED_DATA / "chatgpt-exports" / "realazthat-2023-09-code-interpreter.json"
    if not source.exists():
        pytest.skip("shared ChatGPT sample not present")
    archive = tmp_path / "chatgpt-export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(source, "conversations.json")
        zf.writestr("chat.html", "<html></html>")
    done = ok("import", str(archive))
    assert done.stdout.startswith("Imported chatgpt: 1 conversation(s) and 44 message(s) added")


# -- bad input -------------------------------------------------------------------


def exported(tmp_path: Path) -> dict[str, Any]:
    workspace = Workspace.open()
    ids = populate(workspace.repo)
    workspace.close()
    ok("export", *ids, "-o", str(tmp_path / "valid.json"))  # the branched one first
    return json.loads((tmp_path / "valid.json").read_text(encoding="utf-8"))


def node(d: dict[str, Any], conversation: int = 0, index: int = 0) -> dict[str, Any]:
    return d["conversations"][conversation]["tree"][index]


BAD_DOCUMENTS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "wrong format": (lambda d: d.update(format="slack"), "not an export this app knows"),
    "future version": (lambda d: d.update(version=99), "version 99, newer"),
    "conversations an object": (lambda d: d.update(conversations={}), "conversations"),
    "title a number": (lambda d: d["conversations"][0].update(title=3), "conversations[0].title"),
    "time a number": (
        lambda d: d["conversations"][0].update(created_at=12),
        "conversations[0].created_at",
    ),
    "role unknown": (lambda d: node(d).update(role="robot"), "conversations[0].tree[0].role"),
    "content a number": (
        lambda d: node(d).update(content=5),
        "conversations[0].tree[0].content",
    ),
    "status unknown": (
        lambda d: node(d).update(status="done"),
        "conversations[0].tree[0].status",
    ),
    "pinned a string": (
        lambda d: node(d).update(pinned="yes"),
        "conversations[0].tree[0].pinned",
    ),
    "parent not in the tree": (
        lambda d: node(d, 0, 3).update(parent_id="ghost"),
        "conversations[0].tree[3].parent_id",
    ),
    "cycle": (
        lambda d: node(d, 0, 0).update(parent_id=node(d, 0, 1)["id"]),
        "cycle",
    ),
    "second conversation broken": (
        lambda d: d["conversations"][1].update(tree="nope"),
        "conversations[1].tree",
    ),
}


@pytest.mark.parametrize("case", BAD_DOCUMENTS)
def test_bad_documents_exit_2_one_line_nothing_changed(case: str, tmp_path: Path) -> None:
    document = exported(tmp_path)
    change, words = BAD_DOCUMENTS[case]
    change(document)
    target = tmp_path / "fresh"
    ok("--data-dir", str(target), "list")  # an empty database to import into
    before = digest(database(target))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document), encoding="utf-8")
    assert_one_line_error(run("--data-dir", str(target), "import", str(bad)), words)
    assert digest(database(target)) == before
    assert json.loads(ok("--data-dir", str(target), "list", "--json").stdout) == []


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "no such file"),
        (b"", "is empty"),
        (b"{not json", "not valid JSON"),
        (b'{"format": "desktop-chat", "version": 1, "conversations": [{"id"', "truncated"),
        (b"\x80\x81garbage", "not a text file"),
        (b"[1, 2, 3]", "not an export"),
        (b"PK\x03\x04 not really a zip", "not valid JSON"),
    ],
)
def test_bad_files(tmp_path: Path, data_dir: Path, content: bytes | None, words: str) -> None:
    seed()
    before = digest(database(data_dir))
    path = tmp_path / "input.json"
    if content is not None:
        path.write_bytes(content)
    assert_one_line_error(run("import", str(path)), words)
    assert digest(database(data_dir)) == before


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    assert_one_line_error(run("import", str(tmp_path)), "is a folder")


@pytest.mark.slow
def test_a_200_mb_file_is_refused_cleanly(tmp_path: Path, data_dir: Path) -> None:
    seed()
    before = digest(database(data_dir))
    path = tmp_path / "huge.json"
    row = b'{"a": "' + b"x" * 1000 + b'"},\n'
    block = row * 1000
    with path.open("wb") as handle:
        handle.write(b"[")
        for _ in range(200):
            handle.write(block)
        handle.write(b'{"a": 1}]')
    assert path.stat().st_size > 200_000_000
    assert_one_line_error(run("import", str(path)), "not an export")
    assert digest(database(data_dir)) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["--bogus"],
        ["list", "--bogus"],
        ["list", "--limit", "many"],
        ["show"],
        ["search"],
        ["search", "x", "--limit", "0"],
        ["export", "--format", "pdf", "--all"],
        ["import"],
        ["import", "x.json", "--format", "word"],
    ],
)
def test_bad_usage_is_one_line_exit_2(argv: list[str]) -> None:
    assert_one_line_error(run(*argv))


def test_data_dir_option_puts_the_database_there(tmp_path: Path, data_dir: Path) -> None:
    chosen = tmp_path / "chosen"
    ok("--data-dir", str(chosen), "list")
    assert database(chosen).exists()
    assert not database(data_dir).exists()
    workspace = Workspace.open(chosen)
    workspace.repo.create_conversation(title="only in chosen")
    workspace.close()
    listing = json.loads(ok("--data-dir", str(chosen), "list", "--json").stdout)
    assert [c["title"] for c in listing] == ["only in chosen"]
    assert json.loads(ok("list", "--json").stdout) == []  # the env's data dir is separate
