"""Where the index lives on disk, and how it is rebuilt and swapped.

Layout under the index path::

    <path>/CURRENT        names the live generation, e.g. "gen-000003"
    <path>/gen-000003/    a complete Whoosh index (plus a SCHEMA marker)
    <path>/gen-000002/    the previous one, kept for readers still using it

A rebuild writes a fresh generation directory next to the live one and then
atomically replaces CURRENT (write a temporary file, `os.replace`). Readers
keep answering from the old generation until they next look at CURRENT, and
never see a half-built index. Older generations are pruned by later swaps.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage
from whoosh.index import Index
from whoosh.query import Every

from .documents import SearchDocument, document_fields
from .engine import KithSegmentWriter
from .schema import SCHEMA, SCHEMA_VERSION

log = logging.getLogger(__name__)

CURRENT_FILE = "CURRENT"
SCHEMA_FILE = "SCHEMA"
_GEN_PREFIX = "gen-"
_GEN_RE = re.compile(r"^gen-(\d{6,})$")
# Progress is reported every this many documents: often enough for a
# progress bar, rarely enough to cost nothing next to indexing.
PROGRESS_EVERY = 100

Progress = Callable[[int], None]


class IndexUnavailable(RuntimeError):
    """The index path holds no usable index (missing, or not yet created)."""


def _gen_number(name: str) -> int | None:
    match = _GEN_RE.match(name)
    return int(match.group(1)) if match else None


def read_current(path: Path) -> str | None:
    """Return the live generation's directory name, or None if there is none."""
    try:
        name = (path / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    # CURRENT is trusted only when it names a generation directly inside path.
    return name if _gen_number(name) is not None else None


def current_marker(path: Path) -> tuple[int, int] | None:
    """A cheap fingerprint of CURRENT that changes whenever it is replaced."""
    try:
        st = os.stat(path / CURRENT_FILE)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def _write_current(path: Path, name: str) -> None:
    tmp = path / f"{CURRENT_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    # The rename is the swap: readers see either the old name or the new one.
    os.replace(tmp, path / CURRENT_FILE)


def _new_generation_dir(path: Path) -> Path:
    """Create and return an unused generation directory under path."""
    path.mkdir(parents=True, exist_ok=True)
    numbers = [n for n in map(_gen_number, os.listdir(path)) if n is not None]
    number = max(numbers, default=0) + 1
    while True:
        candidate = path / f"{_GEN_PREFIX}{number:06d}"
        try:
            # mkdir is atomic, so two concurrent builders never share a directory.
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1


def _create_empty(gen_dir: Path) -> Index:
    ix = whoosh_index.create_in(str(gen_dir), SCHEMA)
    (gen_dir / SCHEMA_FILE).write_text(f"{SCHEMA_VERSION}\n", encoding="utf-8")
    return ix


def open_generation(gen_dir: Path, *, mapped: bool = True) -> Index:
    """Open one generation directory with the current schema.

    `mapped=False` reads segment files with ordinary reads instead of mapping
    them: every page of a mapped segment that a search touches stays in the
    process's resident set (hundreds of MB on a large index), while read
    pages stay in the kernel's page cache, shared and not counted against
    the process. A search reads only term entries and the postings it ranks.
    """
    marker = (gen_dir / SCHEMA_FILE).read_text(encoding="utf-8").strip()
    if marker != str(SCHEMA_VERSION):
        raise IndexUnavailable(f"{gen_dir} was built with schema version {marker}")
    # Passing our schema skips unpickling the one stored in the TOC, so an
    # index never imports analyzer classes by name.
    return FileStorage(str(gen_dir), supports_mmap=mapped).open_index(schema=SCHEMA)


def _check_readable(ix: Index) -> None:
    # Opening a reader opens every segment file; touching stored fields and a
    # search exercises the parts a corrupt or truncated file would break.
    with ix.searcher() as searcher:
        reader = searcher.reader()
        reader.doc_count_all()
        list(islice(reader.all_stored_fields(), 1))
        list(islice(reader.lexicon("id"), 1))
        searcher.search(Every(), limit=1)


def index_ok(path: str | os.PathLike[str]) -> bool:
    """True if path holds a complete, readable index with the current schema."""
    root = Path(path)
    name = read_current(root)
    if name is None or not (root / name).is_dir():
        return False
    try:
        ix = open_generation(root / name)
        try:
            _check_readable(ix)
        finally:
            ix.close()
    except Exception:  # any failure at all means "rebuild me"
        log.warning("search index at %s is unreadable", root, exc_info=True)
        return False
    return True


def _prune(path: Path, live: str) -> None:
    """Remove generations older than the one before the live one.

    The previous generation is kept because readers in other processes may
    still be using it; newer ones may be a concurrent build in progress.
    """
    live_number = _gen_number(live) or 0
    older = sorted(n for n in map(_gen_number, os.listdir(path)) if n is not None and n < live_number)
    for number in older[:-1]:
        shutil.rmtree(path / f"{_GEN_PREFIX}{number:06d}", ignore_errors=True)


def swap_in(path: Path, gen_dir: Path) -> None:
    """Make gen_dir the live generation and prune old ones."""
    _write_current(path, gen_dir.name)
    _prune(path, gen_dir.name)


def _fill(ix: Index, documents: Iterable[SearchDocument], progress: Progress | None) -> int:
    count = 0
    writer = KithSegmentWriter(ix, limitmb=256)
    try:
        # Plain adds: the index is empty and the database's ids are unique, and
        # update_document would cost a lookup per document for nothing.
        for doc in documents:
            writer.add_document(**document_fields(doc))
            count += 1
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress(count)
    except BaseException:
        writer.cancel()
        raise
    # One writer session on an empty index makes a single segment: there is
    # nothing for optimize=True to merge.
    writer.commit()
    if progress is not None and count % PROGRESS_EVERY != 0:
        progress(count)
    return count


def build_generation(
    path: Path, documents: Iterable[SearchDocument], progress: Progress | None = None
) -> tuple[Path, int]:
    """Build a complete new generation next to the live one, without swapping."""
    gen_dir = _new_generation_dir(path)
    try:
        ix = _create_empty(gen_dir)
        try:
            count = _fill(ix, documents, progress)
        finally:
            ix.close()
    except BaseException:
        shutil.rmtree(gen_dir, ignore_errors=True)
        raise
    return gen_dir, count


def rebuild(
    path: str | os.PathLike[str],
    documents: Iterable[SearchDocument],
    progress: Progress | None = None,
) -> int:
    """Build a fresh index from documents and atomically make it the live one.

    `progress` receives the running count of indexed documents. Returns the
    number of documents indexed. Readers keep answering from the old index
    until the swap and pick up the new one on their next freshness check.
    Entries written to the old index while this runs are not carried over;
    use `IndexWriterQueue.rebuild` from the writer process to replay them.
    """
    root = Path(path)
    gen_dir, count = build_generation(root, documents, progress)
    swap_in(root, gen_dir)
    return count


class SearchIndex:
    """The writer side's handle on the index at path.

    Creates an empty index when the path holds none, and replaces an
    unreadable one with an empty one; either way `needs_rebuild` tells the
    caller to repopulate it from the database. `open()` follows swaps made by
    rebuilds, including rebuilds done by other processes.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.needs_rebuild = False
        self._lock = threading.Lock()
        self._ix: Index | None = None
        self._generation: str | None = None
        self._ensure_valid()

    def _ensure_valid(self) -> None:
        if index_ok(self.path):
            return
        self.needs_rebuild = True
        gen_dir = _new_generation_dir(self.path)
        _create_empty(gen_dir).close()
        swap_in(self.path, gen_dir)

    @property
    def generation(self) -> str | None:
        """Directory name of the live generation."""
        return read_current(self.path)

    def open(self) -> Index:
        """The Whoosh index of the live generation, reopened after a swap."""
        with self._lock:
            name = read_current(self.path)
            if name is None:
                raise IndexUnavailable(f"no search index at {self.path}")
            if self._ix is None or name != self._generation:
                if self._ix is not None:
                    self._ix.close()
                self._ix = open_generation(self.path / name)
                self._generation = name
            return self._ix

    def doc_count(self) -> int:
        """Number of documents in the live generation."""
        return self.open().doc_count()

    def rebuild(self, documents: Iterable[SearchDocument], progress: Progress | None = None) -> int:
        """Rebuild from documents and swap in; see the module-level `rebuild`."""
        count = rebuild(self.path, documents, progress)
        self.needs_rebuild = False
        return count

    def close(self) -> None:
        with self._lock:
            if self._ix is not None:
                self._ix.close()
                self._ix = None
                self._generation = None
