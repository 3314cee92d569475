"""Full-text search: kept in sync by triggers, trigram substrings, snippets, hostile queries."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from desktop_chat.core.types import Conversation, ConversationTree, Message, Role, SearchHit
from desktop_chat.errors import BadInputError
from desktop_chat.storage import Repository, open_database
from tests.unit.storage.sample import imported_history


@pytest.fixture
def repo(data_dir: Path) -> Iterator[Repository]:
    repository = Repository(open_database(data_dir / "desktop-chat.sqlite3"))
    yield repository
    repository.close()


def message_ids(hits: list[SearchHit]) -> list[str | None]:
    return [h.message_id for h in hits if h.message_id is not None]


def highlighted(hit: SearchHit) -> list[str]:
    return [hit.snippet[start:end] for start, end in hit.highlights]


def fts_rows(data_dir: Path, table: str, query: str) -> int:
    """How many rows the FTS index itself returns, read through a separate connection."""
    conn = sqlite3.connect(data_dir / "desktop-chat.sqlite3")
    try:
        return int(
            conn.execute(
                f"SELECT count(*) FROM {table} WHERE {table} MATCH ?", (f'"{query}"',)
            ).fetchone()[0]
        )
    finally:
        conn.close()


def test_insert_update_delete_keep_the_index_in_sync(repo: Repository, data_dir: Path) -> None:
    conv = repo.create_conversation(title="Kitchen")
    message = repo.append_message(conv.id, None, Role.USER, "how long to proof sourdough")
    assert message_ids(repo.search("sourdough")) == [message.id]
    assert fts_rows(data_dir, "message_fts", "sourdough") == 1

    repo.update_message(message.id, content="how long to boil an egg")
    assert repo.search("sourdough") == []
    assert message_ids(repo.search("boil an")) == [message.id]
    assert fts_rows(data_dir, "message_fts", "sourdough") == 0

    repo.update_message(message.id, pinned=True)  # other columns leave the index alone
    assert message_ids(repo.search("egg")) == [message.id]

    repo.delete_message(message.id)
    assert repo.search("egg") == []
    assert fts_rows(data_dir, "message_fts", "egg") == 0
    # The external-content index matches its table exactly.
    repo.db.execute_sql("INSERT INTO message_fts (message_fts, rank) VALUES ('integrity-check', 1)")


def test_imports_are_indexed_in_bulk_and_the_trigger_comes_back(repo: Repository) -> None:
    before = repo.append_message(repo.create_conversation().id, None, Role.USER, "plain flour")
    conv_id = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(3)]
    texts = ["rye flour starter", "spelt flour", "東京の天気"]
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    messages = [
        Message(ids[i], conv_id, ids[i - 1] if i else None, Role.USER, text, moment)
        for i, text in enumerate(texts)
    ]
    repo.import_trees([ConversationTree(Conversation(conv_id, "Bread", moment, moment), messages)])

    assert sorted(message_ids(repo.search("flour"))) == sorted([before.id, ids[0], ids[1]])
    assert message_ids(repo.search("京の天")) == [ids[2]]
    # Messages written after the import go through the insert trigger again.
    after = repo.append_message(conv_id, ids[2], Role.ASSISTANT, "more flour")
    assert message_ids(repo.search("more flour")) == [after.id]
    repo.update_message(ids[0], content="barley")
    assert message_ids(repo.search("barley")) == [ids[0]]
    repo.db.execute_sql("INSERT INTO message_fts (message_fts, rank) VALUES ('integrity-check', 1)")


def test_a_failed_import_leaves_index_and_trigger_as_they_were(repo: Repository) -> None:
    conv_id = str(uuid.uuid4())
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    twins = [Message("same", conv_id, None, Role.USER, "oat flour", moment)] * 2
    with pytest.raises(BadInputError):
        repo.import_trees([ConversationTree(Conversation(conv_id, "Oats", moment, moment), twins)])
    assert repo.search("oat flour") == []
    message = repo.append_message(repo.create_conversation().id, None, Role.USER, "oat flour")
    assert message_ids(repo.search("oat flour")) == [message.id]
    repo.db.execute_sql("INSERT INTO message_fts (message_fts, rank) VALUES ('integrity-check', 1)")


def test_titles_are_searched_and_follow_renames_and_deletes(
    repo: Repository, data_dir: Path
) -> None:
    conv = repo.create_conversation(title="Holiday planning")
    repo.append_message(conv.id, None, Role.USER, "flights and hotels")
    hits = repo.search("holiday")
    assert [(h.conversation_id, h.message_id) for h in hits] == [(conv.id, None)]
    assert hits[0].role is None
    assert hits[0].conversation_title == "Holiday planning"
    assert highlighted(hits[0]) == ["Holiday"]

    repo.update_conversation(conv.id, title="Tax return")
    assert repo.search("holiday") == []
    assert [h.conversation_id for h in repo.search("tax return")] == [conv.id]
    assert repo.search("flights")[0].conversation_title == "Tax return"

    repo.delete_conversation(conv.id)
    assert repo.search("tax") == []
    assert repo.search("flights") == []
    assert fts_rows(data_dir, "conversation_fts", "Tax") == 0
    repo.db.execute_sql(
        "INSERT INTO conversation_fts (conversation_fts, rank) VALUES ('integrity-check', 1)"
    )


def test_hit_fields(repo: Repository) -> None:
    conv = repo.create_conversation(title="Rust")
    user = repo.append_message(conv.id, None, Role.USER, "what is a borrow checker")
    reply = repo.append_message(conv.id, user.id, Role.ASSISTANT, "the borrow checker enforces")
    hits = repo.search("borrow")
    assert [h.message_id for h in hits] == [reply.id, user.id]  # newest first
    assert [h.role for h in hits] == [Role.ASSISTANT, Role.USER]
    assert all(h.conversation_id == conv.id for h in hits)
    assert all(h.conversation_title == "Rust" for h in hits)
    assert hits[0].created_at == reply.created_at


def test_snippet_highlights_point_at_the_matched_text(repo: Repository) -> None:
    conv = repo.create_conversation(title="t")
    text = ("filler words " * 40) + "the Quantum entanglement part " + ("more filler " * 40)
    repo.append_message(conv.id, None, Role.USER, text)
    (hit,) = repo.search("quantum ENTANGLEMENT")
    assert highlighted(hit) == ["Quantum", "entanglement"]  # the text's own case
    assert len(hit.snippet) < 200
    assert hit.snippet.startswith("…")
    assert hit.snippet.endswith("…")
    assert "\n" not in hit.snippet
    assert hit.snippet[1:].startswith(("filler ", "words "))  # a whole word after the "…"


def test_every_occurrence_in_the_snippet_is_marked(repo: Repository) -> None:
    conv = repo.create_conversation(title="t")
    repo.append_message(conv.id, None, Role.USER, "cat and dog and cat\nand CAT again")
    (hit,) = repo.search("cat")
    assert highlighted(hit) == ["cat", "cat", "CAT"]
    assert hit.snippet == "cat and dog and cat and CAT again"


def test_a_long_quoted_phrase_is_highlighted_whole(repo: Repository) -> None:
    conv = repo.create_conversation(title="t")
    phrase = "the quick brown fox jumps over the lazy dog near the riverbank at dawn today"
    repo.append_message(conv.id, None, Role.USER, "x " * 100 + phrase + " y" * 100)
    (hit,) = repo.search(f'"{phrase}"')
    assert highlighted(hit) == [phrase]


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("東京都の天気予報を教えてください", "天気予報"),
        ("我想学习中文语法和写作", "中文语法"),
        ("한국어 문법을 배우고 싶어요", "문법을"),
        ("Donaudampfschifffahrtsgesellschaft", "dampfschiff"),
        ("emoji 🎉🎉🎉 party", "🎉🎉🎉"),
    ],
)
def test_substrings_match_without_word_boundaries(repo: Repository, text: str, query: str) -> None:
    conv = repo.create_conversation(title="t")
    message = repo.append_message(conv.id, None, Role.USER, text)
    repo.append_message(conv.id, message.id, Role.ASSISTANT, "unrelated reply")
    hits = repo.search(query)
    assert message_ids(hits) == [message.id]
    assert highlighted(hits[0]) == [query]


def test_queries_shorter_than_a_trigram(repo: Repository) -> None:
    conv = repo.create_conversation(title="Go")
    japanese = repo.append_message(conv.id, None, Role.USER, "日本語を話します")
    english = repo.append_message(conv.id, japanese.id, Role.ASSISTANT, "an ox and a yak")
    assert message_ids(repo.search("日本")) == [japanese.id]
    assert message_ids(repo.search("ox")) == [english.id]
    assert highlighted(repo.search("日本")[0]) == ["日本"]
    # Mixed: a long term through the index, a short one filtered after.
    assert message_ids(repo.search("yak ox")) == [english.id]
    assert message_ids(repo.search("yak 日本")) == []
    title_hit = repo.search("go")[0]
    assert (title_hit.message_id, title_hit.conversation_id) == (None, conv.id)
    # LIKE wildcards in a short query are literal.
    assert repo.search("%") == []
    assert repo.search("_") == []


def test_terms_are_anded_and_phrases_kept_whole(repo: Repository) -> None:
    conv = repo.create_conversation(title="t")
    both = repo.append_message(conv.id, None, Role.USER, "red apples and green pears")
    one = repo.append_message(conv.id, both.id, Role.ASSISTANT, "red cars only")
    assert message_ids(repo.search("red")) == [one.id, both.id]
    assert message_ids(repo.search("red pears")) == [both.id]
    assert message_ids(repo.search("pears red")) == [both.id]  # order of terms does not matter
    assert message_ids(repo.search('"red apples"')) == [both.id]
    assert message_ids(repo.search('"apples red"')) == []  # a phrase is in order
    assert message_ids(repo.search('"green pears" red')) == [both.id]


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '""',
        '" "',
        "NEAR(a b)",
        "AND",
        "a OR b",
        "NOT x",
        "col:value",
        "^start",
        "star*",
        "(paren",
        "a + b - c",
        "{curly}",
        "'single'",
        "\\",
        "%_%",
        "\x00\x01\x02\x03",
        "\ud800 lone",
        "   ",
        "",
    ],
)
def test_special_characters_are_plain_text(repo: Repository, query: str) -> None:
    conv = repo.create_conversation(title="syntax")
    text = f"literal {query} end"
    message = repo.append_message(conv.id, None, Role.USER, text)
    hits = repo.search(query)
    assert isinstance(hits, list)
    if len(query.strip().strip('"')) >= 3 and "\x00" not in query and "\ud800" not in query:
        assert message.id in message_ids(hits), query


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(query=st.text(max_size=40))
def test_any_query_returns_a_list(repo: Repository, query: str) -> None:
    if not repo.list_conversations():
        conv = repo.create_conversation(title="Hypothesis \"quotes\" and 'apostrophes'")
        repo.append_message(conv.id, None, Role.USER, 'AND OR NOT NEAR( " * ^ : - 日本語 %_')
    hits = repo.search(query)
    assert isinstance(hits, list)
    for hit in hits:
        for start, end in hit.highlights:
            assert 0 <= start < end <= len(hit.snippet)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(word=st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Z", "Cc"]), min_size=3))
def test_any_stored_word_is_found(repo: Repository, word: str) -> None:
    conv = repo.create_conversation(title="w")
    message = repo.append_message(conv.id, None, Role.USER, f"before {word} after")
    assert message.id in message_ids(repo.search(word, limit=1000)), word
    repo.delete_conversation(conv.id)


def test_hidden_messages_are_not_returned(repo: Repository) -> None:
    conv = repo.create_conversation(title="t")
    hidden = repo.append_message(
        conv.id, None, Role.SYSTEM, "secret instructions", metadata={"hidden": True}
    )
    shown = repo.append_message(
        conv.id, hidden.id, Role.USER, "visible instructions", metadata={"note": 1}
    )
    assert message_ids(repo.search("instructions")) == [shown.id]
    assert repo.search("secret") == []
    assert repo.search("se") == []  # the short-query path filters them too
    repo.update_message(hidden.id, metadata={})
    assert message_ids(repo.search("secret")) == [hidden.id]


def test_newest_first_and_limit(repo: Repository) -> None:
    conv = repo.create_conversation(title="t")
    ids = []
    parent = None
    for i in range(30):
        parent = repo.append_message(conv.id, parent, Role.USER, f"needle {i}").id
        ids.append(parent)
    hits = repo.search("needle", limit=10)
    assert message_ids(hits) == ids[::-1][:10]
    assert message_ids(repo.search("ne", limit=5)) == ids[::-1][:5]
    titled = repo.create_conversation(title="needle in the title")
    mixed = repo.search("needle", limit=3)
    assert [h.message_id for h in mixed] == [None, ids[-1], ids[-2]]  # titles come first
    assert mixed[0].conversation_id == titled.id


def test_a_write_after_an_import_never_merges_the_imported_index_whole(
    repo: Repository,
) -> None:
    # FTS5 used to merge a level whole in the write that filled it to 16
    # segments: after an import, that write rewrote the import's entire index
    # (seconds, holding the write lock). Writes now do bounded merge work only.
    imported_history(repo)
    (index_rows,) = repo.db.execute_sql("SELECT count(*) FROM message_fts_data").fetchone()
    conversation = repo.create_conversation()
    connection = repo.db.connection()
    parent = None
    changed = []
    for n in range(300):
        before = connection.total_changes
        parent = repo.append_message(conversation.id, parent, Role.USER, f"note {n} abc").id
        changed.append(connection.total_changes - before)
    assert max(changed) < index_rows / 2, (max(changed), index_rows)
    assert len(message_ids(repo.search("note 299 abc"))) == 1
    repo.db.execute_sql("INSERT INTO message_fts (message_fts, rank) VALUES ('integrity-check', 1)")


def test_a_large_import_is_found_before_and_after_the_index_catches_up(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    from desktop_chat.storage import search

    older = repo.append_message(repo.create_conversation().id, None, Role.USER, "a rye loaf")
    monkeypatch.setattr(search, "DEFER_INDEXING_AT", 3)
    conv_id = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(5)]
    texts = ["rye starter", "spelt loaf", "東京の天気", "hidden rye", "wheat ok"]
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    messages = [
        Message(ids[i], conv_id, ids[i - 1] if i else None, Role.USER, text, moment)
        for i, text in enumerate(texts)
    ]
    messages[3] = Message(
        ids[3], conv_id, ids[2], Role.USER, texts[3], moment, metadata={"hidden": True}
    )
    repo.import_trees([ConversationTree(Conversation(conv_id, "Bread", moment, moment), messages)])
    assert repo.count_unindexed() == 5
    newer = repo.append_message(conv_id, ids[4], Role.USER, "rye again")

    def found() -> dict[str, list[str | None]]:
        return {
            q: message_ids(repo.search(q))
            for q in ("rye", "loaf", "京の天", "rye st", "ok", "spelt LOAF", "rye again")
        }

    expected = {
        "rye": [newer.id, ids[0], older.id],  # newest first, indexed or not
        "loaf": [ids[1], older.id],
        "京の天": [ids[2]],
        "rye st": [ids[0]],  # a short term beside a long one
        "ok": [ids[4]],  # short terms alone read every message anyway
        "spelt LOAF": [ids[1]],
        "rye again": [newer.id],
    }
    assert found() == expected

    # While waiting, a message can change or go; the index must not learn the old text.
    repo.update_message(ids[0], content="barley starter")
    expected["rye"].remove(ids[0])
    expected["rye st"] = []
    assert found() == expected

    assert repo.index_pending(20) == 2  # 14 + 10 characters: the second passes 20
    assert repo.count_unindexed() == 3
    assert found() == expected
    repo.delete_conversation(conv_id)
    assert repo.index_pending(10) == 3
    assert repo.index_pending(10) == 0
    assert repo.count_unindexed() == 0
    assert found() == {
        **{q: [] for q in expected},
        "rye": [older.id],
        "loaf": [older.id],
    }
    repo.db.execute_sql("INSERT INTO message_fts (message_fts, rank) VALUES ('integrity-check', 1)")


def test_ids_freed_while_they_wait_for_the_index_are_indexed_once(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    from desktop_chat.storage import search

    monkeypatch.setattr(search, "DEFER_INDEXING_AT", 3)
    moment = datetime(2024, 1, 1, tzinfo=UTC)

    def import_chat(text: str, count: int) -> str:
        conv_id = str(uuid.uuid4())
        ids = [str(uuid.uuid4()) for _ in range(count)]
        thread = [
            Message(ids[i], conv_id, ids[i - 1] if i else None, Role.USER, f"{text} {i}", moment)
            for i in range(count)
        ]
        repo.import_trees([ConversationTree(Conversation(conv_id, text, moment, moment), thread)])
        return conv_id

    repo.delete_conversation(import_chat("first batch", 5))  # waiting ids 1-5 are free again
    reused = repo.append_message(repo.create_conversation().id, None, Role.USER, "kept note")
    (pk,) = repo.db.execute_sql("SELECT id FROM message WHERE uuid = ?", (reused.id,)).fetchone()
    assert pk == 1  # SQLite gave it a waiting id
    import_chat("second batch", 4)  # noted after the first range, not over it
    ranges = repo.db.execute_sql("SELECT first_id, last_id FROM message_fts_pending").fetchall()
    assert sorted(ranges) == [(1, 5), (6, 9)]

    assert message_ids(repo.search("kept note")) == [reused.id]
    assert len(repo.search("second batch")) == 4 + 1  # its messages and its title
    while repo.index_pending(2):
        pass
    assert message_ids(repo.search("kept note")) == [reused.id]
    assert len(message_ids(repo.search("second batch"))) == 4
    assert repo.search("first batch") == []
    repo.db.execute_sql("INSERT INTO message_fts (message_fts, rank) VALUES ('integrity-check', 1)")
