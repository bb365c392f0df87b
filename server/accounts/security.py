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


@lru_cache(maxsize=1)
def _stand_in_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` is the one hashed. Without a hash (no such account, or one that signs in elsewhere) the
    same work is done against a stand-in: a quick "no" would tell a guesser which names exist."""
    try:
        if not password_hash:
            _hasher().verify(_stand_in_hash(), password)
            return False
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
