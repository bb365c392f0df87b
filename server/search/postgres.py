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
from collections.abc import Callable
from typing import Any

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
        total, facets = await self._facets(query)
        # (weight, query) pairs whose ranks add up to a match's score.
        scoring = [(1.0, query)] if query is not None else []
        suggestion, corrected = None, False
        if parsed is not None and total < RARE:
            suggestion = await suggest(self.connection, parsed)
            respelled = parse_query(suggestion, prefix=parsed.prefix) if suggestion else None
            if respelled is not None:
                other = await expand_prefixes(self.connection, respelled.query)
                either = wq.Or([query, other]) if total else other
                if await self._count(either) >= max(1, total * RARE_RATIO):
                    # What the query as typed found ranks first.
                    scoring = [(TYPED_BOOST, query), (1.0, other)] if total else [(1.0, other)]
                    query, corrected = either, True
                    total, facets = await self._facets(query)
        relaxed = False
        if query is not None and not total and (some := some_words(query)) is not None:
            query, scoring, relaxed = some, [(1.0, some)], True
            total, facets = await self._facets(query)
        items = await self._page(query, scoring, limit, offset) if offset < total else []
        return SearchResults(
            items=items, total=total, facets=facets, suggestion=suggestion, corrected=corrected, relaxed=relaxed
        )

    async def _facets(self, q: wq.Query | None) -> tuple[int, dict[str, dict[str, int]]]:
        sql = Sql()
        where = self._where(q, sql)
        counts = await self.connection.execute(
            text(
                "SELECT GROUPING(type) AS by_type, GROUPING(community) AS by_community, "
                "GROUPING(instance) AS by_instance, "
                f"type, community, instance, count(*) AS n FROM {HITS} WHERE {where} "
                "GROUP BY GROUPING SETS ((), (type), (community), (instance))"
            ),
            sql.params,
        )
        total = 0
        facets = empty_facets()
        for row in counts:
            if row.by_type and row.by_community and row.by_instance:
                total = row.n
            elif not row.by_type:
                facets["type"][row.type] = row.n
            elif not row.by_community:
                facets["community"][row.community] = row.n
            else:
                facets["instance"][row.instance] = row.n
        if not total:
            return 0, facets
        tags = await self.connection.execute(
            text(
                f"SELECT tag, count(*) AS n FROM {HITS} "
                "CROSS JOIN LATERAL unnest(string_to_array(trim(both '|' from hits.tags), '|')) AS tag "
                f"WHERE {where} AND tag <> '' GROUP BY tag ORDER BY n DESC, tag LIMIT {FACET_LIMIT}"
            ),
            sql.params,
        )
        facets = {name: _ranked(values) for name, values in facets.items()}
        facets["tag"] = {row.tag: row.n for row in tags}
        return total, facets

    async def _page(
        self, q: wq.Query | None, scoring: list[tuple[float, wq.Query]], limit: int, offset: int
    ) -> list[SearchItem]:
        sql = Sql()
        where = self._where(q, sql)
        ranks = [
            f"{weight} * ts_rank_cd('{RANK_WEIGHTS}', hits.v, {sql.tsquery(tsquery)})"
            for weight, part in scoring
            if (tsquery := ranking(part))
        ]
        score = " + ".join(ranks) or "0.0"
        rows = list(
            await self.connection.execute(
                text(
                    f"SELECT hits.type, hits.id, hits.title, hits.url, hits.summary, hits.body, hits.community, "
                    f"hits.community_name, hits.instance, {score} AS score FROM {HITS} WHERE {where} "
                    "ORDER BY score DESC, hits.updated_at DESC, hits.id LIMIT :limit OFFSET :offset"
                ),
                {**sql.params, "limit": limit, "offset": offset},
            )
        )
        stored = [_stored(row) for row in rows]
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
                score=float(row.score),
            )  # fmt: skip
            for row, entry in zip(rows, stored, strict=True)
        ]
