"""`desktop-chat ask` in a subprocess against the fake server; and surviving SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

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


def test_sigint_stops_and_keeps_what_arrived(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(stream(*[f"w{i} " for i in range(400)], delay=0.02))
    process = subprocess.Popen(
        [*CLI, "ask", "count slowly"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.read(6)  # some text arrived
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
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
    read blocked on a server that sends nothing more."""
    fake_openai.enqueue(stream("w0 ", "w1 ", "w2 ", stall_after=3, stall_seconds=30))
    process = subprocess.Popen(
        [*CLI, "ask", "then stall"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.read(6)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=20)  # well before the server's 30 s of silence
    assert process.returncode == 130, err
    reply = show(conversation_of(err))["messages"][-1]
    assert reply["status"] == "stopped"
    assert reply["content"].startswith("w0 w1")


def test_sigint_before_the_reply_streams_stops_at_once(fake_openai: FakeOpenAI) -> None:
    """Until text streams (connecting, waiting for a slow server) Ctrl-C interrupts as it
    always does: the flag would be looked at only once the stream is open."""
    fake_openai.enqueue(stream("late", header_delay=30))
    process = subprocess.Popen(
        [*CLI, "ask", "slow server"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 20
    while not fake_openai.chat_requests() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_openai.chat_requests()  # the request is out, its answer 30 s away
    process.send_signal(signal.SIGINT)
    try:
        _out, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "partial reply is saved" in err


def test_sigint_ignored_by_the_parent_stays_ignored(fake_openai: FakeOpenAI) -> None:
    """`desktop-chat ask ... &` from a script: the shell makes it ignore Ctrl-C."""
    fake_openai.enqueue(stream(*[f"w{i} " for i in range(20)], delay=0.02))
    process = subprocess.Popen(
        [*CLI, "ask", "in the background"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # noqa: PLW1509
    )
    assert process.stdout is not None
    assert process.stdout.read(6)
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out.rstrip().endswith("w19")
