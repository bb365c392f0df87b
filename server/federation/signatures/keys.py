"""Keys: making and loading them, signing and verifying with them, and what a key id may name."""

from __future__ import annotations

import functools
from typing import cast
from urllib.parse import urldefrag

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from server.federation.signatures.message import SignatureError, host_of

PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def generate_keypair(bits: int = 2048) -> tuple[str, str]:
    """A new RSA key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM); tests make weaker ones to see
    them refused."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem.decode("ascii"), public_pem.decode("ascii")


# Parsing a PEM costs far more than signing with the key; every delivery signs.
@functools.lru_cache(maxsize=128)
def private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the signing key must be an RSA private key")
    return key


@functools.lru_cache(maxsize=1024)
def public_key(pem: str) -> PublicKey | None:
    """The key in `pem`, or None if it is not an RSA or Ed25519 public key."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return key if isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey) else None


def key_owner(key_id: str) -> str:
    """The actor URI a key id belongs to: the key id without its #fragment."""
    return urldefrag(key_id).url


def check_key_id(key_id: str) -> None:
    # The inbox decides whom to trust by the keyId's host; a keyId without one names nobody.
    try:
        host_of(key_id)
    except ValueError:
        raise SignatureError("the signature's keyId is not an http(s) URL") from None


_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_SHA512 = hashes.SHA512()
_PSS_SHA512_SIGN = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)
_PSS_SHA512_VERIFY = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=padding.PSS.AUTO)


def sign(key: rsa.RSAPrivateKey, alg: str, message: bytes) -> bytes:
    if alg == "rsa-v1_5-sha256":
        return key.sign(message, _PKCS1V15, _SHA256)
    if alg == "rsa-pss-sha512":
        return key.sign(message, _PSS_SHA512_SIGN, _SHA512)
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def verifies(key: PublicKey, alg: str, signature: bytes, message: bytes) -> bool:
    try:
        if _is_ed25519(type(key)):
            if alg != "ed25519":
                return False
            cast(ed25519.Ed25519PublicKey, key).verify(signature, message)
        elif alg == "rsa-v1_5-sha256":
            cast(rsa.RSAPublicKey, key).verify(signature, message, _PKCS1V15, _SHA256)
        elif alg == "rsa-pss-sha512":
            cast(rsa.RSAPublicKey, key).verify(signature, message, _PSS_SHA512_VERIFY, _SHA512)
        else:
            return False
    except InvalidSignature:
        return False
    return True


# isinstance() against cryptography's key classes goes through ABCMeta and costs about as much
# as the rest of a verification's bookkeeping; the answer depends on the class alone.
@functools.cache
def _is_ed25519(key_type: type) -> bool:
    return issubclass(key_type, ed25519.Ed25519PublicKey)


_BY_KEY_TYPE = ("rsa-v1_5-sha256", "rsa-pss-sha512", "ed25519")
# hs2019 (and an RFC 9421 signature without alg) leave the algorithm to the key; the
# fediverse signs those with RSASSA-PKCS1-v1_5 SHA-256, which is tried first.
_ALGORITHMS: dict[str | None, tuple[str, ...]] = {
    "rsa-sha256": ("rsa-v1_5-sha256",),
    "rsa-v1_5-sha256": ("rsa-v1_5-sha256",),
    "rsa-pss-sha512": ("rsa-pss-sha512",),
    "ed25519": ("ed25519",),
    "hs2019": _BY_KEY_TYPE,
    None: _BY_KEY_TYPE,
}


def algorithms(name: str | None) -> tuple[str, ...]:
    """The algorithms a signature labelled `name` may have been made with, most likely first."""
    found = _ALGORITHMS.get(name.lower() if name is not None else None)
    if found is None:
        raise SignatureError(f"unsupported signature algorithm {str(name)[:40]!r}")
    return found
