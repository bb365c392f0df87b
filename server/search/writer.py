"""The single writer of the search index: batches changes into few commits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from whoosh.index import Index

from .documents import SearchDocument, document_fields
from .engine import PREPARED, KithSegmentWriter, analyze
from .schema import SCHEMA
from .storage import Progress, SearchIndex, build_generation, open_generation, swap_in

# A pending change: the fields to index, or None for a deletion.
_Op = dict[str, Any] | None

MAX_BATCH_DOCS = 500
MAX_BATCH_DELAY = 1.0


class IndexWriterQueue:
    """Collects adds and deletes and commits them in batches.

    A Whoosh commit has a large fixed cost on a large index, whatever the batch's size, so
    changes are buffered and committed once `max_docs` distinct documents are
    pending or the oldest pending change is `max_delay` seconds old, whichever
    comes first. `add` and `delete` commit by themselves only when the batch
    is full; the owner calls `flush_if_due()` on each tick to honour the
    delay, and `flush()` on shutdown.

    There must be one instance per index across all processes: Whoosh allows
    a single writer, and this one holds the lock only while committing.
    Methods are thread-safe.

    While the owner sets `defer_merges` (more changes are waiting, as in a
    backfill), commits add their segment and merge nothing: Whoosh's merge
    policy would otherwise rewrite older segments again and again as the
    index grows, which costs more than the indexing itself. Once it is
    cleared, the merges owed are one commit of their own (due at once), made
    after the pending batch is committed: the batch is searchable without
    waiting for the merge, which takes seconds after a backfill.
    """

    def __init__(
        self,
        index: SearchIndex,
        *,
        max_docs: int = MAX_BATCH_DOCS,
        max_delay: float = MAX_BATCH_DELAY,
        clock: Callable[[], float] = time.monotonic,
        lock_timeout: float = 10.0,
    ) -> None:
        self.index = index
        self.max_docs = max_docs
        self.max_delay = max_delay
        self.commits = 0
        self.defer_merges = False
        self._unmerged = 0  # commits into the live generation since the last one that merged
        self._clock = clock
        self._lock_timeout = lock_timeout
        self._lock = threading.Lock()  # guards the pending state
        self._write_lock = threading.Lock()  # one commit or swap at a time
        self._pending: dict[str, _Op] = {}
        self._oldest: float | None = None
        # While a rebuild runs, every change is also recorded here so it can
        # be replayed onto the new generation after the swap.
        self._journal: dict[str, _Op] | None = None

    @property
    def pending(self) -> int:
        """Number of documents with an uncommitted change."""
        with self._lock:
            return len(self._pending)

    def add(self, doc: SearchDocument) -> None:
        """Index doc, replacing any document with the same id."""
        # Converting and analyzing now surfaces a bad document to the caller, not the flush, and leaves
        # the commit only the writing: a caller that adds in slices keeps every stretch of work short.
        fields = document_fields(doc)
        fields[PREPARED] = analyze(SCHEMA, fields)
        self._enqueue(doc.id, fields)

    def delete(self, doc_id: str) -> None:
        """Remove the document with this id (a no-op if it is not indexed)."""
        self._enqueue(doc_id, None)

    def _enqueue(self, doc_id: str, op: _Op) -> None:
        with self._lock:
            if not self._pending:
                self._oldest = self._clock()
            # Only the latest change per document matters.
            self._pending[doc_id] = op
            if self._journal is not None:
                # The replay analyzes again: the journal can grow through a long rebuild, and an analysis
                # takes several times the memory of the fields.
                self._journal[doc_id] = None if op is None else {k: v for k, v in op.items() if k != PREPARED}
            full = len(self._pending) >= self.max_docs
        if full:
            self.flush()

    @property
    def unmerged(self) -> int:
        """Commits since the last one that ran the merge policy."""
        return self._unmerged

    def is_due(self) -> bool:
        """True when the pending batch is full or its oldest change is old enough, or merges are owed."""
        with self._lock:
            return self._is_due_locked()

    def _is_due_locked(self) -> bool:
        if not self._pending:
            return self._unmerged > 0 and not self.defer_merges
        if len(self._pending) >= self.max_docs:
            return True
        return self._oldest is not None and self._clock() - self._oldest >= self.max_delay

    def flush_if_due(self) -> bool:
        """Commit if the batch (or a merge) is due; return whether a commit happened."""
        if not self.is_due():
            return False
        commits = self.commits
        self.flush()
        return self.commits > commits

    def flush(self) -> int:
        """Commit every pending change now, then any merges owed; return how many changes were committed."""
        with self._write_lock:
            batch = self._take_pending()
            if batch:
                try:
                    # Merges owed get a commit of their own, after the batch: it is searchable without waiting.
                    self._commit(self.index.open(), batch, merge=not (self.defer_merges or self._unmerged))
                except BaseException:
                    self._restore_pending(batch)
                    raise
            if self._unmerged and not self.defer_merges:
                self._commit(self.index.open(), {}, merge=True)
            return len(batch)

    def _take_pending(self) -> dict[str, _Op]:
        with self._lock:
            batch, self._pending = self._pending, {}
            self._oldest = None
            return batch

    def _restore_pending(self, batch: dict[str, _Op]) -> None:
        # A failed commit must not lose changes; newer ones queued meanwhile win.
        with self._lock:
            merged = dict(batch)
            merged.update(self._pending)
            self._pending = merged
            self._oldest = self._clock() if self._oldest is None else self._oldest

    def _commit(self, ix: Index, batch: dict[str, _Op], *, merge: bool = True) -> None:
        writer = KithSegmentWriter(ix, timeout=self._lock_timeout)
        try:
            for doc_id, fields in batch.items():
                if fields is None:
                    writer.delete_by_term("id", doc_id)
                else:
                    # Keyed on the unique id field: replaces any older version.
                    writer.update_document(**fields)
        except BaseException:
            writer.cancel()
            raise
        writer.commit(merge=merge)
        self.commits += 1
        self._unmerged = 0 if merge else self._unmerged + 1

    def rebuild(self, documents: Iterable[SearchDocument], progress: Progress | None = None) -> int:
        """Rebuild the index from documents without losing concurrent changes.

        Changes queued while the new generation is built keep going to the
        old one (so readers stay current), and are replayed onto the new one
        right after the swap. `documents` should be read lazily (e.g. a
        streaming database query) so that it reflects the database at least
        as recently as the moment this method starts.
        """
        with self._lock:
            self._journal = {}
        try:
            gen_dir, count = build_generation(self.index.path, documents, progress)
            with self._write_lock:
                with self._lock:
                    journal, self._journal = self._journal or {}, None
                if journal:
                    # Replay before the swap so readers never see the new
                    # generation without the changes made during the build.
                    ix = open_generation(gen_dir)
                    try:
                        self._commit(ix, journal)
                    finally:
                        ix.close()
                swap_in(self.index.path, gen_dir)
                self._unmerged = 0  # the new generation is one segment, plus the replay's
        finally:
            with self._lock:
                self._journal = None
        self.index.needs_rebuild = False
        return count

    def close(self) -> None:
        """Commit whatever is pending."""
        self.flush()

    def __enter__(self) -> IndexWriterQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
