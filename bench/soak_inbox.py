"""Inbox soak (issue 15): a peer pushes 200 signed activities a second into one inbox for 60 s.

A benchmark, not a test. It

  1. starts a small peer on 127.0.0.1 (tests/support/fake_peer.py: WebFinger, its instance actor, a community,
     a person and an empty outbox, each actor with its public key, 202 to anything posted), and a real Kith
     instance configured with that peer, as compose runs it: `kith serve --no-worker` and `kith worker`
     (`--in-process-worker`: the worker inside `kith serve`);
  2. measures the API while the instance is idle: `GET /api/v1/guides?limit=20` every 50 ms for 10 s (the
     baseline, taken in the same run);
  3. sends the peer's community, then RATE x DURATION `Create(Article)` activities, each signed (draft-cavage,
     RSA-SHA256) by the key of its own actor, the peer's person, at a steady RATE a second. They are signed
     before the clock starts, so the client's RSA cost is not the server's (their Date headers stay well within
     the hour the inbox accepts). A send that gets no answer, a 429 or a 5xx is tried again, as a peer's
     delivery is. The same API probe runs all along;
  4. waits (bounded) until the instance reports every guide, then reads its database: every activity must be
     stored once and applied once (inbox items done, one guide per activity, no other outcome).

It prints the inbox answers (all must be 202) and their latency, the API p50/p99 during the soak against the
idle baseline, the time the last activity took to be applied, the CPU time each process spent (the machine's
load average beside them: on a shared machine the figures mean little without it). Target: every activity
applied exactly once, API p99 under 100 ms during the soak.

    .venv/bin/python bench/soak_inbox.py                         # 200/s for 60 s on SQLite
    .venv/bin/python bench/soak_inbox.py --rate 50 --duration 10 # a quick smoke run
    .venv/bin/python bench/soak_inbox.py --postgres              # on a fresh PostgreSQL database
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make the project's `server` and `tests.support` importable

from server.db import create_engine  # noqa: E402
from server.settings import normalize_database_url  # noqa: E402
from tests.support import postgres  # noqa: E402
from tests.support.fake_peer import FakePeer  # noqa: E402
from tests.support.server import KithServer  # noqa: E402
from tests.support.workers import children, start_worker, stop_all  # noqa: E402

PROBE_INTERVAL = 0.05
RETRIES = 5
CONNECTIONS = 64
RETRY_SECONDS = 1.0


def group_create(peer: FakePeer) -> dict[str, Any]:
    group = peer.actor("/c/soak", "Group", name="Soak circle")
    return peer.activity("Create", {key: value for key, value in group.items() if key != "@context"}, group["id"])


def article_create(peer: FakePeer, person: dict[str, Any], n: int) -> dict[str, Any]:
    article = peer.article(f"{peer.base_url}/c/soak", person, f"Soak guide {n}")
    return peer.activity("Create", article, person["id"])


async def probe(client: httpx.AsyncClient, stop: asyncio.Event, latencies: list[float]) -> None:
    """The API as a reader sees it: one guide list every PROBE_INTERVAL until told to stop."""
    while not stop.is_set():
        started = time.perf_counter()
        try:
            ok = (await client.get("/api/v1/guides", params={"limit": 20})).status_code == 200
        except httpx.HTTPError:
            ok = False
        # A failed read counts as the slowest there could be: the reader got nothing.
        latencies.append(time.perf_counter() - started if ok else float("inf"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROBE_INTERVAL)


async def baseline(base_url: str, seconds: float) -> list[float]:
    latencies: list[float] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        task = asyncio.create_task(probe(client, stop, latencies))
        await asyncio.sleep(seconds)
        stop.set()
        await task
    return latencies


def raw_post(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of an HTTP/1.1 POST of `body` to `url` with `headers` (the signed ones), made ahead of time."""
    parts = urlsplit(url)
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "host"]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Sender:
    """Sends prepared requests over CONNECTIONS keep-alive connections, each taking the next from a queue as soon
    as its previous answer is read; a send that gets no answer, a 429 or a 5xx is queued again after a pause, as
    a peer's delivery is retried. A few lines of asyncio instead of httpx: httpx spent more CPU per request than
    the instance did (its pool scans every waiting request), so the sender fell behind its own schedule."""

    def __init__(self, url: str, count: int) -> None:
        parts = urlsplit(url)
        self.address = (parts.hostname, parts.port)
        self.queue: asyncio.Queue[tuple[bytes, float, int] | None] = asyncio.Queue()
        self.statuses: dict[int, int] = {}
        self.retried: dict[int, int] = {}
        self.answers: list[float] = []  # seconds from the first send of each activity to its last answer
        self.left = count
        self.done = asyncio.Event()

    async def connection(self) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while (item := await self.queue.get()) is not None:
            request, first_sent, attempt = item
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(*self.address)
                writer.write(request)
                status, closing = await _answer(reader)  # type: ignore[arg-type]
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status, closing = 0, True
            if closing and writer is not None:
                writer.close()
                reader = writer = None
            self.settle(request, first_sent, attempt, status)
        if writer is not None:
            writer.close()

    def settle(self, request: bytes, first_sent: float, attempt: int, status: int) -> None:
        if (status in (0, 429) or status >= 500) and attempt < RETRIES:
            self.retried[status] = self.retried.get(status, 0) + 1
            asyncio.get_running_loop().call_later(
                RETRY_SECONDS * (attempt + 1), self.queue.put_nowait, (request, first_sent, attempt + 1)
            )
            return
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.answers.append(time.perf_counter() - first_sent)
        self.left -= 1
        if self.left == 0:
            self.done.set()


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status of the answer on `reader`, its body read past; and whether the server closes the connection."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status, b"connection: close" in head or b"transfer-encoding" in head


