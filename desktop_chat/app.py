"""The ``desktop-chat`` command: no subcommand opens the window; subcommands work headless.

Heavy modules (Qt, the OpenAI SDK, tiktoken) are imported inside the commands
that use them so ``--version`` and ``list`` start fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from desktop_chat import APP_ID, __version__
from desktop_chat.errors import BadInputError, UserFacingError

if TYPE_CHECKING:
    from desktop_chat.services.workspace import Workspace
    from desktop_chat.storage import Repository

log = logging.getLogger("desktop_chat")
Handler = Callable[[argparse.Namespace, "Workspace"], int]


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line on stderr and exit status 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=APP_ID,
        description="A desktop chat client for OpenAI and OpenAI-compatible servers. "
        "With no command, opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"{APP_ID} {__version__}")
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="keep data, settings and logs under DIR (env DESKTOP_CHAT_DATA_DIR)",
    )
    parser.add_argument(
        "--db-url", metavar="URL", help="database URL (env DESKTOP_CHAT_DB_URL); default SQLite"
    )
    parser.add_argument("--debug", action="store_true", help="log at debug level")
    parser.add_argument(
        "--selftest", action="store_true", help="check this installation end to end, offline"
    )
    parser.add_argument(
        "--install-desktop-entry",
        action="store_true",
        help="add Desktop Chat to your desktop's application menu",
    )
    parser.add_argument(
        "--uninstall-desktop-entry",
        action="store_true",
        help="remove Desktop Chat from the application menu",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = commands.add_parser("list", help="list conversations, newest first")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--archived", action="store_true", help="list archived conversations")
    p.add_argument("--limit", type=int, default=None, help="at most N conversations")
    p.set_defaults(handler=cmd_list)

    p = commands.add_parser("show", help="print the active thread of a conversation")
    p.add_argument("id", help="conversation id (a unique prefix is enough)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_show)

    p = commands.add_parser("search", help="full-text search over every conversation")
    p.add_argument("query")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--limit", type=int, default=50, help="at most N hits (default 50)")
    p.set_defaults(handler=cmd_search)

    p = commands.add_parser("export", help="export conversations to JSON or Markdown")
    p.add_argument("ids", nargs="*", metavar="ID", help="conversation ids (or prefixes)")
    p.add_argument("--all", action="store_true", help="export every conversation")
    p.add_argument("-o", "--output", default="-", help="file, folder (ending in /) or - for stdout")
    p.add_argument("--format", choices=("json", "markdown"), default="json")
    p.set_defaults(handler=cmd_export)

    p = commands.add_parser("import", help="import a Desktop Chat, ChatGPT or Claude export")
    p.add_argument("path", type=Path)
    p.add_argument(
        "--format", choices=("auto", "desktop-chat", "chatgpt", "claude"), default="auto"
    )
    p.set_defaults(handler=cmd_import)

    p = commands.add_parser("backup", help="list, create or restore database backups")
    p.add_argument("action", choices=("list", "create", "restore"))
    p.add_argument("name", nargs="?", help="the backup to restore (from `backup list`)")
    p.set_defaults(handler=cmd_backup)

    p = commands.add_parser(
        "encryption", help="encrypt the database at rest (SQLCipher, key in the OS keyring)"
    )
    p.add_argument("action", choices=("status", "on", "off"))
    p.set_defaults(handler=cmd_encryption)

    _add_model_commands(commands)
    return parser


def _add_model_commands(commands: Any) -> None:
    p = commands.add_parser("ask", help="send one message and stream the reply")
    which = p.add_mutually_exclusive_group()
    which.add_argument("-c", "--conversation", metavar="ID", help="continue this conversation")
    which.add_argument("--new", action="store_true", help="start a new conversation (default)")
    p.add_argument("--model", help="model to use")
    p.add_argument("--system", metavar="TEXT", help="system prompt for a new conversation")
    p.add_argument("--provider", help="provider name from settings")
    p.add_argument("text", help="the message, or - to read it from stdin")
    p.set_defaults(handler=cmd_ask)

    p = commands.add_parser("key", help="store or delete an API key in the OS keyring")
    p.add_argument("action", choices=("set", "delete"))
    p.add_argument("--provider", default="openai", help="provider name (default openai)")
    p.set_defaults(handler=cmd_key)


def main(argv: Sequence[str] | None = None) -> int:
    # Chat history is private: every file and folder the app creates (database,
    # logs, settings, backups, exports) is readable by this user only.
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except UserFacingError as exc:
        log.info("user-facing error: %s", exc, exc_info=exc.details is not None)
        _say(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        log.exception("unexpected error")
        where = _log_file_hint()
        _say(f"unexpected error: {type(exc).__name__}: {exc}{where}")
        return 1


def _say(message: str) -> None:
    print(f"{APP_ID}: {' '.join(message.split())}", file=sys.stderr)


def _log_file_hint() -> str:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return f" (details in {handler.baseFilename})"
    return ""


def _dispatch(args: argparse.Namespace) -> int:
    # These two never touch the user's data (the self-test works in a temporary folder).
    if args.selftest:
        from desktop_chat.selftest import run_selftest

        return run_selftest()
    if args.install_desktop_entry or args.uninstall_desktop_entry:
        from desktop_chat import desktop_entry

        if args.install_desktop_entry:
            print(desktop_entry.install())
        else:
            print(desktop_entry.uninstall())
        return 0
    from desktop_chat import paths

    app_paths = paths.resolve(args.data_dir).ensure()
    from desktop_chat.services.workspace import Workspace, setup_logging

    setup_logging(app_paths.log_file, debug=args.debug)
    if args.command is None:
        from desktop_chat.gui.application import run_gui

        return run_gui(data_dir=args.data_dir, db_url=args.db_url)
    workspace = Workspace.open(args.data_dir, db_url=args.db_url)
    if workspace.notice:
        _say(workspace.notice)
    try:
        handler: Handler = args.handler
        return handler(args, workspace)
    finally:
        workspace.close()


# -- subcommands ---------------------------------------------------------------


def _print_json(value: Any) -> None:
    import json

    from desktop_chat.storage.transfer import json_default

    json.dump(value, sys.stdout, ensure_ascii=False, indent=2, default=json_default)
    sys.stdout.write("\n")


def _resolve_id(workspace: Workspace, given: str) -> str:
    """A full conversation id, from the id or a unique prefix of it."""
    rows = workspace.repo.db.execute_sql(
        "SELECT uuid FROM conversation WHERE uuid >= ? AND uuid < ? LIMIT 2",
        (given, given + "\uffff"),
    ).fetchall()
    if not rows:
        raise BadInputError(f"No conversation with id {given}.")
    if len(rows) > 1 and rows[0][0] != given:
        raise BadInputError(f"The id prefix {given} matches several conversations; give more.")
    return str(rows[0][0])


def cmd_list(args: argparse.Namespace, workspace: Workspace) -> int:
    import time

    from desktop_chat.core.types import to_iso

    conversations = workspace.repo.list_lines(limit=args.limit, archived=args.archived)
    if args.json:
        _print_json(
            [
                {
                    "id": c.id,
                    "title": c.title,
                    "created_at": to_iso(c.created_at),
                    "updated_at": to_iso(c.updated_at),
                    "message_count": c.message_count,
                    "pinned": c.pinned,
                    "archived": c.archived,
                    "model": c.model,
                }
                for c in conversations
            ]
        )
        return 0
    if not conversations:
        print("No conversations yet.", file=sys.stderr)
    # One write, and the local time through the C library: listing thousands of
    # conversations print() by print() and datetime.astimezone() took a third of a second.
    sys.stdout.write(
        "".join(
            f"{c.id}  {time.strftime('%Y-%m-%d %H:%M', time.localtime(c.updated_at.timestamp()))}"
            f"  {c.message_count:>5}  {'* ' if c.pinned else ''}{c.title or 'Untitled'}\n"
            for c in conversations
        )
    )
    return 0


def cmd_show(args: argparse.Namespace, workspace: Workspace) -> int:
    from desktop_chat.core.types import to_iso
    from desktop_chat.storage.transfer import message_json

    repo = workspace.repo
    conversation = repo.get_conversation(_resolve_id(workspace, args.id))
    thread = repo.thread(conversation.id)
    if args.json:
        _print_json(
            {
                "id": conversation.id,
                "title": conversation.title,
                "created_at": to_iso(conversation.created_at),
                "updated_at": to_iso(conversation.updated_at),
                "model": conversation.model,
                "system_prompt": conversation.system_prompt,
                "current_leaf_id": conversation.current_leaf_id,
                "messages": [message_json(m) for m in thread],
            }
        )
        return 0
    out = [f"# {conversation.title or 'Untitled'}", f"id {conversation.id}"]
    if conversation.system_prompt:
        out += ["", "[system]", conversation.system_prompt]
    for message in thread:
        if message.hidden:
            continue
        label = message.role.value
        if message.model and message.role.value == "assistant":
            label += f" · {message.model}"
        if message.status.value != "complete":
            label += f" · {message.status.value}"
        when = message.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
        out += ["", f"[{label}] {when}", message.content]
        if message.error:
            out.append(f"(error: {message.error})")
    print("\n".join(out))
    return 0


def cmd_search(args: argparse.Namespace, workspace: Workspace) -> int:
    from desktop_chat.core.types import to_iso

    if args.limit < 1:
        raise BadInputError("--limit must be at least 1.")
    hits = workspace.repo.search(args.query, limit=args.limit)
    if args.json:
        _print_json(
            [
                {
                    "conversation_id": h.conversation_id,
                    "conversation_title": h.conversation_title,
                    "message_id": h.message_id,
                    "role": h.role.value if h.role else None,
                    "snippet": h.snippet,
                    "highlights": [list(span) for span in h.highlights],
                    "created_at": to_iso(h.created_at),
                }
                for h in hits
            ]
        )
        return 0
    if not hits:
        print(f"No matches for {args.query!r}.", file=sys.stderr)
    bold = sys.stdout.isatty()
    for h in hits:
        snippet = h.snippet
        for start, end in reversed(h.highlights):
            mark = ("\x1b[1m", "\x1b[0m") if bold else ("[", "]")
            snippet = snippet[:start] + mark[0] + snippet[start:end] + mark[1] + snippet[end:]
        where = h.message_id or "title"
        print(f"{h.conversation_id}  {where}  {h.conversation_title!s:.40}\n    {snippet}")
    return 0


def cmd_export(args: argparse.Namespace, workspace: Workspace) -> int:
    from desktop_chat.services import transfer

    if args.all == bool(args.ids):
        raise BadInputError("Name conversation ids to export, or use --all (not both).")
    ids = None if args.all else [_resolve_id(workspace, given) for given in args.ids]
    writer = transfer.export_json if args.format == "json" else transfer.export_markdown
    if args.output == "-":
        count = writer(workspace.repo, sys.stdout, ids)
    elif args.output.endswith(("/", os.sep)) or Path(args.output).is_dir():
        count = transfer.export_folder(workspace.repo, Path(args.output), ids)
    else:
        target = Path(args.output)
        tmp = target.with_name(f".{target.name}.partial")
        try:
            with tmp.open("w", encoding="utf-8") as handle:
                count = writer(workspace.repo, handle, ids)
            tmp.replace(target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise UserFacingError(f"Cannot write {target}: {exc.strerror or exc}.") from exc
    print(f"Exported {count} conversation(s).", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace, workspace: Workspace) -> int:
    from desktop_chat.services import transfer

    show = sys.stderr.isatty()

    def progress(done: int, total: int | None) -> None:
        if show and (done % 25 == 0 or done == total):
            of = f"/{total}" if total else ""
            print(f"\rImporting conversations: {done}{of}", end="", file=sys.stderr, flush=True)

    fmt, result = transfer.import_file(
        workspace.repo, args.path, fmt=args.format, progress=progress
    )
    if show:
        print(file=sys.stderr)
    _index_for_search(workspace.repo, show)
    existing = result.conversations_existing + result.conversations_updated
    print(
        f"Imported {fmt}: {result.conversations_added} conversation(s) and "
        f"{result.messages_added} message(s) added; {existing} conversation(s) and "
        f"{result.messages_existing} message(s) were already there"
        + (
            f" ({result.conversations_updated} updated with new messages)."
            if result.conversations_updated
            else "."
        )
    )
    return 0


def _index_for_search(repo: Repository, show: bool) -> None:
    """Index what a large import left for later (the window does it in the background;
    this process ends, and a search right after should not have to read every message)."""
    total = repo.count_unindexed()
    done = 0
    # 16 million characters a transaction: a few seconds each, so a window open on the
    # same data waits at most that long to write.
    while covered := repo.index_pending(16_000_000):
        done = min(total, done + covered)
        if show:
            print(f"\rIndexing for search: {done}/{total}", end="", file=sys.stderr, flush=True)
    if show and total:
        print(file=sys.stderr)


def cmd_ask(args: argparse.Namespace, workspace: Workspace) -> int:
    from desktop_chat.cli_ask import run_ask

    return run_ask(args, workspace, _resolve_id)


def cmd_key(args: argparse.Namespace, workspace: Workspace) -> int:
    import getpass

    from desktop_chat import secrets

    if args.action == "delete":
        secrets.delete_api_key(args.provider)
        print(f"Deleted the API key for {args.provider}.", file=sys.stderr)
        return 0
    if sys.stdin.isatty():
        key = getpass.getpass(f"API key for {args.provider} (input hidden): ")
    else:
        key = sys.stdin.readline()
    key = key.strip()
    if not key:
        raise BadInputError("No key given; nothing was stored.")
    secrets.set_api_key(args.provider, key)
    print(f"Stored the API key for {args.provider} in the OS keyring.", file=sys.stderr)
    return 0


def cmd_backup(args: argparse.Namespace, workspace: Workspace) -> int:
    from desktop_chat.storage import backup

    folder = workspace.paths.backups
    if args.action == "list":
        backups = backup.list_backups(folder)
        if not backups:
            print("No backups yet.", file=sys.stderr)
        for item in backups:
            when = item.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
            print(f"{item.name}  {when}  {item.kind:<13}  {item.size / 1e6:8.1f} MB")
        return 0
    if args.action == "create":
        made = backup.create(workspace.paths.database, folder, "manual", key=workspace.db_key)
        print(f"Created {made.name} in {folder}.", file=sys.stderr)
        return 0
    if not args.name:
        raise BadInputError("Name the backup to restore (see `desktop-chat backup list`).")
    source = folder / Path(args.name).name
    workspace.close()  # never replace a file under an open connection
    moved = backup.restore(source, workspace.paths.database, key=workspace.db_key)
    kept = f" The replaced database was kept as {moved}." if moved else ""
    print(f"Restored {source.name}.{kept}", file=sys.stderr)
    return 0


def cmd_encryption(args: argparse.Namespace, workspace: Workspace) -> int:
    from desktop_chat.services import encryption

    if args.db_url or os.environ.get("DESKTOP_CHAT_DB_URL"):
        raise BadInputError("Encryption applies to the built-in SQLite database, not --db-url.")
    if args.action == "status":
        print(encryption.status(workspace.paths, workspace.settings).describe())
        return 0
    enabled = args.action == "on"
    workspace.close()  # the file is rewritten: no connection may stay open on it
    changed = encryption.set_encryption(workspace.paths, workspace.settings, enabled=enabled)
    state = "encrypted" if enabled else "decrypted"
    if changed:
        print(f"The database is now {state}.", file=sys.stderr)
    else:
        print(f"The database was already {state}; nothing to do.", file=sys.stderr)
    return 0
