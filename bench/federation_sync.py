"""Federation backfill (issue 3): how fast a new peer B pulls in the 10,000 guides instance A already holds.

A benchmark, not a test. It

  1. seeds A before A's server ever runs: `kith migrate`, an admin, 10 communities, then N guides (default
     10,000) through `GuideService.create` in-process, one session per batch of 500 (timed). The guides are
     realistic: a 3-8 word title, a one-sentence summary, a markdown body of 150-400 words from the seeded Zipf
     word list of bench/search.py, 1-3 tags. A's own search index is not measured: A gets an empty one and its
     index jobs are dropped, so A's worker idles as on a settled instance instead of indexing N guides on the
     same two cores while B backfills;
  2. starts A with KITH_PEERS=B, then B (a fresh, migrated instance) with KITH_PEERS=A, and times from B's
     launch until B's `GET /api/v1/instance` reports stats.remote_guides == N: the follow handshake, the
     outbox backfill (signed GETs of up to 100 activities a page, each page applied at once while the next one
     loads) and applying every Create (entries/s = N / time).
     Progress comes from B's database, read-only. It then waits (bounded) until B's search finds all N remote
     guides too, and prints that time;
  3. as the baseline, with both servers stopped, inserts the same N guides through `GuideService.create`
     in-process on a fresh SQLite database (each create records its outbox activity and its index job, as the
     services do), and prints backfill time / direct insert time. With --with-indexing it then also times the
     worker's Indexer step working off those index jobs in-process (B's worker does that work too, in its
     indexing process beside the backfill, whose CPU is printed apart; the target's baseline does not include
     it).

Targets: >= 400 entries/s, backfill time / direct insert time <= 3.

Both instances listen on and talk to 127.0.0.1 only; temp dirs and processes are removed on the way out.

    .venv/bin/python bench/federation_sync.py                  # 10,000 guides
    .venv/bin/python bench/federation_sync.py --guides 1000    # a quick smoke run
    .venv/bin/python bench/federation_sync.py --with-indexing  # also time the baseline's index jobs
    .venv/bin/python bench/federation_sync.py --profile        # B's server under cProfile (slower; diagnosis only)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import io
import os
import pstats
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make the project's `server` and `tests.support` importable

from tests.support.server import LOOPBACK, KithServer, ServerError, free_port  # noqa: E402


def _load_corpus_module() -> Any:
    """bench/search.py's Corpus: one word list for both benchmarks (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("kith_bench_search", Path(__file__).with_name("search.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Corpus = _load_corpus_module().Corpus

SEED = 3
COMMUNITIES = 10
BATCH = 500
TARGET_RATE = 400.0
TARGET_RATIO = 3.0
DRAIN_TIMEOUT = 600.0
BACKFILL_TIMEOUT = 600.0
SEARCH_TIMEOUT = 600.0
POLL = 0.5


# -- data ---------------------------------------------------------------------------------------------------


def guide_payloads(count: int) -> list[dict[str, Any]]:
    """The same N guides for A and for the baseline."""
    corpus = Corpus()
    rng = random.Random(SEED)
    return [
        {
            "title": corpus.title(rng),
            "summary": corpus.sentence(rng, 8, 20),
            "body_markdown": corpus.markdown_body(rng),
            "tags": sorted(set(rng.sample(corpus.tags, rng.randint(1, 3)))),
        }
        for _ in range(count)
    ]


def community_slug(n: int) -> str:
    return f"bench-{n % COMMUNITIES:02d}"


