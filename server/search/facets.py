"""The exact set of (filtered) matches as bitmaps: the total and facet counts without scoring.

Ranking needs scores only for one page, but `total` and the facets cover every match. Scoring every
match to count them made a broad query on a large index cost seconds. Here a query is evaluated a
second time, unscored, as set algebra over per-term bitmaps: one Python int per term and segment, bit
n set when document n holds the term. AND, OR and NOT are then single big-int operations, the total
is a popcount, and each facet value's count is the popcount of the matches AND that value's bitmap;
the many rare values (most tags) are counted from a per-document table instead (`_Segment`).
The cost depends on the number of documents and facet values, not on the number of matches.

Whoosh segments never change once written (only their deletion sets do), so a term's bitmap is built
once per segment and reused by later searches (bounded by bytes, least recently used first), and
deletions are masked out per searcher. Query nodes without a set-algebra meaning here (phrases,
anything unusual) are evaluated by Whoosh's own matcher, so the result is always what Whoosh matches.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_right
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from whoosh import query as wq
from whoosh.idsets import DocIdSet
from whoosh.reading import IndexReader
from whoosh.searching import Searcher

FACET_LIMIT = 50
# Facet name in results -> index field.
FACET_FIELDS = {"type": "type", "community": "community", "instance": "instance", "tag": "tags"}
# Term bitmaps kept across searches. A bitmap costs about doc_count / 8 bytes: 12 KB at 100,000
# documents, so this holds about 1,300 terms there; an evicted one is rebuilt from the ranking's
# cached postings (see MatchSets.postings) in a fraction of a millisecond.
TERM_CACHE_BYTES = 16 * 2**20

# A facet value with fewer documents than doc_count / SPARSE_RATIO keeps a list of them, not a bitmap.
SPARSE_RATIO = 64

# facet name -> [(value, bitmap)] for one segment's common values.
_FacetBits = dict[str, list[tuple[str, int]]]


def empty_facets() -> dict[str, dict[str, int]]:
    return {name: {} for name in FACET_FIELDS}


def bits_of(docnums: Iterable[int], doc_count: int) -> int:
    """A bitmap (bit n = document n) of segment-local document numbers."""
    buf = bytearray((doc_count + 7) >> 3)
    for docnum in docnums:
        buf[docnum >> 3] |= 1 << (docnum & 7)
    return int.from_bytes(buf, "little")


def docnums_of(bits: int) -> list[int]:
    """The document numbers set in a bitmap, ascending."""
    out: list[int] = []
    data = bits.to_bytes((bits.bit_length() + 7) >> 3, "little")
    for i, byte in enumerate(data):
        if byte:
            base = i << 3
            out.extend(base + j for j in range(8) if byte >> j & 1)
    return out


class _Segment:
    """What one segment contributes: its size, its facet values' documents.

    The rare values of every facet are kept document by document (`rare_starts`, `rare_values`: the
    values of document n are rare_values[rare_starts[n]:rare_starts[n + 1]], as indexes into
    `rare_names`), with their counts over the whole segment (`rare_totals`). Counting them for a set of
    matches then reads only the matched documents' values, or, when more than half the segment
    matches, the others' values, subtracted from the totals: a broad query costs what a narrow one does.
    """

    def __init__(self, reader: IndexReader) -> None:
        self.doc_count = reader.doc_count_all()
        self.all = (1 << self.doc_count) - 1
        # (number of deletions, bitmap of the documents left), for the last deletion set seen.
        self.live: tuple[int, int] | None = None
        self.facets: _FacetBits = {}
        self.rare_names: list[tuple[str, str]] = []  # (facet name, value)
        rare_docs: list[np.ndarray] = []
        for name, field in FACET_FIELDS.items():
            common: list[tuple[str, int]] = []
            for value in reader.field_terms(field):
                docs = _value_docs(reader, field, value, self.doc_count)
                if isinstance(docs, int):
                    common.append((value, docs))
                else:
                    self.rare_names.append((name, value))
                    rare_docs.append(np.frombuffer(docs, dtype=np.uint32))
            self.facets[name] = common
        docs = np.concatenate(rare_docs or [np.zeros(0, np.uint32)])
        values = np.repeat(np.arange(len(rare_docs), dtype=np.int32), [len(d) for d in rare_docs])
        by_doc = np.argsort(docs, kind="stable")
        self.rare_values = values[by_doc]
        self.rare_starts = np.zeros(self.doc_count + 1, dtype=np.int64)
        np.cumsum(np.bincount(docs, minlength=self.doc_count), out=self.rare_starts[1:])
        self.rare_totals = np.bincount(values, minlength=len(rare_docs))

    def rare_counts(self, docs: np.ndarray) -> np.ndarray:
        """How many of docs (segment document numbers) hold each rare value."""
        starts = self.rare_starts[docs]
        lengths = self.rare_starts[docs + 1] - starts
        count = int(lengths.sum())
        if not count:
            return np.zeros(len(self.rare_names), dtype=np.int64)
        # Position i of the output reads rare_values[start of its document + its rank within the document].
        runs = np.cumsum(lengths) - lengths
        at = np.arange(count) + np.repeat(starts - runs, lengths)
        return np.bincount(self.rare_values[at], minlength=len(self.rare_names))


def _value_docs(reader: IndexReader, field: str, value: str, doc_count: int) -> int | array[int]:
    """A facet value's documents: a bitmap, or for a rare value (most tags) a list of document numbers.

    A bitmap costs doc_count / 8 bytes whatever the value's frequency; thousands of rare tags would
    cost far more as bitmaps than as lists, and all the rare values of a facet are counted at once.
    """
    docnums = array("I", reader.postings(field, value).all_ids())
    if len(docnums) * SPARSE_RATIO < doc_count:
        return docnums
    return bits_of(docnums, doc_count)


# (segment reader, field, term bytes) -> the term's document numbers, ascending: ranking.RankArrays.postings
# reads them for scoring anyway, so a term's bitmap is made from the same arrays instead of a second read.
PostingsSource = Callable[[IndexReader, str, bytes], Any]


def _postings_bits(reader: IndexReader, field: str, text: Any, doc_count: int, source: PostingsSource | None) -> int:
    if source is None:
        if (field, text) not in reader:
            return 0
        return bits_of(reader.postings(field, text).all_ids(), doc_count)
    if field not in reader.schema:
        return 0
    try:
        btext = reader.schema[field].to_bytes(text)
    except ValueError:
        return 0
    docs = source(reader, field, btext)[0]
    if not len(docs):
        return 0
    flags = np.zeros(((doc_count + 7) >> 3) << 3, dtype=np.uint8)
    flags[docs] = 1
    return int.from_bytes(np.packbits(flags, bitorder="little").tobytes(), "little")


class MatchSets:
    """Bitmap caches shared by every search of one service (thread-safe)."""

    def __init__(
        self, max_bytes: int = TERM_CACHE_BYTES, max_segments: int = 256, postings: PostingsSource | None = None
    ) -> None:
        self.max_bytes = max_bytes
        self.max_segments = max_segments
        self.postings = postings
        self._lock = threading.Lock()
        self._terms: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        self._bytes = 0
        self._segments: OrderedDict[str, _Segment] = OrderedDict()

    def segment(self, reader: IndexReader) -> _Segment:
        key = reader.segment().segment_id()
        with self._lock:
            seg = self._segments.get(key)
            if seg is not None:
                self._segments.move_to_end(key)
                return seg
        # Built outside the lock: two threads may both build a new segment's
        # tables once, which is cheaper than making every search wait.
        seg = _Segment(reader)
        with self._lock:
            self._segments[key] = seg
            while len(self._segments) > self.max_segments:
                self._segments.popitem(last=False)
        return seg

    def term(self, reader: IndexReader, seg: _Segment, field: str, text: Any) -> int:
        key = (reader.segment().segment_id(), field, text)
        with self._lock:
            bits = self._terms.get(key)
            if bits is not None:
                self._terms.move_to_end(key)
                return bits
        bits = _postings_bits(reader, field, text, seg.doc_count, self.postings)
        size = (bits.bit_length() >> 3) + 64
        with self._lock:
            if key not in self._terms:
                self._terms[key] = bits
                self._bytes += size
            while self._bytes > self.max_bytes and self._terms:
                _, old = self._terms.popitem(last=False)
                self._bytes -= (old.bit_length() >> 3) + 64
        return bits

    def retain(self, segment_ids: set[str]) -> None:
        """Forget the segments a merge has replaced, so their bitmaps do not pile up."""
        with self._lock:
            for key in [key for key in self._segments if key not in segment_ids]:
                del self._segments[key]
            for key in [key for key in self._terms if key[0] not in segment_ids]:
                self._bytes -= (self._terms.pop(key).bit_length() >> 3) + 64

    def clear(self) -> None:
        with self._lock:
            self._terms.clear()
            self._bytes = 0
            self._segments.clear()


class LeafMatches:
    """One segment's matches: the segment, its offset in the searcher, and the bitmap."""

    __slots__ = ("bits", "offset", "segment")

    def __init__(self, segment: _Segment, offset: int, bits: int) -> None:
        self.segment = segment
        self.offset = offset
        self.bits = bits


