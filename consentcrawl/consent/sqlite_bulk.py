"""Building a new SQLite authorization store from a stream of validated records, fast: the import of a large
file (``consentcrawl authorizations import`` into a new store) and the cache of a large YAML, CSV or JSONL file.

:func:`~consentcrawl.consent.sqlite_write.import_records` adds records one at a time, each checked against the
store for duplicates and placed in a free slot of its person's range: right for a withdrawal added to a live
store, far too slow for ten million records. Here, instead:

1. every record is hashed to its person's range as it is read and put, in file order, into one of 256 buckets
   by the range's top bits (a bucket holds a contiguous slice of the table's rowids). Buckets are kept in memory
   and spilled, a batch at a time, to a scratch file beside the target (``marshal``: no SQL, no index), so memory
   stays bounded whatever the file's size;
2. bucket by bucket, in rowid order, the bucket's records are sorted by (range, file order) in memory and written
   with their final rowids: the first record of a range in its slot 0, the next ones of the same person (a
   withdrawal after its grant) in the next slots, each refused if it duplicates an earlier record of that person
   (naming both lines). SQLite only ever appends pages in order; no SQL sort, no staging table;
3. the Bloom filter (sized for the records counted, filled from the buckets while SQLite writes) and ``meta``
   are written in the same transaction, and the finished file replaces the target
   with a rename, so a reader sees the old store or the new one, never a half-built one.

Errors are those of ``import_records``, and the same one is reported: of several duplicates, the one read first.
The target is always replaced; a caller that wants to add to an existing store uses ``import_records``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import marshal
import os
import secrets
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError
from .keys import platform_objects
from .records import AuthorizationRecord
from .sqlite_format import RECORDS_TABLE, SCHEMA, SLOT_BITS, SLOTS, Bloom, StagedRow
from .sqlite_write import ImportResult, _dedup_key, _error_at, _record_row, _Rules, _write_state

__all__ = ["BUCKETS", "build_store", "finish_store", "new_store", "read_part", "replacing", "write_buckets"]

BATCH = 20_000  #: records between progress ticks
BUCKET_BITS = 8  #: 256 buckets: at 10 million records, about 40,000 to sort in memory at a time
BUCKETS = 1 << BUCKET_BITS
SPILL = 100_000  #: records held in memory before the buckets are spilled to the scratch file
PART_SPILL = 40_000  #: the same for a part of the file read while another process reads the other (read_part)


def build_store(path: str, records: Iterable[AuthorizationRecord | StagedRow], *, platforms: Any = None,
                meta: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
                tick: Callable[[int], None] | None = None, wal: bool = False) -> ImportResult:
    """Write a new store at ``path`` holding ``records`` (validated, in file order), replacing what was there.

    ``records`` are records, or rows as a validator stages them (:data:`StagedRow`: it need not build the
    record). ``platforms`` gives each platform's subject key rule (as for ``import_records``). ``meta`` adds entries to
    the store's ``meta`` table (the file cache records what it was built from), or is a function giving them once
    every record was read. ``tick(n)`` is called after every batch with the records read so far. ``wal``
    leaves the store in WAL mode (records can then be added while readers keep it open). A duplicate is a
    ConfigError naming both records' lines; on any error the target is left as it was.
    """
    with replacing(path) as scratch:
        return _build(scratch, f"{scratch}.spill", records, platforms, meta, tick, wal)


@contextlib.contextmanager
def replacing(path: str) -> Iterator[str]:
    """The name of a scratch file beside ``path`` to build a store in; once the block ends without an error, the
    scratch file is flushed to disk and renamed to ``path``. Every file named after the scratch file (its spill
    files, its parts) is deleted at the end, whatever happened."""
    target = Path(path)
    if target.exists() and not target.is_file():  # /dev/null, a FIFO: the rename would put the store in its place
        raise ConfigError("is not a regular file: a store is built beside it and renamed over it", f"sqlite:///{path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = f"{target}.building-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        yield scratch
        _sync(scratch)  # written without SQLite's syncs: on disk before its name says it is complete
        for suffix in ("-wal", "-shm", "-journal"):  # never a log of the old store next to the new one
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(scratch, target)
        _sync(str(target.parent), directory=True)
    finally:
        for leftover in target.parent.glob(glob.escape(Path(scratch).name) + "*"):
            with contextlib.suppress(OSError):
                os.unlink(leftover)


def _sync(path: str, *, directory: bool = False) -> None:
    """Flush a file (or a directory's entries: the rename) to disk. The store is built with ``synchronous=OFF``
    and no journal, which is safe only because nothing reads the scratch file before it is renamed into place:
    after a crash the name must hold a whole store or the old one. A directory that cannot be opened (Windows)
    is left to the file system."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _build(scratch: str, spill: str, records: Iterable[AuthorizationRecord | StagedRow], platforms: Any,
           meta: Mapping[str, str] | Callable[[], Mapping[str, str]] | None, tick: Callable[[int], None] | None,
           wal: bool) -> ImportResult:
    rules = _Rules(platform_objects(platforms), {})
    with open(spill, "w+b") as spill_file:
        buckets = _Buckets(spill_file)
        count, seen_platforms = _read(records, rules, buckets, tick)
        bloom = Bloom.sized(count)  # people are at most the records
        conn = new_store(scratch)
        try:
            conn.execute("BEGIN")
            keys, refused = write_buckets(conn, [buckets], bloom, rules.key, range(BUCKETS))
            if refused is not None:
                raise refused[1]
            finish_store(conn, bloom, count, keys, seen_platforms, rules, meta, wal)
        finally:
            conn.close()
    return ImportResult(count, count, keys)


