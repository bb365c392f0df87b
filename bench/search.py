"""Search at scale (issue 4): index build rate, endpoint latency against raw in-process search, server memory.

A benchmark, not a test. It

  1. generates N realistic guides (default 100,000) from a seeded, deterministic word list of ~5,000
     English-like words drawn with a Zipf distribution: titles of 3-8 words, a one-sentence summary, bodies
     of 150-400 words in sentences and paragraphs, 1-3 tags, 40 communities, a fifth of them from peers;
  2. builds the index with `server.search.rebuild` straight from SearchDocuments (docs/s), the function
     `kith reindex` and the worker's rebuilds use; `--index DIR` keeps it in DIR and a later run with the
     same --docs reuses it instead of building it again (the build is then not measured);
  3. baseline: runs the 300 two-word queries through a raw in-process Whoosh searcher, paced at 20/s: one
     long-lived `Searcher` on that index, each query parsed with Kith's parser and searched for its top 20
     (`searcher.search(q, limit=20)`, Whoosh's stock top-20 collector), nothing else;
  4. starts a real `kith serve --no-worker` process whose data dir holds that index (the web process only
     reads the index; `--no-worker` keeps the Indexer from rebuilding it from the empty database), and sends
     the same queries to GET /api/v1/search at a steady 20 requests/s (open loop: each request leaves at its
     scheduled time whatever the others do, and its latency counts from that time), after a warm-up; each
     answer carries what API.md specifies (items with snippets, exact total, facets, next_cursor), and its
     page is checked against the raw search's, and a page that differs against Whoosh's ranking of every
     match (`TopCollector(replace=0)`: the `limit=20` collector swaps matchers as it goes and can drop
     documents that belong in the top 20);
  5. reads the server process's peak RSS (VmHWM in /proc/<pid>/status) after the run;
  6. write to searchable: restarts the server on the same data dir with its worker (`kith serve`, indexing in
     its own process as in production), creates guides through the API one at a time, 0.5 s apart, each with
     a word no other guide has, and times each from the creation's response (the write committed) until
     GET /api/v1/search finds it (polled every 10 ms); then deletes them and waits until search no longer
     finds them, so that a kept index (--index) still holds exactly --docs guides.

Targets: endpoint p95 <= 15 ms, endpoint p95 / raw p95 <= 1.5, peak RSS <= 300 MB.

Both backends are also compared with SQLite FTS5 over the same guides in the same run (bench/search_fts5.py: an
FTS5 table built in one transaction, the same queries answered with a bm25 top 20, `snippet()` and an exact
count, in this process, paced the same way): the endpoint's p95 and the index build rate as ratios to FTS5's.
Issue 16's goals for the whoosh backend: p95 <= 0.1x FTS5's, build rate >= 0.5x FTS5's.

`--backend postgres` measures the `postgres` search backend instead, on a fresh PostgreSQL database: the
guides are copied into `guides` (bench/search_postgres.py; the trigger computes each vector), the build rate is
that of `kith reindex` (`PostgresBackend.rebuild`: every vector computed, again or, on a schema with no trigger,
for the first time), the endpoint runs on
`kith serve --no-worker` with KITH_SEARCH_BACKEND=postgres, and write to searchable as above (the write's commit
is the index update). The raw Whoosh baseline and the judged set are the whoosh backend's and are skipped.
Issue 16's goals for it: p95 <= 50 ms at 100,000 guides, write to searchable <= 100 ms.

Everything listens on and talks to 127.0.0.1 only; the temp data dir and the server process are removed on
the way out.

    .venv/bin/python bench/search.py                 # 100,000 guides (about 3-5 minutes to build here)
    .venv/bin/python bench/search.py --index /tmp/kith-bench-index   # keep the index; reruns reuse it
    .venv/bin/python bench/search.py --docs 20000    # under a minute to build
    .venv/bin/python bench/search.py --docs 2000     # a smoke run
    .venv/bin/python bench/search.py --profile       # afterwards, cProfile 100 raw searches and print the top
    .venv/bin/python bench/search.py --writes 0      # skip the write-to-searchable step
    .venv/bin/python bench/search.py --backend postgres --docs 2000   # the postgres backend, a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import shutil
import sqlite3
import statistics
import string
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

import httpx
from whoosh.collectors import TopCollector
from whoosh.searching import Searcher

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make the project's `server` and `tests.support` importable

import search_fts5  # noqa: E402  (bench/ is the script's own directory on sys.path)
import search_postgres  # noqa: E402

from server.search import (  # noqa: E402
    IndexWriterQueue,
    SearchDocument,
    SearchIndex,
    SearchService,
    index_ok,
    rebuild,
)
from server.search.prefixes import expand_prefixes  # noqa: E402
from server.search.query import parse_query  # noqa: E402
from server.search.storage import open_generation, read_current  # noqa: E402
from tests.search.relevance.corpus import GUIDES, JUDGMENTS, ndcg_at_10, success_at_3  # noqa: E402
from tests.support import postgres  # noqa: E402
from tests.support.server import KithServer  # noqa: E402

SEED = 4
VOCABULARY = 5_000
ZIPF_S = 1.0
_TABLE_BITS = 20
_TABLE_SIZE = 2**_TABLE_BITS
QUERIES = 300
PAGE = 20  # the endpoint's default limit
RATE = 20.0  # requests per second
WARMUP = 30
TARGET_P95_MS = 15.0
TARGET_RATIO = 1.5
TARGET_RSS_MB = 300.0
# Issue 16: against SQLite FTS5 on the same guides, and the postgres backend's own bounds.
TARGET_FTS5_P95 = {"whoosh": 0.1}
TARGET_FTS5_BUILD = {"whoosh": 0.5}
TARGET_POSTGRES_P95_MS = 50.0
TARGET_POSTGRES_WRITE_MS = 100.0
REQUEST_TIMEOUT = 600.0  # generous: a backend slower than the rate queues its requests, and that is measured
WRITES = 40  # guides created one at a time for write-to-searchable
WRITE_INTERVAL = 0.5  # seconds between one guide being found and the next one's creation
POLL_INTERVAL = 0.01
WRITE_TIMEOUT = 60.0
WRITE_COMMUNITY = "bench-writes"
LOCAL_HOST = "kith.bench.example"
PEER_HOSTS = ("peer-one.example", "peer-two.example", "peer-three.example", "peer-four.example")

# -- the corpus ---------------------------------------------------------------------------------------------


def _parts(text: str) -> list[str]:
    return text.split(" ")


_ONSETS = _parts(
    "b bl br c ch cl cr d dr f fl fr g gl gr h j k l m n p pl pr qu r s sc sh sk sl sm sn sp st str sw t th tr "
    "v w wh y z"
)
_VOWELS = _parts("a e i o u a e i o ai ea ee ie oa oo ou")
_CODAS = _parts("- - - - b ck d ft g l ld lk ll lt m mp n nd ng nk nt p r rd rk rm rn rt s sk sp ss st t th x")
# Words the query language or the analyzer treats specially: Whoosh's English stop words and operators.
_RESERVED = {
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "for", "from", "have", "if", "in", "is", "it",
    "may", "not", "of", "on", "or", "tbd", "that", "the", "this", "to", "us", "we", "when", "will", "with",
    "yet", "you", "your", "near",
}  # fmt: skip


class Corpus:
    """A deterministic vocabulary ranked by frequency (short words first, as in real text), drawn Zipf-wise."""

    def __init__(self, seed: int = SEED, size: int = VOCABULARY, s: float = ZIPF_S) -> None:
        rng = random.Random(seed)
        words: dict[str, float] = {}
        while len(words) < size:
            syllables = rng.choices((1, 2, 3), weights=(35, 48, 17))[0]
            word = "".join(
                rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS).strip("-") for _ in range(syllables)
            )
            if len(word) >= 3 and word not in _RESERVED and word not in words:
                words[word] = len(word) + rng.uniform(0, 6)  # frequent words tend to be short
        self.words = sorted(words, key=words.__getitem__)
        # Inverse CDF sampled on 2**20 points: one table lookup per word instead of a bisect (the rarest word,
        # p ~ 2e-5, still gets ~20 slots), so 30 million draws take seconds.
        cumulative = list(accumulate(1.0 / rank**s for rank in range(1, size + 1)))
        slots = [round(c / cumulative[-1] * _TABLE_SIZE) for c in cumulative]
        self._table = [w for w, lo, hi in zip(self.words, [0, *slots], slots, strict=False) for _ in range(hi - lo)]
        assert len(self._table) == _TABLE_SIZE
        self.tags = self.words[40:440:2]  # 200 tags of middling frequency
        self.communities = [f"{a}-{b}" for a, b in zip(self.words[100:140], self.words[600:640], strict=True)]

    def draw(self, rng: random.Random, k: int) -> list[str]:
        table, bits = self._table, rng.getrandbits
        return [table[bits(_TABLE_BITS)] for _ in range(k)]

    def sentence(self, rng: random.Random, low: int, high: int) -> str:
        words = self.draw(rng, rng.randint(low, high))
        return words[0].capitalize() + " " + " ".join(words[1:]) + "."

    def title(self, rng: random.Random) -> str:
        words = self.draw(rng, rng.randint(3, 8))
        return " ".join([words[0].capitalize(), *words[1:]])

    def body(self, rng: random.Random) -> str:
        """150-400 words in sentences of 6-18 words and paragraphs of 3-6 sentences (plain text, one line each)."""
        words = self.draw(rng, rng.randint(150, 400))
        paragraphs: list[str] = []
        at = 0
        while at < len(words):
            sentences: list[str] = []
            for _ in range(rng.randint(3, 6)):
                if at >= len(words):
                    break
                n = rng.randint(6, 18)
                sentences.append(" ".join([words[at].capitalize(), *words[at + 1 : at + n]]) + ".")
                at += n
            paragraphs.append(" ".join(sentences))
        return "\n".join(paragraphs)

    def markdown_body(self, rng: random.Random) -> str:
        """The same kind of body as markdown, with a heading, some emphasis and a list, as guides are written."""
        paragraphs = self.body(rng).split("\n")
        heading = " ".join(self.draw(rng, rng.randint(2, 4))).capitalize()
        parts = [f"## {heading}", *paragraphs]
        if len(paragraphs) > 2:
            words = paragraphs[1].split(" ")
            words[1] = f"*{words[1]}*"
            parts[2] = " ".join(words)
            items = paragraphs[-1].rstrip(".").split(". ")
            parts[-1] = "\n".join(f"- {item}" for item in items)
        return "\n\n".join(parts)

    def query(self, rng: random.Random) -> str:
        first, second = self.draw(rng, 1)[0], self.draw(rng, 1)[0]
        while second == first:
            second = self.draw(rng, 1)[0]
        return f"{first} {second}"


def documents(corpus: Corpus, count: int, seed: int = SEED) -> Iterator[SearchDocument]:
    rng = random.Random(seed + 1)
    epoch = datetime(2023, 1, 1, tzinfo=UTC)
    for n in range(count):
        community = corpus.communities[min(int(rng.paretovariate(1.2)) - 1, len(corpus.communities) - 1)]
        remote = rng.random() < 0.2
        instance = rng.choice(PEER_HOSTS) if remote else LOCAL_HOST
        created = epoch + timedelta(seconds=rng.randint(0, 3 * 365 * 86_400))
        title = corpus.title(rng)
        slug = "-".join(title.lower().split()) + f"-{n}"
        yield SearchDocument(
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            type="guide",
            title=title,
            url=f"https://{instance}/c/{community}/guides/{slug}",
            community=f"{community}@{instance}" if remote else community,
            community_name=community.replace("-", " ").title(),
            instance=instance,
            origin="remote" if remote else "local",
            created_at=created,
            updated_at=created + timedelta(seconds=rng.randint(0, 90 * 86_400)),
            summary=corpus.sentence(rng, 8, 20),
            body=corpus.body(rng),
            tags=sorted(set(rng.sample(corpus.tags, rng.randint(1, 3)))),
            status="published",
            author="".join(rng.choices(string.ascii_lowercase, k=6)),
        )


# -- measuring ----------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile, in the values' unit."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


def describe(latencies: Sequence[float]) -> str:
    ms = [x * 1000 for x in latencies]
    return (
        f"p50 {percentile(ms, 50):7.1f} ms   p95 {percentile(ms, 95):7.1f} ms   p99 {percentile(ms, 99):7.1f} ms   "
        f"max {max(ms):7.1f} ms   mean {statistics.fmean(ms):7.1f} ms"
    )


async def endpoint_latencies(
    base_url: str, queries: Sequence[str], warmup: Sequence[str]
) -> tuple[list[float], list[int], list[list[str] | None]]:
    """Open-loop: request i leaves at start + i/RATE; latency is from that scheduled time to the full answer."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=REQUEST_TIMEOUT, trust_env=False) as api:
        for q in warmup:  # opens the connection, the server's searcher pool and its facet tables
            (await api.get("/api/v1/search", params={"q": q})).raise_for_status()
        latencies: list[float] = [0.0] * len(queries)
        totals: list[int] = [0] * len(queries)
        pages: list[list[str] | None] = [[] for _ in queries]

        async def one(i: int, scheduled: float) -> None:
            response = await api.get("/api/v1/search", params={"q": queries[i]})
            latencies[i] = time.perf_counter() - scheduled
            if response.status_code != 200:
                raise RuntimeError(f"q={queries[i]!r}: {response.status_code} {response.text[:300]}")
            answer = response.json()
            totals[i] = answer["total"]
            # A respelled or relaxed answer searched another query than the raw search: not compared.
            pages[i] = None if answer["corrected"] or answer["relaxed"] else [item["id"] for item in answer["items"]]

        start = time.perf_counter() + 0.05
        tasks = []
        for i in range(len(queries)):
            scheduled = start + i / RATE
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i, scheduled)))
        await asyncio.gather(*tasks)
    return latencies, totals, pages


