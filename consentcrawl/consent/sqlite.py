"""Authorization records in SQLite: ``CONSENTCRAWL_AUTHORIZATIONS = "sqlite:///authorizations.db"``.

A YAML, CSV or JSONL file is read whole into memory, which stops scaling somewhere around a million people. This
store keeps the records on disk and answers :meth:`SQLiteStore.lookup` at close to in-memory speed. Why it is
built the way it is (measured on the 2-core development box, CPython 3.11, SQLite 3.40, 10,000,000 records; see
``benchmarks/RESULTS.md``):

- An indexed point lookup through Python's ``sqlite3`` costs 8-17 µs at the median and 25-50 µs at p99 on a
  1 GB file; every decision cannot pay that. So lookups go through an in-process LRU of the keys already answered
  (a crawl decides the same person many times: every link to a profile, the fetch, the item) and a Bloom filter
  of every (platform, subject) key in the store, which answers "no record" for people who never authorized us in
  about 1 µs, without touching SQLite (about 1% false positives, which then ask SQLite).
- The table is a rowid table whose rowid is derived from the key: 51 bits of BLAKE2b of (platform, subject),
  shifted left by 12, plus the record's number within its key. A lookup is one seek on the integer key (the fastest
  access SQLite has) and a short range scan; the rare hash collision is resolved by comparing platform and subject.
  A record's ``source`` is ``sqlite:///PATH#ROWID``, which finds its row.
- One read transaction is kept open (starting one per query costs file-lock system calls) and renewed at most
  every ``refresh`` seconds (default 1) on the next lookup; when another connection has committed in the meantime
  (``PRAGMA data_version``), the cache is dropped and the Bloom filter reloaded. A withdrawal imported while a
  crawl runs therefore applies within about a second. The file is in WAL mode, so readers never block an import.
- ``mmap`` is off: mapped pages count towards the crawler's RSS, and a crawl touching a 1 GB store would map most
  of it. SQLite's own page cache is kept small (16 MB); the operating system caches the file.

Failures: a store that cannot be opened (missing file, not a consentcrawl store, a platform not configured) is a
:class:`~consentcrawl.errors.ConfigError`, so the crawl does not start. A store that fails later (the file was
removed, a page is corrupt, any ``sqlite3`` error) raises :class:`~consentcrawl.errors.StoreUnavailable` from
``lookup``, which the policy core turns into a deny with ``error.store-unavailable``.

Writing: :func:`import_records` adds validated records (``consentcrawl authorizations import SRC sqlite:///DEST``
feeds it from the YAML/CSV/JSONL loaders, so the same rules apply), refusing a record that duplicates one already
in the store. :func:`bulk_build` writes millions of trusted, generated rows quickly (benchmarks).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import ConfigError, StoreUnavailable
from ..purposes import KNOWN_PURPOSES
from .records import AuthorizationRecord

__all__ = ["SQLiteStore", "bulk_build", "import_records", "parse_sqlite_url"]

FORMAT = "consentcrawl-authorizations"
VERSION = "1"
SCHEME = "sqlite:///"
SLOT_BITS = 12  #: records per (platform, subject): up to 4096 (grants and withdrawals of one person)
SLOTS = 1 << SLOT_BITS
BLOOM_BITS_PER_KEY = 10  #: about 1% false positives with 7 probes
BLOOM_PROBES = 7
DEFAULT_CACHE = 65_536  #: keys kept in the LRU (about 1 KB each for a person with one record)
DEFAULT_REFRESH = 1.0  #: seconds between checks for another connection's commits
PAGE_CACHE_KIB = 16_384

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,      -- hash of (platform, subject) << 12 | number of the record within that key
    platform TEXT NOT NULL,
    subject TEXT NOT NULL,
    purposes TEXT NOT NULL,      -- space-separated, sorted
    granted_at TEXT NOT NULL,    -- ISO-8601, UTC
    expires_at TEXT,
    revoked_at TEXT,
    evidence TEXT NOT NULL,
    fields TEXT,                 -- JSON list; NULL: no restriction
    record_id TEXT NOT NULL DEFAULT '',
    jurisdiction TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL DEFAULT ''  -- where it was imported from (file:line)
);
CREATE TABLE IF NOT EXISTS bloom (id INTEGER PRIMARY KEY CHECK (id = 1), probes INTEGER NOT NULL,
                                  keys INTEGER NOT NULL, bits BLOB NOT NULL);
"""
_COLUMNS = ("id, platform, subject, purposes, granted_at, expires_at, revoked_at, evidence, fields, record_id, "
            "jurisdiction")
