"""Indexing without the token stream or the posting pool must write exactly what Whoosh would write."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from whoosh import fields
from whoosh.filedb.filestore import FileStorage
from whoosh.writing import SegmentWriter

from server.search import IndexWriterQueue, SearchIndex
from server.search.documents import SearchDocument, document_fields
from server.search.engine.analysis import CACHE_WORDS, FastText, _WordCache, text_analyzer
from server.search.engine.segments import PREPARED, Analysis, KithSegmentWriter, analyze
from server.search.schema import SCHEMA, build_schema

SAMPLES = [
    "",
    "   ",
    "...!!! --- ***",
    "The quick brown fox jumps over the lazy dog.",
    "the THE The tHe a an of",  # only stop words
    "a b c d e fox R C",  # single letters are indexed too
    "fox the fox a fox",  # repeated terms with stop words between them
    "Café résumé naïve coöperate Ångström façade Œuvre STRAẞE",  # accents folded before stemming
    "running runs ran runner easily fairly generously",  # stems
    "3.141 version 2.0.1 1,000,000 2026-11-24 ipv4 x86_64 under_score",
    "e-mail co-operate state-of-the-art don't it's O'Reilly",
    "wildcard* *star and **double** stars",
    "日本語のテキスト 中文 한국어 Ελληνικά русский текст العربية",
    "emoji 🎉 party 🎉 and ZWJ 👩‍💻 coder",
    "x" * 5000,  # a very long word
    "supercalifragilisticexpialidocious " * 50,
    "İstanbul ǅemal ﬁnance ﬂow Ⅻ ½ ²",  # case and compatibility characters
    "tabs\tand\nnewlines\r\nand\u00a0no-break\u2009spaces",
    "mixed.dots.in.words end. start .lead trail.",
    "1 22 333 a1 b22 _ __ ___",
    "C++ C# F# .NET node.js DataFrames.jl JupyterHub HTMLParser Python 3.12 python3 x++y a#b ..net",
]


def _stock(**kwargs: Any) -> fields.TEXT:
    return fields.TEXT(analyzer=text_analyzer(), **kwargs)


def _random_texts(count: int) -> list[str]:
    rng = random.Random(7)
    alphabet = "aAbBcdeéèfghiïjklmnoöpqrstuüvwxyz0123456789 .,;:-'*_\n\t!?()[]ßæœ日本"
    words = ["the", "and", "of", "is", "to", "run", "running", "runner", "café", "naïve", "x", "3.14", "e-mail"]
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(0, 60)):
            if rng.random() < 0.5:
                parts.append(rng.choice(words))
            else:
                parts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))))
        texts.append(rng.choice([" ", "  ", ". ", ", "]).join(parts))
    return texts


@pytest.mark.parametrize("boost", [1.0, 3.0])
@pytest.mark.parametrize("text", SAMPLES + _random_texts(200))
def test_fast_text_postings_equal_the_analyzer_chains(text: str, boost: float) -> None:
    stock = _stock(field_boost=boost)
    fast = FastText(field_boost=boost)

    assert list(fast.index(text)) == list(stock.index(text))
    # Twice: the second time every word comes from the cache.
    assert list(fast.index(text)) == list(stock.index(text))


@pytest.mark.parametrize("text", SAMPLES)
def test_fast_text_spelling_words_equal_the_analyzer_chains(text: str) -> None:
    stock = _stock(spelling=True)
    fast = FastText(spelling=True)

    assert fast.separate_spelling() is stock.separate_spelling() is True
    assert list(fast.spellable_words(text)) == list(stock.spellable_words(text))


def test_fast_text_queries_use_the_same_analyzer() -> None:
    fast = FastText()

    assert fast.analyzer == text_analyzer()
    assert list(fast.process_text("The Cafés running")) == ["the", "cafe", "run"]
    assert list(fast.process_text("DataFrames.jl")) == ["dataframes.jl", "datafram", "data", "frame", "jl"]


def test_fast_text_falls_back_for_sequences_and_options() -> None:
    stock, fast = _stock(), FastText()

    assert list(fast.index(["Running", "cafés"])) == list(stock.index(["Running", "cafés"]))
    assert list(fast.index("Running fast", mode="index")) == list(stock.index("Running fast", mode="index"))


def test_word_cache_stays_bounded_and_right() -> None:
    cache = _WordCache(str.upper, limit=10)
    for n in range(100):
        words = [f"w{n}", f"v{n}", "same"]
        assert cache.lookup(words) == [w.upper() for w in words]
        assert len(cache.terms) <= 10
    assert CACHE_WORDS >= 10_000


def test_fast_text_pickles_without_its_caches() -> None:
    fast = FastText(field_boost=3.0, spelling=True)
    list(fast.index("some words to fill the cache"))

    state = fast.__getstate__()
    copy = pickle.loads(pickle.dumps(fast))

    assert "_terms" not in state
    assert copy.format.field_boost == 3.0
    assert list(copy.index("Running cafés")) == list(_stock(field_boost=3.0).index("Running cafés"))


def _stock_schema() -> fields.Schema:
    schema = build_schema()
    schema.remove("title")
    schema.remove("summary")
    schema.remove("body")
    schema.add("title", _stock(stored=True, field_boost=3.0, spelling=True))
    schema.add("summary", _stock(stored=True))
    schema.add("body", _stock())
    return schema


def _dump(ix: Any) -> dict[str, Any]:
    """Everything a search reads from an index: terms, term statistics, postings, lengths, stored fields."""
    with ix.reader() as reader:
        postings = {}
        for fieldname, term in reader.all_terms():
            info = reader.term_info(fieldname, term)
            stats = (info.weight(), info.doc_frequency(), info.min_length(), info.max_length(), info.max_weight())
            matcher = reader.postings(fieldname, term)
            found = []
            while matcher.is_active():
                found.append((matcher.id(), matcher.weight(), matcher.value()))
                matcher.next()
            postings[(fieldname, term)] = (stats, found)
        names = ("title", "summary", "body", "tags", "topics")
        lengths = {
            (name, docnum): reader.doc_field_length(docnum, name)
            for docnum in range(reader.doc_count_all())
            for name in names
        }
        totals = {name: reader.field_length(name) for name in names}
        stored = list(reader.all_stored_fields())
        deleted = [n for n in range(reader.doc_count_all()) if reader.is_deleted(n)]
    return {"postings": postings, "lengths": lengths, "totals": totals, "stored": stored, "deleted": deleted}


def _documents(count: int = 0) -> list[SearchDocument]:
    when = datetime(2026, 1, 2, tzinfo=UTC)
    texts = SAMPLES + _random_texts(40)
    return [
        SearchDocument(
            id=f"doc-{n}",
            type="guide",
            title=texts[n % len(texts)][:200] or "untitled",
            url=f"https://x.example/{n}",
            community="c",
            instance="x.example",
            origin="local",
            created_at=when,
            updated_at=when,
            summary=texts[(n + 1) % len(texts)],
            body=texts[(n + 2) % len(texts)] * (n % 4),
            tags=["a", "b", f"t{n % 7}"],
            topics=["c++", "julia"] if n % 3 else [],
        )  # fmt: skip
        for n in range(count or len(texts))
    ]


def _build(path: Path, schema: fields.Schema, writer_for: Any, *, spill_bytes: int | None = None) -> list[Any]:
    """Three writer sessions: a first batch; more, merged with the first (no deletions in it); then updates,
    a delete and another merge of everything (through segments with deletions)."""
    path.mkdir()
    ix = FileStorage(str(path)).create_index(schema)
    docs = _documents(300)
    dumps = []
    writer = writer_for(ix)
    if spill_bytes is not None:
        writer.pool.limit = spill_bytes
    for doc in docs[:200]:
        writer.add_document(**document_fields(doc))
    if spill_bytes is not None:
        assert len(writer.pool._runs) > 3  # the postings really went through runs on disk
    writer.commit()
    dumps.append(_dump(ix))

    writer = writer_for(ix)
    for doc in docs[200:250]:
        writer.add_document(**document_fields(doc))
    writer.commit(optimize=True)
    dumps.append(_dump(ix))

    writer = writer_for(ix)
    for doc in docs[250:]:
        writer.add_document(**document_fields(doc))
    for doc in docs[:10]:
        writer.update_document(**document_fields(msgspec.structs.replace(doc, body="Updated café text, running.")))
    writer.delete_by_term("id", "doc-20")
    writer.commit(optimize=True)
    dumps.append(_dump(ix))
    ix.close()
    return dumps


@pytest.mark.parametrize("spill_bytes", [None, 4_000], ids=["in-memory", "spilled-runs"])
def test_an_index_written_by_kith_equals_one_written_by_whoosh(tmp_path: Path, spill_bytes: int | None) -> None:
    fast = _build(tmp_path / "fast", SCHEMA, KithSegmentWriter, spill_bytes=spill_bytes)
    stock = _build(tmp_path / "stock", _stock_schema(), SegmentWriter)

    for mine, whooshs in zip(fast, stock, strict=True):
        assert mine["postings"] and mine["postings"] == whooshs["postings"]
        assert mine == whooshs
    first, _, last = fast
    assert any(key[0] == "spell_title" for key in first["postings"])
    assert max(len(found) for _, found in first["postings"].values()) > 128  # terms of several blocks
    assert last["deleted"] == []  # the merge dropped them
    assert len(last["stored"]) == 299


def test_a_document_that_fails_halfway_leaves_no_postings_behind(tmp_path: Path) -> None:
    ix = FileStorage(str(tmp_path)).create_index(SCHEMA)
    writer = KithSegmentWriter(ix)
    bad = document_fields(_documents(1)[0]) | {"body": "zebra stripes", "tags": 12345}  # body first, then tags fails
    with pytest.raises(Exception):  # noqa: B017 - whatever Whoosh raises for a number in a keyword field
        writer.add_document(**bad)
    writer.add_document(**(document_fields(_documents(1)[0]) | {"body": "apple orchards"}))
    writer.commit()

    with ix.searcher() as searcher:
        assert searcher.doc_count() == 1
        assert list(searcher.lexicon("body")) == [b"appl", b"orchard"]
    ix.close()


def test_the_queue_analyzes_when_adding_and_its_commit_writes_what_whoosh_would(tmp_path: Path) -> None:
    docs = _documents(50)
    queue = IndexWriterQueue(SearchIndex(tmp_path / "fast"))
    for doc in docs:
        queue.add(doc)
    assert all(isinstance(fields[PREPARED], Analysis) for fields in queue._pending.values())
    queue.flush()
    for doc in docs[:5]:
        queue.add(msgspec.structs.replace(doc, title="Renamed guide"))
    queue.flush()

    (tmp_path / "stock").mkdir()
    stock_ix = FileStorage(str(tmp_path / "stock")).create_index(_stock_schema())
    for batch in (docs, [msgspec.structs.replace(doc, title="Renamed guide") for doc in docs[:5]]):
        writer = SegmentWriter(stock_ix)
        for doc in batch:
            writer.update_document(**document_fields(doc))
        writer.commit()

    fast_ix = queue.index.open()
    assert _dump(fast_ix) == _dump(stock_ix)
    stock_ix.close()
    queue.index.close()


def test_an_analysis_made_for_another_schema_is_not_used(tmp_path: Path) -> None:
    ix = FileStorage(str(tmp_path)).create_index(SCHEMA)
    fields = document_fields(_documents(1)[0]) | {"body": "apple orchards"}
    stale = analyze(_stock_schema(), fields | {"body": "zebra stripes"})
    writer = KithSegmentWriter(ix)
    writer.add_document(**fields, **{PREPARED: stale})
    writer.commit()

    with ix.searcher() as searcher:
        assert list(searcher.lexicon("body")) == [b"appl", b"orchard"]
    ix.close()


def test_changes_journaled_during_a_rebuild_are_replayed_without_their_analysis(tmp_path: Path) -> None:
    queue = IndexWriterQueue(SearchIndex(tmp_path / "index"))
    docs = _documents(3)

    def documents() -> Any:
        queue.add(docs[0])  # a change arriving while the rebuild runs
        assert PREPARED in queue._pending[docs[0].id]
        assert queue._journal is not None and PREPARED not in queue._journal[docs[0].id]
        yield from docs[1:]

    assert queue.rebuild(documents()) == 2
    with queue.index.open().searcher() as searcher:
        assert searcher.doc_count() == 3
        assert searcher.document(id=docs[0].id) is not None
    queue.index.close()
