"""Key pairs of local actors, made on first use and kept in actor_keys."""

from __future__ import annotations

import asyncio

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.federation.signatures import generate_keypair
from server.models import ActorKey


def key_id_for(actor_uri: str) -> str:
    return f"{actor_uri}#main-key"


async def local_key(session: AsyncSession, actor_uri: str) -> ActorKey:
    key_id = key_id_for(actor_uri)
    key = await session.scalar(select(ActorKey).where(ActorKey.key_id == key_id))
    if key is not None:
        return key
    # RSA generation takes tens of milliseconds: keep it off the event loop.
    private_pem, public_pem = await asyncio.to_thread(generate_keypair)
    key = ActorKey(key_id=key_id, owner_uri=actor_uri, public_key_pem=public_pem, private_key_pem=private_pem)
    session.add(key)
    try:
        await session.commit()
    except IntegrityError:  # another request made it first; theirs is as good as ours
        await session.rollback()
        key = await session.scalar(select(ActorKey).where(ActorKey.key_id == key_id))
        assert key is not None
    return key


def public_key_document(actor_uri: str, key: ActorKey) -> dict[str, str]:
    return {"id": key.key_id, "owner": actor_uri, "publicKeyPem": key.public_key_pem}


# Peers' RSA keys below this are refused: they are cheap to break.
MIN_RSA_BITS = 2048


def strong_enough(public_pem: str) -> bool:
    """Whether a peer's public key may be trusted: an RSA key of at least MIN_RSA_BITS, or another kind the
    signature check knows; a PEM that does not load is not a key."""
    try:
        key = serialization.load_pem_public_key(public_pem.encode())
    except (ValueError, TypeError):
        return False
    return not isinstance(key, rsa.RSAPublicKey) or key.key_size >= MIN_RSA_BITS