def new_store(path: str, *, cache_kib: int = 65_536) -> sqlite3.Connection:
    """A connection to a new, empty store file written without a journal or syncs (see :func:`_sync`); it is
    used by one thread at a time, not always the one that opened it (see :func:`write_buckets`)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{cache_kib}", "locking_mode=EXCLUSIVE"):
        conn.execute(f"PRAGMA {pragma}")
    conn.executescript(SCHEMA + ";" + RECORDS_TABLE.format(name="records"))
    return conn


def finish_store(conn: sqlite3.Connection, bloom: Bloom, count: int, keys: int, seen_platforms: set[str],
                 rules: _Rules, meta: Mapping[str, str] | Callable[[], Mapping[str, str]] | None,
                 wal: bool) -> None:
    """Write the Bloom filter and ``meta`` and commit the open transaction; then the journal mode readers use."""
    _write_state(conn, bloom, count, keys, seen_platforms, rules.table(seen_platforms))
    extra = meta() if callable(meta) else (meta or {})
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", sorted(extra.items()))
    conn.execute("COMMIT")
    conn.execute(f"PRAGMA journal_mode={'WAL' if wal else 'DELETE'}")


class _Rows:
    """Records as stored (:data:`~consentcrawl.consent.sqlite_format.Row`), with the text of the times,
    purposes and fields that many records share written once."""

    def __init__(self) -> None:
        self.times: dict[Any, str] = {}
        self.sets: dict[frozenset[str], str] = {}
        self.fields: dict[frozenset[str], str | None] = {}

    def row(self, r: AuthorizationRecord) -> tuple[Any, ...]:
        times = self.times
        granted = times.get(r.granted_at)
        if granted is None:
            granted = times[r.granted_at] = r.granted_at.isoformat()
        expires = revoked = fields = None
        if r.expires_at is not None:
            expires = times.get(r.expires_at)
            if expires is None:
                expires = times[r.expires_at] = r.expires_at.isoformat()
        if r.revoked_at is not None:
            revoked = times.get(r.revoked_at)
            if revoked is None:
                revoked = times[r.revoked_at] = r.revoked_at.isoformat()
        purposes = self.sets.get(r.purposes)
        if purposes is None:
            purposes = self.sets[r.purposes] = " ".join(sorted(r.purposes))
        if r.fields is not None:
            if r.fields in self.fields:
                fields = self.fields[r.fields]
            else:
                fields = self.fields[r.fields] = _record_row(r)[7]
        return (r.platform, r.subject, purposes, granted, expires, revoked, r.evidence, fields, r.record_id,
                r.jurisdiction, r.source)


def _read(records: Iterable[AuthorizationRecord | StagedRow], rules: _Rules, buckets: _Buckets,
          tick: Callable[[int], None] | None, *, first: int = 0, spill: int = SPILL) -> tuple[int, set[str]]:
    """Hash every record to its range and put it in its bucket, in file order, with its digest (the Bloom filter's
    hashes, once the records are counted) and its number in the file (from ``first``: a part of the file read by
    another process numbers its records after every record of the parts before it), spilling the buckets every
    ``spill`` records (a multiple of :data:`BATCH`). Returns the count and the platforms seen."""
    platforms: set[str] = set()
    rows = _Rows()
    held = buckets.held
    shift = 63 - BUCKET_BITS
    blake2b, from_bytes = hashlib.blake2b, int.from_bytes
    count = 0
    for item in records:
        if isinstance(item, AuthorizationRecord):
            platform = item.platform
            key, row = rules.key(platform, item.subject), rows.row(item)
        else:
            key, row = item
            platform = row[0]
        digest = blake2b(f"{platform}\0{key}".encode("utf-8", "surrogatepass"), digest_size=16).digest()
        h1 = from_bytes(digest[:8], "little")
        base = h1 >> 13 << SLOT_BITS  # base_id(key_hashes(...)[0]), inlined
        _, subject, purposes, granted, expires, revoked, evidence, fields, record_id, jurisdiction, origin = row
        held[base >> shift].append((base, first + count, h1 & _LOW, from_bytes(digest[8:], "little", signed=True),
                                    platform, subject, purposes, granted, expires or "", revoked or "", evidence,
                                    fields or "", record_id, jurisdiction, origin))
        count += 1
        if platform not in platforms:
            platforms.add(platform)
        if not count % BATCH:
            if not count % spill:
                buckets.spill()
            if tick is not None:
                tick(count)
    if tick is not None:
        tick(count)
    return count, platforms


def read_part(records: Iterable[AuthorizationRecord | StagedRow], platforms: Any, spill_file: IO[bytes], first: int,
              tick: Callable[[int], None] | None) -> tuple[int, set[str], list[list[tuple[int, int]]]]:
    """Read one part of a file (records numbered from ``first``) into buckets spilled whole to ``spill_file``, for
    :func:`write_buckets` in this process or another: the count, the platforms seen, and where each bucket is.
    Two parts are read at once: each holds half as many records in memory between spills as one would."""
    buckets = _Buckets(spill_file)
    count, seen = _read(records, _Rules(platform_objects(platforms), {}), buckets, tick, first=first,
                        spill=PART_SPILL)
    buckets.spill()
    spill_file.flush()
    return count, seen, buckets.chunks


def _bloom_add(bloom: Bloom, h1: int, h2: int) -> None:
    """``bloom.add`` for the filter's usual 7 probes, unrolled (it runs once per record)."""
    if bloom.probes != 7:
        bloom.add(h1, h2)
        return
    bits, mask = bloom.bits, bloom.mask
    p = h1 & mask
    bits[p >> 3] |= 1 << (p & 7)  # type: ignore[index]
    p = (h1 + h2) & mask
    bits[p >> 3] |= 1 << (p & 7)  # type: ignore[index]
    p = (h1 + 2 * h2) & mask
    bits[p >> 3] |= 1 << (p & 7)  # type: ignore[index]
    p = (h1 + 3 * h2) & mask
    bits[p >> 3] |= 1 << (p & 7)  # type: ignore[index]
    p = (h1 + 4 * h2) & mask
    bits[p >> 3] |= 1 << (p & 7)  # type: ignore[index]
    p = (h1 + 5 * h2) & mask
    bits[p >> 3] |= 1 << (p & 7)  # type: ignore[index]
    p = (h1 + 6 * h2) & mask
    bits[p >> 3] |= 1 << (p & 7)  # type: ignore[index]


