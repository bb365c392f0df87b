"""Which ASGI server for `kith serve`: uvicorn's pure-Python defaults (h11, the asyncio loop), uvicorn with
httptools and uvloop, and Granian, on the bare endpoint and on Kith's API and pages. A benchmark, not a test.

Seeds one instance as api_list.py does (20 communities, 1,000 guides with `--quick`, 10,000 without; on
PostgreSQL with `--postgres`), waits for its search index, and stops it. Then, for each server and each number
of web processes (`--workers`, default 1 and 2), it serves Kith's app (`server.app:web_app`, the web process
of `kith serve --workers N`; no background worker, so nothing but the requests runs) and then the bench's bare
Litestar app, each in turn on the same port, and measures with api_list.py's raw client (16 connections):

  - GET /bare                            (api_list.py's one-route app)
  - GET /api/v1/guides?limit=20
  - GET /api/v1/guides/{id}
  - GET /                                (the home page, with a browser's Accept header, as pages.py sends it)
  - GET /c/{slug}/guides/{guide-slug}    (a guide page)

and prints req/s and server CPU per request (the process tree's) for each, with every figure's ratio to
uvicorn h11 + asyncio's in the same run.

    .venv/bin/python bench/servers.py --quick                  # needs: pip install uvloop httptools granian
    .venv/bin/python bench/servers.py --quick --postgres --workers 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # run as a script: make the project's `server` and `tests.support` importable

from api_list import (  # noqa: E402  (bench/ is the script's own directory on sys.path)
    QUICK,
    Plan,
    RawConnection,
    analyze,
    cpu_seconds,
    drive,
    guide_ids,
    kith_server,
    seed_in_process,
    seed_through_api,
    wait_for_search_index,
)
from pages import BrowserConnection, guide_paths  # noqa: E402

from tests.support.server import LOOPBACK, free_port  # noqa: E402

SERVERS = ("uvicorn h11+asyncio", "uvicorn httptools+uvloop", "granian")
CONCURRENCY = 16
READY_TIMEOUT = 60.0


def command(server: str, app: str, port: int, workers: int) -> list[str]:
    """How each server runs an app factory named `module:function`, with no access log."""
    if server == "granian":
        return [
            sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", LOOPBACK,
            "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning", app,
        ]  # fmt: skip
    http, loop = ("h11", "asyncio") if server == "uvicorn h11+asyncio" else ("httptools", "uvloop")
    return [
        sys.executable, "-m", "uvicorn", "--factory", app, "--host", LOOPBACK, "--port", str(port),
        "--workers", str(workers), "--http", http, "--loop", loop, "--log-level", "warning", "--no-access-log",
        "--lifespan", "on",
    ]  # fmt: skip


@contextmanager
def serving(server: str, app: str, workers: int, env: dict[str, str], probe: str) -> Iterator[tuple[str, int]]:
    """(base URL, pid) of `app` under `server`, in its own process group, stopped on the way out."""
    port = free_port()
    process = subprocess.Popen(
        command(server, app, port, workers), cwd=BENCH, env={**env, "PYTHONPATH": f"{ROOT}:{BENCH}"},
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    base_url = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{server} exited with {process.returncode}")
            try:
                if httpx.get(base_url + probe, timeout=1.0, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server} did not answer {probe} within {READY_TIMEOUT:.0f} s")
            time.sleep(0.2)
        yield base_url, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass(frozen=True)
class Figure:
    rate: float
    server_ms: float


async def measure(
    make: Callable[[str], object], base_url: str, pid: int, warmup: int, requests: int, path_for: Callable[[int], str]
) -> Figure:
    connections = [make(base_url) for _ in range(CONCURRENCY)]
    try:
        await drive(connections, warmup, path_for)  # type: ignore[arg-type]
        cpu_before, started = cpu_seconds(pid), time.perf_counter()
        await drive(connections, requests, path_for)  # type: ignore[arg-type]
        seconds, cpu_after = time.perf_counter() - started, cpu_seconds(pid)
    finally:
        for connection in connections:
            await connection.aclose()  # type: ignore[attr-defined]
    rate = requests / seconds
    return Figure(rate, ((cpu_after or 0) - (cpu_before or 0)) / requests * 1000)


async def run(plan: Plan, use_postgres: bool, workers_list: Sequence[int], servers: Sequence[str]) -> None:
    with kith_server(use_postgres, 1) as seeded:
        token = seeded.token()
        await seed_through_api(seeded, token, plan)
        seeded.stop()
        await seed_in_process(seeded, token, plan)
        await analyze(seeded.database_url if use_postgres else None)
        seeded.start()
        await wait_for_search_index(seeded.base_url, plan.guides)
        ids = await guide_ids(seeded.base_url, plan.single_ids)
        paths = await guide_paths(seeded.base_url, 200)
        seeded.stop()
        env = dict(seeded.env)
        endpoints: list[tuple[str, Callable[[str], object], Callable[[int], str]]] = [
            ("GET /api/v1/guides?limit=20", RawConnection, lambda i: "/api/v1/guides?limit=20"),
            ("GET /api/v1/guides/{id}", RawConnection, lambda i: f"/api/v1/guides/{ids[i % len(ids)]}"),
            ("GET / (page)", BrowserConnection, lambda i: "/"),
            ("GET guide page", BrowserConnection, lambda i: paths[i % len(paths)]),
        ]
        results: dict[tuple[str, int, str], Figure] = {}
        for workers in workers_list:
            for server in servers:
                with serving(server, "server.app:web_app", workers, env, "/readyz") as (url, pid):
                    for name, make, path_for in endpoints:
                        figure = await measure(make, url, pid, plan.warmup, plan.requests, path_for)
                        results[(server, workers, name)] = figure
                with serving(server, "api_list:bare_app", workers, env, "/bare") as (url, pid):
                    figure = await measure(RawConnection, url, pid, plan.warmup, plan.requests * 4, lambda i: "/bare")
                    results[(server, workers, "GET /bare")] = figure
                print(f"  measured {server}, {workers} web process(es)", flush=True)
    report(results, plan, use_postgres, workers_list, servers, [e[0] for e in endpoints])


def report(
    results: dict[tuple[str, int, str], Figure], plan: Plan, use_postgres: bool, workers_list: Sequence[int],
    servers: Sequence[str], endpoints: Sequence[str],
) -> None:  # fmt: skip
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    backend = "PostgreSQL" if use_postgres else "SQLite"
    print(f"\n{plan.requests} requests per endpoint ({plan.requests * 4} to /bare) after {plan.warmup} warm-up, "
          f"{CONCURRENCY} connections, {plan.guides} guides, {backend}")  # fmt: skip
    print(f"{os.cpu_count()} CPUs, load average {load}; ratios to {servers[0]} with as many web processes")
    for workers in workers_list:
        print(f"\n{workers} web process(es):")
        print(f"  {'':<28}" + "".join(f"{server:>36}" for server in servers))
        for name in ("GET /bare", *endpoints):
            cells = []
            base = results[(servers[0], workers, name)]
            for server in servers:
                f = results[(server, workers, name)]
                cells.append(f"{f.rate:6.0f}/s {f.server_ms:5.2f} ms ({f.rate / base.rate:4.2f}x, "
                             f"{f.server_ms / base.server_ms:4.2f}x CPU)")  # fmt: skip
            print(f"  {name:<28}" + "".join(f"{cell:>36}" for cell in cells))
        for server in servers:
            bare = results[(server, workers, "GET /bare")]
            ratios = ", ".join(f"{name} {results[(server, workers, name)].rate / bare.rate:.3f}" for name in endpoints)
            print(f"  {server} / its own bare: {ratios}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 guides, 500 requests per endpoint")
    parser.add_argument("--postgres", action="store_true", help="run Kith on a fresh PostgreSQL database")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="numbers of web processes to try")
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS, metavar="SERVER")
    args = parser.parse_args(argv)
    asyncio.run(run(QUICK if args.quick else Plan(), args.postgres, args.workers, args.servers))


if __name__ == "__main__":
    main()
