"""`kith community export|import` (grouped in server/cli.py): a community's archive from the command line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from server.commands import settings_of, with_session
from server.settings import Settings

T = TypeVar("T")


@click.command("export")
@click.argument("slug")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The archive to write (.tar.gz).")
@click.pass_context
def export_command(ctx: click.Context, slug: str, output: str) -> None:
    """Write a local community, with its guides' whole history, its offers and members, to an archive."""
    from server.archive.service import ArchiveService

    settings = settings_of(ctx)
    target = Path(output)
    partial = target.with_name(f".{target.name}.partial")

    async def work(session: AsyncSession, out: IO[bytes]) -> None:
        service = ArchiveService(session, settings)
        async for chunk in service.export((await service.exportable_by_operator(slug)).id):
            out.write(chunk)

    try:
        with partial.open("wb") as out:
            _run(settings, lambda session: work(session, out))
        partial.replace(target)  # a failed export leaves no archive that looks whole
    finally:
        partial.unlink(missing_ok=True)
    click.echo(f"exported {slug} to {target}", err=True)


@click.command("import")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False))
@click.option("--slug", help="Import the community under this slug instead of its own.")
@click.pass_context
def import_command(ctx: click.Context, archive: str, slug: str | None) -> None:
    """Recreate a community from an archive: all of it, or nothing when the archive is damaged."""
    from server.archive.service import ArchiveService

    settings = settings_of(ctx)
    with open(archive, "rb") as source:
        imported = _run(settings, lambda session: ArchiveService(session, settings).import_archive(source, slug))
    click.echo(f"imported community {imported.slug}", err=True)


def _run(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """`work` with a session of its own; a refusal is an error message and exit status 1."""
    from server.errors import ProblemError

    try:
        return with_session(settings, work)
    except ProblemError as exc:
        raise click.ClickException(exc.detail) from exc
