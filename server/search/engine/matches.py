"""The exact set of (filtered) matches as bitmaps: the total and facet counts without scoring.

Ranking needs scores only for one page, but `total` and the facets cover every match, and scoring every
match to count them made a broad query on a large index cost seconds. Here a query is evaluated a second
time, unscored, as set algebra over per-term bitmaps (bitmaps.py): AND, OR and NOT are big-int operations
and the total is a popcount.

Whoosh segments never change once written (only their deletion sets do), so a term's bitmap is built once
per segment and reused by later searches (bounded by bytes, least recently used first), and deletions are
masked out per searcher. Query nodes without a set-algebra meaning here (phrases, anything unusual) are
evaluated by Whoosh's own matcher, so the result is always what Whoosh matches.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from whoosh import query as wq
from whoosh.idsets import DocIdSet
from whoosh.reading import IndexReader
from whoosh.searching import Searcher

from .bitmaps import bits_of, bits_of_array, docnums_of
from .facets import Segment

# Term bitmaps kept across searches. A bitmap costs about doc_count / 8 bytes: 12 KB at 100,000
# documents, so this holds about 1,300 terms there; an evicted one is rebuilt cheaply from the ranking's
# cached postings (see MatchSets.postings).
TERM_CACHE_BYTES = 16 * 2**20


# (segment reader, field, term bytes) -> the term's document numbers, ascending: arrays.RankArrays.postings
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
    return bits_of_array(docs, doc_count)


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
        self._segments: OrderedDict[str, Segment] = OrderedDict()

    def segment(self, reader: IndexReader) -> Segment:
        key = reader.segment().segment_id()
        with self._lock:
            seg = self._segments.get(key)
            if seg is not None:
                self._segments.move_to_end(key)
                return seg
        # Built outside the lock: two threads may both build a new segment's
        # tables once, which is cheaper than making every search wait.
        seg = Segment(reader)
        with self._lock:
            self._segments[key] = seg
            while len(self._segments) > self.max_segments:
                self._segments.popitem(last=False)
        return seg

    def term(self, reader: IndexReader, seg: Segment, field: str, text: Any) -> int:
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

    def __init__(self, segment: Segment, offset: int, bits: int) -> None:
        self.segment = segment
        self.offset = offset
        self.bits = bits


def _live(reader: IndexReader, seg: Segment) -> int:
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


def evaluate(q: wq.Query, leaf: Searcher, seg: Segment, sets: MatchSets) -> int:
    """Documents of one segment matching q, as a bitmap (deleted ones may be included)."""
    kind = type(q)
    if kind is wq.Term:
        return sets.term(leaf.reader(), seg, q.fieldname, q.text)
    if kind is wq.And or kind is wq.Require:
        bits = seg.all
        for child in q.children():
            bits &= evaluate(child, leaf, seg, sets)
            if not bits:
                break
        return bits
    if kind is wq.Or and not q.minmatch:
        bits = 0
        for child in q.children():
            bits |= evaluate(child, leaf, seg, sets)
        return bits
    if kind is wq.AndNot:
        return evaluate(q.a, leaf, seg, sets) & ~evaluate(q.b, leaf, seg, sets)
    if kind is wq.AndMaybe:
        return evaluate(q.a, leaf, seg, sets)
    if kind is wq.Not:
        return seg.all & ~evaluate(q.query, leaf, seg, sets)
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
                bits &= evaluate(part, leaf, seg, sets)
        out.append(LeafMatches(seg, offset, bits))
    return out


def total(matches: list[LeafMatches]) -> int:
    return sum(m.bits.bit_count() for m in matches)


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
