"""Throughput of the guide API against a bare Litestar endpoint served the same way. A benchmark, not a test.

Starts Kith as `make run` does (one uvicorn worker, SQLite, background worker on) and seeds 20 communities and
10,000 guides: the first 500 through the API (timed, for guide creations/s), the rest through the service layer
in-process while the server is stopped (no HTTP, no token checks, no worker competing: about twice as fast).
After the restart it waits for the background worker to finish indexing them for search, so the measurements
do not share the server's CPU with it. Then, with 16 concurrent keep-alive connections, it sends a fixed number
of requests after a warm-up to:

  - GET /api/v1/guides?limit=20   (a page of guides)
  - GET /api/v1/guides/{id}       (one guide, cycling through 1,000 of them)
  - GET /bare                     (a one-route Litestar app under uvicorn with the same settings, in its own
                                   process, so the app's production routes stay untouched)

Each is measured twice: with httpx.AsyncClient, and with a minimal raw-socket HTTP/1.1 client. httpx costs
more CPU per request than the bare endpoint does, so against /bare it measures the client more than the server;
the raw client keeps the server the bottleneck, and the server's CPU use is printed so that can be checked.

Everything listens on and talks to 127.0.0.1 only; temp dirs and processes are removed on the way out.

    .venv/bin/python bench/api_list.py            # or: make bench
    .venv/bin/python bench/api_list.py --quick    # fewer guides and requests, for a smoke run
    .venv/bin/python bench/api_list.py --postgres --quick --workers 2   # a fresh PostgreSQL database, 2 web processes

With `--postgres` the server's database is a fresh one on 127.0.0.1:5432, dropped afterwards, and every line also
shows the CPU its PostgreSQL backends used per request. With `--workers N` Kith and the bare app both run N web
processes (Kith's background worker in a process of its own beside them), and a server's CPU is that of its
whole process tree.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make the project's `server` and `tests.support` importable

from tests.support import postgres  # noqa: E402
from tests.support.server import LOOPBACK, KithServer, free_port  # noqa: E402

# Issue 16's targets on PostgreSQL are lower: each read is a round trip to another process.
TARGETS = {"SQLite": {"list": 0.25, "single": 0.35}, "PostgreSQL": {"list": 0.15, "single": 0.25}}
CONCURRENCY = 16
READY_TIMEOUT = 20.0
INDEX_TIMEOUT = 900.0


@dataclass(frozen=True)
class Plan:
    communities: int = 20
    guides: int = 10_000
    api_creations: int = 500
    warmup: int = 300
    requests: int = 3_000
    single_ids: int = 1_000


QUICK = Plan(guides=1_000, api_creations=200, warmup=100, requests=500)


@dataclass(frozen=True)
class Result:
    name: str
    client: str
    requests: int
    seconds: float
    latencies: list[float]
    server_cpu: float | None  # cores the server's processes used while it was measured
    client_cpu: float  # cores this process (the load generator) used meanwhile
    database_cpu: float | None = None  # cores the server's PostgreSQL backends used meanwhile

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def server_ms(self) -> float | None:
        """Server CPU per request: unlike req/s, it barely moves when other work shares the machine."""
        return None if self.server_cpu is None else self.server_cpu / self.rate * 1000

    def line(self) -> str:
        p50 = statistics.median(self.latencies) * 1000
        p99 = statistics.quantiles(self.latencies, n=100)[98] * 1000
        server = f"{self.server_cpu:4.2f}" if self.server_cpu is not None else "   ?"
        per_request = f"{self.server_ms:5.2f}" if self.server_ms is not None else "    ?"
        database = "" if self.database_cpu is None else (
            f", database {self.database_cpu:4.2f} ({self.database_cpu / self.rate * 1000:5.2f} ms/req)"
        )  # fmt: skip
        return (
            f"  {self.name:<28} {self.rate:>6.0f} req/s   p50 {p50:5.1f} ms   p99 {p99:5.1f} ms   "
            f"CPU: server {server} ({per_request} ms/req), client {self.client_cpu:4.2f}{database}"
        )


# -- clients: one object per connection ---------------------------------------------------------------------


class Connection(Protocol):
    async def get(self, path: str) -> int: ...
    async def aclose(self) -> None: ...


class HttpxConnection:
    """One httpx.AsyncClient per connection: sixteen connections in one shared pool measured ~310 req/s
    against /bare on two cores (pool bookkeeping), sixteen one-connection clients ~900."""

    def __init__(self, base_url: str) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.client = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60.0, trust_env=False)

    async def get(self, path: str) -> int:
        return (await self.client.get(path)).status_code

    async def aclose(self) -> None:
        await self.client.aclose()


class RawConnection:
    """A keep-alive HTTP/1.1 GET over asyncio streams, reading just the status line and Content-Length."""

    def __init__(self, base_url: str) -> None:
        self.authority = base_url.removeprefix("http://")
        host, _, port = self.authority.partition(":")
        self.address = (host, int(port))
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> int:
        if self.streams is None:
            self.streams = await asyncio.open_connection(*self.address)
        reader, writer = self.streams
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.authority}\r\nAccept: */*\r\n\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        headers = dict(line.split(":", 1) for line in head.split("\r\n")[1:] if ":" in line)
        if "content-length" not in headers:
            raise RuntimeError(f"GET {path}: no Content-Length; the raw client reads only sized bodies")
        await reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").strip() == "close":
            await self.aclose()
        return int(head[9:12])

    async def aclose(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


CLIENTS: dict[str, Callable[[str], Connection]] = {"raw": RawConnection, "httpx": HttpxConnection}


# -- load generation ----------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a process and all its descendants (`kith serve --workers N`'s web processes and
    worker), from /proc (Linux); None where that is not available."""
    stats = {int(entry.name): _stat(int(entry.name)) for entry in Path("/proc").iterdir() if entry.name.isdigit()}
    children: dict[int, list[int]] = {}
    for child, fields in stats.items():
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(child)
    if stats.get(pid) is None:
        return None
    total, todo = 0, [pid]
    while todo:
        fields = stats.get(current := todo.pop())
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
            todo += children.get(current, [])
    return total / os.sysconf("SC_CLK_TCK")


