from __future__ import annotations

import msgspec
from litestar import Controller, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.deps import require
from server.accounts.security import Principal
from server.errors import forbidden, not_found
from server.federation.peers import PeerStatus, peer_statuses, request_sync
from server.openapi_docs import problems
from server.settings import Settings


class SyncStarted(msgspec.Struct):
    host: str
    job_id: str


def _admin(principal: Principal | None) -> Principal:
    principal = require(principal)
    if not principal.is_admin:
        raise forbidden("Federation status is for instance admins (with an admin token).")
    return principal


class FederationController(Controller):
    path = "/api/v1/federation"
    tags = ["Federation"]

    @get("/peers", operation_id="listPeers", summary="Peers, their state and delivery health (admin)",
         responses=problems(401, 403))  # fmt: skip
    async def list_peers(self, db: AsyncSession, principal: Principal | None) -> list[PeerStatus]:
        _admin(principal)
        return await peer_statuses(db)

    @post(
        "/peers/{host:str}/sync",
        operation_id="syncPeer",
        status_code=202,
        summary="Re-follow a peer if needed and backfill its outbox (admin)",
        responses=problems(401, 403, 404),
    )
    async def sync_peer(
        self, host: str, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> SyncStarted:
        _admin(principal)
        try:
            job = await request_sync(db, settings, host)
        except LookupError as exc:
            raise not_found(f"Peer {host!r}") from exc
        return SyncStarted(host=host.lower(), job_id=str(job.id))
