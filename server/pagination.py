"""Opaque keyset cursors over (created_at, id), newest first, and the Link header that goes with them."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from litestar import Request
from sqlalchemy import Select, and_, bindparam, or_

from server.errors import invalid

T = TypeVar("T")
MAX_LIMIT = 100


def encode_cursor(created_at: datetime, id_: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(id_)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, id_ = json.loads(raw)
        return datetime.fromisoformat(created_at), uuid.UUID(id_)
    except (ValueError, TypeError) as exc:
        raise invalid("cursor", "is not a cursor this server issued") from exc


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid("limit", f"must be between 1 and {MAX_LIMIT}")
    return limit


def keyset(query: Select[Any], model: Any, limit: int, cursor: str | None) -> Select[Any]:
    """Newest first with a stable tie-break on id; fetch one extra row to know if there is more."""
    if cursor:
        created_at, id_ = decode_cursor(cursor)
        query = query.where(or_(model.created_at < created_at, and_(model.created_at == created_at, model.id < id_)))
    return query.order_by(model.created_at.desc(), model.id.desc()).limit(check_limit(limit) + 1)


def keyset_bound(query: Select[Any], model: Any, *, after: bool) -> Select[Any]:
    """keyset() for a statement built once and run many times: the cursor and the limit are the bound
    parameters `after_created_at`, `after_id` (with `after=True` only) and `limit`; see keyset_params."""
    if after:
        created_at, id_ = bindparam("after_created_at"), bindparam("after_id")
        query = query.where(or_(model.created_at < created_at, and_(model.created_at == created_at, model.id < id_)))
    return query.order_by(model.created_at.desc(), model.id.desc()).limit(bindparam("limit"))


def keyset_params(limit: int, cursor: str | None) -> dict[str, Any]:
    """The parameters of a keyset_bound statement (made with `after=bool(cursor)`), one extra row included."""
    params: dict[str, Any] = {}
    if cursor:
        params["after_created_at"], params["after_id"] = decode_cursor(cursor)
    params["limit"] = check_limit(limit) + 1
    return params


def split_page(rows: list[T], limit: int) -> tuple[list[T], str | None]:
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last.created_at, last.id)  # type: ignore[attr-defined]


def link_header(request: Request[Any, Any, Any], base_url: str, next_cursor: str | None) -> dict[str, str]:
    if next_cursor is None:
        return {}
    # From the query string itself, so the parameters keep the order the client sent them in.
    params = [(k, v) for k, v in parse_qsl(request.url.query, keep_blank_values=True) if k != "cursor"]
    params.append(("cursor", next_cursor))
    return {"Link": f'<{base_url}{request.url.path}?{urlencode(params)}>; rel="next"'}
