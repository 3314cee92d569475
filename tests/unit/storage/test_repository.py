"""The repository over a real SQLite file: conversations, message trees, threads, paging."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from desktop_chat.core.types import (
    Conversation,
    ConversationTree,
    MemoryPolicy,
    Message,
    MessageStatus,
    PolicyKind,
    Role,
)
from desktop_chat.errors import NotFoundError
from desktop_chat.storage import Repository, open_database

START = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture
def repo(data_dir: Path) -> Iterator[Repository]:
    repository = Repository(open_database(data_dir / "desktop-chat.sqlite3"))
    yield repository
    repository.close()


def stored(repo: Repository, sql: str, *params: object) -> list[tuple]:
    return list(repo.db.execute_sql(sql, params).fetchall())


def chain(repo: Repository, length: int, title: str = "long") -> tuple[str, list[str]]:
    """A conversation of ``length`` messages in one line, bulk-imported; (id, message ids)."""
    conv_id = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(length)]
    messages = [
        Message(
            id=mid,
            conversation_id=conv_id,
            parent_id=ids[i - 1] if i else None,
            role=Role.USER if i % 2 == 0 else Role.ASSISTANT,
            content=f"message number {i}",
            created_at=START + timedelta(seconds=i),
        )
        for i, mid in enumerate(ids)
    ]
    conversation = Conversation(
        id=conv_id,
        title=title,
        created_at=START,
        updated_at=START + timedelta(seconds=length),
        current_leaf_id=ids[-1],
    )
    repo.import_trees([ConversationTree(conversation, messages)])
    return conv_id, ids


def vm_steps(repo: Repository, action: object) -> int:
    """SQLite virtual-machine steps ``action()`` takes: work done, independent of the clock."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    connection = repo.db.connection()
    connection.set_progress_handler(count, 1)
    try:
        action()  # type: ignore[operator]
    finally:
        connection.set_progress_handler(None, 1)
    return steps


# -- conversations -------------------------------------------------------------


def test_create_and_read_back(repo: Repository) -> None:
    policy = MemoryPolicy(PolicyKind.LAST_N, last_n=6)
    conv = repo.create_conversation(
        title="Trip",
        model="gpt-4o",
        provider="openai",
        system_prompt="Be brief.",
        params={"temperature": 0.2},
        memory_policy=policy,
    )
    again = repo.get_conversation(conv.id)
    assert again == conv
    assert (again.title, again.model, again.provider) == ("Trip", "gpt-4o", "openai")
    assert again.system_prompt == "Be brief."
    assert again.params == {"temperature": 0.2}
    assert again.memory_policy == policy
    assert again.message_count == 0
    assert again.current_leaf_id is None
    assert again.created_at.tzinfo is not None
    assert uuid.UUID(again.id)


def test_rename_pin_archive(repo: Repository) -> None:
    conv = repo.create_conversation(title="old")
    assert repo.update_conversation(conv.id, title="new").title == "new"
    assert repo.update_conversation(conv.id, pinned=True).pinned
    archived = repo.update_conversation(conv.id, archived=True)
    assert archived.archived
    assert archived.title == "new"  # untouched fields keep their values
    assert archived.pinned
    assert repo.list_conversations() == []
    assert [c.id for c in repo.list_conversations(archived=True)] == [conv.id]
    assert repo.count_conversations() == 0
    assert repo.count_conversations(archived=True) == 1
    assert not repo.update_conversation(conv.id, archived=False).archived
    assert [c.id for c in repo.list_conversations()] == [conv.id]


def test_update_without_touch_keeps_the_list_position(repo: Repository) -> None:
    first = repo.create_conversation(title="first")
    second = repo.create_conversation(title="second")
    repo.update_conversation(first.id, title="renamed")
    assert [c.id for c in repo.list_conversations()] == [second.id, first.id]
    repo.update_conversation(first.id, touch=True)
    assert [c.id for c in repo.list_conversations()] == [first.id, second.id]


