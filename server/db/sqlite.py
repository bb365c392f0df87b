"""How Kith's SQLite connections are set up: the writer's pragmas, and the read-only ones of `fetch_all`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the worker write while pages read; busy_timeout turns lock contention into waiting.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def reader_pragmas(dbapi_connection: Any, record: Any) -> None:
    sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")  # reads only: a write through this connection fails
    cursor.close()


def quick_pragmas(dbapi_connection: Any, record: Any) -> None:
    reader_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")  # on the event loop: never wait for a lock (see fetch_all)
    cursor.close()


def is_file(url: URL) -> bool:
    """A SQLite URL naming a file that other connections can open too (not `:memory:`)."""
    return bool(url.database) and url.database != ":memory:" and url.query.get("mode") != "memory"
