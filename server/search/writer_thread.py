"""The thread that owns the index writes in the indexing step: documents from entries, commits when due.

The step's loop reads index jobs and entries; this thread analyses and commits, so Whoosh commits and
merges never hold up the loop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from .documents import document_from
from .writer import IndexWriterQueue

log = logging.getLogger("kith.search")
# The writer thread indexes this many documents at a time; while the worker has a backlog it then pauses as
# long as the slice took, so it holds the interpreter lock in short bursts and for half the time at most.
SLICE = 25
MAX_PAUSE_SECONDS = 0.5


class IndexWriterThread:
    """The thread that owns the index writes: turns entries into documents and commits when a batch is due.

    The loop hands over changes with `hand_over`, which returns a number; `committed` is the highest number
    whose changes are all committed to the index.
    """

    def __init__(self, slice_docs: int = SLICE, pause: Callable[[float], None] = time.sleep) -> None:
        # Set by the loop while it has a backlog of its own: the thread then pauses between slices.
        self.busy = False
        # Set by the loop while its last look found index jobs: more are likely to follow (a backfill), so
        # commits leave merging for later (`IndexWriterQueue.defer_merges`).
        self.more_waiting = False
        self.slices = 0
        self._slice_docs = slice_docs
        self._pause = pause
        self._changes: queue.SimpleQueue[tuple[int, IndexWriterQueue, list[tuple[str, dict[str, Any] | None]]]] = (
            queue.SimpleQueue()
        )
        self._handed = 0
        self._added = 0
        self._sent_docs = 0
        self._added_docs = 0
        self.committed = 0
        self._stop = threading.Event()
        self._flush_on_stop = True
        self._thread = threading.Thread(target=self._run, name="kith-index-writer", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Changes handed over that the thread has not added to the writer yet."""
        return self._sent_docs - self._added_docs

    def hand_over(self, writer: IndexWriterQueue, changes: list[tuple[str, dict[str, Any] | None]]) -> int:
        self._handed += 1
        self._sent_docs += len(changes)
        self._changes.put((self._handed, writer, changes))
        return self._handed

    def stop(self, flush: bool = True) -> None:
        self._flush_on_stop = flush
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        current: IndexWriterQueue | None = None
        while True:
            stopping = self._stop.is_set()
            try:
                number, current, changes = self._changes.get(timeout=0 if stopping else 0.1)
            except queue.Empty:
                if stopping:
                    break
            else:
                self._add(current, number, changes)
                self._added = number
                if not stopping:
                    self._commit_if_due(current)
                continue
            if current is not None:
                self._commit_if_due(current)
        if current is not None and self._flush_on_stop:
            self._commit_if_due(current, now=True)

    def _add(self, writer: IndexWriterQueue, number: int, changes: list[tuple[str, dict[str, Any] | None]]) -> None:
        for at in range(0, len(changes), self._slice_docs):
            self._defer_merges(writer)  # a full batch commits in `writer.add`
            started = time.perf_counter()
            for doc_id, snapshot in changes[at : at + self._slice_docs]:
                pending = writer.pending
                try:
                    if snapshot is None:
                        writer.delete(doc_id)
                    else:
                        writer.add(document_from(snapshot))  # commits by itself when the batch is full
                except Exception:  # noqa: BLE001 - one bad document must not stop the writer
                    log.exception("could not index %s", doc_id)
                if writer.pending < pending:
                    # A full batch was committed, and with it every change handed over before these: while
                    # changes keep coming (a backfill) nothing is ever left pending, and their job rows can go.
                    self.committed = max(self.committed, number - 1)
                self._added_docs += 1
            self.slices += 1
            if self.busy and not self._stop.is_set() and at + self._slice_docs < len(changes):
                # Sleeping releases the interpreter lock: the loop applies inbox items meanwhile.
                self._pause(min(time.perf_counter() - started, MAX_PAUSE_SECONDS))

    def _defer_merges(self, writer: IndexWriterQueue, *, stopping: bool = False) -> None:
        # Stopping commits what is pending and no more: the merges owed (seconds after a backfill) are left to
        # the merge policy of later commits, so that shutting down stays quick.
        writer.defer_merges = stopping or self.more_waiting or not self._changes.empty()

    def _commit_if_due(self, writer: IndexWriterQueue, *, now: bool = False) -> None:
        self._defer_merges(writer, stopping=now)
        try:
            if now:
                writer.flush()
            else:
                writer.flush_if_due()
        except Exception:  # noqa: BLE001 - the changes stay pending; the next try commits them
            log.exception("search index commit failed")
            time.sleep(1.0)
        if writer.pending == 0:
            # Only this thread adds to the writer, so nothing pending means all it added is committed.
            self.committed = self._added
