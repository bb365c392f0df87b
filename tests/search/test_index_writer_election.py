"""Several workers on one data dir: exactly one writes the search index, and another takes over when it dies.

On PostgreSQL, where running several `kith worker` processes is the point; the lock is a file lock, the same on
SQLite (tests/test_serve_workers.py has the worker of `kith serve --workers` on SQLite hold it).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.search.writer_lock import WriterLock, holder
from tests.support import postgres
from tests.support.server import KithServer
from tests.support.wait import eventually
from tests.support.workers import children, start_worker, stop_all


def test_the_writer_lock_has_one_holder_until_released(tmp_path):
    first, second = WriterLock(tmp_path / "search.lock"), WriterLock(tmp_path / "search.lock")
    assert first.acquire() and first.acquire()
    assert not second.acquire()
    assert holder(tmp_path / "search.lock") == os.getpid()
    first.release()
    assert second.acquire() and not first.acquire()
    second.release()


class Instance:
    def __init__(self, server: KithServer) -> None:
        self.server = server
        self.headers = {"Authorization": f"Bearer {server.token()}"}
        self.workers: list[subprocess.Popen[bytes]] = []

    @property
    def lock_holder(self) -> int | None:
        return holder(self.server.data_dir / "search.lock")

    def post(self, path: str, body: dict[str, Any]) -> None:
        response = httpx.post(f"{self.server.base_url}/api/v1{path}", json=body, headers=self.headers, timeout=10)
        assert response.status_code == 201, response.text

    def found(self, words: str) -> int:
        response = httpx.get(f"{self.server.base_url}/api/v1/search", params={"q": words}, timeout=10)
        return int(response.json()["total"]) if response.status_code == 200 else 0


@pytest.fixture(scope="module")
def instance() -> Iterator[Instance]:
    with postgres.fresh_database() as url:
        yield from _instance(KithServer(database_url=url, worker=False))


def _instance(server: KithServer) -> Iterator[Instance]:
    workers: list[subprocess.Popen[bytes]] = []
    try:
        server.start()
        kith = Instance(server)
        workers.append(start_worker(server, "worker-1"))
        workers.append(start_worker(server, "worker-2"))
        kith.workers = workers
        kith.post("/communities", {"slug": "crafts", "name": "Crafts"})
        yield kith
    finally:
        stop_all(workers)
        server.close()


def test_one_worker_writes_the_index_and_the_other_takes_over_when_it_dies(instance):
    pids = {process.pid for process in instance.workers}
    writer_pid = eventually(lambda: instance.lock_holder in pids and instance.lock_holder, timeout=30)
    writer = next(process for process in instance.workers if process.pid == writer_pid)
    standby = next(process for process in instance.workers if process.pid != writer_pid)

    instance.post("/communities/crafts/guides", {"title": "Lighthouse keeping", "body_markdown": "Trim the wick."})
    eventually(lambda: instance.found("lighthouse") == 1, timeout=20, message="the guide never became searchable")
    assert instance.lock_holder == writer.pid
    assert children(standby.pid) == []  # no indexing process of its own: it leaves the index alone

    indexing = children(writer.pid)  # its indexing process, on a machine with a second core
    writer.send_signal(signal.SIGKILL)  # a crash: the kernel releases its lock
    writer.wait()
    eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in indexing), timeout=30)
    eventually(lambda: instance.lock_holder == standby.pid, timeout=20, message="the other worker did not take over")
    instance.post("/communities/crafts/guides", {"title": "Beekeeping basics", "body_markdown": "Smoke first."})
    eventually(lambda: instance.found("beekeeping") == 1, timeout=30, message="nobody indexed after the takeover")
    assert instance.found("lighthouse") == 1
