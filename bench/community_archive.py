"""Export and import of a large community (issue 13): time and peak memory of `kith community export|import`.

A benchmark, not a test. It

  1. makes a fresh SQLite database (or, with --postgres, a PostgreSQL one on 127.0.0.1:5432) with `kith
     migrate`, and writes a community of N guides (default 10,000) with R revisions each (default 5) straight
     into it in batches, as an instance that had grown them would hold them: a markdown body of 300-600 words
     per revision, 1-3 tags;
  2. runs `kith community export SLUG -o FILE` as its own process and prints its wall time, its peak resident
     memory (the process's ru_maxrss) and the archive's size;
  3. runs `kith community import FILE` into a second fresh database and prints the same; the import recreates
     every guide and revision, and records one announcement and one index job per guide.

The export's memory is meant to stay flat as N grows (guides are read and written a page at a time); run it
with two values of N to see that. Nothing listens on the network; temp dirs and databases are removed.

    .venv/bin/python bench/community_archive.py                  # 10,000 guides x 5 revisions
    .venv/bin/python bench/community_archive.py --guides 500     # a quick smoke run
    .venv/bin/python bench/community_archive.py --postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make the project's `server` and `tests.support` importable

from sqlalchemy import insert  # noqa: E402

from server.db import create_engine, create_sessionmaker  # noqa: E402
from server.models import Community, Guide, GuideRevision, Membership, User  # noqa: E402
from server.refs import key_of  # noqa: E402
from tests.support import postgres  # noqa: E402

BASE_URL = "http://127.0.0.1:8000"
WORDS = ["garden", "water", "soil", "seed", "compost", "harvest", "tool", "share", "plan", "repair", "kitchen"]
BATCH = 500


@contextlib.contextmanager
def database(use_postgres: bool, directory: Path) -> Iterator[str]:
    if use_postgres:
        with postgres.fresh_database() as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{directory / 'kith.db'}"


def kith(url: str, data_dir: Path, *args: str) -> tuple[float, int]:
    """Run `kith ARGS`; its wall time in seconds and its peak resident memory in MiB."""
    env = {**os.environ, "KITH_DATABASE_URL": url, "KITH_BASE_URL": BASE_URL, "KITH_DATA_DIR": str(data_dir)}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "server.cli", *args], env=env, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"kith {' '.join(args)} failed:\n{stderr}")
    return elapsed, usage.ru_maxrss // 1024


def body(rng: random.Random) -> str:
    paragraphs = []
    for _ in range(rng.randint(6, 12)):
        paragraphs.append(" ".join(rng.choice(WORDS) for _ in range(50)).capitalize() + ".")
    return "\n\n".join(paragraphs)


async def seed(url: str, guides: int, revisions: int) -> str:
    rng = random.Random(13)
    slug = "allotment"
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            author = User(username="grower", instance="127.0.0.1:8000", display_name="Grower",
                          uri=f"{BASE_URL}/u/grower", url=f"{BASE_URL}/u/grower")  # fmt: skip
            community = Community(uri=f"{BASE_URL}/c/{slug}", url=f"{BASE_URL}/c/{slug}", slug=slug,
                                  name="Allotment", local=True, instance="127.0.0.1:8000")  # fmt: skip
            session.add_all([author, community])
            await session.flush()
            session.add(Membership(community_id=community.id, user_id=author.id, role="moderator"))
            start = datetime(2025, 1, 1, tzinfo=UTC)
            for first in range(0, guides, BATCH):
                guide_rows, revision_rows = [], []
                for n in range(first, min(first + BATCH, guides)):
                    guide_id, created = uuid.uuid4(), start + timedelta(minutes=n)
                    tags = rng.sample(WORDS, rng.randint(1, 3))
                    texts = [body(rng) for _ in range(revisions)]
                    guide_rows.append({
                        "id": guide_id, "uri": f"{BASE_URL}/guides/{guide_id}",
                        "url": f"{BASE_URL}/c/{slug}/guides/g-{n}", "community_id": community.id,
                        "author_id": author.id, "slug": f"g-{n}", "title": f"Guide {n}", "summary": "",
                        "body_markdown": texts[-1], "body_html": "", "tags": tags, "tags_key": key_of(tags),
                        "license": "CC-BY-4.0", "status": "published", "revision": revisions, "local": True,
                        "instance": "127.0.0.1:8000", "created_at": created, "updated_at": created,
                    })  # fmt: skip
                    revision_rows += [
                        {"id": uuid.uuid4(), "guide_id": guide_id, "number": r + 1, "title": f"Guide {n}",
                         "summary": "", "body_markdown": text, "tags": tags, "license": "CC-BY-4.0",
                         "status": "published", "author_id": author.id, "summary_of_change": f"edit {r + 1}",
                         "created_at": created + timedelta(seconds=r)}
                        for r, text in enumerate(texts)
                    ]  # fmt: skip
                await session.execute(insert(Guide), guide_rows)
                await session.execute(insert(GuideRevision), revision_rows)
            await session.commit()
    finally:
        await engine.dispose()
    return slug


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--guides", type=int, default=10_000)
    parser.add_argument("--revisions", type=int, default=5)
    parser.add_argument("--postgres", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "a").mkdir()
        (root / "b").mkdir()
        with database(options.postgres, root / "a") as source, database(options.postgres, root / "b") as target:
            for url, data_dir in ((source, root / "a"), (target, root / "b")):
                kith(url, data_dir, "migrate")
            started = time.perf_counter()
            slug = asyncio.run(seed(source, options.guides, options.revisions))
            seeded = time.perf_counter() - started
            print(f"seeded {options.guides} guides x {options.revisions} revisions in {seeded:.1f} s")
            archive = root / "community.tar.gz"
            seconds, peak = kith(source, root / "a", "community", "export", slug, "-o", str(archive))
            size = archive.stat().st_size / 2**20
            print(f"export: {seconds:.1f} s, peak memory {peak} MiB, archive {size:.1f} MiB")
            seconds, peak = kith(target, root / "b", "community", "import", str(archive))
            print(f"import: {seconds:.1f} s, peak memory {peak} MiB")


if __name__ == "__main__":
    main()
