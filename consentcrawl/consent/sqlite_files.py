"""Following an SQLite store's file on disk, below SQLite: what changed (``os.stat`` of the file and its
write-ahead log), whether the file still starts like a database and holds every page, whose log a ``-wal`` is.

SQLite's page cache and WAL index do not notice a file changed behind its back (overwritten in place, truncated,
another file renamed over it); :class:`~consentcrawl.consent.sqlite.SQLiteStore` asks these functions so that any
such change makes it reopen the file or fail closed.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from pathlib import Path
from typing import Any

from ..errors import StoreUnavailable

_BUSY = (5, 6)  #: SQLITE_BUSY, SQLITE_LOCKED: another connection is in the way, not a broken file
_CORRUPT = (11, 26)  #: SQLITE_CORRUPT ("database disk image is malformed"), SQLITE_NOTADB: the file is damaged
_MAGIC = b"SQLite format 3\x00"
_WAL_MAGIC = (0x377F0682, 0x377F0683)

#: the main file as seen by ``os.stat``: device, inode, size, modification and change times (ns)
FileState = tuple[int, int, int, int, int]


def file_state(st: os.stat_result) -> FileState:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def wal_state(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(f"{path}-wal")
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def is_busy(exc: sqlite3.Error) -> bool:
    """Another connection is in the way: a passing failure, not a broken file."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _BUSY


def is_corrupt(exc: BaseException) -> bool:
    """A malformed page or a file that is no longer a database: damage below SQLite, wherever it is met (a
    person's rows, the meta table, the Bloom filter), not a passing failure."""
    return isinstance(exc, sqlite3.Error) and (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _CORRUPT


def damage(why: str) -> str:
    """How a damaged store is described (after its name): the cause, and what to do about it."""
    return (f"is damaged: {why}; rebuild it from its source file (`consentcrawl authorizations validate` checks a "
            f"whole store)")


def check_header(path: Path) -> None:
    """The file starts like an SQLite database (an overwrite with anything else, or a truncation, fails here)."""
    try:
        with path.open("rb") as f:
            head = f.read(100)
    except OSError as exc:
        raise StoreUnavailable(f"cannot be read: {exc}") from None
    if not head:
        raise StoreUnavailable("cannot be read: the file is empty (truncated?)")
    if len(head) < 100 or not head.startswith(_MAGIC):
        raise StoreUnavailable("cannot be read: it is not an SQLite database (overwritten? truncated?)")


def check_pages(conn: sqlite3.Connection, path: Path, size: int) -> None:
    """Every page of the database is in the file or in its write-ahead log: a truncated file fails here.

    A file shorter than the database is normal only while a checkpoint copies pages from the log (it writes page 1,
    with the new size, first); the pages the file lacks must then all be in the log.
    """
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    whole = size // page_size
    if pages <= whole:
        return
    logged = _wal_pages(str(path))
    missing = next((p for p in range(whole + 1, pages + 1) if p not in logged), None)
    if missing is not None:
        raise StoreUnavailable(f"cannot be read: it is truncated ({size} bytes, but the database has {pages} pages "
                               f"of {page_size} bytes)")


def _wal_header(f: Any) -> tuple[int, tuple[int, int]] | None:
    """The page size and salts of a write-ahead log, or None when it is not one."""
    head = f.read(32)
    if len(head) < 32:
        return None
    magic, _version, page_size, _checkpoint, salt1, salt2 = struct.unpack(">6I", head[:24])
    if magic not in _WAL_MAGIC or not page_size:
        return None
    return page_size, (salt1, salt2)


def wal_salts(path: str) -> tuple[int, int] | None:
    """The salts of ``PATH-wal`` when it holds at least one frame of the current generation, else None."""
    try:
        with open(f"{path}-wal", "rb") as f:
            header = _wal_header(f)
            if header is None:
                return None
            frame = f.read(24)
    except OSError:
        return None
    if len(frame) < 24 or struct.unpack(">2I", frame[8:16]) != header[1]:
        return None
    return header[1]


def _wal_pages(path: str) -> set[int]:
    """The page numbers held by the frames of the current generation of ``PATH-wal``."""
    pages: set[int] = set()
    try:
        with open(f"{path}-wal", "rb") as f:
            header = _wal_header(f)
            if header is None:
                return pages
            page_size, salts = header
            offset = 32
            while True:
                f.seek(offset)
                frame = f.read(24)
                if len(frame) < 24:
                    break
                number, _commit, salt1, salt2 = struct.unpack(">4I", frame[:16])
                if (salt1, salt2) != salts:
                    break
                pages.add(number)
                offset += 24 + page_size
    except OSError:
        pass
    return pages


def uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.resolve()))


def read_only_uri(path: str | Path) -> str:
    """The URI that opens ``path`` read-only. The path is quoted: unquoted, a ``?`` or ``#`` in it would end the
    path there, and another file (``store.db`` for ``store.db#2``) would be read in its place."""
    return f"file:{uri_path(Path(path))}?mode=ro"


def check_log_is_not_the_old_stores(path: str, old_salts: tuple[int, int] | None) -> None:
    """A file renamed over the store, while the old store's write-ahead log (``PATH-wal``) still holds pages,
    would be read with those pages in it (SQLite has no way to tell whose log it is): refuse it until the log is
    gone. A log holding frames with the salts it had next to the old file (``old_salts``) is the old store's."""
    salts = wal_salts(path)
    if salts is not None and salts == old_salts:
        raise StoreUnavailable(
            f"was replaced, but the old store's write-ahead log {path}-wal still holds pages of it: SQLite "
            f"would read them as part of the new one. Remove {path}-wal and {path}-shm once no "
            f"process writes to the old store (better: replace a store only with no -wal file next to it)")
