"""A SELECT compiled once for the reader's plain connections, and the rows it made, remembered."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Compiled, Dialect
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any]
# Rows remembered per statement and `into` (see `fetch_all`), then forgotten all at once: a page's rows are a
# few dozen, and each remembered row is about a kilobyte.
BUILT_ROWS = 4096


class Prepared:
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


@lru_cache(maxsize=512)
def prepare(statement: Select[Any], dialect: Dialect) -> Prepared | None:
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
    return Prepared(compiled, binds, list(statement.selected_columns))