def _live(reader: IndexReader, seg: _Segment) -> int:
    """The segment's documents that are not deleted."""
    if not reader.has_deletions():
        return seg.all
    segment = reader.segment()
    # A segment's deletions only ever grow, so their number identifies them.
    deleted = segment.deleted_count()
    cached = seg.live
    if cached is not None and cached[0] == deleted:
        return cached[1]
    live = seg.all & ~bits_of(segment.deleted_docs(), seg.doc_count)
    seg.live = (deleted, live)
    return live


def _eval(q: wq.Query, leaf: Searcher, seg: _Segment, sets: MatchSets) -> int:
    """Documents of one segment matching q, as a bitmap (deleted ones may be included)."""
    kind = type(q)
    if kind is wq.Term:
        return sets.term(leaf.reader(), seg, q.fieldname, q.text)
    if kind is wq.And or kind is wq.Require:
        bits = seg.all
        for child in q.children():
            bits &= _eval(child, leaf, seg, sets)
            if not bits:
                break
        return bits
    if kind is wq.Or and not q.minmatch:
        bits = 0
        for child in q.children():
            bits |= _eval(child, leaf, seg, sets)
        return bits
    if kind is wq.AndNot:
        return _eval(q.a, leaf, seg, sets) & ~_eval(q.b, leaf, seg, sets)
    if kind is wq.AndMaybe:
        return _eval(q.a, leaf, seg, sets)
    if kind is wq.Not:
        return seg.all & ~_eval(q.query, leaf, seg, sets)
    if kind is wq.Every and not q.fieldname:
        return seg.all
    if q is wq.NullQuery:
        return 0
    # Anything else (phrases above all): whatever Whoosh's own matcher finds.
    return bits_of(q.matcher(leaf, leaf.boolean_context()).all_ids(), seg.doc_count)


