"""Building a new SQLite authorization store from a stream of validated records, fast: the import of a large
file (``consentcrawl authorizations import`` into a new store) and the cache of a large YAML, CSV or JSONL file.

:func:`~consentcrawl.consent.sqlite_write.import_records` adds records one at a time, each checked against the
store for duplicates and placed in a free slot of its person's range: right for a withdrawal added to a live
store, far too slow for ten million records. Here, instead:

1. every record goes, in file order, into one of two staging tables in a scratch database beside the target (no
   index, no journal, no fsync: a crash leaves only scratch files). A bitmap of the persons' ranges seen so far
   tells, for nearly every record, that it is certainly the first of its person: it is staged with its final
   rowid (slot 0 of the range). The others (another record of a person seen before, or the bitmap's rare false
   alarm) are staged apart;
2. the first records are copied into the store's table in rowid order (SQLite sorts them once and appends pages in
   order);
3. the others are placed one by one, in file order, as ``import_records`` does: refused if they duplicate a record
   of the same person (naming both lines), else put in the next free slot;
4. the Bloom filter and ``meta`` are written in the same transaction, and the finished file replaces the target
   with a rename, so a reader sees the old store or the new one, never a half-built one.

The target is always replaced; a caller that wants to add to an existing store uses ``import_records``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .keys import platform_objects
from .records import AuthorizationRecord
from .sqlite_format import COLUMNS, RECORDS_TABLE, SCHEMA, SLOTS, Bloom, base_id, key_hashes
from .sqlite_write import ImportResult, _dedup_key, _error_at, _record_row, _Rules, _write_state

__all__ = ["build_store"]

BATCH = 20_000  #: records per executemany


def build_store(path: str, records: Iterable[AuthorizationRecord], *, platforms: Any = None,
                expected: Callable[[int], int] | int = 0,
                meta: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
                tick: Callable[[int], None] | None = None) -> ImportResult:
    """Write a new store at ``path`` holding ``records`` (validated, in file order), replacing what was there.

    ``platforms`` gives each platform's subject key rule (as for ``import_records``). ``expected`` is the number
    of people to size the Bloom filter for, or a function of the records read so far that estimates it (called
    once, after the first batch); a filter that turns out too small is rebuilt. ``meta`` adds entries to the
    store's ``meta`` table (the file cache records what it was built from), or is a function giving them once every
    record was read. ``tick(n)`` is called after every
    batch with the records read so far. A duplicate is a ConfigError naming both records' lines; on any error
    the target is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = f"{target}.building-{os.getpid()}-{secrets.token_hex(4)}"
    staging = f"{scratch}.staging"
    try:
        result = _build(scratch, staging, records, platforms, expected, meta, tick)
        for suffix in ("-wal", "-shm", "-journal"):  # never a log of the old store next to the new one
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(scratch, target)
        return result
    finally:
        for leftover in (scratch, staging, f"{scratch}-journal", f"{staging}-journal"):
            with contextlib.suppress(OSError):
                os.unlink(leftover)


def _build(scratch: str, staging: str, records: Iterable[AuthorizationRecord], platforms: Any,
           expected: Callable[[int], int] | int,
           meta: Mapping[str, str] | Callable[[], Mapping[str, str]] | None, tick: Callable[[int], None] | None,
           ) -> ImportResult:
    rules = _Rules(platform_objects(platforms), {})
    conn = sqlite3.connect(scratch, isolation_level=None)
    try:
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-65536", "temp_store=FILE",
                       "locking_mode=EXCLUSIVE"):
            conn.execute(f"PRAGMA {pragma}")
        conn.execute("ATTACH DATABASE ? AS staging", (staging,))
        conn.execute("PRAGMA staging.journal_mode=OFF")
        conn.execute("PRAGMA staging.synchronous=OFF")
        conn.executescript(SCHEMA + ";" + RECORDS_TABLE.format(name="records"))
        conn.execute(f"CREATE TABLE staging.first (id, {_COLUMNS})")
        conn.execute(f"CREATE TABLE staging.later (base, {_COLUMNS})")
        conn.execute("BEGIN")
        count, keys, bloom, seen_platforms = _stage(conn, records, rules, expected, tick)
        conn.execute(f"INSERT INTO main.records (id, {_COLUMNS}) SELECT id, {_COLUMNS} FROM staging.first "
                     f"ORDER BY id")
        keys += _place_later(conn, rules)
        if keys > bloom.capacity():
            bloom = Bloom.sized(keys)
            for platform, subject in conn.execute("SELECT DISTINCT platform, subject FROM main.records"):
                bloom.add(*key_hashes(platform, rules.key(platform, subject)))
        _write_state(conn, bloom, count, keys, seen_platforms, rules.table(seen_platforms))
        extra = meta() if callable(meta) else (meta or {})
        conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", sorted(extra.items()))
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE staging")
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()
    return ImportResult(count, count, keys)


_COLUMNS = COLUMNS.removeprefix("id, ") + ", origin"


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


