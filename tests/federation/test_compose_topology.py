"""compose.yaml is valid Compose, and its topology (two instances on PostgreSQL, web and worker apart) works.

There is no container engine here, so the same processes run locally: `kith serve --no-worker` and
separate `kith worker` processes per instance, two workers on A to share its queue.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.federation.test_two_instances import Side, _peer
from tests.support import postgres
from tests.support.server import KithServer, free_port
from tests.support.wait import eventually

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"


def test_compose_file_matches_the_compose_specification():
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_two_peered_instances_with_separate_workers_on_postgres():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, other in (("kith-a", "kith-b"), ("kith-b", "kith-a")):
        web, worker = services[name], services[f"{name}-worker"]
        assert "--no-worker" in " ".join(web["command"])
        assert worker["command"] == ["kith", "worker"]
        assert web["environment"]["KITH_PEERS"] == f"http://{other}:8000"
        assert web["environment"]["KITH_DATABASE_URL"].startswith("postgresql://")
        assert worker["environment"] == web["environment"]
        assert web["volumes"] == worker["volumes"]  # the worker writes the search index the web reads
    assert services["db"]["image"].startswith("postgres")


def test_compose_peers_may_reach_each_other_on_their_network_and_nowhere_else_private():
    compose = yaml.safe_load(COMPOSE.read_text())
    subnets = [entry["subnet"] for entry in compose["networks"]["default"]["ipam"]["config"]]
    for name in ("kith-a", "kith-b", "kith-a-worker", "kith-b-worker"):
        assert compose["services"][name]["environment"]["KITH_ALLOWED_PRIVATE_NETWORKS"] == ",".join(subnets)


def _worker(server: KithServer) -> subprocess.Popen[bytes]:
    log = (server.data_dir / "worker.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", "worker"], cwd=ROOT, env=server.env, stdout=log, stderr=subprocess.STDOUT
    )


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for process in workers:
        process.terminate()
    for process in workers:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def topology() -> Iterator[tuple[Side, Side]]:
    with postgres.fresh_database() as a_db, postgres.fresh_database() as b_db:
        a_port, b_port = free_port(), free_port()
        a = KithServer(database_url=a_db, port=a_port, worker=False, env={"KITH_PEERS": f"http://127.0.0.1:{b_port}"})
        b = KithServer(database_url=b_db, port=b_port, worker=False, env={"KITH_PEERS": f"http://127.0.0.1:{a_port}"})
        workers: list[subprocess.Popen[bytes]] = []
        try:
            a.start()
            b.start()
            workers = [_worker(a), _worker(a), _worker(b)]
            yield Side(a, a.token()), Side(b, b.token())
        finally:
            _stop(workers)
            b.close()
            a.close()


def test_entries_flow_and_are_searchable_with_web_and_workers_apart(topology):
    a, b = topology
    eventually(
        lambda: (
            (_peer(a, b.server.host) or {}).get("state") == "following"
            and (_peer(b, a.server.host) or {}).get("state") == "following"
        ),
        timeout=30,
        message="peering did not complete",
    )
    a.post("/communities", {"slug": "docs", "name": "Docs"})
    uris = {
        a.post("/communities/docs/guides", {"title": f"Style guide part {n}", "body_markdown": "Write plainly."})["uri"]
        for n in range(30)
    }
    remote = lambda: {g["uri"] for g in b.get("/guides", origin="remote", limit=100)["items"]}  # noqa: E731
    try:
        eventually(lambda: uris <= remote(), timeout=30, message="guides did not reach B")
    except AssertionError as exc:
        logs = "\n".join(
            f"--- {side.server.host} {name}:\n{(side.server.data_dir / name).read_text(errors='replace')[-4000:]}"
            for side in (a, b)
            for name in ("server.log", "worker.log")
            if (side.server.data_dir / name).exists()
        )
        raise AssertionError(f"{len(uris - remote())} of {len(uris)} guides missing on B\n{logs}") from exc
    # B's worker process indexed them; B's web process answers from that index.
    eventually(lambda: b.get("/search", q="style guide", origin="remote")["total"] >= 30, timeout=10)
    # A delivery is marked done after B answered it, so A's queue may still hold the last one for a moment.
    eventually(
        lambda: (_peer(a, b.server.host) or {}).get("queue_depth") == 0,
        timeout=30,
        message="A's queue to B did not drain",
    )


def test_the_hub_profile_scales_out_without_shared_files():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    hub = {name: spec for name, spec in services.items() if "hub" in spec.get("profiles", [])}
    assert set(hub) == {"hub-migrate", "hub-web", "hub-worker", "hub-proxy"}
    web, worker = hub["hub-web"], hub["hub-worker"]
    assert web["deploy"]["replicas"] == 2 and worker["deploy"]["replicas"] == 2
    assert "--no-worker" in web["command"] and worker["command"] == ["kith", "worker"]
    for spec in (web, worker, hub["hub-migrate"]):
        assert "volumes" not in spec  # nothing on disk is shared, or needed by another replica
        assert spec["environment"]["KITH_SEARCH_BACKEND"] == "postgres"
        assert spec["environment"]["KITH_DATABASE_URL"].startswith("postgresql://")
    assert web["depends_on"]["hub-migrate"]["condition"] == "service_completed_successfully"
    subnets = [entry["subnet"] for entry in compose["networks"]["default"]["ipam"]["config"]]
    assert web["environment"]["KITH_TRUSTED_PROXIES"] == ",".join(subnets)  # the proxy's address is believed
    assert hub["hub-proxy"]["image"].startswith("caddy")
    assert "dynamic a hub-web 8000" in compose["configs"]["hub-caddyfile"]["content"]


@pytest.fixture(scope="module")
def hub() -> Iterator[tuple[Side, Side]]:
    """The hub profile's topology with local processes: two web processes with data dirs of their own on one
    PostgreSQL database, searched in PostgreSQL, and two workers."""
    with postgres.fresh_database() as db:
        first_port = free_port()
        env = {"KITH_SEARCH_BACKEND": "postgres", "KITH_BASE_URL": f"http://127.0.0.1:{first_port}"}
        first = KithServer(database_url=db, port=first_port, worker=False, env=env)
        second = KithServer(database_url=db, worker=False, env=env)
        workers: list[subprocess.Popen[bytes]] = []
        try:
            first.start()  # one at a time: the first migrates, as the hub's one-shot migrate service does
            second.start()
            workers = [_worker(first), _worker(second)]
            token = first.token()
            yield Side(first, token), Side(second, token)
        finally:
            _stop(workers)
            second.close()
            first.close()


def test_a_write_through_one_web_process_is_found_through_the_other_at_once(hub):
    first, second = hub
    first.post("/communities", {"slug": "hub", "name": "Hub"})
    guide = first.post("/communities/hub/guides", {"title": "Replicated quokkas", "body_markdown": "Shared."})
    # No index job and no shared index files: the write's own transaction made it searchable everywhere.
    found = second.get("/search", q="quokkas")
    assert [item["id"] for item in found["items"]] == [guide["id"]]
    assert second.get(f"/guides/{guide['id']}")["title"] == "Replicated quokkas"