def kith_query(searcher: Searcher, q: str) -> Any:
    """The Whoosh query Kith searches for q: parsed, and the last word's prefix expanded to the index's terms."""
    parsed = parse_query(q)
    assert parsed is not None
    return expand_prefixes(parsed.query, searcher.reader())


def relevance(directory: Path) -> tuple[float, float]:
    """success@3 and nDCG@10 of the judged set (tests/search/relevance) through `SearchService.search`."""
    index = directory / "relevance"
    queue = IndexWriterQueue(SearchIndex(index))
    keys = {}
    when = datetime(2026, 1, 1, tzinfo=UTC)
    for guide in GUIDES:
        doc_id = str(uuid.uuid4())
        keys[doc_id] = guide.key
        queue.add(
            SearchDocument(
                id=doc_id, type="guide", title=guide.title, url=f"http://127.0.0.1/{guide.key}",
                community=guide.community, instance="127.0.0.1", origin="local", created_at=when, updated_at=when,
                summary=guide.summary, body=guide.body, tags=list(guide.tags),
            )
        )  # fmt: skip
    queue.flush()
    service = SearchService(index)
    try:
        found, gain = 0, 0.0
        for query, expected in JUDGMENTS:
            ranked = [keys[item.id] for item in service.search(query, limit=10).items]
            found += success_at_3(ranked, expected)
            gain += ndcg_at_10(ranked, expected)
    finally:
        service.close()
    return found / len(JUDGMENTS), gain / len(JUDGMENTS)


