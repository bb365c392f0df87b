"""The read side: one long-lived, self-refreshing searcher behind `search()`."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec
from whoosh import query as wq
from whoosh.index import Index
from whoosh.searching import Searcher

from .engine import SearchEngine, empty_facets
from .prefixes import expand_prefixes
from .query import ParsedQuery, QueryError, build_filter, parse_query
from .snippets import snippet_html, terms_by_field
from .spelling import RARE, RARE_RATIO, suggest
from .storage import current_marker, open_generation, read_current

log = logging.getLogger(__name__)

MAX_LIMIT = 100
# When a respelled query joins the few results of the query as typed, those are weighted this much more,
# so that what was typed ranks first.
TYPED_BOOST = 4.0

# (generation directory, Whoosh TOC generation): changes on swap and on commit.
_Version = tuple[str, int]


class SearchItem(msgspec.Struct, kw_only=True):
    """One result row: enough to render and attribute it without the database.

    `snippet_html` is escaped text whose only markup is `<mark>`.
    """

    type: Literal["guide", "offer"]
    id: str
    title: str
    url: str
    snippet_html: str
    community: str
    community_name: str
    instance: str
    score: float


class SearchResults(msgspec.Struct, kw_only=True):
    """One page of hits, with the total and facets of all filtered matches.

    `facets` maps "type", "community", "instance" and "tag" to
    {value: count}; `suggestion` is a respelled query when the query found
    nothing or little, and `corrected` says that the results are for the
    suggestion (joined by the few for the query as typed, ranked above them).
    `relaxed` says that no document held every word, and the results hold
    some of them, those with more of them first.
    """

    items: list[SearchItem]
    total: int
    facets: dict[str, dict[str, int]]
    suggestion: str | None = None
    corrected: bool = False
    relaxed: bool = False


class SearchService:
    """Answers searches from the index at path, following its changes.

    One searcher is kept open between calls (opening one costs far more than
    a small search) and replaced when the writer commits or a rebuild swaps
    generations; that check runs at most every `refresh_interval` seconds.
    Safe to call from many threads: searches take turns on the one searcher.
    A Whoosh search holds the GIL from start to end, so concurrent searches
    would only interleave, each waiting as long in total, while every extra
    searcher maps the segment files again and keeps its own caches (several
    hundred MB on a large index). Never writes to the index; with no index
    on disk yet, searches validate the query and return nothing.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        refresh_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.refresh_interval = refresh_interval
        self._clock = clock
        # Held for a whole search: the searcher is replaced only between searches.
        self._lock = threading.Lock()
        self._marker: tuple[int, int] | None = None
        # CURRENT's fingerprint at the last check, whether or not its generation could be opened.
        self._seen_marker: tuple[int, int] | None = None
        self._generation: str | None = None
        self._ix: Index | None = None
        self._version: _Version | None = None
        self._checked_at = float("-inf")
        self._searcher: Searcher | None = None
        self._searcher_version: _Version | None = None
        self._engine = SearchEngine()

    # Freshness

    def refresh(self) -> None:
        """Look for index changes now instead of waiting for the next check."""
        with self._lock:
            self._check(force=True)

    def _check(self, *, force: bool = False) -> None:
        now = self._clock()
        # Without an open index (none yet, or one that could not be opened), a CURRENT replaced since
        # the last look (a rebuild just swapped in) is followed at once: the API already calls the
        # index searchable, and answering "nothing" until the next check would be wrong.
        if (
            not force
            and now - self._checked_at < self.refresh_interval
            and (self._ix is not None or current_marker(self.path) == self._seen_marker)
        ):
            return
        self._checked_at = now
        marker = current_marker(self.path)
        self._seen_marker = marker
        if (marker != self._marker or self._ix is None) and self._follow_current():
            self._marker = marker
        if self._ix is None or self._generation is None:
            return
        try:
            self._version = (self._generation, self._ix.latest_generation())
        except OSError:
            # The generation vanished under us; look at CURRENT again next time.
            log.warning("search index generation %s is gone", self._generation, exc_info=True)
            self._marker = None

    def _follow_current(self) -> bool:
        """Switch to the generation CURRENT names; False if it cannot be opened."""
        name = read_current(self.path)
        if name == self._generation and self._ix is not None:
            return True
        try:
            ix = open_generation(self.path / name, mapped=False) if name else None
        except Exception:
            # Keep answering from what we have; a later check will retry.
            log.warning("cannot open search index generation %s", name, exc_info=True)
            return False
        self._close_searcher()
        # Another generation has other segments: drop their cached bitmaps and arrays now.
        self._engine.clear()
        self._ix, self._generation = ix, name
        self._version = None
        return True

    def _close_searcher(self) -> None:
        if self._searcher is not None:
            self._searcher.close()
        self._searcher = None
        self._searcher_version = None

    def _current_searcher(self) -> Searcher | None:
        """The searcher for the version seen by the last check (call with the lock held)."""
        self._check()
        if self._ix is None or self._version is None:
            return None
        if self._searcher is None or self._searcher_version != self._version:
            # Stale: the writer committed since it was opened. Whoosh's
            # searcher.refresh() is deliberately not used: in this release
            # its reader reuse keeps segments that a merge has replaced
            # (old versions of documents reappear) and it fails outright
            # on an empty index. A new searcher costs little at this rate.
            self._close_searcher()
            # Tagged with the version seen by the last check: at worst it is
            # newer than its tag, and gets reopened once more than needed.
            self._searcher = self._ix.searcher()
            self._searcher_version = self._version
            self._engine.retain(self._searcher)
        return self._searcher

    def close(self) -> None:
        """Close the searcher; a search in progress finishes first."""
        with self._lock:
            self._close_searcher()
            self._engine.clear()
            self._ix = None
            self._generation = None
            self._version = None
            self._marker = None

    def document_count(self) -> int:
        """How many entries the index holds (0 with no index yet)."""
        with self._lock:
            searcher = self._current_searcher()
            return 0 if searcher is None else searcher.doc_count()

    # Searching

    def search(
        self,
        q: str | None,
        *,
        type: str | None = None,
        community: str | None = None,
        instance: str | None = None,
        tag: str | None = None,
        origin: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> SearchResults:
        """Search guides and offers, newest-first browsing when q is None.

        Filters are exact (community ref, instance host, origin local|remote
        ("all" = no filter), type guide|offer, tag) and combine with the
        query. `total` (exact) and `facets` cover every filtered match,
        `items` one page of them. Raises QueryError (with a readable message)
        for anything wrong with the input; no other exception for any string.
        """
        if not 1 <= limit <= MAX_LIMIT:
            raise QueryError(f"limit must be between 1 and {MAX_LIMIT}.")
        if offset < 0:
            raise QueryError("offset must not be negative.")
        parsed = parse_query(q)
        filter_q = build_filter(type=type, community=community, instance=instance, tag=tag, origin=origin)
        with self._lock:
            searcher = self._current_searcher()
            if searcher is None:
                return SearchResults(items=[], total=0, facets=empty_facets())
            try:
                return _run(searcher, self._engine, parsed, filter_q, limit, offset)
            except wq.QueryError as exc:
                # Whoosh found the query unsearchable only once it met the index.
                raise QueryError(f"The query cannot be searched: {exc}.") from exc


def _run(
    searcher: Searcher,
    engine: SearchEngine,
    parsed: ParsedQuery | None,
    filter_q: wq.Query | None,
    limit: int,
    offset: int,
) -> SearchResults:
    query = expand_prefixes(parsed.query, searcher.reader()) if parsed else None
    # Every match, unscored, for the exact total and the facets.
    matches = engine.matches(searcher, query, filter_q)
    suggestion = None
    corrected = False
    if parsed is not None and matches.total < RARE:
        suggestion = suggest(searcher.reader(), parsed)
        respelled = parse_query(suggestion, prefix=parsed.prefix) if suggestion else None
        if respelled is not None:
            other = expand_prefixes(respelled.query, searcher.reader())
            if matches.total:
                other = wq.Or([query.with_boost(TYPED_BOOST), other])  # type: ignore[union-attr]
            other_matches = engine.matches(searcher, other, filter_q)
            if other_matches.total >= max(1, matches.total * RARE_RATIO):
                query, matches, corrected = other, other_matches, True
    relaxed = False
    if query is not None and not matches.total and (some := some_words(query)) is not None:
        query, matches, relaxed = some, engine.matches(searcher, some, filter_q), True
    count = matches.total
    facets = matches.facets()
    items: list[SearchItem] = []
    if offset < count:
        # Scores only for the page: the top offset + limit matches (newest first when browsing).
        best = offset + limit
        if query is not None:
            ranked = engine.ranked(searcher, query, matches, best)
        else:
            ranked = engine.newest(searcher, matches, best)
        terms = terms_by_field(query)
        items = [
            _hit(searcher.stored_fields(docnum), score, terms, scored=query is not None)
            for score, docnum in ranked[offset : offset + limit]
        ]
    return SearchResults(
        items=items, total=count, facets=facets, suggestion=suggestion, corrected=corrected, relaxed=relaxed
    )


def some_words(q: wq.Query) -> wq.Query | None:
    """For a query of several required words, one that requires any of them (exclusions kept), else None.

    Like a search engine dropping words a question holds but no document does ("how to handle conflict
    between contributors"): BM25 adds up the words a document matches, so those with more come first.
    """
    if not isinstance(q, wq.And):
        return None
    words = [sub for sub in q.subqueries if not isinstance(sub, wq.Not)]
    if len(words) < 2:
        return None
    return wq.And([wq.Or(words), *(sub for sub in q.subqueries if isinstance(sub, wq.Not))]).normalize()


def _hit(stored: dict[str, Any], score: float, terms: dict[str, set[str]], *, scored: bool) -> SearchItem:
    return SearchItem(
        type=stored.get("type", ""),
        id=stored.get("id", ""),
        title=stored.get("title", ""),
        url=stored.get("url", ""),
        snippet_html=snippet_html(stored, terms),
        community=stored.get("community", ""),
        community_name=stored.get("community_name", "") or stored.get("community", ""),
        instance=stored.get("instance", ""),
        score=score if scored else 0.0,
    )