def _stage(conn: sqlite3.Connection, records: Iterable[AuthorizationRecord], rules: _Rules,
           expected: Callable[[int], int] | int, tick: Callable[[int], None] | None,
           ) -> tuple[int, int, Bloom, set[str]]:
    """Stage every record: the first of its range (certainly: a bitmap of ranges seen says so) with its rowid,
    the others (another record of a person seen before, or the bitmap's false alarm) to be placed one by one.
    Returns the count, the number of people among the first ones, the Bloom filter and the platforms seen."""
    first_insert = f"INSERT INTO staging.first VALUES ({', '.join('?' * 12)})"
    later_insert = f"INSERT INTO staging.later VALUES ({', '.join('?' * 12)})"
    bloom: Bloom | None = Bloom.sized(expected) if isinstance(expected, int) and expected else None
    seen = _Seen(expected) if isinstance(expected, int) and expected else _Seen(1 << 20, track=True)
    platforms: set[str] = set()
    rows = _Rows()
    first: list[tuple[Any, ...]] = []
    later: list[tuple[Any, ...]] = []
    pending: list[tuple[int, int]] = []  #: hashes read before the filter could be sized
    count = keys = 0
    for record in records:
        platform = record.platform
        h1, h2 = key_hashes(platform, rules.key(platform, record.subject))
        base = base_id(h1)
        if seen.add(base):
            first.append((base, *rows.row(record)))
        else:
            later.append((base, *rows.row(record)))
        if bloom is None:
            pending.append((h1, h2))
        else:
            _bloom_add(bloom, h1, h2)
        if platform not in platforms:
            platforms.add(platform)
        if len(first) >= BATCH:
            conn.executemany(first_insert, first)
            count += len(first)
            keys += len(first)
            first.clear()
            if bloom is None:
                size = expected(count + len(later)) if callable(expected) else count
                bloom = Bloom.sized(size)
                seen = seen.resized(size)
                for hashes in pending:
                    bloom.add(*hashes)
                pending.clear()
            if tick is not None:
                tick(count + len(later))
        if len(later) >= BATCH:
            conn.executemany(later_insert, later)
            count += len(later)
            later.clear()
    conn.executemany(first_insert, first)
    conn.executemany(later_insert, later)
    count += len(first) + len(later)
    keys += len(first)
    if bloom is None:
        bloom = Bloom.sized(count)
        for hashes in pending:
            bloom.add(*hashes)
    if tick is not None:
        tick(count)
    return count, keys, bloom, platforms


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


class _Seen:
    """The ranges (``base``) seen so far, as a bitmap of about 32 bits per expected person: a range never seen
    is told for certain (the common case: it becomes the person's slot 0), one seen maybe (about 3% false alarms,
    placed like another record of the same person)."""

    def __init__(self, expected: int, *, track: bool = False) -> None:
        self.bits = bytearray(max(1 << 17, 1 << (max(expected, 1) * 32 - 1).bit_length()) // 8)
        self.mask = len(self.bits) * 8 - 1
        self.order: list[int] | None = [] if track else None  #: while it may still be resized: every base added

    def add(self, base: int) -> bool:
        """Mark ``base``; True when it was certainly not seen before."""
        position = (base >> 12) & self.mask
        byte, bit = position >> 3, 1 << (position & 7)
        if self.bits[byte] & bit:
            return False
        self.bits[byte] |= bit
        if self.order is not None:
            self.order.append(base)
        return True

    def resized(self, expected: int) -> _Seen:
        """A bitmap for ``expected`` people holding what this one holds (called once, after the first batch)."""
        bigger = _Seen(expected)
        for base in self.order or ():
            bigger.add(base)
        return bigger


def _place_later(conn: sqlite3.Connection, rules: _Rules) -> int:
    """Place the records that were not certainly the first of their range, in file order: each into the next
    free slot of its range, after refusing it if it duplicates a record of the same person. Returns the number
    of people among them not seen before."""
    new_keys = 0
    for row in conn.cursor().execute(f"SELECT base, {_COLUMNS} FROM staging.later ORDER BY rowid"):
        base, platform, subject, purposes, granted, _expires, revoked, _evidence, _fields, record_id = row[:10]
        key = rules.key(platform, subject)
        existing = conn.execute("SELECT id, platform, subject, purposes, granted_at, revoked_at, record_id, origin "
                                "FROM main.records WHERE id >= ? AND id < ?", (base, base + SLOTS)).fetchall()
        mine = [r for r in existing if r[1] == platform and rules.key(r[1], r[2]) == key]
        same = _dedup_key(platform, key, purposes, granted, revoked, record_id)
        for r in mine:
            if _dedup_key(r[1], key, r[3], r[4], r[5], r[6]) == same:
                what = "record_id" if record_id else "platform, subject, purposes, granted_at and revoked_at"
                first_line = r[7].rpartition(":")[2]
                raise _error_at(_origin(row[-1]), f"duplicate authorization record: same {what} as the record on "
                                                  f"line {first_line} (lines {first_line} and "
                                                  f"{row[-1].rpartition(':')[2]})")
        used = {r[0] for r in existing}
        slot = next((base + i for i in range(SLOTS) if base + i not in used), None)
        if slot is None:
            raise _error_at(_origin(row[-1]), f"more than {SLOTS} records for one subject of platform {platform!r}")
        conn.execute(f"INSERT INTO main.records (id, {_COLUMNS}) VALUES ({', '.join('?' * 12)})", (slot, *row[1:]))
        if not mine:
            new_keys += 1
    return new_keys


class _Origin:
    """Enough of a record for :func:`_error_at`: where it was read."""

    def __init__(self, source: str) -> None:
        self.source = source


def _origin(source: str) -> Any:
    return _Origin(source)
