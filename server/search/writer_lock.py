"""Which process writes the search index: the one holding an exclusive lock on a file beside it.

Several worker processes may run on one data dir (`kith worker` more than once, or beside `kith serve`), and
Whoosh allows one writer per index. Each worker's indexing step tries the lock now and then; the one that holds
it indexes, the others leave their index jobs to it. The lock is `flock` on an open file, which the kernel
releases when its process ends however it ends, so another worker takes over within a second of a crash.

A file lock and not a database lock (a PostgreSQL advisory lock, say): the index belongs to a data dir, not to a
database. Workers on two machines each with a data dir of their own would share the database's lock and leave
one of the indexes unwritten; a file lock elects one writer per index whatever the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from server.settings import Settings


def lock_path(settings: Settings) -> Path:
    # Beside the index, not inside it: an operator who deletes `search/` to force a rebuild must not delete a
    # held lock file, or the next worker would lock a new file and write alongside the holder.
    return settings.data_dir / "search.lock"


class WriterLock:
    """Held from the first successful `acquire` until `release` or the end of the process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; True while this process holds it. Never waits."""
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("a+", encoding="ascii")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.close()
            return False
        # The holder's pid, for an operator wondering which process indexes (a stale pid once it died is harmless:
        # the lock, not the file's content, decides).
        file.truncate(0)
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file = file
        return True

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def holder(path: Path) -> int | None:
    """The pid the current or last holder wrote, if any."""
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text(encoding="ascii").strip())
    return None
