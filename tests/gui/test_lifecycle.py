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


def offscreen() -> dict[str, str]:
    """This test's environment (its data dir included), with Qt drawing offscreen."""
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen"}


def start_app(data_dir: Path) -> subprocess.Popen[str]:
    """The real app, offscreen, once its database is open (its session marker exists)."""
    app = subprocess.Popen(
        [sys.executable, "-m", "desktop_chat"],
        env=offscreen(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    marker = data_dir / SESSION_MARKER
    deadline = time.monotonic() + 30
    while not marker.exists() and app.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), app.stderr.read() if app.stderr else ""
    return app


def stop_app(app: subprocess.Popen[str], number: int = signal.SIGTERM) -> None:
    app.send_signal(number)
    _, stderr = app.communicate(timeout=30)
    assert app.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr


def log_text(data_dir: Path) -> str:
    return (data_dir / "logs" / "desktop-chat.log").read_text()


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_closes_the_window_cleanly(data_dir: Path, number: int) -> None:
    app = start_app(data_dir)
    stop_app(app, number)
    assert not (data_dir / SESSION_MARKER).exists()  # a clean exit: no up-front check next
    assert "asked to quit by a signal" in log_text(data_dir)


def test_a_second_launch_brings_the_first_window_forward(data_dir: Path) -> None:
    """One window per data dir; the CLI still works beside it."""
    from desktop_chat.services.workspace import Workspace

    first = start_app(data_dir)
    second = subprocess.run(
        [sys.executable, "-m", "desktop_chat"],
        env=offscreen(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    deadline = time.monotonic() + 10
    while "asked for the window" not in log_text(data_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    log = log_text(data_dir)
    assert "asked it to come forward" in log  # the second launch
    assert "asked for the window" in log  # the first window heard it
    assert first.poll() is None  # and stays open
    # Another process writes (as a CLI command would) and `list` reads beside the open
    # window (WAL, busy timeout).
    workspace = Workspace.open()
    workspace.repo.create_conversation(title="Beside the window")
    workspace.close()
    listed = subprocess.run(
        [sys.executable, "-m", "desktop_chat", "list", "--json"],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert listed.returncode == 0, listed.stderr
    assert "Beside the window" in listed.stdout
    stop_app(first)


def test_the_window_indexes_a_large_import_for_search_in_the_background(
    data_dir: Path,
) -> None:
    from desktop_chat.services.workspace import Workspace
    from tests.unit.storage.sample import imported_history

    workspace = Workspace.open()
    imported_history(workspace.repo, 5_100)  # committed, waiting for the index
    assert workspace.repo.count_unindexed() == 5_100
    workspace.close()

    app = start_app(data_dir)
    try:
        reader = Workspace.open()
        deadline = time.monotonic() + 60
        while reader.repo.count_unindexed() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert reader.repo.count_unindexed() == 0
        reader.close()
    finally:
        stop_app(app)


def test_the_window_lock_is_held_by_one_window_at_a_time(data_dir: Path) -> None:
    from desktop_chat.gui import single_instance

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        assert single_instance.claim(data_dir) is True
        assert single_instance.claim(data_dir) is False  # another window (open file) asks
        assert (data_dir / single_instance.LOCK_FILE).stat().st_mode & 0o777 == 0o600
    finally:
        single_instance.release()
    assert single_instance.claim(data_dir) is True  # released: the next window takes it
    single_instance.release()
