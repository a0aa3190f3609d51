"""Importing a large JSON Lines file into a new SQLite store on two cores (``consentcrawl authorizations import``).

The bulk importer (:mod:`~consentcrawl.consent.sqlite_bulk`) makes two passes, and each is Python work that one
core runs: *read* (parse, validate, hash and bucket every record, the buckets spilled to a scratch file), then
*write* (bucket by bucket, in rowid order, into SQLite). Here a second process takes half of each pass:

1. the file is cut at the first line break after its middle (a JSON Lines record never holds a raw line break:
   JSON escapes it). This process reads the first half and the other process the second, its line numbers
   starting where the first half ends and its records numbered after all of the first half's, each into its
   own buckets and scratch file;
2. each process writes half of the buckets, from both scratch files, into its own new SQLite file (this one the
   low rowids, the other the high ones) and fills a Bloom filter of the final size. The other file's rows are then
   appended to this one's with SQLite's transfer of whole records (``INSERT INTO … SELECT *``, nothing decoded),
   the filters are OR-ed, and the store is flushed and renamed into place as
   :func:`~consentcrawl.consent.sqlite_bulk.build_store` does: until then the target is untouched, and a crash
   leaves only scratch files that nothing reads.

The records, the store and the errors are those of the one-process import: a record that does not validate in the
first half is reported before any in the second (the second is not waited for), and of several duplicates, the one
read first. The other process is started with ``spawn`` (no copy of this process's threads or locks), which costs
a fraction of a second: a file smaller than :data:`TWO_PROCESSES_BYTES` is imported in one.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .formats import open_validator
from .keys import platform_objects
from .reading import CHUNK
from .sqlite_bulk import BUCKETS, _Buckets, finish_store, new_store, read_part, replacing, write_buckets
from .sqlite_format import Bloom
from .sqlite_write import ImportResult, _Rules

__all__ = ["TWO_PROCESSES_BYTES", "import_jsonl", "two_processes"]

TWO_PROCESSES_BYTES = 32 << 20  #: about 200,000 records: below this, starting a process costs more than it saves
CACHE_KIB = 32_768  #: SQLite's page cache in each process (the pages are appended: a small cache is enough)
_HALF = range(BUCKETS // 2)  #: the buckets this process writes; the other process writes the rest
_OTHER_HALF = range(BUCKETS // 2, BUCKETS)

Progress = Callable[[int, int], None]  #: (bytes read, records read), both processes together


def two_processes(source: str, size: int) -> bool:
    """Whether ``import_jsonl`` pays for the file named ``source`` of ``size`` bytes: a large JSON Lines file."""
    return Path(source).suffix.lower() == ".jsonl" and size >= TWO_PROCESSES_BYTES and (os.cpu_count() or 1) > 1


def import_jsonl(path: str, source: str, platforms: Any, *, progress: Progress | None = None) -> ImportResult:
    """Write a new store at ``path`` holding the validated records of the JSON Lines file ``source``, replacing
    what was there, with a second process doing half the work. ``platforms`` is the ``PlatformRegistry`` the
    records are validated against. Errors are ConfigErrors naming the file and line, as
    :func:`~consentcrawl.consent.sqlite_bulk.build_store` raises them; on any error the target is left as it was.
    """
    size = os.stat(source).st_size
    split = _split_point(source, size)
    context = multiprocessing.get_context("spawn")
    shared = context.Array("q", 2, lock=False)  # the other process's bytes and records read, for progress
    here, there = context.Pipe()
    with replacing(path) as scratch:
        spills = (f"{scratch}.spill", f"{scratch}.spill-2")
        worker = context.Process(target=_worker, args=(there, shared, source, platforms, split, spills,
                                                       f"{scratch}.part"),
                                 name="consentcrawl-import", daemon=True)
        worker.start()
        there.close()  # so that the worker's end closing is seen here (EOFError) if it dies
        try:
            result = _import(here, worker, shared, scratch, spills, source, platforms, split, progress)
        finally:
            if worker.is_alive():
                worker.terminate()  # an error in the first half: the second is not needed
            worker.join()
            here.close()
    return result


def _import(here: Any, worker: Any, shared: Any, scratch: str, spills: tuple[str, str], source: str, platforms: Any,
            split: int, progress: Progress | None) -> ImportResult:
    rules = _Rules(platform_objects(platforms), {})
    with open(spills[0], "w+b") as mine, _Head(source, split) as head:
        validator = open_validator(source, platforms, dedup=False)
        validator.stage()  # rows, not records; duplicates are found by write_buckets

        def tick(count: int) -> None:
            if progress is not None:
                progress(head.position + shared[0], count + shared[1])

        records = validator.records(io.BufferedReader(head, CHUNK))
        count, seen, chunks = read_part(records, platforms, mine, 0, tick)
        their_count, their_seen, their_chunks = _receive(here, worker, source)
        count += their_count
        seen |= their_seen
        here.send((chunks, count))  # the other process writes the other half of the buckets
        with open(spills[1], "rb") as theirs:
            parts = [_Buckets(mine, chunks), _Buckets(theirs, their_chunks)]
            bloom = Bloom.sized(count)
            conn = new_store(scratch, cache_kib=CACHE_KIB)
            try:
                conn.execute("BEGIN")
                keys, refused = write_buckets(conn, parts, bloom, rules.key, _HALF)
                conn.execute("COMMIT")
                their_keys, their_refused, their_bits = _receive(here, worker, source)
                firsts = [r for r in (refused, their_refused) if r is not None]
                if firsts:
                    raise min(firsts, key=lambda r: r[0])[1]
                conn.execute("ATTACH DATABASE ? AS part", (f"{scratch}.part",))
                conn.execute("BEGIN")
                conn.execute("INSERT INTO main.records SELECT * FROM part.records")  # whole records, in order
                conn.execute("COMMIT")
                conn.execute("DETACH DATABASE part")
                merged = int.from_bytes(bloom.bits, "little") | int.from_bytes(their_bits, "little")
                bloom = Bloom(bytearray(merged.to_bytes(len(bloom.bits), "little")), bloom.probes)
                conn.execute("BEGIN")
                finish_store(conn, bloom, count, keys + their_keys, seen, rules, None, False)
            finally:
                conn.close()
    if progress is not None:
        progress(os.stat(source).st_size, count)
    return ImportResult(count, count, keys + their_keys)


def _worker(pipe: Any, shared: Any, source: str, platforms: Any, split: int, spills: tuple[str, str],
            part: str) -> None:
    """The second process: read the file from ``split`` on into buckets spilled to ``spills[1]``; then, given
    where the first half's buckets are in ``spills[0]``, write the upper half of the buckets into a new SQLite
    file ``part``."""
    try:
        with open(spills[1], "w+b") as mine:
            validator = open_validator(source, platforms, dedup=False)
            validator.stage()
            with open(source, "rb", buffering=0) as raw:
                line = 1 + _count_lines(raw, split)
                raw.seek(split)
                stream = io.BufferedReader(raw, CHUNK)  # type: ignore[type-var]

                def tick(count: int) -> None:
                    shared[0], shared[1] = raw.tell() - split, count

                records = validator.records(stream, line=line, offset=split)
                count, seen, chunks = read_part(records, platforms, mine, split, tick)  # numbered after the first
            pipe.send((count, seen, chunks))
            their_chunks, total = pipe.recv()
            rules = _Rules(platform_objects(platforms), {})
            bloom = Bloom.sized(total)
            conn = new_store(part, cache_kib=CACHE_KIB)
            try:
                with open(spills[0], "rb") as theirs:
                    parts = [_Buckets(theirs, their_chunks), _Buckets(mine, chunks)]
                    conn.execute("BEGIN")
                    keys, refused = write_buckets(conn, parts, bloom, rules.key, _OTHER_HALF)
                    conn.execute("COMMIT")
            finally:
                conn.close()
            pipe.send((keys, refused, bytes(bloom.bits)))
    except EOFError:  # the first process is gone, or needs no more
        pass
    except BaseException as exc:  # noqa: BLE001 - said by the first process, as a ConfigError naming the file
        error = exc if isinstance(exc, ConfigError) else ConfigError(
            f"cannot import: {type(exc).__name__}: {exc}", source)
        with contextlib.suppress(OSError):  # the first process is gone
            pipe.send(error)
    finally:
        pipe.close()


def _receive(pipe: Any, worker: Any, source: str) -> Any:
    """The worker's next answer; its ConfigError raised here; a worker that died is a ConfigError too."""
    try:
        answer = pipe.recv()
    except EOFError:
        worker.join()
        raise ConfigError(f"cannot import: the second import process stopped (exit code {worker.exitcode})",
                          source) from None
    if isinstance(answer, ConfigError):
        raise answer
    return answer


def _split_point(source: str, size: int) -> int:
    """Where the second half starts: after the first line break past the middle (the end when there is none)."""
    with open(source, "rb") as f:
        f.seek(size // 2)
        while chunk := f.read(CHUNK):
            at = chunk.find(b"\n")
            if at >= 0:
                return f.tell() - len(chunk) + at + 1
    return size


def _count_lines(raw: Any, end: int) -> int:
    """Line breaks in the file's first ``end`` bytes."""
    raw.seek(0)
    lines, left = 0, end
    buffer = bytearray(CHUNK)
    while left > 0:
        n = raw.readinto(memoryview(buffer)[:min(left, CHUNK)])
        if not n:
            break
        lines += buffer.count(b"\n", 0, n)
        left -= n
    return lines


class _Head(io.RawIOBase):
    """The file's first ``end`` bytes, as a raw stream that counts what was read."""

    def __init__(self, path: str, end: int) -> None:
        super().__init__()
        self._f = open(path, "rb", buffering=0)  # closed with this stream
        self._left = end
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)
        n: int = self._f.readinto(view[:min(len(view), self._left)])
        self._left -= n
        self.position += n
        return n

    def close(self) -> None:
        try:
            self._f.close()
        finally:
            super().close()
