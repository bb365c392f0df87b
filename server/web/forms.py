"""Form posts to the services' wire types, with errors a person can act on."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from litestar import Request

from server.errors import FieldError, ProblemError

T = TypeVar("T")
_PATH = re.compile(r"at `\$\.([a-z_]+)")


async def form_data(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()
    data = {key: value for key, value in form.items() if isinstance(value, str)}
    if any("\x00" in key or "\x00" in value for key, value in data.items()):
        # PostgreSQL cannot store it, and no one types it: say so instead of failing at the database.
        raise ProblemError(400, "The form contains a NUL character, which text here cannot hold.")
    return data


def labels(text: str) -> list[str]:
    """ "a, b,  c" -> ["a", "b", "c"]: how people type tags and topics."""
    return [part.strip() for part in text.split(",") if part.strip()]


def build(schema: type[T], data: dict[str, Any]) -> T:
    try:
        return msgspec.convert(data, schema)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _PATH.search(message)
        field = match.group(1) if match else "form"
        readable = message.split(" - at ")[0]
        raise ProblemError(422, f"{field}: {readable}", errors=[FieldError(field, readable)]) from exc


def field_errors(exc: ProblemError) -> dict[str, str]:
    """Errors by field name, for showing next to the inputs; anything else goes under "form"."""
    if exc.errors:
        return {error.field: error.message for error in exc.errors}
    return {"form": exc.detail}
