"""What every `kith` command needs: the instance's settings, and a database session to work in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from server.settings import ConfigError, Settings, load_settings

T = TypeVar("T")


def settings_of(ctx: click.Context) -> Settings:
    """The settings from the `--config` of the root command (or KITH_CONFIG and the environment)."""
    try:
        return load_settings((ctx.find_root().obj or {}).get("config"))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` with a session of its own, on an engine made and disposed of for it."""
    from server.db import create_engine, create_sessionmaker

    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())
