"""A parsed query (`query.py`'s Whoosh tree) as SQL for the `postgres` backend: the same terms, as a tsquery.

The vectors hold the terms the whoosh index holds (`vectors.py`), so each node of the tree the whoosh backend
searches has an exact counterpart: a term in a text field is its lexeme with the field's weight (title A,
summary B, body C), a phrase is its terms `<->` apart, a prefix is `:*`, a tag or topic is its marked lexeme,
And, Or and Not are `&`, `|` and `!`. Alternatives that differ only in their text field are written once with
their weights together (`'wheel':ABC`, which is just `'wheel'`). The `type:`, `community:`, `instance:`,
`origin:` and `language:` items, which whoosh holds as ID and keyword fields, are conditions on the columns
of `HITS`. What was typed only ever reaches SQL as a bound value.
"""

from __future__ import annotations

from typing import Any

from whoosh import query as wq

from .query import TEXT_FIELDS
from .vectors import KEYWORD_MARKS, lexeme

# Every public entry as one row, with the values the filters and facets compare (lower case, as whoosh
# stores them). A plain subquery: PostgreSQL pushes the conditions into both branches, where the GIN index
# on search_vector can answer them.
HITS = """
(SELECT 'guide' AS type, g.id, g.title, g.url, g.summary, g.body_markdown AS body, lower(g.tags_key) AS tags,
        '|' AS topics, '|' AS languages, lower(g.instance) AS instance,
        CASE WHEN g.local THEN 'local' ELSE 'remote' END AS origin, g.updated_at,
        lower(CASE WHEN c.local THEN c.slug ELSE c.slug || '@' || c.instance END) AS community,
        c.name AS community_name, g.search_vector AS v
   FROM guides g JOIN communities c ON c.id = g.community_id
  WHERE g.deleted_at IS NULL AND c.deleted_at IS NULL AND g.status = 'published'
    AND NOT (c.local AND c.moved_to IS NOT NULL)
 UNION ALL
 SELECT 'offer', o.id, o.title, o.url, '', o.description_markdown, '|', lower(o.topics_key), lower(o.languages_key),
        lower(o.instance), CASE WHEN o.local THEN 'local' ELSE 'remote' END, o.updated_at,
        lower(CASE WHEN c.local THEN c.slug ELSE c.slug || '@' || c.instance END), c.name, o.search_vector
   FROM mentorship_offers o JOIN communities c ON c.id = o.community_id
  WHERE o.deleted_at IS NULL AND c.deleted_at IS NULL AND NOT (c.local AND c.moved_to IS NOT NULL)) AS hits
"""

WEIGHTS = {"title": "A", "summary": "B", "body": "C"}
_ALL_WEIGHTS = "ABC"
# Fields compared whole as columns of HITS; the keyword lists there are "|a|b|" keys.
_ID_FIELDS = ("type", "community", "instance", "origin")
_KEY_FIELDS = ("languages",)


class Sql:
    """Bound values of one statement: conditions name them, never hold what was typed."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def tsquery(self, tsquery: str) -> str:
        return f"CAST({self.bind(tsquery)} AS tsquery)"


def _in_vector(q: wq.Query) -> bool:
    """Whether a leaf is held by the vectors (text fields, tags and topics)."""
    if isinstance(q, (wq.Term, wq.Prefix, wq.Phrase)):
        return q.fieldname in TEXT_FIELDS or q.fieldname in KEYWORD_MARKS
    return False


def textual(q: wq.Query) -> bool:
    """Whether the whole of q can be one tsquery."""
    if isinstance(q, (wq.And, wq.Or)):
        return all(textual(sub) for sub in q.subqueries)
    if isinstance(q, wq.Not):
        return textual(q.query)
    return _in_vector(q)


def _label(weights: str, prefix: bool = False) -> str:
    letters = "" if set(weights) == set(_ALL_WEIGHTS) else "".join(sorted(set(weights)))
    star = "*" if prefix else ""
    return f":{star}{letters}" if star or letters else ""


def _leaf(q: wq.Query, weights: str | None = None) -> str:
    if q.fieldname in KEYWORD_MARKS:
        term = lexeme(KEYWORD_MARKS[q.fieldname] + q.text)
        return f"{term}:*" if isinstance(q, wq.Prefix) else term
    weights = weights or WEIGHTS[q.fieldname]
    if isinstance(q, wq.Phrase):
        return "(" + " <-> ".join(lexeme(str(w)) + _label(weights) for w in q.words) + ")"
    return lexeme(q.text) + _label(weights, prefix=isinstance(q, wq.Prefix))


def _alternatives(subqueries: list[wq.Query]) -> list[str]:
    """Each alternative once, with the weights of every text field it is sought in."""
    groups: dict[tuple[Any, ...], str] = {}
    leaves: dict[tuple[Any, ...], wq.Query] = {}
    out: list[str | tuple[Any, ...]] = []
    for sub in subqueries:
        if _in_vector(sub) and sub.fieldname in WEIGHTS:
            key = (type(sub), tuple(sub.words) if isinstance(sub, wq.Phrase) else sub.text)
            if key not in groups:
                groups[key] = ""
                leaves[key] = sub
                out.append(key)
            groups[key] += WEIGHTS[sub.fieldname]
        else:
            out.append(tsquery(sub))
    return [item if isinstance(item, str) else _leaf(leaves[item], groups[item]) for item in out]


def tsquery(q: wq.Query) -> str:
    """The tsquery text of a `textual` query."""
    if isinstance(q, wq.And):
        return "(" + " & ".join(tsquery(sub) for sub in q.subqueries) + ")"
    if isinstance(q, wq.Or):
        return "(" + " | ".join(_alternatives(q.subqueries)) + ")"
    if isinstance(q, wq.Not):
        return f"!{tsquery(q.query)}"
    return _leaf(q)


def condition(q: wq.Query, sql: Sql) -> str:
    """q as a condition on a row of HITS."""
    if q is wq.NullQuery:
        return "false"
    if textual(q):
        return f"hits.v @@ {sql.tsquery(tsquery(q))}"
    if isinstance(q, (wq.And, wq.Or)):
        # The parts the vectors hold as one tsquery, so that the GIN index answers them at once.
        held = [sub for sub in q.subqueries if textual(sub)]
        parts = [sub for sub in q.subqueries if not textual(sub)]
        if held:
            parts.insert(0, held[0] if len(held) == 1 else type(q)(held))
        joined = (" AND " if isinstance(q, wq.And) else " OR ").join(condition(sub, sql) for sub in parts)
        return f"({joined})"
    if isinstance(q, wq.Not):
        return f"NOT ({condition(q.query, sql)})"
    if isinstance(q, wq.Term) and q.fieldname in _ID_FIELDS:
        return f"hits.{q.fieldname} = {sql.bind(q.text)}"
    if isinstance(q, wq.Term) and q.fieldname in _KEY_FIELDS:
        return f"position('|' || {sql.bind(q.text)} || '|' in hits.{q.fieldname}) > 0"
    raise ValueError(f"no SQL for the query {q!r}")


def _wanted(q: wq.Query) -> wq.Query | None:
    """q without what it excludes and without its ID and keyword-column conditions."""
    if isinstance(q, (wq.And, wq.Or)):
        kept = [w for sub in q.subqueries if (w := _wanted(sub)) is not None]
        return (kept[0] if len(kept) == 1 else type(q)(kept)) if kept else None
    return q if _in_vector(q) else None


def ranking(q: wq.Query | None) -> str | None:
    """The tsquery that ranks: what a match contains."""
    wanted = None if q is None else _wanted(q)
    return None if wanted is None else tsquery(wanted)
