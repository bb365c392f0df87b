"""Engine, sessions, the declarative base, and one-hop reads on SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from queue import SimpleQueue
from typing import Any, TypeVar, overload

import msgspec
from sqlalchemy import JSON, DateTime, MetaData, Select, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, Compiled, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeDecorator

_T = TypeVar("_T")

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
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if _is_file(engine.url):
            _readers[engine.sync_engine] = _SQLiteReader(engine.url)
            event.listen(engine.sync_engine, "engine_disposed", _close_reader)
        return engine
    return create_async_engine(database_url, pool_pre_ping=True, pool_size=10, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the worker write while pages read; busy_timeout turns lock contention into waiting.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


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
    and holds no transaction afterwards. Anywhere else it runs on a pooled connection of `engine`.

    `quick=True` is for statements that read a handful of rows through an index (a row by its key, a page of an
    index in order): on SQLite they run right here on the event loop, with no hop to the reader thread, which
    costs more than such a read (handing the work over and the two threads taking the GIL from each other:
    0.3-0.4 ms of CPU per request in bench/api_list.py). They never wait on the loop: their connection has a
    busy timeout of 0, and a read SQLite cannot start at once goes to the reader thread after all.

    `into` turns each row into what the caller keeps (a card, a schema): the result is then `[into(row) for row
    in rows]`. On SQLite what it made is remembered by the row's stored values, so a row read again costs a
    dictionary lookup instead of decoding its values (UUIDs, datetimes, JSON) and building the object again:
    pages read the same few dozen rows over and over. `into` must depend on the row alone, and what it returns
    is shared by every read of an unchanged row: the caller treats it as read-only.
    """
    reader = _readers.get(engine.sync_engine)
    if reader is not None:
        return await reader.fetch_all(statement, params or {}, quick, into)
    async with engine.connect() as connection:
        rows = (await connection.execute(statement, params)).all()
    return rows if into is None else [into(row) for row in rows]


def _is_file(url: URL) -> bool:
    """A SQLite URL naming a file that other connections can open too (not `:memory:`)."""
    return bool(url.database) and url.database != ":memory:" and url.query.get("mode") != "memory"


