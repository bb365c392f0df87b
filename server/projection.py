"""A read's projection: the columns it selects, each under a name, and the named tuple its rows are read as.

Decoders read a row by those names, so a column added, dropped or moved touches no decoder but the ones that
use it. The names are carried here rather than taken from SQLAlchemy's Row because `server.db.fetch_all` gives
plain tuples on SQLite (building a Row per row costs more than the read).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement


class Projection:
    """Named columns in the order they are selected; `named(row)` reads a row of them by name."""

    __slots__ = ("_by_name", "columns", "named", "names")

    def __init__(self, name: str, columns: Mapping[str, ColumnElement[Any]]) -> None:
        self._by_name = dict(columns)
        self.names = tuple(columns)
        # Labelled as they are named, so the statement's own result keys are these names too.
        self.columns = tuple(column.label(key) for key, column in columns.items())
        # A named tuple shares the row's storage layout: reading one is a tuple copy, then attribute reads.
        self.named: Callable[[Sequence[Any]], Any] = namedtuple(name, self.names)._make  # type: ignore[misc]

    def only(self, name: str, *names: str) -> Projection:
        """The same columns, fewer of them, for a read that shows less (a card needs no body)."""
        return Projection(name, {key: self._by_name[key] for key in names})

    def without(self, name: str, *names: str) -> Projection:
        return Projection(name, {key: column for key, column in self._by_name.items() if key not in names})
