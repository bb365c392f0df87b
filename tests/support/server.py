"""Run a real Kith server process for tests: `kith migrate`, then `kith serve` on a free port of 127.0.0.1.

    with KithServer() as kith:                      # SQLite file in a temp data dir
        token = kith.token()                        # admin token, via `kith token create`
        httpx.get(f"{kith.base_url}/api/v1/instance")

    with KithServer(database_url=pg_url, env={"KITH_PEERS": other.base_url}) as kith: ...

`stop()` is a graceful shutdown, `kill()` a crash; `start()` brings the same instance back on the same
port and data dir, so restart and fault tests see what the previous run left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

from tests.support.limits import ROOMY_ENV

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
LOOPBACK_NETWORK = "127.0.0.0/8"
ADMIN_PASSWORD = "admin password for tests"
STARTUP_TIMEOUT = 60.0  # generous: a loaded machine starts slowly, and waiting longer costs a healthy run nothing
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0


class ServerError(RuntimeError):
    """The server did not come up (or a CLI call failed); the message carries its output."""


def free_port() -> int:
    """A port nobody listens on right now. Another process could take it before we bind; tests accept that."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _inherited_env() -> dict[str, str]:
    """The parent's environment minus KITH_* settings, so a developer's own config never leaks in."""
    return {key: value for key, value in os.environ.items() if not key.startswith("KITH_")}


class KithServer:
    """One Kith instance in a subprocess, with its own port, data dir, database and environment."""

    def __init__(
        self,
        *,
        database_url: str | None = None,
        data_dir: Path | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        worker: bool = True,
        workers: int = 1,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        self._owns_data_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="kith-server-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        # The authority, as the API reports instance hosts (port included, since it is never the default).
        self.host = f"{LOOPBACK}:{self.port}"
        self.database_url = database_url or f"sqlite:///{self.data_dir / 'kith.db'}"
        self.admin_password = ADMIN_PASSWORD
        self.worker = worker
        self.workers = workers  # web processes (`kith serve --workers`)
        self.startup_timeout = startup_timeout
        self.log_path = self.data_dir / "server.log"
        self.env = {
            **_inherited_env(),
            "KITH_BASE_URL": self.base_url,
            "KITH_DATA_DIR": str(self.data_dir),
            "KITH_DATABASE_URL": self.database_url,
            "KITH_SECRET_KEY": f"test-secret-{self.port}",
            "KITH_ADMIN_PASSWORD": self.admin_password,
            # Peers in tests are other servers on loopback, which Kith refuses to reach unless told.
            "KITH_ALLOWED_PRIVATE_NETWORKS": LOOPBACK_NETWORK,
            **ROOMY_ENV,
            **(env or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> KithServer:
        """Migrate, serve, and return once /readyz says 200; raise ServerError with the server's output if not."""
        if self.running:
            raise ServerError(f"the server on {self.base_url} is already running")
        self.cli("migrate")
        command = [sys.executable, "-m", "server.cli", "serve", "--host", LOOPBACK, "--port", str(self.port)]
        if not self.worker:
            command.append("--no-worker")
        if self.workers != 1:
            command += ["--workers", str(self.workers)]
        # Output goes to a file, not a pipe: nobody drains a pipe while tests run, and a full one blocks the server.
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_until_ready()
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Graceful shutdown: SIGTERM, then SIGKILL if the server is still up after `timeout` seconds."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None
        return process.returncode

    def kill(self) -> int | None:
        """A crash: SIGKILL with no chance to finish requests, flush queues or close connections."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        process.wait()
        self._process = None
        return process.returncode

    def restart(self) -> KithServer:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove the data dir if this object made it."""
        self.stop()
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> KithServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    # -- the CLI, with the server's own settings -------------------------------------------------

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """Run `kith ARGS...` against this instance's database and return its stdout."""
        result = subprocess.run(
            [sys.executable, "-m", "server.cli", *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
        if result.returncode != 0:
            raise ServerError(f"kith {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result.stdout

    def token(self, user: str = "admin", scope: str = "admin") -> str:
        return self.cli("token", "create", "--user", user, "--scope", scope).strip()

    def create_user(self, username: str, password: str = "correct horse battery", *, admin: bool = False) -> None:
        self.cli("user", "create", username, "--password-stdin", *(["--admin"] if admin else []), stdin=password + "\n")

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr, across restarts."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    # -- readiness -------------------------------------------------------------------------------

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_problem = "no answer yet"
        with httpx.Client(base_url=self.base_url, timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self._process is None or self._process.poll() is not None:
                    code = self._process.returncode if self._process else None
                    self._process = None
                    raise ServerError(f"kith serve exited with {code} before it was ready:\n{self.log()}")
                try:
                    response = client.get("/readyz")
                except httpx.TransportError as exc:
                    last_problem = f"{exc.__class__.__name__}: {exc}"
                else:
                    if response.status_code == 200:
                        return
                    last_problem = f"/readyz answered {response.status_code}: {response.text}"
                time.sleep(0.1)
        self.kill()
        raise ServerError(
            f"kith serve on {self.base_url} was not ready after {self.startup_timeout:.0f} s "
            f"({last_problem}):\n{self.log()}"
        )
