"""A turn end to end, Qt-free: commit, plan, stream, save; regenerate, edit, continue, titles."""

from __future__ import annotations

import threading

import pytest

from desktop_chat.core.types import MemoryPolicy, MessageStatus, PolicyKind, Role
from desktop_chat.errors import ContextTooLargeError
from desktop_chat.services.chat import (
    ChatService,
    ReplyFinished,
    ReplyStarted,
    ReplyStatus,
    ReplyText,
)
from desktop_chat.services.workspace import Workspace
from tests.support.fake_openai import FakeOpenAI, error, stream


@pytest.fixture
def service(fake_openai: FakeOpenAI) -> ChatService:
    return ChatService(Workspace.open())


def run(service: ChatService, turn: object, cancel: threading.Event | None = None) -> list[object]:
    return list(service.run(turn, cancel))  # type: ignore[arg-type]


def test_a_turn_is_saved_with_usage(service: ChatService, fake_openai: FakeOpenAI) -> None:
    conv = service.new_conversation(system_prompt="Be kind.")
    fake_openai.enqueue(stream("Hi", " there", usage=(20, 2)))
    turn = service.send(conv.id, "Hello?")
    # The user's message is committed before any request.
    assert [m.content for m in service.repo.thread(conv.id)] == ["Hello?"]
    events = run(service, turn)
    assert isinstance(events[0], ReplyStarted)
    assert [e.text for e in events if isinstance(e, ReplyText)][-1] == "Hi there"
    assert events[-1] == ReplyFinished(events[-1].message_id, MessageStatus.COMPLETE, None, (20, 2))
    thread = service.repo.thread(conv.id)
    assert [(m.role, m.content, m.status) for m in thread] == [
        (Role.USER, "Hello?", MessageStatus.COMPLETE),
        (Role.ASSISTANT, "Hi there", MessageStatus.COMPLETE),
    ]
    assert (thread[1].prompt_tokens, thread[1].completion_tokens) == (20, 2)
    assert service.repo.usage_totals(conv.id) == (20, 2)
    sent = fake_openai.chat_requests()[0].body["messages"]
    assert sent == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hello?"},
    ]
    assert service.repo.get_conversation(conv.id).title == "Hello?"


def test_a_reasoning_model_shows_thinking_and_keeps_it_apart(
    service: ChatService, fake_openai: FakeOpenAI
) -> None:
    conv = service.new_conversation()
    fake_openai.enqueue(stream("Four.", reasoning=["2 + 2", " is 4."]))
    events = run(service, service.send(conv.id, "2 + 2?"))
    said = [e.text for e in events if isinstance(e, ReplyStatus)]
    assert said == ["Thinking…", ""]  # then the answer replaces the status
    reply = service.repo.thread(conv.id)[-1]
    assert reply.content == "Four."  # what later requests carry
    assert reply.metadata["thinking"] == "2 + 2 is 4."


