"""``desktop-chat ask``: one turn through the same pipeline as the window, streamed to stdout."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
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
    cancel = threading.Event()
    events = service.run(turn, cancel)
    printed = 0
    finished: ReplyFinished | None = None
    previous = signal.signal(signal.SIGINT, _stop_on_interrupt(cancel))
    try:
        for event in events:
            if isinstance(event, ReplyText):
                sys.stdout.write(event.text[printed:])
                sys.stdout.flush()
                printed = len(event.text)
            elif isinstance(event, ReplyStatus) and event.text:
                print(event.text, file=sys.stderr)
            elif isinstance(event, ReplyFinished):
                finished = event
    except KeyboardInterrupt:  # a second Ctrl-C: stop here and now
        events.close()  # saves the partial reply as stopped
        finished = None
    finally:
        signal.signal(signal.SIGINT, previous)
    if printed:
        sys.stdout.write("\n")
    stopped = finished is None or finished.status is MessageStatus.STOPPED
    if stopped:
        print("desktop-chat: stopped; the partial reply is saved.", file=sys.stderr)
    print(f"conversation: {conversation_id}", file=sys.stderr)
    if finished is not None and finished.error is not None:
        raise for_the_terminal(finished.error, conversation_id)
    return 130 if stopped else 0


def _stop_on_interrupt(cancel: threading.Event) -> Callable[[int, object], None]:
    """Ctrl-C stops the reply the way the window's Stop does, through ``cancel``; a
    second one raises KeyboardInterrupt at once.

    Only setting a flag: Python raises KeyboardInterrupt wherever the main thread is,
    and inside a finalizer that the garbage collector runs mid-stream it is printed
    and dropped, so the reply went on to its end as if nothing had been pressed.
    """

    def handler(_signum: int, _frame: object) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    return handler
