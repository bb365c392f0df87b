"""While more changes wait (a backfill), commits add segments and merge nothing; the first commit after merges. The
writer thread reports hand-overs committed as soon as a full batch is, not only once nothing is pending."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.search import IndexWriterQueue, SearchDocument, SearchIndex, SearchService
from server.search.writer_thread import IndexWriterThread

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _doc(n: int) -> SearchDocument:
    return SearchDocument(
        id=str(uuid.uuid4()), type="guide", title=f"Pruning {n}", body="Cut above a bud.", url=f"https://a.example/{n}",
        community="gardeners", community_name="Gardeners", instance="a.example", origin="local",
        created_at=WHEN, updated_at=WHEN,
    )  # fmt: skip


def _snapshot(n: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()), "type": "guide", "title": f"Pruning {n}", "url": f"https://a.example/{n}",
        "community": "gardeners", "community_name": "Gardeners", "instance": "a.example", "origin": "local",
        "created_at": WHEN, "updated_at": WHEN, "summary": "", "markdown": "Cut above a *bud*.", "tags": [],
        "status": "published", "author": "ann",
    }  # fmt: skip


def _segments(index: SearchIndex) -> int:
    with index.open().reader() as reader:
        return len(reader.leaf_readers()) if not reader.is_atomic() else 1


def test_commits_merge_nothing_while_merges_are_deferred_and_the_next_due_commit_merges(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "index")
    queue = IndexWriterQueue(index, max_docs=2)
    queue.defer_merges = True
    for n in range(16):
        queue.add(_doc(n))  # a commit every 2 documents
    assert queue.commits == 8
    assert _segments(index) == 8  # Whoosh's policy would have merged the small segments along the way
    assert queue.unmerged == 8
    assert queue.flush_if_due() is False  # nothing pending, and merging is still deferred

    queue.defer_merges = False
    assert queue.is_due()  # a merge is owed, with nothing pending
    assert queue.flush_if_due() is True
    assert queue.unmerged == 0
    assert _segments(index) < 8
    assert queue.flush_if_due() is False
    assert SearchService(index.path).search("pruning").total == 16


def test_a_batch_is_committed_before_the_merges_owed_in_a_commit_of_their_own(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "index")
    queue = IndexWriterQueue(index, max_docs=2)
    queue.defer_merges = True
    for n in range(8):
        queue.add(_doc(n))
    queue.add(_doc(8))
    queue.defer_merges = False
    assert queue.flush() == 1
    assert queue.commits == 4 + 2  # the batch, unmerged, then the merge
    assert queue.unmerged == 0 and _segments(index) < 5
    assert SearchService(index.path).search("pruning").total == 9


def test_without_deferring_commits_merge_as_before(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "index")
    queue = IndexWriterQueue(index, max_docs=2)
    for n in range(16):
        queue.add(_doc(n))
    assert queue.unmerged == 0
    assert _segments(index) < 8


def _wait(check: Any, what: str) -> None:
    deadline = time.monotonic() + 15
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_writer_thread_defers_merges_while_the_indexer_finds_jobs_and_merges_once_they_are_done(
    tmp_path: Path,
) -> None:
    index = SearchIndex(tmp_path / "index")
    queue = IndexWriterQueue(index, max_docs=2)
    thread = IndexWriterThread()
    try:
        thread.more_waiting = True  # the indexer's last look found index jobs
        number = thread.hand_over(queue, [(f"guide-{n}", _snapshot(n)) for n in range(10)])
        _wait(lambda: thread.committed >= number, "the thread never committed the changes")
        assert queue.unmerged == 5 and _segments(index) == 5

        thread.more_waiting = False  # its next look found none: the queue is drained
        _wait(lambda: queue.unmerged == 0, "the thread never merged")
        assert _segments(index) < 5
    finally:
        thread.stop()
    assert SearchService(index.path).search("pruning").total == 10


class FlushRecorder:
    """Stands in for `IndexWriterQueue`: notes whether merges were deferred at each commit."""

    def __init__(self) -> None:
        self.defer_merges = False
        self.pending = 0
        self.flushes: list[bool] = []

    def flush_if_due(self) -> bool:
        return False

    def flush(self) -> int:
        self.flushes.append(self.defer_merges)
        return 0


def test_stopping_the_writer_thread_commits_what_is_pending_and_leaves_the_merges() -> None:
    recorder = FlushRecorder()
    thread = IndexWriterThread()
    thread.hand_over(recorder, [])  # type: ignore[arg-type]
    _wait(lambda: thread.committed == 1, "the thread never took the hand-over")
    assert thread.more_waiting is False
    thread.stop()
    # A merge after a backfill takes seconds: shutting down leaves it to the merge policy of later commits.
    assert recorder.flushes == [True]


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