class DatabaseCPU:
    """CPU time of the PostgreSQL backends serving one database (they run on this machine, on loopback)."""

    def __init__(self, database_url: str | None) -> None:
        self.url = database_url and database_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def seconds(self) -> float | None:
        if not self.url:
            return None
        import asyncpg

        connection = await asyncpg.connect(self.url)
        try:
            mine = connection.get_server_pid()
            rows = await connection.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        finally:
            await connection.close()
        total = 0
        for row in rows:
            if row["pid"] != mine and (fields := _stat(row["pid"])) is not None:
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")


async def drive(connections: Sequence[Connection], total: int, path_for: Callable[[int], str]) -> list[float]:
    """Send `total` GETs, the connections taking turns from one counter; every answer must be a 200."""
    counter = itertools.count()
    latencies: list[float] = []

    async def loop(connection: Connection) -> None:
        while (index := next(counter)) < total:
            path = path_for(index)
            started = time.perf_counter()
            status = await connection.get(path)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"GET {path}: {status}")

    await asyncio.gather(*(loop(connection) for connection in connections))
    return latencies


async def measure(
    name: str, client: str, base_url: str, pid: int, plan: Plan, path_for: Callable[[int], str],
    database: DatabaseCPU | None = None,
) -> Result:  # fmt: skip
    connections = [CLIENTS[client](base_url) for _ in range(CONCURRENCY)]
    database = database or DatabaseCPU(None)
    try:
        await drive(connections, plan.warmup, path_for)  # connections open, code paths and caches warm
        database_before = await database.seconds()
        cpu_before, client_before, started = cpu_seconds(pid), time.process_time(), time.perf_counter()
        latencies = await drive(connections, plan.requests, path_for)
        seconds, cpu_after, client_after = time.perf_counter() - started, cpu_seconds(pid), time.process_time()
        database_after = await database.seconds()
    finally:
        for connection in connections:
            await connection.aclose()
    server_cpu = (cpu_after - cpu_before) / seconds if cpu_before is not None and cpu_after is not None else None
    client_cpu = (client_after - client_before) / seconds
    database_cpu = None if database_before is None or database_after is None else (
        (database_after - database_before) / seconds
    )  # fmt: skip
    return Result(name, client, plan.requests, seconds, latencies, server_cpu, client_cpu, database_cpu)


# -- the bare endpoint --------------------------------------------------------------------------------------


def bare_app() -> Any:
    from litestar import Litestar, get

    @get("/bare", sync_to_thread=False)
    def bare() -> dict[str, str]:
        return {"status": "ok", "name": "bare"}

    return Litestar(route_handlers=[bare])


