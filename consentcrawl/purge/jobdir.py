"""A paused crawl's job directory (``JOBDIR``): the purged people's requests removed from its disk queues.

**Layout** (Scrapy 2.19): ``JOBDIR/requests.queue/`` holds ``active.json`` (the priorities, per download slot
with ``DownloaderAwarePriorityQueue``, that still hold requests) and one queue per priority (``-0``; ``-0s`` for
start requests), in a directory per slot (``<slot>-<md5 of slot>/``) with ``DownloaderAwarePriorityQueue``. A
queue is one of queuelib's: ``LifoDiskQueue`` (a file: Scrapy's default ``SCHEDULER_DISK_QUEUE``),
``FifoDiskQueue`` (a directory with ``info.json``: the default for start requests) or an SQLite queue (a file
starting with SQLite's header). Each is told by what it is, so the crawl's settings are not needed.

**How** (:mod:`.diskqueues`): every queue is copied into a work directory inside ``requests.queue`` and read there
with queuelib's own class (its ``pop`` consumes what it reads), each record is judged (:func:`.queued.owner`), and
the records kept are pushed, in their order and as the bytes they were (never re-serialised), into a new queue of
the same class and chunk size, which then replaces the old one: a file by one ``rename``; a ``FifoDiskQueue``
directory by renaming the old one into the work directory and the new one into its place (put back if the second
rename fails). A ``FifoDiskQueue`` whose chunk still holds the bytes of requests the crawl took from it (queuelib
keeps them until the whole chunk is consumed) is rewritten even when none of its waiting requests goes: they may be
a selected person's. So is an SQLite queue that had rows deleted (their bytes stay unless SQLite was built with
``SQLITE_SECURE_DELETE``). A slot's directory left holding no queue goes: its name is a host, which can name a
person. Nothing is written before every queue has been read: a queue that cannot be read fails the whole job
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

import json
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from ..facts import FactReader
from .common import PurgeFailed, Selection, TargetResult, atomic_replace, sync_directory
from .diskqueues import QUEUE_DIR, STATE, WORK_PREFIX, find_queues, queue_name, read_queue, replace_queue
from .queued import UNSURE, decode, named_in_state, owner

__all__ = ["QUEUE_DIR", "purge_jobdir"]

SPIDER_STATE = "spider.state"
_SLOT_IN_TEXT = re.compile(r"""[^/\s'"]*-([0-9a-f]{32})(?=[/\s'"]|$)""")


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
    found = find_queues(root)
    _check_spider_state(jobdir / SPIDER_STATE, selection, result)
    reader = FactReader(selection.platforms, "consentcrawl")
    work = root / f"{WORK_PREFIX}{secrets.token_hex(4)}"
    try:
        work.mkdir()
    except OSError as exc:
        raise PurgeFailed(f"cannot write in {root}: {exc.strerror or exc}") from None
    try:
        queues = [read_queue(path, kind, work) for path, kind in found]
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
                    replace_queue(queue, kept, work)
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
            result.failures.append(f"{root}/{queue_name(path)}: an empty download slot's directory cannot be removed "
                                   f"({exc.strerror or exc})")
    if removed:
        sync_directory(root)
    return removed


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
