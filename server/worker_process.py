"""The background worker as a process of its own: `kith worker`, and the one `kith serve --workers N` starts
beside its web processes."""

from __future__ import annotations

import asyncio
import contextlib
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import click

from server.settings import Settings


def run_worker(settings: Settings, parent: Connection | None = None) -> None:
    """The worker until SIGINT or SIGTERM, or until `parent`'s other end is closed (its process went away)."""
    import signal
    import threading

    from server.app import build_worker
    from server.db import create_engine, create_sessionmaker
    from server.federation.fetch import make_client

    async def run() -> None:
        engine = create_engine(settings.database_url)
        client = make_client(settings)
        loop_worker = build_worker(settings, create_sessionmaker(engine), client)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, loop_worker.stop)
        if parent is not None:

            def await_parent() -> None:
                with contextlib.suppress(EOFError, OSError):
                    parent.recv()
                with contextlib.suppress(RuntimeError):  # the loop may have ended already
                    loop.call_soon_threadsafe(loop_worker.stop)

            threading.Thread(target=await_parent, name="kith-worker-parent", daemon=True).start()
        click.echo(f"Kith worker for {settings.base_url} running", err=True)
        try:
            await loop_worker.run()
        finally:
            await client.aclose()
            await engine.dispose()

    asyncio.run(run())


class WorkerBeside:
    """The one background worker of `kith serve --workers N`, in a process of its own, started again if it dies.

    Spawned, not forked (the serving process's threads and connections are not the child's to inherit); it stops
    on SIGTERM, on Ctrl-C with the rest of the process group, and when this process goes away without asking.
    """

    RESTART_SECONDS = 5.0
    STOP_SECONDS = 30.0

    def __init__(self, settings: Settings) -> None:
        import multiprocessing
        import threading

        self.settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self._process = self._start()
        self._watch = threading.Thread(target=self._keep_running, name="kith-worker-watch", daemon=True)
        self._watch.start()

    def _start(self) -> BaseProcess:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=run_worker, args=(self.settings, theirs), name="kith-worker")
        process.start()
        theirs.close()
        self._pipe = ours  # held open for the child's life: its EOF tells the child this process is gone
        return process

    def _keep_running(self) -> None:
        while not self._stopping.is_set():
            self._process.join(0.5)
            if self._process.exitcode is not None and not self._stopping.wait(self.RESTART_SECONDS):
                click.echo(f"the worker process exited with {self._process.exitcode}; starting it again", err=True)
                self._pipe.close()
                self._process = self._start()

    def stop(self) -> None:
        self._stopping.set()
        self._watch.join()
        self._process.terminate()  # SIGTERM: the worker finishes its step and commits what it holds
        self._process.join(self.STOP_SECONDS)
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join()
        self._pipe.close()
