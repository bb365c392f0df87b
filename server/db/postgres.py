"""`fetch_all` on PostgreSQL: each read one round trip on a pool of plain asyncpg connections.

Through the engine, a read checks a connection out (the pool's ping is BEGIN, `;` and ROLLBACK), begins a
transaction, runs its statement and rolls back when the connection goes back: six round trips for one SELECT,
and each step a hop through SQLAlchemy's greenlet. Here the statement runs on its own, in autocommit, as the
SQLite reader runs it: it sees what was committed when it started.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy import Select
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.exc import DBAPIError

from server.db.prepared import prepare

# Connections per process for reads. A web process awaits at most this many reads at once; the rest wait for a
# connection, which costs less than opening one per burst (a new backend is a fork, a login and the codecs).
READ_CONNECTIONS = 10
# A connection lost between two reads (the server restarted, an idle one was cut) fails the read that finds
# out; the pool replaces the connection, and the read, having changed nothing, runs once more.
_LOST = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, ConnectionError)


class PostgresReader:
    """The read pool of one engine, opened on first use in the event loop that reads."""

    def __init__(self, url: URL, dialect: Dialect, json_loads: Callable[[bytes], Any]) -> None:
        self.dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.dialect = dialect
        self.json_loads = json_loads
        self._pool: asyncpg.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    async def fetch_all(
        self, statement: Select[Any], params: Mapping[str, Any], into: Callable[[Any], Any] | None
    ) -> Sequence[Any] | None:
        """The rows, decoded as `execute` decodes them; None for a statement `prepare` leaves to SQLAlchemy."""
        prepared = prepare(statement, self.dialect)
        if prepared is None:
            return None
        arguments = prepared.arguments(params)
        pool = await self._open()
        try:
            try:
                records = await pool.fetch(prepared.sql, *arguments)
            except _LOST:
                records = await pool.fetch(prepared.sql, *arguments)
        except (asyncpg.PostgresError, *_LOST) as exc:  # raised as `execute` raises it
            error = DBAPIError.instance(prepared.sql, arguments, exc, asyncpg.PostgresError, dialect=self.dialect)
            raise error from exc
        rows = prepared.decode([tuple(record) for record in records])  # tuples, as the SQLite reader gives
        return rows if into is None else [into(row) for row in rows]

    async def _open(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._loop is loop:
            return self._pool
        if self._lock is None or self._loop is not loop:  # the first read, or the first in another event loop
            self._loop, self._lock, self._pool = loop, asyncio.Lock(), None
        async with self._lock:  # the reads that come while the pool opens wait for it
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self.dsn, min_size=1, max_size=READ_CONNECTIONS, init=self._codecs, connection_class=_Connection
                )
            return self._pool

    async def _codecs(self, connection: asyncpg.Connection) -> None:
        # JSON decoded as the engine decodes it (SQLAlchemy's asyncpg dialect sets the same codecs on its own).
        await connection.set_type_codec(
            "json", encoder=str.encode, decoder=self.json_loads, schema="pg_catalog", format="binary"
        )
        await connection.set_type_codec(
            "jsonb",
            encoder=lambda text: b"\x01" + text.encode(),
            decoder=lambda data: self.json_loads(data[1:]),
            schema="pg_catalog",
            format="binary",
        )

    def close(self) -> None:
        """Close the connections now, from whatever thread disposes the engine; a later read opens a new pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):  # its loop may be closed already: the connections went with it
                pool.terminate()


class _Connection(asyncpg.Connection):  # type: ignore[misc]
    def get_reset_query(self) -> str:
        # A read leaves nothing behind (no transaction, no SET, no LISTEN, no lock), so a connection goes back to
        # the pool without the reset statement asyncpg otherwise sends each time: a round trip saved per read.
        return ""
