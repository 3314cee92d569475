"""`pip install .` / `pipx install .`: the installed `desktop-chat` works without the checkout.

The editable install the tests run from finds resources/ through its import hook, so it
cannot see a package-data mistake; a real (non-editable) install of the checkout into a
fresh venv can. That is what pipx does (a venv per app, then `pip install .`); pipx itself
is not needed to check it. The checkout's dependencies are not installed again (PySide6
alone is hundreds of MB): the new venv reaches the test venv's site-packages through a
.pth line, after its own, so `desktop_chat` comes from the install under test. Without the
test venv's .pth files that line does not run the editable install's hook.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from desktop_chat import __version__
from tests.conftest import REPO_ROOT


def project_files() -> list[str]:
    """What a fresh clone of the checkout, with its uncommitted changes, would hold."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO_ROOT / name).is_file()]


def run(args: list[str | Path], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("git"), reason="needs git to list the checkout's files")
def test_non_editable_install_ships_every_resource_and_runs(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    files = project_files()
    source = tmp_path / "source"
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, source / name)

    # Not the checkout (tests/conftest.py puts it on PYTHONPATH): pip would take it for an
    # installed desktop-chat and skip the install, and the app would run from it.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DISPLAY")}
    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", venv], env, tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    # The wheel `pip install .` would build (pyproject's backend, the test venv's
    # setuptools: no network), installed into the new venv.
    wheels = tmp_path / "wheels"
    built = run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--no-index", "-w", wheels, source),
        ],
        env,
        tmp_path,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = wheels.glob("desktop_chat-*.whl")
    installed = run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", wheel],
        env,
        tmp_path,
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    site_packages = Path(
        run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            env,
            tmp_path,
        ).stdout.strip()
    )
    (site_packages / "zz_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")

    # Nor the tests' keyring.
    env.update(
        QT_QPA_PLATFORM="offscreen",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        XDG_DATA_HOME=str(tmp_path / "xdg"),
    )
    where = run(
        [python, "-c", "import desktop_chat.resources as r; print(r.__file__)"], env, tmp_path
    )
    assert where.returncode == 0, where.stderr
    resources = Path(where.stdout.strip()).parent
    assert resources == site_packages / "desktop_chat" / "resources"

    # Every file of resources/ (tokenizers, icons, schema, desktop entry, metainfo).
    shipped = sorted(
        name.removeprefix("resources/") for name in files if name.startswith("resources/")
    )
    assert "tokenizers/o200k_base.tiktoken" in shipped
    missing = [name for name in shipped if not (resources / name).is_file()]
    assert not missing, f"not installed: {missing}"

    version = run([venv / "bin" / "desktop-chat", "--version"], env, tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"desktop-chat {__version__}"

    selftest = run([venv / "bin" / "desktop-chat", "--selftest"], env, tmp_path)
    assert selftest.returncode == 0, selftest.stdout + selftest.stderr
    assert selftest.stdout.splitlines()[-1] == "self-test passed"

    entry = run([venv / "bin" / "desktop-chat", "--install-desktop-entry"], env, tmp_path)
    assert entry.returncode == 0, entry.stdout + entry.stderr
    applications = tmp_path / "xdg" / "applications" / "desktop-chat.desktop"
    assert f"Exec={venv / 'bin' / 'desktop-chat'}" in applications.read_text()
    assert (
        tmp_path / "xdg" / "icons" / "hicolor" / "scalable" / "apps" / "desktop-chat.svg"
    ).is_file()
    assert not data_dir.exists()  # the self-test keeps away from the user's data

    with capsys.disabled():
        print(f"\ninstalled from a wheel and checked in {time.perf_counter() - started:.0f} s")
