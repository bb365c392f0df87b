"""The baseline of bench/search.py: SQLite FTS5 over the same guides, the engine one would otherwise reach for.

One FTS5 table (title, summary, body, tags; the id unindexed) in a file, filled in one transaction (the build
rate: docs/s, commit included), then each query answered as the endpoint answers it, minus the facets: the
top 20 by bm25 (title and tags weighing 4, summary 2, body 1, as Kith weighs them) with `snippet()` from the
body, and the exact count of every match. Both words are required (FTS5's implicit AND), as Kith requires them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from server.search.documents import SearchDocument

PAGE = 20
TOP = (
    "SELECT id, snippet(guides, 3, '<mark>', '</mark>', '…', 24) FROM guides WHERE guides MATCH ? "
    "ORDER BY bm25(guides, 0.0, 4.0, 2.0, 1.0, 4.0) LIMIT ?"
)
COUNT = "SELECT count(*) FROM guides WHERE guides MATCH ?"


def build(path: Path, docs: Iterable[SearchDocument]) -> tuple[int, float, float]:
    """(documents, seconds, CPU seconds) to fill the table at `path` in one transaction."""
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    try:
        db.execute("CREATE VIRTUAL TABLE guides USING fts5(id UNINDEXED, title, summary, body, tags)")
        rows = [(d.id, d.title, d.summary, d.body, " ".join(d.tags)) for d in docs]
        started, cpu = time.perf_counter(), time.process_time()
        with db:
            db.executemany("INSERT INTO guides VALUES (?, ?, ?, ?, ?)", rows)
        return len(rows), time.perf_counter() - started, time.process_time() - cpu
    finally:
        db.close()


def match(q: str) -> str:
    """The FTS5 query for a query of plain words: each word quoted (no FTS5 syntax), all of them required."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in q.split())


def latencies(path: Path, queries: Sequence[str], warmup: Sequence[str], rate: float) -> list[float]:
    """Each query's top 20 with snippets and its exact count, paced at `rate` per second, on one connection."""
    db = sqlite3.connect(path)
    try:

        def search(q: str) -> None:
            expression = match(q)
            db.execute(TOP, (expression, PAGE)).fetchall()
            db.execute(COUNT, (expression,)).fetchone()

        for q in warmup:
            search(q)
        measured: list[float] = []
        start = time.perf_counter() + 0.05
        for i, q in enumerate(queries):
            scheduled = start + i / rate
            time.sleep(max(0.0, scheduled - time.perf_counter()))
            began = time.perf_counter()
            search(q)
            measured.append(time.perf_counter() - max(began, scheduled))
        return measured
    finally:
        db.close()
