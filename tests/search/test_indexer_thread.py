"""The writer thread reports hand-overs committed as soon as a full batch is, not only once nothing is pending."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.search import IndexWriterQueue, SearchIndex
from server.search.indexing import IndexWriterThread

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _snapshot(n: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()), "type": "guide", "title": f"Pruning {n}", "url": f"https://a.example/{n}",
        "community": "gardeners", "community_name": "Gardeners", "instance": "a.example", "origin": "local",
        "created_at": WHEN, "updated_at": WHEN, "summary": "", "markdown": "Cut above a *bud*.", "tags": [],
        "status": "published", "author": "ann",
    }  # fmt: skip


def test_earlier_hand_overs_count_as_committed_when_a_full_batch_is_while_changes_stay_pending(tmp_path: Path):
    queue = IndexWriterQueue(SearchIndex(tmp_path / "index"), max_docs=2, max_delay=3600)
    thread = IndexWriterThread()
    thread.more_waiting = True  # commits only, no merges: easier to count
    try:
        first = thread.hand_over(queue, [(f"a-{n}", _snapshot(n)) for n in range(3)])  # commits 2, 1 pending
        second = thread.hand_over(queue, [(f"b-{n}", _snapshot(n)) for n in range(2)])  # commits 2, 1 pending
        deadline = time.monotonic() + 10
        while thread.backlog:
            assert time.monotonic() < deadline, "the thread never added the changes"
            time.sleep(0.01)
        time.sleep(0.2)  # a few idle turns: nothing more is due for an hour
        assert queue.commits == 2 and queue.pending == 1
        assert thread.committed == first < second  # the first's rows can go; the second waits for its last change
    finally:
        thread.stop()
    assert thread.committed == second and queue.pending == 0
