"""Writing an SQLite authorization store: :func:`import_records` (validated records, refusing duplicates) and
:func:`bulk_build` (millions of trusted, generated rows, for benchmarks). The format is described in
:mod:`consentcrawl.consent.sqlite_format`; :mod:`consentcrawl.consent.sqlite` reads it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..purposes import KNOWN_PURPOSES
from .keys import CASEFOLD, KeyFunction, key_function, platform_names, platform_objects, rule_of
from .records import AuthorizationRecord
from .sqlite_format import (
    COLUMNS,
    COUNTED,
    FORMAT,
    INSERT,
    READABLE,
    RECORDS_TABLE,
    SCHEMA,
    SLOT_BITS,
    SLOTS,
    VERSION,
    Bloom,
    Row,
    SQLiteURL,
    base_id,
    key_hashes,
    parse_sqlite_url,
    read_bloom,
)

__all__ = ["ImportResult", "bulk_build", "count_people", "import_records", "refuse_foreign"]

@dataclass(frozen=True)
class ImportResult:
    imported: int
    records: int  #: records in the store afterwards
    keys: int  #: people (platform, subject key) in the store afterwards


def _connect_writer(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    try:
        refuse_foreign(conn, path)  # our tables (and WAL) are not put in another program's database
    except BaseException:
        conn.close()
        raise
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA cache_size=-262144")
    conn.executescript(SCHEMA + ";" + RECORDS_TABLE.format(name="records"))
    return conn


_OUR_TABLES = frozenset({"meta", "bloom", "records", "records_rekeyed"})  #: the last: an import cut short


def refuse_foreign(conn: sqlite3.Connection, path: str) -> None:
    """A ConfigError if the database open on ``conn`` is another program's. Ours holds only our tables, and its
    ``meta`` names our format; without that entry (tables an import created before it failed) its records table is
    empty. Neither adding to another's database nor building a store and renaming it over it is ours to do."""
    tables = sorted(name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                    if not name.startswith("sqlite_"))  # SQLite's own (sqlite_sequence, sqlite_stat1)
    if not tables:
        return
    others = [name for name in tables if name not in _OUR_TABLES]
    why = f"it holds other tables ({', '.join(others[:5])}{', ...' if len(others) > 5 else ''})" if others else ""
    if not why:
        try:
            marker = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            filled = "records" in tables and conn.execute("SELECT 1 FROM records LIMIT 1").fetchone() is not None
        except sqlite3.Error as exc:
            marker, filled, why = None, False, f"its tables are not ours ({type(exc).__name__}: {exc})"
        if marker is not None and marker[0] != FORMAT:
            why = f"its meta table names format {marker[0]!r}, not {FORMAT!r}"
        elif marker is None and (filled or "meta" not in tables) and not why:
            why = f"it holds tables ({', '.join(tables)}) but no meta entry naming the format {FORMAT!r}"
    if why:
        raise ConfigError(f"not a consentcrawl authorization store: {why}; nothing was imported (import into a new "
                          f"file)", f"sqlite:///{path}")


def _record_row(record: AuthorizationRecord) -> Row:
    return (
        record.platform, record.subject, " ".join(sorted(record.purposes)), record.granted_at.isoformat(),
        record.expires_at.isoformat() if record.expires_at else None,
        record.revoked_at.isoformat() if record.revoked_at else None, record.evidence,
        json.dumps(sorted(record.fields), ensure_ascii=False) if record.fields is not None else None,
        record.record_id, record.jurisdiction, record.source,
    )


def _dedup_key(platform: str, key: str, purposes: str, granted: str, revoked: str | None,
               record_id: str) -> tuple[Any, ...]:
    """The same duplicate rule as the file loaders: record_id if given, else the grant itself (of one person,
    by subject key)."""
    if record_id:
        return (platform, key, "id", record_id)
    return (platform, key, "grant", purposes, datetime.fromisoformat(granted),
            datetime.fromisoformat(revoked) if revoked else None)


def _error_at(record: AuthorizationRecord, message: str) -> ConfigError:
    source, _, line = record.source.rpartition(":")
    if source and line.isdigit():
        return ConfigError(message, source, int(line))
    return ConfigError(message, record.source or None)


