"""`kith serve --workers N`: N web processes, and the background worker once, in a process of its own."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from server.cli import main
from server.search.writer_lock import holder
from tests.support.server import KithServer
from tests.support.wait import eventually
from tests.support.workers import children

WEB_PROCESSES = 2


def spawned(pid: int) -> list[int]:
    """The processes `pid` started through multiprocessing (web processes and the worker; not its resource tracker)."""
    found = []
    for child in children(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:  # it ended meanwhile
            continue
    return found


class Instance:
    def __init__(self, server: KithServer) -> None:
        self.server = server
        self.headers = {"Authorization": f"Bearer {server.token()}"}

    @property
    def writer(self) -> int | None:
        return holder(self.server.data_dir / "search.lock")

    def post_guide(self, title: str) -> int:
        response = httpx.post(
            f"{self.server.base_url}/api/v1/communities/crafts/guides",
            json={"title": title, "body_markdown": "Written down."}, headers=self.headers, timeout=30,
        )  # fmt: skip
        return response.status_code

    def found(self, words: str) -> int:
        response = httpx.get(f"{self.server.base_url}/api/v1/search", params={"q": words}, timeout=10)
        return int(response.json()["total"]) if response.status_code == 200 else 0


@pytest.fixture(scope="module")
def instance() -> Iterator[Instance]:
    with KithServer(workers=WEB_PROCESSES) as server:
        kith = Instance(server)
        response = httpx.post(
            f"{server.base_url}/api/v1/communities", json={"slug": "crafts", "name": "Crafts"}, headers=kith.headers
        )
        assert response.status_code == 201, response.text
        yield kith


def test_workers_must_be_at_least_one():
    result = CliRunner().invoke(main, ["serve", "--workers", "0"])
    assert result.exit_code == 2 and "--workers" in result.output


def test_web_processes_run_beside_one_worker_which_writes_the_index(instance):
    serving = instance.server.pid
    assert serving is not None
    eventually(lambda: len(spawned(serving)) == WEB_PROCESSES + 1, timeout=30)
    # The worker holds the index writer's lock; the web processes run no worker of their own.
    writer = eventually(lambda: instance.writer in spawned(serving) and instance.writer, timeout=30)
    assert all(children(web) == [] for web in spawned(serving) if web != writer)


def test_several_web_processes_write_to_sqlite_at_once(instance):
    titles = [f"Woodturning lesson {n}" for n in range(24)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(instance.post_guide, titles))
    assert statuses == [201] * len(titles)
    eventually(lambda: instance.found("woodturning") == len(titles), timeout=30, message="not all were indexed")


def test_a_scrape_counts_the_requests_of_every_web_process(instance):
    def counted() -> float:
        response = httpx.get(f"{instance.server.base_url}/metrics", headers=instance.headers, timeout=10)
        assert response.status_code == 200, response.text
        return sum(
            sample.value
            for family in text_string_to_metric_families(response.text)
            if family.name == "kith_http_request_duration_seconds"
            for sample in family.samples
            if sample.name.endswith("_count") and sample.labels["route"] == "/api/v1/instance"
        )

    before = counted()
    with httpx.Client(base_url=instance.server.base_url, timeout=10) as client:
        for _ in range(40):  # new connections each: the kernel spreads them over the web processes
            assert client.get("/api/v1/instance", headers={"Connection": "close"}).status_code == 200
    assert counted() - before == 40


def test_a_worker_that_dies_is_started_again(instance):
    serving = instance.server.pid
    assert serving is not None
    writer = eventually(lambda: instance.writer in spawned(serving) and instance.writer, timeout=30)
    os.kill(writer, signal.SIGKILL)
    eventually(lambda: instance.writer not in (None, writer), timeout=30, message="no new worker took over")
    assert instance.writer in spawned(serving)
    assert instance.post_guide("Basket weaving") == 201
    eventually(lambda: instance.found("basket") == 1, timeout=30)


def test_stopping_the_server_stops_every_process_it_started(instance):
    serving = instance.server.pid
    assert serving is not None
    started = spawned(serving)
    started += [grandchild for child in started for grandchild in children(child)]
    instance.server.stop()
    eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in started), timeout=30)
