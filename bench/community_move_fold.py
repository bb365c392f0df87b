"""Following a community's move on a peer (issue 13): how long a real `kith serve` takes to fold N guides.

A benchmark, not a test. Two small peers on loopback (tests/support/fake_peer.py) play the old instance A and the
new home B; C is a real `kith serve` (SQLite, worker in-process) peered with both. It

  1. serves, in A's outbox, A's Group and N guides, and in B's outbox B's Group (listing A's in `alsoKnownAs`)
     and a copy of each guide under a new id with `formerUri`; both peers accept C's follows, so C backfills
     both outboxes, and holds each guide twice (timed, for scale: B's copies go through `apply_remote` one at a
     time, since a copy with `formerUri` is never written in a batch);
  2. pushes A's `Move` (A's Group now says `movedTo`) and times from the push until C's database holds no guide
     under A's Group and N under B's: the verification (two signed fetches) and the fold of N pairs in one
     transaction. Progress is read from C's database, read-only.

    .venv/bin/python bench/community_move_fold.py               # 1,000 guides
    .venv/bin/python bench/community_move_fold.py --guides 200  # a quick smoke run
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make the project's `server` and `tests.support` importable

from tests.support.fake_peer import CONTEXT, FakePeer  # noqa: E402
from tests.support.move_peers import article, group, send  # noqa: E402
from tests.support.server import KithServer  # noqa: E402
from tests.support.wait import eventually  # noqa: E402

PAGE = 200


def serve_outbox(peer: FakePeer, activities: list[dict[str, Any]]) -> None:
    """The activities as an outbox of pages of PAGE, newest first, as Kith serves its own."""
    newest_first = list(reversed(activities))
    pages = [newest_first[i : i + PAGE] for i in range(0, len(newest_first), PAGE)] or [[]]
    for number, items in enumerate(pages, start=1):
        page: dict[str, Any] = {"@context": CONTEXT, "id": f"{peer.base_url}/outbox?page={number}",
                                "type": "OrderedCollectionPage", "orderedItems": items}  # fmt: skip
        if number < len(pages):
            page["next"] = f"{peer.base_url}/outbox?page={number + 1}"
        peer.serve(f"/outbox?page={number}", page)
    peer.serve("/outbox", {"@context": CONTEXT, "id": f"{peer.base_url}/outbox", "type": "OrderedCollection",
                           "totalItems": len(activities), "first": f"{peer.base_url}/outbox?page=1"})  # fmt: skip


def accept_follow(peer: FakePeer, kith: KithServer) -> None:
    follow = eventually(lambda: next((b for b in peer.posted if b.get("type") == "Follow"), None), timeout=60)
    assert send(peer, kith, peer.activity("Accept", follow, peer.instance_actor["id"])) == 202


def count(db: Path, group_uri: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        query = "SELECT count(*) FROM guides g JOIN communities c ON c.id = g.community_id WHERE c.uri = ?"
        return int(connection.execute(query, (group_uri,)).fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--guides", type=int, default=1000)
    n = parser.parse_args().guides
    with FakePeer() as a, FakePeer() as b:
        old_group = group(a, "/c/river")
        new_group = group(b, "/c/river", alsoKnownAs=[old_group["id"]])
        sam_a, sam_b = a.actor("/u/sam", "Person"), b.actor("/u/sam", "Person")
        originals = [article(a, old_group["id"], sam_a, f"River crossing {i}") for i in range(n)]
        copies = [article(b, new_group["id"], sam_b, o["name"], formerUri=o["id"]) for o in originals]
        serve_outbox(a, [a.activity("Update", old_group, old_group["id"])]
                     + [a.activity("Create", o, sam_a["id"]) for o in originals])  # fmt: skip
        serve_outbox(b, [b.activity("Update", new_group, new_group["id"])]
                     + [b.activity("Create", c, sam_b["id"]) for c in copies])  # fmt: skip
        with KithServer(env={"KITH_PEERS": f"{a.base_url},{b.base_url}"}) as kith:
            db = kith.data_dir / "kith.db"
            started = time.monotonic()
            accept_follow(a, kith)
            accept_follow(b, kith)
            eventually(lambda: count(db, old_group["id"]) == n and count(db, new_group["id"]) == n,
                       timeout=3600, interval=0.5)  # fmt: skip
            held = time.monotonic() - started
            group(a, "/c/river", movedTo=new_group["id"])
            move = a.activity("Move", old_group["id"], old_group["id"]) | {"target": new_group["id"]}
            started = time.monotonic()
            assert send(a, kith, move) == 202
            eventually(lambda: count(db, old_group["id"]) == 0 and count(db, new_group["id"]) == n,
                       timeout=3600, interval=0.2)  # fmt: skip
            folded = time.monotonic() - started
    load = os.getloadavg()[0]
    print(f"{n} guides, each held twice: backfilled in {held:.1f} s")
    print(f"Move pushed -> {n} pairs folded: {folded:.2f} s ({n / folded:.0f} guides/s); load {load:.2f}")


if __name__ == "__main__":
    main()
