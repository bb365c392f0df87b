"""Two `kith worker` processes against one: how fast they drain queued deliveries to a peer, and whether any
delivery is sent twice. A benchmark, not a test.

On a fresh PostgreSQL database (or, with `--sqlite`, a SQLite file), with a receiving peer on loopback that
counts each activity it is sent:

  1. starts one `kith worker` (no web process: nothing but the workers touches the queue), queues N activities
     with a delivery each to the peer in one transaction, as the outbox queues them, and times from that commit
     until the peer has received every one and every delivery is marked sent;
  2. stops it, starts two workers, queues N other activities and times them the same way;
  3. prints, for each round, deliveries/s, the workers' CPU per delivery, the database's CPU per delivery
     (PostgreSQL), how many the peer received more than once (must be 0) and how many never arrived (must be
     0), then two workers' rate as a ratio to one's.

The peer is an asyncio HTTP/1.1 server in this process (keep-alive, no signature check: only the counting is
its business), answering 202 to each POST and 404 to anything else, so it costs the run little CPU.

    .venv/bin/python bench/deliveries.py                       # 10,000 deliveries per round
    .venv/bin/python bench/deliveries.py --deliveries 2000     # a smoke run
    .venv/bin/python bench/deliveries.py --sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make the project's `server` and `tests.support` importable

from api_list import DatabaseCPU, cpu_seconds  # noqa: E402  (bench/ is the script's own directory on sys.path)
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from server.db import create_engine, create_sessionmaker  # noqa: E402
from server.models import Activity, Delivery  # noqa: E402
from tests.support import postgres  # noqa: E402
from tests.support.server import LOOPBACK, KithServer, free_port  # noqa: E402
from tests.support.workers import start_worker, stop_all  # noqa: E402

ROUND_TIMEOUT = 1800.0


class CountingPeer:
    """Counts the activity ids posted to it, each as often as it arrives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.host = f"{LOOPBACK}:{self.port}"
        self.received: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, LOOPBACK, self.port, backlog=256)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):  # the workers' idle keep-alive connections
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                method = head.split(" ", 1)[0]
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in head.split("\r\n")[1:])
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if method == "POST":
                    self.received[json.loads(body).get("id", "")] += 1
                    writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


async def queue(server: KithServer, peer: CountingPeer, prefix: str, count: int) -> set[str]:
    """`count` activities, each with a delivery to the peer, committed at once (as `outbox.publish` queues them)."""
    engine = create_engine(server.database_url)
    actor = f"{server.base_url}/actor"
    uris = [f"{server.base_url}/activities/{prefix}-{n}" for n in range(count)]
    try:
        async with create_sessionmaker(engine)() as session:
            activities = [
                Activity(
                    uri=uri,
                    type="Create",
                    actor_uri=actor,
                    object_type="guide",
                    object_uri=f"{uri}/object",
                    community_uri=None,
                    public=True,
                    payload={"id": uri, "type": "Create", "actor": actor},
                )  # fmt: skip
                for uri in uris
            ]
            session.add_all(activities)
            await session.flush()
            session.add_all(
                Delivery(activity_seq=row.seq, inbox_url=f"{peer.base_url}/inbox", peer_host=peer.host)
                for row in activities
            )
            await session.commit()
        return set(uris)
    finally:
        await engine.dispose()


async def unsent(engine: AsyncEngine, base_url: str, prefix: str) -> int:
    async with engine.connect() as connection:
        pattern = f"{base_url}/activities/{prefix}-%"
        count = await connection.scalar(
            select(func.count())
            .select_from(Delivery)
            .join(Activity, Activity.seq == Delivery.activity_seq)
            .where(Activity.uri.like(pattern), Delivery.state != "sent")
        )
        return int(count or 0)


async def round_of(
    server: KithServer, peer: CountingPeer, database: DatabaseCPU, workers: int, count: int
) -> dict[str, float]:
    prefix = f"w{workers}"
    processes = [start_worker(server, f"{prefix}-worker-{n}") for n in range(workers)]
    try:
        await asyncio.sleep(2)  # past the workers' start-up (the first look at each queue, the peer's discovery)
        cpu_before = sum(cpu_seconds(p.pid) or 0 for p in processes)
        database_before = await database.seconds()
        started = time.perf_counter()
        uris = await queue(server, peer, prefix, count)
        queued = time.perf_counter()
        deadline = started + ROUND_TIMEOUT
        engine = create_engine(server.database_url)
        try:
            while time.perf_counter() < deadline:
                if uris <= set(peer.received) and await unsent(engine, server.base_url, prefix) == 0:
                    break
                await asyncio.sleep(0.2)
        finally:
            await engine.dispose()
        seconds = time.perf_counter() - queued
        cpu = sum(cpu_seconds(p.pid) or 0 for p in processes) - cpu_before
        database_after = await database.seconds()
        alive = all(p.poll() is None for p in processes)
    finally:
        stop_all(processes)
    mine = {uri: n for uri, n in peer.received.items() if uri in uris}
    return {
        "workers": workers,
        "seconds": seconds,
        "rate": len(mine) / seconds,
        "queue_seconds": queued - started,
        "cpu_ms": cpu / count * 1000,
        "database_ms": (database_after - database_before) / count * 1000
        if database_before is not None and database_after is not None
        else float("nan"),
        "twice": sum(1 for n in mine.values() if n > 1),
        "missing": len(uris - set(mine)),
        "alive": float(alive),
    }


async def run(count: int, use_sqlite: bool) -> None:
    peer = CountingPeer()
    await peer.start()
    try:
        with postgres.database_for("sqlite" if use_sqlite else "postgresql") as url:
            server = KithServer(database_url=url, worker=False, env={"KITH_PEERS": peer.base_url})
            try:
                server.cli("migrate")
                database = DatabaseCPU(None if use_sqlite else server.database_url)
                backend = "SQLite" if use_sqlite else "PostgreSQL"
                print(f"{count} deliveries per round to {peer.base_url}, {backend}", flush=True)
                rounds = []
                for workers in (1, 2):
                    rounds.append(await round_of(server, peer, database, workers, count))
                    print(line(rounds[-1]), flush=True)
            finally:
                server.close()
    finally:
        await peer.stop()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\n{os.cpu_count()} CPUs, load average {load}")
    print(f"two workers / one = {rounds[1]['rate'] / rounds[0]['rate']:.2f}x the deliveries per second")
    bad = sum(r["twice"] + r["missing"] for r in rounds)
    print("every activity received exactly once" if bad == 0 else f"NOT exactly once: {bad} twice or missing")


def line(r: dict[str, float]) -> str:
    return (
        f"  {int(r['workers'])} worker(s): {r['rate']:6.0f} deliveries/s ({r['seconds']:.1f} s after the commit; "
        f"queueing took {r['queue_seconds']:.1f} s)   CPU per delivery: workers {r['cpu_ms']:.2f} ms, "
        f"database {r['database_ms']:.2f} ms   received twice: {int(r['twice'])}, missing: {int(r['missing'])}"
        + ("" if r["alive"] else "   (a worker exited)")
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=10_000, help="deliveries queued per round")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of PostgreSQL")
    args = parser.parse_args(argv)
    asyncio.run(run(args.deliveries, args.sqlite))


if __name__ == "__main__":
    main()
