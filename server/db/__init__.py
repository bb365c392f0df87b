"""Engine, sessions and the declarative base; `fetch_all` (one-hop reads on SQLite) lives in `server.db.reads`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from server.db.reads import attach_postgres_reader, attach_reader, fetch_all
from server.db.sqlite import is_file, sqlite_pragmas

__all__ = [
    "NAMING_CONVENTION",
    "Base",
    "UTCDateTime",
    "create_engine",
    "create_sessionmaker",
    "fetch_all",
    "new_id",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way out, on SQLite too (which stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        process = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or process is None:
            return process

        def process_sqlite(value: Any) -> Any:
            # What process_bind_param stores on SQLite, "YYYY-MM-DD HH:MM:SS.ffffff" in UTC, read as UTC in one
            # step: the same datetime as parsing it, then replace(tzinfo=UTC), for a fraction of the cost (replace
            # alone takes microseconds on CPython 3.11, and every datetime of every row read comes here).
            if type(value) is str and len(value) == 26 and value[10] == " " and value[19] == ".":
                return datetime.fromisoformat(value + "+00:00")
            return process(value)

        return process_sqlite


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        if is_file(engine.url):
            attach_reader(engine)
        return engine
    engine = create_async_engine(database_url, pool_pre_ping=True, pool_size=10, **kwargs)
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "asyncpg":
        attach_postgres_reader(engine)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
