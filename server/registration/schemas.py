from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

Mode = Literal["closed", "invite", "approval", "open"]
InviteState = Literal["active", "expired", "used_up", "revoked"]


class AccountCreate(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    display_name: Annotated[str, msgspec.Meta(max_length=100)] = ""
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    # Needed in approval mode: a few words for the admins who decide.
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    # The code of an invite link (the last part of /join/{code}); needed in invite mode.
    invite: Annotated[str, msgspec.Meta(max_length=128)] | None = None


class Account(msgspec.Struct):
    id: UUID
    username: str
    display_name: str
    state: Literal["active", "pending"]
    email: str | None
    email_confirmed: bool
    communities: list[str]
    created_at: datetime


class PendingAccount(msgspec.Struct):
    username: str
    display_name: str
    email: str | None
    reason: str
    created_at: datetime


class PendingList(msgspec.Struct):
    items: list[PendingAccount]


class InviteCreate(msgspec.Struct, forbid_unknown_fields=True):
    # A local community's slug: the new person also becomes its member. Only admins make invites without one.
    community: str | None = None
    max_uses: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 7


class Invite(msgspec.Struct):
    id: UUID
    community: str | None
    max_uses: int
    uses: int
    state: InviteState
    expires_at: datetime
    created_at: datetime
    created_by: str


class InviteCreated(msgspec.Struct):
    """The link is shown here only: like a token's secret, the code is stored as a hash."""

    id: UUID
    code: str
    url: str
    community: str | None
    max_uses: int
    uses: int
    state: InviteState
    expires_at: datetime
    created_at: datetime
    created_by: str


class InviteList(msgspec.Struct):
    items: list[Invite]
