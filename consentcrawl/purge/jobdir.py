"""A paused crawl's job directory (``JOBDIR``): the purged people's requests removed from its disk queues.

**Layout** (Scrapy 2.19): ``JOBDIR/requests.queue/`` holds ``active.json`` (the priorities, per download slot
with ``DownloaderAwarePriorityQueue``, that still hold requests) and one queue per priority (``-0``; ``-0s`` for
start requests), in a directory per slot (``<slot>-<md5 of slot>/``) with ``DownloaderAwarePriorityQueue``. A
queue is one of queuelib's: ``LifoDiskQueue`` (a file: Scrapy's default ``SCHEDULER_DISK_QUEUE``),
``FifoDiskQueue`` (a directory with ``info.json``: the default for start requests) or an SQLite queue (a file
starting with SQLite's header). Each is told by what it is, so the crawl's settings are not needed.

**How**: every queue is copied into a work directory inside ``requests.queue`` and read there with queuelib's
own class (its ``pop`` consumes what it reads), each record is judged (:func:`.queued.owner`), and the records
kept are pushed, in their order and as the bytes they were (never re-serialised), into a new queue of the same
class and chunk size, which then replaces the old one: a file by one ``rename``; a ``FifoDiskQueue`` directory by
renaming the old one into the work directory and the new one into its place (put back if the second rename
fails). A ``FifoDiskQueue`` whose chunk still holds the bytes of requests the crawl took from it (queuelib keeps
them until the whole chunk is consumed) is rewritten even when none of its waiting requests goes: they may be a
selected person's. So is an SQLite queue that had rows deleted (their bytes stay unless SQLite was built with
``SQLITE_SECURE_DELETE``). A slot's directory left holding no queue goes: its name is a host, which can name a person.
Nothing is written before every queue has been read: a queue that cannot be read fails the whole job
directory, which stays as it was. ``active.json`` is then rewritten (temporary file and rename) without the
priorities and slots left empty, so a resumed crawl does not wait on a queue that holds nothing.

``requests.seen`` is purged after the queues, of the removed requests too (:mod:`.seen`). Left as it is:
``spider.state`` (the spider's own ``state`` dict: what it holds is the spider's; see docs/purge.md). It is read,
though: one that names a selected person fails the job directory, which must not be reported free of them.

**In the receipt** a queue is named by its path under ``requests.queue`` with a slot directory's name replaced by
the MD5 Scrapy gives it (a slot is a host, and a host can name a person), and a request by its position from the
queue's bottom (push order), counted from 1; the hash is over the removed records' stored bytes in that order.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from queuelib.queue import FifoDiskQueue, FifoSQLiteQueue, LifoDiskQueue

from ..facts import FactReader
from .common import PurgeFailed, Selection, TargetResult, atomic_replace, sync_directory
from .queued import UNSURE, decode, named_in_state, owner

__all__ = ["QUEUE_DIR", "purge_jobdir"]

QUEUE_DIR = "requests.queue"
STATE = "active.json"
SPIDER_STATE = "spider.state"
WORK_PREFIX = ".purge-"
_SQLITE = b"SQLite format 3\x00"
_PRIORITY = re.compile(r"-?\d+s?")
_SLOT = re.compile(r".*-([0-9a-f]{32})")
_SLOT_IN_TEXT = re.compile(r"""[^/\s'"]*-([0-9a-f]{32})(?=[/\s'"]|$)""")


@dataclass
class _Queue:
    path: Path  #: the queue's file (lifo, sqlite) or directory (fifo)
    kind: str
    name: str  #: as receipts and messages name it
    records: list[bytes]  #: in push order
    chunksize: int = 0
    #: its files still hold the bytes of requests the crawl took from it (a FIFO chunk's head, deleted rows)
    stale: bool = False


def purge_jobdir(jobdir: Path, selection: Selection, *, dry_run: bool = False,
                 removed: list[tuple[str | None, dict[str, Any]]] | None = None,
                 kept: list[dict[str, Any]] | None = None) -> TargetResult:
    """Remove the selected people's requests from ``jobdir``'s disk queues (``removed`` gets each one's owner, None
    when unsure, and stored request; ``kept`` each request left queued). Raises :class:`PurgeFailed` (the job
    directory untouched) when a queue cannot be read; a queue that cannot be replaced is a failure of the result
    (it keeps its old bytes), the others are replaced. A message names no slot's host (:func:`_hide_hosts`)."""
    try:
        result = _purge(jobdir, selection, dry_run, [] if removed is None else removed, [] if kept is None else kept)
    except PurgeFailed as exc:
        raise PurgeFailed(_hide_hosts(str(exc))) from None
    result.failures[:] = [_hide_hosts(why) for why in result.failures]
    return result


def _hide_hosts(text: str) -> str:
    """``text`` with each slot directory's name (``<host>-<md5 of host>``) as ``*-<md5>``, which a shell still
    finds: a failure's message goes into every receipt of the run and, on close, into the crawl's log at ERROR,
    and a host can name a person."""
    return _SLOT_IN_TEXT.sub(r"*-\1", text)