def test_delete_conversation_removes_its_messages(repo: Repository) -> None:
    keep = repo.create_conversation(title="keep")
    repo.append_message(keep.id, None, Role.USER, "kept text")
    gone = repo.create_conversation(title="gone")
    root = repo.append_message(gone.id, None, Role.USER, "doomed text")
    repo.append_message(gone.id, root.id, Role.ASSISTANT, "doomed reply")
    repo.delete_conversation(gone.id)
    with pytest.raises(NotFoundError):
        repo.get_conversation(gone.id)
    with pytest.raises(NotFoundError):
        repo.get_message(root.id)
    assert stored(repo, "SELECT count(*) FROM message") == [(1,)]
    assert [c.id for c in repo.list_conversations()] == [keep.id]
    assert repo.search("doomed") == []


def test_list_is_pinned_first_then_newest(repo: Repository) -> None:
    a = repo.create_conversation(title="a")
    b = repo.create_conversation(title="b")
    c = repo.create_conversation(title="c")
    assert [x.id for x in repo.list_conversations()] == [c.id, b.id, a.id]
    repo.update_conversation(a.id, pinned=True)
    assert [x.id for x in repo.list_conversations()] == [a.id, c.id, b.id]
    repo.append_message(b.id, None, Role.USER, "news")  # activity moves it up
    assert [x.id for x in repo.list_conversations()] == [a.id, b.id, c.id]
    listed = repo.list_conversations()
    assert listed[0].pinned
    assert listed[1].message_count == 1
    assert listed[1].updated_at > listed[2].updated_at
    # The CLI's brief listing reads the same, in the same order.
    lines = repo.list_lines()
    assert lines == [
        (c.id, c.title, c.created_at, c.updated_at, c.message_count, c.pinned, c.archived, c.model)
        for c in listed
    ]
    repo.update_conversation(c.id, archived=True)
    assert [x.id for x in repo.list_lines(limit=1)] == [a.id]
    assert [x.id for x in repo.list_lines(archived=True)] == [c.id]


def test_list_pages(repo: Repository) -> None:
    ids = [repo.create_conversation(title=f"c{i}").id for i in range(25)]
    newest_first = ids[::-1]
    pages = [repo.list_conversations(limit=10, offset=o) for o in (0, 10, 20, 30)]
    assert [len(p) for p in pages] == [10, 10, 5, 0]
    assert [c.id for p in pages for c in p] == newest_first
    assert repo.count_conversations() == 25
    assert repo.conversation_ids() == newest_first


def test_unknown_ids_raise_not_found(repo: Repository) -> None:
    conv = repo.create_conversation()
    message = repo.append_message(conv.id, None, Role.USER, "hi")
    other = repo.create_conversation()
    missing = str(uuid.uuid4())
    calls = [
        lambda: repo.get_conversation(missing),
        lambda: repo.update_conversation(missing, title="x"),
        lambda: repo.delete_conversation(missing),
        lambda: repo.append_message(missing, None, Role.USER, "x"),
        lambda: repo.append_message(conv.id, missing, Role.USER, "x"),
        # a parent from another conversation is not a parent here
        lambda: repo.append_message(other.id, message.id, Role.USER, "x"),
        lambda: repo.get_message(missing),
        lambda: repo.update_message(missing, content="x"),
        lambda: repo.delete_message(missing),
        lambda: repo.set_current_leaf(conv.id, missing),
        lambda: repo.set_current_leaf(other.id, message.id),
        lambda: repo.thread(missing),
        lambda: repo.thread_page(conv.id, before_id=missing),
        lambda: repo.siblings(missing),
        lambda: repo.usage_totals(missing),
        lambda: repo.update_conversation(conv.id, summary_upto_id=missing),
    ]
    for call in calls:
        with pytest.raises(NotFoundError):
            call()
    # Nothing was written by the failed calls.
    assert stored(repo, "SELECT count(*) FROM message") == [(1,)]
    assert repo.get_conversation(other.id).message_count == 0


# -- messages and trees --------------------------------------------------------