#: a record in a bucket: (range, number in the file, the low bits of its first hash, its second hash as a signed
#: 64-bit integer, *row with "" for an absent time or field list). Every item is an int or a str: ``sqlite3``
#: binds those directly, while a None or a bytes parameter goes through its adapter lookup, which cost more than
#: SQLite's own insert of the row. The subject key is not kept (it is spilled and read back with every record): the
#: rare range of several records works it out again.
_Held = tuple[Any, ...]
_LOW = (1 << 13) - 1  #: the bits of the first hash that its range drops (the Bloom filter needs them)
#: the insert of a held record: its range is its rowid (another slot of it: a new tuple), the hashes are bound but
#: not stored, "" is stored as NULL (never a valid time or JSON list), and the number is the person's row count:
#: a record alone in its range keeps its number in the file (>= 0: one row), one of several gets -count (_place)
_INSERT = ("INSERT INTO main.records (id, platform, subject, purposes, granted_at, expires_at, revoked_at, evidence, "
           "fields, record_id, jurisdiction, origin, person_rows) VALUES (?1, ?5, ?6, ?7, ?8, NULLIF(?9, ''), "
           "NULLIF(?10, ''), ?11, NULLIF(?12, ''), ?13, ?14, ?15, CASE WHEN ?2 < 0 THEN -?2 ELSE 1 END)")


class _Buckets:
    """The records read, by the top bits of their range: in memory, spilled to a scratch file a batch at a time."""

    def __init__(self, spill_file: IO[bytes], chunks: list[list[tuple[int, int]]] | None = None) -> None:
        """``chunks``: the buckets another process spilled to ``spill_file`` (see :func:`read_part`)."""
        self.held: list[list[_Held]] = [[] for _ in range(BUCKETS)]
        self.file = spill_file
        self.chunks: list[list[tuple[int, int]]] = chunks or [[] for _ in range(BUCKETS)]  #: (offset, length)

    def spill(self) -> None:
        for number, held in enumerate(self.held):
            if held:
                data = marshal.dumps(held)
                self.chunks[number].append((self.file.tell(), len(data)))
                self.file.write(data)
                held.clear()

    def bucket(self, number: int) -> list[_Held]:
        """Every record of one bucket, in file order."""
        records: list[_Held] = []
        for offset, length in self.chunks[number]:
            self.file.seek(offset)
            records.extend(marshal.loads(self.file.read(length)))
        records.extend(self.held[number])
        self.held[number] = []
        return records


