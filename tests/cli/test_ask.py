"""`desktop-chat ask` in a subprocess against the fake server; and surviving SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.fake_openai import FakeOpenAI, error, stream

CLI = [sys.executable, "-m", "desktop_chat"]


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def show(conversation_id: str) -> dict:
    done = cli("show", conversation_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def conversation_of(stderr: str) -> str:
    return next(
        line.split(": ", 1)[1] for line in stderr.splitlines() if line.startswith("conversation: ")
    )


def test_ask_streams_to_stdout_and_continues(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(stream("Paris", " is the capital."))
    done = cli("ask", "--system", "Answer briefly.", "--model", "gpt-4o", "Capital of France?")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Paris is the capital.\n"
    conversation_id = conversation_of(done.stderr)
    fake_openai.enqueue(stream("About 2 million."))
    done = cli("ask", "-c", conversation_id[:8], "-", stdin="And its population?\n")
    assert done.returncode == 0, done.stderr
    sent = fake_openai.chat_requests()[-1].body
    assert sent["model"] == "gpt-4o"
    assert [m["content"] for m in sent["messages"]] == [
        "Answer briefly.",
        "Capital of France?",
        "Paris is the capital.",
        "And its population?\n",
    ]
    thread = show(conversation_id)["messages"]
    assert [m["role"] for m in thread] == ["user", "assistant", "user", "assistant"]
    assert all(m["status"] == "complete" for m in thread)


def test_ask_error_is_one_line_and_kept(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(error(401, "Incorrect API key provided", code="invalid_api_key"))
    done = cli("ask", "hello")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("desktop-chat:")]
    assert len(errors) == 1
    assert "API key was rejected (401)" in errors[0]
    assert "Traceback" not in done.stderr
    thread = show(conversation_of(done.stderr))["messages"]
    assert thread[0]["content"] == "hello"
    assert thread[1]["status"] == "error"


def test_ask_refuses_empty_input() -> None:
    done = cli("ask", "-", stdin="  \n")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1


def interrupted_ask(
    question: str, ready: Callable[[subprocess.Popen[str]], object], **options: Any
) -> tuple[int, str, str]:
    """``desktop-chat ask question``, sent SIGINT once ``ready(process)``; its exit
    status, and what it wrote after that."""
    process = subprocess.Popen(
        [*CLI, "ask", question],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )
    try:
        assert ready(process)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    return process.returncode, out, err


def text_arrived(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.read(6)


def test_sigint_stops_and_keeps_what_arrived(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(stream(*[f"w{i} " for i in range(400)], delay=0.02))
    status, _out, err = interrupted_ask("count slowly", text_arrived)
    assert status == 130, err
    assert "partial reply is saved" in err
    reply = show(conversation_of(err))["messages"][-1]
    assert reply["status"] == "stopped"
    assert reply["content"].startswith("w0 w1")


def test_sigkill_mid_stream_loses_no_user_message(fake_openai: FakeOpenAI, data_dir: Path) -> None:
    fake_openai.enqueue(stream(*[f"w{i} " for i in range(400)], delay=0.02))
    process = subprocess.Popen(
        [*CLI, "ask", "please count"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    received = process.stdout.read(60)  # ~1.2 s of streamed text
    time.sleep(1.2)  # past at least one periodic save
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=10)  # reaps it and closes the pipes
    listing = json.loads(cli("list", "--json").stdout)
    assert len(listing) == 1
    thread = show(listing[0]["id"])["messages"]
    assert thread[0]["content"] == "please count"
    reply = thread[1]
    # Marked interrupted by the next command, with the text saved up to the last second.
    assert reply["status"] == "interrupted"
    assert reply["content"].startswith(received.split(" ")[0])
    assert len(reply["content"]) >= len(received) - 10
    conn = sqlite3.connect(data_dir / "desktop-chat.sqlite3")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_sigint_stops_a_reply_that_has_gone_silent(fake_openai: FakeOpenAI) -> None:
    """Ctrl-C stops through the same flag as the window's Stop, which must also wake a
    read blocked on a server that sends nothing more (for 30 s: more than the wait)."""
    fake_openai.enqueue(stream("w0 ", "w1 ", "w2 ", stall_after=3, stall_seconds=40))
    status, _out, err = interrupted_ask("then stall", text_arrived)
    assert status == 130, err
    reply = show(conversation_of(err))["messages"][-1]
    assert reply["status"] == "stopped"
    assert reply["content"].startswith("w0 w1")


def test_sigint_before_the_reply_streams_stops_at_once(fake_openai: FakeOpenAI) -> None:
    """Until text streams (connecting, waiting for a slow server) Ctrl-C interrupts as it
    always does: the flag would be looked at only once the stream is open."""
    fake_openai.enqueue(stream("late", header_delay=40))

    def request_sent(_process: subprocess.Popen[str]) -> bool:
        deadline = time.monotonic() + 20
        while not fake_openai.chat_requests() and time.monotonic() < deadline:
            time.sleep(0.05)
        return bool(fake_openai.chat_requests())  # out, its answer 40 s away

    status, _out, err = interrupted_ask("slow server", request_sent)
    assert status == 130, err
    assert "partial reply is saved" in err


def test_sigint_ignored_by_the_parent_stays_ignored(fake_openai: FakeOpenAI) -> None:
    """`desktop-chat ask ... &` from a script: the shell makes it ignore Ctrl-C."""
    fake_openai.enqueue(stream(*[f"w{i} " for i in range(20)], delay=0.02))

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    status, out, err = interrupted_ask("in the background", text_arrived, preexec_fn=ignore_sigint)
    assert status == 0, err
    assert out.rstrip().endswith("w19")