def test_append_builds_a_tree_and_moves_the_leaf(repo: Repository) -> None:
    conv = repo.create_conversation(title="tree")
    q = repo.append_message(conv.id, None, Role.USER, "question")
    a1 = repo.append_message(conv.id, q.id, Role.ASSISTANT, "answer one", model="m1")
    assert repo.get_conversation(conv.id).current_leaf_id == a1.id
    a2 = repo.append_message(conv.id, q.id, Role.ASSISTANT, "answer two")
    assert repo.get_conversation(conv.id).current_leaf_id == a2.id
    follow = repo.append_message(conv.id, a2.id, Role.USER, "follow-up")
    quiet = repo.append_message(conv.id, a1.id, Role.USER, "aside", make_current=False)
    after = repo.get_conversation(conv.id)
    assert after.current_leaf_id == follow.id  # make_current=False leaves the thread alone
    assert after.message_count == 5
    assert (q.depth, a1.depth, follow.depth, quiet.depth) == (0, 1, 2, 2)
    assert a1.parent_id == q.id
    assert q.parent_id is None
    assert a1.model == "m1"
    assert a1.conversation_id == conv.id
    assert [m.id for m in repo.thread(conv.id)] == [q.id, a2.id, follow.id]
    assert [m.id for m in repo.thread(conv.id, leaf_id=quiet.id)] == [q.id, a1.id, quiet.id]
    assert [m.id for m in repo.siblings(a2.id)] == [a1.id, a2.id]
    assert [m.id for m in repo.siblings(q.id)] == [q.id]
    assert repo.branch_positions([a1.id, a2.id, q.id]) == {
        a1.id: (0, 2),
        a2.id: (1, 2),
        q.id: (0, 1),
    }


def test_several_roots_are_siblings(repo: Repository) -> None:
    conv = repo.create_conversation()
    first = repo.append_message(conv.id, None, Role.USER, "first try")
    second = repo.append_message(conv.id, None, Role.USER, "second try")
    assert [m.id for m in repo.siblings(first.id)] == [first.id, second.id]
    assert [m.id for m in repo.thread(conv.id)] == [second.id]


def test_set_current_leaf_descends_to_the_newest_leaf(repo: Repository) -> None:
    conv = repo.create_conversation()
    root = repo.append_message(conv.id, None, Role.USER, "root")
    old = repo.append_message(conv.id, root.id, Role.ASSISTANT, "old branch")
    old_tail = repo.append_message(conv.id, old.id, Role.USER, "old tail")
    older_tail = repo.append_message(conv.id, old.id, Role.USER, "newer sibling in old branch")
    deep = repo.append_message(conv.id, older_tail.id, Role.ASSISTANT, "deepest")
    new = repo.append_message(conv.id, root.id, Role.ASSISTANT, "new branch")
    assert repo.get_conversation(conv.id).current_leaf_id == new.id
    # Switching to the old branch lands on its newest leaf, through the newest child.
    assert repo.set_current_leaf(conv.id, old.id) == deep.id
    assert repo.get_conversation(conv.id).current_leaf_id == deep.id
    assert [m.content for m in repo.thread(conv.id)] == [
        "root",
        "old branch",
        "newer sibling in old branch",
        "deepest",
    ]
    assert repo.set_current_leaf(conv.id, old_tail.id) == old_tail.id
    assert repo.set_current_leaf(conv.id, root.id) == new.id


