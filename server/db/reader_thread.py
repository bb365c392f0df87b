"""The reader thread of `fetch_all`: it runs the reads queued to it and settles each on its caller's loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from queue import SimpleQueue
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Engine

# (the caller's loop, the future to settle, what to run in the reader thread and its arguments)
Read = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


async def in_thread(queue: SimpleQueue[Read | None], run: Callable[..., Any], *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    queue.put((loop, future, run, args))
    return await future


class ReaderThread:
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


def serve(engine: Engine, queue: SimpleQueue[Read | None]) -> None:
    """The reader thread: run each queued read and hand its result or error back to the read's event loop."""
    thread = ReaderThread(engine)
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


def run_prepared(thread: ReaderThread, sql: str, arguments: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return run_sql(thread.connection(), sql, arguments)


def run_sql(connection: Any, sql: str, arguments: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    cursor = connection.cursor()
    try:
        return cursor.execute(sql, arguments).fetchall()  # type: ignore[no-any-return]
    finally:
        cursor.close()


def run_statement(thread: ReaderThread, statement: Select[Any], params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
    with thread.engine.connect() as connection:
        return connection.execute(statement, params).all()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(callback, *args)


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # a cancelled read's result is dropped
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
