"""`kith worker` processes beside a `KithServer` started with worker=False, and what runs under a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.server import ROOT, KithServer
from tests.support.wait import eventually


def start_worker(server: KithServer, name: str) -> subprocess.Popen[bytes]:
    """`kith worker` with the server's settings, its output in `name`.log in the data dir; returns once it runs."""
    log_path = server.data_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "worker"],
            cwd=ROOT,
            env=server.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    eventually(
        lambda: process.poll() is not None or "running" in log_path.read_text(errors="replace"),
        timeout=60,
        message=f"{name} did not start",
    )
    assert process.poll() is None, log_path.read_text(errors="replace")
    return process


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each, then SIGKILL to those still running after 15 s."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def children(pid: int) -> list[int]:
    """The pids of the processes `pid` started that still run (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found
