"""The search engine on its own: indexing, querying, batching, rebuilds."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from server.search import (
    QUERY_FIELDS,
    IndexWriterQueue,
    QueryError,
    SearchDocument,
    SearchIndex,
    SearchResults,
    SearchService,
    index_ok,
    markdown_to_text,
    rebuild,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def make_doc(title: str, body: str = "", **fields: Any) -> SearchDocument:
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "type": "guide",
        "title": title,
        "body": body,
        "url": f"https://a.example/guides/{title.lower().replace(' ', '-')}",
        "community": "gardeners",
        "community_name": "Gardeners",
        "instance": "a.example",
        "origin": "local",
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(fields)
    return SearchDocument(**values)


def index_docs(path: Path, docs: list[SearchDocument]) -> SearchService:
    queue = IndexWriterQueue(SearchIndex(path))
    for doc in docs:
        queue.add(doc)
    queue.flush()
    return SearchService(path)


def titles(results: SearchResults) -> list[str]:
    return [item.title for item in results.items]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


CORPUS = [
    make_doc(
        "Onboarding new members",
        "How we onboard people into the garden. Every new member gets a buddy.",
        summary="A welcome checklist",
        tags=["Onboarding", "gardening"],
    ),
    make_doc(
        "Composting basics",
        "Members new to composting should start small.",
        tags=["compost", "gardening"],
    ),
    make_doc(
        "Café meetups",
        "We meet at the café every Friday to swap seeds.",
        tags=["events"],
        community="coffee@b.example",
        community_name="Coffee Club",
        instance="b.example",
        origin="remote",
    ),
    make_doc(
        "Mentoring for Python beginners",
        "I can help with Python and with onboarding to open source projects.",
        type="offer",
        topics=["python", "open source"],
        languages=["en", "es"],
        tags=["python"],
        community="coders@127.0.0.1:8001",
        community_name="Coders",
        instance="127.0.0.1:8001",
        origin="remote",
    ),
    make_doc(
        "Rust mentoring",
        "Systems programming help, weekly calls.",
        type="offer",
        topics=["rust"],
        languages=["de"],
        community="coders",
        community_name="Coders",
    ),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchService]:
    svc = index_docs(tmp_path_factory.mktemp("corpus") / "index", CORPUS)
    yield svc
    svc.close()


# Documents


def test_markdown_to_text_keeps_words_and_drops_markup() -> None:
    md = (
        "# Getting *started*\n\n"
        "Read the [guide](https://x.example) &amp; run `make run`.\n"
        "![a diagram of the garden](g.png)\n\n"
        '<div class="note"><script>alert(1)</script>Raw <b>HTML</b> text</div>\n\n'
        "```sh\npip install kith\n```\n"
    )
    text = markdown_to_text(md)
    assert "Getting started" in text
    assert "Read the guide & run make run." in text
    assert "a diagram of the garden" in text
    assert "Raw HTML text" in text
    assert "pip install kith" in text
    for markup in ("*", "[", "](", "<", "`", "#", "alert"):
        assert markup not in text


def test_document_requires_aware_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_doc("Naive", created_at=datetime(2024, 1, 1))


# Analysis and ranking


def test_stemming_matches_other_word_forms(service: SearchService) -> None:
    assert "Onboarding new members" in titles(service.search("onboard"))
    results = service.search("onboarding")
    assert "Onboarding new members" in titles(results)
    # Only its body says "onboarding"; found through the same stem.
    assert "Mentoring for Python beginners" in titles(results)


def test_accents_are_folded(service: SearchService) -> None:
    assert titles(service.search("cafe")) == ["Café meetups"]
    assert titles(service.search("CAFÉ")) == ["Café meetups"]


def test_title_matches_rank_above_body_matches(tmp_path: Path) -> None:
    svc = index_docs(
        tmp_path / "index",
        [
            make_doc("Workshop rules", "Soldering safety: wear glasses, ventilate the room."),
            make_doc("Soldering safety", "Wear glasses and ventilate the room, always."),
        ],
    )
    assert titles(svc.search("soldering")) == ["Soldering safety", "Workshop rules"]


def test_phrase_requires_words_in_order(service: SearchService) -> None:
    assert titles(service.search('"new members"')) == ["Onboarding new members"]
    assert set(titles(service.search("new members"))) == {
        "Onboarding new members",
        "Composting basics",
    }


def test_not_excludes(service: SearchService) -> None:
    assert titles(service.search("members NOT compost")) == ["Onboarding new members"]
    assert "Composting basics" not in titles(service.search("NOT members"))


def test_or_and_grouping(service: SearchService) -> None:
    results = service.search("(rust OR python) AND mentoring")
    assert set(titles(results)) == {"Rust mentoring", "Mentoring for Python beginners"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("title:composting", {"Composting basics"}),
        ("body:swap", {"Café meetups"}),
        ("summary:checklist", {"Onboarding new members"}),
        ("tag:gardening", {"Onboarding new members", "Composting basics"}),
        ("tags:events", {"Café meetups"}),
        ('topic:"open source"', {"Mentoring for Python beginners"}),
        ("language:es", {"Mentoring for Python beginners"}),
        ("type:offer", {"Mentoring for Python beginners", "Rust mentoring"}),
        ('community:"coffee@b.example"', {"Café meetups"}),
        ('instance:"127.0.0.1:8001"', {"Mentoring for Python beginners"}),
        ("origin:remote help", {"Mentoring for Python beginners"}),
        ("Title:Composting", {"Composting basics"}),
    ],
)
def test_field_value(service: SearchService, query: str, expected: set[str]) -> None:
    assert set(titles(service.search(query))) == expected


def test_title_field_does_not_search_the_body(service: SearchService) -> None:
    assert titles(service.search("title:swap")) == []


# Filters, facets, pagination


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"type": "offer"}, {"Mentoring for Python beginners"}),
        ({"origin": "local"}, {"Onboarding new members"}),
        ({"origin": "all"}, {"Onboarding new members", "Mentoring for Python beginners"}),
        ({"instance": "127.0.0.1:8001"}, {"Mentoring for Python beginners"}),
        ({"community": "gardeners"}, {"Onboarding new members"}),
        ({"community": "coders"}, set()),  # exact: not "coders@127.0.0.1:8001"
        ({"tag": "ONBOARDING"}, {"Onboarding new members"}),
        ({"tag": "python", "type": "guide"}, set()),
    ],
)
def test_filters_are_exact_and_combine_with_the_query(
    service: SearchService, filters: dict[str, str], expected: set[str]
) -> None:
    assert set(titles(service.search("onboarding", **filters))) == expected


def test_facets_count_every_filtered_match_not_just_the_page(service: SearchService) -> None:
    results = service.search("members OR mentoring OR meet", limit=1)
    assert results.total == 5
    assert len(results.items) == 1
    assert results.facets["type"] == {"guide": 3, "offer": 2}
    assert results.facets["instance"] == {"a.example": 3, "127.0.0.1:8001": 1, "b.example": 1}

    filtered = service.search("members OR mentoring OR meet", origin="local", limit=1)
    assert filtered.total == 3
    assert filtered.facets["type"] == {"guide": 2, "offer": 1}
    assert filtered.facets["community"] == {"gardeners": 2, "coders": 1}
    assert filtered.facets["instance"] == {"a.example": 3}
    assert filtered.facets["tag"] == {"gardening": 2, "compost": 1, "onboarding": 1}


def test_pagination_walks_every_result_once(tmp_path: Path) -> None:
    docs = [make_doc(f"Seed swap {i}", "seeds for everyone") for i in range(25)]
    svc = index_docs(tmp_path / "index", docs)
    pages = [svc.search("seeds", limit=10, offset=offset) for offset in (0, 10, 20, 30)]
    assert [len(p.items) for p in pages] == [10, 10, 5, 0]
    assert all(p.total == 25 for p in pages)
    ids = [item.id for page in pages for item in page.items]
    assert sorted(ids) == sorted(doc.id for doc in docs)


def test_hit_carries_what_a_result_row_needs(service: SearchService) -> None:
    (hit,) = service.search("rust").items
    doc = CORPUS[4]
    assert (hit.type, hit.id, hit.title, hit.url) == ("offer", doc.id, doc.title, doc.url)
    assert (hit.community, hit.community_name, hit.instance) == ("coders", "Coders", "a.example")
    assert hit.score > 0


def test_browsing_without_a_query_lists_newest_first(tmp_path: Path) -> None:
    docs = [make_doc(f"Entry {i}", updated_at=NOW + timedelta(days=i)) for i in range(3)]
    svc = index_docs(tmp_path / "index", docs)
    results = svc.search(None, type="guide")
    assert titles(results) == ["Entry 2", "Entry 1", "Entry 0"]
    assert results.facets["type"] == {"guide": 3}


# Snippets


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)


def test_snippet_marks_matches_and_escapes_everything_else(tmp_path: Path) -> None:
    body = 'Before onboarding, read <script>alert("x")</script> & <b>this</b>.'
    svc = index_docs(tmp_path / "index", [make_doc("Welcome", body)])
    snippet = svc.search("onboarding").items[0].snippet_html
    assert "<mark>onboarding</mark>" in snippet
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in snippet
    assert "&amp; &lt;b&gt;this" in snippet
    collector = _TagCollector()
    collector.feed(snippet)
    assert collector.tags == {"mark"}


def test_snippet_marks_folded_and_stemmed_forms(service: SearchService) -> None:
    assert "<mark>café</mark>" in service.search("cafe").items[0].snippet_html
    snippet = service.search("onboarding", type="guide").items[0].snippet_html
    assert "<mark>onboard</mark>" in snippet


def test_snippet_falls_back_to_the_summary(service: SearchService) -> None:
    # A tag-only match has nothing to mark in the text.
    (hit,) = service.search("tag:onboarding").items
    assert hit.snippet_html == "A welcome checklist"


# Writing


def test_delete_removes_and_update_replaces(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "index")
    queue = IndexWriterQueue(index)
    keep, drop = make_doc("Pruning roses"), make_doc("Pruning apples")
    queue.add(keep)
    queue.add(drop)
    queue.flush()
    svc = SearchService(index.path, refresh_interval=0)
    assert svc.search("pruning").total == 2

    queue.delete(drop.id)
    queue.add(make_doc("Pruning hedges", id=keep.id))
    queue.flush()
    assert titles(svc.search("pruning")) == ["Pruning hedges"]
    assert svc.search("roses").total == 0
    assert index.doc_count() == 1


def test_latest_change_in_a_batch_wins(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "index")
    queue = IndexWriterQueue(index)
    doc = make_doc("Draft title")
    queue.add(doc)
    queue.add(make_doc("Final title", id=doc.id))
    queue.add(gone := make_doc("Short lived"))
    queue.delete(gone.id)
    assert queue.flush() == 2
    svc = SearchService(index.path)
    assert titles(svc.search("title")) == ["Final title"]
    assert svc.search("lived").total == 0


def test_writer_commits_every_500_documents(tmp_path: Path) -> None:
    clock = FakeClock()
    queue = IndexWriterQueue(SearchIndex(tmp_path / "index"), clock=clock)
    for i in range(1001):
        queue.add(make_doc(f"Doc {i}"))
    assert queue.commits == 2  # at the 500th and the 1000th document
    assert queue.pending == 1
    assert queue.flush_if_due() is False  # no time has passed
    queue.flush()
    assert queue.commits == 3
    assert queue.index.doc_count() == 1001


def test_writer_commits_at_most_once_a_second(tmp_path: Path) -> None:
    clock = FakeClock()
    queue = IndexWriterQueue(SearchIndex(tmp_path / "index"), clock=clock)
    for step in range(30):  # a document every 0.1 s for 3 s
        clock.now = step / 10
        queue.add(make_doc(f"Doc {step}"))
        queue.flush_if_due()
    assert queue.commits == 2  # at 1.0 s and at 2.1 s
    assert queue.pending == 8
    clock.now = 3.0
    assert queue.flush_if_due() is False  # the oldest pending change is 0.8 s old
    clock.now = 3.2
    assert queue.flush_if_due() is True
    assert queue.flush_if_due() is False  # nothing left
    assert queue.commits == 3
    assert queue.index.doc_count() == 30


def test_reader_follows_commits_checking_at_most_every_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    index = SearchIndex(tmp_path / "index")
    queue = IndexWriterQueue(index)
    svc = SearchService(index.path, clock=clock)
    assert svc.search("tulips").total == 0
    queue.add(make_doc("Tulips"))
    queue.flush()
    clock.now = 0.1
    assert svc.search("tulips").total == 0  # checked 0.1 s ago: not yet
    clock.now = 0.3
    assert svc.search("tulips").total == 1


# Suggestions


def test_a_misspelled_word_is_searched_as_its_correction(service: SearchService) -> None:
    results = service.search("onbording")
    assert results.suggestion == "onboarding" and results.corrected
    assert "Onboarding new members" in titles(results)
    assert service.search("mentorng beginers").suggestion == "mentoring beginners"
    assert service.search("tag:pythn").suggestion == "tag:python"
    assert service.search("onboarding").suggestion is None
    assert not service.search("onboarding").corrected


# Hostile input

HOSTILE = [
    '"unbalanced',
    'two "quotes" and "one',
    "*",
    "*:*",
    "x" * 10_000,
    "\x00",
    "abc\x00def",
    "\x1b[31mred",
    "\x7f",
    "\ud800",
    "title:",
    "title: x",
    "nosuchfield:x",
    "http://example.org",
    "(((",
    ")))",
    "(" * 50 + "a" + ")" * 50,
    "()",
    '""',
    "AND",
    "OR",
    "NOT",
    "NOT NOT x",
    "a AND AND b",
    "a OR",
    "^",
    "x^99999999999999999999",
    '"x"~99999999',
    "a* ?b [a TO z] {a TO z} a~2 /re.*/",
    "::",
    "é:x",
    "日本語のガイド",
    "مرحبا بالعالم",
    "🌱 seedlings 🌻",
    "\u200b\u202e\ufeff",
    "  \t\n  ",
    "",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_give_results_or_query_error(service: SearchService, query: str) -> None:
    try:
        results = service.search(query)
    except QueryError as exc:
        assert exc.message and str(exc) == exc.message
    else:
        assert isinstance(results, SearchResults)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("*", "nothing to search"),
        ("(((", "nothing to search"),
        ("x" * 10_000, "too long"),
        ("\x00", "control character"),
        ("   ", "empty"),
    ],
)
def test_query_errors_say_what_is_wrong(service: SearchService, query: str, words: str) -> None:
    with pytest.raises(QueryError, match=words):
        service.search(query)


@pytest.mark.parametrize("name", [*QUERY_FIELDS, "id", "status", "url", "created_at"])
def test_every_field_name_with_and_without_value(service: SearchService, name: str) -> None:
    # A field name with no value, or one that is no field, is searched as a word.
    for query in (f"{name}:", f"{name}: x", f"{name}:x", f'{name}:"x y"', f"{name}:(x OR y)"):
        assert isinstance(service.search(query), SearchResults)


def test_random_queries_never_raise_anything_else(service: SearchService) -> None:
    pieces = [*"ab \"()*:?~^[]{}-+!\\/'", "AND ", "OR ", "NOT ", "title:", "tag:", "xyz:"]
    pieces += [" ", "é", "\x00", "\u200b", "onboarding", "café"]
    rng = random.Random(20240501)
    outcomes = {"results": 0, "error": 0}
    for _ in range(600):
        query = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 25)))
        try:
            service.search(query)
            outcomes["results"] += 1
        except QueryError:
            outcomes["error"] += 1
    assert outcomes["results"] and outcomes["error"]


def test_bad_filters_and_paging_are_query_errors(service: SearchService) -> None:
    with pytest.raises(QueryError):
        service.search("garden", community="bad\x00ref")
    with pytest.raises(QueryError):
        service.search("garden", limit=0)
    with pytest.raises(QueryError):
        service.search("garden", offset=-1)


# Rebuild and recovery


def test_rebuild_while_reading_keeps_answering_then_sees_new_docs(tmp_path: Path) -> None:
    path = tmp_path / "index"
    clock = FakeClock()
    svc = index_docs(path, [make_doc("Alpha guide")])
    svc = SearchService(path, clock=clock)
    background = SearchService(path, refresh_interval=0)
    errors: list[BaseException] = []
    stop = threading.Event()

    def keep_searching() -> None:
        while not stop.is_set():
            try:
                assert background.search("guide").total >= 1
            except BaseException as exc:  # collected for the main thread
                errors.append(exc)

    def new_docs() -> Iterator[SearchDocument]:
        for i in range(40):
            if i == 20:  # mid-build, the old index still answers
                assert titles(svc.search("alpha")) == ["Alpha guide"]
                assert svc.search("beta").total == 0
            yield make_doc(f"Beta guide {i}")

    thread = threading.Thread(target=keep_searching)
    thread.start()
    try:
        progress: list[int] = []
        assert rebuild(path, new_docs(), progress.append) == 40
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert progress == [40]

    clock.now = 0.3  # next freshness check notices the swap
    assert svc.search("beta").total == 40
    assert svc.search("alpha").total == 0
    assert index_ok(path)


def test_writer_rebuild_replays_changes_made_during_the_build(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "index")
    queue = IndexWriterQueue(index)
    stale = make_doc("Stale entry")
    queue.add(stale)
    queue.flush()
    fresh = make_doc("Fresh entry")

    def from_database() -> Iterator[SearchDocument]:
        yield stale
        # Meanwhile the worker indexes a new entry and deletes an old one.
        queue.add(fresh)
        queue.delete(stale.id)
        queue.flush()
        yield make_doc("Other entry")

    assert queue.rebuild(from_database()) == 2
    svc = SearchService(index.path)
    assert set(titles(svc.search("entry"))) == {"Fresh entry", "Other entry"}


def test_index_ok_detects_missing_and_corrupt_indexes(tmp_path: Path) -> None:
    assert not index_ok(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    assert not index_ok(tmp_path / "empty")

    def fresh(name: str) -> Path:
        path = tmp_path / name
        index_docs(path, [make_doc("Anything")]).close()
        assert index_ok(path)
        return path / (path / "CURRENT").read_text().strip()

    for toc in fresh("garbled-toc").glob("*.toc"):
        toc.write_bytes(b"not a table of contents")
    for seg in fresh("truncated-segment").glob("*.seg"):
        seg.write_bytes(seg.read_bytes()[:64])
    for seg in fresh("missing-segment").glob("*.seg"):
        seg.unlink()
    (fresh("old-schema") / "SCHEMA").write_text("0\n")
    (fresh("dangling-current").parent / "CURRENT").write_text("gen-999999\n")

    for name in ("garbled-toc", "truncated-segment", "missing-segment", "old-schema"):
        assert not index_ok(tmp_path / name), name
    assert not index_ok(tmp_path / "dangling-current")


def test_search_index_replaces_a_corrupt_index_and_asks_for_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "index"
    index_docs(path, [make_doc("Anything")]).close()
    assert not SearchIndex(path).needs_rebuild
    gen = path / (path / "CURRENT").read_text().strip()
    for toc in gen.glob("*.toc"):
        toc.write_bytes(b"garbage")

    index = SearchIndex(path)
    assert index.needs_rebuild
    assert index_ok(path)
    assert index.doc_count() == 0
    index.rebuild([make_doc("Anything")])
    assert not index.needs_rebuild
    assert index.doc_count() == 1


def test_service_without_an_index_returns_nothing_but_still_validates(tmp_path: Path) -> None:
    svc = SearchService(tmp_path / "not-yet")
    results = svc.search("anything")
    assert (results.items, results.total) == ([], 0)
    assert set(results.facets) == {"type", "community", "instance", "tag"}
    with pytest.raises(QueryError):
        svc.search("\x00")
    # Once the worker creates and fills the index, the same service finds it.
    index_docs(tmp_path / "not-yet", [make_doc("Anything")])
    svc.refresh()
    assert svc.search("anything").total == 1


def test_a_newly_swapped_in_index_is_followed_without_waiting_for_the_next_check(tmp_path: Path) -> None:
    # The API calls the index searchable as soon as CURRENT names a generation; a service that has no
    # open index must not answer "nothing" until its next periodic check.
    now = [0.0]
    path = tmp_path / "index"
    svc = SearchService(path, refresh_interval=60.0, clock=lambda: now[0])
    assert svc.search("anything").total == 0
    index_docs(path, [make_doc("Anything")])
    assert svc.search("anything").total == 1  # the clock has not moved
    svc.close()


# Totals, facets and snippets at scale


def _oracle(path: Path, query: str, **filters: str) -> tuple[int, dict[str, dict[str, int]]]:
    """Whoosh's own answer: every match scored and loaded, the way the service used to count."""
    from collections import Counter

    from server.search.query import build_filter, parse_query
    from server.search.storage import open_generation, read_current

    ix = open_generation(path / str(read_current(path)))
    try:
        with ix.searcher() as searcher:
            parsed = parse_query(query)
            assert parsed is not None
            results = searcher.search(parsed.query, limit=None, filter=build_filter(**filters))
            counters: dict[str, Counter[str]] = {name: Counter() for name in ("type", "community", "instance", "tag")}
            for hit in results:
                stored = hit.fields()
                for name, field in (("type", "type"), ("community", "community"), ("instance", "instance")):
                    counters[name][stored[field]] += 1
                counters["tag"].update(t for t in stored.get("tags", "").split(",") if t)
            return len(results), {name: dict(c) for name, c in counters.items()}
    finally:
        ix.close()