def test_history_is_sent_and_counts_are_cached(
    service: ChatService, fake_openai: FakeOpenAI
) -> None:
    conv = service.new_conversation()
    for text in ("one", "two", "three"):
        run(service, service.send(conv.id, text))
    sent = fake_openai.chat_requests()[-1].body["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["one", "two", "three"]
    assert all(m.token_count is not None for m in service.repo.thread(conv.id)[:-1])


def test_error_keeps_the_partial_reply_and_says_why(
    service: ChatService, fake_openai: FakeOpenAI
) -> None:
    conv = service.new_conversation()
    fake_openai.enqueue(stream("partial", " text", " lost", disconnect_after=2))
    finished = run(service, service.send(conv.id, "q"))[-1]
    assert finished.status is MessageStatus.ERROR
    reply = service.repo.thread(conv.id)[-1]
    assert reply.content == "partial text"
    assert reply.status is MessageStatus.ERROR
    assert reply.error is not None
    assert "Continue" in reply.error


def test_error_before_any_token_still_shows_on_a_reply(
    service: ChatService, fake_openai: FakeOpenAI
) -> None:
    conv = service.new_conversation()
    fake_openai.enqueue(error(401, "bad key"))
    finished = run(service, service.send(conv.id, "q"))[-1]
    assert finished.error.kind == "auth"
    thread = service.repo.thread(conv.id)
    assert [m.role for m in thread] == [Role.USER, Role.ASSISTANT]
    assert thread[-1].status is MessageStatus.ERROR
    assert "Settings" in (thread[-1].error or "")


def test_stop_keeps_what_arrived(service: ChatService, fake_openai: FakeOpenAI) -> None:
    conv = service.new_conversation()
    fake_openai.enqueue(stream(*[f"w{i} " for i in range(100)], delay=0.02))
    cancel = threading.Event()
    events = []
    for event in service.run(service.send(conv.id, "q"), cancel):
        events.append(event)
        if isinstance(event, ReplyText) and event.text.count("w") >= 3:
            cancel.set()
    assert events[-1].status is MessageStatus.STOPPED
    reply = service.repo.thread(conv.id)[-1]
    assert reply.status is MessageStatus.STOPPED
    assert reply.content.startswith("w0 w1 w2")


def test_regenerate_edit_and_continue_make_branches(
    service: ChatService, fake_openai: FakeOpenAI
) -> None:
    conv = service.new_conversation()
    fake_openai.enqueue(stream("first answer"))
    run(service, service.send(conv.id, "question"))
    first = service.repo.thread(conv.id)[-1]
    fake_openai.enqueue(stream("second answer"))
    run(service, service.regenerate(first.id))
    thread = service.repo.thread(conv.id)
    assert thread[-1].content == "second answer"
    assert [s.content for s in service.repo.siblings(thread[-1].id)] == [
        "first answer",
        "second answer",
    ]
    # The regenerated request carries the question, not the old answer.
    assert fake_openai.chat_requests()[-1].body["messages"][-1] == {
        "role": "user",
        "content": "question",
    }
    user = thread[0]
    fake_openai.enqueue(stream("edited answer"))
    run(service, service.edit_and_resend(user.id, "better question"))
    thread = service.repo.thread(conv.id)
    assert [m.content for m in thread] == ["better question", "edited answer"]
    assert len(service.repo.siblings(thread[0].id)) == 2
    fake_openai.enqueue(stream("one two", stall_after=1, stall_seconds=0.1))
    cancel = threading.Event()
    cancel.set()
    fake_openai.reset()
    fake_openai.enqueue(stream(" and more"))
    service.repo.update_message(thread[-1].id, status=MessageStatus.STOPPED)
    run(service, service.continue_reply(thread[-1].id))
    reply = service.repo.thread(conv.id)[-1]
    assert reply.id == thread[-1].id
    assert reply.content == "edited answer and more"
    assert reply.status is MessageStatus.COMPLETE
    sent = fake_openai.chat_requests()[-1].body["messages"]
    # The reply being continued is sent once, as the last message.
    assert sent[-2:] == [
        {"role": "user", "content": "better question"},
        {"role": "assistant", "content": "edited answer"},
    ]


def test_too_large_is_refused_before_any_request(
    service: ChatService, fake_openai: FakeOpenAI
) -> None:
    conv = service.new_conversation(model="gpt-4")  # 8,192 tokens
    with pytest.raises(ContextTooLargeError):
        service.send(conv.id, "word " * 20_000)
    assert fake_openai.chat_requests() == []
    assert service.repo.thread(conv.id)[-1].content.startswith("word")  # never lost


def test_summary_policy_summarizes_and_stores_it(
    service: ChatService, fake_openai: FakeOpenAI
) -> None:
    conv = service.new_conversation(model="gpt-4")
    for i in range(12):
        fake_openai.enqueue(stream(f"answer {i} " + "lorem ipsum " * 30))
        run(service, service.send(conv.id, f"question {i} " + "dolor sit " * 30))
    service.repo.update_conversation(
        conv.id,
        memory_policy=MemoryPolicy(kind=PolicyKind.SUMMARY),
        params={"max_output_tokens": 7_000},  # leaves ~1,200 tokens of room
    )
    fake_openai.reset()
    fake_openai.enqueue(stream("- they asked twelve questions"), stream("fine"))
    turn = service.send(conv.id, "what did I ask?")
    assert turn.plan.needs_summary
    run(service, turn)
    summary_request, chat_request = fake_openai.chat_requests()
    assert summary_request.body["stream"] is False
    stored = service.repo.get_conversation(conv.id)
    assert stored.summary == "- they asked twelve questions"
    sent = chat_request.body["messages"]
    assert sent[0]["content"].endswith("- they asked twelve questions")
    assert sent[-1]["content"] == "what did I ask?"


def test_title_from_the_model_and_failure_keeps_fallback(
    service: ChatService, fake_openai: FakeOpenAI
) -> None:
    conv = service.new_conversation()
    run(service, service.send(conv.id, "How do tides work?"))
    fake_openai.enqueue(stream('"Tides Explained"'))
    assert service.generate_title(conv.id) == "Tides Explained"
    assert service.repo.get_conversation(conv.id).title == "Tides Explained"
    conv2 = service.new_conversation()
    run(service, service.send(conv2.id, "Another question"))
    fake_openai.enqueue(*[error(500, "down")] * 3)  # the first try and the SDK's two retries
    assert service.generate_title(conv2.id) is None
    assert service.repo.get_conversation(conv2.id).title == "Another question"


def test_a_reply_cut_off_by_the_limit_says_so_and_continues(
    service: ChatService, fake_openai: FakeOpenAI
) -> None:
    conv = service.new_conversation()
    fake_openai.enqueue(stream("half of it", finish_reason="length"))
    run(service, service.send(conv.id, "long answer please"))
    reply = service.repo.thread(conv.id)[-1]
    assert reply.status is MessageStatus.COMPLETE
    assert reply.metadata["finish_reason"] == "length"
    fake_openai.enqueue(stream(" and the rest"))
    run(service, service.continue_reply(reply.id))
    reply = service.repo.get_message(reply.id)
    assert reply.content == "half of it and the rest"
    assert "finish_reason" not in reply.metadata


def test_unknown_local_models_get_a_reply_limit(
    service: ChatService, fake_openai: FakeOpenAI
) -> None:
    local = service.new_conversation(model="gemma-3-270m")
    run(service, service.send(local.id, "hi"))
    known = service.new_conversation(model="gpt-4o")
    run(service, service.send(known.id, "hi"))
    local_request, known_request = fake_openai.chat_requests()
    assert local_request.body["max_tokens"] == 2048  # the planned reserve for unknown models
    assert "max_tokens" not in known_request.body
