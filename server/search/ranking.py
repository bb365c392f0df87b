"""Whoosh's BM25F top-k, computed with arrays over the exact match set instead of Whoosh's matcher tree.

Whoosh ranks by walking a tree of matchers one document at a time in Python (`skip_to`, `id`, `score`
per candidate), which costs hundreds of milliseconds for two common words on a large index. The match
set is already known exactly (`facets.match_bits`), so here each segment's candidates are scored at
once: per query term, its postings (document numbers and weights, from the segment's compact postings
file when it has one, see postings.py) and the field's length column are loaded into numpy arrays
(cached across searches, bounded by bytes), the term's BM25F score is evaluated for the candidates
holding it, and the scores are combined the way Whoosh's matchers combine them: same idf and average
field length (from the top-level searcher, with its cache), same B and K1, same term and query boosts,
and the same order of additions, because Whoosh adds sub-scores along a tree whose shape depends on the
subqueries' estimated sizes and floating-point addition is not associative. The scores are therefore bit
for bit Whoosh's, and the page is ordered as Whoosh orders it: score descending, document number
ascending on ties. That is the ranking of `searcher.search(q, limit=None)`; Whoosh's default top-k
collector (`limit=k`) can miss documents of it, see service._top.

A query with a node this module does not score exactly (phrases, `Every`, coordination scaling,
`minmatch`, another weighting model...) raises `Unsupported`, and the caller ranks it with Whoosh's
own collector instead.
"""

from __future__ import annotations

import logging
import struct
import threading
import zlib
from bisect import bisect_right
from collections import OrderedDict
from pickle import loads
from typing import Any

import numpy as np
from whoosh import query as wq
from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3LeafMatcher, W3TermsReader
from whoosh.filedb.structfile import BufferFile
from whoosh.reading import IndexReader
from whoosh.scoring import BM25F
from whoosh.searching import Searcher
from whoosh.util.numeric import byte_to_length

from .facets import LeafMatches, MatchSets, _eval
from .postings import PostingsFile, open_postings_file

log = logging.getLogger(__name__)

# Term postings, their scores and field-length columns kept across searches. A posting costs 12 bytes
# (document number as a native integer, weight as float32 when that is exact, as term frequencies are)
# plus 8 for its score under the current statistics, so a word in every one of 100,000 documents costs
# 2 MB; a length column costs 1 byte per document and field, its length factors 8. 80 MB hold the
# commonest words of a 100,000-guide index, which two-word queries keep coming back to, within the
# server's 300 MB; a word read again comes from the segment's compact postings file (postings.py).
ARRAY_CACHE_BYTES = 80 * 2**20
# A segment where more than one document in DENSE_RATIO is a candidate is scored per document (_Leaf).
DENSE_RATIO = 4
# Per-entry bookkeeping counted on top of the arrays.
_ENTRY_OVERHEAD = 256

# A field length is stored as one byte; this maps each byte to the length Whoosh's scorer sees.
_LENGTHS = np.array([0.0] + [float(byte_to_length(b)) for b in range(1, 256)], dtype=np.float64)

_EMPTY_DOCS = np.zeros(0, dtype=np.intp)
_EMPTY_WEIGHTS = np.zeros(0, dtype=np.float64)


class Unsupported(Exception):
    """The query has a node whose Whoosh score is not reproduced here; rank it with Whoosh."""


