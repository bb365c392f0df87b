"""The `postgres` search backend: PostgreSQL full text search over the entries' own rows.

Each guide and offer has a `search_vector` (migration 0012) that a trigger recomputes in the write's own
transaction: title and tags weigh A, summary B, body C. A query is read with Kith's own parser (`query.py`),
so the language is the one the README documents: its words and phrases become `websearch_to_tsquery` calls,
its `tag:`, `community:`, `instance:`, `type:` and `origin:` items become SQL conditions, OR joins the items of
a clause and `-`/NOT excludes one. Results are ranked by `ts_rank_cd`, snippets come from `ts_headline` and are
escaped here, `total` and the facets are exact counts of every match. Drafts, deleted entries and entries of
deleted communities are never rows of `hits`, so nothing can find them.
"""

from __future__ import annotations

import html
import textwrap
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.metrics import SEARCH_SECONDS
from server.settings import ConfigError, Settings

from .documents import excerpt, markdown_to_text
from .engine import empty_facets
from .engine.facets import FACET_LIMIT
from .query import (
    TEXT_FIELDS,
    Clause,
    Item,
    QueryError,
    clauses_of,
    clean_text,
    exact_value,
    parse_query,
    prefixable,
)
from .service import MAX_LIMIT, SearchItem, SearchResults
from .snippets import SNIPPET_CHARS

# Every public entry as one row, with the values the filters and facets compare (lower case, as whoosh
# stores them). A plain subquery: PostgreSQL pushes the conditions into both branches, where the GIN index
# on search_vector can answer them.
_HITS = """
(SELECT 'guide' AS type, g.id, g.title, g.url, g.summary, g.body_markdown AS body, lower(g.tags_key) AS tags,
        '|' AS topics, '|' AS languages, lower(g.instance) AS instance,
        CASE WHEN g.local THEN 'local' ELSE 'remote' END AS origin, g.updated_at,
        lower(CASE WHEN c.local THEN c.slug ELSE c.slug || '@' || c.instance END) AS community,
        c.name AS community_name, g.search_vector AS v
   FROM guides g JOIN communities c ON c.id = g.community_id
  WHERE g.deleted_at IS NULL AND c.deleted_at IS NULL AND g.status = 'published' AND c.moved_to IS NULL
 UNION ALL
 SELECT 'offer', o.id, o.title, o.url, '', o.description_markdown, '|', lower(o.topics_key), lower(o.languages_key),
        lower(o.instance), CASE WHEN o.local THEN 'local' ELSE 'remote' END, o.updated_at,
        lower(CASE WHEN c.local THEN c.slug ELSE c.slug || '@' || c.instance END), c.name, o.search_vector
   FROM mentorship_offers o JOIN communities c ON c.id = o.community_id
  WHERE o.deleted_at IS NULL AND c.deleted_at IS NULL AND c.moved_to IS NULL) AS hits
"""
# The instance's text search configuration, as the trigger reads it. A scalar subquery is computed once per
# statement, before the scan, so the GIN index can answer `@@` with the query it makes.
_CFG = "(SELECT language FROM search_config)"

# Fields compared whole; the keyword lists are "|a|b|" keys.
_ID_FIELDS = ("type", "community", "instance", "origin")
_KEY_FIELDS = ("tags", "topics", "languages")
# Marks ts_headline puts around matches, replaced by <mark> once the text is escaped; taken out of the text
# first (private-use characters), so nothing an author writes can become markup.
_START, _STOP = "\ue000", "\ue001"
_HEADLINE = f'StartSel={_START}, StopSel={_STOP}, MaxWords=30, MinWords=12, MaxFragments=2, FragmentDelimiter=" … "'
_ELLIPSIS = "…"
_SOURCES = ("body", "summary", "title")