def match_bits(searcher: Searcher, sets: MatchSets, q: wq.Query | None, filter_q: wq.Query | None) -> list[LeafMatches]:
    """Every live document matching q (None: every document) and filter_q, per segment."""
    out: list[LeafMatches] = []
    for leaf, offset in searcher.leaf_searchers():
        reader = leaf.reader()
        if reader.segment() is None:  # an empty index has a reader but no segment
            continue
        seg = sets.segment(reader)
        bits = _live(reader, seg)
        for part in (filter_q, q):
            if part is not None and bits:
                bits &= _eval(part, leaf, seg, sets)
        out.append(LeafMatches(seg, offset, bits))
    return out


def total(matches: list[LeafMatches]) -> int:
    return sum(m.bits.bit_count() for m in matches)


def _ranked(counter: Counter[str]) -> dict[str, int]:
    pairs = [(value, count) for value, count in counter.items() if value]
    pairs.sort(key=lambda vc: (-vc[1], vc[0]))
    return dict(pairs[:FACET_LIMIT])


def facet_counts(matches: list[LeafMatches]) -> dict[str, dict[str, int]]:
    """{facet: {value: count}} over the matches.

    Values are ordered most frequent first, at most FACET_LIMIT per facet. A document with several
    tags counts once for each of them; one without a value (no tags, say) counts for none.
    """
    counters: dict[str, Counter[str]] = {name: Counter() for name in FACET_FIELDS}
    for m in matches:
        if not m.bits:
            continue
        for name, values in m.segment.facets.items():
            counter = counters[name]
            for value, bits in values:
                count = (m.bits & bits).bit_count()
                if count:
                    counter[value] += count
        seg = m.segment
        if not seg.rare_names:
            continue
        raw = np.frombuffer(m.bits.to_bytes((seg.doc_count + 7) >> 3, "little"), dtype=np.uint8)
        matched = np.unpackbits(raw, count=seg.doc_count, bitorder="little").view(bool)
        if m.bits.bit_count() * 2 > seg.doc_count:
            counts = seg.rare_totals - seg.rare_counts(np.flatnonzero(~matched))
        else:
            counts = seg.rare_counts(np.flatnonzero(matched))
        found = np.flatnonzero(counts)
        for i, count in zip(found.tolist(), counts[found].tolist(), strict=True):
            name, value = seg.rare_names[i]
            counters[name][value] += count
    return {name: _ranked(counter) for name, counter in counters.items()}


class AllowedDocs(DocIdSet):
    """Whoosh's `filter=`: the (global) documents whose bits are set, with O(1) lookups."""

    def __init__(self, matches: list[LeafMatches]) -> None:
        self._offsets = [m.offset for m in matches]
        self._bytes = [m.bits.to_bytes((m.segment.doc_count + 7) >> 3, "little") for m in matches]
        self._count = total(matches)

    def __contains__(self, docnum: object) -> bool:
        if not isinstance(docnum, int):
            return False
        i = bisect_right(self._offsets, docnum) - 1
        if i < 0:
            return False
        local = docnum - self._offsets[i]
        data = self._bytes[i]
        return 0 <= local < len(data) << 3 and bool(data[local >> 3] >> (local & 7) & 1)

    def __bool__(self) -> bool:
        # Whoosh drops a falsy filter altogether; an empty one must still exclude everything.
        return True

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Any:
        for offset, data in zip(self._offsets, self._bytes, strict=True):
            bits = int.from_bytes(data, "little")
            for docnum in docnums_of(bits):
                yield offset + docnum
