"""The search backends behind the API and the search page: one interface, `whoosh` or `postgres`.

`whoosh` (the default) is the embedded index in data_dir/search: the worker applies index jobs to it and
`rebuild` builds a new generation. `postgres` is the database's own full text search (`server/search/postgres.py`)
over vectors of the same terms (`vectors.py`), kept current in the write's own transaction, so changes need no
index job, and every web process can search without a shared disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.metrics import timed_search
from server.settings import SearchSettings, Settings

from .indexing import index_path, reindex, searchable
from .service import SearchResults, SearchService

log = logging.getLogger("kith.search")


class SearchBackend(Protocol):
    """Searches with the filters, facets, snippets and paging the API offers; rebuilds; counts."""

    def searchable(self) -> bool:
        """Whether searches can be answered now (the whoosh index may still be being built)."""
        ...

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
        """As `SearchService.search`: raises QueryError for input that cannot be searched."""
        ...

    async def rebuild(
        self, sessions: async_sessionmaker[AsyncSession], progress: Callable[[int], None] | None = None
    ) -> int:
        """Make every entry searchable from the database again (`kith reindex`); the entries done."""
        ...

    async def stats(self) -> dict[str, Any]:
        """What an operator wants to know: the backend's name and how many entries it finds."""
        ...

    def close(self) -> None: ...


class WhooshBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = index_path(settings)
        self.service = SearchService(self.path)

    def searchable(self) -> bool:
        return searchable(self.path)

    async def search(self, q: str | None, **filters: Any) -> SearchResults:
        # A Whoosh search is CPU-bound and synchronous: it runs beside the event loop.
        return await asyncio.to_thread(timed_search(self.service.search), q, **filters)

    async def rebuild(
        self, sessions: async_sessionmaker[AsyncSession], progress: Callable[[int], None] | None = None
    ) -> int:
        return await reindex(self.settings, sessions, progress)

    async def stats(self) -> dict[str, Any]:
        return {"backend": "whoosh", "documents": await asyncio.to_thread(self.service.document_count)}

    def close(self) -> None:
        self.service.close()


def make_backend(settings: Settings, engine: AsyncEngine) -> SearchBackend:
    if settings.search.language != SearchSettings.language:
        log.warning(
            "[search] language %r is not used: both search backends analyse text with Kith's own English analysis",
            settings.search.language,
        )
    if settings.search.backend == "postgres":
        from .postgres import PostgresBackend

        return PostgresBackend(settings, engine)
    return WhooshBackend(settings)


def search_backend(state: State, settings: Settings) -> SearchBackend:
    """One per web process, made on first use: the whoosh one keeps its searcher open between searches."""
    if getattr(state, "search", None) is None:
        state.search = make_backend(settings, state.engine)
    backend: SearchBackend = state.search
    return backend


async def rebuild(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], progress: Callable[[int], None] | None = None
) -> int:
    """`kith reindex` with the configured backend; the entries it made searchable."""
    backend = make_backend(settings, sessions.kw["bind"])
    try:
        return await backend.rebuild(sessions, progress)
    finally:
        backend.close()