async def soak(base_url: str, requests: list[bytes], rate: float) -> tuple[Sender, list[float], float]:
    """Send every prepared request at `rate` a second while the probe runs; (the sender, API latencies, s)."""
    latencies: list[float] = []
    stop = asyncio.Event()
    sender = Sender(base_url, len(requests))
    connections = [asyncio.create_task(sender.connection()) for _ in range(CONNECTIONS)]
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as reader:
        prober = asyncio.create_task(probe(reader, stop, latencies))
        started = time.perf_counter()
        late = 0.0
        for n, request in enumerate(requests):
            # A steady schedule, not a burst: activity n leaves at n / rate seconds.
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            late = max(late, -delay)
            sender.queue.put_nowait((request, time.perf_counter(), 0))
        print(f"the sender kept its schedule within {late * 1000:.0f} ms")
        await sender.done.wait()
        elapsed = time.perf_counter() - started
        for _ in connections:
            sender.queue.put_nowait(None)
        await asyncio.gather(*connections)
        if sender.retried:
            print(f"sends tried again (0: no answer): {sender.retried}")
        print(f"inbox answers:           {describe(sender.answers)}")
        stop.set()
        await prober
    return sender, latencies, elapsed


def wait_for_guides(base_url: str, expected: int, stalled: float) -> float:
    """Seconds until the instance reports `expected` remote guides; gives up once the count stays put `stalled` s."""
    started = last_change = time.perf_counter()
    seen = -1
    while time.perf_counter() - last_change < stalled:
        stats = httpx.get(f"{base_url}/api/v1/instance", timeout=30).json()["stats"]
        if stats["remote_guides"] >= expected:
            return time.perf_counter() - started
        if stats["remote_guides"] != seen:
            seen, last_change = stats["remote_guides"], time.perf_counter()
        time.sleep(0.5)
    print(f"only {seen} of {expected} guides, none more for {stalled:.0f} s")
    return float("nan")


async def applied_once(database_url: str, peer: FakePeer) -> dict[str, int]:
    """How often each of the peer's activities was stored and applied, read from the instance's database."""
    engine = create_engine(normalize_database_url(database_url))
    try:
        async with engine.connect() as connection:
            prefix = {"prefix": f"{peer.base_url}/%"}
            return {name: (await connection.execute(text(sql), prefix)).scalar_one() for name, sql in _QUERIES.items()}
    finally:
        await engine.dispose()