def test_delete_message_removes_the_subtree_and_moves_the_leaf(repo: Repository) -> None:
    conv = repo.create_conversation()
    root = repo.append_message(conv.id, None, Role.USER, "root")
    left = repo.append_message(conv.id, root.id, Role.ASSISTANT, "left")
    left_child = repo.append_message(conv.id, left.id, Role.USER, "left child")
    right = repo.append_message(conv.id, root.id, Role.ASSISTANT, "right")
    right_child = repo.append_message(conv.id, right.id, Role.USER, "right child")
    right_grandchild = repo.append_message(conv.id, right_child.id, Role.ASSISTANT, "rgc")
    repo.update_conversation(conv.id, summary="s", summary_upto_id=right_child.id)
    assert repo.get_conversation(conv.id).message_count == 6

    repo.delete_message(right.id)
    after = repo.get_conversation(conv.id)
    assert after.message_count == 3
    assert after.current_leaf_id == left_child.id  # the remaining branch's newest leaf
    assert after.summary_upto_id is None  # the summary no longer points at a deleted message
    for gone in (right.id, right_child.id, right_grandchild.id):
        with pytest.raises(NotFoundError):
            repo.get_message(gone)
    assert stored(repo, "SELECT count(*) FROM message") == [(3,)]
    assert repo.search("right") == []

    repo.delete_message(left_child.id)  # deleting the leaf itself: its parent becomes the leaf
    assert repo.get_conversation(conv.id).current_leaf_id == left.id

    repo.delete_message(root.id)  # everything
    emptied = repo.get_conversation(conv.id)
    assert (emptied.message_count, emptied.current_leaf_id) == (0, None)
    assert repo.thread(conv.id) == []


def test_delete_off_thread_keeps_the_leaf(repo: Repository) -> None:
    conv = repo.create_conversation()
    root = repo.append_message(conv.id, None, Role.USER, "root")
    other = repo.append_message(conv.id, root.id, Role.ASSISTANT, "other")
    current = repo.append_message(conv.id, root.id, Role.ASSISTANT, "current")
    repo.delete_message(other.id)
    after = repo.get_conversation(conv.id)
    assert (after.current_leaf_id, after.message_count) == (current.id, 2)


def test_delete_a_root_moves_to_the_other_root(repo: Repository) -> None:
    conv = repo.create_conversation()
    first = repo.append_message(conv.id, None, Role.USER, "first")
    reply = repo.append_message(conv.id, first.id, Role.ASSISTANT, "reply")
    second = repo.append_message(conv.id, None, Role.USER, "second")
    repo.delete_message(second.id)
    assert repo.get_conversation(conv.id).current_leaf_id == reply.id


def test_delete_a_long_chain(repo: Repository) -> None:
    conv_id, ids = chain(repo, 1200)  # more than one chunk of ids, deeper than trigger depth
    repo.delete_message(ids[0])
    assert repo.get_conversation(conv_id).message_count == 0
    assert stored(repo, "SELECT count(*) FROM message") == [(0,)]


def test_update_message(repo: Repository) -> None:
    conv = repo.create_conversation()
    message = repo.append_message(
        conv.id, None, Role.ASSISTANT, "draft", status=MessageStatus.STREAMING, token_count=7
    )
    repo.update_message(message.id, status=MessageStatus.ERROR, error="boom")
    failed = repo.get_message(message.id)
    assert (failed.status, failed.error, failed.token_count) == (MessageStatus.ERROR, "boom", 7)
    repo.update_message(message.id, content="final text")
    edited = repo.get_message(message.id)
    assert edited.content == "final text"
    assert edited.token_count is None  # the cached count belonged to the old text
    repo.update_message(message.id, content="counted", token_count=3)
    assert repo.get_message(message.id).token_count == 3
    repo.update_message(message.id, pinned=True, metadata={"hidden": True}, model="m")
    last = repo.get_message(message.id)
    assert (last.pinned, last.hidden, last.model) == (True, True, "m")
    repo.update_message(message.id)  # nothing to change is fine
    assert repo.get_message(message.id) == last


def test_set_token_counts_and_model_change(repo: Repository) -> None:
    conv = repo.create_conversation(model="gpt-4o")
    message = repo.append_message(conv.id, None, Role.USER, "count me")
    repo.set_token_counts({message.id: 3})
    assert repo.get_message(message.id).token_count == 3
    repo.update_conversation(conv.id, model="gpt-4o-mini")  # same encoding: counts stay
    assert repo.get_message(message.id).token_count == 3
    repo.update_conversation(conv.id, model="gpt-4")  # another encoding: counts are stale
    assert repo.get_message(message.id).token_count is None