class _Sql:
    """Conditions and their bound values, built from fixed fragments: what was typed is only ever a value."""

    def __init__(self, typing: Item | None = None) -> None:
        self.params: dict[str, Any] = {}
        self.typing = typing

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def tsquery(self, item: Item) -> str:
        typed = f'"{item.text}"' if item.kind == "phrase" else item.text
        words = f"websearch_to_tsquery({_CFG}, {self.bind(typed)})"
        if item is not self.typing:
            return words
        # The word being typed also finds the words it begins (`jupy`: JupyterHub). It is letters and digits
        # only (see `prefixable`), so it cannot be tsquery syntax.
        return f"({words} || to_tsquery({_CFG}, {self.bind(item.text.lower() + ':*')}))"

    def condition(self, item: Item) -> str:
        if item.field is None or item.field in TEXT_FIELDS:
            # A field among title, summary and body is searched in all three.
            return f"hits.v @@ {self.tsquery(item)}"
        value = self.bind(exact_value(item.text))
        if item.field in _KEY_FIELDS:
            return f"position('|' || {value} || '|' in hits.{item.field}) > 0"
        return f"hits.{item.field} = {value}"


def _is_text(item: Item) -> bool:
    return item.field is None or item.field in TEXT_FIELDS


def _where(clauses: list[Clause], filters: dict[str, str | None], sql: _Sql) -> str:
    parts = ["true"]
    for clause in clauses:
        either = " OR ".join(sql.condition(item) for item in clause.items)
        parts.append(f"NOT ({either})" if clause.negated else f"({either})")
    for name, value in filters.items():
        if value:
            cleaned = exact_value(clean_text(value, what=f"The {name} filter"))
            if name == "tag":
                parts.append(f"position('|' || {sql.bind(cleaned)} || '|' in hits.tags) > 0")
            else:
                parts.append(f"hits.{name} = {sql.bind(cleaned)}")
    return " AND ".join(parts)


def _ranking(clauses: list[Clause], sql: _Sql) -> str | None:
    """The tsquery that ranks and highlights: every wanted word and phrase (exclusions and filters do not)."""
    wanted = []
    for clause in clauses:
        words = [sql.tsquery(item) for item in clause.items if _is_text(item)]
        if words and not clause.negated:
            wanted.append("(" + " || ".join(words) + ")")
    return " && ".join(wanted) if wanted else None


def _ranked(counts: dict[str, int]) -> dict[str, int]:
    pairs = sorted(((v, n) for v, n in counts.items() if v), key=lambda vn: (-vn[1], vn[0]))
    return dict(pairs[:FACET_LIMIT])


def _sources(row: Any) -> list[str]:
    """Where a snippet may come from, in the whoosh backend's order: the start of the body as plain text, the
    summary, the title."""
    texts = [excerpt(markdown_to_text(row.body or "")), row.summary or "", row.title or ""]
    return [t.replace(_START, "").replace(_STOP, "") for t in texts]


def _excerpt(text_: str) -> str:
    short = textwrap.shorten(text_, width=SNIPPET_CHARS, placeholder=f" {_ELLIPSIS}")
    return html.escape(short, quote=True)