async def insert_guides(env: dict[str, str], token: str, payloads: Sequence[dict[str, Any]]) -> float:
    """Communities, then every guide through GuideService.create in-process; returns the guides' seconds."""
    import msgspec

    from server import app as _wiring  # noqa: F401  (the app's wiring: a local write's change has federation to go to)
    from server.accounts.service import AccountService
    from server.communities.schemas import CommunityCreate
    from server.communities.service import CommunityService
    from server.db import create_engine, create_sessionmaker
    from server.guides.schemas import GuideCreate
    from server.guides.service import GuideService
    from server.settings import load_settings

    settings = load_settings(env=env)
    engine = create_engine(settings.database_url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:
            principal = await AccountService(session, settings).principal_for_token(token)
            assert principal is not None, "the admin token does not resolve"
            for n in range(COMMUNITIES):
                slug = community_slug(n)
                data = CommunityCreate(slug=slug, name=f"Bench {slug}", description="Benchmark community.")
                await CommunityService(session, settings).create(principal, data)
        data = [msgspec.convert(p, GuideCreate) for p in payloads]
        started = time.perf_counter()
        for first in range(0, len(data), BATCH):
            async with sessions() as session:  # a session per batch: the identity map stays small
                service = GuideService(session, settings)
                for n in range(first, min(first + BATCH, len(data))):
                    await service.create(principal, community_slug(n), data[n])
        return time.perf_counter() - started
    finally:
        await engine.dispose()


async def drain_index_jobs(env: dict[str, str]) -> tuple[float, int]:
    """Run the worker's Indexer step in-process until no index job is left; returns (seconds, jobs)."""
    from server.db import create_engine, create_sessionmaker
    from server.search.indexing import Indexer
    from server.settings import load_settings

    settings = load_settings(env=env)
    engine = create_engine(settings.database_url)
    indexer = Indexer(settings, create_sessionmaker(engine))
    done = 0
    started = time.perf_counter()
    try:
        while True:
            step = await indexer()
            done += step
            if step == 0:
                # Job rows go once the writer thread has committed them.
                if indexer.rebuilding is None and count_rows(settings.database_url, "jobs", "kind = 'index'") == 0:
                    break
                await asyncio.sleep(0.05)
            if time.perf_counter() - started > DRAIN_TIMEOUT:
                raise RuntimeError("the index jobs did not drain in time")
        await indexer.close()
        return time.perf_counter() - started, done
    finally:
        await engine.dispose()


def empty_index(env: dict[str, str]) -> None:
    from server.search import SearchIndex
    from server.search.indexing import index_path
    from server.settings import load_settings

    SearchIndex(index_path(load_settings(env=env))).close()


def delete_rows(database_url: str, table: str, where: str) -> int:
    with sqlite3.connect(sqlite_path(database_url), timeout=30) as db:
        return db.execute(f"DELETE FROM {table} WHERE {where}").rowcount


def sqlite_path(database_url: str) -> str:
    return database_url.removeprefix("sqlite:///").removeprefix("sqlite+aiosqlite:///")


def count_rows(database_url: str, table: str, where: str = "1") -> int:
    """A read-only count on an instance's SQLite file (WAL: readers never block the server's writer)."""
    with sqlite3.connect(f"file:{sqlite_path(database_url)}?mode=ro", uri=True, timeout=30) as db:
        return int(db.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])


# -- processes ----------------------------------------------------------------------------------------------


class BenchServer(KithServer):
    """KithServer whose start can skip `kith migrate` (so a timer can leave it out) and run under cProfile."""

    def __init__(self, *args: Any, profile_path: Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profile_path = profile_path

    def start(self, migrate: bool = True) -> KithServer:  # type: ignore[override]
        if self.running:
            raise ServerError(f"the server on {self.base_url} is already running")
        if migrate:
            self.cli("migrate")
        profiler = ["-m", "cProfile", "-o", str(self.profile_path)] if self.profile_path else []
        command = [sys.executable, *profiler, "-m", "server.cli", "serve", "--host", LOOPBACK, "--port", str(self.port)]
        # Output goes to a file, as in KithServer: nobody drains a pipe meanwhile.
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_until_ready()
        return self

    def stop(self, timeout: float = 30.0) -> int | None:
        """Under cProfile, stop with SIGINT: uvicorn re-raises the signal it shut down for, and only SIGINT's
        KeyboardInterrupt (not SIGTERM's default action) lets cProfile write its stats on the way out."""
        if self.profile_path is not None and self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout)
        return super().stop()


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(pid: int | None) -> float:
    """CPU of a process's children: B's indexing process (and multiprocessing's idle resource tracker)."""
    if pid is None:
        return 0.0
    try:
        children = " ".join(path.read_text() for path in Path(f"/proc/{pid}/task").glob("*/children")).split()
    except OSError:
        return 0.0
    return sum(cpu_seconds(int(child)) for child in children)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{what}: not done within {timeout:.0f} s")
        time.sleep(POLL)
    return time.perf_counter() - started


def instance_stats(client: httpx.Client) -> dict[str, int]:
    return client.get("/api/v1/instance").raise_for_status().json()["stats"]


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# -- the run ------------------------------------------------------------------------------------------------


class Phases:
    """When B got through each stage, from its own database (read-only, between polls)."""

    def __init__(self, database_url: str, count: int) -> None:
        self.database_url = database_url
        self.count = count
        self.following: float | None = None
        self.first_guide: float | None = None

    def observe(self, elapsed: float, remote_guides: int) -> str:
        stored = count_rows(self.database_url, "inbox_items")
        pending = count_rows(self.database_url, "inbox_items", "state = 'pending'")
        index_jobs = count_rows(self.database_url, "jobs", "kind = 'index'")
        if self.following is None and count_rows(self.database_url, "peers", "state = 'following'"):
            self.following = elapsed  # A accepted B's Follow: the backfill starts
        if remote_guides and self.first_guide is None:
            self.first_guide = elapsed
        return (f"inbox items {stored:,} ({pending:,} pending), remote guides {remote_guides:,}, "
                f"index jobs waiting {index_jobs:,}")  # fmt: skip


