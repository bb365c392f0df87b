"""Facet counts over every (filtered) match, not just one page.

Each document's facet values come from a per-segment table. Whoosh segments
never change once written (only their deletion sets do, and deleted
documents never match), so a table is built once per segment and reused by
every later search. This keeps a broad query on a large index from paying
for Whoosh's per-document facet lookups through its collector machinery.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import Counter, OrderedDict
from collections.abc import Iterable
from itertools import chain
from typing import Any

from whoosh.reading import IndexReader
from whoosh.searching import Searcher

FACET_LIMIT = 50
# Facet name in results -> index field.
FACET_FIELDS = {"type": "type", "community": "community", "instance": "instance", "tag": "tags"}
# Fields holding several values per document.
_MULTI_VALUED = frozenset({"tags"})

# field -> list indexed by docnum: the value (single-valued fields, None when
# missing) or a tuple of values (multi-valued fields).
_Table = dict[str, list[Any]]


def empty_facets() -> dict[str, dict[str, int]]:
    return {name: {} for name in FACET_FIELDS}


def _single_column(reader: IndexReader, field: str) -> list[str | None]:
    column: list[str | None] = [None] * reader.doc_count_all()
    for value in reader.field_terms(field):
        for docnum in reader.postings(field, value).all_ids():
            column[docnum] = value
    return column


def _multi_column(reader: IndexReader, field: str) -> list[tuple[str, ...]]:
    lists: list[list[str]] = [[] for _ in range(reader.doc_count_all())]
    for value in reader.field_terms(field):
        for docnum in reader.postings(field, value).all_ids():
            lists[docnum].append(value)
    return [tuple(values) for values in lists]


def _build_table(reader: IndexReader) -> _Table:
    return {
        field: _multi_column(reader, field) if field in _MULTI_VALUED else _single_column(reader, field)
        for field in FACET_FIELDS.values()
    }


class FacetTables:
    """A bounded cache of per-segment facet tables, keyed by segment id."""

    def __init__(self, max_segments: int = 256) -> None:
        self.max_segments = max_segments
        self._lock = threading.Lock()
        self._tables: OrderedDict[str, _Table] = OrderedDict()

    def table(self, reader: IndexReader) -> _Table:
        key = reader.segment().segment_id()
        with self._lock:
            table = self._tables.get(key)
            if table is not None:
                self._tables.move_to_end(key)
                return table
        # Built outside the lock: two threads may both build a new segment's
        # table once, which is cheaper than making every search wait.
        table = _build_table(reader)
        with self._lock:
            self._tables[key] = table
            while len(self._tables) > self.max_segments:
                self._tables.popitem(last=False)
        return table


def _by_leaf(offsets: list[int], docnums: Iterable[int]) -> list[list[int]]:
    """Split global document numbers into per-segment local ones."""
    buckets: list[list[int]] = [[] for _ in offsets]
    for docnum in docnums:
        i = bisect_right(offsets, docnum) - 1
        buckets[i].append(docnum - offsets[i])
    return buckets


def _count_leaf(table: _Table, docnums: list[int], counters: dict[str, Counter[str]]) -> None:
    for name, field in FACET_FIELDS.items():
        values = map(table[field].__getitem__, docnums)
        counters[name].update(chain.from_iterable(values) if field in _MULTI_VALUED else values)


def _ranked(counter: Counter[str]) -> dict[str, int]:
    # Documents without a value (no tags, say) are not a facet value.
    pairs = [(value, count) for value, count in counter.items() if value]
    pairs.sort(key=lambda vc: (-vc[1], vc[0]))
    return dict(pairs[:FACET_LIMIT])


def facet_counts(searcher: Searcher, docnums: Iterable[int], tables: FacetTables) -> dict[str, dict[str, int]]:
    """{facet: {value: count}} over the given (global) document numbers.

    Values are ordered most frequent first, at most FACET_LIMIT per facet.
    """
    counters: dict[str, Counter[str]] = {name: Counter() for name in FACET_FIELDS}
    leaves = searcher.leaf_searchers()
    buckets = _by_leaf([offset for _, offset in leaves], docnums)
    for (leaf, _offset), local in zip(leaves, buckets, strict=True):
        if local:
            _count_leaf(tables.table(leaf.reader()), local, counters)
    return {name: _ranked(counter) for name, counter in counters.items()}
