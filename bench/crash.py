"""Kill `desktop-chat ask` 200 times mid-stream; print what survived beside the promise.

Run: .venv/bin/python bench/crash.py [--kills N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.crash_loop import MAX_LOSS, run_crash_loop
from tests.support.fake_openai import FakeOpenAI


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=200)
    args = parser.parse_args()
    server = FakeOpenAI().start()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        stats = run_crash_loop(server, Path(folder), args.kills)
    server.stop()
    print(f"kills:                    {stats.kills}  ({time.monotonic() - started:.0f} s)")
    print(f"user messages lost:       {stats.user_messages_lost}  (target 0)")
    print(f"worst streamed text lost: {stats.worst_loss_seconds:.2f} s  (target <= {MAX_LOSS:g} s)")
    print(f"integrity_check failures: {stats.integrity_failures}  (target 0)")
    for failure in stats.failures:
        print(f"  {failure}")
    ok = not (stats.user_messages_lost or stats.integrity_failures or stats.failures)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
