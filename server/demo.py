"""`make demo`: two peered instances on 127.0.0.1:8001 and :8002, seeded, so federation can be seen in a minute.

`make demo-move`, while `make demo` runs: A's community 'makers' moves to B (export on A, import on B, link on
B, move on A), and the old addresses on A answer 301 to the new ones on B."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "var" / "demo"
ADMIN_PASSWORD = "demo admin password"
INSTANCES = {
    "a": {"port": 8001, "name": "Riverside Makers", "peer": 8002},
    "b": {"port": 8002, "name": "Hilltop Coders", "peer": 8001},
}
SEED = {
    "a": {
        "community": {"slug": "makers", "name": "Makers", "color": "#b4432a",
                      "description": "Workshop practice, shared openly."},
        "guides": [
            ("Onboarding new members", "# Welcome\n\nPair every newcomer with a host for their first month.",
             ["onboarding"]),
            ("Running a repair café", "Bring tools, bring patience. **Safety first.**", ["events", "repair"]),
            ("Laser cutter safety", "1. Never leave it running.\n2. Keep the lid closed.", ["safety"]),
        ],
        "offer": {"title": "Soldering basics", "description_markdown": "Hands-on evenings.", "topics": ["electronics"],
                  "format": "group", "capacity": 4, "languages": ["en"]},
    },
    "b": {
        "community": {"slug": "coders", "name": "Coders", "color": "#2a6fb4",
                      "description": "Code review and release habits."},
        "guides": [
            ("Reviewing your first pull request", "Read the tests first, then the code.", ["review", "onboarding"]),
            ("Release checklist", "- Tag\n- Changelog\n- Announce", ["releases"]),
        ],
        "offer": {"title": "Julia performance", "description_markdown": "Profiling together.", "topics": ["julia"],
                  "format": "one_to_one", "capacity": 2, "languages": ["en", "de"]},
    },
}  # fmt: skip


def _env(key: str) -> dict[str, str]:
    spec = INSTANCES[key]
    return {
        **os.environ,
        "KITH_BASE_URL": f"http://127.0.0.1:{spec['port']}",
        "KITH_INSTANCE_NAME": str(spec["name"]),
        "KITH_DATA_DIR": str(DEMO_DIR / key),
        "KITH_DATABASE_URL": f"sqlite:///{DEMO_DIR / key / 'kith.db'}",
        "KITH_PEERS": f"http://127.0.0.1:{spec['peer']}",
        # Both instances are on this machine: let them reach each other over loopback.
        "KITH_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
        "KITH_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }


def _kith(key: str, *args: str) -> str:
    command = [sys.executable, "-m", "server.cli", *args]
    return subprocess.run(command, env=_env(key), check=True, capture_output=True, text=True, cwd=ROOT).stdout


def _wait_ready(url: str) -> None:
    for _ in range(100):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not start; see {DEMO_DIR}/*/server.log")


# A person on B to ask for a seat on A's offer (README: "Mentorship across instances").
PEOPLE = {"b": [("ben", "demo ben password")]}


def _seed(key: str) -> None:
    for username, password in PEOPLE.get(key, []):
        # It fails when an earlier run of the demo made the person already.
        subprocess.run(
            [sys.executable, "-m", "server.cli", "user", "create", username, "--password-stdin"],
            env=_env(key), input=password + "\n", capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{INSTANCES[key]['port']}/api/v1"
    token = _kith(key, "token", "create", "--user", "admin", "--scope", "admin", "--name", "demo").strip()
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    seed = SEED[key]
    if api.get(f"/communities/{seed['community']['slug']}").status_code == 200:
        return
    api.post("/communities", json=seed["community"]).raise_for_status()
    slug = seed["community"]["slug"]
    for title, body, tags in seed["guides"]:
        api.post(f"/communities/{slug}/guides", json={"title": title, "body_markdown": body, "tags": tags})
    api.post(f"/communities/{slug}/mentorship/offers", json=seed["offer"]).raise_for_status()


def _api(key: str) -> httpx.Client:
    base = f"http://127.0.0.1:{INSTANCES[key]['port']}"
    token = _kith(key, "token", "create", "--user", "admin", "--scope", "admin", "--name", "demo move").strip()
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _step(text: str) -> None:
    print(f"- {text}", flush=True)


def move() -> None:
    """Move 'makers' from A to B, the way README's "Moving a community" tells an operator to, and show the result."""
    a, b = _api("a"), _api("b")
    makers = a.get("/api/v1/communities/makers")
    if makers.status_code != 200:
        raise SystemExit("Start the demo first (make demo), and run this in another terminal.")
    if makers.json()["moved_to"]:
        raise SystemExit(f"'makers' has moved to {makers.json()['moved_to']} already; `rm -rf {DEMO_DIR}` starts over.")
    _step("export 'makers' on A")
    archive = a.get("/api/v1/communities/makers/export")
    archive.raise_for_status()
    _step(f"import the archive ({len(archive.content):,} bytes) on B")
    imported = b.post("/api/v1/communities/import", content=archive.content,
                      headers={"Content-Type": "application/gzip"})  # fmt: skip
    if imported.status_code != 201:
        raise SystemExit(f"B refused the archive: {imported.json().get('detail')}")
    new, old_uri = imported.json(), makers.json()["uri"]
    _step(f"link it on B: {new['uri']} is also known as {old_uri}")
    b.patch(f"/api/v1/communities/{new['slug']}", json={"also_known_as": [old_uri]}).raise_for_status()
    # Read before the move: a moved community's guides leave A's lists.
    guide = a.get("/api/v1/guides", params={"community": "makers", "limit": 1}).json()["items"][0]
    _step("move it on A")
    moved = a.post("/api/v1/communities/makers/move", json={"target": new["uri"]})
    if moved.status_code != 202:
        raise SystemExit(f"A refused the move: {moved.json().get('detail')}")
    for _ in range(150):  # A learns each guide's new page from B's outbox, and hears B took the Move
        status = a.get("/api/v1/communities/makers/move").json()
        if status["entries_unknown"] == 0 and all(p["notified_at"] for p in status["peers"]):
            break
        time.sleep(0.2)
    redirected = httpx.get(guide["url"])
    status = a.get("/api/v1/communities/makers/move").json()
    heard = ", ".join(f"{p['instance']} ({'notified' if p['notified_at'] else 'not yet'})" for p in status["peers"])
    print(
        f"\n'makers' now lives on B: {new['url']}\n"
        f"A's pages answer 301 there, each guide to its own new page:\n"
        f"  {guide['url']}\n    -> {redirected.headers.get('location')}\n"
        "  curl -s -o /dev/null -w '%{http_code} %{redirect_url}\\n' http://127.0.0.1:8001/c/makers\n"
        "A's Group still answers, and says where it went:\n"
        "  curl -s -H 'Accept: application/activity+json' http://127.0.0.1:8001/c/makers | python3 -m json.tool\n"
        f"Writes to it on A are refused (409) with a pointer. The Move reached: {heard or 'no peer yet'}.\n"
        "Which peers heard, at any time (on A; on B it lists who has fetched the new home):\n"
        f"  KITH_BASE_URL=http://127.0.0.1:8001 KITH_DATABASE_URL=sqlite:///{DEMO_DIR / 'a' / 'kith.db'} \\\n"
        "    .venv/bin/kith community move-status makers\n",
        flush=True,
    )


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    processes = []
    for key, spec in INSTANCES.items():
        (DEMO_DIR / key).mkdir(parents=True, exist_ok=True)
        _kith(key, "migrate")
        log = (DEMO_DIR / key / "server.log").open("ab")
        command = [sys.executable, "-m", "server.cli", "serve", "--port", str(spec["port"])]
        processes.append(subprocess.Popen(command, env=_env(key), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
    try:
        for key, spec in INSTANCES.items():
            _wait_ready(f"http://127.0.0.1:{spec['port']}")
            _seed(key)
        print(
            "\nTwo Kith instances are running and peered with each other:\n"
            f"  A  {INSTANCES['a']['name']:<17} http://127.0.0.1:8001   (community 'makers')\n"
            f"  B  {INSTANCES['b']['name']:<17} http://127.0.0.1:8002   (community 'coders')\n"
            f"Sign in to either as admin / {ADMIN_PASSWORD!r}, or to B as ben / 'demo ben password'.\n\n"
            "In a few seconds each shows the other's guides, attributed to their origin:\n"
            "  curl -s 'http://127.0.0.1:8002/api/v1/guides?origin=remote' | python3 -m json.tool\n"
            "  curl -s 'http://127.0.0.1:8001/api/v1/search?q=onboarding'   | python3 -m json.tool\n"
            f"Data and logs: {DEMO_DIR}. Press Ctrl-C to stop both.\n",
            flush=True,
        )
        signal.signal(signal.SIGTERM, _interrupt)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)


if __name__ == "__main__":
    move() if sys.argv[1:] == ["move"] else main()
