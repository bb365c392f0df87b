from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

Scope = Literal["read", "write", "admin"]
Role = Literal["member", "moderator"]


class Roles(msgspec.Struct):
    instance: Literal["admin"] | None
    communities: dict[str, Role]


class Me(msgspec.Struct):
    username: str
    display_name: str
    roles: Roles


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    scope: Scope = "read"
    # With a timezone, so there is no doubt when it lapses; none: until revoked.
    expires_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


class Token(msgspec.Struct):
    id: UUID
    name: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class TokenList(msgspec.Struct):
    items: list[Token]


class TokenCreated(msgspec.Struct):
    id: UUID
    name: str
    scope: Scope
    secret: str
    created_at: datetime
    expires_at: datetime | None


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    current_password: str
    new_password: str


class PersonRef(msgspec.Struct):
    username: str
    display_name: str
    uri: str
    instance: str


class RemotePerson(msgspec.Struct, frozen=True):
    """A person of another instance, as a peer describes them: stored to attribute their entries, never to sign in."""

    uri: str
    instance: str
    username: str
    display_name: str = ""
    url: str | None = None