def _marked(headline: str) -> str:
    escaped = html.escape(headline, quote=True)
    return escaped.replace(_START, "<mark>").replace(_STOP, "</mark>")


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
        """As `SearchService.search`; `suggestion`, `corrected` and `relaxed` are never set."""
        if not 1 <= limit <= MAX_LIMIT:
            raise QueryError(f"limit must be between 1 and {MAX_LIMIT}.")
        if offset < 0:
            raise QueryError("offset must not be negative.")
        # The same checks and errors as the whoosh backend: empty, too long, control characters, punctuation only.
        parse_query(q)
        clauses, last = clauses_of(q) if q is not None else ([], None)
        # As on whoosh: not when a space follows the last word, which says it is complete.
        typing = last if last and q and not q[-1].isspace() and _is_text(last) and prefixable(last.text) else None
        sql = _Sql(typing)
        filters = {"type": type, "community": community, "instance": instance, "tag": tag, "origin": origin}
        where = _where(clauses, filters, sql)
        ranking = _ranking(clauses, sql)
        started = time.perf_counter()
        try:
            async with self.engine.connect() as connection:
                return await self._run(connection, sql.params, where, ranking, limit, offset)
        finally:
            SEARCH_SECONDS.observe(time.perf_counter() - started)

    async def _run(
        self, connection: Any, params: dict[str, Any], where: str, ranking: str | None, limit: int, offset: int
    ) -> SearchResults:
        counts = await connection.execute(
            text(
                "SELECT GROUPING(type) AS by_type, GROUPING(community) AS by_community, "
                "GROUPING(instance) AS by_instance, "
                f"type, community, instance, count(*) AS n FROM {_HITS} WHERE {where} "
                "GROUP BY GROUPING SETS ((), (type), (community), (instance))"
            ),
            params,
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
            return SearchResults(items=[], total=0, facets=facets)
        tags = await connection.execute(
            text(
                f"SELECT tag, count(*) AS n FROM {_HITS} "
                "CROSS JOIN LATERAL unnest(string_to_array(trim(both '|' from hits.tags), '|')) AS tag "
                f"WHERE {where} AND tag <> '' GROUP BY tag ORDER BY n DESC, tag LIMIT {FACET_LIMIT}"
            ),
            params,
        )
        facets = {name: _ranked(values) for name, values in facets.items()}
        facets["tag"] = {row.tag: row.n for row in tags}
        score = f"ts_rank_cd(hits.v, {ranking})" if ranking else "0.0"
        rows = list(
            await connection.execute(
                text(
                    f"SELECT hits.type, hits.id, hits.title, hits.url, hits.summary, hits.body, hits.community, "
                    f"hits.community_name, hits.instance, {score} AS score FROM {_HITS} WHERE {where} "
                    "ORDER BY score DESC, hits.updated_at DESC, hits.id LIMIT :limit OFFSET :offset"
                ),
                {**params, "limit": limit, "offset": offset},
            )
        )
        sources = [_sources(row) for row in rows]
        # Without a match to show (none typed, or only in tags), the start of the summary or body stands in.
        snippets = [_excerpt(summary if summary.strip() else body) for body, summary, _ in sources]
        if ranking and rows:
            headlines = await connection.execute(
                text(
                    f"SELECT t.n, ts_headline({_CFG}, t.source, {ranking}, :headline) AS marked "
                    "FROM unnest(CAST(:sources AS text[])) WITH ORDINALITY AS t(source, n) "
                    "WHERE t.source <> '' ORDER BY t.n"
                ),
                {**params, "sources": [t for texts in sources for t in texts], "headline": _HEADLINE},
            )
            found: dict[int, str] = {}
            for row in headlines:
                at = (row.n - 1) // len(_SOURCES)
                if _START in row.marked and at not in found:  # the first source, in order, with a match
                    found[at] = _marked(row.marked)
            snippets = [found.get(at, snippet) for at, snippet in enumerate(snippets)]
        items = [
            SearchItem(
                type=row.type,
                id=str(row.id),
                title=row.title,
                url=row.url,
                snippet_html=snippet,
                community=row.community,
                community_name=row.community_name or row.community,
                instance=row.instance,
                score=float(row.score),
            )  # fmt: skip
            for row, snippet in zip(rows, snippets, strict=True)
        ]
        return SearchResults(items=items, total=total, facets=facets)

    async def rebuild(
        self, sessions: async_sessionmaker[AsyncSession], progress: Callable[[int], None] | None = None
    ) -> int:
        """Apply `[search] language` and recompute every vector with it, in one transaction: searches see the
        old vectors until it commits."""
        done = 0
        async with self.engine.begin() as connection:
            try:
                await connection.execute(
                    text("UPDATE search_config SET language = CAST(:language AS regconfig)"),
                    {"language": self.settings.search.language},
                )
            except DBAPIError as exc:
                raise ConfigError(
                    f"config: [search] language {self.settings.search.language!r} is not a text search "
                    "configuration of this database"
                ) from exc
            for table in ("guides", "mentorship_offers"):
                # Setting the vector runs the trigger, which computes it again.
                result = await connection.execute(
                    text(f"UPDATE {table} SET search_vector = NULL WHERE deleted_at IS NULL")
                )
                done += result.rowcount
                if progress is not None:
                    progress(done)
        return done

    async def stats(self) -> dict[str, Any]:
        async with self.engine.connect() as connection:
            documents = await connection.scalar(text(f"SELECT count(*) FROM {_HITS}"))
            language = await connection.scalar(text("SELECT language::text FROM search_config"))
        return {"backend": "postgres", "documents": documents, "language": language}

    def close(self) -> None:
        """Nothing to close: searches use the app's connection pool."""
