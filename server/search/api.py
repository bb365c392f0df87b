from __future__ import annotations

import base64
from typing import Any, Literal

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.params import Parameter

from server.errors import ProblemError, invalid
from server.openapi_docs import problems
from server.pagination import link_header
from server.ratelimit import client_address, limiter_of
from server.search import QueryError, SearchItem
from server.search.backend import search_backend
from server.settings import Settings

MAX_OFFSET = 10_000


class Facets(msgspec.Struct):
    type: dict[str, int]
    community: dict[str, int]
    instance: dict[str, int]
    tag: dict[str, int]


class SearchPage(msgspec.Struct):
    items: list[SearchItem]
    total: int
    next_cursor: str | None
    facets: Facets
    suggestion: str | None
    # True when the items are for `suggestion` (a respelling) rather than the query as typed.
    corrected: bool = False
    # True when no entry holds every word of the query and the items hold some of them.
    relaxed: bool = False


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().removeprefix("o:"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid("cursor", "is not a cursor this server issued") from exc
    if not 0 <= offset <= MAX_OFFSET:
        raise invalid("cursor", "is not a cursor this server issued")
    return offset


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


class SearchController(Controller):
    tags = ["Search"]

    @get(
        "/api/v1/search",
        operation_id="search",
        summary="Search guides and offers, local and federated, with highlights and facets",
        responses=problems(429, 503),
    )
    async def search(
        self,
        request: Request[Any, Any, Any],
        state: State,
        settings: Settings,
        q: str | None = Parameter(default=None, max_length=2000),
        type: Literal["guide", "offer"] | None = None,
        community: str | None = None,
        instance: str | None = None,
        tag: str | None = None,
        origin: Literal["local", "remote", "all"] = "all",
        limit: int = Parameter(default=20, ge=1, le=100),
        cursor: str | None = None,
    ) -> Response[SearchPage]:
        # By address: an API search needs no token, and looking one up would cost every search a query.
        limiter_of(request).check("search", client_address(request))
        backend = search_backend(state, settings)
        if not backend.searchable():
            raise ProblemError(
                503, "The search index is being built; try again in a moment.", headers={"Retry-After": "5"}
            )
        offset = _offset(cursor)
        try:
            results = await backend.search(
                q, type=type, community=community, instance=instance, tag=tag,
                origin=None if origin == "all" else origin, limit=limit, offset=offset,
            )  # fmt: skip
        except QueryError as exc:
            raise invalid("q", exc.message) from exc
        next_offset = offset + len(results.items)
        next_cursor = _cursor(next_offset) if next_offset < min(results.total, MAX_OFFSET) else None
        page = SearchPage(
            items=results.items,
            total=results.total,
            next_cursor=next_cursor,
            facets=Facets(
                **{name: dict(results.facets.get(name, {})) for name in ("type", "community", "instance", "tag")}
            ),
            suggestion=results.suggestion,
            corrected=results.corrected,
            relaxed=results.relaxed,
        )
        return Response(page, headers=link_header(request, settings.base_url, next_cursor))
