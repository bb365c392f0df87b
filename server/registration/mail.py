"""The mail that confirms an address given at sign-up, and the link in it."""

from __future__ import annotations

import hashlib
import hmac
import logging
from email.message import EmailMessage
from uuid import UUID

import aiosmtplib

from server.settings import Settings

log = logging.getLogger("kith.mail")
SEND_TIMEOUT_SECONDS = 20


def mail_configured(settings: Settings) -> bool:
    return bool(settings.smtp_host)


def _signature(settings: Settings, user_id: UUID, email: str) -> str:
    # Bound to the address: a link mailed for an old address confirms nothing once the address changes.
    key = hashlib.sha256(f"kith:confirm-email:{settings.secret_key}".encode()).digest()
    return hmac.new(key, f"{user_id.hex}:{email.lower()}".encode(), hashlib.sha256).hexdigest()


def confirmation_token(settings: Settings, user_id: UUID, email: str) -> str:
    return f"{user_id.hex}.{_signature(settings, user_id, email)}"


def token_user(token: str) -> UUID | None:
    """The account a token claims to be for; whether it is genuine needs the address (`token_matches`)."""
    user_hex, _, _signature_part = token.partition(".")
    try:
        return UUID(hex=user_hex)
    except ValueError:
        return None


def token_matches(settings: Settings, token: str, user_id: UUID, email: str) -> bool:
    expected = confirmation_token(settings, user_id, email)
    return hmac.compare_digest(expected.encode(), token.encode())


async def send_confirmation(settings: Settings, user_id: UUID, username: str, email: str) -> bool:
    """Mail the confirmation link. A mail server that is down does not undo the sign-up: the address simply
    stays unconfirmed, and the failure is logged for the operator."""
    link = f"{settings.base_url}/confirm-email/{confirmation_token(settings, user_id, email)}"
    message = EmailMessage()
    message["From"] = settings.mail_from or f"noreply@{settings.host.split(':')[0]}"
    message["To"] = email
    message["Subject"] = f"Confirm your email address for {settings.instance_name}"
    message.set_content(
        f"Hello {username},\n\nyou gave this address when you signed up on {settings.instance_name} "
        f"({settings.base_url}). Open this link to confirm it:\n\n{link}\n\n"
        "If it was not you, ignore this mail: nothing else will be sent.\n"
    )
    try:
        await aiosmtplib.send(
            message, hostname=settings.smtp_host, port=settings.smtp_port, timeout=SEND_TIMEOUT_SECONDS
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        log.warning("could not send the confirmation mail for %s: %s", username, exc)
        return False
    return True