class RankArrays:
    """Per-segment term postings and length columns as arrays, least recently used first out (thread-safe)."""

    def __init__(self, max_bytes: int = ARRAY_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        # segment id -> its compact postings file (postings.py), None for a segment without one.
        self._files: dict[str, PostingsFile | None] = {}

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _get(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def _put(self, key: tuple[Any, ...], value: Any, size: int) -> None:
        size += _ENTRY_OVERHEAD
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, (_, old) = self._entries.popitem(last=False)
                self._bytes -= old

    def postings(self, reader: IndexReader, field: str, btext: bytes) -> tuple[np.ndarray, np.ndarray]:
        """The term's document numbers (ascending, deleted ones included) and posting weights.

        The numbers are native integers (np.intp): numpy converts any other index array on every scatter
        and lookup, which cost more than a term's scoring. Weights are float32 when that is exact.
        """
        segment_id = reader.segment().segment_id()
        key = ("p", segment_id, field, btext)
        cached = self._get(key)
        if cached is None:
            kept = self._postings_file(reader, segment_id)
            cached = kept.get(field, btext) if kept is not None else None
            if cached is None:  # a short list, or a segment written without the compact file
                cached = _read_postings(reader, field, btext)
            self._put(key, cached, cached[0].nbytes + cached[1].nbytes)
        return cached

    def _postings_file(self, reader: IndexReader, segment_id: str) -> PostingsFile | None:
        with self._lock:
            if segment_id in self._files:
                return self._files[segment_id]
        # Opened outside the lock (it reads the file's table); two threads may both open it once.
        try:
            opened = open_postings_file(reader)
        except (OSError, ValueError, EOFError, TypeError, struct.error):
            # A damaged file only costs speed: the segment is read from Whoosh's postings.
            log.warning("cannot read the compact postings of segment %s", segment_id, exc_info=True)
            opened = None
        with self._lock:
            return self._files.setdefault(segment_id, opened)

    def lengths(self, reader: IndexReader, field: str) -> np.ndarray:
        """The field's stored length byte for every document of the segment."""
        key = ("l", reader.segment().segment_id(), field)
        cached = self._get(key)
        if cached is None:
            cached = _read_length_bytes(reader, field)
            self._put(key, cached, cached.nbytes)
        return cached

    def norms(self, reader: IndexReader, field: str, avgfl: float, B: float, K1: float) -> np.ndarray:
        """K1 * ((1 - B) + B * fl / avgfl) for every document of the segment: bm25's length part.

        Computed per document exactly as whoosh.scoring.bm25 computes it; kept until the average
        length (a statistic of the whole index) changes.
        """
        key = ("n", reader.segment().segment_id(), field, avgfl, B, K1)
        cached = self._get(key)
        if cached is None:
            fl = _LENGTHS[self.lengths(reader, field)]
            cached = K1 * ((1 - B) + B * fl / avgfl)
            self._put(key, cached, cached.nbytes)
        return cached

    def term_scores(
        self, reader: IndexReader, field: str, btext: bytes, idf: float, avgfl: float, B: float, K1: float
    ) -> np.ndarray:
        """The term's bm25 score for each of its postings (in postings order), for these statistics."""
        key = ("s", reader.segment().segment_id(), field, btext, idf, avgfl, B, K1)
        cached = self._get(key)
        if cached is None:
            posting_docs, weights = self.postings(reader, field, btext)
            w = weights.astype(np.float64)  # stored as float32 when exact; scored in double, as Whoosh does
            # whoosh.scoring.bm25, posting by posting the same operations in the same order.
            cached = idf * ((w * (K1 + 1)) / (w + self.norms(reader, field, avgfl, B, K1)[posting_docs]))
            self._put(key, cached, cached.nbytes)
        return cached

    def retain(self, segment_ids: set[str]) -> None:
        """Forget the segments a merge has replaced."""
        with self._lock:
            for key in [key for key in self._entries if key[1] not in segment_ids]:
                self._bytes -= self._entries.pop(key)[1]
            # A dropped file closes once no search still reads it: a merge's old segments free their space.
            for segment_id in [segment_id for segment_id in self._files if segment_id not in segment_ids]:
                del self._files[segment_id]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._files.clear()


def _read_postings(reader: IndexReader, field: str, btext: bytes) -> tuple[np.ndarray, np.ndarray]:
    if (field, btext) not in reader:
        return _EMPTY_DOCS, _EMPTY_WEIGHTS
    # The raw postings, without the deletion filter reader.postings() adds: candidates are live already.
    terms = reader._terms
    terminfo = terms.term_info(field, btext)
    fmt = reader.schema[field].format
    if isinstance(terms, W3TermsReader) and not terminfo.is_inlined():
        # One read of the term's whole extent, then the blocks are decoded from memory: the file is
        # not mapped (see storage.open_generation), and a matcher on it reads every block header
        # with several small reads.
        offset, length = terminfo.extent()
        if isinstance(length, tuple):  # this Whoosh release unpacks the stored length into a 1-tuple
            length = length[0]
        m = W3LeafMatcher(BufferFile(terms._postfile.get(offset, length)), 0, length, fmt)
    else:
        m = terms.matcher(field, btext, fmt, scorer=None)
    if type(m) is not W3LeafMatcher or m._byteids:  # another codec: one posting at a time, the public way
        one_ids, one_weights = [], []
        while m.is_active():
            one_ids.append(m.id())
            one_weights.append(m.weight())
            m.next()
        return np.asarray(one_ids, dtype=np.intp), np.asarray(one_weights, dtype=np.float64)
    # Whole blocks at a time, decoded as W3LeafMatcher._read_ids/_read_weights do, without a Python loop
    # per posting: a block's ids are deltas from 0, so turning each block's first id into a delta from the
    # previous block's last id makes one cumulative sum decode them all.
    deltas: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    previous_max = 0
    while m.is_active():
        count = m._blocklength
        data = m._postfile.get(m._dataoffset, m._nextoffset - m._dataoffset)
        # Only the ids and weights are needed, and they come first: decompress just that much.
        head = zlib.decompressobj().decompress(data, _head_size(count)) if m._compression else data
        decoded = _decode_block(head, count)
        if decoded is None:  # not the common shape: unpickle the whole block as Whoosh does
            ids, block_weights, _ = loads(zlib.decompress(data) if m._compression else data)
            block = np.asarray(ids, dtype=np.int64)
        else:
            block, block_weights = decoded
        block[0] -= previous_max
        deltas.append(block)
        if block_weights is None:
            weights.append(np.ones(count, dtype=np.float64))
        elif isinstance(block_weights, (int, float)):
            weights.append(np.full(count, block_weights, dtype=np.float64))
        else:
            weights.append(np.asarray(block_weights, dtype=np.float64))
        previous_max = m._maxid
        m._next_block()
    if not deltas:
        return _EMPTY_DOCS, _EMPTY_WEIGHTS
    all_weights = np.concatenate(weights)
    narrow = all_weights.astype(np.float32)
    if np.array_equal(narrow, all_weights):  # term frequencies times a field boost: exact in 4 bytes
        all_weights = narrow
    return np.cumsum(np.concatenate(deltas)).astype(np.intp), all_weights


_PICKLE_HEAD = b"\x80\x02("  # protocol 2, then MARK: the block's (ids, weights, values) tuple opens with a list
_BININT1, _BININT2, _BININT, _BINFLOAT, _MARK, _TUPLE, _NONE, _BINPUT, _LONG_BINPUT = b"KMJG(tNqr"


_BININT1_RUN = bytes([_BININT1]) * 1024
_BINFLOAT_RUN = bytes([_BINFLOAT]) * 1024


def _head_size(count: int) -> int:
    """Bytes of a block's pickle that hold at most its ids and weights in the shape _decode_block reads."""
    return 8 + 2 * count + 6 + 2 + 9 * count + 8


def _decode_block(data: bytes, count: int) -> tuple[np.ndarray, Any] | None:
    """A block's id deltas and weights, read straight from its pickle; None if it has another shape.

    Unpickling a block builds every posting's positions too (a bytes object each, through a REDUCE),
    which is most of the cost of reading postings. The ids and weights come first in the pickle; in
    the common case every id delta after the first is a one-byte int (BININT1) and the weights are
    None, one float or one float per posting (BINFLOAT), and those are picked out with strided slices.
    Anything else returns None, and the caller unpickles the block.
    """
    if not 4 <= count <= 1024 or not data.startswith(_PICKLE_HEAD):
        return None
    # The first id of a block is a document number (its delta from 0), so it may take 2 or 4 bytes.
    first_op = data[3]
    if first_op == _BININT1:
        first, at = data[4], 5
    elif first_op == _BININT2:
        first, at = int.from_bytes(data[4:6], "little"), 6
    elif first_op == _BININT:
        first, at = int.from_bytes(data[4:8], "little", signed=True), 8
    else:
        return None
    end = at + 2 * (count - 1)
    if len(data) <= end + 2 or data[end] != _TUPLE or data[at:end:2] != _BININT1_RUN[: count - 1]:
        return None
    ids = np.empty(count, dtype=np.int64)
    ids[0] = first
    ids[1:] = np.frombuffer(data[at + 1 : end : 2], dtype=np.uint8)
    at = end + 1
    if data[at] == _BINPUT:
        at += 2
    elif data[at] == _LONG_BINPUT:
        at += 5
    op = data[at] if at < len(data) else None
    if op == _NONE:
        return ids, None
    if op == _BINFLOAT and at + 9 <= len(data):
        return ids, struct.unpack_from(">d", data, at + 1)[0]
    if op == _MARK:
        start, stop = at + 1, at + 1 + 9 * count
        if len(data) <= stop or data[stop] != _TUPLE or data[start:stop:9] != _BINFLOAT_RUN[:count]:
            return None
        # Each weight is BINFLOAT + 8 big-endian bytes: a strided view over them, then native doubles.
        floats = np.ndarray(shape=(count,), dtype=">f8", buffer=data, offset=start + 1, strides=(9,))
        return ids, floats.astype(np.float64)
    return None


def _read_length_bytes(reader: IndexReader, field: str) -> np.ndarray:
    doc_count = reader.doc_count_all()
    out = np.zeros(doc_count, dtype=np.uint8)
    perdoc = getattr(reader, "_perdoc", None)
    column = perdoc._cached_reader(f"_{field}_len", LENGTHS_COLUMN) if perdoc is not None else None
    if column is None:
        return out
    count = min(column._count, doc_count)
    raw = column._dbfile.get(column._basepos, count)
    out[:count] = np.frombuffer(bytes(raw), dtype=np.uint8)
    return out


class _Leaf:
    """What scoring one segment needs: its searcher, the candidates and the shared statistics.

    With few candidates, scores are kept per candidate (arrays as long as `docs`), each term's postings
    looked up at the candidates. With many, a term's lookup at every candidate costs more than the
    arithmetic, so scores are kept per document of the segment (`dense`): a term is one scatter of its
    postings, and the candidates are picked out once at the end. Every step is elementwise, so the
    scores are the same numbers either way.
    """

    __slots__ = ("_table", "arrays", "bm25", "dense", "docs", "leaf", "reader", "segment", "sets", "size", "top")

    def __init__(
        self, top: Searcher, leaf: Searcher, match: LeafMatches, docs: np.ndarray, arrays: RankArrays, sets: MatchSets
    ) -> None:
        self.top = top
        self.leaf = leaf
        self.reader = leaf.reader()
        self.segment = match.segment
        self.docs = docs  # segment-local document numbers of the candidates, ascending (np.intp)
        self.arrays = arrays
        self.sets = sets
        self.bm25: BM25F = top.weighting
        self.dense = len(docs) * DENSE_RATIO > match.segment.doc_count
        self.size = match.segment.doc_count if self.dense else len(docs)  # the length of every score array
        self._table: np.ndarray | None = None

    def scratch(self) -> np.ndarray:
        """A table of -1 per document of the segment, to be left as found."""
        if self._table is None:
            self._table = np.full(self.segment.doc_count, -1, dtype=np.int32)
        return self._table


# q's Whoosh score for every candidate (0.0 where q does not match it), where q matches, and
# q.estimate_size(segment reader), which decides the shape of Whoosh's matcher trees. The arrays hold
# one entry per candidate, or per document of the segment when the leaf is dense.
_Scored = tuple[np.ndarray, np.ndarray, int]


class _Postings:
    """A term's scores in a dense leaf, kept as its postings until combined.

    Spelling out a common word's title or tag scores over every document of the segment costs more
    than the word's postings; added to a sum, its scores take one scatter into the sum's arrays.
    The arrays of a dense leaf's sums are its own (every partial result feeds exactly one parent),
    so they are updated in place; the postings and scores here are shared with the cache and only read.
    """

    __slots__ = ("docs", "length", "scores", "size")

    def __init__(self, docs: np.ndarray, scores: np.ndarray, length: int, size: int) -> None:
        self.docs = docs
        self.scores = scores
        self.length = length  # documents in the segment
        self.size = size  # as _Scored's third item


# A query node's result: its arrays, or a dense leaf's term as its postings.
_Part = _Scored | _Postings


def _full(part: _Part) -> _Scored:
    """The part as arrays (a term's postings spelled out per document)."""
    if not isinstance(part, _Postings):
        return part
    scores = np.zeros(part.length, dtype=np.float64)
    scores[part.docs] = part.scores
    hit = np.zeros(part.length, dtype=bool)
    hit[part.docs] = True
    return scores, hit, part.size


def _added(total: _Scored, part: _Postings, boost: float = 1.0) -> _Scored:
    """total + part * boost, in place: the sum's own arrays, changed only where the term has postings."""
    scores, hit, size = total
    # add.at adds one posting at a time, unbuffered: for distinct documents, scores[docs] += ..., but faster.
    np.add.at(scores, part.docs, part.scores if boost == 1.0 else part.scores * boost)
    hit[part.docs] = True
    return scores, hit, size


def _null(ctx: _Leaf) -> _Scored:
    return np.zeros(ctx.size, dtype=np.float64), np.zeros(ctx.size, dtype=bool), 0


def _member(q: wq.Query, ctx: _Leaf) -> np.ndarray:
    """Which candidates (or documents) match q (unscored, as Whoosh's boolean context does)."""
    bits = _eval(q, ctx.leaf, ctx.segment, ctx.sets)
    raw = np.frombuffer(bits.to_bytes((ctx.segment.doc_count + 7) >> 3, "little"), dtype=np.uint8)
    flags = np.unpackbits(raw, bitorder="little")
    return (flags[: ctx.size] if ctx.dense else flags[ctx.docs]).astype(bool)


def _term(q: wq.Term, ctx: _Leaf) -> _Part:
    if q.minquality:
        raise Unsupported("minquality")
    schema = ctx.leaf.schema
    if q.fieldname not in schema:
        return _null(ctx)
    field = schema[q.fieldname]
    try:
        btext = field.to_bytes(q.text)
    except ValueError:
        return _null(ctx)
    posting_docs, weights = ctx.arrays.postings(ctx.reader, q.fieldname, btext)
    size = len(posting_docs)  # Term.estimate_size: the segment's document frequency, deletions included
    if not size:
        return _null(ctx)
    if field.scorable:
        bm25 = ctx.bm25
        B = bm25._field_B.get(q.fieldname, bm25.B)
        idf = ctx.top.idf(q.fieldname, btext)
        avgfl = ctx.top.avg_field_length(q.fieldname) or 1
        term_scores = ctx.arrays.term_scores(ctx.reader, q.fieldname, btext, idf, avgfl, B, bm25.K1)
    else:  # WeightScorer: the posting's weight
        term_scores = weights.astype(np.float64)
    if ctx.dense:
        return _Postings(posting_docs, term_scores if q.boost == 1.0 else term_scores * q.boost, ctx.size, size)
    docs = ctx.docs
    if len(docs) * 16 > ctx.segment.doc_count:
        # Many candidates: place the postings' positions in a document-indexed table, look the candidates up.
        table = ctx.scratch()
        table[posting_docs] = np.arange(size, dtype=np.int32)
        at = table[docs]
        table[posting_docs] = -1
        hit = at >= 0
        at = at[hit]
    else:
        at = np.searchsorted(posting_docs, docs)
        inside = at < size
        hit = np.zeros(len(docs), dtype=bool)
        hit[inside] = posting_docs[at[inside]] == docs[inside]
        at = at[hit]
    s = term_scores[at]
    if q.boost != 1.0:
        s = s * q.boost
    scores = np.zeros(len(docs), dtype=np.float64)
    scores[hit] = s
    return scores, hit, size


def _weighted_tree(items: list[tuple[int, _Part]], combine: Any) -> _Part:
    """whoosh.util.make_weighted_tree: merge the two lightest, in stable order, until one is left.

    Matchers compare as never "less than" one another, so items of equal weight keep their order
    and a merged pair goes after those of its weight (insort), as here.
    """
    items = sorted(items, key=lambda item: item[0])
    while len(items) > 1:
        (wa, a), (wb, b) = items[0], items[1]
        del items[:2]
        weight = wa + wb
        at = bisect_right([w for w, _ in items], weight)
        items.insert(at, (weight, combine(a, b)))
    return items[0][1]


# Every array a query node hands its parent was made for this search and feeds that parent only, so
# the combinations below reuse their operands' arrays for the result.


def _intersection(a: _Part, b: _Part) -> _Scored:
    (scores, matched, _), (b_scores, b_hit, _) = _full(a), _full(b)
    matched &= b_hit
    scores += b_scores
    # IntersectionMatcher: a + b where both match, else nothing. Scores are finite, so multiplying by
    # the flags keeps a + b exactly and leaves a zero elsewhere (-0.0 for a negative sum: adding it to
    # a score changes nothing, and a candidate's own score is never one of these).
    scores *= matched
    return scores, matched, 0


def _union(a: _Part, b: _Part) -> _Scored:
    # A score is 0.0 where its side does not match, and x + 0.0 is exactly x: a term's postings are
    # added where it has them. Addition is commutative, so b + a is a + b.
    if isinstance(b, _Postings):
        return _added(_full(a), b)
    if isinstance(a, _Postings):
        return _added(b, a)
    scores, matched, _ = a
    scores += b[0]
    matched |= b[1]
    return scores, matched, 0


def _boosted(scores: np.ndarray, matched: np.ndarray, boost: float, size: int) -> _Scored:
    if boost != 1.0:
        scores *= boost
    return scores, matched, size


def _and(q: wq.And, ctx: _Leaf) -> _Part:
    subs = q.subqueries
    if not subs:
        return _null(ctx)
    if len(subs) == 1:  # CompoundQuery.matcher: the child's matcher as it is, boost and all
        return _score(subs[0], ctx)
    scored = [_score(sub, ctx) for sub in subs]
    sizes = [_size(sc) for sc in scored]
    scores, matched, _ = _full(
        _weighted_tree([(0 - n, sc) for n, sc in zip(sizes, scored, strict=True)], _intersection)
    )
    return _boosted(scores, matched, q.boost, min(sizes))  # And.estimate_size


def _or(q: wq.Or, ctx: _Leaf) -> _Part:
    if q.minmatch or q.scale:
        raise Unsupported("minmatch or scale")
    subs = q.subqueries
    if not subs:
        return _null(ctx)
    if len(subs) == 1:
        return _score(subs[0], ctx)
    scored = [_score(sub, ctx) for sub in subs]
    sizes = [_size(sc) for sc in scored]
    size = min(sum(sizes), ctx.reader.doc_count())  # CompoundQuery.estimate_size
    kind = q.matcher_type
    if kind == wq.Or.AUTO_MATCHER:
        # Or._matcher with searcher.search()'s context (needs_current is False).
        dc = ctx.leaf.doc_count_all()
        array = not (len(subs) < wq.Or.TOO_MANY_CLAUSES and (len(subs) == 2 or dc > 5000))
        kind = wq.Or.ARRAY_MATCHER if array else wq.Or.DEFAULT_MATCHER
    if kind == wq.Or.DEFAULT_MATCHER:  # DefaultOr: a weighted tree of UnionMatchers
        scores, matched, _ = _full(_weighted_tree(list(zip(sizes, scored, strict=True)), _union))
        return _boosted(scores, matched, q.boost, size)
    if kind == wq.Or.ARRAY_MATCHER:  # PreloadedOr: ArrayUnionMatcher adds score * boost child by child
        scores, matched, _ = _null(ctx)
        for sub in scored:
            if isinstance(sub, _Postings):
                _added((scores, matched, 0), sub, q.boost)
            else:
                scores += sub[0] * q.boost
                matched |= sub[1]
        return scores, matched, size
    raise Unsupported(f"Or matcher type {kind}")


def _size(part: _Part) -> int:
    return part.size if isinstance(part, _Postings) else part[2]


def _score(q: wq.Query, ctx: _Leaf) -> _Part:
    """q's score, matches and estimated size over the candidates, as Whoosh's matcher for q has them."""
    kind = type(q)
    if kind is wq.Term:
        return _term(q, ctx)
    if kind is wq.And:
        return _and(q, ctx)
    if kind is wq.Or:
        return _or(q, ctx)
    if kind is wq.AndNot or kind is wq.Require or kind is wq.AndMaybe:
        a_scores, a_hit, a_size = _full(_score(q.a, ctx))
        if kind is wq.AndMaybe:  # AndMaybeMatcher: a's score, plus b's where b matches too
            b_scores, _, b_size = _full(_score(q.b, ctx))
            return np.where(a_hit, a_scores + b_scores, 0.0), a_hit, min(a_size + b_size, ctx.reader.doc_count())
        b_hit = _member(q.b, ctx)
        if kind is wq.AndNot:  # AndNotMatcher: a's score
            matched = a_hit & ~b_hit
            size = min(a_size + q.b.estimate_size(ctx.reader), ctx.reader.doc_count())
        else:  # RequireMatcher: a's score
            matched = a_hit & b_hit
            size = q.b.estimate_size(ctx.reader)
        return np.where(matched, a_scores, 0.0), matched, size
    if kind is wq.Not:  # InverseMatcher: weight 1.0 for every document the child misses
        matched = ~_member(q.query, ctx)
        return np.where(matched, 1.0, 0.0), matched, ctx.reader.doc_count()
    if q is wq.NullQuery:
        return _null(ctx)
    raise Unsupported(type(q).__name__)


def _bool_array(bits: int, doc_count: int) -> np.ndarray:
    raw = np.frombuffer(bits.to_bytes((doc_count + 7) >> 3, "little"), dtype=np.uint8)
    return np.unpackbits(raw, bitorder="little")[:doc_count].astype(bool)


def _best(scores: np.ndarray, docnums: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (score descending, document number ascending), ordered."""
    if len(scores) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= kth  # every tie of the k-th score: the document numbers decide among them
        scores, docnums = scores[keep], docnums[keep]
    order = np.lexsort((docnums, -scores))[:k]
    return scores[order], docnums[order]


def top_k(
    searcher: Searcher, arrays: RankArrays, sets: MatchSets, q: wq.Query, matches: list[LeafMatches], k: int
) -> list[tuple[float, int]]:
    """The k best of the matches for q as (score, global document number), as searcher.search ranks them.

    `matches` must be exactly the documents Whoosh's search would collect (q, the filter, no deletions).
    Raises Unsupported for a query whose scores are not reproduced here.
    """
    if type(searcher.weighting) is not BM25F:
        raise Unsupported("weighting model")
    leaves = searcher.leaf_searchers()
    all_scores: list[np.ndarray] = []
    all_docs: list[np.ndarray] = []
    for (leaf, offset), match in zip(leaves, _aligned(leaves, matches), strict=True):
        if match is None or not match.bits:
            continue
        docs = np.flatnonzero(_bool_array(match.bits, match.segment.doc_count))
        ctx = _Leaf(searcher, leaf, match, docs, arrays, sets)
        scores, hit, _ = _full(_score(q, ctx))
        if ctx.dense:
            scores, hit = scores[docs], hit[docs]
        if not hit.all():
            # The match set and the scoring disagree: never guess, let Whoosh rank it.
            raise Unsupported("a candidate the scored tree does not match")
        best_scores, best_docs = _best(scores, docs + offset, k)
        all_scores.append(best_scores)
        all_docs.append(best_docs)
    if not all_scores:
        return []
    scores, docnums = _best(np.concatenate(all_scores), np.concatenate(all_docs), k)
    return list(zip(scores.tolist(), docnums.tolist(), strict=True))


def _aligned(leaves: list[tuple[Searcher, int]], matches: list[LeafMatches]) -> list[LeafMatches | None]:
    """The match entry of each leaf searcher (match_bits skips a segmentless empty reader)."""
    by_offset = {m.offset: m for m in matches}
    return [by_offset.get(offset) if leaf.reader().segment() is not None else None for leaf, offset in leaves]