def write_buckets(conn: sqlite3.Connection, parts: list[_Buckets], bloom: Bloom, key_of: Callable[[str, str], str],
                  numbers: range) -> tuple[int, tuple[int, ConfigError] | None]:
    """Write the records of buckets ``numbers`` (read from every part of the file) with their rowids, in rowid
    order, and add them to ``bloom``; returns the number of people, and the refusal of the record read first among
    those refused (a duplicate, or too many records of one person), with its number, if any.

    SQLite writes one bucket in a thread (it lets go of the GIL while it builds pages) while the next one is read
    back, sorted and added to the Bloom filter, so the two overlap on two cores."""
    keys = 0
    refused: tuple[int, ConfigError] | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="consentcrawl-import") as writer:
        writing: Future[Any] | None = None
        for number in numbers:
            held = parts[0].bucket(number)
            for part in parts[1:]:
                held += part.bucket(number)
            for record in held:
                _bloom_add(bloom, (record[0] >> SLOT_BITS << 13) | record[2], record[3])
            rows, people, error = _placed(held, key_of)
            keys += people
            if error is not None and (refused is None or error[0] < refused[0]):
                refused = error
            if writing is not None:
                writing.result()
            writing = writer.submit(_insert, conn, rows)
        if writing is not None:
            writing.result()
    return keys, refused


def _insert(conn: sqlite3.Connection, rows: list[_Held]) -> None:
    """Insert rows, and drop the cursor in the same thread (its statement is shared with the next insert)."""
    conn.executemany(_INSERT, rows).close()


def _placed(held: list[_Held], key_of: Callable[[str, str], str]) -> tuple[list[_Held], int,
                                                                      tuple[int, ConfigError] | None]:
    """One bucket's records with their rowids, in rowid order; the number of people, and the first refusal."""
    held.sort()  # by range, then file order (the numbers are unique: nothing further is compared)
    rows: list[_Held] = []
    keys = 0
    refused: tuple[int, ConfigError] | None = None
    i, end = 0, len(held)
    while i < end:
        base = held[i][0]
        j = i + 1
        if j == end or held[j][0] != base:  # nearly always: one record in its range
            rows.append(held[i])
            keys += 1
            i = j
            continue
        while j < end and held[j][0] == base:
            j += 1
        people, error = _place(held[i:j], rows, key_of)
        keys += people
        if error is not None and (refused is None or error[0] < refused[0]):  # the first in file order
            refused = error
        i = j
    return rows, keys, refused


def _place(same_range: list[_Held], rows: list[_Held],
           key_of: Callable[[str, str], str]) -> tuple[int, tuple[int, ConfigError] | None]:
    """Place the records of one range (in file order) in its slots, as ``import_records`` would one by one: each
    after the previous ones, refused if it duplicates an earlier record of the same person (platform and subject
    key; another person in the same range is a hash collision). Returns the number of people and the first
    refusal (the record's number in the file and the error)."""
    placed: list[tuple[str, str, tuple[Any, ...], str]] = []  #: platform, key, duplicate rule, origin
    people, start = 0, len(rows)
    for held in same_range:
        _base, number, _low, _h2, platform, subject, purposes, granted, _expires, revoked = held[:10]
        record_id, origin = held[12], held[14]
        key = key_of(platform, subject)
        same = _dedup_key(platform, key, purposes, granted, revoked, record_id)
        mine = [p for p in placed if p[0] == platform and p[1] == key]
        for earlier in mine:
            if earlier[2] == same:
                what = "record_id" if record_id else "platform, subject, purposes, granted_at and revoked_at"
                first_line = earlier[3].rpartition(":")[2]
                return people, (number, _error_at(_origin(origin), f"duplicate authorization record: same {what} as "
                                                  f"the record on line {first_line} (lines {first_line} and "
                                                  f"{origin.rpartition(':')[2]})"))
        if len(placed) >= SLOTS:
            return people, (number, _error_at(_origin(origin), f"more than {SLOTS} records for one subject of "
                                                               f"platform {platform!r}"))
        rows.append((held[0] + len(placed), *held[1:]))
        placed.append((platform, key, same, origin))
        if not mine:
            people += 1
    counts = Counter((platform, key) for platform, key, _, _ in placed)
    for i, (platform, key, _, _) in enumerate(placed, start):
        rows[i] = (rows[i][0], -counts[platform, key], *rows[i][2:])
    return people, None


class _Origin:
    """Enough of a record for :func:`_error_at`: where it was read."""

    def __init__(self, source: str) -> None:
        self.source = source


def _origin(source: str) -> Any:
    return _Origin(source)
