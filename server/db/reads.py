"""`fetch_all`: one-hop reads of a SELECT, on SQLite through a reader thread and plain connections, on PostgreSQL
through a pool of plain asyncpg connections (`server.db.postgres`)."""

from __future__ import annotations

import json
import sqlite3
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from queue import SimpleQueue
from typing import Any, TypeVar, overload

import msgspec
from sqlalchemy import Select, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.db.postgres import PostgresReader
from server.db.prepared import prepare
from server.db.reader_thread import Read, in_thread, run_prepared, run_sql, run_statement, serve
from server.db.sqlite import quick_pragmas, reader_pragmas

_T = TypeVar("_T")


@overload
async def fetch_all(
    engine: AsyncEngine, statement: Select[Any], params: Mapping[str, Any] | None = None, *, quick: bool = False
) -> Sequence[Sequence[Any]]: ...


@overload
async def fetch_all(
    engine: AsyncEngine,
    statement: Select[Any],
    params: Mapping[str, Any] | None = None,
    *,
    quick: bool = False,
    into: Callable[[Sequence[Any]], _T],
) -> list[_T]: ...


async def fetch_all(
    engine: AsyncEngine,
    statement: Select[Any],
    params: Mapping[str, Any] | None = None,
    *,
    quick: bool = False,
    into: Callable[[Sequence[Any]], Any] | None = None,
) -> Sequence[Any]:
    """The rows of a SELECT: the values `(await connection.execute(statement, params)).all()` would give, in the
    same order, as sequences (tuples or Rows). Meant for statements built once and run many times, with bound
    parameters for what varies: on SQLite the compiled form is kept per statement object.

    On a SQLite file made by `create_engine`, the statement runs in one hop to a reader thread that holds a
    plain pysqlite connection with the same pragmas plus `query_only`. Through aiosqlite, the cursor, the
    execute, the fetch, the cursor's close and the rollback when the connection goes back to the pool are each a
    round trip to the connection's thread. The thread only executes and fetches; the parameters and the values
    go through the bind and result processors of their SQLAlchemy types here, in the caller's thread, which is
    all that `execute` does to them (decoding rows in the reader thread would have the two threads take the GIL
    from each other on every row). The statement runs in autocommit: it sees what was committed when it started
    and holds no transaction afterwards. On PostgreSQL (an engine made by `create_engine`) the compiled statement
    runs in one round trip on a connection of the process's read pool, also in autocommit, and asyncpg decodes the
    values before the same processors. Anywhere else, and for what `prepare` leaves to SQLAlchemy, it runs on a
    pooled connection of `engine`.

    `quick=True` is for statements that read a handful of rows through an index (a row by its key, a page of an
    index in order): on SQLite they run right here on the event loop, with no hop to the reader thread, which
    costs more than such a read (handing the work over and the two threads taking the GIL from each other).
    They never wait on the loop: their connection has a busy timeout of 0, and a read SQLite cannot start at
    once goes to the reader thread after all.

    `into` turns each row into what the caller keeps (a card, a schema): the result is then `[into(row) for row
    in rows]`. On SQLite what it made is remembered by the row's stored values, so a row read again costs a
    dictionary lookup instead of decoding its values (UUIDs, datetimes, JSON) and building the object again:
    pages read the same few dozen rows over and over. `into` must depend on the row alone, and what it returns
    is shared by every read of an unchanged row: the caller treats it as read-only.
    """
    reader = _readers.get(engine.sync_engine)
    if reader is not None:
        return await reader.fetch_all(statement, params or {}, quick, into)
    postgres = _postgres_readers.get(engine.sync_engine)
    if postgres is not None and (rows := await postgres.fetch_all(statement, params or {}, into)) is not None:
        return rows
    async with engine.connect() as connection:
        rows = (await connection.execute(statement, params)).all()
    return rows if into is None else [into(row) for row in rows]


def attach_reader(engine: AsyncEngine) -> None:
    """Give a SQLite file engine its reader, closed when the engine is disposed."""
    _readers[engine.sync_engine] = _SQLiteReader(engine.url)
    event.listen(engine.sync_engine, "engine_disposed", _close_reader)


def attach_postgres_reader(engine: AsyncEngine) -> None:
    """Give a PostgreSQL engine its read pool, closed when the engine is disposed."""
    _postgres_readers[engine.sync_engine] = PostgresReader(engine.url, engine.dialect, _json_loads)
    event.listen(engine.sync_engine, "engine_disposed", _close_reader)


