"""Import and export use cases: read any supported file into the store, write exports."""

from __future__ import annotations

import json
import re
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from desktop_chat.core.types import ConversationTree
from desktop_chat.errors import BadInputError
from desktop_chat.storage import ImportResult, Repository
from desktop_chat.storage import transfer as own

FORMATS = ("auto", "desktop-chat", "chatgpt", "claude")
ProgressFn = Callable[[int, int | None], None]


def read_json(path: Path) -> Any:
    """Load a JSON file or an export ``.zip``; every failure is one clear line."""
    if not path.exists():
        raise BadInputError(f"{path}: no such file.")
    if path.is_dir():
        raise BadInputError(f"{path} is a folder; give the export file inside it.")
    if path.stat().st_size == 0:
        raise BadInputError(f"{path} is empty.")
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{path} cannot be read: {exc.strerror or exc}.") from exc
    return _parse(raw, str(path))


def _parse(raw: bytes, name: str) -> Any:
    try:
        return orjson.loads(raw)  # about twice as fast as json on a large export
    except orjson.JSONDecodeError:
        pass  # lone surrogates, deep nesting or a real error: json decides, and says where
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise BadInputError(f"{name} is not a text file (it is not UTF-8).") from None
    except json.JSONDecodeError as exc:
        hint = " (the file looks truncated)" if exc.pos >= len(raw.rstrip()) - 1 else ""
        raise BadInputError(
            f"{name} is not valid JSON{hint}: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    except RecursionError:
        raise BadInputError(f"{name} nests too deeply to be an export.") from None
    except ValueError:
        # Python refuses integers of more than 4300 digits (CVE-2020-10735).
        raise BadInputError(f"{name} holds a number too long to be an export.") from None


def _read_zip(path: Path) -> Any:
    """ChatGPT and Claude exports come as a zip with ``conversations.json`` inside.

    Newer ChatGPT exports shard it (``conversations-000.json``, ...); the
    shards are concatenated in name order.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(
                n
                for n in archive.namelist()
                if re.fullmatch(r"(.*/)?conversations(-\d+)?\.json", n)
            )
            if not names:
                raise BadInputError(f"{path} is a zip without a conversations.json inside.")
            parts = [_parse(archive.read(name), f"{path.name}:{name}") for name in names]
    # A damaged member fails while it is read: a bad CRC (BadZipFile), a broken deflate
    # stream (zlib.error, EOFError), a password (RuntimeError), an unknown compression
    # method (NotImplementedError).
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        RuntimeError,
        NotImplementedError,
        OSError,
    ) as exc:
        raise BadInputError(f"{path} is a damaged zip file: {exc}.") from None
    if len(parts) == 1:
        return parts[0]
    merged: list[Any] = []
    for name, part in zip(names, parts, strict=True):
        inner = part.get("conversations", [part]) if isinstance(part, dict) else part
        if not isinstance(inner, list):
            raise BadInputError(f"{path.name}:{name} does not hold a list of conversations.")
        merged.extend(inner)
    return merged


def detect(data: Any) -> str:
    if own.is_own_format(data):
        return "desktop-chat"
    from desktop_chat.services.importers.chatgpt import looks_like_chatgpt
    from desktop_chat.services.importers.claude import looks_like_claude

    if looks_like_chatgpt(data):
        return "chatgpt"
    if looks_like_claude(data):
        return "claude"
    raise BadInputError(
        "This file is not an export this app knows "
        "(Desktop Chat JSON, ChatGPT's conversations.json or Claude's conversations.json)."
    )


def parse(data: Any, fmt: str = "auto") -> tuple[str, Iterator[ConversationTree], int | None]:
    """The format, the conversations it holds, and how many there are (if known)."""
    if fmt not in FORMATS:
        raise BadInputError(f"Unknown import format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if fmt == "auto":
        fmt = detect(data)
    if fmt == "desktop-chat":
        conversations = data.get("conversations") if isinstance(data, dict) else None
        total = len(conversations) if isinstance(conversations, list) else None
        return fmt, own.parse_document(data), total
    from desktop_chat.services.importers.chatgpt import parse_chatgpt
    from desktop_chat.services.importers.claude import parse_claude

    total = len(data) if isinstance(data, list) else None
    if fmt == "chatgpt":
        return fmt, parse_chatgpt(data), total
    return fmt, parse_claude(data), total


def import_file(
    repo: Repository,
    path: Path,
    *,
    fmt: str = "auto",
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> tuple[str, ImportResult]:
    """Import a file as a whole: all of it, or (on any bad conversation) nothing."""
    data = read_json(path)
    try:
        detected, trees, total = parse(data, fmt)
        result = repo.import_trees(trees, progress=progress, total=total, cancel=cancel)
    except RecursionError:
        # orjson reads up to 1024 levels; storing a value that deep as JSON text
        # overflows Python's stack. The transaction has been rolled back by now.
        raise BadInputError(f"{path} nests too deeply to be an export.") from None
    return detected, result


def export_json(repo: Repository, out: IO[str], conversation_ids: Iterable[str] | None) -> int:
    with repo.snapshot():
        return own.write_json(repo.iter_message_rows(conversation_ids), out)


def export_markdown(repo: Repository, out: IO[str], conversation_ids: Iterable[str] | None) -> int:
    count = 0
    with repo.snapshot():
        for tree in repo.iter_trees(conversation_ids):
            if count:
                out.write("\n---\n\n")
            out.write(own.to_markdown(tree))
            count += 1
    return count


def safe_filename(title: str, taken: set[str]) -> str:
    """A portable file name stem from a title, unique within ``taken``."""
    stem = re.sub(r'[\x00-\x1f<>:"/\\|?*]+', " ", title).strip(" .")
    stem = re.sub(r"\s+", " ", stem)[:80].rstrip(" .") or "Untitled"
    if stem.upper().split(".")[0] in {
        "CON",
        "PRN",
        "AUX",
        "NUL",
        *(f"COM{i}" for i in range(1, 10)),
    }:
        stem = f"_{stem}"
    candidate, n = stem, 2
    while candidate.lower() in taken:
        candidate = f"{stem} ({n})"
        n += 1
    taken.add(candidate.lower())
    return candidate


def export_folder(
    repo: Repository,
    folder: Path,
    conversation_ids: Iterable[str] | None,
    *,
    progress: ProgressFn | None = None,
) -> int:
    """One JSON and one Markdown file per conversation, named after its title."""
    folder.mkdir(parents=True, exist_ok=True)
    taken = {p.stem.lower() for p in folder.iterdir()}
    with repo.snapshot():
        ids = list(conversation_ids) if conversation_ids is not None else repo.conversation_ids()
        for done, (conversation, rows) in enumerate(repo.iter_message_rows(ids), start=1):
            stem = safe_filename(conversation.title, taken)
            with (folder / f"{stem}.json").open("w", encoding="utf-8") as handle:
                own.write_json([(conversation, rows)], handle)
            markdown = own.to_markdown(repo.tree_from_rows(conversation, rows))
            (folder / f"{stem}.md").write_text(markdown, encoding="utf-8")
            if progress is not None:
                progress(done, len(ids))
    return len(ids)
