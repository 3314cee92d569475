"""The real app process: a signal closes it like Quit, and the session marker follows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desktop_chat.services.workspace import SESSION_MARKER


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_closes_the_window_cleanly(data_dir: Path, number: int) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    app = subprocess.Popen(
        [sys.executable, "-m", "desktop_chat"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    marker = data_dir / SESSION_MARKER
    deadline = time.monotonic() + 30
    while not marker.exists() and app.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), app.stderr.read() if app.stderr else ""
    app.send_signal(number)
    _, stderr = app.communicate(timeout=30)
    assert app.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert not marker.exists()  # a clean exit: the next start skips the up-front check
    log = (data_dir / "logs" / "desktop-chat.log").read_text()
    assert "asked to quit by a signal" in log
