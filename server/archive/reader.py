"""Reading a community archive safely: every member is judged from its tar header before its data is read.

`verify` reads the whole archive once, checking each header (a regular file, a path of the format, within the size
limits) and hashing each file, then checks the manifest: a known version, and exactly the files it names, each
with its SHA-256. `entries` reads it a second time and hands on each guide's and offer's files together, checking
each file against the manifest again (the bytes imported are the bytes verified).
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Literal, TypeVar

import msgspec

from server.archive import format as fmt
from server.errors import ProblemError, has_nul, invalid

Kind = Literal["guide", "offer"]
T = TypeVar("T")
# Files kept from the first reading, small and needed before the entries.
_KEPT = (fmt.COMMUNITY, fmt.MEMBERS, fmt.MANIFEST)
_CHUNK = 1024 * 1024
MAX_EXTENDED_HEADER_BYTES = 1024 * 1024


_UNREADABLE = (tarfile.TarError, OSError, EOFError, zlib.error)


def damaged(message: str) -> ProblemError:
    return invalid("archive", message)


def _truncated() -> ProblemError:
    return damaged("is damaged or truncated: it could not be read to the end")


@dataclass
class Verified:
    manifest: fmt.Manifest
    community: bytes
    members: bytes
    checksums: dict[str, str]


@dataclass
class Group:
    """The files of one guide (`guides/KEY/...`) or offer (`offers/KEY/...`), by their path under it."""

    kind: Kind
    key: str
    files: dict[str, bytes]


class _Header(tarfile.TarInfo):
    """A tar header whose extended headers (pax, GNU long names) are judged by their size before tarfile reads
    them into memory: they are names and attributes, never large."""

    def _proc_pax(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        self._check_extension()
        return super()._proc_pax(archive)

    def _proc_gnulong(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        self._check_extension()
        return super()._proc_gnulong(archive)

    def _check_extension(self) -> None:
        if self.size > MAX_EXTENDED_HEADER_BYTES:
            raise damaged(f"has an extended tar header of {self.size} bytes, more than {MAX_EXTENDED_HEADER_BYTES}")


def _open(fileobj: IO[bytes]) -> tarfile.TarFile:
    fileobj.seek(0)
    try:
        return tarfile.open(fileobj=fileobj, mode="r|gz", tarinfo=_Header)
    except _UNREADABLE as exc:
        raise damaged("is not a gzip-compressed tar archive") from exc


def _members(fileobj: IO[bytes]) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    """Each regular file's header, judged before anything of its data is read."""
    tar = _open(fileobj)
    seen: set[str] = set()
    total = 0
    try:
        with tar:
            while (member := tar.next()) is not None:
                # tarfile keeps every header it read; an archive's headers are many, and none is needed again.
                tar.members.clear()
                if member.isdir():
                    _check_path(member.name.rstrip("/"))
                    continue
                _check_member(member)
                if member.name in seen:
                    raise damaged(f"holds {member.name!r} twice")
                seen.add(member.name)
                total += member.size
                if total > fmt.MAX_TOTAL_BYTES or len(seen) > fmt.MAX_MEMBERS:
                    raise damaged("is larger than an archive may be")
                yield member, tar
    except _UNREADABLE as exc:
        raise _truncated() from exc


def _check_path(name: str) -> None:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise damaged(f"member {name!r} has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise damaged(f"member {name!r} points outside the archive")


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    _check_path(name)
    if member.issym() or member.islnk():
        raise damaged(f"member {name!r} is a link; an archive holds regular files only")
    if not member.isfile():
        raise damaged(f"member {name!r} is a device or special file; an archive holds regular files only")
    if member.size > fmt.MAX_MEMBER_BYTES:
        raise damaged(f"member {name!r} claims {member.size} bytes, more than the {fmt.MAX_MEMBER_BYTES} allowed")
    if name not in _KEPT and not (
        fmt.GUIDE_FILE.match(name) or fmt.REVISION_FILE.match(name) or fmt.OFFER_FILE.match(name)
    ):
        raise damaged(f"member {name!r} is not a file of the archive format")


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo, keep: bool) -> tuple[str, bytes]:
    """The file's SHA-256, and its bytes when `keep`."""
    digest = hashlib.sha256()
    kept: list[bytes] = []
    try:
        stream = tar.extractfile(member)
        assert stream is not None
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            if keep:
                kept.append(chunk)
    except _UNREADABLE as exc:
        raise _truncated() from exc
    return digest.hexdigest(), b"".join(kept)


