"""What every domain does alike with its copies of a peer's entries (communities, guides, offers): delete one
when its origin says so, and mark or remove all of a former peer's. The domain services call these for their
own tables; nothing else does."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server import changes
from server.db import utcnow
from server.settings import Settings

Model = type[changes.Entry]


async def delete_copy(session: AsyncSession, settings: Settings, model: Model, uri: str, instance: str) -> bool | None:
    """Delete our copy of `uri` from `instance`: None when there is none, False when it was deleted already."""
    entry = await session.scalar(select(model).where(model.uri == uri, model.instance == instance))
    if entry is None:
        return None
    if entry.deleted_at is not None:
        return False
    entry.deleted_at = utcnow()
    await changes.record(session, settings, "Delete", entry)
    return True


async def mark_former_peer(session: AsyncSession, model: Model, host: str, former: bool) -> None:
    """Entries of an instance that stopped being a peer stay, shown as from a former peer (or no more)."""
    await session.execute(update(model).where(*_copies_of(model, host)).values(former_peer=former))


async def purge_instance(session: AsyncSession, model: Model, host: str) -> int:
    """Remove every copy from `host`; returns how many."""
    result = await session.execute(delete(model).where(*_copies_of(model, host)))
    return result.rowcount or 0


def _copies_of(model: Model, host: str) -> tuple:  # type: ignore[type-arg]
    return model.instance == host, model.local.is_(False)