def serve_bare(port: int, workers: int = 1) -> None:
    """The uvicorn.run call of `kith serve`, so the baseline differs from Kith only by the app."""
    import uvicorn

    options: dict[str, Any] = dict(host=LOOPBACK, port=port, log_level="warning", access_log=False, lifespan="on")
    if workers == 1:
        uvicorn.run(bare_app(), **options)
    else:
        app_dir = str(Path(__file__).resolve().parent)
        uvicorn.run("api_list:bare_app", factory=True, workers=workers, app_dir=app_dir, **options)


@contextmanager
def bare_server(workers: int = 1) -> Iterator[tuple[str, int]]:
    """(base URL, pid) of the bare app running in a subprocess of this script."""
    port = free_port()
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(port), "--workers", str(workers)]
    process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL)
    base_url = f"http://{LOOPBACK}:{port}"
    try:
        _wait_for(f"{base_url}/bare", process)
        yield base_url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the bare server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {READY_TIMEOUT:.0f} s")


# -- seeding ------------------------------------------------------------------------------------------------


def guide_body(number: int) -> dict[str, object]:
    return {
        "title": f"Guide number {number}",
        "summary": "A seeded guide for the benchmark.",
        "body_markdown": f"# Guide {number}\n\nSome *markdown* with a [link](https://example.org/{number}).\n\n"
        "- one\n- two\n- three\n",
        "tags": ["bench", f"tag{number % 10}"],
    }


def community_of(number: int, plan: Plan) -> str:
    return f"bench-{number % plan.communities:02d}"


async def seed_through_api(
    server: KithServer, token: str, plan: Plan, body: Callable[[int], dict[str, object]] = guide_body
) -> float:
    """The communities, then the first guides with CONCURRENCY requests in flight; returns guide creations/s."""
    limits = httpx.Limits(max_connections=CONCURRENCY)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=f"{server.base_url}/api/v1", headers=headers, limits=limits, timeout=60.0, trust_env=False
    ) as api:
        for n in range(plan.communities):
            slug = community_of(n, plan)
            (await api.post("/communities", json={"slug": slug, "name": f"Bench {slug}"})).raise_for_status()
        counter = itertools.count()

        async def create() -> None:
            while (n := next(counter)) < plan.api_creations:
                (await api.post(f"/communities/{community_of(n, plan)}/guides", json=body(n))).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(create() for _ in range(CONCURRENCY)))
        return plan.api_creations / (time.perf_counter() - started)


async def seed_in_process(
    server: KithServer, token: str, plan: Plan, body: Callable[[int], dict[str, object]] = guide_body
) -> float:
    """The remaining guides through GuideService on the server's own database; returns creations/s."""
    import msgspec

    from server import app as _wiring  # noqa: F401  (the app's wiring: a local write's change has federation to go to)
    from server.accounts.service import AccountService
    from server.db import create_engine, create_sessionmaker
    from server.guides.schemas import GuideCreate
    from server.guides.service import GuideService
    from server.settings import load_settings

    settings = load_settings(env=server.env)
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            principal = await AccountService(session, settings).principal_for_token(token)
            assert principal is not None, "the admin token does not resolve"
            service = GuideService(session, settings)
            started = time.perf_counter()
            for n in range(plan.api_creations, plan.guides):
                data = msgspec.convert(body(n), GuideCreate)
                await service.create(principal, community_of(n, plan), data)
            return (plan.guides - plan.api_creations) / (time.perf_counter() - started)
    finally:
        await engine.dispose()


async def analyze(database_url: str | None) -> None:
    """Table statistics for PostgreSQL's planner, as autovacuum would have gathered them by now on a server that
    was not just seeded in one go."""
    if database_url:
        import asyncpg

        connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            await connection.execute("ANALYZE")
        finally:
            await connection.close()