# The reader of each SQLite file engine and PostgreSQL engine made by create_engine; closed when it is disposed.
_readers: weakref.WeakKeyDictionary[Engine, _SQLiteReader] = weakref.WeakKeyDictionary()
_postgres_readers: weakref.WeakKeyDictionary[Engine, PostgresReader] = weakref.WeakKeyDictionary()


def _close_reader(engine: Engine) -> None:
    for readers in (_readers, _postgres_readers):
        reader = readers.get(engine)
        if reader is not None:
            reader.close()


class _SQLiteReader:
    """Two pysqlite engines on the same file, and the one thread that reads through the first; made on first use.

    The thread is fed through a queue as aiosqlite feeds its own. It keeps one connection checked out for good;
    a second one in its pool serves the statements that `prepare` leaves to SQLAlchemy. The second engine's
    connections (busy timeout 0) serve the quick reads on the event loop: each thread that reads quick checks
    one out the first time and keeps it (a checkout and a return per read are a good part of what a small read costs).
    """

    def __init__(self, url: URL) -> None:
        self.url = url.set(drivername="sqlite")
        self._lock = threading.Lock()
        self._started: tuple[Engine, Engine, SimpleQueue[Read | None]] | None = None
        self._local = threading.local()
        self._held: list[Any] = []  # every thread's quick-read connection, returned when the reader closes

    async def fetch_all(
        self, statement: Select[Any], params: Mapping[str, Any], quick: bool, into: Callable[[Any], Any] | None
    ) -> Sequence[Any]:
        engine, quick_engine, queue = self._started or self._start()
        prepared = prepare(statement, engine.dialect)
        if prepared is None:
            rows = await in_thread(queue, run_statement, statement, params)
            return rows if into is None else [into(row) for row in rows]  # type: ignore[no-any-return]
        arguments = prepared.arguments(params)
        try:
            if not quick or (rows := self._run_now(quick_engine, prepared.sql, arguments)) is None:
                rows = await in_thread(queue, run_prepared, prepared.sql, arguments)
        except sqlite3.Error as exc:  # raised as `execute` raises it
            raise DBAPIError.instance(prepared.sql, arguments, exc, sqlite3.Error, dialect=engine.dialect) from exc
        return prepared.decode(rows) if into is None else prepared.build(rows, into)

    def _start(self) -> tuple[Engine, Engine, SimpleQueue[Read | None]]:
        with self._lock:
            if self._started is None:
                engine = create_sync_engine(
                    self.url, connect_args={"timeout": 30}, pool_size=2, max_overflow=0, json_deserializer=_json_loads
                )
                event.listen(engine, "connect", reader_pragmas)
                # No waiting for a lock even while connecting; one connection per thread that reads quick (a read
                # holds it without awaiting), so never a wait for the pool either.
                quick_engine = create_sync_engine(
                    self.url, connect_args={"timeout": 0}, pool_size=1, max_overflow=-1, json_deserializer=_json_loads
                )
                event.listen(quick_engine, "connect", quick_pragmas)
                queue: SimpleQueue[Read | None] = SimpleQueue()
                thread = threading.Thread(target=serve, args=(engine, queue), name="kith-sqlite-read", daemon=True)
                thread.start()
                weakref.finalize(self, queue.put, None)  # a reader dropped without close() stops its thread too
                self._started = engine, quick_engine, queue
            return self._started

    def _run_now(self, engine: Engine, sql: str, arguments: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """A quick read on the caller's thread; None if SQLite is busy or locked, so the read has to wait."""
        try:
            return run_sql(self._quick_connection(engine), sql, arguments)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return None
            raise

    def _quick_connection(self, engine: Engine) -> Any:
        held = getattr(self._local, "held", None)
        if held is None or held[0] is not engine:  # the first quick read of this thread, or since a close()
            # A new connection's pragmas may find the database locked too: the caller waits for the thread then.
            held = self._local.held = (engine, engine.raw_connection())
            with self._lock:
                self._held.append(held[1])
        return held[1]

    def close(self) -> None:
        """Let the reads already queued finish, then stop the thread, which closes its connections; close the
        quick reads' connections. A later read starts afresh."""
        with self._lock:
            started, self._started = self._started, None
            held, self._held = self._held, []
        if started is not None:
            started[2].put(None)
            for connection in held:
                connection.close()
            started[1].dispose()


def _json_loads(text: str | bytes) -> Any:
    """json.loads, faster for what json.dumps wrote: msgspec decodes valid JSON to the very same values, and what
    it refuses (NaN, lone surrogates, floats out of range) goes to json.loads."""
    try:
        return msgspec.json.decode(text)
    except msgspec.MsgspecError:
        return json.loads(text)