class _SQLiteReader:
    """Two pysqlite engines on the same file, and the one thread that reads through the first; made on first use.

    The thread is fed through a queue as aiosqlite feeds its own. It keeps one connection checked out for good;
    a second one in its pool serves the statements that `_prepare` leaves to SQLAlchemy. The second engine's
    connections (busy timeout 0) serve the quick reads on the event loop: each thread that reads quick checks
    one out the first time and keeps it (a checkout and a return per read cost a third of a small read).
    """

    def __init__(self, url: URL) -> None:
        self.url = url.set(drivername="sqlite")
        self._lock = threading.Lock()
        self._started: tuple[Engine, Engine, SimpleQueue[_Read | None]] | None = None
        self._local = threading.local()
        self._held: list[Any] = []  # every thread's quick-read connection, returned when the reader closes

    async def fetch_all(
        self, statement: Select[Any], params: Mapping[str, Any], quick: bool, into: Callable[[Any], Any] | None
    ) -> Sequence[Any]:
        engine, quick_engine, queue = self._started or self._start()
        prepared = _prepare(statement, engine.dialect)
        if prepared is None:
            rows = await _in_thread(queue, _run_statement, statement, params)
            return rows if into is None else [into(row) for row in rows]  # type: ignore[no-any-return]
        arguments = prepared.arguments(params)
        try:
            if not quick or (rows := self._run_now(quick_engine, prepared.sql, arguments)) is None:
                rows = await _in_thread(queue, _run_prepared, prepared.sql, arguments)
        except sqlite3.Error as exc:  # raised as `execute` raises it
            raise DBAPIError.instance(prepared.sql, arguments, exc, sqlite3.Error, dialect=engine.dialect) from exc
        return prepared.decode(rows) if into is None else prepared.build(rows, into)

    def _start(self) -> tuple[Engine, Engine, SimpleQueue[_Read | None]]:
        with self._lock:
            if self._started is None:
                engine = create_sync_engine(
                    self.url, connect_args={"timeout": 30}, pool_size=2, max_overflow=0, json_deserializer=_json_loads
                )
                event.listen(engine, "connect", _sqlite_reader_pragmas)
                # No waiting for a lock even while connecting; one connection per thread that reads quick (a read
                # holds it without awaiting), so never a wait for the pool either.
                quick_engine = create_sync_engine(
                    self.url, connect_args={"timeout": 0}, pool_size=1, max_overflow=-1, json_deserializer=_json_loads
                )
                event.listen(quick_engine, "connect", _sqlite_quick_pragmas)
                queue: SimpleQueue[_Read | None] = SimpleQueue()
                thread = threading.Thread(target=_serve, args=(engine, queue), name="kith-sqlite-read", daemon=True)
                thread.start()
                weakref.finalize(self, queue.put, None)  # a reader dropped without close() stops its thread too
                self._started = engine, quick_engine, queue
            return self._started

    def _run_now(self, engine: Engine, sql: str, arguments: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """A quick read on the caller's thread; None if SQLite is busy or locked, so the read has to wait."""
        try:
            return _run_sql(self._quick_connection(engine), sql, arguments)
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


async def _in_thread(queue: SimpleQueue[_Read | None], run: Callable[..., Any], *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    queue.put((loop, future, run, args))
    return await future


# (the caller's loop, the future to settle, what to run in the reader thread and its arguments)
_Read = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class _Thread:
    """What the reader thread reads with: its engine, and the connection it keeps once it has one."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Any = None

    def connection(self) -> Any:
        if self._connection is None:
            self._connection = self.engine.raw_connection()
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self.engine.dispose()


def _serve(engine: Engine, queue: SimpleQueue[_Read | None]) -> None:
    """The reader thread: run each queued read and hand its result or error back to the read's event loop."""
    thread = _Thread(engine)
    try:
        while (read := queue.get()) is not None:
            loop, future, run, args = read
            try:
                result = run(thread, *args)
            except BaseException as exc:  # noqa: BLE001 - whatever it is, it belongs to the caller
                _call_soon(loop, _set_exception, future, exc)
            else:
                _call_soon(loop, _set_result, future, result)
    finally:
        thread.close()


def _run_prepared(thread: _Thread, sql: str, arguments: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return _run_sql(thread.connection(), sql, arguments)


def _run_sql(connection: Any, sql: str, arguments: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    cursor = connection.cursor()
    try:
        return cursor.execute(sql, arguments).fetchall()  # type: ignore[no-any-return]
    finally:
        cursor.close()


def _run_statement(thread: _Thread, statement: Select[Any], params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
    with thread.engine.connect() as connection:
        return connection.execute(statement, params).all()


def _json_loads(text: str | bytes) -> Any:
    """json.loads, about ten times faster for what json.dumps wrote: msgspec decodes valid JSON to the very same
    values, and what it refuses (NaN, lone surrogates, floats out of range) goes to json.loads."""
    try:
        return msgspec.json.decode(text)
    except msgspec.MsgspecError:
        return json.loads(text)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(callback, *args)


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # a cancelled read's result is dropped
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class _Prepared:
    """A compiled SELECT and the processors SQLAlchemy would apply to its parameters and its columns."""

    def __init__(self, compiled: Compiled, binds: tuple[tuple[str, Processor | None], ...], columns: list[Any]):
        self.compiled = compiled
        self.sql = compiled.string
        self.binds = binds
        self.results = tuple(
            (index, process)
            for index, column in enumerate(columns)
            if (process := column.type.dialect_impl(compiled.dialect).result_processor(compiled.dialect, None))
        )
        # What each `into` made of a stored row, by the row (a tuple of str, int, float, bytes and None).
        self.built: dict[Callable[[Any], Any], dict[tuple[Any, ...], Any]] = {}

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = self.compiled.construct_params(params)
        return tuple(values[name] if process is None else process(values[name]) for name, process in self.binds)

    def decode(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [self._decode_row(row) for row in rows] if self.results else rows

    def _decode_row(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for index, process in self.results:
            values[index] = process(values[index])
        return tuple(values)

    def build(self, rows: list[tuple[Any, ...]], into: Callable[[Any], Any]) -> list[Any]:
        built = self.built.get(into)
        if built is None:
            built = self.built[into] = {}
        made = []
        for row in rows:
            value = built.get(row)
            if value is None:
                if len(built) >= BUILT_ROWS:
                    built.clear()
                value = built[row] = into(self._decode_row(row))
            made.append(value)
        return made


Processor = Callable[[Any], Any]
# Rows remembered per statement and `into` (see `fetch_all`), then forgotten all at once: a page's rows are a
# few dozen, and each remembered row is about a kilobyte.
BUILT_ROWS = 4096


@lru_cache(maxsize=512)
def _prepare(statement: Select[Any], dialect: Dialect) -> _Prepared | None:
    """None for what runs through `execute` only: parameters rendered at execution (expanding IN, ...),
    escaped parameter names, or anything but a positional SELECT."""
    compiled = statement.compile(dialect=dialect)
    names = compiled.positiontup
    if (
        not isinstance(compiled, SQLCompiler) or not statement.is_select or names is None
        or compiled.literal_execute_params or compiled.post_compile_params or compiled.escaped_bind_names
    ):  # fmt: skip
        return None
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    binds = tuple((name, by_name[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names)
    return _Prepared(compiled, binds, list(statement.selected_columns))


# The reader of each SQLite file engine made by create_engine; it is closed when that engine is disposed.
_readers: weakref.WeakKeyDictionary[Engine, _SQLiteReader] = weakref.WeakKeyDictionary()


def _close_reader(engine: Engine) -> None:
    reader = _readers.get(engine)
    if reader is not None:
        reader.close()


def _sqlite_reader_pragmas(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")  # reads only: a write through this connection fails
    cursor.close()


def _sqlite_quick_pragmas(dbapi_connection: Any, record: Any) -> None:
    _sqlite_reader_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")  # on the event loop: never wait for a lock (see fetch_all)
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
