from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, RequestBody, Schema
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.deps import require, require_writer
from server.accounts.security import Principal
from server.archive.service import ArchiveService
from server.communities import schemas
from server.communities.service import CommunityService
from server.db import utcnow
from server.openapi_docs import WRITE, problems
from server.settings import Settings

ARCHIVE_MEDIA_TYPE = "application/gzip"
# The largest archive the API takes; a bigger one is imported from a file with `kith community import`.
MAX_ARCHIVE_BYTES = 1024 * 1024 * 1024
# Archives up to this size are received in memory, bigger ones in a temporary file.
_SPOOL_BYTES = 8 * 1024 * 1024


def _archive_content() -> dict[str, OpenAPIMediaType]:
    return {
        ARCHIVE_MEDIA_TYPE: OpenAPIMediaType(
            schema=Schema(type=OpenAPIType.STRING, content_media_type=ARCHIVE_MEDIA_TYPE)
        )
    }


@dataclass
class _ArchiveDownload(Operation):
    """The export's 200 is the archive's bytes."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            ok.content = _archive_content()
            ok.description = "The archive (docs/export-format.md)"


@dataclass
class _ArchiveUpload(Operation):
    """The import's body is an archive, read as a stream rather than decoded by a schema."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(content=_archive_content(), required=True, description="An archive")


class ArchiveController(Controller):
    path = "/api/v1/communities"
    tags = ["Communities"]

    @get(
        "/{ref:str}/export",
        operation_id="exportCommunity",
        summary="Export a community as an archive (moderator)",
        description="A gzip-compressed tar in the format of docs/export-format.md, streamed as it is written.",
        media_type=ARCHIVE_MEDIA_TYPE,
        responses=problems(401, 403, 404),
        operation_class=_ArchiveDownload,
    )
    async def export_community(
        self, ref: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings,
        principal: Principal | None,
    ) -> Stream:  # fmt: skip
        community = await ArchiveService(db, settings).exportable(require(principal), ref)
        community_id, slug = community.id, community.slug
        sessions = request.app.state.sessionmaker

        async def chunks() -> AsyncIterator[bytes]:
            # The response outlives the request's session: the export reads through a session of its own.
            async with sessions() as session:
                async for chunk in ArchiveService(session, settings).export(community_id):
                    yield chunk

        filename = f"{slug}-{utcnow():%Y%m%d}.tar.gz"
        return Stream(
            chunks(),
            media_type=ARCHIVE_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @post(
        "/import",
        operation_id="importCommunity",
        summary="Import a community from an archive (admin)",
        description="The body is an archive made by `exportCommunity`; `slug` imports it under another slug. "
        "A damaged or tampered archive is a 422 and creates nothing; an archive imported before is a 409.",
        request_max_body_size=MAX_ARCHIVE_BYTES,
        opt={"binary_body": True},
        operation_class=_ArchiveUpload,
        responses=WRITE | problems(409),
    )
    async def import_community(
        self, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, principal: Principal | None,
        slug: str | None = None,
    ) -> Response[schemas.Community]:  # fmt: skip
        principal = require_writer(principal)
        service = ArchiveService(db, settings)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as archive:
            if principal.is_admin:  # anyone else is refused before the body is read
                async for chunk in request.stream():
                    archive.write(chunk)
            community = await service.import_as(principal, archive, slug)  # type: ignore[arg-type]
        return Response(await CommunityService(db, settings).to_schema(community), status_code=201)
