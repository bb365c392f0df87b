"""The `postgres` search backend: PostgreSQL full text search over the entries' own rows, as whoosh searches.

Each guide and offer has a `search_vector` holding the terms Kith's own analysis makes of it (`vectors.py`,
written in the write's own transaction). A query is read by the whoosh backend's parser (`query.py`) into the
same tree of terms, which `tsquery.py` turns into SQL; the last word's prefix, spelling suggestions and
relaxation follow the whoosh backend's rules (`vocabulary.py`, `service.py`), so both answer the same
entries. Results are ranked by `ts_rank_cd`, snippets are made as on whoosh (`snippets.py`), `total` and the
facets are exact counts of every match. Drafts, deleted entries and entries of deleted communities are never
rows of `hits`, so nothing can find them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from whoosh import query as wq

from server.metrics import SEARCH_SECONDS
from server.settings import ConfigError, Settings

from .documents import excerpt, markdown_to_text
from .engine import empty_facets
from .engine.analysis import word_terms, words
from .engine.facets import FACET_LIMIT
from .query import QueryError, build_filter, parse_query, walk
from .schema import SNIPPET_SOURCES
from .service import MAX_LIMIT, TYPED_BOOST, SearchItem, SearchResults, some_words
from .snippets import snippet_html, terms_by_field
from .spelling import RARE, RARE_RATIO
from .tsquery import HITS, Sql, condition, ranking
from .vectors import rewrite_all
from .vocabulary import expand_prefixes, suggest

# ts_rank_cd's weights of D, C, B and A: body, summary, title and tags.
RANK_WEIGHTS = "{0.1, 0.2, 0.4, 1.0}"


def _ranked(counts: dict[str, int]) -> dict[str, int]:
    pairs = sorted(((v, n) for v, n in counts.items() if v), key=lambda vn: (-vn[1], vn[0]))
    return dict(pairs[:FACET_LIMIT])


def _stored(row: Any) -> dict[str, str]:
    """What the whoosh index stores for snippets: the start of the body as plain text, the summary, the title."""
    return {"excerpt": excerpt(markdown_to_text(row.body or "")), "summary": row.summary or "", "title": row.title}


def _marked_terms(q: wq.Query | None, stored: list[dict[str, str]]) -> dict[str, set[str]]:
    """The terms to mark in the page's snippets: the query's, and for a prefix the page's own words it begins
    (whoosh marks the terms it expanded the prefix to)."""
    terms = terms_by_field(q)
    prefixes = [leaf for leaf in walk(q) if isinstance(leaf, wq.Prefix)] if q is not None else []
    for leaf in prefixes:
        if leaf.fieldname not in terms:
            continue
        for entry in stored:
            for word in words(entry[SNIPPET_SOURCES[leaf.fieldname]]):
                terms[leaf.fieldname].update(t for t in word_terms(word) if t.startswith(leaf.text))
    return terms


class PostgresBackend:
    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        if engine.dialect.name != "postgresql":
            raise ConfigError('config: [search] backend = "postgres" needs a PostgreSQL database_url')
        self.settings = settings
        self.engine = engine

    def searchable(self) -> bool:
        return True  # the vectors are part of the rows: there is nothing to wait for

    async def search(
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
        """As `SearchService.search`."""
        if not 1 <= limit <= MAX_LIMIT:
            raise QueryError(f"limit must be between 1 and {MAX_LIMIT}.")
        if offset < 0:
            raise QueryError("offset must not be negative.")
        parsed = parse_query(q)
        only = build_filter(type=type, community=community, instance=instance, tag=tag, origin=origin)
        started = time.perf_counter()
        try:
            async with self.engine.connect() as connection:
                return await _Search(connection, only).run(parsed, limit, offset)
        finally:
            SEARCH_SECONDS.observe(time.perf_counter() - started)

    async def rebuild(
        self, sessions: async_sessionmaker[AsyncSession], progress: Callable[[int], None] | None = None
    ) -> int:
        """Compute every vector again, in one transaction: searches see the old vectors until it commits."""
        async with self.engine.begin() as connection:
            done: int = await connection.run_sync(rewrite_all, progress)
        return done

    async def stats(self) -> dict[str, Any]:
        async with self.engine.connect() as connection:
            documents = await connection.scalar(text(f"SELECT count(*) FROM {HITS}"))
        return {"backend": "postgres", "documents": documents}

    def close(self) -> None:
        """Nothing to close: searches use the app's connection pool."""


class _Found(NamedTuple):
    total: int
    facets: dict[str, dict[str, int]]
    page: list[tuple[uuid.UUID, float]]


