"""`one_of(column, name)`: `column IN (the list bound to name)`, written so that it compiles once.

An expanding IN is rendered at execution, one parameter per item, so `fetch_all` cannot keep its compiled form
and each read goes through SQLAlchemy's execute. On PostgreSQL the same test is `column = ANY($n)` with the list
bound as one array: one statement whatever the list's length, prepared once per connection. SQLite has no arrays
and keeps the expanding IN.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal


class OneOf(ColumnElement[bool]):
    inherit_cache = True
    type = Boolean()
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement), ("name", InternalTraversal.dp_string)]

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.name = name


def one_of(column: Any, name: str) -> OneOf:
    return OneOf(column, name)


@compiles(OneOf)
def _expanding_in(element: OneOf, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column.in_(bindparam(element.name, expanding=True)), **kw)  # type: ignore[no-any-return]


@compiles(OneOf, "postgresql")
def _any_of_array(element: OneOf, compiler: Any, **kw: Any) -> str:
    array = bindparam(element.name, type_=ARRAY(element.column.type))
    return compiler.process(element.column == any_(array), **kw)  # type: ignore[no-any-return]
