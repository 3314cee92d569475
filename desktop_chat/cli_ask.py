"""``desktop-chat ask``: one turn through the same pipeline as the window, streamed to stdout."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from desktop_chat.core.types import MessageStatus
from desktop_chat.errors import BadInputError, UserFacingError

if TYPE_CHECKING:
    from desktop_chat.services.chat import ChatService
    from desktop_chat.services.workspace import Workspace


def _read_text(given: str) -> str:
    text = sys.stdin.read() if given == "-" else given
    if not text.strip():
        raise BadInputError("The message is empty; nothing was sent.")
    return text


def _conversation(
    args: argparse.Namespace,
    service: ChatService,
    resolve_id: Callable[[Workspace, str], str],
) -> str:
    """The conversation to continue (``-c``), or a new one."""
    if not args.conversation:
        return service.new_conversation(model=args.model, system_prompt=args.system).id
    conversation_id = resolve_id(service.workspace, args.conversation)
    if args.model:
        service.repo.update_conversation(conversation_id, model=args.model)
    if args.system is not None:
        service.repo.update_conversation(conversation_id, system_prompt=args.system)
    return conversation_id


# The client words its advice for the window (where it is also stored with the
# reply); on the terminal the same steps are commands.
TERMINAL_WORDS = (
    ("Open Settings → Providers to replace it.", "Store a new one with `desktop-chat key set`."),
    ("in Settings → Providers", "(OPENAI_BASE_URL or the app's settings)"),
    ("in this chat's settings", "with `ask --model`"),
    ("use Continue or Retry.", "go on with `desktop-chat ask -c {id} TEXT`."),
    ("Retry in a moment.", "Try again in a moment with `desktop-chat ask -c {id} TEXT`."),
)


def for_the_terminal(error: UserFacingError, conversation_id: str) -> UserFacingError:
    """``error`` with the window's advice replaced by the commands that do the same."""
    message = error.message
    for window, terminal in TERMINAL_WORDS:
        message = message.replace(window, terminal.format(id=conversation_id))
    if message == error.message:
        return error
    return UserFacingError(message, details=error.details)


def run_ask(
    args: argparse.Namespace,
    workspace: Workspace,
    resolve_id: Callable[[Workspace, str], str],
) -> int:
    from desktop_chat.services.chat import ChatService, ReplyFinished, ReplyStatus, ReplyText

    text = _read_text(args.text)
    if args.provider:
        workspace.settings.active_provider = workspace.settings.provider(args.provider).name
    service = ChatService(workspace)
    conversation_id = _conversation(args, service, resolve_id)
    try:
        turn = service.send(conversation_id, text)  # committed before any request
    except UserFacingError:
        # The message is saved even when it cannot be sent: say where it is.
        print(f"conversation: {conversation_id}", file=sys.stderr)
        raise
    cancel, streaming = threading.Event(), threading.Event()
    events = service.run(turn, cancel)
    printed = 0
    finished: ReplyFinished | None = None
    try:
        with _ctrl_c_stops(cancel, streaming):
            for event in events:
                if isinstance(event, ReplyText):
                    streaming.set()
                    sys.stdout.write(event.text[printed:])
                    sys.stdout.flush()
                    printed = len(event.text)
                elif isinstance(event, ReplyStatus) and event.text:
                    print(event.text, file=sys.stderr)
                elif isinstance(event, ReplyFinished):
                    finished = event
    except KeyboardInterrupt:
        events.close()  # saves the partial reply as stopped
        finished = None
    if printed:
        sys.stdout.write("\n")
    stopped = finished is None or finished.status is MessageStatus.STOPPED
    if stopped:
        print("desktop-chat: stopped; the partial reply is saved.", file=sys.stderr)
    print(f"conversation: {conversation_id}", file=sys.stderr)
    if finished is not None and finished.error is not None:
        raise for_the_terminal(finished.error, conversation_id)
    return 130 if stopped else 0


@contextlib.contextmanager
def _ctrl_c_stops(cancel: threading.Event, streaming: threading.Event) -> Iterator[None]:
    """While the reply streams, Ctrl-C stops it the way the window's Stop does, through
    ``cancel``; before that (connecting, waiting for the server, summarising), and on a
    second Ctrl-C, it raises KeyboardInterrupt as usual.

    Only a flag while streaming: Python raises KeyboardInterrupt wherever the main
    thread is, and inside a finalizer that the garbage collector runs mid-stream it is
    printed and dropped, so the reply went on to its end as if nothing had been pressed.
    Where Ctrl-C is ignored (started in the background) or handled outside Python, it
    stays so.
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN or previous is None:
        yield
        return

    def handler(_signum: int, _frame: object) -> None:
        if cancel.is_set() or not streaming.is_set():
            raise KeyboardInterrupt
        cancel.set()

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
