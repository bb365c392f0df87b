"""The `postgres` backend's index: each entry's `search_vector`, computed here with Kith's own analysis.

PostgreSQL's parsers and stemmers do not read text as Kith does (compounds, versions, `C++`, stop words kept),
so the lexemes are the very terms the whoosh index holds (`engine.analysis.word_terms`), written as a tsvector
literal that PostgreSQL stores without analysing it again: title weighs A, summary B, body C, each word at its
position, all the terms of a compound at the same one, so a phrase is still `<->` apart. The fields are one
position apart, so a phrase never runs from the title into the summary. Tags and topics are whole lowercase
keywords, as on whoosh, kept apart from the words by their `tags:` or `topics:` mark (weight A).

The vector is written by a change subscriber (`server/changes.py`) in the write's own transaction, on every
PostgreSQL database whatever the backend, so switching to `postgres` needs no rebuild. `search_vector` is
search's own column, as it was the trigger's before migration 0015: the entries' other columns are only read.
The words of titles and tags also go to `search_vector_words`, where spelling suggestions look for respellings
(`vocabulary.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import JSON, Connection, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from server.changes import Change
from server.settings import Settings

from .documents import markdown_to_text
from .engine.analysis import word_forms, word_terms, words

# PostgreSQL keeps positions up to this one (later words share it) and refuses a lexeme of 2 KB or more.
MAX_POSITION = 16383
_MAX_LEXEME_BYTES = 2046
_MAX_VECTOR_BYTES = 900_000
BATCH = 500
# The marks of keyword lexemes; a word's terms never hold ":", so neither can be taken for the other.
KEYWORD_MARKS = {"tags": "tags:", "topics": "topics:"}

# Each entry's searchable columns by kind; `public` as the backend's `hits` reads it.
_ROWS = {
    "guide": (
        "SELECT id, title, summary, body_markdown AS body, tags AS keywords, "
        "deleted_at IS NULL AND status = 'published' AS public FROM guides"
    ),
    "offer": (
        "SELECT id, title, '' AS summary, description_markdown AS body, topics AS keywords, "
        "deleted_at IS NULL AS public FROM mentorship_offers"
    ),
}
_TABLES = {"guide": "guides", "offer": "mentorship_offers"}
_KEYWORD_FIELD = {"guide": "tags", "offer": "topics"}
# The changed entry, and those written without a vector yet (migration 0015 indexes them apart).
_CHANGED = "WHERE id = :id OR (search_vector IS NULL AND deleted_at IS NULL)"
_WRITTEN = "kith.search_vectors_written"
_UPDATE = "UPDATE {table} SET search_vector = CAST(:vector AS tsvector) WHERE id = :id"
# Sorted, so that two writes adding the same new words take their locks in one order.
_ADD_WORDS = (
    "INSERT INTO search_vector_words (field, word) "
    "SELECT * FROM unnest(CAST(:fields AS text[]), CAST(:words AS text[])) AS w(field, word) "
    "ORDER BY 1, 2 ON CONFLICT DO NOTHING"
)


class Indexed(NamedTuple):
    """An entry's vector as a tsvector literal, and the words it offers spelling suggestions."""

    vector: str
    words: list[tuple[str, str]]


def keywords(values: Iterable[Any]) -> list[str]:
    """Tags or topics as the whoosh keyword fields hold them: lower case, commas as spaces, spaces collapsed,
    none without a letter or digit."""
    cleaned = (" ".join(str(v).replace(",", " ").split()).lower() for v in values)
    return [v for v in dict.fromkeys(cleaned) if any(ch.isalnum() for ch in v)]


def lexeme(term: str) -> str:
    """A term as a quoted tsvector or tsquery lexeme."""
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


class _Positions:
    def __init__(self) -> None:
        self.by_term: dict[str, list[str]] = {}
        self.at = 0
        # About the bytes PostgreSQL will store: a body of many distinct compounds (`ab1.cd2 ...`) could pass
        # the 1 MB a tsvector may hold, and its write would fail.
        self.size = 0

    def add(self, terms: Sequence[str], weight: str) -> None:
        self.at += 1
        where = f"{min(self.at, MAX_POSITION)}{weight}"
        for term in terms:
            found = self.by_term.get(term)
            if found is None:
                self.by_term[term] = [where]
                self.size += len(term.encode()) + 10
            else:
                found.append(where)
                self.size += 2

    def text(self, weight: str, value: str) -> None:
        for word in words(value):
            if self.size > _MAX_VECTOR_BYTES:
                break  # the rest of a text this long is not searchable
            if terms := word_terms(word):
                self.add(terms, weight)
        self.at += 1  # the gap between fields

    def literal(self) -> str:
        return " ".join(
            f"{lexeme(term)}:{','.join(dict.fromkeys(where))}"
            for term, where in self.by_term.items()
            if len(term.encode()) <= _MAX_LEXEME_BYTES
        )


