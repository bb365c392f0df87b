"""Password and token hashing."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from functools import lru_cache
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

SCOPES = ("read", "write", "admin")


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token_secret() -> str:
    return "kith_" + secrets.token_urlsafe(32)


def hash_token(secret: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough and keeps lookups cheap.
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is acting, and what the credential they used allows."""

    user_id: UUID
    username: str
    user_is_admin: bool
    scope: str  # read | write | admin

    @property
    def is_admin(self) -> bool:
        """Instance-admin powers need both an admin user and an admin-scoped credential."""
        return self.user_is_admin and self.scope == "admin"

    @property
    def can_write(self) -> bool:
        return self.scope in ("write", "admin")
