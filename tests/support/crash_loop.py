"""SIGKILL `desktop-chat ask` at random moments and count what survives.

Shared by the test suite (20 kills) and bench/crash.py (200). After every
kill the next command marks the cut-off reply ``interrupted``; we check that
every user message is there, that the saved reply lost at most about a second
of what had been streamed, and that SQLite's integrity check passes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.fake_openai import FakeOpenAI, stream

CLI = [sys.executable, "-m", "desktop_chat"]
CHUNK_DELAY = 0.02  # 50 chunks a second, like a fast model
MAX_LOSS = 1.0  # seconds of streamed text a crash may lose: the promise


@dataclass
class CrashStats:
    kills: int = 0
    user_messages_lost: int = 0
    worst_loss_seconds: float = 0.0
    integrity_failures: int = 0
    failures: list[str] = field(default_factory=list)


def _reader(process: subprocess.Popen[str], log: list[tuple[float, int]]) -> None:
    """Record (time, characters printed so far) as the reply streams to stdout."""
    assert process.stdout is not None
    total = 0
    while chunk := process.stdout.read(1):
        total += len(chunk)
        log.append((time.monotonic(), total))


def run_crash_loop(server: FakeOpenAI, data_dir: Path, kills: int, seed: int = 7) -> CrashStats:
    rng = random.Random(seed)
    env = dict(os.environ, OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="sk-crash")
    env["DESKTOP_CHAT_DATA_DIR"] = str(data_dir)
    stats = CrashStats()
    conversation_id: str | None = None
    for n in range(kills):
        server.enqueue(stream(*[f"r{n}w{i} " for i in range(2000)], delay=CHUNK_DELAY))
        which = ["-c", conversation_id] if conversation_id else []
        process = subprocess.Popen(
            [*CLI, "ask", *which, f"question {n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        log: list[tuple[float, int]] = []
        reader = threading.Thread(target=_reader, args=(process, log), daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while not log and time.monotonic() < deadline:  # wait for the first text
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 2.5))
        os.kill(process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        process.communicate(timeout=30)
        reader.join(timeout=5)
        stats.kills += 1
        listing = subprocess.run(
            [*CLI, "list", "--json"], capture_output=True, text=True, env=env, check=True
        )
        conversations = json.loads(listing.stdout)
        conversation_id = conversations[0]["id"]
        shown = subprocess.run(
            [*CLI, "show", conversation_id, "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        thread = json.loads(shown.stdout)["messages"]
        users = [m["content"] for m in thread if m["role"] == "user"]
        missing = [f"question {k}" for k in range(n + 1) if f"question {k}" not in users]
        stats.user_messages_lost += len(missing)
        reply = thread[-1] if thread[-1]["role"] == "assistant" else None
        saved = len(reply["content"]) if reply else 0
        if reply is not None and reply["status"] != "interrupted":
            stats.failures.append(f"kill {n}: reply status {reply['status']}")
        # How long before the kill the saved text ends: the last moment at which
        # everything printed so far was also saved.
        printed = log[-1][1] if log else 0
        reached = max((t for t, chars in log if chars <= saved), default=killed_at)
        loss = killed_at - reached if saved < printed else 0.0
        stats.worst_loss_seconds = max(stats.worst_loss_seconds, loss)
        conn = sqlite3.connect(data_dir / "desktop-chat.sqlite3")
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            stats.integrity_failures += 1
        conn.close()
    return stats
