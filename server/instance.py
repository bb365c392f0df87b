"""The instance document, health and readiness."""

from __future__ import annotations

import msgspec
from litestar import MediaType, Response, get
from litestar.datastructures import State
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server import __version__
from server.errors import problem_response
from server.models import Community, Guide, MentorshipOffer
from server.openapi_docs import problems
from server.settings import Settings


class Software(msgspec.Struct):
    name: str
    version: str


class FederationInfo(msgspec.Struct):
    peers: list[str]
    mode: str


class InstanceStats(msgspec.Struct):
    communities: int
    guides: int
    offers: int
    remote_guides: int


class Instance(msgspec.Struct):
    name: str
    description: str
    host: str
    base_url: str
    software: Software
    federation: FederationInfo
    stats: InstanceStats
    # Who may make an account: closed | invite | approval | open (see POST /api/v1/accounts).
    registration: str = "closed"


class Health(msgspec.Struct):
    status: str


async def _count(db: AsyncSession, model, *conditions) -> int:  # type: ignore[no-untyped-def]
    query = select(func.count()).select_from(model).where(model.deleted_at.is_(None), *conditions)
    return int(await db.scalar(query) or 0)


@get(
    "/api/v1/instance",
    operation_id="getInstance",
    summary="This instance, its peers and its counts",
    tags=["Instance"],
    responses=problems(),
)
async def instance(db: AsyncSession, settings: Settings) -> Instance:
    stats = InstanceStats(
        communities=await _count(db, Community),
        guides=await _count(db, Guide, Guide.status == "published"),
        offers=await _count(db, MentorshipOffer),
        remote_guides=await _count(db, Guide, Guide.local.is_(False)),
    )
    return Instance(
        name=settings.instance_name, description=settings.instance_description, host=settings.host,
        base_url=settings.base_url, software=Software(name="kith", version=__version__),
        federation=FederationInfo(peers=list(settings.peer_hosts), mode="allowlist"), stats=stats,
        registration=settings.registration,
    )  # fmt: skip


@get(
    "/healthz",
    operation_id="healthz",
    summary="The process is alive",
    tags=["Health"],
    media_type=MediaType.JSON,
    responses=problems(),
)
async def healthz() -> Health:
    return Health(status="ok")


@get(
    "/readyz",
    operation_id="readyz",
    summary="The database is reachable and migrated to head",
    tags=["Health"],
    responses=problems(503),
)
async def readyz(state: State) -> Response[Health]:
    from server.migrate import current_revision, head_revision  # Alembic only when asked, not at every start-up

    try:
        revision = await current_revision(state.engine)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database means not ready
        return problem_response(503, f"The database is not reachable: {exc.__class__.__name__}.")  # type: ignore[return-value]
    if revision != head_revision():
        return problem_response(
            503, f"The database is at revision {revision}, not {head_revision()}; run `kith migrate`."
        )  # type: ignore[return-value]
    return Response(Health(status="ready"))
