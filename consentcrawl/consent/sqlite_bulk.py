"""Building a new SQLite authorization store from a stream of validated records, fast: the import of a large
file (``consentcrawl authorizations import`` into a new store) and the cache of a large YAML, CSV or JSONL file.

:func:`~consentcrawl.consent.sqlite_write.import_records` adds records one at a time, each checked against the
store for duplicates and placed in a free slot of its person's range: right for a withdrawal added to a live
store, far too slow for ten million records. Here, instead:

1. every record is appended, in file order, to a staging table in a scratch database beside the target (no
   index, no journal, no fsync: a crash leaves only scratch files), with its person's range (``base``) and a hash
   of what makes two records the same (the file loaders' duplicate rule);
2. one index on (``base``, ``dup``) is built after the load; it finds duplicates (each one checked exactly, then
   reported with both lines) and people with more records than a range holds;
3. the records are copied into the store's table in rowid order (each person's records numbered in file order:
   SQLite appends pages in order), with the Bloom filter and ``meta`` written in the same transaction;
4. the finished file replaces the target with a rename, so a reader sees the old store or the new one, never a
   half-built one.

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

from ..errors import ConfigError
from .keys import platform_objects
from .records import AuthorizationRecord
from .sqlite_format import COLUMNS, RECORDS_TABLE, SCHEMA, SLOTS, Bloom, base_id, key_hashes
from .sqlite_write import ImportResult, _error_at, _record_row, _Rules, _write_state

__all__ = ["build_store"]

BATCH = 20_000  #: records per executemany
_STAGE_COLUMNS = ("base, dup, platform, subject, purposes, granted_at, expires_at, revoked_at, evidence, fields, "
                  "record_id, jurisdiction, origin")


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
           meta: Mapping[str, str] | Callable[[], Mapping[str, str]] | None, tick: Callable[[int], None] | None) -> ImportResult:
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
        conn.execute(f"CREATE TABLE staging.s ({_STAGE_COLUMNS})")
        conn.execute("BEGIN")
        count, bloom, seen_platforms = _stage(conn, records, rules, expected, tick)
        _check_staged(conn, count)
        conn.execute("CREATE INDEX staging.s_person ON s (base, dup)")
        _refuse_duplicates(conn)
        full = conn.execute(f"SELECT base FROM staging.s GROUP BY base HAVING count(*) > {SLOTS} LIMIT 1").fetchone()
        if full is not None:
            row = conn.execute("SELECT subject, platform, origin FROM staging.s WHERE base = ? "
                               "ORDER BY rowid LIMIT 1 OFFSET ?", (full[0], SLOTS)).fetchone()
            raise _error_at(_origin(row[2]), f"more than {SLOTS} records for one subject of platform {row[1]!r}")
        columns = COLUMNS.removeprefix("id, ") + ", origin"
        conn.execute(f"INSERT INTO main.records (id, {columns}) SELECT base + ROW_NUMBER() OVER "
                     f"(PARTITION BY base ORDER BY rowid) - 1, {columns} FROM staging.s ORDER BY base, rowid")
        keys = conn.execute("SELECT count(DISTINCT base) FROM staging.s").fetchone()[0]
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


def _stage(conn: sqlite3.Connection, records: Iterable[AuthorizationRecord], rules: _Rules,
           expected: Callable[[int], int] | int, tick: Callable[[int], None] | None) -> tuple[int, Bloom, set[str]]:
    """Append every record to the staging table; returns the count, the Bloom filter and the platforms seen."""
    insert = f"INSERT INTO staging.s VALUES ({', '.join('?' * 13)})"
    bloom: Bloom | None = Bloom.sized(expected) if isinstance(expected, int) and expected else None
    platforms: set[str] = set()
    batch: list[tuple[Any, ...]] = []
    pending: list[tuple[int, int]] = []  #: hashes read before the filter could be sized
    count = 0
    for record in records:
        platform = record.platform
        key = rules.key(platform, record.subject)
        h1, h2 = key_hashes(platform, key)
        row = _record_row(record)
        same = (platform, key, "id", row[8]) if row[8] else (platform, key, "grant", row[2], row[3], row[5])
        batch.append((base_id(h1), hash(same), *row))
        if bloom is None:
            pending.append((h1, h2))
        else:
            bloom.add(h1, h2)
        if platform not in platforms:
            platforms.add(platform)
        if len(batch) >= BATCH:
            conn.executemany(insert, batch)
            count += len(batch)
            batch.clear()
            if bloom is None:
                bloom = Bloom.sized(expected(count) if callable(expected) else count)
                for hashes in pending:
                    bloom.add(*hashes)
                pending.clear()
            if tick is not None:
                tick(count)
    if batch:
        conn.executemany(insert, batch)
        count += len(batch)
    if bloom is None:
        bloom = Bloom.sized(count)
        for hashes in pending:
            bloom.add(*hashes)
    if tick is not None:
        tick(count)
    return count, bloom, platforms


def _check_staged(conn: sqlite3.Connection, count: int) -> None:
    staged = conn.execute("SELECT count(*) FROM staging.s").fetchone()[0]
    if staged != count:  # pragma: no cover - a lost write would be SQLite's bug, but never a silent loss
        raise ConfigError(f"the import staged {staged} of {count} records")


def _refuse_duplicates(conn: sqlite3.Connection) -> None:
    """The first pair of records the file loaders would call duplicates (their hashes are equal and their
    fields are), as a ConfigError naming both lines."""
    groups = conn.execute("SELECT base, dup FROM staging.s GROUP BY base, dup HAVING count(*) > 1").fetchall()
    found: list[tuple[int, str, str, str]] = []
    for base, dup in groups:
        rows = conn.execute("SELECT rowid, platform, record_id, purposes, granted_at, revoked_at, origin FROM "
                            "staging.s WHERE base = ? AND dup = ? ORDER BY rowid", (base, dup)).fetchall()
        for i, b in enumerate(rows):
            a = next((a for a in rows[:i] if a[1] == b[1] and (a[2] == b[2] if a[2] or b[2] else a[3:6] == b[3:6])),
                     None)
            if a is not None:
                what = "record_id" if a[2] else "platform, subject, purposes, granted_at and revoked_at"
                found.append((b[0], b[6], a[6].rpartition(":")[2], what))
                break
    if found:
        _, origin, first_line, what = min(found)
        line = origin.rpartition(":")[2]
        raise _error_at(_origin(origin), f"duplicate authorization record: same {what} as the record on line "
                                         f"{first_line} (lines {first_line} and {line})")


class _Origin:
    """Enough of a record for :func:`_error_at`: where it was read."""

    def __init__(self, source: str) -> None:
        self.source = source


def _origin(source: str) -> Any:
    return _Origin(source)
