"""Every failure through `desktop-chat ask` in a subprocess: one line, nothing lost, recovery."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from desktop_chat.services.workspace import Workspace
from tests.support.fake_openai import FakeOpenAI, stream
from tests.support.faults import (
    FAULT_PARAMS,
    RECOVERED,
    STALL_TIMEOUT,
    Fault,
    closed_port_url,
)

CLI = [sys.executable, "-m", "desktop_chat"]


def cli(*args: str, base_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if base_url is not None:
        env["OPENAI_BASE_URL"] = base_url
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def thread(conversation_id: str) -> list[dict]:
    done = cli("show", conversation_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["messages"]


@pytest.fixture
def short_stall_timeout(fake_openai: FakeOpenAI) -> None:
    """Timeouts in seconds, not minutes: the provider's own setting, as a user would set it."""
    workspace = Workspace.open()
    workspace.settings.provider().stall_timeout = STALL_TIMEOUT
    workspace.save_settings()
    workspace.close()


@pytest.mark.usefixtures("short_stall_timeout")
@pytest.mark.parametrize("fault", FAULT_PARAMS)
def test_ask_fails_clearly_keeps_everything_and_recovers(
    fake_openai: FakeOpenAI, fault: Fault
) -> None:
    fake_openai.enqueue(*fault.replies)
    where = closed_port_url() if fault.refused else fake_openai.base_url
    done = cli("ask", "Question?", base_url=where)

    assert done.returncode == 1, done.stderr
    assert done.stdout == (f"{fault.partial}\n" if fault.partial else "")
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    errors = [line for line in lines if not line.startswith("conversation: ")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("desktop-chat: ")
    conversation_id = next(
        line.removeprefix("conversation: ") for line in lines if line.startswith("conversation: ")
    )
    # The window's advice becomes commands on the terminal.
    for words in fault.words:
        if words == "Settings → Providers":
            assert "desktop-chat key set" in errors[0] or "OPENAI_BASE_URL" in errors[0]
        elif words in ("Retry in a moment", "use Continue or Retry"):
            assert f"desktop-chat ask -c {conversation_id}" in errors[0]
        else:
            assert words in errors[0]
    assert "Settings →" not in errors[0]
    assert "Continue" not in errors[0]
    if fault.refused:
        assert where in errors[0]
    question, reply = thread(conversation_id)
    assert (question["role"], question["content"], question["status"]) == (
        "user",
        "Question?",
        "complete",
    )
    assert (reply["role"], reply["content"], reply["status"]) == (
        "assistant",
        fault.partial,
        fault.status.value,
    )
    # Stored with the window's wording, which the window shows beside the reply.
    assert reply["error"]
    assert fault.words[0] in reply["error"]

    # The server recovers; the CLI's way on is to ask again in the same conversation.
    fake_openai.reset()
    fake_openai.enqueue(stream(RECOVERED))
    done = cli("ask", "-c", conversation_id, "Try again.", base_url=fake_openai.base_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{RECOVERED}\n"
    assert done.stderr.splitlines() == [f"conversation: {conversation_id}"]
    sent = fake_openai.chat_requests()[-1].body["messages"]
    # What arrived before the failure is part of the conversation; an empty failed reply is not.
    expected = [{"role": "user", "content": "Question?"}]
    if fault.partial:
        expected.append({"role": "assistant", "content": fault.partial})
    assert sent == [*expected, {"role": "user", "content": "Try again."}]
    stored = [(m["role"], m["content"], m["status"]) for m in thread(conversation_id)]
    assert stored == [
        ("user", "Question?", "complete"),
        ("assistant", fault.partial, fault.status.value),
        ("user", "Try again.", "complete"),
        ("assistant", RECOVERED, "complete"),
    ]