# Every match read once (MATERIALIZED): its total, its facets, the top tags and the page, each as JSON.
_MATCHES = """
WITH m AS MATERIALIZED (
  SELECT hits.type, hits.id, hits.community, hits.instance, hits.tags, hits.updated_at, {score} AS score
    FROM {hits} WHERE {where})
SELECT (SELECT count(*) FROM m) AS total,
  (SELECT json_agg(json_build_array(f.name, f.value, f.n)) FROM (
     SELECT 'type' AS name, type AS value, count(*) AS n FROM m GROUP BY type
     UNION ALL SELECT 'community', community, count(*) FROM m GROUP BY community
     UNION ALL SELECT 'instance', instance, count(*) FROM m GROUP BY instance) AS f) AS facets,
  (SELECT json_agg(json_build_array(t.tag, t.n) ORDER BY t.n DESC, t.tag) FROM (
     SELECT tag, count(*) AS n FROM m CROSS JOIN LATERAL unnest(string_to_array(trim(both '|' from m.tags), '|')) AS tag
      WHERE tag <> '' GROUP BY tag ORDER BY n DESC, tag LIMIT {facet_limit}) AS t) AS tags,
  (SELECT json_agg(json_build_array(p.id, p.score) ORDER BY p.score DESC, p.updated_at DESC, p.id) FROM (
     SELECT id, score, updated_at FROM m ORDER BY score DESC, updated_at DESC, id LIMIT :limit OFFSET :offset) AS p)
  AS page
"""


class _Search:
    """One search on one connection, in the whoosh backend's steps (`service._run`)."""

    def __init__(self, connection: Any, only: wq.Query | None) -> None:
        self.connection = connection
        self.only = only

    def _where(self, q: wq.Query | None, sql: Sql) -> str:
        parts = [condition(part, sql) for part in (q, self.only) if part is not None]
        return " AND ".join(parts) or "true"

    async def _count(self, q: wq.Query) -> int:
        sql = Sql()
        found: int = await self.connection.scalar(
            text(f"SELECT count(*) FROM {HITS} WHERE {self._where(q, sql)}"), sql.params
        )
        return found

    async def run(self, parsed: Any, limit: int, offset: int) -> SearchResults:
        query = await expand_prefixes(self.connection, parsed.query) if parsed else None
        # (weight, query) pairs whose ranks add up to a match's score.
        scoring = [(1.0, query)] if query is not None else []
        found = await self._matches(query, scoring, limit, offset)
        suggestion, corrected = None, False
        if parsed is not None and found.total < RARE:
            suggestion = await suggest(self.connection, parsed)
            respelled = parse_query(suggestion, prefix=parsed.prefix) if suggestion else None
            if respelled is not None:
                other = await expand_prefixes(self.connection, respelled.query)
                either = wq.Or([query, other]) if found.total else other
                if await self._count(either) >= max(1, found.total * RARE_RATIO):
                    # What the query as typed found ranks first.
                    scoring = [(TYPED_BOOST, query), (1.0, other)] if found.total else [(1.0, other)]
                    query, corrected = either, True
                    found = await self._matches(query, scoring, limit, offset)
        relaxed = False
        if query is not None and not found.total and (some := some_words(query)) is not None:
            query, scoring, relaxed = some, [(1.0, some)], True
            found = await self._matches(query, scoring, limit, offset)
        return SearchResults(
            items=await self._items(query, found.page),
            total=found.total,
            facets=found.facets,
            suggestion=suggestion,
            corrected=corrected,
            relaxed=relaxed,
        )

    async def _matches(
        self, q: wq.Query | None, scoring: list[tuple[float, wq.Query]], limit: int, offset: int
    ) -> _Found:
        """Every match's facets and the page's ids, from one reading of the matches: each reading costs a
        look at every matching vector, the most a broad query costs."""
        sql = Sql()
        where = self._where(q, sql)
        ranks = [
            f"{weight} * ts_rank_cd('{RANK_WEIGHTS}', hits.v, {sql.tsquery(tsquery)})"
            for weight, part in scoring
            if (tsquery := ranking(part))
        ]
        score = " + ".join(ranks) or "0.0"
        row = (
            await self.connection.execute(
                text(_MATCHES.format(score=score, hits=HITS, where=where, facet_limit=FACET_LIMIT)),
                {**sql.params, "limit": limit, "offset": offset},
            )
        ).one()
        facets = empty_facets()
        for name, value, n in row.facets or []:
            facets[name][value] = n
        facets = {name: _ranked(values) for name, values in facets.items()}
        facets["tag"] = {tag: n for tag, n in row.tags or []}
        return _Found(row.total, facets, [(uuid.UUID(id_), score) for id_, score in row.page or []])

    async def _items(self, q: wq.Query | None, page: list[tuple[uuid.UUID, float]]) -> list[SearchItem]:
        if not page:
            return []
        found = await self.connection.execute(
            text(
                "SELECT hits.type, hits.id, hits.title, hits.url, hits.summary, hits.body, hits.community, "
                f"hits.community_name, hits.instance FROM {HITS} WHERE hits.id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": [id_ for id_, _ in page]},
        )
        by_id = {row.id: row for row in found}
        rows = [(by_id[id_], score) for id_, score in page if id_ in by_id]
        stored = [_stored(row) for row, _ in rows]
        terms = _marked_terms(q, stored)
        return [
            SearchItem(
                type=row.type,
                id=str(row.id),
                title=row.title,
                url=row.url,
                snippet_html=snippet_html(entry, terms),
                community=row.community,
                community_name=row.community_name or row.community,
                instance=row.instance,
                score=float(score),
            )  # fmt: skip
            for (row, score), entry in zip(rows, stored, strict=True)
        ]
