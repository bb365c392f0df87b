"""Straight-to-the-database helpers for account tests: what a person could not do through the API."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from server.accounts.service import AccountService
from server.commands import with_session
from server.settings import Settings

T = TypeVar("T")


def password_works(settings: Settings, username: str, password: str) -> bool:
    async def work(session: AsyncSession) -> bool:
        return await AccountService(session, settings).authenticate(username, password) is not None

    return with_session(settings, work)


def execute(settings: Settings, statement: Executable) -> None:
    async def work(session: AsyncSession) -> None:
        await session.execute(statement)
        await session.commit()

    with_session(settings, work)