def _purge(jobdir: Path, selection: Selection, dry_run: bool, removed: list[tuple[str | None, dict[str, Any]]],
           left: list[dict[str, Any]]) -> TargetResult:
    root = jobdir / QUEUE_DIR
    result = TargetResult(str(jobdir), "jobdir")
    if not root.is_dir():
        raise PurgeFailed(f"no {QUEUE_DIR} directory: not the JOBDIR of a Scrapy crawl")
    state = _read_state(root)
    found = _find(root)
    _check_spider_state(jobdir / SPIDER_STATE, selection, result)
    reader = FactReader(selection.platforms, "consentcrawl")
    work = root / f"{WORK_PREFIX}{secrets.token_hex(4)}"
    try:
        work.mkdir()
    except OSError as exc:
        raise PurgeFailed(f"cannot write in {root}: {exc.strerror or exc}") from None
    try:
        queues = [_read(path, kind, work) for path, kind in found]
        changed = []
        unsure: list[str] = []
        for queue in queues:
            kept = []
            for number, raw in enumerate(queue.records, 1):
                try:
                    request = decode(raw)
                    who = owner(request, selection, reader, len(raw))
                except PurgeFailed as exc:
                    raise PurgeFailed(f"{queue.path}: record {number}: {exc}") from None
                if who is None:
                    kept.append(raw)
                    left.append(request)
                    continue
                removed.append((None if who == UNSURE else who, request))
                where = f"{queue.name}#{number}"
                result.remove(None if who == UNSURE else who, where, raw)
                if who == UNSURE:
                    unsure.append(where)
            result.kept += len(kept)
            if len(kept) < len(queue.records) or queue.stale:
                changed.append((queue, kept))
        # every receipt of the job directory lists the requests that may have been anyone's of the selection
        result.lists["unsure"] = dict.fromkeys([None, *selection.people.values()], unsure)
        if not dry_run:
            for queue, kept in changed:
                try:
                    _replace(queue, kept, work)
                except PurgeFailed as exc:
                    result.failures.append(f"{queue.path}: {exc}")
            if _remove_empty_slots(root, result) or changed:
                try:
                    _write_state(root, state)
                except PurgeFailed as exc:  # the queues are purged: the receipt must still say so
                    result.failures.append(f"{root / STATE}: {exc} (a resumed crawl may wait a turn on an empty "
                                           "queue)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _check_spider_state(path: Path, selection: Selection, result: TargetResult) -> None:
    """A failure of the result when the spider's state names a selected person (or cannot be read): what the
    spider keeps there is its own, and the purge does not rewrite it, but it must not report them gone."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        result.failures.append(f"{path}: cannot be read ({exc.strerror or exc})")
        return
    try:
        named = named_in_state(raw, selection)
    except PurgeFailed as exc:
        result.failures.append(f"{path}: {exc}")
        return
    if named:  # how many, not who: the message goes into every receipt of the run, and on close into the log
        result.failures.append(f"{path}: the spider's state names {len(named)} selected person(s); the purge does "
                               "not rewrite the spider's own state: erase them from it (or delete the file) and "
                               "purge again")


def _read_state(root: Path) -> Any:
    path = root / STATE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested past the parser's depth
        raise PurgeFailed(f"{path} cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, (list, dict)):
        raise PurgeFailed(f"{path} is not the state Scrapy's scheduler writes")
    return state


def _find(root: Path) -> list[tuple[Path, str]]:
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


def _name(path: Path) -> str:
    """A queue's name for receipts: its path under requests.queue, a slot directory by Scrapy's MD5 of it."""
    parts = path.parts[path.parts.index(QUEUE_DIR) + 1:]
    named = []
    for part in parts:
        slot = _SLOT.fullmatch(part)
        named.append(part if _PRIORITY.fullmatch(part) else slot.group(1) if slot else "?")
    return "/".join(named)


def _read(path: Path, kind: str, work: Path) -> _Queue:
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
    return _Queue(path, kind, _name(path), records, queue.chunksize if kind == "fifo" else 0, stale)


def _drain(pop: Callable[[], bytes | None]) -> list[bytes]:
    records = []
    while (record := pop()) is not None:
        records.append(record)
    return records


def _replace(queue: _Queue, kept: list[bytes], work: Path) -> None:
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


def _remove_empty_slots(root: Path, result: TargetResult) -> bool:
    """Remove the download slots' directories that hold no queue: a slot's directory is named by its host (which
    can name a person), and Scrapy, which leaves it behind when the slot's queues empty, makes it again when it
    needs it. Whether any went."""
    removed = False
    for path in sorted(root.iterdir()):
        if not path.is_dir() or path.is_symlink() or path.name.startswith(WORK_PREFIX):
            continue
        try:
            if not any(path.iterdir()):
                path.rmdir()
                removed = True
        except OSError as exc:
            result.failures.append(f"{root}/{_name(path)}: an empty download slot's directory cannot be removed "
                                   f"({exc.strerror or exc})")
    if removed:
        sync_directory(root)
    return removed


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


def _write_state(root: Path, state: Any) -> None:
    """``active.json`` without the priorities (and slots) whose queues are gone."""
    if state is None:
        return

    def live(directory: Path, priorities: Any) -> list[Any]:
        return [p for p in priorities if (directory / str(p)).exists() or (directory / f"{p}s").exists()]

    if isinstance(state, list):
        new: Any = live(root, state)
    else:
        try:
            from scrapy.pqueues import _path_safe  # the slot's directory name, as Scrapy makes it
        except ImportError:  # another Scrapy: a slot left empty only costs the resumed crawl a turn
            return
        new = {slot: kept for slot, prios in state.items() if (kept := live(root / _path_safe(slot), prios))}
    if new != state:
        atomic_replace(root / STATE, [json.dumps(new).encode()])