def seed_a(a: KithServer, payloads: Sequence[dict[str, Any]]) -> float:
    """Seed A before its server runs; returns the seconds the guides took."""
    a.cli("migrate")
    a.create_user("admin", admin=True)
    seconds = asyncio.run(insert_guides(a.env, a.token(), payloads))
    # A's own search index is not part of this benchmark: give A an empty one and drop the index jobs its
    # guides queued, so that A's worker is as idle as on a settled instance, instead of indexing N guides on
    # the same two cores while B backfills.
    empty_index(a.env)
    delete_rows(a.database_url, "jobs", "kind = 'index'")
    return seconds


def time_backfill(a: KithServer, b: BenchServer, count: int) -> tuple[float, float | None, Phases]:
    """Start A and B peered; seconds from B's launch until it reports `count` remote guides (and all searchable)."""
    a.start()
    time.sleep(1.0)  # A's first worker tick (its peer sync finds B down and backs off) is not B's time
    b.cli("migrate")
    cpu = {"A": cpu_seconds(a.pid)}
    started = time.perf_counter()
    b.start(migrate=False)  # serve, wait for /readyz; B's worker starts with the server
    ready = time.perf_counter() - started
    cpu["B"] = cpu_seconds(b.pid)
    cpu["B's indexing"] = children_cpu_seconds(b.pid)
    phases = Phases(b.database_url, count)
    last_report = time.perf_counter()
    with httpx.Client(base_url=b.base_url, timeout=30.0, trust_env=False) as api:
        while True:
            remote = instance_stats(api)["remote_guides"]
            elapsed = time.perf_counter() - started
            state = phases.observe(elapsed, remote)
            if remote >= count:
                break
            if elapsed > BACKFILL_TIMEOUT:
                raise RuntimeError(f"B had {remote} of {count} remote guides after {BACKFILL_TIMEOUT:.0f} s")
            if time.perf_counter() - last_report >= 15:
                print(f"    {elapsed:6.1f} s: {state}", flush=True)
                last_report = time.perf_counter()
            time.sleep(POLL)
        backfill = time.perf_counter() - started
        used = {"A": cpu_seconds(a.pid) - cpu["A"], "B": cpu_seconds(b.pid) - cpu["B"]}
        indexing = children_cpu_seconds(b.pid) - cpu["B's indexing"]
        print(f"  B reports {count:,} remote guides {backfill:.1f} s after its launch; CPU meanwhile: "
              f"A {used['A']:.1f} s, B {used['B']:.1f} s (of {2 * backfill:.0f} core-s; "
              f"B {used['B'] / count * 1000:.2f} ms a guide), B's indexing process {indexing:.1f} s",
              flush=True)  # fmt: skip
        print(f"    B ready {ready:.1f} s; following A {phases.following or 0:.1f} s; first remote guide "
              f"{phases.first_guide or 0:.1f} s; load average {load_average()}", flush=True)  # fmt: skip

        def all_searchable() -> bool:
            response = api.get("/api/v1/search", params={"origin": "remote", "type": "guide", "limit": 1})
            return response.status_code == 200 and response.json()["total"] >= count

        try:
            searchable: float | None = backfill + wait_for(all_searchable, SEARCH_TIMEOUT, "B's search index")
            indexing = children_cpu_seconds(b.pid) - cpu["B's indexing"]
            print(f"  B's search finds all {count:,} remote guides {searchable:.1f} s after its launch; "
                  f"B's indexing process used {indexing:.1f} s of CPU ({indexing / count * 1000:.2f} ms a guide), "
                  f"B {cpu_seconds(b.pid) - cpu['B']:.1f} s", flush=True)  # fmt: skip
        except RuntimeError as exc:
            searchable = None
            print(f"  {exc}", flush=True)
    b.stop()
    a.stop()
    return backfill, searchable, phases


