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
read first. The other process is a new interpreter (no copy of this process's threads or locks), which costs
half a second to start: a file smaller than :data:`TWO_PROCESSES_BYTES` is imported in one.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
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
    return (Path(source).suffix.lower() == ".jsonl" and size >= TWO_PROCESSES_BYTES and (os.cpu_count() or 1) > 1
            and os.name == "posix" and bool(sys.executable))  # the pipes are handed to it as descriptors


def import_jsonl(path: str, source: str, platforms: Any, *, progress: Progress | None = None) -> ImportResult:
    """Write a new store at ``path`` holding the validated records of the JSON Lines file ``source``, replacing
    what was there, with a second process doing half the work. ``platforms`` is the ``PlatformRegistry`` the
    records are validated against. Errors are ConfigErrors naming the file and line, as
    :func:`~consentcrawl.consent.sqlite_bulk.build_store` raises them; on any error the target is left as it was.
    """
    try:
        size = os.stat(source).st_size
        split = _split_point(source, size)
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", source) from None
    with replacing(path) as scratch:
        job = _Job(source, platforms, split, (f"{scratch}.spill", f"{scratch}.spill-2"), f"{scratch}.part",
                   f"{scratch}.progress")
        Path(job.progress).write_bytes(bytes(_PROGRESS.size))
        with _Worker(job) as worker:
            result = _import(worker, job, scratch, progress)
    return result


@dataclass(frozen=True)
class _Job:
    """What the second process is given: the file, where its half starts, and the scratch files."""

    source: str
    platforms: Any
    split: int
    spills: tuple[str, str]  #: this process's buckets, the second process's
    part: str  #: the SQLite file of the upper half of the buckets
    progress: str  #: the second process's bytes and records read so far (:data:`_PROGRESS`)


_PROGRESS = struct.Struct("<qq")


def _import(worker: _Worker, job: _Job, scratch: str, progress: Progress | None) -> ImportResult:
    rules = _Rules(platform_objects(job.platforms), {})
    with open(job.spills[0], "w+b") as mine, _Head(job.source, job.split) as head, \
            open(job.progress, "r+b") as shared_file, mmap.mmap(shared_file.fileno(), _PROGRESS.size) as shared:
        validator = open_validator(job.source, job.platforms, dedup=False)
        validator.stage()  # rows, not records; duplicates are found by write_buckets

        def tick(count: int) -> None:
            if progress is not None:
                their_bytes, their_count = _PROGRESS.unpack_from(shared)
                progress(head.position + their_bytes, count + their_count)

        records = validator.records(io.BufferedReader(head, CHUNK))
        count, seen, chunks = read_part(records, job.platforms, mine, 0, tick)
        their_count, their_seen, their_chunks = worker.receive()
        count += their_count
        seen |= their_seen
        worker.send((chunks, count))  # the second process writes the upper half of the buckets
        with open(job.spills[1], "rb") as theirs:
            parts = [_Buckets(mine, chunks), _Buckets(theirs, their_chunks)]
            bloom = Bloom.sized(count)
            conn = new_store(scratch, cache_kib=CACHE_KIB)
            try:
                conn.execute("BEGIN")
                keys, refused = write_buckets(conn, parts, bloom, rules.key, _HALF)
                conn.execute("COMMIT")
                their_keys, their_refused, their_bits = worker.receive()
                firsts = [r for r in (refused, their_refused) if r is not None]
                if firsts:
                    raise min(firsts, key=lambda r: r[0])[1]
                conn.execute("ATTACH DATABASE ? AS part", (job.part,))
                conn.execute("BEGIN")
                conn.execute("INSERT INTO main.records SELECT * FROM part.records")  # whole records, in order
                conn.execute("COMMIT")
                conn.execute("DETACH DATABASE part")
                _merge_bloom(bloom.bits, their_bits)
                conn.execute("BEGIN")
                finish_store(conn, bloom, count, keys + their_keys, seen, rules, None, False)
            finally:
                conn.close()
    if progress is not None:
        progress(os.stat(job.source).st_size, count)
    return ImportResult(count, count, keys + their_keys)


def _merge_bloom(bits: Any, theirs: bytes) -> None:
    """OR the other half's Bloom filter (the same size) into ``bits``, a megabyte at a time (at 10 million
    records a filter is 16 MB: whole, the two and their OR as integers would be 64 MB more at the peak)."""
    view = memoryview(theirs)
    for at in range(0, len(bits), CHUNK):
        end = min(at + CHUNK, len(bits))
        merged = int.from_bytes(bits[at:end], "little") | int.from_bytes(view[at:end], "little")
        bits[at:end] = merged.to_bytes(end - at, "little")


class _Worker:
    """The second process, a fresh interpreter (not a fork: nothing of this process's threads, locks or
    ``__main__`` is copied), talking over two pipes; killed when the block ends on an error."""

    def __init__(self, job: _Job) -> None:
        to_read, to_write = os.pipe()
        from_read, from_write = os.pipe()
        try:
            root = str(Path(__file__).resolve().parents[2])  # where this consentcrawl is, whatever sys.path says
            self.process = subprocess.Popen(
                [sys.executable, "-c", f"import sys; sys.path.insert(0, {root!r}); from {__name__} import _child; "
                                       f"_child({to_read}, {from_write})"],
                pass_fds=(to_read, from_write), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        except BaseException:
            for fd in (to_write, from_read):
                os.close(fd)
            raise
        finally:
            os.close(to_read)  # the child's ends: when the child dies, reading here ends (EOFError)
            os.close(from_write)
        self.outbox = os.fdopen(to_write, "wb")
        self.inbox = os.fdopen(from_read, "rb")
        self.source = job.source
        self.send(job)

    def __enter__(self) -> _Worker:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None and self.process.poll() is None:
            self.process.kill()  # an error in the first half: the second is not needed
        with contextlib.suppress(OSError):
            self.outbox.close()  # a worker waiting for more work is done
        self.inbox.close()
        self.process.wait()

    def send(self, message: Any) -> None:
        try:
            pickle.dump(message, self.outbox, pickle.HIGHEST_PROTOCOL)
            self.outbox.flush()
        except BrokenPipeError:
            self.receive()  # it died: says how, or what it refused
            raise

    def receive(self) -> Any:
        """The worker's next answer; its ConfigError raised here; a worker that died is a ConfigError too."""
        try:
            answer = pickle.load(self.inbox)
        except EOFError:
            code = self.process.wait()
            raise ConfigError(f"cannot import: the second import process stopped (exit code {code})",
                              self.source) from None
        if isinstance(answer, ConfigError):
            raise answer
        return answer


def _child(inbox_fd: int, outbox_fd: int) -> None:
    """The second process (:class:`_Worker`): its half of the reading, then of the writing."""
    with os.fdopen(inbox_fd, "rb") as inbox, os.fdopen(outbox_fd, "wb") as outbox:
        def send(message: Any) -> None:
            pickle.dump(message, outbox, pickle.HIGHEST_PROTOCOL)
            outbox.flush()

        source = "the authorization file"
        try:
            job: _Job = pickle.load(inbox)
            source = job.source
            _second_half(job, inbox, send)
        except EOFError:  # the first process is gone, or needs no more
            pass
        except BaseException as exc:  # noqa: BLE001 - said by the first process, as a ConfigError naming the file
            error = exc if isinstance(exc, ConfigError) else ConfigError(
                f"cannot import: {type(exc).__name__}: {exc}", source)
            with contextlib.suppress(OSError):  # the first process is gone
                send(error)


def _second_half(job: _Job, inbox: Any, send: Callable[[Any], None]) -> None:
    """Read the file from ``job.split`` on into buckets; then, given where the first half's buckets are, write
    the upper half of the buckets into a new SQLite file, ``job.part``."""
    with open(job.spills[1], "w+b") as mine, open(job.progress, "r+b") as shared_file, \
            mmap.mmap(shared_file.fileno(), _PROGRESS.size) as shared:
        validator = open_validator(job.source, job.platforms, dedup=False)
        validator.stage()
        with open(job.source, "rb", buffering=0) as raw:
            line = 1 + _count_lines(raw, job.split)
            raw.seek(job.split)
            stream = io.BufferedReader(raw, CHUNK)  # type: ignore[type-var]

            def tick(count: int) -> None:
                _PROGRESS.pack_into(shared, 0, stream.tell() - job.split, count)

            records = validator.records(stream, line=line, offset=job.split)
            count, seen, chunks = read_part(records, job.platforms, mine, job.split, tick)  # after the first's
        send((count, seen, chunks))
        their_chunks, total = pickle.load(inbox)
        rules = _Rules(platform_objects(job.platforms), {})
        bloom = Bloom.sized(total)
        conn = new_store(job.part, cache_kib=CACHE_KIB)
        try:
            with open(job.spills[0], "rb") as theirs:
                parts = [_Buckets(theirs, their_chunks), _Buckets(mine, chunks)]
                conn.execute("BEGIN")
                keys, refused = write_buckets(conn, parts, bloom, rules.key, _OTHER_HALF)
                conn.execute("COMMIT")
        finally:
            conn.close()
        send((keys, refused, bytes(bloom.bits)))


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
