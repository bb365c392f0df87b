"""`kith community move|move-status` (grouped in server/cli.py): moving a community from the command line."""

from __future__ import annotations

import uuid
from datetime import datetime

import click
from sqlalchemy.ext.asyncio import AsyncSession

from server.commands import settings_of, with_session

# The operator of the instance acts as its admin: the command line is theirs.
_OPERATOR_ID = uuid.UUID(int=0)


@click.command("move")
@click.argument("slug")
@click.argument("target")
@click.pass_context
def move_command(ctx: click.Context, slug: str, target: str) -> None:
    """Move the local community SLUG to TARGET, its Group on the new home (which must already list this
    community's Group in its also_known_as). The running server delivers the Move to every following peer."""
    from server.accounts.security import Principal
    from server.errors import ProblemError
    from server.federation.fetch import make_client
    from server.federation.move_out import start_move

    settings = settings_of(ctx)
    operator = Principal(user_id=_OPERATOR_ID, username="operator", user_is_admin=True, scope="admin")

    async def work(session: AsyncSession) -> str:
        client = make_client(settings)
        try:
            community = await start_move(session, settings, client, operator, slug, target)
        finally:
            await client.aclose()
        return community.uri

    try:
        uri = with_session(settings, work)
    except ProblemError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"moved {uri} to {target}; `kith community move-status {slug}` shows which peers have heard", err=True)


@click.command("move-status")
@click.argument("slug")
@click.pass_context
def move_status_command(ctx: click.Context, slug: str) -> None:
    """Where SLUG moved (or came from), and which peers the Move reached (on the old instance) or which have
    fetched the new home (on the new home)."""
    from rich.console import Console
    from rich.table import Table

    from server.communities.moving import MoveService
    from server.errors import ProblemError

    settings = settings_of(ctx)
    try:
        status = with_session(settings, lambda session: MoveService(session, settings).status(slug))
    except ProblemError as exc:
        raise click.ClickException(exc.detail) from exc
    console = Console(width=160)
    if status.moved_to:
        console.print(f"{slug} moved to {status.moved_to} on {_when(status.moved_at)}")
        console.print(
            f"entries: {status.entries_known} redirect to their new page; {status.entries_unknown} still unknown"
        )
    if status.moved_from:
        console.print(f"{slug} moved here from {status.moved_from} on {_when(status.arrived_at)}")
    if status.also_known_as and not status.moved_from:
        console.print(
            f"{slug} is linked to its old Group {', '.join(status.also_known_as)}; no Move has arrived here yet"
        )
    if not (status.moved_to or status.moved_from or status.also_known_as or status.peers):
        console.print(f"{slug} has not moved")
    # The old instance knows whom the Move reached; the new home, who has since fetched it.
    column = "notified" if status.moved_to else "acknowledged"
    table = Table("peer", column)
    for peer in status.peers:
        when = peer.notified_at if status.moved_to else peer.acknowledged_at
        table.add_row(peer.instance, _when(when) or "not yet")
    if status.peers:
        console.print(table)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""
