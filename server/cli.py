"""The `kith` command."""

from __future__ import annotations

import asyncio
import getpass
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from server.archive.commands import export_command, import_command
from server.commands import settings_of, with_session
from server.federation.move_commands import move_command, move_status_command
from server.settings import Settings, is_example_secret
from server.worker_process import WorkerBeside, run_worker

T = TypeVar("T")


@click.group()
@click.option("--config", type=click.Path(dir_okay=False), help="Path to kith.toml (or KITH_CONFIG).")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """Kith: a federated knowledge commons for communities."""
    # Everything Kith writes (the database, its journal, the index, the secret key) is the instance's alone,
    # from the moment it exists: no window in which another account of the machine could read it.
    os.umask(0o077)
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


@main.group()
def community() -> None:
    """Export a community to an archive, import one, move one to its new home."""
    # An import's entries are announced and indexed: the app's module subscribes federation and search to changes.
    import server.app  # noqa: F401


community.add_command(export_command)
community.add_command(import_command)
community.add_command(move_command)
community.add_command(move_status_command)


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Bring the database schema to the latest revision."""
    from server import migrate as migrations

    settings = settings_of(ctx)
    migrations.upgrade(settings.database_url)
    click.echo(f"database at revision {migrations.head_revision()}", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(min=1),
    help="Web processes; with more than one the background worker runs once, in a process of its own.",
)  # fmt: skip
@click.option("--no-worker", is_flag=True, help="Serve only; run `kith worker` separately.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int, no_worker: bool) -> None:
    """Serve the web UI, the API and the federation endpoints."""
    import uvicorn

    settings = settings_of(ctx)
    _refuse_example_secrets(settings)
    _bootstrap_admin(settings)
    click.echo(f"Kith {settings.instance_name!r} serving on {settings.base_url}", err=True)
    # X-Forwarded-For (its rightmost hop that is not a trusted proxy) and X-Forwarded-Proto are believed only
    # from the proxies the operator names: from anyone else they would let a client pick its own address.
    options: dict[str, Any] = dict(
        host=host, port=port, log_level="warning", access_log=False, lifespan="on",
        proxy_headers=True, forwarded_allow_ips=list(settings.trusted_proxies),
    )  # fmt: skip
    if workers == 1:
        from server.app import create_app

        uvicorn.run(create_app(settings, run_worker=not no_worker), **options)
        return
    # Each web process builds its app from the same settings (`server.app.web_app`, imported by name in a spawned
    # process), and none runs the worker: its queues are claimed safely by any number of workers, but one is all
    # the web processes need, and N of them would only contend for the database (on SQLite, for its one writer).
    from server.metrics import share_across_processes

    if ctx.obj.get("config"):
        os.environ["KITH_CONFIG"] = str(ctx.obj["config"])
    share_across_processes(settings.data_dir)  # a scrape answered by any web process counts them all
    beside = None if no_worker else WorkerBeside(settings)
    try:
        uvicorn.run("server.app:web_app", factory=True, workers=workers, **options)
    finally:
        if beside is not None:
            beside.stop()


def _refuse_example_secrets(settings: Settings) -> None:
    for name, value in (
        ("secret_key (KITH_SECRET_KEY)", settings.secret_key),
        ("KITH_ADMIN_PASSWORD", os.environ.get("KITH_ADMIN_PASSWORD", "")),
    ):
        if is_example_secret(value):
            raise click.ClickException(
                f"{name} is an example value from Kith's documentation, known to anyone; set one of your own, "
                "for example: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )


def _bootstrap_admin(settings: Settings) -> None:
    """On first start, make an admin so a newcomer can sign in and mint tokens at once."""
    from server.accounts.service import AccountService
    from server.errors import ProblemError

    async def work(session: AsyncSession) -> str | None:
        service = AccountService(session, settings)
        if await service.has_users():
            return None
        password = os.environ.get("KITH_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        try:
            await service.create_user(
                "admin", password, is_admin=True, display_name="Administrator", allow_reserved=True
            )
        except ProblemError as exc:
            raise click.ClickException(f"KITH_ADMIN_PASSWORD: {exc.detail}") from exc
        return password

    password = with_session(settings, work)
    if password:
        click.echo(
            f"\nCreated the instance admin.\n  URL:      {settings.base_url}/login\n"
            f"  username: admin\n  password: {password}\n(shown once; change it after signing in)\n",
            err=True,
        )


@main.group()
def user() -> None:
    """Manage local accounts."""


@user.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Make the user an instance admin.")
@click.option("--display-name", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def user_create(ctx: click.Context, username: str, admin: bool, display_name: str, password_stdin: bool) -> None:
    """Create a local user."""
    from server.accounts.service import AccountService

    settings = settings_of(ctx)
    password = _read_password(password_stdin)
    _run_service(
        settings,
        lambda s: AccountService(s, settings).create_user(
            username, password, is_admin=admin, display_name=display_name
        ),
    )
    click.echo(f"created user {username.lower()}{' (admin)' if admin else ''}", err=True)


@user.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def user_set_password(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Give a local user a new password; every browser signed in as them is signed out (API tokens stay)."""
    from server.accounts.passwords import PasswordService
    from server.accounts.service import AccountService

    settings = settings_of(ctx)
    password = _read_password(password_stdin)

    async def work(session: AsyncSession) -> None:
        user_row = await AccountService(session, settings).local_user(username)
        if user_row is None:
            raise click.ClickException(f"no local user named {username!r}")
        await PasswordService(session).set_by_operator(user_row, password)

    _run_service(settings, work)
    click.echo(f"password set for {username.lower()}; their web sessions are signed out", err=True)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        raise click.ClickException("the passwords differ")
    return password