def indexed(kind: str, title: str, summary: str, body_markdown: str, values: Iterable[Any]) -> Indexed:
    """What the index holds of an entry (the body flattened to text, as the whoosh index reads it)."""
    field = _KEYWORD_FIELD[kind]
    kept = keywords(values)
    positions = _Positions()
    positions.text("A", title)
    for value in kept:
        positions.add([KEYWORD_MARKS[field] + value], "A")
    positions.text("B", summary)
    positions.text("C", markdown_to_text(body_markdown))
    spelled = {("title", form) for word in words(title) for form in word_forms(word)}
    if field == "tags":
        spelled |= {("tags", value) for value in kept}
    return Indexed(positions.literal(), sorted(spelled))


def _rows(kind: str, where: str) -> Any:
    # Typed, so that the JSON keyword lists are decoded.
    return text(f"{_ROWS[kind]} {where}").columns(keywords=JSON)


def _indexed(kind: str, row: Any) -> Indexed:
    return indexed(kind, row.title or "", row.summary or "", row.body or "", row.keywords or [])


def _word_params(found: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    pairs = sorted(set(found))
    return {"fields": [f for f, _ in pairs], "words": [w for _, w in pairs]}


def _write(connection: Connection, kind: str, rows: list[Any]) -> None:
    """The rows' vectors and their public words, in one statement each however many rows there are."""
    entries = [_indexed(kind, row) for row in rows]
    connection.execute(
        text(_UPDATE.format(table=_TABLES[kind])),
        [{"vector": entry.vector, "id": row.id} for row, entry in zip(rows, entries, strict=True)],
    )
    public = [pair for row, entry in zip(rows, entries, strict=True) if row.public for pair in entry.words]
    if public:
        connection.execute(text(_ADD_WORDS), _word_params(public))


def _keep_current(session: Session, change: Change) -> None:
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return
    # Entries whose vectors an earlier change of this transaction wrote, each until its own change comes.
    transaction = session.get_transaction()
    written = session.info.get(_WRITTEN)
    if written is None or written[0] is not transaction:
        written = session.info[_WRITTEN] = (transaction, set())
    if change.entry_id in written[1]:
        written[1].discard(change.entry_id)
        return
    # A batch inserts its rows first and records their changes one by one after: the first change writes the
    # vectors of every row still without one, and the others find theirs written.
    rows = list(connection.execute(_rows(change.kind, _CHANGED), {"id": change.entry_id}))
    if rows:
        _write(connection, change.kind, rows)
    written[1].update(row.id for row in rows if row.id != change.entry_id)


async def keep_current(session: AsyncSession, settings: Settings, change: Change) -> None:
    """Write a changed entry's vector (and its title's and tags' words) in the change's own transaction."""
    if change.kind == "community" or change.verb == "Delete":
        return  # a deleted entry is no row of the backend's `hits`: its vector is never read again
    await session.run_sync(_keep_current, change)


def _batches(connection: Connection, kind: str) -> Iterator[list[Any]]:
    last = None
    while True:
        # Deleted entries are never searched again (`kith reindex` counts the others).
        after = "" if last is None else "AND id > :last "
        where = f"WHERE deleted_at IS NULL {after}ORDER BY id LIMIT {BATCH}"
        rows = list(connection.execute(_rows(kind, where), {"last": last}))
        if not rows:
            return
        last = rows[-1].id
        yield rows


def rewrite_all(connection: Connection, progress: Any = None) -> int:
    """Compute every entry's vector again and the spelling words from scratch (`kith reindex`, migration
    0015), on the caller's transaction; the entries rewritten."""
    connection.execute(text("DELETE FROM search_vector_words"))
    done = 0
    for kind in _TABLES:
        for rows in _batches(connection, kind):
            _write(connection, kind, rows)
            done += len(rows)
            if progress is not None:
                progress(done)
    return done