class _Rules:
    """Each platform's subject key rule and function while writing: the configured platform's when given, else
    the one the store recorded, else the default."""

    def __init__(self, objects: dict[str, Any], recorded: dict[str, str]) -> None:
        self.objects = objects
        self.recorded = recorded
        self.rules: dict[str, str] = {}
        self.functions: dict[str, KeyFunction] = {}

    def rule(self, platform: str) -> str:
        rule = self.rules.get(platform)
        if rule is None:
            known = self.objects.get(platform)
            rule = self.rules[platform] = rule_of(known) if known is not None else \
                self.recorded.get(platform, CASEFOLD)
        return rule

    def key(self, platform: str, subject: str) -> str:
        function = self.functions.get(platform)
        if function is None:
            function = self.functions[platform] = key_function(self.objects.get(platform), self.rule(platform))
        return function(subject)

    def table(self, platforms: Iterable[str]) -> dict[str, str]:
        return {name: self.rule(name) for name in sorted(platforms)}


def import_records(url: str | SQLiteURL, records: Iterable[AuthorizationRecord], *,
                   platforms: Any = (), meta: Mapping[str, str] | None = None) -> ImportResult:
    """Add validated records to the store (created if missing), all or nothing, in one transaction.

    A record that duplicates one already in the store (same rule as within one file) is a ConfigError naming the
    record's file and line and the stored row. ``platforms`` are the configured platforms (a ``PlatformRegistry``,
    its mapping of name to platform, or names), recorded so that opening the store can refuse one whose platforms
    are not configured any more; the platforms' objects also give each one's subject key rule. A store of format
    version 1, or one whose platforms' key rules changed, is indexed again (every record moved to its key's range)
    in the same transaction. ``meta`` adds entries to the store's ``meta`` table in the same transaction (the
    file cache records what it now holds).
    """
    target = url if isinstance(url, SQLiteURL) else parse_sqlite_url(url)
    extra = sorted((meta or {}).items())
    conn = _connect_writer(target.path)
    with _write_transaction(conn, "BEGIN IMMEDIATE"):
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if meta and meta.get("format") != FORMAT:
            raise ConfigError(f"{target.source} is not a consentcrawl authorization store", target.source)
        if meta and meta.get("version") not in READABLE:
            raise ConfigError(f"{target.source} has format version {meta.get('version')!r}; this consentcrawl "
                              f"writes version {VERSION}", target.source)
        count, keys = int(meta.get("records", 0)), int(meta.get("keys", 0))
        stored = set(json.loads(meta.get("platforms", "[]")))
        known_platforms = stored | set(platform_names(platforms) or ())
        recorded: dict[str, str] = json.loads(meta.get("subject_keys", "{}")) if meta.get("version") not in (
            None, "1") else {}
        rules = _Rules(platform_objects(platforms), recorded)
        bloom = read_bloom(conn)
        stale = [name for name in sorted(stored) if meta.get("version") == "1"
                 or recorded.get(name, CASEFOLD) != rules.rule(name)]
        if meta.get("version") not in COUNTED:
            _add_person_rows(conn)  # a store (or the empty tables of an import that failed) of an older version
        if count and stale and any(conn.execute("SELECT 1 FROM records WHERE platform = ? LIMIT 1", (name,)).fetchone()
                                   for name in stale):
            keys, bloom = _rekey(conn, rules, target.source)
            count_people(conn, rules.key)
        elif count and meta.get("version") not in COUNTED:
            count_people(conn, rules.key)
        new_keys: list[tuple[int, int]] = []
        imported = 0
        for record in records:
            row = _record_row(record)
            key = rules.key(record.platform, record.subject)
            hashes = key_hashes(record.platform, key)
            first = base_id(hashes[0])
            existing = conn.execute(
                "SELECT id, platform, subject, purposes, granted_at, revoked_at, record_id FROM records "
                "WHERE id >= ? AND id < ?", (first, first + SLOTS)).fetchall()
            mine = [r for r in existing if r[1] == record.platform and rules.key(r[1], r[2]) == key]
            same = _dedup_key(record.platform, key, row[2], row[3], row[5], row[8])
            for r in mine:
                if _dedup_key(r[1], key, r[3], r[4], r[5], r[6]) == same:
                    raise _error_at(record, f"duplicate authorization record: the store already holds it as "
                                            f"{target.source}#{r[0]}")
            used = {r[0] for r in existing}
            slot = next((first + i for i in range(SLOTS) if first + i not in used), None)
            if slot is None:
                raise _error_at(record, f"more than {SLOTS} records for subject {record.subject!r} "
                                        f"of platform {record.platform!r}")
            conn.execute(INSERT, (slot, *row, len(mine) + 1))
            conn.executemany("UPDATE records SET person_rows = ? WHERE id = ?", [(len(mine) + 1, r[0]) for r in mine])
            if not mine:
                keys += 1
                new_keys.append(hashes)
            known_platforms.add(record.platform)
            imported += 1
        count += imported
        if bloom is None or keys > bloom.capacity():
            bloom = _bloom_of_store(conn, rules, max(keys * 2, 1))  # room to grow: rebuilt only when it fills up
        else:
            bloom = Bloom(bytearray(bloom.bits), bloom.probes)
            for hashes in new_keys:
                bloom.add(*hashes)
        _write_state(conn, bloom, count, keys, known_platforms, rules.table(known_platforms))
        conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", extra)
    return ImportResult(imported, count, keys)