_QUERIES = {
    "inbox items": "SELECT count(*) FROM inbox_items WHERE activity_uri LIKE :prefix",
    "distinct activities": "SELECT count(DISTINCT activity_uri) FROM inbox_items WHERE activity_uri LIKE :prefix",
    "items done": "SELECT count(*) FROM inbox_items WHERE activity_uri LIKE :prefix AND state = 'done'",
    "guides": "SELECT count(*) FROM guides WHERE uri LIKE :prefix",
    "distinct guides": "SELECT count(DISTINCT uri) FROM guides WHERE uri LIKE :prefix",
}


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int | None) -> float:
    """User and system CPU time of `pid` and of the processes it started that still run (Linux /proc)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks + sum(cpu_seconds(child) for child in children(pid))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def describe(latencies: list[float]) -> str:
    ms = [value * 1000 for value in latencies]
    median, p99, worst = statistics.median(ms), percentile(ms, 0.99), max(ms)
    return f"p50 {median:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms ({len(ms)} requests)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200, help="activities a second (default 200)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of sending (default 60)")
    parser.add_argument("--postgres", action="store_true", help="run the instance on a fresh PostgreSQL database")
    parser.add_argument(
        "--in-process-worker", action="store_true", help="run the worker inside `kith serve` (default: `kith worker`)"
    )
    parser.add_argument("--web-processes", type=int, default=1, help="`kith serve --workers N` (default 1)")
    args = parser.parse_args()
    count = int(args.rate * args.duration)
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(postgres.database_for("postgresql" if args.postgres else "sqlite"))
        peer = stack.enter_context(FakePeer())
        kith = stack.enter_context(
            KithServer(
                database_url=database_url,
                env={"KITH_PEERS": peer.base_url},
                worker=args.in_process_worker,
                workers=args.web_processes,
                startup_timeout=60,
            )
        )
        processes = {"web": kith.pid}
        if not args.in_process_worker:
            worker = start_worker(kith, "worker")
            stack.callback(stop_all, [worker])
            processes["worker"] = worker.pid
        inbox = f"{kith.base_url}/inbox"
        where = "in kith serve" if args.in_process_worker else "as kith worker"
        print(f"instance {kith.base_url} ({'PostgreSQL' if args.postgres else 'SQLite'}, {args.web_processes} web "
              f"process(es), the worker {where}), peer {peer.base_url}; load {load_average()}")  # fmt: skip
        body, headers = peer.signed(inbox, group_create(peer))
        assert httpx.post(inbox, content=body, headers=headers).status_code == 202
        person = peer.actor("/u/sam", "Person", name="Sam")
        requests = [raw_post(inbox, *peer.signed(inbox, article_create(peer, person, n))) for n in range(count)]
        idle = asyncio.run(baseline(kith.base_url, 10))
        print(f"API while idle:          {describe(idle)}")
        cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        sender_before = sum(os.times()[:2])
        sender, during, elapsed = asyncio.run(soak(kith.base_url, requests, args.rate))
        statuses = sender.statuses
        sender_cpu = sum(os.times()[:2]) - sender_before
        print(f"sent {count} activities in {elapsed:.1f} s ({count / elapsed:.0f}/s); answers {statuses}")
        print(f"API during the soak:     {describe(during)}")
        print(f"p99 during / idle:       {percentile(during, 0.99) / percentile(idle, 0.99):.2f}")
        failed_reads = sum(1 for value in during if value == float("inf"))
        if failed_reads:
            print(f"API reads that failed during the soak: {failed_reads}; the server's log ends with:")
            print("\n".join(kith.log().splitlines()[-15:]))
        settled = wait_for_guides(kith.base_url, count, stalled=150)
        print(f"all {count} applied {settled:.1f} s after the last was sent; load {load_average()}")
        print(f"CPU of the sender (this process): {sender_cpu:.1f} s, {sender_cpu / count * 1000:.2f} ms an activity")
        for name, pid in processes.items():
            used = cpu_seconds(pid) - cpu_before[name]
            print(f"CPU of the {name} process and its children: {used:.1f} s, {used / count * 1000:.2f} ms an activity")
        counts = asyncio.run(applied_once(kith.database_url, peer))
        print("database: " + ", ".join(f"{name} {value}" for name, value in counts.items()))
        expected = {"inbox items": count + 1, "distinct activities": count + 1, "items done": count + 1,
                    "guides": count, "distinct guides": count}  # fmt: skip
        once = counts == expected and statuses == {202: count}
        print(f"every activity applied exactly once: {'yes' if once else 'NO'}")
        p99 = percentile(during, 0.99) * 1000
        print(f"target: p99 under 100 ms during the soak: {'ok' if p99 < 100 else 'MISSED'} ({p99:.1f} ms)")


if __name__ == "__main__":
    main()