@pytest.mark.parametrize("sparse_ratio", [64, 1], ids=["bitmaps", "document-lists"])
def test_total_and_facets_are_exact_across_segments_and_deletions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sparse_ratio: int
) -> None:
    # With a ratio of 1 every facet value but one present in every document is kept as a list.
    monkeypatch.setattr("server.search.engine.facets.SPARSE_RATIO", sparse_ratio)
    rng = random.Random(7)
    words = ["seed", "compost", "tulip", "garden", "water", "soil", "bee", "rain"]
    path = tmp_path / "index"
    queue = IndexWriterQueue(SearchIndex(path))
    docs = []
    for batch in range(3):  # three commits: three segments
        for i in range(60):
            doc = make_doc(
                " ".join(rng.sample(words, 2)) + f" {batch}-{i}",
                " ".join(rng.choice(words) for _ in range(12)),
                tags=rng.sample(["alpha", "beta", "gamma"], rng.randint(0, 2)),
                community=rng.choice(["gardeners", "bees@b.example"]),
                instance=rng.choice(["a.example", "b.example"]),
                type=rng.choice(["guide", "offer"]),
            )
            docs.append(doc)
            queue.add(doc)
        queue.flush()
    for doc in docs[::7]:  # deletions in every segment
        queue.delete(doc.id)
    for doc in docs[1::11]:  # updates: the old version is deleted, the new one lands in a new segment
        queue.add(make_doc(doc.title, "rain rain", id=doc.id))
    queue.flush()
    svc = SearchService(path)
    cases: list[tuple[str, dict[str, str]]] = [
        ("seed", {}),
        ("seed compost", {}),
        ("seed OR tulip", {}),
        ("garden NOT water", {}),
        ('"rain rain"', {}),
        ("soil -bee", {}),
        ("title:tulip (bee OR rain)", {}),
        ("tag:alpha", {}),
        ("water", {"type": "offer"}),
        ("water", {"community": "bees@b.example", "tag": "beta"}),
        ("nothingmatchesthis", {}),
    ]
    for query, filters in cases:
        results = svc.search(query, limit=5, **filters)
        total, facets = _oracle(path, query, **filters)
        assert results.total == total, query
        assert results.facets == {
            name: dict(sorted(c.items(), key=lambda vc: (-vc[1], vc[0]))) for name, c in facets.items()
        }, query
        assert len(results.items) == min(5, total)
    svc.close()