@main.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.option("--user", "username", required=True)
@click.option("--scope", type=click.Choice(["read", "write", "admin"]), default="write", show_default=True)
@click.option("--name", default="cli", show_default=True)
@click.option("--expires-in-days", type=click.IntRange(1, 36500), help="Refuse the token after this many days.")
@click.pass_context
def token_create(ctx: click.Context, username: str, scope: str, name: str, expires_in_days: int | None) -> None:
    """Print a new token's secret, alone, on standard output (it is shown only once)."""
    from datetime import UTC, datetime, timedelta

    from server.accounts.service import AccountService

    settings = settings_of(ctx)
    expires_at = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None

    async def work(session: AsyncSession) -> str:
        service = AccountService(session, settings)
        user_row = await service.local_user(username)
        if user_row is None:
            raise click.ClickException(f"no local user named {username!r}")
        if scope == "admin" and not user_row.is_admin:
            raise click.ClickException(f"{username} is not an instance admin; use --scope write")
        return (await service.create_token(user_row, name, scope, expires_at)).secret

    click.echo(_run_service(settings, work))


def _run_service(settings: Settings, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    from server.errors import ProblemError

    try:
        return with_session(settings, work)
    except ProblemError as exc:
        raise click.ClickException(exc.detail) from exc


@main.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run the background worker alone (pair with `kith serve --no-worker`); any number may run at once."""
    run_worker(settings_of(ctx))


@main.command()
@click.pass_context
def reindex(ctx: click.Context) -> None:
    """Rebuild the search index from the database; search keeps answering from the old one meanwhile."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy import func, select

    from server.db import create_engine, create_sessionmaker
    from server.models import Guide, MentorshipOffer
    from server.search.backend import rebuild
    from server.settings import ConfigError

    settings = settings_of(ctx)

    async def run() -> int:
        engine = create_engine(settings.database_url)
        sessions = create_sessionmaker(engine)
        try:
            async with sessions() as session:
                total = 0
                for model in (Guide, MentorshipOffer):
                    total += (
                        await session.scalar(select(func.count()).select_from(model).where(model.deleted_at.is_(None)))
                        or 0
                    )
            columns = (TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns) as bar:
                task = bar.add_task("reindex", total=total)
                return await rebuild(settings, sessions, lambda n: bar.update(task, completed=n))
        finally:
            await engine.dispose()

    try:
        count = asyncio.run(run())
    except ConfigError as exc:  # a [search] language the database does not have
        raise click.ClickException(str(exc)) from exc
    click.echo(f"search index rebuilt with {count} entries", err=True)


@main.group()
def peers() -> None:
    """Federation peers: follow, backfill, inspect, purge."""


@peers.command("sync")
@click.option("--host", help="Only this peer.")
@click.pass_context
def peers_sync(ctx: click.Context, host: str | None) -> None:
    """Follow the configured peers, unfollow removed ones, and backfill each followed peer's history."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from sqlalchemy import select

    from server.federation.fetch import FetchError, instance_fetcher, make_client
    from server.federation.peers import backfill, sync_peers
    from server.models import Peer

    settings = settings_of(ctx)

    async def work(session: AsyncSession) -> None:
        client = make_client(settings)
        try:
            fetcher = await instance_fetcher(session, settings, client)
            await sync_peers(session, settings, fetcher, only=host)
            rows = await session.scalars(select(Peer).where(Peer.host.in_(settings.peer_hosts)))
            for peer in list(rows):
                if host and peer.host != host:
                    continue
                with Progress(TextColumn(f"backfilling {peer.host}"), BarColumn(), MofNCompleteColumn()) as bar:
                    task = bar.add_task("backfill", total=None)
                    try:
                        received = await backfill(
                            session, peer, fetcher, full=True, progress=lambda n, task=task: bar.advance(task, n)
                        )
                    except FetchError as exc:
                        click.echo(f"{peer.host}: {exc.reason}", err=True)
                        continue
                click.echo(f"{peer.host}: {peer.state}; {received} new activities received", err=True)
        finally:
            await client.aclose()

    with_session(settings, work)


@peers.command("status")
@click.pass_context
def peers_status(ctx: click.Context) -> None:
    """Each peer's state, last success, last error, queue depth, entries received and lag."""
    from rich.console import Console
    from rich.table import Table

    from server.federation.peers import peer_statuses

    settings = settings_of(ctx)
    statuses = with_session(settings, peer_statuses)
    table = Table("peer", "state", "follows us", "last success", "last error", "queue", "received", "lag (s)")
    for s in statuses:
        table.add_row(
            s.host, s.state, "yes" if s.followed_back else "no",
            s.last_success_at.strftime("%Y-%m-%d %H:%M:%S") if s.last_success_at else "-",
            (s.last_error or "-")[:60], str(s.queue_depth), str(s.entries_received), f"{s.lag_seconds:.0f}",
        )  # fmt: skip
    Console(width=160).print(table)


@peers.command("purge")
@click.argument("host")
@click.pass_context
def peers_purge(ctx: click.Context, host: str) -> None:
    """Delete everything a former peer brought in."""
    from server.federation.peers import purge

    settings = settings_of(ctx)
    host = host.lower()
    if host in settings.peer_hosts:
        raise click.ClickException(f"{host} is still in peers; remove it from the config first")
    removed = with_session(settings, lambda session: purge(session, settings, host))
    click.echo(f"purged {removed} entries from {host}", err=True)


if __name__ == "__main__":
    main()