def _add_person_rows(conn: sqlite3.Connection) -> None:
    """Give a store written before format 3 its ``person_rows`` column (filled by :func:`count_people`)."""
    if not any(column[1] == "person_rows" for column in conn.execute("PRAGMA table_info(records)")):
        conn.execute("ALTER TABLE records ADD COLUMN person_rows INTEGER")


def count_people(conn: sqlite3.Connection, key_of: Callable[[str, str], str], *, ones: bool = False) -> None:
    """Write every row's ``person_rows`` (a store upgraded to format 3, or indexed again): 1, except in the
    ranges holding several rows, counted person by person (another person in a range is a hash collision).
    ``ones``: every row already holds 1 (written so)."""
    if not ones:
        conn.execute("UPDATE records SET person_rows = 1")
    shared = conn.execute(f"SELECT id >> {SLOT_BITS} FROM records GROUP BY 1 HAVING count(*) > 1").fetchall()
    for (number,) in shared:
        first = number << SLOT_BITS
        rows = conn.execute("SELECT id, platform, subject FROM records WHERE id >= ? AND id < ?",
                            (first, first + SLOTS)).fetchall()
        people = Counter((platform, key_of(platform, subject)) for _, platform, subject in rows)
        conn.executemany("UPDATE records SET person_rows = ? WHERE id = ?",
                         [(people[platform, key_of(platform, subject)], rid) for rid, platform, subject in rows])


def _bloom_of_store(conn: sqlite3.Connection, rules: _Rules, size: int) -> Bloom:
    """A Bloom filter of every key in the store, sized for ``size`` keys."""
    bloom = Bloom.sized(size)
    for platform, subject in conn.execute("SELECT DISTINCT platform, subject FROM records"):
        bloom.add(*key_hashes(platform, rules.key(platform, subject)))
    return bloom


def _rekey(conn: sqlite3.Connection, rules: _Rules, source: str) -> tuple[int, Bloom]:
    """Move every record to the range of its subject key under ``rules`` (a format-1 store, or a platform whose
    key rule changed); the records of one key keep their order. Returns the number of keys and a new Bloom filter.
    """
    def base(platform: str, subject: str) -> int:
        return base_id(key_hashes(platform, rules.key(platform, subject))[0])

    conn.create_function("consentcrawl_base", 2, base, deterministic=True)
    placed = "SELECT consentcrawl_base(platform, subject) AS base, * FROM records"
    full = conn.execute(f"SELECT base FROM ({placed}) GROUP BY base HAVING count(*) > ? LIMIT 1", (SLOTS,)).fetchone()
    if full is not None:
        raise ConfigError(f"cannot index {source} by subject key: more than {SLOTS} records of one person", source)
    conn.execute("DROP TABLE IF EXISTS records_rekeyed")
    conn.execute(RECORDS_TABLE.format(name="records_rekeyed"))
    columns = COLUMNS.removeprefix("id, ") + ", origin"
    conn.execute(f"INSERT INTO records_rekeyed (id, {columns}) SELECT base + ROW_NUMBER() OVER "
                 f"(PARTITION BY base ORDER BY id) - 1, {columns} FROM ({placed}) ORDER BY 1")
    conn.execute("DROP TABLE records")
    conn.execute("ALTER TABLE records_rekeyed RENAME TO records")
    people = {(platform, rules.key(platform, subject))
              for platform, subject in conn.execute("SELECT DISTINCT platform, subject FROM records")}
    bloom = Bloom.sized(max(len(people) * 2, 1))
    for platform, key in people:
        bloom.add(*key_hashes(platform, key))
    return len(people), bloom


