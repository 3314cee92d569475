"""A small history with every feature the export must carry, a digest of what is stored,
and a larger imported history."""

from __future__ import annotations

import hashlib
import random
import sqlite3
import string
import uuid
from datetime import UTC, datetime
from pathlib import Path

from desktop_chat.core.types import (
    Conversation,
    ConversationTree,
    MemoryPolicy,
    Message,
    MessageStatus,
    PolicyKind,
    Role,
)
from desktop_chat.storage import Repository


def populate(repo: Repository) -> list[str]:
    """Three conversations (branches, pins, errors, usage, summary, hidden, tool); their ids."""
    trip = repo.create_conversation(
        title="Trip to Kyoto 京都",
        model="gpt-4o",
        provider="openai",
        system_prompt="You are a travel agent.",
        params={"temperature": 0.7, "max_output_tokens": 500},
        memory_policy=MemoryPolicy(PolicyKind.SUMMARY, last_n=8, recent_tokens=2000),
    )
    hidden = repo.append_message(
        trip.id, None, Role.SYSTEM, "", metadata={"hidden": True, "hidden_reason": "empty"}
    )
    ask = repo.append_message(trip.id, hidden.id, Role.USER, "Plan three days in Kyoto")
    failed = repo.append_message(trip.id, ask.id, Role.ASSISTANT, "Day 1: Fushimi", model="gpt-4o")
    repo.update_message(failed.id, status=MessageStatus.ERROR, error="The server timed out.")
    good = repo.append_message(
        trip.id,
        ask.id,
        Role.ASSISTANT,
        "Day 1: Fushimi Inari at dawn.\n\nDay 2: Arashiyama.",
        model="gpt-4o",
        token_count=14,
    )
    repo.update_message(good.id, prompt_tokens=120, completion_tokens=14, pinned=True)
    # A reply under the older branch, written after the newer branch began.
    repo.append_message(trip.id, failed.id, Role.USER, "Why did it stop?", make_current=False)
    tool = repo.append_message(
        trip.id, good.id, Role.TOOL, '{"weather": "sunny"}', metadata={"tool": "weather"}
    )
    follow = repo.append_message(trip.id, tool.id, Role.USER, "And where to eat? 🍜")
    stopped = repo.append_message(
        trip.id, follow.id, Role.ASSISTANT, "Nishiki Market has", status=MessageStatus.STOPPED
    )
    repo.append_message(
        trip.id,
        follow.id,
        Role.ASSISTANT,
        "still typing",
        status=MessageStatus.INTERRUPTED,
        make_current=False,
    )
    repo.update_conversation(
        trip.id,
        pinned=True,
        summary="User plans Kyoto; agent proposed days.",
        summary_upto_id=good.id,
    )
    repo.set_current_leaf(trip.id, stopped.id)

    recipe = repo.create_conversation(title="Sourdough", model="llama3")
    q = repo.append_message(recipe.id, None, Role.USER, "Hydration for a rustic loaf?")
    repo.append_message(recipe.id, q.id, Role.ASSISTANT, "Try 75%.", model="llama3")
    repo.update_conversation(recipe.id, archived=True)

    empty = repo.create_conversation(title="")
    return [trip.id, recipe.id, empty.id]


def digest(database: Path) -> str:
    """Everything the database holds (rows and index), independent of WAL layout."""
    conn = sqlite3.connect(database)
    try:
        rows = [
            conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in ("conversation", "message", "migrations")
        ]
        rows.append(conn.execute("SELECT * FROM message_fts_docsize ORDER BY id").fetchall())
    finally:
        conn.close()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def imported_history(repo: Repository, messages: int = 4000) -> None:
    """One bulk import of varied text: its index lands in a few large segments."""
    rng = random.Random(7)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(3000)]
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    trees = []
    for c in range(messages // 100):
        conv_id, parent, thread = str(uuid.uuid4()), None, []
        for _ in range(100):
            text = " ".join(rng.choices(words, k=60))
            thread.append(Message(str(uuid.uuid4()), conv_id, parent, Role.USER, text, moment))
            parent = thread[-1].id
        trees.append(ConversationTree(Conversation(conv_id, f"Chat {c}", moment, moment), thread))
    repo.import_trees(trees)
