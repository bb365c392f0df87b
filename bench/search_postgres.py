"""bench/search.py's guides as rows of a Kith PostgreSQL database, for `--backend postgres`.

The generated guides are copied straight into `guides` (COPY, one transaction; where the schema has a
search_vector trigger it computes each row's vector, otherwise `kith reindex` does, which search.py times), with
one author per instance and the communities they name:
search reads nothing else. Going through GuideService would take an hour at 100,000 guides and measure the
service, not search.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable

import asyncpg

from server.search.documents import SearchDocument

GUIDE_COLUMNS = (
    "id", "uri", "url", "community_id", "author_id", "slug", "title", "summary", "body_markdown", "body_html",
    "tags", "tags_key", "license", "status", "revision", "local", "instance", "created_at", "updated_at",
)  # fmt: skip
BATCH = 5_000


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def load(
    database_url: str, docs: Iterable[SearchDocument], local_host: str, progress: Callable[[int], None]
) -> tuple[int, float]:
    """Copy the guides in; (guides, seconds the copy took, vectors included)."""
    connection = await asyncpg.connect(plain(database_url))
    authors: dict[str, uuid.UUID] = {}
    communities: dict[tuple[str, str], uuid.UUID] = {}
    try:
        rows: list[tuple[object, ...]] = []
        for doc in docs:
            slug = doc.community.split("@", 1)[0]
            if doc.instance not in authors:
                authors[doc.instance] = uuid.uuid4()
            if (slug, doc.instance) not in communities:
                communities[(slug, doc.instance)] = uuid.uuid4()
            rows.append(
                (
                    uuid.UUID(doc.id), doc.url, doc.url, communities[(slug, doc.instance)], authors[doc.instance],
                    doc.url.rsplit("/", 1)[-1][:120], doc.title[:200], doc.summary, doc.body, "", json.dumps(doc.tags),
                    "|" + "".join(f"{tag}|" for tag in doc.tags), "CC-BY-4.0", "published", 1,
                    doc.instance == local_host, doc.instance, doc.created_at, doc.updated_at,
                )
            )  # fmt: skip
        started = time.perf_counter()
        async with connection.transaction():
            await connection.executemany(
                "INSERT INTO users (id, username, instance, display_name, is_admin, local, uri, url, created_at,"
                " updated_at) VALUES ($1, 'bench', $2, 'Bench', false, $3, $4, $4, now(), now())",
                [(author, host, host == local_host, f"https://{host}/u/bench") for host, author in authors.items()],
            )
            await connection.executemany(
                "INSERT INTO communities (id, uri, url, slug, name, description, color, links, local, instance,"
                " created_at, updated_at) VALUES ($1, $2, $2, $3, $4, '', '#336699', '[]', $5, $6, now(), now())",
                [
                    (id_, f"https://{host}/c/{slug}", slug, slug.replace("-", " ").title(), host == local_host, host)
                    for (slug, host), id_ in communities.items()
                ],
            )
            for at in range(0, len(rows), BATCH):
                await connection.copy_records_to_table("guides", records=rows[at : at + BATCH], columns=GUIDE_COLUMNS)
                progress(min(at + BATCH, len(rows)))
        seconds = time.perf_counter() - started
        await connection.execute("ANALYZE")
        return len(rows), seconds
    finally:
        await connection.close()
