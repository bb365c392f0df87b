"""The worker's indexing step in a process of its own, so that indexing uses a second core.

The worker's steps share one interpreter: while the index writer analyses and commits, applying inbox items goes
slower, and while a step runs long (a backfill applies a peer's whole outbox in one step) no index job is even
read. In a process of its own the same step (`server.search.indexing.Indexer`, built there by the factory it
hands to `IndexerProcess`) claims index jobs, reads the entries, indexes and commits beside the worker. This
module knows nothing of the step but that factory, so the dependency runs one way: the indexing step starts its
process, and the process runs whatever step it was given. It is still the only writer of the index: the worker
starts one such process and no other writer, and starts it again if it dies. Job rows are deleted only once
their changes are committed, so a process that dies takes nothing with it: its leased jobs are claimed again
when the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db import create_engine, create_sessionmaker
from server.settings import Settings

log = logging.getLogger("kith.search")
# Stopping commits what is pending (a batch takes well under a second); a process still busy after this long
# (in the middle of a rebuild, say) is ended: its jobs stay in the table and are replayed.
STOP_SECONDS = 20.0
# The process's nap when a look found nothing to do, as the worker's.
IDLE_SECONDS = 0.25
# A process that keeps dying (a bad configuration, say) is started again at most this often.
RESTART_SECONDS = 5.0


class Step(Protocol):
    """A worker step as the process runs it: a look for work returning how much was done, and a close."""

    async def __call__(self) -> int: ...

    async def close(self) -> None: ...


# Builds the step inside the process. Handed to a spawned process, so it must be a module-level function.
StepFactory = Callable[[Settings, async_sessionmaker[AsyncSession]], Step]


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class IndexerProcess:
    """Starts the indexing process, starts it again if it died, and stops it (it commits what it holds first).

    Spawned, not forked: the worker's process has an event loop, threads and database connections that a
    forked child must not inherit.
    """

    def __init__(self, settings: Settings, make_step: StepFactory) -> None:
        self.settings = settings
        self.make_step = make_step
        self.starts = 0
        self._context = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._control: Connection | None = None
        self._started_at = float("-inf")

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def ensure_running(self) -> None:
        if self._process is not None:
            if self._process.is_alive() or time.monotonic() - self._started_at < RESTART_SECONDS:
                return
            log.warning("the indexing process exited with %s; starting it again", self._process.exitcode)
            self._release()
        control, theirs = self._context.Pipe()
        process = self._context.Process(
            target=run_indexer, args=(self.settings, theirs, self.make_step), name="kith-indexer", daemon=True
        )
        process.start()
        theirs.close()  # the child's end: when this process goes, the child reads EOF and stops
        self._process, self._control = process, control
        self._started_at = time.monotonic()
        self.starts += 1

    def stop(self) -> None:
        """Ask the process to commit what it holds and exit; end it if it does not within `STOP_SECONDS`."""
        if self._process is None:
            return
        assert self._control is not None
        with contextlib.suppress(OSError):
            self._control.send("stop")
        self._process.join(STOP_SECONDS)
        if self._process.is_alive():
            log.warning("the indexing process did not stop within %.0f s; ending it", STOP_SECONDS)
            self._process.terminate()
            self._process.join()
        self._release()

    def _release(self) -> None:
        assert self._process is not None and self._control is not None
        self._control.close()
        self._process.close()
        self._process, self._control = None, None


def run_indexer(settings: Settings, control: Connection, make_step: StepFactory) -> None:
    """The process's main: the step in a loop until the worker says stop or goes away."""
    # Ctrl-C, or a service manager's stop, reaches the whole process group. The worker decides when this process
    # stops, so that it commits first; if the worker dies, `control` reads EOF and this process stops all the same.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_index_until_stopped(settings, control, make_step))


async def _index_until_stopped(settings: Settings, control: Connection, make_step: StepFactory) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def await_stop() -> None:
        with contextlib.suppress(EOFError, OSError):
            control.recv()  # "stop", or EOF when the worker's process is gone
        with contextlib.suppress(RuntimeError):  # the loop may have ended already
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=await_stop, name="kith-indexer-control", daemon=True).start()
    engine = create_engine(settings.database_url)
    indexer = make_step(settings, create_sessionmaker(engine))
    try:
        while not stop.is_set():
            try:
                done = await indexer()
            except Exception:  # as in `Worker.tick`: a failing look must not end the process
                log.exception("indexing step failed")
                done = 0
            if done == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=IDLE_SECONDS)
    finally:
        await indexer.close()
        await engine.dispose()
