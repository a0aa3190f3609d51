"""The disk queues of a ``JOBDIR``'s ``requests.queue``: found, each read from a copy, and written anew.

What each queue is, is told by what it is (:func:`find_queues`), so the crawl's settings are not needed: a file is
a queuelib ``LifoDiskQueue`` (Scrapy's default ``SCHEDULER_DISK_QUEUE``) or, starting with SQLite's header, a
``FifoSQLiteQueue``; a directory with ``info.json`` is a ``FifoDiskQueue`` (the default for start requests); any
other directory is a download slot's (``DownloaderAwarePriorityQueue``). A queue is read with queuelib's own class
from a copy (its ``pop`` consumes what it reads: :func:`read_queue`), and replaced by a new queue of the same class
and chunk size holding the records kept, as the bytes they were (:func:`replace_queue`). Which records go, and the
job directory's other files, are :mod:`.jobdir`'s.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from queuelib.queue import FifoDiskQueue, FifoSQLiteQueue, LifoDiskQueue

from .common import PurgeFailed, sync_directory

__all__ = ["QUEUE_DIR", "STATE", "WORK_PREFIX", "DiskQueue", "find_queues", "queue_name", "read_queue",
           "replace_queue"]

QUEUE_DIR = "requests.queue"
STATE = "active.json"
WORK_PREFIX = ".purge-"
_SQLITE = b"SQLite format 3\x00"
_PRIORITY = re.compile(r"-?\d+s?")
_SLOT = re.compile(r".*-([0-9a-f]{32})")


@dataclass
class DiskQueue:
    path: Path  #: the queue's file (lifo, sqlite) or directory (fifo)
    kind: str
    name: str  #: as receipts and messages name it
    records: list[bytes]  #: in push order
    chunksize: int = 0
    #: its files still hold the bytes of requests the crawl took from it (a FIFO chunk's head, deleted rows)
    stale: bool = False


def find_queues(root: Path) -> list[tuple[Path, str]]:
    """Every queue under ``root`` with its kind, in path order. Raises for what is none (a link, a stray file
    an interrupted purge left) and for what cannot be listed or read."""
    try:
        return _queues_in(root)
    except OSError as exc:
        raise PurgeFailed(f"{exc.filename or root} cannot be read ({exc.strerror or exc}); nothing in the job "
                          "directory was changed") from None


def _queues_in(root: Path) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for path in sorted(root.iterdir()):
        if path.name == STATE and path.is_file() and not path.is_symlink():
            continue
        if path.name.startswith(WORK_PREFIX):
            raise PurgeFailed(f"{path} was left by an interrupted purge and may hold a queue moved aside: look at "
                              "it, put the queue back or remove it, and purge again")
        if path.is_symlink():
            raise PurgeFailed(f"{path} is a symbolic link: not a queue Scrapy writes")
        if path.is_dir():
            if (path / "info.json").is_file():
                _check_fifo(path)
                found.append((path, "fifo"))
            else:  # a download slot's directory
                found += _queues_in(path)
        elif path.is_file():
            with path.open("rb") as f:
                found.append((path, "sqlite" if f.read(len(_SQLITE)) == _SQLITE else "lifo"))
        else:
            raise PurgeFailed(f"{path} is not a file or a directory")
    return found


def _check_fifo(path: Path) -> None:
    """Raises for what a FifoDiskQueue's directory never holds: a link (to ``/dev/zero``, its copy never ends) or
    anything but a file."""
    for entry in path.iterdir():
        if entry.is_symlink() or not entry.is_file():
            raise PurgeFailed(f"{path}: {entry.name} is {'a symbolic link' if entry.is_symlink() else 'no file'}: "
                              "not a queue Scrapy writes; nothing in the job directory was changed")


def _sqlite_stale(path: Path) -> bool:
    """Whether an SQLite queue had rows deleted (popped): unless the SQLite library overwrites deleted content
    (``SQLITE_SECURE_DELETE``), their bytes are still in the file. Raises for an SQLite file that holds anything
    but queuelib's table (a view named ``queue`` of endless rows would be counted without end, a trigger would run
    on each pop)."""
    import sqlite3

    expected = {("table", "queue", FifoSQLiteQueue._sql_create.replace(" IF NOT EXISTS", "")),
                ("table", "sqlite_sequence", "CREATE TABLE sqlite_sequence(name,seq)")}
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        found = set(db.execute("SELECT type, name, sql FROM sqlite_master"))
        if not found <= expected:
            other = ", ".join(sorted(f"a {kind} named {name}" for kind, name, _ in found - expected))
            raise ValueError(f"not a queue queuelib writes ({other})")
        if len(found) < len(expected):  # no row was ever pushed (no sqlite_sequence), or no queue table
            return False
        [(pushed,)] = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'queue'")
        [(held,)] = db.execute("SELECT COUNT(*) FROM queue")
    finally:
        db.close()
    return bool(pushed != held)


def queue_name(path: Path) -> str:
    """A queue's name for receipts: its path under requests.queue, a slot directory by Scrapy's MD5 of it."""
    parts = path.parts[path.parts.index(QUEUE_DIR) + 1:]
    named = []
    for part in parts:
        slot = _SLOT.fullmatch(part)
        named.append(part if _PRIORITY.fullmatch(part) else slot.group(1) if slot else "?")
    return "/".join(named)


def read_queue(path: Path, kind: str, work: Path) -> DiskQueue:
    """The records of one queue, in push order, read by queuelib from a copy (its pops consume the copy)."""
    copy = work / f"read-{secrets.token_hex(4)}"
    records: list[bytes] = []
    queue: Any = None
    stale = False
    try:
        if kind == "fifo":
            shutil.copytree(path, copy)
            queue = FifoDiskQueue(copy)
        else:
            shutil.copyfile(path, copy)
            stale = kind == "sqlite" and _sqlite_stale(copy)
            queue = LifoDiskQueue(copy) if kind == "lifo" else FifoSQLiteQueue(copy)
        expected = len(queue)
        stale = stale or (kind == "fifo" and queue.info["tail"][2] > 0)
        records = _drain(queue.pop)
        if kind == "lifo":
            records.reverse()
            if queue.f.seek(0, os.SEEK_END) != LifoDiskQueue.SIZE_SIZE:
                raise ValueError("bytes beyond the requests its header counts")
    except Exception as exc:  # noqa: BLE001 - whatever queuelib raises on a damaged queue: it cannot be read
        raise PurgeFailed(f"{path}: the queue cannot be read ({type(exc).__name__}: {exc}); nothing in the job "
                          "directory was changed") from None
    finally:
        if queue is not None:
            with contextlib.suppress(Exception):  # a copy: only its open files matter
                queue.close()
        if copy.is_dir():
            shutil.rmtree(copy, ignore_errors=True)
        else:
            copy.unlink(missing_ok=True)
    if len(records) != expected:
        raise PurgeFailed(f"{path}: the queue holds {len(records)} requests where it counts {expected}; nothing in "
                          "the job directory was changed")
    return DiskQueue(path, kind, queue_name(path), records, queue.chunksize if kind == "fifo" else 0, stale)


def _drain(pop: Callable[[], bytes | None]) -> list[bytes]:
    records = []
    while (record := pop()) is not None:
        records.append(record)
    return records


def replace_queue(queue: DiskQueue, kept: list[bytes], work: Path) -> None:
    """Build the queue of ``kept`` with queuelib in ``work``, make it durable, and put it in the old one's place
    (a queue left empty goes: Scrapy removes an empty queue too)."""
    new = work / f"new-{secrets.token_hex(4)}"
    try:
        target: Any = (FifoDiskQueue(new, chunksize=queue.chunksize) if queue.kind == "fifo"
                       else LifoDiskQueue(new) if queue.kind == "lifo" else FifoSQLiteQueue(new))
        for raw in kept:
            target.push(raw)
        target.close()
        for path in ([new] if new.is_file() else sorted(new.rglob("*")) if new.is_dir() else []):
            _fsync(path)
    except Exception as exc:  # noqa: BLE001 - OSError, sqlite3.Error: the old queue is untouched
        raise PurgeFailed(f"the new queue cannot be written ({type(exc).__name__}: {exc}); the queue keeps its old "
                          "requests") from None
    try:
        if not queue.path.is_dir():
            if new.exists():
                os.chmod(new, queue.path.stat().st_mode & 0o7777)
                os.replace(new, queue.path)
            else:
                queue.path.unlink()
        else:
            _swap_directory(queue.path, new)
    except OSError as exc:
        raise PurgeFailed(f"the queue cannot be replaced ({exc.strerror or exc}); it keeps its old requests") from None
    sync_directory(queue.path.parent)


def _swap_directory(old: Path, new: Path) -> None:
    """A FifoDiskQueue's directory replaced: the old one moved aside beside it (a ``.purge-`` name the next purge
    stops at, should this one die before it is deleted), the new one moved in, then the old one deleted. If the
    new one cannot be moved in, the old one is put back."""
    aside = old.with_name(f"{WORK_PREFIX}old-{secrets.token_hex(4)}")
    os.rename(old, aside)
    if new.exists():
        try:
            os.rename(new, old)
        except OSError:
            os.rename(aside, old)
            raise
    sync_directory(old.parent)
    shutil.rmtree(aside, ignore_errors=True)
    if aside.exists():
        raise PurgeFailed(f"the queue was replaced, but its old requests were moved aside to {aside} and could not "
                          "be deleted")


def _fsync(path: Path) -> None:
    if path.is_file():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
