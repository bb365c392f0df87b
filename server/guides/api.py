from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.deps import provide_principal, require, require_writer
from server.accounts.security import Principal
from server.errors import conflict
from server.guides import schemas
from server.guides.diffs import unified_diff
from server.guides.queries import GuideReads, etag
from server.guides.service import GuideService
from server.openapi_docs import READ, WRITE, problems
from server.pagination import link_header
from server.refs import Origin
from server.settings import Settings


class GuideController(Controller):
    tags = ["Guides"]

    # The two reads take no `db` and no `settings`: a session (and Litestar resolving dependencies side by side
    # in a task group) would cost more than the read itself; GuideReads runs one statement without a session.

    @get("/api/v1/guides", operation_id="listGuides", summary="List guides, newest first", responses=READ)
    async def list_guides(
        self, request: Request[Any, Any, Any], state: State, principal: Principal | None,
        community: str | None = None, tag: str | None = None, author: str | None = None, origin: Origin = "all",
        instance: str | None = None, status: schemas.Status = "published",
        limit: int = Parameter(default=20, ge=1, le=100), cursor: str | None = None,
    ) -> Response[schemas.GuidePage]:  # fmt: skip
        settings: Settings = state.settings
        items, next_cursor = await GuideReads(state.engine, settings).list(
            principal, community=community, tag=tag, author=author, origin=origin,
            instance=instance, status=status, limit=limit, cursor=cursor,
        )  # fmt: skip
        return Response(
            schemas.GuidePage(items=items, next_cursor=next_cursor),
            headers=link_header(request, settings.base_url, next_cursor),
        )

    @post(
        "/api/v1/communities/{slug:str}/guides", operation_id="createGuide",
        summary="Publish a guide in a community (member)", responses=WRITE,
    )  # fmt: skip
    async def create_guide(
        self, slug: str, data: schemas.GuideCreate, db: AsyncSession, settings: Settings,
        principal: Principal | None,
    ) -> Response[schemas.Guide]:  # fmt: skip
        service = GuideService(db, settings)
        guide = await service.create(require(principal), slug, data)
        headers = {"ETag": etag(guide), "Location": guide.url}
        return Response(await service.schema(guide), status_code=201, headers=headers)

    @get("/api/v1/guides/{guide_id:uuid}", operation_id="getGuide", summary="Get a guide", responses=problems(404))
    async def get_guide(self, guide_id: UUID, request: Request[Any, Any, Any]) -> Response[schemas.Guide]:
        # The principal is looked up here rather than injected: with nothing else to validate, the order of the
        # checks is the same, and resolving one dependency costs a tenth of this request.
        principal = await provide_principal(request)
        state = request.app.state
        guide = await GuideReads(state.engine, state.settings).get(guide_id, principal)
        return Response(guide, headers={"ETag": etag(guide)})

    @patch(
        "/api/v1/guides/{guide_id:uuid}", operation_id="updateGuide",
        summary="Edit a guide, keeping the old revision (author or moderator)", responses=WRITE | problems(412),
    )  # fmt: skip
    async def update_guide(
        self, guide_id: UUID, data: schemas.GuideUpdate, db: AsyncSession, settings: Settings,
        principal: Principal | None, if_match: str | None = Parameter(header="If-Match", default=None),
    ) -> Response[schemas.Guide]:  # fmt: skip
        service = GuideService(db, settings)
        guide = await service.update(require_writer(principal), guide_id, data, if_match)
        return Response(await service.schema(guide), headers={"ETag": etag(guide)})

    @delete("/api/v1/guides/{guide_id:uuid}", operation_id="deleteGuide", summary="Delete a guide", responses=WRITE)
    async def delete_guide(
        self, guide_id: UUID, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> None:
        await GuideService(db, settings).delete(require_writer(principal), guide_id)

    @get(
        "/api/v1/guides/{guide_id:uuid}/revisions", operation_id="listGuideRevisions",
        summary="A guide's revisions, newest first", responses=problems(404),
    )  # fmt: skip
    async def list_revisions(
        self, guide_id: UUID, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> list[schemas.Revision]:
        return await GuideService(db, settings).revisions(guide_id, principal)

    @get(
        "/api/v1/guides/{guide_id:uuid}/revisions/{number:int}", operation_id="getGuideRevision",
        summary="One revision of a guide", responses=problems(404),
    )  # fmt: skip
    async def get_revision(
        self, guide_id: UUID, number: int, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> schemas.RevisionDetail:
        return await GuideService(db, settings).revision(guide_id, number, principal)

    @get(
        "/api/v1/guides/{guide_id:uuid}/upstream", operation_id="getGuideUpstream",
        summary="What changed in the guide an adaptation adapts, and its merge into the adaptation",
        responses=problems(404),
    )  # fmt: skip
    async def get_upstream(
        self, guide_id: UUID, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> schemas.UpstreamChange:
        return await GuideService(db, settings).upstream_change(guide_id, principal)

    @post(
        "/api/v1/guides/{guide_id:uuid}/upstream/merge", operation_id="mergeGuideUpstream", status_code=200,
        summary="Take the upstream's change into the adaptation (author or moderator); 409 on conflicts",
        responses=WRITE,
    )  # fmt: skip
    async def merge_upstream(
        self, guide_id: UUID, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> Response[schemas.Guide]:
        service = GuideService(db, settings)
        guide, merged = await service.take_upstream(require_writer(principal), guide_id)
        if merged.conflicts:
            raise conflict(
                f"The upstream's change conflicts with this adaptation's own edits in {merged.conflicts} place(s): "
                "GET its upstream for `merged_markdown`, resolve the conflict blocks and PATCH the text with "
                f"`upstream_revision: {merged.revision}`."
            )
        return Response(await service.schema(guide), headers={"ETag": etag(guide)})

    @post(
        "/api/v1/guides/{guide_id:uuid}/upstream/dismiss", operation_id="dismissGuideUpstream", status_code=200,
        summary="Hide the upstream's change until its next revision (author or moderator)", responses=WRITE,
    )  # fmt: skip
    async def dismiss_upstream(
        self, guide_id: UUID, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> schemas.UpstreamChange:
        return await GuideService(db, settings).dismiss_upstream(require_writer(principal), guide_id)

    @get(
        "/api/v1/guides/{guide_id:uuid}/revisions/{older:int}/diff/{newer:int}", operation_id="diffGuideRevisions",
        summary="A unified diff of a guide's body between two of its revisions", responses=problems(404),
    )  # fmt: skip
    async def diff_revisions(
        self, guide_id: UUID, older: int, newer: int, db: AsyncSession, settings: Settings,
        principal: Principal | None,
    ) -> schemas.RevisionDiff:  # fmt: skip
        left, right = await GuideService(db, settings).revision_pair(guide_id, older, newer, principal)
        diff = unified_diff(left.body_markdown, right.body_markdown, f"revision {older}", f"revision {newer}")
        return schemas.RevisionDiff(from_=older, to=newer, diff=diff)
