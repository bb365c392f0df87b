"""Whoosh's BM25F top-k, computed with arrays over the exact match set instead of Whoosh's matcher tree.

Whoosh ranks by walking a tree of matchers one document at a time in Python (`skip_to`, `id`, `score`
per candidate), which is slow for common words on a large index. The match set is already known
exactly (matches.py), so here each segment's candidates are scored at once: per query term, its
postings and the field's length column come as numpy arrays (arrays.py), the term's BM25F score is
evaluated for the candidates holding it, and the scores are combined the way Whoosh's matchers combine
them: same idf and average field length (from the top-level searcher, with its cache), same B and K1,
same term and query boosts, and the same order of additions, because Whoosh adds sub-scores along a
tree whose shape depends on the subqueries' estimated sizes and floating-point addition is not
associative. The scores are therefore bit for bit Whoosh's, and the page is ordered as Whoosh orders
it: score descending, document number ascending on ties. That is the ranking of
`searcher.search(q, limit=None)`; Whoosh's default top-k collector (`limit=k`) can miss documents of
it, see `SearchEngine.ranked`.

A query with a node this module does not score exactly (phrases, `Every`, coordination scaling,
`minmatch`, another weighting model...) raises `Unsupported`, and the caller ranks it with Whoosh's
own collector instead.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

import numpy as np
from whoosh import query as wq
from whoosh.scoring import BM25F
from whoosh.searching import Searcher

from .arrays import RankArrays
from .bitmaps import flags_of
from .matches import LeafMatches, MatchSets, evaluate

# A segment where more than one document in DENSE_RATIO is a candidate is scored per document (_Leaf).
DENSE_RATIO = 4


class Unsupported(Exception):
    """The query has a node whose Whoosh score is not reproduced here; rank it with Whoosh."""


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
    flags = flags_of(evaluate(q, ctx.leaf, ctx.segment, ctx.sets), ctx.segment.doc_count)
    return flags if ctx.dense else flags[ctx.docs]


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
        docs = np.flatnonzero(flags_of(match.bits, match.segment.doc_count))
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