_SELECT = f"SELECT {_COLUMNS} FROM records WHERE id >= ? AND id < ?"
_INSERT = ("INSERT INTO records (id, platform, subject, purposes, granted_at, expires_at, revoked_at, evidence, "
           "fields, record_id, jurisdiction, origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")

#: one row as written: platform, subject, purposes, granted_at, expires_at, revoked_at, evidence, fields (JSON or
#: None), record_id, jurisdiction, origin
Row = tuple[str, str, str, str, "str | None", "str | None", str, "str | None", str, str, str]


# -- keys and the Bloom filter ----------------------------------------------------------------------------------


def key_hashes(platform: str, subject: str) -> tuple[int, int]:
    """Two independent 64-bit hashes of a key: the first places it in the table, both feed the Bloom filter."""
    digest = hashlib.blake2b(f"{platform}\0{subject}".encode("utf-8", "surrogatepass"), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")


def base_id(h1: int) -> int:
    """First rowid of a key's range: 51 hash bits, then 12 bits for the records of that key (always >= 0)."""
    return (h1 >> (64 - 51)) << SLOT_BITS


class Bloom:
    """A Bloom filter over key hashes, stored as a blob in the store (so opening never scans the records)."""

    __slots__ = ("bits", "mask", "probes")

    def __init__(self, bits: bytes | bytearray, probes: int = BLOOM_PROBES) -> None:
        size = len(bits) * 8
        if size < 8 or size & (size - 1):
            raise ValueError("Bloom filter size must be a power of two")
        self.bits = bits
        self.mask = size - 1
        self.probes = probes

    @classmethod
    def sized(cls, keys: int) -> Bloom:
        size = 1 << max(16, (max(keys, 1) * BLOOM_BITS_PER_KEY - 1).bit_length())
        return cls(bytearray(size // 8))

    def add(self, h1: int, h2: int) -> None:
        bits, mask = self.bits, self.mask
        for i in range(self.probes):
            position = (h1 + i * h2) & mask
            bits[position >> 3] |= 1 << (position & 7)  # type: ignore[index]

    def __contains__(self, hashes: tuple[int, int]) -> bool:
        h1, h2 = hashes
        bits, mask = self.bits, self.mask
        for i in range(self.probes):
            position = (h1 + i * h2) & mask
            if not bits[position >> 3] >> (position & 7) & 1:
                return False
        return True

    def capacity(self) -> int:
        return (self.mask + 1) // BLOOM_BITS_PER_KEY


# -- the URL ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SQLiteURL:
    """``sqlite:///PATH[?cache=N&refresh=SECONDS]``; PATH is relative to the working directory unless it starts
    with ``/`` (so an absolute path has four slashes: ``sqlite:////var/lib/consent.db``, as in SQLAlchemy)."""

    path: str
    cache: int = DEFAULT_CACHE
    refresh: float = DEFAULT_REFRESH

    @property
    def source(self) -> str:
        return SCHEME + self.path


def parse_sqlite_url(url: str) -> SQLiteURL:
    """Parse an ``sqlite:///`` URL; raises ConfigError (naming the setting) for anything else."""
    where = "CONSENTCRAWL_AUTHORIZATIONS"
    if not url.lower().startswith(SCHEME):
        raise ConfigError(f"{url!r} is not an sqlite:///PATH URL", source=where)
    path, _, query = url[len(SCHEME):].partition("?")
    if not path:
        raise ConfigError(f"{url!r} names no file (use sqlite:///authorizations.db)", source=where)
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        try:
            if name == "cache":
                options[name] = int(value)
                if options[name] < 0:
                    raise ValueError
            elif name == "refresh":
                options[name] = float(value)
                if not options[name] >= 0:
                    raise ValueError
            else:
                raise ConfigError(f"unknown option {name!r} in {url!r} (known: cache, refresh)", source=where)
        except ValueError:
            raise ConfigError(f"option {name}={value!r} in {url!r} must be a non-negative number",
                              source=where) from None
    return SQLiteURL(path, **options)


# -- reading --------------------------------------------------------------------------------------------------------


class SQLiteStore:
    """The :class:`~consentcrawl.consent.store.AuthorizationStore` for ``sqlite:///`` URLs (see the module doc)."""

    def __init__(self, url: str | SQLiteURL, platforms: Iterable[str] | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url if isinstance(url, SQLiteURL) else parse_sqlite_url(url)
        self.path = self.url.path
        self.source = self.url.source
        self._configured = None if platforms is None else frozenset(platforms)
        self._clock = clock
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._broken: str | None = None
        self._purpose_sets: dict[str, frozenset[str]] = {}
        self._field_sets: dict[str, frozenset[str]] = {}
        self.records = 0
        self.keys = 0
        self.queries = 0  #: SQLite queries made by lookups
        self.bloom_rejects = 0  #: lookups the Bloom filter answered (no record) without SQLite
        self.bloom: Bloom | None = None
        self._cached = functools.lru_cache(maxsize=self.url.cache)(self._fetch)
        try:
            self._open()
        except StoreUnavailable as exc:
            raise ConfigError(f"authorization store {exc}", source=self.source) from None
        self._next_refresh = self._clock() + self.url.refresh

    # -- the protocol -------------------------------------------------------------------------------------------

    def lookup(self, platform: str, subject: str) -> Sequence[AuthorizationRecord]:
        """All records of one person on one platform; raises StoreUnavailable when the store cannot answer."""
        if self._clock() >= self._next_refresh:
            self._refresh()
        if self._broken is not None:
            raise StoreUnavailable(self._broken)
        return self._cached(platform, subject)

    def __len__(self) -> int:
        return self.records

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def cache_info(self) -> Any:
        """The LRU's hits, misses and size (``functools.lru_cache`` statistics)."""
        return self._cached.cache_info()

    # -- internals ----------------------------------------------------------------------------------------------

    def _fetch(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        hashes = key_hashes(platform, subject)
        bloom = self.bloom
        if bloom is not None and hashes not in bloom:
            self.bloom_rejects += 1
            return ()
        first = base_id(hashes[0])
        with self._lock:
            if self._conn is None:
                raise StoreUnavailable(self._broken or f"authorization store {self.source} is closed")
            self.queries += 1
            try:
                rows = self._conn.execute(_SELECT, (first, first + SLOTS)).fetchall()
            except sqlite3.Error as exc:
                self._fail(f"failed: {type(exc).__name__}: {exc}")
                self._next_refresh = self._clock() + self.url.refresh  # until the file changes (see _refresh)
                raise StoreUnavailable(self._broken) from exc
        return tuple(self._record(row) for row in rows if row[2] == subject and row[1] == platform)

    def _record(self, row: tuple[Any, ...]) -> AuthorizationRecord:
        rid, platform, subject, purposes, granted, expires, revoked, evidence, fields, record_id, jurisdiction = row
        purpose_set = self._purpose_sets.get(purposes)
        if purpose_set is None:
            purpose_set = self._purpose_sets[purposes] = frozenset(purposes.split())
        field_set = None
        if fields is not None:
            field_set = self._field_sets.get(fields)
            if field_set is None:
                field_set = self._field_sets[fields] = frozenset(json.loads(fields))
        parse = datetime.fromisoformat
        return AuthorizationRecord(
            platform, subject, purpose_set, parse(granted), parse(expires) if expires else None,
            parse(revoked) if revoked else None, evidence, field_set, record_id, f"{self.source}#{rid}", jurisdiction,
        )

    def _open(self) -> None:
        """Connect, check the format and platforms, load the Bloom filter, start the read transaction."""
        path = Path(self.path)
        if not path.is_file():
            raise StoreUnavailable(f"no such file {str(path)!r}")
        try:
            stat = path.stat()
            conn = sqlite3.connect(f"file:{_uri_path(path)}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot be opened: {exc}") from None
        try:
            conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
            conn.execute("PRAGMA mmap_size=0")
            conn.execute("BEGIN")
            meta = _read_meta(conn)
            bloom = _read_bloom(conn)
            version = conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailable(f"cannot be read: {type(exc).__name__}: {exc}") from None
        except StoreUnavailable:
            conn.close()
            raise
        unknown = set(json.loads(meta.get("platforms", "[]"))) - (self._configured or set())
        if self._configured is not None and unknown:
            conn.close()
            configured = ", ".join(sorted(self._configured)) or "none"
            raise StoreUnavailable(f"holds records of platform(s) {', '.join(sorted(unknown))} not configured in "
                                   f"the platforms file (configured: {configured})")
        old, self._conn = self._conn, conn
        if old is not None:
            old.close()
        self._state = ((stat.st_dev, stat.st_ino), version)
        self.records = int(meta.get("records", 0))
        self.keys = int(meta.get("keys", 0))
        self.bloom = bloom
        self._broken = None
        self._cached.cache_clear()

    def _refresh(self) -> None:
        """End the read snapshot; reload when another connection committed or the file was replaced.

        After a failure the store stays unavailable until the file changes (a new commit, or a new file moved
        into place): a corrupt page does not heal by itself, and every answer from a damaged store is suspect.
        """
        with self._lock:
            self._next_refresh = self._clock() + self.url.refresh
            try:
                stat = os.stat(self.path)
            except OSError as exc:
                self._fail(f"is gone: {exc}")
                return
            identity = (stat.st_dev, stat.st_ino)
            try:
                if identity != self._state[0] or self._conn is None:
                    self._open()  # a rebuilt store moved into place, or one coming back
                    return
                conn = self._conn
                conn.execute("COMMIT")
                conn.execute("BEGIN")
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version != self._state[1]:
                    meta = _read_meta(conn)
                    self.bloom = _read_bloom(conn)
                    self.records = int(meta.get("records", 0))
                    self.keys = int(meta.get("keys", 0))
                    self._state = (identity, version)
                    self._broken = None
                    self._cached.cache_clear()
            except (sqlite3.Error, StoreUnavailable) as exc:
                self._fail(f"failed: {type(exc).__name__}: {exc}")

    def _fail(self, why: str) -> None:
        self._broken = f"authorization store {self.source} {why}"
        self._next_refresh = 0.0  # look again on every lookup
        self._cached.cache_clear()


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.resolve()))


def _read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError:
        raise StoreUnavailable("is not a consentcrawl authorization store (it has no meta table); create one "
                               "with `consentcrawl authorizations import SRC sqlite:///DEST`") from None
    if meta.get("format") != FORMAT:
        raise StoreUnavailable("is not a consentcrawl authorization store")
    if meta.get("version") != VERSION:
        raise StoreUnavailable(f"has format version {meta.get('version')!r}; this consentcrawl reads version "
                               f"{VERSION}")
    return meta


def _read_bloom(conn: sqlite3.Connection) -> Bloom | None:
    row = conn.execute("SELECT probes, bits FROM bloom WHERE id = 1").fetchone()
    return None if row is None else Bloom(row[1], row[0])


# -- writing ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    imported: int
    records: int  #: records in the store afterwards
    keys: int  #: people (platform, subject) in the store afterwards


def _connect_writer(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA cache_size=-262144")
    conn.executescript(_SCHEMA)
    return conn


def _record_row(record: AuthorizationRecord) -> Row:
    return (
        record.platform, record.subject, " ".join(sorted(record.purposes)), record.granted_at.isoformat(),
        record.expires_at.isoformat() if record.expires_at else None,
        record.revoked_at.isoformat() if record.revoked_at else None, record.evidence,
        json.dumps(sorted(record.fields), ensure_ascii=False) if record.fields is not None else None,
        record.record_id, record.jurisdiction, record.source,
    )


def _dedup_key(platform: str, subject: str, purposes: str, granted: str, revoked: str | None,
               record_id: str) -> tuple[Any, ...]:
    """The same duplicate rule as the file loaders: record_id if given, else the grant itself."""
    if record_id:
        return (platform, subject, "id", record_id)
    return (platform, subject, "grant", purposes, datetime.fromisoformat(granted),
            datetime.fromisoformat(revoked) if revoked else None)


def _error_at(record: AuthorizationRecord, message: str) -> ConfigError:
    source, _, line = record.source.rpartition(":")
    if source and line.isdigit():
        return ConfigError(message, source, int(line))
    return ConfigError(message, record.source or None)


def import_records(url: str | SQLiteURL, records: Iterable[AuthorizationRecord], *,
                   platforms: Iterable[str] = ()) -> ImportResult:
    """Add validated records to the store (created if missing), all or nothing, in one transaction.

    A record that duplicates one already in the store (same rule as within one file) is a ConfigError naming the
    record's file and line and the stored row. ``platforms`` are the configured platform names, recorded so that
    opening the store can refuse one whose platforms are not configured any more.
    """
    target = url if isinstance(url, SQLiteURL) else parse_sqlite_url(url)
    conn = _connect_writer(target.path)
    with _write_transaction(conn, "BEGIN IMMEDIATE"):
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if meta and meta.get("format") != FORMAT:
            raise ConfigError(f"{target.source} is not a consentcrawl authorization store", target.source)
        count, keys = int(meta.get("records", 0)), int(meta.get("keys", 0))
        known_platforms = set(json.loads(meta.get("platforms", "[]"))) | set(platforms)
        bloom = _read_bloom(conn)
        new_keys: list[tuple[int, int]] = []
        imported = 0
        for record in records:
            row = _record_row(record)
            hashes = key_hashes(record.platform, record.subject)
            first = base_id(hashes[0])
            existing = conn.execute(
                "SELECT id, platform, subject, purposes, granted_at, revoked_at, record_id FROM records "
                "WHERE id >= ? AND id < ?", (first, first + SLOTS)).fetchall()
            mine = [r for r in existing if r[1] == record.platform and r[2] == record.subject]
            key = _dedup_key(*row[:4], row[5], row[8])
            for r in mine:
                if _dedup_key(r[1], r[2], r[3], r[4], r[5], r[6]) == key:
                    raise _error_at(record, f"duplicate authorization record: the store already holds it as "
                                            f"{target.source}#{r[0]}")
            used = {r[0] for r in existing}
            slot = next((first + i for i in range(SLOTS) if first + i not in used), None)
            if slot is None:
                raise _error_at(record, f"more than {SLOTS} records for subject {record.subject!r} "
                                        f"of platform {record.platform!r}")
            conn.execute(_INSERT, (slot, *row))
            if not mine:
                keys += 1
                new_keys.append(hashes)
            known_platforms.add(record.platform)
            imported += 1
        count += imported
        if bloom is None or keys > bloom.capacity():
            bloom = Bloom.sized(max(keys * 2, 1))  # room to grow: rebuilt from every key only when it fills up
            for platform, subject in conn.execute("SELECT DISTINCT platform, subject FROM records"):
                bloom.add(*key_hashes(platform, subject))
        else:
            bloom = Bloom(bytearray(bloom.bits), bloom.probes)
            for hashes in new_keys:
                bloom.add(*hashes)
        _write_state(conn, bloom, count, keys, known_platforms)
    return ImportResult(imported, count, keys)


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


def _write_state(conn: sqlite3.Connection, bloom: Bloom, records: int, keys: int, platforms: Iterable[str]) -> None:
    conn.execute("INSERT OR REPLACE INTO bloom (id, probes, keys, bits) VALUES (1, ?, ?, ?)",
                 (bloom.probes, keys, bytes(bloom.bits)))
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [
        ("format", FORMAT), ("version", VERSION), ("records", str(records)), ("keys", str(keys)),
        ("platforms", json.dumps(sorted(platforms))),
    ])


def _checkpoint_and_close(conn: sqlite3.Connection) -> None:
    """Copy the WAL into the database as far as readers allow, without waiting for them (a crawl's store keeps
    a snapshot open for up to ``refresh`` seconds); what is left is checkpointed by a later write."""
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        pass
    conn.close()


def bulk_build(path: str, count: int, row_at: Callable[[int], Row]) -> ImportResult:
    """Write a new store of ``count`` generated rows quickly (benchmarks, load tests); replaces ``path``.

    ``row_at(i)`` returns row ``i`` as stored (see :data:`Row`); rows of the same person may be anywhere. The
    rows are trusted: only purposes, times and record order are checked, not the platforms file, and duplicates
    are not looked for. Two passes: hash every key and sort (so SQLite appends pages in order), then insert.
    """
    target = Path(path)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    order = sorted((base_id(key_hashes(*row_at(i)[:2])[0]) << 32) | i for i in range(count))
    bloom = Bloom.sized(count)
    conn = _connect_writer(str(target))
    conn.execute("PRAGMA synchronous=OFF")
    platforms: set[str] = set()
    keys = 0
    state: dict[str, Any] = {"base": -1, "slot": 0, "keys": set()}
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
            key = (row[0], row[1])
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
            platforms.add(row[0])
            yield (base + state["slot"], *row)

    with _write_transaction(conn, "BEGIN"):
        conn.executemany(_INSERT, rows())
        _write_state(conn, bloom, count, keys, platforms)
    return ImportResult(count, count, keys)
