"""Single writes right after a bulk import: how long one message takes to store.

A reply's text is saved at least once a second while it streams (DESIGN.md, "A turn"),
so a save that stalls longer than that breaks the crash-loss promise. After an import
leaves large segments in the FTS5 index, a later small write could trigger their
merge (seconds); the window merges them in the background instead (IndexUpkeep), and
indexes there what a large import left for later. This bench runs that upkeep as the
window does, and says how long the index took to catch up.

Run: .venv/bin/python bench/write_stalls.py [--messages N]   (default 200,000 imported first)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WRITES = 1000
# 20 writes a second, far above one person's rate: several replies streaming at once
# (each saved once a second) while the user writes. A tight loop would stand for a
# rate no one reaches and outrun the background merging the window does.
GAP = 0.05
TEXT = "A reply about python, sqlite, memory, tokens and a garden. " * 8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    os.environ["DESKTOP_CHAT_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-stalls-")

    from bench.storage import history
    from desktop_chat.core.types import Role
    from desktop_chat.services.workspace import Workspace

    workspace = Workspace.open()
    repo = workspace.repo
    print(f"importing {args.messages:,} messages …", flush=True)
    for batch in history(args.messages, max(10, args.messages // 100)):
        repo.import_trees(batch)
    waiting = repo.count_unindexed()
    indexing = time.perf_counter()
    caught_up: list[float] = []

    def watch() -> None:  # in its own thread, so the writes below do not delay the figure
        deadline = indexing + 600
        while repo.count_unindexed() and time.perf_counter() < deadline:
            time.sleep(0.1)
        if not repo.count_unindexed():
            caught_up.append(time.perf_counter() - indexing)
        repo.close()  # this thread's connection

    watcher = threading.Thread(target=watch)
    watcher.start()
    workspace.start_index_upkeep()  # indexes what the import left for later, and merges
    conversation = repo.create_conversation(title="after the import")
    parent = None
    took = []
    for n in range(WRITES):
        started = time.perf_counter()
        parent = repo.append_message(conversation.id, parent, Role.USER, f"{TEXT}{n}").id
        took.append((time.perf_counter() - started) * 1000)
        time.sleep(GAP)
    slow = [(n, round(ms)) for n, ms in enumerate(took) if ms > 200]
    took.sort()
    print(
        f"{WRITES:,} single message writes after the import, {1 / GAP:.0f} a second: "
        f"p50 {took[WRITES // 2]:.1f} ms, "
        f"p99 {took[int(WRITES * 0.99)]:.1f} ms, max {took[-1]:.0f} ms "
        "(target: none near 1 s, the save interval while a reply streams)"
    )
    print(f"    writes over 200 ms (write number, ms): {slow or 'none'}")
    watcher.join()
    if caught_up:
        print(
            f"    meanwhile the window's upkeep indexed the {waiting:,} imported messages "
            f"in {caught_up[0]:.0f} s ({waiting / caught_up[0]:,.0f} msg/s)"
        )
    else:
        print(f"    the upkeep had not indexed the {waiting:,} imported messages after 600 s")
    workspace.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
