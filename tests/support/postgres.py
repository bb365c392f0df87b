"""A throwaway PostgreSQL database per test run."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from server.settings import normalize_database_url

SERVER_URL = os.environ.get("KITH_TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _execute(sql: str) -> None:
    connection = await asyncpg.connect(_plain(SERVER_URL), timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _run(sql: str) -> None:
    # In a thread of its own: Playwright's sync API keeps an event loop running in the test's thread, where
    # asyncio.run cannot start another.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _execute(sql)).result()


@contextmanager
def fresh_database() -> Iterator[str]:
    name = f"kith_test_{uuid.uuid4().hex[:12]}"
    _run(f'CREATE DATABASE "{name}"')
    try:
        yield normalize_database_url(_with_database(_plain(SERVER_URL), name))
    finally:
        _run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database_for(backend: str) -> Iterator[str | None]:
    """A fresh PostgreSQL database for "postgresql"; None for "sqlite", where a server makes its own file."""
    if backend == "sqlite":
        yield None
        return
    with fresh_database() as url:
        yield url