def raw_latencies(
    searcher: Searcher, queries: Sequence[str], warmup: Sequence[str]
) -> tuple[list[float], list[list[str]]]:
    """Parse + top-20 search on one long-lived Whoosh searcher in this process, paced at the same rate.

    The page's ids are read after the clock stops: they are only for checking the endpoint's answers.
    """
    for q in warmup:
        searcher.search(kith_query(searcher, q), limit=PAGE)
    latencies: list[float] = []
    pages: list[list[str]] = []
    start = time.perf_counter() + 0.05
    for i, q in enumerate(queries):
        scheduled = start + i / RATE
        time.sleep(max(0.0, scheduled - time.perf_counter()))
        began = time.perf_counter()
        results = searcher.search(kith_query(searcher, q), limit=PAGE)
        latencies.append(time.perf_counter() - max(began, scheduled))
        pages.append([searcher.stored_fields(docnum)["id"] for _, docnum in results.top_n])
    return latencies, pages


def exhaustive_pages(index: Path, queries: Sequence[str]) -> list[list[str]]:
    """Whoosh's top 20 without matcher replacement: its scores for every match, ranked, cut at 20.

    `searcher.search(q, limit=20)` uses a TopCollector that replaces matchers by cheaper ones as the
    20th score rises (a union whose sides each score below it becomes an intersection or AND MAYBE),
    which can drop documents that belong in the top 20. With `replace=0` it ranks as scoring every
    match does (`limit=None`), which is what the endpoint computes.
    """
    name = read_current(index)
    assert name is not None
    ix = open_generation(index / name)
    pages: list[list[str]] = []
    try:
        with ix.searcher() as searcher:
            for q in queries:
                top = TopCollector(limit=PAGE, replace=0)
                searcher.search_with_collector(kith_query(searcher, q), top)
                pages.append([searcher.stored_fields(docnum)["id"] for _, docnum in top.results().top_n])
    finally:
        ix.close()
    return pages