def test_mark_interrupted(repo: Repository) -> None:
    conv = repo.create_conversation()
    user = repo.append_message(conv.id, None, Role.USER, "question")
    live = repo.append_message(
        conv.id, user.id, Role.ASSISTANT, "half an ans", status=MessageStatus.STREAMING
    )
    assert repo.mark_interrupted() == 1
    assert repo.get_message(live.id).status is MessageStatus.INTERRUPTED
    assert repo.get_message(live.id).content == "half an ans"
    assert repo.get_message(user.id).status is MessageStatus.COMPLETE
    assert repo.mark_interrupted() == 0


def test_usage_totals(repo: Repository) -> None:
    conv = repo.create_conversation()
    assert repo.usage_totals(conv.id) == (0, 0)
    user = repo.append_message(conv.id, None, Role.USER, "q")
    one = repo.append_message(conv.id, user.id, Role.ASSISTANT, "a1")
    two = repo.append_message(conv.id, user.id, Role.ASSISTANT, "a2")
    repo.update_message(one.id, prompt_tokens=100, completion_tokens=20)
    repo.update_message(two.id, prompt_tokens=110, completion_tokens=30)
    other = repo.create_conversation()
    elsewhere = repo.append_message(other.id, None, Role.ASSISTANT, "x")
    repo.update_message(elsewhere.id, prompt_tokens=1000, completion_tokens=1000)
    assert repo.usage_totals(conv.id) == (210, 50)


# -- long threads --------------------------------------------------------------


def test_thread_page_walks_back_from_the_leaf(repo: Repository) -> None:
    conv_id, ids = chain(repo, 1000)
    assert repo.get_conversation(conv_id).message_count == 1000
    page = repo.thread_page(conv_id, limit=100)
    assert [m.id for m in page.messages] == ids[900:]
    assert page.has_more
    assert page.messages[-1].depth == 999
    older = repo.thread_page(conv_id, before_id=page.messages[0].id, limit=100)
    assert [m.id for m in older.messages] == ids[800:900]
    assert older.has_more
    first = repo.thread_page(conv_id, before_id=ids[50], limit=100)
    assert [m.id for m in first.messages] == ids[:50]
    assert not first.has_more
    exact = repo.thread_page(conv_id, before_id=ids[100], limit=100)
    assert [m.id for m in exact.messages] == ids[:100]
    assert not exact.has_more
    assert repo.thread_page(conv_id, before_id=ids[0]) == type(page)([], False)
    assert [m.id for m in repo.thread(conv_id)] == ids
    mid = repo.thread_page(conv_id, leaf_id=ids[499], limit=10)
    assert [m.id for m in mid.messages] == ids[490:500]


def test_thread_page_costs_the_page_not_the_history(repo: Repository) -> None:
    short_id, _ = chain(repo, 200, "short")
    long_id, _ = chain(repo, 2000, "long")
    repo.db.execute_sql("ANALYZE")  # with statistics SQLite once chose a whole-table scan

    def page_steps(conv_id: str) -> int:
        return vm_steps(repo, lambda: repo.thread_page(conv_id, limit=50))

    short, long = page_steps(short_id), page_steps(long_id)
    assert long < short * 1.2, (short, long)
    assert long * 10 < vm_steps(repo, lambda: repo.thread(long_id))
    chain(repo, 10_000, "more history elsewhere")
    repo.db.execute_sql("ANALYZE")
    assert page_steps(long_id) < long * 1.2, (long, page_steps(long_id))


def test_empty_conversation_has_an_empty_thread(repo: Repository) -> None:
    conv = repo.create_conversation()
    assert repo.thread(conv.id) == []
    assert repo.thread_page(conv.id) == type(repo.thread_page(conv.id))([], False)


def test_two_repositories_in_one_process_keep_to_their_own_files(tmp_path: Path) -> None:
    first = Repository(open_database(tmp_path / "one.sqlite3"))
    second = Repository(open_database(tmp_path / "two.sqlite3"))  # opened last
    mine = first.create_conversation(title="mine")
    first.append_message(mine.id, None, Role.USER, "in the first file")
    first.update_conversation(mine.id, title="still mine")
    assert second.list_conversations() == []
    assert [c.title for c in first.list_conversations()] == ["still mine"]
    first.close()
    second.close()
