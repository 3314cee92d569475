"""A turn, end to end: commit the user's message, plan the context, stream and save the reply.

Qt-free and synchronous: the GUI drives :meth:`ChatService.run` in a worker
thread, the CLI in the foreground. Nothing the user typed is lost (it is
committed before any request) and a crash loses at most a second of reply
(the streamed text is saved at least once a second).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from desktop_chat import secrets
from desktop_chat.core import catalog
from desktop_chat.core.context import ContextPlan, build_context
from desktop_chat.core.types import (
    Conversation,
    MemoryPolicy,
    Message,
    MessageStatus,
    PolicyKind,
    Role,
    utcnow,
)
from desktop_chat.errors import ApiError, StorageError, UserFacingError
from desktop_chat.llm.client import ChatClient, Delta, Finished, ProviderConfig, Thinking, Usage
from desktop_chat.services.settings import Provider
from desktop_chat.services.workspace import Workspace

log = logging.getLogger(__name__)

# Seconds between saves of a streaming reply. A save waits for the next chunk, so
# what a crash can lose is this plus a chunk's gap: 0.8 keeps it under the promised
# second (at 1.0, 200 kills found a worst loss of 1.01 s).
SAVE_EVERY = 0.8
DEFAULT_RESERVE = 4096
DRAFT_ID = "draft"  # the composer's text in a plan made before it is sent
TITLE_PROMPT = (
    "Write a short title (3 to 6 words) for this conversation. "
    "Reply with the title only, no quotes or punctuation at the end."
)
SUMMARY_PROMPT = (
    "Summarize the conversation so far for your own memory: keep facts, decisions, names, "
    "numbers, open questions and the user's preferences. Be concise; use bullet points."
)


@dataclass(frozen=True)
class Turn:
    """A prepared request: the reply will be a child of ``parent_id``."""

    conversation_id: str
    parent_id: str
    model: str
    provider: str
    plan: ContextPlan | None  # None: planned when the turn runs (see ChatService.send)
    continue_id: str | None = None  # continue this stopped reply instead of a new one


@dataclass(frozen=True)
class ReplyStarted:
    message: Message


@dataclass(frozen=True)
class ReplyText:
    message_id: str
    text: str  # the whole reply so far


@dataclass(frozen=True)
class ReplyStatus:
    text: str  # e.g. "Summarizing earlier messages…"


@dataclass(frozen=True)
class ReplyFinished:
    message_id: str | None
    status: MessageStatus
    error: UserFacingError | None = None
    usage: tuple[int, int] | None = None


TurnEvent = ReplyStarted | ReplyText | ReplyStatus | ReplyFinished


@dataclass
class _Reply:
    """What a streaming reply has become so far."""

    message: Message | None = None
    parts: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    saved_at: float = field(default_factory=time.monotonic)  # when the text was last saved
    usage: tuple[int, int] | None = None
    status: MessageStatus = MessageStatus.COMPLETE
    error: UserFacingError | None = None
    finish_reason: str | None = None


ClientFactory = Callable[[ProviderConfig], ChatClient]


def fallback_title(text: str) -> str:
    """A title from the first words of the user's message, when the model gives none."""
    words = " ".join(text.split())
    return (words[:57] + "…") if len(words) > 60 else (words or "New chat")