async def _found(api: httpx.AsyncClient, word: str, guide_id: str) -> bool:
    response = await api.get("/api/v1/search", params={"q": word})
    response.raise_for_status()
    return any(item["id"] == guide_id for item in response.json()["items"])


async def _until(api: httpx.AsyncClient, word: str, guide_id: str, *, present: bool) -> float:
    """Poll search until the guide is (or is no longer) found; returns when that was seen (perf_counter)."""
    deadline = time.perf_counter() + WRITE_TIMEOUT
    while await _found(api, word, guide_id) != present:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"guide {guide_id} ({word}) still {'missing' if present else 'found'} after "
                               f"{WRITE_TIMEOUT:.0f} s")  # fmt: skip
        await asyncio.sleep(POLL_INTERVAL)
    return time.perf_counter()


async def write_to_searchable(server: KithServer, corpus: Corpus, writes: int) -> list[float]:
    """Create guides through the API one at a time; seconds from each creation's response until search finds it.

    One unmeasured guide first, so that the indexing process has started and the searcher is open. The
    guides are deleted afterwards and the step waits until search no longer finds them.
    """
    rng = random.Random(SEED + 3)
    headers = {"Authorization": f"Bearer {server.token()}"}
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=headers, timeout=REQUEST_TIMEOUT, trust_env=False
    ) as api:
        created = await api.post("/api/v1/communities", json={"slug": WRITE_COMMUNITY, "name": "Bench writes"})
        created.raise_for_status()
        latencies: list[float] = []
        guides: list[tuple[str, str]] = []
        for n in range(writes + 1):
            word = f"zq{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"  # in no other guide
            body = {"title": f"{corpus.title(rng)} {word}", "body_markdown": corpus.markdown_body(rng),
                    "tags": sorted(set(rng.sample(corpus.tags, rng.randint(1, 3))))}  # fmt: skip
            response = await api.post(f"/api/v1/communities/{WRITE_COMMUNITY}/guides", json=body)
            committed = time.perf_counter()
            response.raise_for_status()
            guide_id = response.json()["id"]
            guides.append((word, guide_id))
            found = await _until(api, word, guide_id, present=True)
            if n:  # the first one waited for the indexing process to start
                latencies.append(found - committed)
            await asyncio.sleep(WRITE_INTERVAL)
        for _, guide_id in guides:
            (await api.delete(f"/api/v1/guides/{guide_id}")).raise_for_status()
        for word, guide_id in guides:
            await _until(api, word, guide_id, present=False)
    return latencies