def time_baseline(baseline: KithServer, payloads: Sequence[dict[str, Any]], indexing: bool) -> tuple[float, float]:
    """The same inserts through the service layer on a fresh database with nothing else running."""
    baseline.cli("migrate")
    baseline.create_user("admin", admin=True)
    empty_index(baseline.env)  # as on B, whose worker made an empty index when it started
    direct = asyncio.run(insert_guides(baseline.env, baseline.token(), payloads))
    print(f"  baseline: GuideService.create on a fresh database: {len(payloads) / direct:,.0f} guides/s "
          f"({direct:.1f} s)", flush=True)  # fmt: skip
    drain = 0.0
    if indexing:
        drain, jobs = asyncio.run(drain_index_jobs(baseline.env))
        print(f"  then the worker's Indexer step works off its {jobs:,} index jobs in {drain:.1f} s", flush=True)
    return direct, drain


def print_profile(data: bytes) -> None:
    path = Path(tempfile.mkstemp(suffix=".prof")[1])
    try:
        path.write_bytes(data)
        for order, title in (("cumulative", "cumulative"), ("tottime", "own time")):
            out = io.StringIO()
            pstats.Stats(str(path), stream=out).sort_stats(order).print_stats(35)
            print(f"\ncProfile of B's server process, main thread ({title}):\n{out.getvalue()}")
    finally:
        path.unlink(missing_ok=True)


def run(count: int, profile: bool, indexing: bool) -> None:
    print(f"federation sync bench: {count:,} guides on A in {COMMUNITIES} communities; "
          f"load average {load_average()}", flush=True)  # fmt: skip
    payloads = guide_payloads(count)
    words = sum(len(p["body_markdown"].split()) for p in payloads) / count
    print(f"  generated {count:,} guides ({words:.0f} body words each on average)", flush=True)
    a_port, b_port = free_port(), free_port()
    scratch = Path(tempfile.mkdtemp(prefix="kith-bench-fed-"))
    a = KithServer(port=a_port, data_dir=scratch / "a", env={"KITH_PEERS": f"http://{LOOPBACK}:{b_port}"},
                   startup_timeout=60.0)  # fmt: skip
    b = BenchServer(port=b_port, data_dir=scratch / "b", env={"KITH_PEERS": f"http://{LOOPBACK}:{a_port}"},
                    startup_timeout=60.0, profile_path=scratch / "b.prof" if profile else None)  # fmt: skip
    baseline = KithServer(data_dir=scratch / "baseline")  # never served: only its CLI and database are used
    profile_data: bytes | None = None
    try:
        seeding = seed_a(a, payloads)
        print(f"  seeded A through GuideService.create: {count / seeding:,.0f} guides/s ({seeding:.1f} s); "
              "A gets an empty search index and no index jobs (A's search is not measured)", flush=True)  # fmt: skip
        backfill, searchable, _ = time_backfill(a, b, count)
        direct, drain = time_baseline(baseline, payloads, indexing)
        if profile and (scratch / "b.prof").exists():
            profile_data = (scratch / "b.prof").read_bytes()
    finally:
        b.close()
        a.close()
        baseline.close()
        shutil.rmtree(scratch, ignore_errors=True)

    rate, ratio = count / backfill, backfill / direct
    print(f"\nload average now: {load_average()}")
    print(f"seeding A, GuideService.create:          {count / seeding:7,.0f} guides/s   {seeding:6.1f} s")
    print(f"baseline, GuideService.create:           {count / direct:7,.0f} guides/s   {direct:6.1f} s")
    if indexing:
        print(f"baseline + its index jobs worked off:    {count / (direct + drain):7,.0f} guides/s   "
              f"{direct + drain:6.1f} s")  # fmt: skip
    print(f"backfill, B reports N remote guides:     {rate:7,.0f} entries/s  {backfill:6.1f} s")
    if searchable is not None:
        print(f"backfill, all N searchable on B:         {count / searchable:7,.0f} entries/s  {searchable:6.1f} s")
    if indexing:
        print(f"backfill / (baseline + indexing):        {backfill / (direct + drain):7.2f}x")
    print(
        f"target >= {TARGET_RATE:.0f} entries/s:                {rate:7,.0f}             {verdict(rate >= TARGET_RATE)}"
    )
    print(f"target backfill / baseline <= {TARGET_RATIO:.0f}:         {ratio:7.2f}x            "
          f"{verdict(ratio <= TARGET_RATIO)}")  # fmt: skip
    if profile_data is not None:
        print_profile(profile_data)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--guides", type=int, default=10_000, help="guides on A (default 10000)")
    parser.add_argument(
        "--with-indexing",
        action="store_true",
        help="after the baseline inserts, also time the Indexer working off their index jobs",
    )
    parser.add_argument("--profile", action="store_true", help="run B's server under cProfile and print the top")
    args = parser.parse_args(argv)
    if args.guides < 1:
        parser.error("--guides must be positive")
    run(args.guides, args.profile, args.with_indexing)


if __name__ == "__main__":
    main()