def verify(fileobj: IO[bytes]) -> Verified:
    checksums: dict[str, str] = {}
    kept: dict[str, bytes] = {}
    for member, tar in _members(fileobj):
        checksum, data = _read(tar, member, member.name in _KEPT)
        checksums[member.name] = checksum
        if member.name in _KEPT:
            kept[member.name] = data
    for name in _KEPT:
        if name not in kept:
            raise damaged(f"has no {name}")
    for name, data in kept.items():
        _no_nul(name, data)
    manifest = _manifest(kept[fmt.MANIFEST])
    listed = {entry.path: entry.sha256 for entry in manifest.files}
    if len(listed) != len(manifest.files) or fmt.MANIFEST in listed:
        raise damaged("manifest.json lists a file twice, or itself")
    for path in sorted(checksums.keys() - {fmt.MANIFEST}):
        if path not in listed:
            raise damaged(f"holds {path!r}, which manifest.json does not list")
        if listed[path] != checksums[path]:
            raise damaged(f"{path!r} does not match its SHA-256 in manifest.json: it was changed or damaged")
    missing = sorted(listed.keys() - checksums.keys())
    if missing:
        raise damaged(f"lacks {missing[0]!r}, which manifest.json lists")
    return Verified(manifest, kept[fmt.COMMUNITY], kept[fmt.MEMBERS], listed)


def _no_nul(name: str, data: bytes) -> None:
    # PostgreSQL cannot store NUL in text, and no honest text holds one (see errors.has_nul).
    if has_nul(data) if name.endswith(".json") else b"\x00" in data:
        raise damaged(f"{name!r} contains a NUL character")


def _manifest(data: bytes) -> fmt.Manifest:
    try:
        head = msgspec.json.decode(data, type=fmt.VersionOnly)
    except msgspec.DecodeError as exc:
        raise damaged("manifest.json is not a JSON object") from exc
    if head.format != fmt.FORMAT:
        raise damaged(f"manifest.json does not describe a {fmt.FORMAT}")
    if head.format_version != fmt.FORMAT_VERSION:
        raise damaged(
            f"format version {head.format_version!r} is unknown here; this instance reads version {fmt.FORMAT_VERSION}"
        )
    return decode(fmt.MANIFEST, data, fmt.Manifest)


def decode(path: str, data: bytes, doc: type[T]) -> T:
    try:
        return msgspec.json.decode(data, type=doc)
    except msgspec.ValidationError as exc:
        raise damaged(f"{path}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise damaged(f"{path} is not valid JSON") from exc


def entries(fileobj: IO[bytes], checksums: dict[str, str]) -> Iterator[Group]:
    """Each guide's and offer's files together, in the archive's order; an entry's files must be consecutive."""
    current: Group | None = None
    done: set[tuple[Kind, str]] = set()
    for member, tar in _members(fileobj):
        name = member.name
        if name in _KEPT:
            continue
        checksum, data = _read(tar, member, keep=True)
        if checksums.get(name) != checksum:
            raise damaged(f"{name!r} changed while it was being read")
        _no_nul(name, data)
        kind: Kind = "guide" if name.startswith("guides/") else "offer"
        _, key, rest = name.split("/", 2)
        if current is None or (current.kind, current.key) != (kind, key):
            if current is not None:
                done.add((current.kind, current.key))
                yield current
            if (kind, key) in done:
                raise damaged(f"the files of {kind}s/{key} are not together")
            current = Group(kind, key, {})
        current.files[rest] = data
    if current is not None:
        yield current