def profile_service(index: Path, queries: Sequence[str]) -> None:
    """cProfile an unpaced pass of in-process `SearchService.search` calls (measured passes run without it)."""
    service = SearchService(index)
    try:
        for q in queries[:5]:
            service.search(q)
        profiler = cProfile.Profile()
        profiler.enable()
        for q in queries:
            service.search(q)
        profiler.disable()
    finally:
        service.close()
    for order, title in (("cumulative", "cumulative"), ("tottime", "own time")):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(30)
        print(f"\ncProfile of {len(queries)} SearchService searches ({title}):\n{out.getvalue()}")


def proc_status(pid: int, field: str) -> float | None:
    """A kB field of /proc/<pid>/status, in MB; None where /proc is not available."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def directory_mb(path: Path) -> float:
    """The size of a directory's files, or of a file."""
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def build_index(path: Path, corpus: Corpus, count: int) -> float:
    """Generate the documents, then index them; returns indexing docs/s (generation excluded)."""
    started = time.perf_counter()
    docs = list(documents(corpus, count))
    words = sum(len(d.body.split()) + len(d.title.split()) + len(d.summary.split()) for d in docs)
    print(f"  generated {count:,} guides ({words / count:.0f} words each on average) "
          f"in {time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    step = max(count // 10, 1)
    started, cpu_started = time.perf_counter(), time.process_time()

    def progress(n: int) -> None:
        if n % step == 0:
            print(f"    {n:>7,} indexed  {time.perf_counter() - started:6.1f} s", flush=True)

    indexed = rebuild(path, iter(docs), progress)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    assert indexed == count, (indexed, count)
    del docs
    rate = count / seconds
    print(f"  rebuild: {count:,} docs in {seconds:.1f} s = {rate:,.0f} docs/s; CPU {cpu:.1f} s = "
          f"{count / cpu:,.0f} docs per CPU-second (index: {directory_mb(path):.0f} MB)", flush=True)  # fmt: skip
    return rate


def reusable(path: Path, count: int) -> bool:
    """True if path holds a usable index of exactly count documents (from an earlier run with --index)."""
    if not index_ok(path):
        return False
    name = read_current(path)
    assert name is not None
    ix = open_generation(path / name)
    try:
        return ix.doc_count() == count
    finally:
        ix.close()


def prepare_index(index: Path, keep: Path | None, corpus: Corpus, count: int) -> float | None:
    """Build the index at `index` (in `keep`, linked there, if given); docs/s, or None if reused."""
    if keep is None:
        return build_index(index, corpus, count)
    keep = keep.resolve()
    index.symlink_to(keep, target_is_directory=True)
    if reusable(keep, count):
        print(f"  reusing the index of {count:,} guides in {keep} ({directory_mb(keep):.0f} MB): "
              "build not measured in this run", flush=True)  # fmt: skip
        return None
    shutil.rmtree(keep, ignore_errors=True)
    keep.mkdir(parents=True)
    return build_index(keep, corpus, count)


def fts5_baseline(
    directory: Path, corpus: Corpus, count: int, queries: Sequence[str], warmup: Sequence[str]
) -> tuple[float, list[float]]:
    """SQLite FTS5 on the same guides: its build rate (docs/s) and the same queries' latencies."""
    docs, seconds, cpu = search_fts5.build(directory / "fts5.db", documents(corpus, count))
    rate = docs / seconds
    size = directory_mb(directory / "fts5.db")
    print(f"  SQLite {sqlite3.sqlite_version} FTS5 build: {docs:,} docs in {seconds:.1f} s = {rate:,.0f} docs/s; "
          f"{docs / cpu:,.0f} docs per CPU-second ({size:.0f} MB)", flush=True)  # fmt: skip
    latencies = search_fts5.latencies(directory / "fts5.db", queries, warmup, RATE)
    (directory / "fts5.db").unlink()
    print(f"  FTS5 top {PAGE} + snippet + count {describe(latencies)}", flush=True)
    return rate, latencies


def against_fts5(backend: str, build_rate: float | None, endpoint: Sequence[float], fts5: tuple[float, list[float]]):  # type: ignore[no-untyped-def]
    """Rows of the report: the endpoint's p95 and the build rate as ratios to FTS5's."""
    fts5_rate, fts5_latencies = fts5
    ratio = percentile(endpoint, 95) / percentile(fts5_latencies, 95)
    p95_target, build_target = TARGET_FTS5_P95.get(backend), TARGET_FTS5_BUILD.get(backend)
    rows = [
        ("FTS5 p50 / p95 (top 20, snippet, count)", f"{percentile(fts5_latencies, 50) * 1000:,.1f} / "
         f"{percentile(fts5_latencies, 95) * 1000:,.1f} ms", ""),
        ("FTS5 build", f"{fts5_rate:,.0f} docs/s", ""),
        (f"endpoint p95 / FTS5 p95{f' <= {p95_target}' if p95_target else ''}", f"{ratio:,.2f}x",
         verdict(ratio <= p95_target) if p95_target else ""),
    ]  # fmt: skip
    if build_rate is not None:
        build = build_rate / fts5_rate
        rows.append((f"build rate / FTS5's{f' >= {build_target}' if build_target else ''}", f"{build:,.2f}x",
                     verdict(build >= build_target) if build_target else ""))  # fmt: skip
    return rows


async def run_postgres(count: int, writes: int, how_many: int = QUERIES) -> int:
    """The postgres backend: guides copied into a fresh database, its rebuild, its endpoint, write to searchable."""
    from server.db import create_engine, create_sessionmaker
    from server.search.postgres import PostgresBackend
    from server.settings import load_settings

    corpus = Corpus()
    qrng = random.Random(SEED + 2)
    queries = [corpus.query(qrng) for _ in range(how_many)]
    # Fewer queries, fewer warm-up ones: a warm-up query waits for its answer, seconds each on a slow backend.
    warmup = [corpus.query(qrng) for _ in range(WARMUP)][: max(3, min(WARMUP, how_many // 10))]
    print(f"search bench, postgres backend: {count:,} guides, {how_many} two-word queries at {RATE:g}/s after "
          f"{len(warmup)} warm-up; load average {load_average()}", flush=True)  # fmt: skip
    with postgres.fresh_database() as url:
        server = KithServer(database_url=url, worker=False, env={"KITH_SEARCH_BACKEND": "postgres"})
        try:
            fts5 = fts5_baseline(server.data_dir, corpus, count, queries, warmup)
            server.start()  # migrates, and the first start makes the admin (the guides' authors come after)
            server.stop()
            step = max(count // 10, 1)
            loaded, copy_seconds = await search_postgres.load(
                url, documents(corpus, count), LOCAL_HOST,
                lambda n: print(f"    {n:>7,} copied", flush=True) if n % step == 0 else None,
            )  # fmt: skip
            print(f"  copied {loaded:,} guides in {copy_seconds:.1f} s ({loaded / copy_seconds:,.0f}/s; vectors by the "
                  "schema's trigger where it has one)", flush=True)  # fmt: skip
            settings = load_settings(env=server.env)
            engine = create_engine(url)
            try:
                started = time.perf_counter()
                rebuilt = await PostgresBackend(settings, engine).rebuild(create_sessionmaker(engine))
                build_seconds = time.perf_counter() - started
            finally:
                await engine.dispose()
            build_rate = rebuilt / build_seconds
            print(f"  kith reindex (PostgresBackend.rebuild): {rebuilt:,} entries in {build_seconds:.1f} s = "
                  f"{build_rate:,.0f} docs/s", flush=True)  # fmt: skip
            server.start()
            assert server.pid is not None
            cpu_before, wall_before = cpu_seconds(server.pid), time.perf_counter()
            endpoint, totals, _ = await endpoint_latencies(server.base_url, queries, warmup)
            wall = time.perf_counter() - wall_before
            cpu_after = cpu_seconds(server.pid)
            print(f"  GET /api/v1/search         {describe(endpoint)}", flush=True)
            server.stop()
            written: list[float] = []
            if writes:
                server.worker = True
                server.start()
                written = await write_to_searchable(server, corpus, writes)
                print(f"  write to searchable        {describe(written)}", flush=True)
                server.stop()
        finally:
            server.close()
    p95 = percentile(endpoint, 95) * 1000
    print(f"\n{count:,} guides, postgres backend; load average now {load_average()}")
    print(f"queries with hits: {sum(1 for t in totals if t > 0)}/{len(totals)}; matches per query: "
          f"median {statistics.median(totals):,.0f}, max {max(totals):,}")  # fmt: skip
    if cpu_before is not None and cpu_after is not None:
        print(f"server CPU per request {(cpu_after - cpu_before) / len(endpoint) * 1000:.1f} ms "
              f"(the database's is not counted)")  # fmt: skip
    print(f"the endpoint answered {len(endpoint)} requests in {wall:.1f} s")
    rows = [
        ("kith reindex (every vector again)", f"{build_rate:,.0f} docs/s", ""),
        ("GET /api/v1/search p50 / p95", f"{percentile(endpoint, 50) * 1000:,.1f} / {p95:,.1f} ms", ""),
        (f"endpoint p95 <= {TARGET_POSTGRES_P95_MS:.0f} ms", f"{p95:,.1f} ms", verdict(p95 <= TARGET_POSTGRES_P95_MS)),
    ]
    if written:
        p95_written = percentile(written, 95) * 1000
        rows += [
            ("write to searchable p50 / p95", f"{percentile(written, 50) * 1000:,.0f} / {p95_written:,.0f} ms", ""),
            (f"write to searchable p95 <= {TARGET_POSTGRES_WRITE_MS:.0f} ms", f"{p95_written:,.0f} ms",
             verdict(p95_written <= TARGET_POSTGRES_WRITE_MS)),
        ]  # fmt: skip
    rows += against_fts5("postgres", build_rate, endpoint, fts5)
    for name, value, result in rows:
        print(f"{name:<44} {value:>24}  {result}")
    return 0


async def run(count: int, profile: bool, keep: Path | None, writes: int) -> int:
    corpus = Corpus()
    qrng = random.Random(SEED + 2)
    queries = [corpus.query(qrng) for _ in range(QUERIES)]
    warmup = [corpus.query(qrng) for _ in range(WARMUP)]
    print(f"search bench: {count:,} guides, vocabulary {len(corpus.words):,} words (Zipf s={ZIPF_S}), "
          f"{QUERIES} two-word queries at {RATE:.0f}/s after {WARMUP} warm-up; load average {load_average()}",
          flush=True)  # fmt: skip
    server = KithServer(worker=False, startup_timeout=60.0)  # owns a temp data dir, removed by close()
    try:
        judged = relevance(server.data_dir)
        print(f"  judged set ({len(JUDGMENTS)} queries, {len(GUIDES)} guides): success@3 {judged[0]:.3f}, "
              f"nDCG@10 {judged[1]:.3f}", flush=True)  # fmt: skip
        index = server.data_dir / "search"
        build_rate = prepare_index(index, keep, corpus, count)

        # The baseline first: the same searches in this process, no HTTP, no server running.
        name = read_current(index)
        assert name is not None
        ix = open_generation(index / name)
        with ix.searcher() as searcher:
            raw, raw_pages = raw_latencies(searcher, queries, warmup)
        ix.close()
        print(f"  raw Whoosh search (top {PAGE}) {describe(raw)}", flush=True)
        fts5 = fts5_baseline(server.data_dir, corpus, count, queries, warmup)

        server.start()  # kith migrate, kith serve --no-worker, wait for /readyz
        assert server.pid is not None
        print(f"  kith serve --no-worker on {server.base_url} (pid {server.pid}), "
              f"RSS at start {proc_status(server.pid, 'VmRSS') or 0:.0f} MB", flush=True)  # fmt: skip
        cpu_before, wall_before = cpu_seconds(server.pid), time.perf_counter()
        endpoint, totals, pages = await endpoint_latencies(server.base_url, queries, warmup)
        wall = time.perf_counter() - wall_before
        cpu_after = cpu_seconds(server.pid)
        memory = {field: proc_status(server.pid, field) for field in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}
        print(f"  GET /api/v1/search         {describe(endpoint)}", flush=True)
        other = sum(1 for page in pages if page is None)
        differ = [i for i, (a, b) in enumerate(zip(pages, raw_pages, strict=True)) if a is not None and a != b]
        print(f"  answers respelled or relaxed (few or no results as typed; not compared): {other}", flush=True)
        compared = len(pages) - other
        print(f"  pages that differ from the raw search's top {PAGE}: {len(differ)} of {compared}", flush=True)
        server.stop()
        if differ:
            exact = exhaustive_pages(index, [queries[i] for i in differ])
            same = sum(1 for i, page in zip(differ, exact, strict=True) if pages[i] == page)
            print(f"  of those, equal to Whoosh's top {PAGE} without matcher replacement (TopCollector replace=0, "
                  f"the ranking of limit=None): {same} of {len(differ)}", flush=True)  # fmt: skip
        if profile:
            profile_service(index, queries[:100])
        written: list[float] = []
        if writes:
            server.worker = True
            server.start()  # kith serve with its worker, which indexes in a process of its own
            print(f"  kith serve (worker on) on {server.base_url}: {writes} guides created one at a time", flush=True)
            written = await write_to_searchable(server, corpus, writes)
            print(f"  write to searchable        {describe(written)}", flush=True)
            server.stop()
    finally:
        server.close()
    report(count, build_rate, raw, endpoint, totals, wall, cpu_before, cpu_after, memory, written, judged)
    for name, value, result in against_fts5("whoosh", build_rate, endpoint, fts5):
        print(f"{name:<38} {value:>24}  {result}")
    return 0


def report(
    count: int,
    build_rate: float | None,
    raw: Sequence[float],
    endpoint: Sequence[float],
    totals: Sequence[int],
    wall: float,
    cpu_before: float | None,
    cpu_after: float | None,
    memory: dict[str, float | None],
    written: Sequence[float],
    judged: tuple[float, float],
) -> None:
    p95_endpoint, p95_raw = percentile(endpoint, 95) * 1000, percentile(raw, 95) * 1000
    ratio = p95_endpoint / p95_raw
    mean_raw = statistics.fmean(raw) * 1000
    mean_endpoint_cpu = (cpu_after - cpu_before) / len(endpoint) * 1000 if cpu_before and cpu_after else None
    print(f"\n{count:,} guides; load average now {load_average()}")
    print(f"queries with hits: {sum(1 for t in totals if t > 0)}/{len(totals)}; matches per query: "
          f"median {statistics.median(totals):,.0f}, max {max(totals):,}")  # fmt: skip
    print(f"raw mean search time {mean_raw:.1f} ms: one core (Whoosh holds the GIL) serves at most "
          f"{1000 / mean_raw:.1f} searches/s against the {RATE:.0f}/s offered")  # fmt: skip
    if mean_endpoint_cpu is not None:
        print(f"server CPU per request {mean_endpoint_cpu:.1f} ms")
    print(f"the endpoint answered {len(endpoint)} requests in {wall:.1f} s ({len(endpoint) / wall:.1f}/s)", end="")
    if cpu_before is not None and cpu_after is not None:
        print(f", server CPU {(cpu_after - cpu_before) / wall:.2f} cores", end="")
    print()
    peak, rss, anon, mapped = (memory[k] for k in ("VmHWM", "VmRSS", "RssAnon", "RssFile"))
    if rss is not None:
        print(f"server RSS after the run {rss:.0f} MB (anonymous {anon or 0:.0f} MB, file-backed {mapped or 0:.0f} MB)")
    rows = [
        (f"judged set success@3 / nDCG@10 ({len(JUDGMENTS)} q)", f"{judged[0]:.3f} / {judged[1]:.3f}", ""),
        (
            "index build (server.search.rebuild)",
            f"{build_rate:,.0f} docs/s" if build_rate is not None else "reused, not measured",
            "",
        ),
        ("raw Whoosh top-20 p50 / p95", f"{percentile(raw, 50) * 1000:,.1f} / {p95_raw:,.1f} ms", ""),
        ("GET /api/v1/search p50 / p95", f"{percentile(endpoint, 50) * 1000:,.1f} / {p95_endpoint:,.1f} ms", ""),
        (
            "write to searchable p50 / p95",
            f"{percentile(written, 50) * 1000:,.0f} / {percentile(written, 95) * 1000:,.0f} ms"
            if written
            else "skipped",
            "",
        ),
        (f"endpoint p95 <= {TARGET_P95_MS:.0f} ms", f"{p95_endpoint:,.1f} ms", verdict(p95_endpoint <= TARGET_P95_MS)),
        (f"endpoint p95 / raw p95 <= {TARGET_RATIO}", f"{ratio:,.2f}x", verdict(ratio <= TARGET_RATIO)),
        (
            f"server peak RSS (VmHWM) <= {TARGET_RSS_MB:.0f} MB",
            f"{peak:,.0f} MB" if peak is not None else "/proc n/a",
            verdict(peak is not None and peak <= TARGET_RSS_MB),
        ),
    ]
    for name, value, result in rows:
        print(f"{name:<38} {value:>24}  {result}")


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: Sequence[str] | None = None) -> None:
    global RATE
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000, help="guides to index (default 100000)")
    parser.add_argument(
        "--profile", action="store_true", help="after measuring, cProfile 100 service searches and print the top"
    )
    parser.add_argument(
        "--index", type=Path, help="build the index here and keep it; a later run with the same --docs reuses it"
    )
    parser.add_argument(
        "--writes", type=int, default=WRITES, help=f"guides timed from write to searchable (default {WRITES}; 0: skip)"
    )
    parser.add_argument("--backend", choices=("whoosh", "postgres"), default="whoosh", help="the search backend")
    parser.add_argument(
        "--queries", type=int, default=QUERIES, help=f"with --backend postgres: queries sent (default {QUERIES})"
    )
    parser.add_argument("--rate", type=float, default=RATE, help=f"queries per second (default {RATE:g})")
    args = parser.parse_args(argv)
    if args.docs < 1:
        parser.error("--docs must be positive")
    if args.writes < 0:
        parser.error("--writes must not be negative")
    RATE = args.rate
    if args.backend == "postgres":
        sys.exit(asyncio.run(run_postgres(args.docs, args.writes, args.queries)))
    sys.exit(asyncio.run(run(args.docs, args.profile, args.index, args.writes)))


if __name__ == "__main__":
    main()
