"""Throughput of the HTML pages against a bare Litestar endpoint served the same way. A benchmark, not a test.

Starts Kith as `make run` does (`kith migrate`, then `kith serve`: one uvicorn worker, SQLite, background
worker on) and seeds 20 communities and 10,000 guides, by the fastest path measured: the communities and
the first 500 guides through the API (timed, for guide creations/s), the rest through the service layer
in-process while the server is stopped (timed too; no HTTP, no token checks, no worker competing). After
the restart it waits for the background worker to finish indexing them for search, so that indexing does
not share the server's CPU with the measurements. Then, with 16 concurrent keep-alive connections sending
a browser's Accept header (`text/html,...`) and keeping the cookies they are given, as a returning
anonymous visitor does, it sends a fixed number of requests after a warm-up to:

  - GET /                               (the home page)
  - GET /c/{slug}                       (a community page, cycling through the 20 communities)
  - GET /c/{slug}/guides/{guide-slug}   (a guide page, cycling through 1,000 guides)
  - GET /bare                           (bench/api_list.py's one-route Litestar JSON app under uvicorn with the
                                         same settings, in its own process, measured in the same run)

and prints each page's requests/s divided by /bare's, with PASS or MISS against the target (>= 0.15), and
the same ratio by server CPU per request, which other load on the machine moves far less. The client is
a minimal raw-socket HTTP/1.1 one (httpx costs more CPU per request than the bare endpoint does, so it
would measure the client).

Everything listens on and talks to 127.0.0.1 only; temp dirs and processes are removed on the way out.
Exits 1 if a page misses the target.

    .venv/bin/python bench/pages.py            # 10,000 guides, 2,000 requests per page, 10,000 to /bare
    .venv/bin/python bench/pages.py --quick    # 1,000 guides, 1,000 requests per page, 5,000 to /bare
    .venv/bin/python bench/pages.py --quick --postgres --workers 2   # as api_list.py: a fresh PostgreSQL database,
                                                                     # two web processes (and two for /bare)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make the project's `server` and `tests.support` importable

from api_list import (  # noqa: E402  (bench/ is the script's own directory on sys.path)
    DatabaseCPU,
    analyze,
    backend_name,
    bare_server,
    community_of,
    cpu_seconds,
    kith_server,
    seed_in_process,
    seed_through_api,
    wait_for_search_index,
)

TARGET = 0.15
CONCURRENCY = 16
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
REQUEST_TIMEOUT = 60.0


@dataclass(frozen=True)
class Plan:
    communities: int = 20
    guides: int = 10_000
    api_creations: int = 500
    warmup: int = 200
    requests: int = 2_000
    guide_pages: int = 1_000
    # /bare answers 5-15 times as fast as a page: as many requests would last a fraction of a second, a few
    # ticks of the 10 ms clock that server CPU is read from. More requests give it as long a measurement.
    bare_requests: int = 10_000


# 1,000 requests a page: 300 lasted under a second, too few clock ticks for the CPU figures.
QUICK = Plan(guides=1_000, api_creations=200, warmup=50, requests=1_000, guide_pages=200, bare_requests=5_000)


@dataclass(frozen=True)
class Result:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    bytes_per_response: float
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
        per_request = f"{self.server_ms:6.2f}" if self.server_ms is not None else "     ?"
        database = "" if self.database_cpu is None else (
            f", database {self.database_cpu:4.2f} ({self.database_cpu / self.rate * 1000:5.2f} ms/req)"
        )  # fmt: skip
        return (
            f"  {self.name:<34} {self.rate:>6.0f} req/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   "
            f"{self.bytes_per_response / 1024:5.1f} KiB   CPU: server {server} ({per_request} ms/req), "
            f"client {self.client_cpu:4.2f}{database}"
        )


# -- the client: one keep-alive connection each -------------------------------------------------------------


class BrowserConnection:
    """A keep-alive HTTP/1.1 GET over asyncio streams with a browser's Accept header, reading the status line
    and a Content-Length body, and sending back the cookies the server set (as a returning visitor does)."""

    def __init__(self, base_url: str) -> None:
        self.authority = base_url.removeprefix("http://")
        host, _, port = self.authority.partition(":")
        self.address = (host, int(port))
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.cookies: dict[str, str] = {}
        self.received = 0

    async def get(self, path: str) -> int:
        if self.streams is None:
            self.streams = await asyncio.open_connection(*self.address)
        reader, writer = self.streams
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        request = f"GET {path} HTTP/1.1\r\nHost: {self.authority}\r\nAccept: {BROWSER_ACCEPT}\r\n"
        writer.write((request + (f"Cookie: {cookie}\r\n" if cookie else "") + "\r\n").encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        headers: dict[str, str] = {}
        for line in head.split("\r\n")[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                continue
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                pair = value.split(";", 1)[0]
                cookie_name, _, cookie_value = pair.partition("=")
                self.cookies[cookie_name.strip()] = cookie_value.strip()
            headers[name] = value
        if "content-length" not in headers:
            raise RuntimeError(f"GET {path}: no Content-Length; this client reads only sized bodies")
        length = int(headers["content-length"])
        await reader.readexactly(length)
        self.received += length
        if headers.get("connection", "").lower() == "close":
            await self.aclose()
        return int(head[9:12])

    async def aclose(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


# -- load generation ----------------------------------------------------------------------------------------


async def drive(connections: Sequence[BrowserConnection], total: int, path_for: Callable[[int], str]) -> list[float]:
    """Send `total` GETs, the connections taking turns from one counter; every answer must be a 200."""
    counter = itertools.count()
    latencies: list[float] = []

    async def loop(connection: BrowserConnection) -> None:
        while (index := next(counter)) < total:
            path = path_for(index)
            started = time.perf_counter()
            status = await asyncio.wait_for(connection.get(path), REQUEST_TIMEOUT)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"GET {path}: {status}")

    await asyncio.gather(*(loop(connection) for connection in connections))
    return latencies


async def measure(
    name: str, base_url: str, pid: int, plan: Plan, path_for: Callable[[int], str], requests: int | None = None,
    database: DatabaseCPU | None = None,
) -> Result:  # fmt: skip
    requests = requests or plan.requests
    connections = [BrowserConnection(base_url) for _ in range(CONCURRENCY)]
    database = database or DatabaseCPU(None)
    try:
        await drive(connections, plan.warmup, path_for)  # connections open, cookies set, caches warm
        received_before = sum(connection.received for connection in connections)
        database_before = await database.seconds()
        cpu_before, client_before, started = cpu_seconds(pid), time.process_time(), time.perf_counter()
        latencies = await drive(connections, requests, path_for)
        seconds, cpu_after, client_after = time.perf_counter() - started, cpu_seconds(pid), time.process_time()
        database_after = await database.seconds()
        received = sum(connection.received for connection in connections) - received_before
    finally:
        for connection in connections:
            await connection.aclose()
    server_cpu = (cpu_after - cpu_before) / seconds if cpu_before is not None and cpu_after is not None else None
    client_cpu = (client_after - client_before) / seconds
    database_cpu = None if database_before is None or database_after is None else (
        (database_after - database_before) / seconds
    )  # fmt: skip
    return Result(name, requests, seconds, latencies, received / requests, server_cpu, client_cpu, database_cpu)


# -- seeding (the communities, the API and in-process paths and the wait for the index are api_list.py's) ---


def guide_body(number: int) -> dict[str, object]:
    """A guide of a few paragraphs, a list, a link and code: about 1 KB of Markdown, as a short how-to is."""
    return {
        "title": f"Guide number {number}",
        "summary": f"A seeded how-to, number {number}, for the page benchmark.",
        "body_markdown": (
            f"# Guide {number}\n\n"
            "Why this matters: a short introduction of a few sentences that says what the reader will get "
            "out of the guide and what they need before they start. It runs on for a line or two.\n\n"
            "## Steps\n\n"
            "1. Gather what you need.\n2. Do the first thing *carefully*.\n3. Check the result.\n\n"
            f"See [the reference](https://example.org/{number}) for the details, or run:\n\n"
            "```\nkith --help\n```\n\n"
            "## Pitfalls\n\n"
            "- Do not skip the check.\n- Keep notes as you go.\n- Ask a mentor when stuck.\n"
        ),
        "tags": ["bench", f"tag{number % 10}"],
    }


async def guide_paths(base_url: str, count: int) -> list[str]:
    """The pages of the newest `count` published guides, by walking the guide list as API clients do."""
    paths: list[str] = []
    params: dict[str, str | int] = {"limit": 100}
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0, trust_env=False) as api:
        while len(paths) < count:
            page = (await api.get("/api/v1/guides", params=params)).raise_for_status().json()
            paths += [f"/c/{item['community']['slug']}/guides/{item['slug']}" for item in page["items"]]
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
    return paths[:count]


# -- the run ------------------------------------------------------------------------------------------------

PAGES = ("GET /", "GET /c/{slug}", "GET /c/{slug}/guides/{guide-slug}")


async def run(plan: Plan, use_postgres: bool = False, workers: int = 1) -> bool:
    with kith_server(use_postgres, workers) as server:
        database = DatabaseCPU(server.database_url if use_postgres else None)
        token = server.token()
        api_rate = await seed_through_api(server, token, plan, body=guide_body)
        print(f"  {plan.api_creations} guides through the API: {api_rate:.0f} creations/s", flush=True)
        server.stop()  # seed the rest with nothing else touching the database
        local_rate = await seed_in_process(server, token, plan, body=guide_body)
        print(f"  {plan.guides - plan.api_creations} more through the service layer: {local_rate:.0f}/s", flush=True)
        await analyze(server.database_url if use_postgres else None)
        server.start()
        assert server.pid is not None
        waited = await wait_for_search_index(server.base_url, plan.guides)
        print(f"  search index caught up {waited:.0f} s after the restart", flush=True)
        paths = await guide_paths(server.base_url, plan.guide_pages)
        communities = [f"/c/{community_of(n, plan)}" for n in range(plan.communities)]
        url, pid = server.base_url, server.pid
        results = [
            await measure(PAGES[0], url, pid, plan, lambda i: "/", database=database),
            await measure(PAGES[1], url, pid, plan, lambda i: communities[i % len(communities)], database=database),
            await measure(PAGES[2], url, pid, plan, lambda i: paths[i % len(paths)], database=database),
        ]
    with bare_server(workers) as (bare_url, bare_pid):
        results.append(await measure("GET /bare", bare_url, bare_pid, plan, lambda i: "/bare", plan.bare_requests))
    return report(plan, results, api_rate, local_rate, f"{backend_name(use_postgres)}, {workers} uvicorn worker(s)")


def report(plan: Plan, results: Sequence[Result], api_rate: float, local_rate: float, setup: str) -> bool:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\n{plan.requests} requests per page ({plan.bare_requests} to /bare) after {plan.warmup} warm-up, "
          f"{CONCURRENCY} connections, "
          f"{plan.guides} guides in {plan.communities} communities ({setup})")  # fmt: skip
    print(
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load} (other work on the machine skews req/s)"
    )
    for result in results:
        print(result.line())
    by_name = {result.name: result for result in results}
    bare = by_name["GET /bare"]
    passed = True
    print()
    for name in PAGES:
        ratio = by_name[name].rate / bare.rate
        verdict = "PASS" if ratio >= TARGET else "MISS"
        passed = passed and ratio >= TARGET
        line = f"  {name:<34} / bare = {ratio:5.3f}   target >= {TARGET:.2f}: {verdict}"
        if bare.server_ms is not None and by_name[name].server_ms is not None:
            # What the ratio would be with each server owning a full core and a client that keeps up.
            line += f"   (by server CPU per request: {bare.server_ms / by_name[name].server_ms:5.3f})"
        print(line)
    print(f"\nseeding: {api_rate:.0f} guide creations/s through the API, {local_rate:.0f}/s through the service layer")
    return passed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 guides and 1,000 requests per page")
    parser.add_argument("--postgres", action="store_true", help="run Kith on a fresh PostgreSQL database")
    parser.add_argument("--workers", type=int, default=1, help="web processes of Kith and of the bare app")
    args = parser.parse_args(argv)
    return 0 if asyncio.run(run(QUICK if args.quick else Plan(), args.postgres, args.workers)) else 1


if __name__ == "__main__":
    sys.exit(main())