def test_snippet_is_cut_from_the_stored_excerpt_only(tmp_path: Path) -> None:
    from server.search.documents import EXCERPT_CHARS
    from server.search.storage import open_generation, read_current

    filler = " ".join(["lorem"] * (EXCERPT_CHARS // 5))
    early = make_doc("First", "Tulips early. " + filler)
    late = make_doc("Second", filler + " tulips late.", summary="About bulbs")
    svc = index_docs(tmp_path / "index", [early, late])
    snippets = {item.title: item.snippet_html for item in svc.search("tulips").items}
    assert snippets["First"].startswith("<mark>Tulips</mark> early.")
    # Found through the whole indexed body, but only its start is stored: the summary stands in.
    assert snippets["Second"] == "About bulbs"
    ix = open_generation(tmp_path / "index" / str(read_current(tmp_path / "index")))
    try:
        stored = list(ix.searcher().documents())
    finally:
        ix.close()
    assert all("body" not in fields and len(fields["excerpt"]) <= EXCERPT_CHARS for fields in stored)


def test_snippet_shows_two_separate_passages(tmp_path: Path) -> None:
    gap = " ".join(["filler"] * 80)
    svc = index_docs(
        tmp_path / "index", [make_doc("Far apart", f"Intro words. Onboarding here. {gap} Onboarded there. {gap}")]
    )
    snippet = svc.search("onboarding").items[0].snippet_html
    assert snippet.count("<mark>") == 2
    assert "<mark>Onboarding</mark> here." in snippet and "<mark>Onboarded</mark> there." in snippet
    assert " … " in snippet and snippet.endswith("…")
    assert len(snippet) < 2 * 200 + 60


def test_snippet_matches_are_the_tokens_the_analyzer_would_mark() -> None:
    # Snippets find matches by set operations over whitespace-separated pieces and a pattern of the
    # matching tokens; the spans must be those of walking every token through the analyzer.
    from server.search import snippets
    from server.search.engine.analysis import word_terms

    def token_by_token(text: str, terms: set[str]) -> list[tuple[int, int]]:
        spans = []
        for m in snippets._WORD.finditer(text):
            if not terms.isdisjoint(word_terms(m.group())):
                spans.append(m.span())
        return spans[:8]

    rng = random.Random(3)
    parts = ["garden", "Gardens", "gardening.", "e.g", "café", "cafe", "..", ",", "_", "x1", "rain.", "(rains)",
             "c++", "C#", "über", "a.b.c", "b", "The", "\u00a0", "\t", "—", "Über-garden"]  # fmt: skip
    for _ in range(3000):
        text = "".join(rng.choice(parts) + rng.choice(["", " ", ".", "-", "\n"]) for _ in range(rng.randint(1, 30)))
        for terms in ({"garden"}, {"rain", "b"}, {"cafe"}, {"e.g", "c"}, {"x1"}, {"uber"}, {"c++", "c#"}):
            assert snippets._matches("body", text, terms) == token_by_token(text, terms), (text, terms)


def test_the_service_reads_segments_without_mapping_them(tmp_path: Path) -> None:
    # Mapped segment pages a search touches count in the process's resident set; read ones do not.
    from server.search.storage import open_generation, read_current

    svc = index_docs(tmp_path / "index", [make_doc("Unmapped", "plain reads")])
    assert svc.search("unmapped").total == 1
    assert svc._ix is not None and svc._ix.storage.supports_mmap is False
    ix = open_generation(tmp_path / "index" / str(read_current(tmp_path / "index")))
    assert ix.storage.supports_mmap is True  # the default for everything else
    ix.close()
    svc.close()


def test_concurrent_searches_agree_with_sequential_ones(service: SearchService) -> None:
    queries = ["onboarding", "members OR mentoring", "python", "café", "garden NOT compost", "tag:gardening"]
    expected = {q: service.search(q) for q in queries}
    failures: list[str] = []

    def run() -> None:
        for _ in range(20):
            for q in queries:
                if service.search(q) != expected[q]:
                    failures.append(q)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_an_index_with_the_previous_schema_is_rebuilt(tmp_path: Path) -> None:
    from whoosh import fields as wf
    from whoosh import index as whoosh_index

    from server.search.schema import SCHEMA_VERSION, build_schema

    # What version 1 wrote: the whole body stored, no excerpt.
    old = build_schema()
    old.remove("excerpt")
    old.remove("body")
    old.add("body", wf.TEXT(analyzer=old["summary"].analyzer, stored=True))
    path = tmp_path / "index"
    gen = path / "gen-000001"
    gen.mkdir(parents=True)
    ix = whoosh_index.create_in(str(gen), old)
    with ix.writer() as writer:
        writer.add_document(id="1", title="Tulips", body="All about tulips", type="guide")
    ix.close()
    (gen / "SCHEMA").write_text("1\n")
    (path / "CURRENT").write_text("gen-000001\n")
    assert SCHEMA_VERSION != 1

    assert not index_ok(path)
    svc = SearchService(path)
    assert svc.search("tulips").total == 0  # not readable with this schema: nothing, and no error
    index = SearchIndex(path)
    assert index.needs_rebuild
    index.rebuild([make_doc("Tulips", "All about tulips")])
    assert index_ok(path)
    svc.refresh()
    (hit,) = svc.search("tulips").items
    assert hit.snippet_html == "All about <mark>tulips</mark>"


def test_bitmaps_of_merged_away_segments_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "index"
    index = SearchIndex(path)
    queue = IndexWriterQueue(index)
    for i in range(3):  # three commits, three segments
        queue.add(make_doc(f"Tulips {i}", "bulbs"))
        queue.flush()
    svc = SearchService(path)
    assert svc.search("tulips").total == 3
    before = set(svc._engine.sets._segments)
    assert len(before) == 3
    writer = index.open().writer()
    writer.add_document(id="extra", title="More tulips")
    writer.commit(optimize=True)  # merges everything into one new segment
    svc.refresh()
    assert svc.search("tulips").total == 4
    after = set(svc._engine.sets._segments)
    assert len(after) == 1 and not after & before
    assert all(key[0] in after for key in svc._engine.sets._terms)
