"""From schema version 3 on, dates are stored and sortable but write no index terms; version 2 indexes are
rebuilt."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from whoosh import index as whoosh_index

from server.search import IndexWriterQueue, SearchDocument, SearchIndex, SearchService, index_ok
from server.search.documents import document_fields
from server.search.schema import SCHEMA_VERSION, build_schema
from server.search.storage import open_generation, read_current

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _doc(title: str, updated_at: datetime) -> SearchDocument:
    return SearchDocument(
        id=str(uuid.uuid4()), type="guide", title=title, url="https://a.example/g", community="gardeners",
        instance="a.example", origin="local", created_at=NOW, updated_at=updated_at, body="Tulips in spring.",
    )  # fmt: skip


def test_dates_are_stored_and_sort_the_browse_order_without_index_terms(tmp_path: Path) -> None:
    path = tmp_path / "index"
    queue = IndexWriterQueue(SearchIndex(path))
    for n in (1, 3, 2):
        queue.add(_doc(f"Entry {n}", NOW + timedelta(days=n)))
    queue.flush()

    ix = open_generation(path / (read_current(path) or ""))
    try:
        with ix.reader() as reader:
            fields_with_terms = {fieldname for fieldname, _ in reader.all_terms()}
            stored = sorted(s["updated_at"] for s in reader.all_stored_fields())
    finally:
        ix.close()
    assert "created_at" not in fields_with_terms and "updated_at" not in fields_with_terms
    assert {"title", "body", "id"} <= fields_with_terms
    assert stored == [datetime(2026, 5, 1 + n, 12, 0) for n in (1, 2, 3)]

    svc = SearchService(path)
    try:
        assert [hit.title for hit in svc.search(None, type="guide").items] == ["Entry 3", "Entry 2", "Entry 1"]
        assert [hit.title for hit in svc.search("tulips").items]  # the text is still found
    finally:
        svc.close()


def test_an_index_written_with_indexed_dates_is_rebuilt(tmp_path: Path) -> None:
    from whoosh import fields as wf

    # What version 2 wrote: the same fields, dates as plain DATETIME fields with index terms.
    old = build_schema()
    for name in ("created_at", "updated_at"):
        old.remove(name)
        old.add(name, wf.DATETIME(stored=True, sortable=True))
    path = tmp_path / "index"
    gen = path / "gen-000001"
    gen.mkdir(parents=True)
    ix = whoosh_index.create_in(str(gen), old)
    with ix.writer() as writer:
        writer.add_document(**document_fields(_doc("Tulips", NOW)))
    ix.close()
    (gen / "SCHEMA").write_text("2\n")
    (path / "CURRENT").write_text("gen-000001\n")

    assert SCHEMA_VERSION == 5
    assert not index_ok(path)
    index = SearchIndex(path)
    assert index.needs_rebuild
    index.rebuild([_doc("Tulips", NOW)])
    assert index_ok(path)