async def wait_for_search_index(base_url: str, guides: int) -> float:
    """Wait until the background worker has indexed every guide, so indexing does not compete with the
    measurements for the server's one CPU; returns the seconds waited (at most INDEX_TIMEOUT)."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0, trust_env=False) as api:
        while time.monotonic() - started < INDEX_TIMEOUT:
            response = await api.get("/api/v1/search", params={"q": "bench", "type": "guide", "limit": 1})
            if response.status_code == 200 and response.json()["total"] >= guides:
                await asyncio.sleep(2)  # the worker deletes its finished jobs just after the index commit
                return time.monotonic() - started
            await asyncio.sleep(2)
    print(f"  warning: the search index was still catching up after {INDEX_TIMEOUT:.0f} s", flush=True)
    return time.monotonic() - started


async def guide_ids(base_url: str, count: int) -> list[str]:
    """The newest `count` published guides, by walking the list the way API clients do."""
    ids: list[str] = []
    params: dict[str, str | int] = {"limit": 100}
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0, trust_env=False) as api:
        while len(ids) < count:
            page = (await api.get("/api/v1/guides", params=params)).raise_for_status().json()
            ids += [item["id"] for item in page["items"]]
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
    return ids[:count]


# -- the run ------------------------------------------------------------------------------------------------


@contextmanager
def kith_server(use_postgres: bool, workers: int) -> Iterator[KithServer]:
    """Kith on SQLite in its data dir, or on a fresh PostgreSQL database dropped afterwards."""
    with (
        postgres.database_for("postgresql" if use_postgres else "sqlite") as url,
        KithServer(database_url=url, workers=workers) as server,
    ):
        where = "PostgreSQL" if url else f"SQLite in {server.data_dir}"
        print(f"Kith on {server.base_url}, {where}, {workers} web process(es)", flush=True)
        yield server


def backend_name(use_postgres: bool) -> str:
    return "PostgreSQL" if use_postgres else "SQLite"


async def run(plan: Plan, use_postgres: bool = False, workers: int = 1) -> None:
    with kith_server(use_postgres, workers) as server:
        database = DatabaseCPU(server.database_url if use_postgres else None)
        token = server.token()
        api_rate = await seed_through_api(server, token, plan)
        print(f"  {plan.api_creations} guides through the API: {api_rate:.0f} creations/s", flush=True)
        server.stop()  # seed the rest with nothing else touching the database
        local_rate = await seed_in_process(server, token, plan)
        print(f"  {plan.guides - plan.api_creations} more through the service layer: {local_rate:.0f}/s", flush=True)
        await analyze(server.database_url if use_postgres else None)
        server.start()
        assert server.pid is not None
        waited = await wait_for_search_index(server.base_url, plan.guides)
        print(f"  search index caught up {waited:.0f} s after the restart", flush=True)
        ids = await guide_ids(server.base_url, plan.single_ids)
        results = []
        for client in CLIENTS:
            results += [
                await measure("GET /api/v1/guides?limit=20", client, server.base_url, server.pid, plan,
                              lambda i: "/api/v1/guides?limit=20", database),
                await measure("GET /api/v1/guides/{id}", client, server.base_url, server.pid, plan,
                              lambda i: f"/api/v1/guides/{ids[i % len(ids)]}", database),
            ]  # fmt: skip
    with bare_server(workers) as (bare_url, bare_pid):
        for client in CLIENTS:
            results.append(await measure("GET /bare", client, bare_url, bare_pid, plan, lambda i: "/bare"))
    report(plan, results, api_rate, backend_name(use_postgres), workers)


def report(plan: Plan, results: Sequence[Result], api_rate: float, backend: str, workers: int) -> None:
    setup, targets = f"{backend}, {workers} uvicorn worker(s)", TARGETS[backend]
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\n{plan.requests} requests per endpoint after {plan.warmup} warm-up, {CONCURRENCY} connections, "
          f"{plan.guides} guides in {plan.communities} communities ({setup})")  # fmt: skip
    print(f"{os.cpu_count()} CPUs, load average {load} (other work on the machine skews the figures)")
    for client in CLIENTS:
        mine = {r.name: r for r in results if r.client == client}
        print(f"\n{client} client:")
        for result in mine.values():
            print(result.line())
        bare = mine["GET /bare"]
        for key, name in (("list", "GET /api/v1/guides?limit=20"), ("single", "GET /api/v1/guides/{id}")):
            ratio = mine[name].rate / bare.rate
            verdict = "ok" if ratio >= targets[key] else "MISSED"
            line = f"  {key:<6} / bare = {ratio:5.3f}   target >= {targets[key]:.2f}: {verdict}"
            if bare.server_ms is not None and mine[name].server_ms is not None:
                # What the ratio would be with each server owning a full core and a client that keeps up.
                line += f"   (by server CPU per request: {bare.server_ms / mine[name].server_ms:5.3f})"
            print(line)
    print(f"\nguide creations through the API: {api_rate:.0f}/s over {plan.api_creations}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 guides and 500 requests per endpoint")
    parser.add_argument("--postgres", action="store_true", help="run Kith on a fresh PostgreSQL database")
    parser.add_argument("--workers", type=int, default=1, help="web processes of Kith and of the bare app")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare, args.workers)
        return
    asyncio.run(run(QUICK if args.quick else Plan(), args.postgres, args.workers))


if __name__ == "__main__":
    main()
