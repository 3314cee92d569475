"""Twenty SIGKILLs at random moments mid-stream: nothing the user typed is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.crash_loop import MAX_LOSS, run_crash_loop
from tests.support.fake_openai import FakeOpenAI


@pytest.mark.slow
def test_twenty_kills(fake_openai: FakeOpenAI, data_dir: Path) -> None:
    stats = run_crash_loop(fake_openai, data_dir, kills=20)
    assert stats.kills == 20
    assert stats.user_messages_lost == 0
    assert stats.integrity_failures == 0
    assert stats.failures == []
    # At most a second of streamed text, plus the time a chunk takes to print.
    assert stats.worst_loss_seconds <= MAX_LOSS + 0.25