@dataclass
class ChatService:
    workspace: Workspace
    client_factory: ClientFactory = ChatClient
    _clients: dict[str, ChatClient] = field(default_factory=dict)

    @property
    def repo(self) -> Any:
        return self.workspace.repo

    # -- providers and models ----------------------------------------------

    def provider(self, name: str | None = None) -> Provider:
        return self.workspace.settings.provider(name)

    def provider_config(self, name: str | None = None) -> ProviderConfig:
        """The provider's settings with its key; OPENAI_* variables override them."""
        import os

        provider = self.provider(name)
        base_url = os.environ.get("OPENAI_BASE_URL") or provider.base_url
        return ProviderConfig(
            name=provider.name,
            base_url=base_url,
            api_key=secrets.get_api_key(provider.name),
            stall_timeout=provider.stall_timeout,
        )

    def client(self, name: str | None = None) -> ChatClient:
        config = self.provider_config(name)
        key = repr(config)
        if key not in self._clients:
            self._clients.clear()
            self._clients[key] = self.client_factory(config)
        return self._clients[key]

    def model_for(self, conversation: Conversation) -> str:
        return conversation.model or self.provider(conversation.provider).default_model

    def model_info(self, conversation: Conversation) -> catalog.ModelInfo:
        provider = self.provider(conversation.provider)
        return catalog.lookup(self.model_for(conversation), provider.model_overrides)

    # -- conversations ------------------------------------------------------

    def new_conversation(
        self, *, model: str | None = None, system_prompt: str | None = None
    ) -> Conversation:
        settings = self.workspace.settings
        params: dict[str, Any] = {}
        if settings.temperature is not None:
            params["temperature"] = settings.temperature
        if settings.max_output_tokens is not None:
            params["max_output_tokens"] = settings.max_output_tokens
        return self.repo.create_conversation(
            model=model or settings.provider().default_model,
            provider=settings.active_provider,
            system_prompt=settings.system_prompt if system_prompt is None else system_prompt,
            params=params,
            memory_policy=settings.default_policy(),
        )

    # -- planning -------------------------------------------------------------

    def plan(
        self, conversation_id: str, leaf_id: str | None = None, *, draft: str | None = None
    ) -> ContextPlan:
        """What the next request would carry, ending at ``leaf_id`` (default: current leaf).

        With a ``draft``, the plan is the one sending it would make: the draft
        joins the thread as the newest user message (id ``DRAFT_ID``), so a
        "last N" or a full budget drops what sending it really would.
        """
        conversation = self.repo.get_conversation(conversation_id)
        thread = self.repo.thread(conversation_id, leaf_id=leaf_id)
        if draft is not None:
            pending = Message(
                id=DRAFT_ID,
                conversation_id=conversation_id,
                parent_id=thread[-1].id if thread else None,
                role=Role.USER,
                content=draft,
                created_at=utcnow(),
            )
            thread = [*thread, pending]
        return self._plan(conversation, thread)

    def _plan(self, conversation: Conversation, thread: list[Message]) -> ContextPlan:
        info = self.model_info(conversation)
        reserve = int(conversation.params.get("max_output_tokens") or 0) or min(
            info.max_output_tokens, DEFAULT_RESERVE
        )
        plan = build_context(
            system_prompt=conversation.system_prompt,
            thread=thread,
            policy=conversation.memory_policy,
            window=info.context_window,
            reserve=reserve,
            model=self.model_for(conversation),
            summary=conversation.summary,
            summary_upto_id=conversation.summary_upto_id,
        )
        counts = {k: v for k, v in plan.new_counts.items() if k != DRAFT_ID}
        if counts:
            self.repo.set_token_counts(counts)
        return plan

    # -- starting turns (all commit before any request) ----------------------

    def send(self, conversation_id: str, text: str, *, plan: bool = True) -> Turn:
        """Commit the user's message under the current leaf and plan the reply.

        ``plan=False`` leaves planning to :meth:`run` (the window's worker thread:
        planning a long chat whose tokens were never counted takes a while); a
        request too large for the window then ends as an error reply instead
        of raising here. The same holds for the other ways to start a turn.
        """
        conversation = self.repo.get_conversation(conversation_id)
        user = self.repo.append_message(
            conversation_id, conversation.current_leaf_id, Role.USER, text
        )
        if not conversation.title:
            # The message is stored: a title that cannot be saved now must not make the
            # caller think otherwise (and send it twice). The model names the chat later.
            try:
                self.repo.update_conversation(conversation_id, title=fallback_title(text))
            except StorageError as exc:
                log.warning("could not save the first title: %s", exc)
        return self._turn(conversation_id, user.id, plan=plan)

    def edit_and_resend(self, message_id: str, text: str, *, plan: bool = True) -> Turn:
        """A new branch: a sibling of the edited user message, with the new text."""
        original = self.repo.get_message(message_id)
        if original.role is not Role.USER:
            raise UserFacingError("Only your own messages can be edited and resent.")
        user = self.repo.append_message(
            original.conversation_id, original.parent_id, Role.USER, text
        )
        return self._turn(original.conversation_id, user.id, plan=plan)

    def regenerate(self, message_id: str, *, plan: bool = True) -> Turn:
        """A new reply beside ``message_id`` (an assistant message), or below a user message."""
        message = self.repo.get_message(message_id)
        parent = message.id if message.role is Role.USER else message.parent_id
        if parent is None:
            raise UserFacingError("This message has nothing to answer.")
        self.repo.set_current_leaf(message.conversation_id, parent)
        return self._turn(message.conversation_id, parent, plan=plan)

    def continue_reply(self, message_id: str, *, plan: bool = True) -> Turn:
        """Ask the model to go on from a stopped or interrupted reply."""
        message = self.repo.get_message(message_id)
        if message.role is not Role.ASSISTANT or message.parent_id is None:
            raise UserFacingError("Only a reply can be continued.")
        self.repo.set_current_leaf(message.conversation_id, message.id)
        turn = self._turn(message.conversation_id, message.parent_id, plan=False)
        turn = dataclasses.replace(turn, continue_id=message.id)
        return self.planned(turn) if plan else turn

    def _turn(self, conversation_id: str, parent_id: str, *, plan: bool) -> Turn:
        conversation = self.repo.get_conversation(conversation_id)
        model, provider = self.model_for(conversation), self.provider(conversation.provider).name
        turn = Turn(conversation_id, parent_id, model, provider, None)
        return self.planned(turn) if plan else turn

    def planned(self, turn: Turn) -> Turn:
        """``turn`` with its plan: the thread up to the reply's parent (or the reply
        being continued)."""
        if turn.plan is not None:
            return turn
        conversation = self.repo.get_conversation(turn.conversation_id)
        leaf = turn.continue_id or turn.parent_id
        thread = self.repo.thread(turn.conversation_id, leaf_id=leaf)
        return dataclasses.replace(turn, plan=self._plan(conversation, thread))

    # -- running a turn -------------------------------------------------------

    def run(
        self, turn: Turn, cancel: threading.Event | None = None
    ) -> Generator[TurnEvent, None, None]:
        """Stream the reply, saving it as it comes; always ends with ReplyFinished."""
        reply = _Reply()
        try:
            turn = self.planned(turn)
            yield from self._stream(turn, reply, cancel or threading.Event())
        except UserFacingError as exc:
            reply.status, reply.error = MessageStatus.ERROR, exc
        except (GeneratorExit, KeyboardInterrupt):
            # The caller closed the stream or the user pressed Ctrl-C: keep what arrived.
            reply.status = MessageStatus.STOPPED
            raise
        except Exception as exc:  # a bug: keep the reply, log it, tell the user once
            log.exception("unexpected error while streaming")
            reply.status = MessageStatus.ERROR
            reply.error = UserFacingError(f"Unexpected error: {type(exc).__name__}: {exc}")
        finally:
            message_id = self._finish(turn, reply)
        yield ReplyFinished(message_id, reply.status, reply.error, reply.usage)

    def _stream(self, turn: Turn, reply: _Reply, cancel: threading.Event) -> Iterator[TurnEvent]:
        conversation = self.repo.get_conversation(turn.conversation_id)
        client = self.client(turn.provider)
        prefix = ""
        if turn.continue_id is not None:
            self.repo.update_message(turn.continue_id, status=MessageStatus.STREAMING, error=None)
            reply.message = self.repo.get_message(turn.continue_id)
            prefix = reply.message.content
            reply.parts.append(prefix)
            yield ReplyStarted(reply.message)
        plan = turn.plan
        assert plan is not None, "run() plans the turn first"
        if plan.needs_summary:
            yield ReplyStatus("Summarizing earlier messages…")
            plan = self._refresh_summary(conversation, turn, plan, client)
        messages = plan.messages
        # The plan ends at the reply being continued: it is sent once, as the last
        # message (the policy may also have left it out, then it is added).
        if prefix and messages[-1:] != [{"role": "assistant", "content": prefix}]:
            messages = [*messages, {"role": "assistant", "content": prefix}]
        for event in client.stream(
            turn.model,
            messages,
            temperature=conversation.params.get("temperature"),
            max_tokens=self._reply_cap(conversation, plan),
            cancel=cancel,
        ):
            if isinstance(event, Thinking):
                if not reply.thinking and not reply.parts:
                    yield ReplyStatus("Thinking…")
                reply.thinking.append(event.text)
            elif isinstance(event, Delta):
                yield from self._add_text(turn, reply, event.text)
            elif isinstance(event, Usage):
                reply.usage = (event.prompt_tokens, event.completion_tokens)
            elif isinstance(event, Finished):
                reply.finish_reason = event.reason
                if event.reason == "cancelled":
                    reply.status = MessageStatus.STOPPED

    def _add_text(self, turn: Turn, reply: _Reply, text: str) -> Iterator[TurnEvent]:
        """A piece of the answer: shown at once, saved every SAVE_EVERY seconds."""
        if reply.thinking and not reply.parts:
            yield ReplyStatus("")  # the answer itself begins
        if reply.message is None:
            reply.message = self._new_reply(turn, MessageStatus.STREAMING)
            yield ReplyStarted(reply.message)
        reply.parts.append(text)
        whole = "".join(reply.parts)
        yield ReplyText(reply.message.id, whole)
        if time.monotonic() - reply.saved_at >= SAVE_EVERY:
            self.repo.update_message(reply.message.id, content=whole)
            reply.saved_at = time.monotonic()

    def _reply_cap(self, conversation: Conversation, plan: ContextPlan) -> int | None:
        """The reply limit sent with the request.

        The user's setting if there is one. For models the catalog does not know
        (local servers) the planned reserve: a llama.cpp server given no limit
        writes until its context is full, and the next turn then no longer fits.
        Known OpenAI models keep their own default.
        """
        configured = conversation.params.get("max_output_tokens")
        if configured:
            return int(configured)
        return None if self.model_info(conversation).known else plan.reserve

    def _new_reply(self, turn: Turn, status: MessageStatus) -> Message:
        """The assistant message a reply is saved into, empty until text arrives."""
        return self.repo.append_message(
            turn.conversation_id,
            turn.parent_id,
            Role.ASSISTANT,
            "",
            status=status,
            model=turn.model,
        )

    def _finish(self, turn: Turn, reply: _Reply) -> str | None:
        """Save the reply's final text and status (an error with no text still gets a row)."""
        message = reply.message
        if message is None:
            if reply.error is None and reply.status is MessageStatus.STOPPED:
                return None
            message = self._new_reply(turn, reply.status)
        fields: dict[str, Any] = {"content": "".join(reply.parts), "status": reply.status}
        if reply.error is not None:
            fields["error"] = reply.error.message
        if reply.usage is not None:
            fields["prompt_tokens"], fields["completion_tokens"] = reply.usage
        # Cut off by the reply limit: it stays complete, but says so (Continue goes on).
        metadata = {k: v for k, v in message.metadata.items() if k != "finish_reason"}
        if reply.finish_reason == "length":
            metadata["finish_reason"] = "length"
        if reply.thinking:  # kept beside the answer, as imported Claude thinking is
            metadata["thinking"] = "".join(reply.thinking)
        if metadata != message.metadata:
            fields["metadata"] = metadata
        self.repo.update_message(message.id, **fields)
        self.repo.set_current_leaf(turn.conversation_id, message.id)
        self.repo.update_conversation(turn.conversation_id, touch=True)
        return message.id

    def _refresh_summary(
        self, conversation: Conversation, turn: Turn, plan: ContextPlan, client: ChatClient
    ) -> ContextPlan:
        """Summarize the messages the plan drops, store the summary, plan again."""
        by_id = {m.id: m for m in self.repo.thread(turn.conversation_id, leaf_id=turn.parent_id)}
        older = [by_id[i] for i in plan.summarize_ids if i in by_id]
        transcript = [{"role": m.role.value, "content": m.content} for m in older]
        if conversation.summary:
            transcript.insert(
                0, {"role": "system", "content": f"Earlier summary:\n{conversation.summary}"}
            )
        summary = client.complete(
            turn.model, [*transcript, {"role": "user", "content": SUMMARY_PROMPT}]
        ).strip()
        if older and summary:
            self.repo.update_conversation(
                turn.conversation_id, summary=summary, summary_upto_id=older[-1].id
            )
        updated = self.repo.get_conversation(turn.conversation_id)
        return self._plan(updated, self.repo.thread(turn.conversation_id, leaf_id=turn.parent_id))

    def generate_title(self, conversation_id: str) -> str | None:
        """Ask the model for a short title; keep the fallback title on any failure."""
        conversation = self.repo.get_conversation(conversation_id)
        thread = [m for m in self.repo.thread(conversation_id) if not m.hidden]
        first_user = next((m for m in thread if m.role is Role.USER), None)
        first_reply = next((m for m in thread if m.role is Role.ASSISTANT and m.content), None)
        if first_user is None or first_reply is None:
            return None
        try:
            title = self.client(conversation.provider).complete(
                self.model_for(conversation),
                [
                    {"role": "system", "content": TITLE_PROMPT},
                    {"role": "user", "content": first_user.content[:2000]},
                    {"role": "assistant", "content": first_reply.content[:2000]},
                    {"role": "user", "content": "Title:"},
                ],
                max_tokens=24,
            )
        except ApiError as exc:
            log.info("title request failed: %s", exc)
            return None
        title = " ".join(title.strip().strip("\"'").split())[:80]
        if title:
            self.repo.update_conversation(conversation_id, title=title)
        return title or None

    def set_policy(self, conversation_id: str, policy: MemoryPolicy) -> None:
        self.repo.update_conversation(conversation_id, memory_policy=policy)


__all__ = [
    "ChatService",
    "PolicyKind",
    "ReplyFinished",
    "ReplyStarted",
    "ReplyStatus",
    "ReplyText",
    "Turn",
    "TurnEvent",
    "fallback_title",
]
