"""Postings grouped by term as documents arrive, in place of Whoosh's pool of one tuple per posting.

Whoosh's `PostingPool` takes every posting as a `(field, term, docnum, weight, value)` tuple and sorts all
of them at commit, spilling sorted runs to disk past `limitmb` and merging them back one posting at a
time. Here each term's postings are appended to that term's lists (documents arrive in order), a commit
sorts only the distinct terms, and runs spilled to disk are merged a term at a time.
"""

from __future__ import annotations

import contextlib
import heapq
import marshal
from array import array
from collections.abc import Iterable, Iterator
from typing import Any

from whoosh.util import random_name

# (docnums, weights, values) of one term, in document order.
_Lists = tuple[array, list[Any], list[bytes]]
# What a run on disk holds per term: field, term, docnums as bytes, weights, values.
_Record = tuple[str, bytes, bytes, list[Any], list[bytes]]

# Rough bytes of memory per posting on top of its value, and per term, for the `limitmb` budget.
_POSTING_BYTES = 24
_TERM_BYTES = 300
# How often (in estimated bytes) a long stream of postings checks the budget.
_CHECK_BYTES = 1 << 20


class TermPool:
    """Postings grouped by (field, term), spilled to sorted runs on disk when over budget.

    Stands in for Whoosh's `PostingPool` inside `KithSegmentWriter`: `add` and `add_postings` take its
    `(field, term, docnum, weight, value)` tuples, `add_terms` a document's postings for one field at once,
    `add_block` a term's postings for several documents (a block of a merged segment).
    """

    def __init__(self, tempstore: Any, limitmb: int = 128) -> None:
        self.tempstore = tempstore
        self.limit = limitmb * 1024 * 1024
        self.size = 0
        self.fieldnames: set[str] = set()
        self._fields: dict[str, dict[bytes, _Lists]] = {}
        self._unordered: set[tuple[str, bytes]] = set()
        self._runs: list[str] = []

    def add(self, item: tuple[str, bytes, int, Any, bytes | None]) -> None:
        self.add_postings((item,))

    def add_postings(self, items: Iterable[tuple[str, bytes, int, Any, bytes | None]]) -> None:
        """Add postings given one by one as (field, term, docnum, weight, value): a merged segment's."""
        lastfn = None
        terms: dict[bytes, _Lists] = {}
        size = 0
        for fieldname, btext, docnum, weight, value in items:
            if fieldname != lastfn:
                terms = self._fields.get(fieldname) or self._fields.setdefault(fieldname, {})
                self.fieldnames.add(fieldname)
                lastfn = fieldname
            lists = terms.get(btext)
            if lists is None:
                terms[btext] = (array("I", (docnum,)), [weight], [value])
                size += _TERM_BYTES
            else:
                ids = lists[0]
                if docnum <= ids[-1]:
                    # Whoosh orders postings of equal docnum by weight and value; see `_ordered`.
                    self._unordered.add((fieldname, btext))
                ids.append(docnum)
                lists[1].append(weight)
                lists[2].append(value)
            size += _POSTING_BYTES + (len(value) if value else 0)
            if size > _CHECK_BYTES:
                self.size += size
                size = 0
                if self.size > self.limit:
                    self._spill()
                    lastfn = None  # the spill started new dicts
        self.size += size
        if self.size > self.limit:
            self._spill()

    def add_terms(self, fieldname: str, docnum: int, items: Any) -> None:
        """Add the postings (term, freq, weight, value) of one document in one field."""
        self.add_postings((fieldname, btext, docnum, weight, value) for btext, _freq, weight, value in items)

    def add_block(self, fieldname: str, btext: bytes, ids: array, weights: list[Any], values: list[Any]) -> None:
        """Add one term's postings for several documents, in document order."""
        terms = self._fields.get(fieldname)
        if terms is None:
            terms = self._fields[fieldname] = {}
            self.fieldnames.add(fieldname)
        if len(set(ids)) < len(ids):
            # Blocks read back are in ascending order; a repeated number (the spelling field's 0) needs
            # Whoosh's order by weight and value.
            self._unordered.add((fieldname, btext))
        lists = terms.get(btext)
        if lists is None:
            terms[btext] = (ids, weights, values)
            self.size += _TERM_BYTES
        else:
            if ids[0] <= lists[0][-1]:
                self._unordered.add((fieldname, btext))
            lists[0].extend(ids)
            lists[1].extend(weights)
            lists[2].extend(values)
        self.size += len(ids) * _POSTING_BYTES + sum(len(v) for v in values if v)
        if self.size > self.limit:
            self._spill()

    def _sorted_records(self) -> Iterator[_Record]:
        unordered = self._unordered
        for fieldname in sorted(self._fields):
            terms = self._fields[fieldname]
            for btext in sorted(terms):
                ids, weights, values = terms[btext]
                if unordered and (fieldname, btext) in unordered:
                    ids, weights, values = _ordered(ids, weights, values)
                yield fieldname, btext, ids.tobytes(), weights, values

    def _spill(self) -> None:
        if not self._fields:
            return
        name = f"{random_name()}.terms"
        with self.tempstore.create_file(name).raw_file() as fh:
            for record in self._sorted_records():
                marshal.dump(record, fh)
        self._runs.append(name)
        self._fields, self._unordered = {}, set()
        self.size = 0

    def _read_run(self, name: str) -> Iterator[_Record]:
        with self.tempstore.open_file(name).raw_file() as fh:
            while True:
                try:
                    yield marshal.load(fh)
                except EOFError:
                    break

    def terms(self) -> Iterator[tuple[str, bytes, array, list[Any], list[bytes]]]:
        """Every term in (field, term) order with its postings in document order."""
        if not self._runs:
            for fieldname, btext, ids, weights, values in self._sorted_records():
                yield fieldname, btext, _ids(ids), weights, values
            return
        self._spill()
        # heapq.merge is stable: a term found in several runs comes out of the earlier runs first, and
        # runs hold increasing document numbers, so concatenating keeps document order.
        records = heapq.merge(*map(self._read_run, self._runs), key=lambda record: (record[0], record[1]))
        current: tuple[str, bytes] | None = None
        ids: array = array("I")
        weights: list[Any] = []
        values: list[bytes] = []
        ordered = True
        for fieldname, btext, raw, w, v in records:
            if (fieldname, btext) != current:
                if current is not None:
                    yield (*current, *((ids, weights, values) if ordered else _ordered(ids, weights, values)))
                current, ids, weights, values, ordered = (fieldname, btext), array("I"), [], [], True
            more = _ids(raw)
            if ids and more[0] <= ids[-1]:
                ordered = False  # each run's part is in order; only where they meet can it break
            ids.extend(more)
            weights.extend(w)
            values.extend(v)
        if current is not None:
            yield (*current, *((ids, weights, values) if ordered else _ordered(ids, weights, values)))

    def cleanup(self) -> None:
        for name in self._runs:
            with contextlib.suppress(OSError):
                self.tempstore.delete_file(name)
        self._runs = []


def _ids(raw: bytes) -> array:
    ids = array("I")
    ids.frombytes(raw)
    return ids


def _ordered(ids: array, weights: list[Any], values: list[bytes]) -> _Lists:
    # Whoosh sorts whole posting tuples, so postings with the same document number (the spelling field
    # adds every word with document 0) come out ordered by weight, then value.
    rows = sorted(zip(ids, weights, values, strict=True))
    return array("I", (r[0] for r in rows)), [r[1] for r in rows], [r[2] for r in rows]