@contextlib.contextmanager
def _write_transaction(conn: sqlite3.Connection, begin: str) -> Iterator[None]:
    """One write transaction: committed if the block succeeds, rolled back if not; the connection is closed."""
    try:
        conn.execute(begin)
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        _checkpoint_and_close(conn)


def _write_state(conn: sqlite3.Connection, bloom: Bloom, records: int, keys: int, platforms: Iterable[str],
                 subject_keys: dict[str, str]) -> None:
    conn.execute("INSERT OR REPLACE INTO bloom (id, probes, keys, bits) VALUES (1, ?, ?, ?)",
                 (bloom.probes, keys, bytes(bloom.bits)))
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [
        ("format", FORMAT), ("version", VERSION), ("records", str(records)), ("keys", str(keys)),
        ("platforms", json.dumps(sorted(platforms))), ("subject_keys", json.dumps(subject_keys, sort_keys=True)),
    ])


def _checkpoint_and_close(conn: sqlite3.Connection) -> None:
    """Copy the WAL into the database as far as readers allow, without waiting for them (a crawl's store keeps
    a snapshot open for up to ``refresh`` seconds); what is left is checkpointed by a later write."""
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        pass
    conn.close()


def bulk_build(path: str, count: int, row_at: Callable[[int], Row], *, platforms: Any = None) -> ImportResult:
    """Write a new store of ``count`` generated rows quickly (benchmarks, load tests); replaces ``path``.

    ``row_at(i)`` returns row ``i`` as stored (see :data:`Row`); rows of the same person may be anywhere. The
    rows are trusted: only purposes, times and record order are checked, not the platforms file, and duplicates
    are not looked for. People are placed by subject key: ``platforms`` (as for :func:`import_records`) gives each
    platform's key rule, the default otherwise. Two passes: hash every key and sort (so SQLite appends pages in
    order), then insert.
    """
    target = Path(path)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    rules = _Rules(platform_objects(platforms), {})

    def base_of(row: Row) -> int:
        return base_id(key_hashes(row[0], rules.key(row[0], row[1]))[0])

    order = sorted((base_of(row_at(i)) << 32) | i for i in range(count))
    bloom = Bloom.sized(count)
    conn = _connect_writer(str(target))
    conn.execute("PRAGMA synchronous=OFF")
    platforms_seen: set[str] = set()
    keys = 0
    state: dict[str, Any] = {"base": -1, "slot": 0, "keys": set(), "shared": False}
    purposes_ok: dict[str, bool] = {}

    def rows() -> Iterable[tuple[Any, ...]]:
        nonlocal keys
        for packed in order:
            i, base = packed & 0xFFFFFFFF, packed >> 32
            row = row_at(i)
            if base != state["base"]:
                state["base"], state["slot"], state["keys"] = base, 0, set()
            else:
                state["slot"] += 1
                if state["slot"] >= SLOTS:
                    raise ValueError(f"row {i}: more than {SLOTS} records for one key")
            key = (row[0], rules.key(row[0], row[1]))
            if key not in state["keys"]:  # rows of one key are adjacent, unless two keys share a hash
                state["keys"].add(key)
                keys += 1
                bloom.add(*key_hashes(*key))
            ok = purposes_ok.get(row[2])
            if ok is None:
                ok = purposes_ok[row[2]] = bool(row[2].split()) and set(row[2].split()) <= KNOWN_PURPOSES
            granted = datetime.fromisoformat(row[3])
            if not ok or granted.tzinfo is None or (row[4] and datetime.fromisoformat(row[4]) <= granted):
                raise ValueError(f"row {i} is not a valid authorization record: {row!r}")
            platforms_seen.add(row[0])
            state["shared"] = state["shared"] or state["slot"] > 0
            yield (base + state["slot"], *row, 1)

    with _write_transaction(conn, "BEGIN"):
        conn.executemany(INSERT, rows())
        if state["shared"]:
            count_people(conn, rules.key, ones=True)
        _write_state(conn, bloom, count, keys, platforms_seen, rules.table(platforms_seen))
    return ImportResult(count, count, keys)
