"""The confirmation mail for an address given at sign-up, through a local SMTP server (aiosmtpd), never a real one."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from email import message_from_bytes
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from litestar.testing import TestClient
from sqlalchemy import select

from server.app import create_app
from server.db import create_engine, create_sessionmaker
from server.models import User
from server.settings import Settings
from tests.support.server import free_port

PASSWORD = "a long passphrase"


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def _confirmed_at(settings: Settings, username: str):  # type: ignore[no-untyped-def]
    async def read():  # type: ignore[no-untyped-def]
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                return await session.scalar(select(User.email_confirmed_at).where(User.username == username))
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_an_address_is_confirmed_through_the_mailed_link(settings: Settings, smtp):
    inbox, port = smtp
    mailing = replace(settings, registration="open", smtp_host="127.0.0.1", smtp_port=port, mail_from="kith@test")
    username = f"mail-{uuid.uuid4().hex[:8]}"
    with TestClient(app=create_app(mailing), base_url=settings.base_url) as client:
        body = {"username": username, "password": PASSWORD, "email": "wren@example.org"}
        response = client.post("/api/v1/accounts", json=body)
        assert response.status_code == 201 and response.json()["email_confirmed"] is False
        assert len(inbox.messages) == 1
        mail = inbox.messages[0]
        assert mail["To"] == "wren@example.org" and mail["From"] == "kith@test"
        link = re.search(r"http://127\.0\.0\.1:8000(/confirm-email/\S+)", mail.get_payload(decode=True).decode())
        assert link is not None
        path = link.group(1)

        forged = path[:-4] + ("0000" if not path.endswith("0000") else "1111")
        assert client.get(forged).status_code == 404
        assert client.get("/confirm-email/not-a-token").status_code == 404
        assert _confirmed_at(settings, username) is None

        confirmed = client.get(path)
        assert confirmed.status_code == 200 and "Email confirmed" in confirmed.text
        assert _confirmed_at(settings, username) is not None


def test_no_mail_without_an_address_or_without_a_mail_server(settings: Settings, smtp):
    inbox, port = smtp
    mailing = replace(settings, registration="open", smtp_host="127.0.0.1", smtp_port=port)
    with TestClient(app=create_app(mailing), base_url=settings.base_url) as client:
        body = {"username": f"mail-{uuid.uuid4().hex[:8]}", "password": PASSWORD}
        assert client.post("/api/v1/accounts", json=body).status_code == 201
    # Mail not configured: the address is kept, unconfirmed, and nothing is sent.
    with TestClient(app=create_app(replace(settings, registration="open")), base_url=settings.base_url) as client:
        body = {"username": f"mail-{uuid.uuid4().hex[:8]}", "password": PASSWORD, "email": "ash@example.org"}
        response = client.post("/api/v1/accounts", json=body)
        assert response.status_code == 201 and response.json()["email"] == "ash@example.org"
    assert inbox.messages == []


def test_a_mail_server_that_is_down_does_not_undo_the_sign_up(settings: Settings):
    down = replace(settings, registration="open", smtp_host="127.0.0.1", smtp_port=free_port())
    username = f"mail-{uuid.uuid4().hex[:8]}"
    with TestClient(app=create_app(down), base_url=settings.base_url) as client:
        body = {"username": username, "password": PASSWORD, "email": "oak@example.org"}
        response = client.post("/api/v1/accounts", json=body)
        assert response.status_code == 201 and response.json()["email_confirmed"] is False
