"""What a search asks of the engine: its exact matches, their facets, and one ranked page of them."""

from __future__ import annotations

from whoosh import collectors, sorting
from whoosh import query as wq
from whoosh.searching import Searcher

from .arrays import RankArrays
from .facets import facet_counts
from .matches import AllowedDocs, LeafMatches, MatchSets, match_bits, total
from .ranking import Unsupported, top_k


class Matches:
    """Every live document a search matched (its query and its filter), segment by segment."""

    __slots__ = ("filtered", "leaves", "total")

    def __init__(self, leaves: list[LeafMatches], *, filtered: bool) -> None:
        self.leaves = leaves
        self.filtered = filtered
        self.total = total(leaves)

    def facets(self) -> dict[str, dict[str, int]]:
        """{facet: {value: count}} over the matches, most frequent first (see facets.facet_counts)."""
        return facet_counts(self.leaves)


class SearchEngine:
    """The caches one search service keeps across its searches, and the searches run on them (thread-safe).

    The caches are per segment, and Whoosh never changes a segment once written: the owner calls `retain`
    with each new searcher, so that segments a merge replaced are dropped, and `clear` when it opens
    another index.
    """

    def __init__(self) -> None:
        self.arrays = RankArrays()
        # Term bitmaps are made from the ranking's postings arrays: one read of a term serves both.
        self.sets = MatchSets(postings=self.arrays.postings)

    def matches(self, searcher: Searcher, q: wq.Query | None, filter_q: wq.Query | None) -> Matches:
        """Every live document matching q (None: every document) and filter_q, unscored."""
        return Matches(match_bits(searcher, self.sets, q, filter_q), filtered=filter_q is not None)

    def ranked(self, searcher: Searcher, q: wq.Query, matches: Matches, limit: int) -> list[tuple[float, int]]:
        """The best `limit` matches as (score, document number), as Whoosh's `searcher.search` ranks them.

        Computed from arrays over the known matches (ranking.py), or by Whoosh itself for a query that
        module does not score, with the same scores either way.
        """
        try:
            return top_k(searcher, self.arrays, self.sets, q, matches.leaves, limit)
        except Unsupported:
            pass
        # Whoosh ranks it, among the known matches only (which also keeps out a deleted document that
        # a root NOT's matcher can let through). Its default top-k collector swaps matchers for cheaper
        # ones as the k-th score rises (`replace`), which drops some documents that belong in the top k;
        # without that it ranks exactly as scoring every match would.
        top = collectors.TopCollector(limit=limit, replace=0)
        searcher.search_with_collector(q, collectors.FilterCollector(top, allow=AllowedDocs(matches.leaves)))
        return [(float(score), docnum) for score, docnum in top.results().top_n]

    def newest(self, searcher: Searcher, matches: Matches, limit: int) -> list[tuple[float, int]]:
        """The `limit` most recently updated matches, newest first, each with a score of 0.0 (browsing)."""
        # The filter's documents are already known; Whoosh would otherwise collect them into a set per search.
        allowed = AllowedDocs(matches.leaves) if matches.filtered else None
        newest = sorting.FieldFacet("updated_at", reverse=True)
        results = searcher.search(wq.Every(), limit=limit, sortedby=newest, filter=allowed)
        return [(0.0, docnum) for _, docnum in results.top_n]

    def retain(self, searcher: Searcher) -> None:
        """Forget what is cached of segments this searcher no longer has (a merge replaced them)."""
        segments = {
            segment.segment_id() for leaf, _ in searcher.leaf_searchers() if (segment := leaf.reader().segment())
        }
        self.sets.retain(segments)
        self.arrays.retain(segments)

    def clear(self) -> None:
        self.sets.clear()
        self.arrays.clear()
