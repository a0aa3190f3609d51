"""Authorization records in SQLite: ``CONSENTCRAWL_AUTHORIZATIONS = "sqlite:///authorizations.db"``.

A YAML, CSV or JSONL file is read whole into memory, which stops scaling somewhere around a million people. This
store keeps the records on disk and answers :meth:`SQLiteStore.lookup` at close to in-memory speed. Why it is
built the way it is (measured on the 2-core development box, CPython 3.11, SQLite 3.40, 10,000,000 records; see
``benchmarks/RESULTS.md``):

- An indexed point lookup through Python's ``sqlite3`` costs 8-17 µs at the median and 25-50 µs at p99 on a
  1 GB file; every decision cannot pay that. So lookups go through an in-process LRU of the keys already answered
  (a crawl decides the same person many times: every link to a profile, the fetch, the item) and a Bloom filter
  of every (platform, subject key) in the store, which answers "no record" for people who never authorized us in
  about 1 µs, without touching SQLite (about 1% false positives, which then ask SQLite).
- The table is a rowid table whose rowid is derived from the person: 51 bits of BLAKE2b of (platform, subject key)
  (:mod:`consentcrawl.consent.keys`: ``Alice`` and ``alice`` are one person unless the platform is case-sensitive),
  shifted left by 12, plus the record's number within its key. A lookup is one seek on the integer key (the fastest
  access SQLite has) and a short range scan; the rare hash collision is resolved by comparing platform and key.
  Rows keep the subject as written. A record's ``source`` is ``sqlite:///PATH#ROWID``, which finds its row. The
  store records each platform's key rule (``meta.subject_keys``): one opened under another rule is refused, and
  the next import indexes it again. Format version 1 (placed by the subject as written) is still read, with a scan
  for the subjects whose key differs when it is opened, and upgraded by the next import.
- One read transaction is kept open (starting one per query costs file-lock system calls) and renewed at most
  every ``refresh`` seconds (default 1, at most 2) on the next lookup; when another connection has committed in
  the meantime (``PRAGMA data_version``), the LRU is replaced and the Bloom filter reloaded. A withdrawal imported
  while a crawl runs therefore applies within about a second. The file is in WAL mode, so readers never block an
  import.
- ``mmap`` is off: mapped pages count towards the crawler's RSS, and a crawl touching a 1 GB store would map most
  of it. SQLite's own page cache is kept small (16 MB); the operating system caches the file.

Live, and failing closed: :attr:`SQLiteStore.version` changes with every commit seen, every reopen and every
failure or recovery, and no LRU entry outlives a version. On each renewal the store also looks at the file itself
(``os.stat``: device, inode, size, times; and its first 100 bytes): SQLite's page cache and WAL index do not
notice a file changed behind its back (overwritten in place, truncated, another file renamed over it), so any such
change makes the store reopen the file, checking that it is an SQLite database, that no page is missing (a page
beyond the end of the file must be in the write-ahead log), its format and its Bloom filter. A file renamed over
the store while the old store's write-ahead log still holds frames is refused (SQLite would read those frames as
part of the new file) until that log is gone. So a change of the file shows within ``refresh`` seconds, for every
person, not only those looked up since.

Failures: a store that cannot be opened (missing file, not a consentcrawl store, a platform not configured) is a
:class:`~consentcrawl.errors.ConfigError`, so the crawl does not start. A store that fails later (the file was
removed, overwritten, truncated, a page is corrupt, any ``sqlite3`` error) raises
:class:`~consentcrawl.errors.StoreUnavailable` from ``lookup``, which the policy core turns into a deny with
``error.store-unavailable``. It is logged once at ERROR; the store stays unavailable until the file or its log
changes, then reopens.

Writing: :func:`import_records` adds validated records (``consentcrawl authorizations import SRC sqlite:///DEST``
feeds it from the YAML/CSV/JSONL loaders, so the same rules apply), refusing a record that duplicates one already
in the store. :func:`bulk_build` writes millions of trusted, generated rows quickly (benchmarks).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import sqlite3
import stat
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import ConfigError, StoreUnavailable
from .keys import CASEFOLD, EXACT, KeyFunction, casefold_key, key_function, platform_names, platform_objects, rule_of
from .records import AuthorizationRecord
from .store import new_version

__all__ = ["SQLiteStore", "parse_sqlite_url"]

logger = logging.getLogger(__name__)

FORMAT = "consentcrawl-authorizations"
#: 2: people are placed by subject key (``keys``), and ``meta.subject_keys`` records each platform's key rule.
#: 1: by the subject as written; still read (see ``_legacy_ranges``), and upgraded by the next import.
VERSION = "2"
READABLE = ("1", "2")
SCHEME = "sqlite:///"
SLOT_BITS = 12  #: records per (platform, subject): up to 4096 (grants and withdrawals of one person)
SLOTS = 1 << SLOT_BITS
BLOOM_BITS_PER_KEY = 10  #: about 1% false positives with 7 probes
BLOOM_PROBES = 7
DEFAULT_CACHE = 65_536  #: keys kept in the LRU (about 1 KB each for a person with one record)
DEFAULT_REFRESH = 1.0  #: seconds between checks for another connection's commits
MAX_REFRESH = 2.0  #: the bound within which a live store's change must apply (design doc, "Live stores")
PAGE_CACHE_KIB = 16_384

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bloom (id INTEGER PRIMARY KEY CHECK (id = 1), probes INTEGER NOT NULL,
                                  keys INTEGER NOT NULL, bits BLOB NOT NULL);
"""
_RECORDS = """
CREATE TABLE IF NOT EXISTS {name} (
    id INTEGER PRIMARY KEY,      -- hash of (platform, subject key) << 12 | number of the record within that key
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
)
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


def key_hashes(platform: str, key: str) -> tuple[int, int]:
    """Two independent 64-bit hashes of (platform, subject key): the first places it in the table, both feed the
    Bloom filter."""
    digest = hashlib.blake2b(f"{platform}\0{key}".encode("utf-8", "surrogatepass"), digest_size=16).digest()
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
                if options[name] > MAX_REFRESH:
                    raise ConfigError(f"option refresh={value} in {url!r} is more than {MAX_REFRESH:g} seconds: a "
                                      f"withdrawal must apply within {MAX_REFRESH:g} seconds", source=where)
            else:
                raise ConfigError(f"unknown option {name!r} in {url!r} (known: cache, refresh)", source=where)
        except ValueError:
            raise ConfigError(f"option {name}={value!r} in {url!r} must be a non-negative number",
                              source=where) from None
    return SQLiteURL(path, **options)


# -- reading --------------------------------------------------------------------------------------------------------

_MAGIC = b"SQLite format 3\x00"
_WAL_MAGIC = (0x377F0682, 0x377F0683)
_BUSY = (5, 6)  #: SQLITE_BUSY, SQLITE_LOCKED: another connection is in the way, not a broken file
#: format 1 indexed people by the subject as written: the subjects whose key differs (not lower-case ASCII)
_LEGACY_SCAN = "SELECT DISTINCT platform, subject FROM records WHERE subject <> lower(subject) OR subject GLOB ?"
_NON_ASCII = "*[^\x01-\x7f]*"

#: the main file as seen by ``os.stat``: device, inode, size, modification and change times (ns)
_FileState = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class _Contents:
    """What one read of the store's state gave: everything a lookup uses besides the connection."""

    bloom: Bloom | None
    records: int
    keys: int
    keyfns: dict[str, KeyFunction]  #: each platform's subject key function
    legacy: dict[tuple[str, str], tuple[int, ...]] | None  #: format 1: more ranges of a key (see _legacy_ranges)


class SQLiteStore:
    """The :class:`~consentcrawl.consent.store.AuthorizationStore` for ``sqlite:///`` URLs (see the module doc).

    ``platforms`` is the configured ``PlatformRegistry``, its mapping of name to platform (each platform's
    subject key rule then comes from its configuration), or just the names (the rule recorded in the store).
    """

    def __init__(self, url: str | SQLiteURL, platforms: Any = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url if isinstance(url, SQLiteURL) else parse_sqlite_url(url)
        self.path = self.url.path
        self.source = self.url.source
        self._configured = platform_names(platforms)
        self._objects = platform_objects(platforms)
        self._clock = clock
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._broken: str | None = None
        self._closed = False
        self._failed_at: tuple[_FileState | None, Any] | None = None  #: the files when it broke (None: look again)
        self._file: _FileState | None = None  #: the main file as of the last (re)open
        self._wal_salts: tuple[int, int] | None = None  #: the log last seen paired with that file, if it had frames
        self._data_version = 0
        self._legacy_warned = False
        self._purpose_sets: dict[str, frozenset[str]] = {}
        self._field_sets: dict[str, frozenset[str]] = {}
        self.records = 0
        self.keys = 0
        self.queries = 0  #: SQLite queries made by lookups
        self.bloom_rejects = 0  #: lookups the Bloom filter answered (no record) without SQLite
        self.bloom: Bloom | None = None
        self._contents = _Contents(None, 0, 0, {}, None)
        self._cached = self._new_cache(self._contents)
        self._version = new_version()
        try:
            self._open()
        except StoreUnavailable as exc:
            self._close_connection()
            raise ConfigError(f"authorization store {exc}", source=self.source) from None
        self._next_refresh = self._clock() + self.url.refresh

    # -- the protocol -------------------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Changes with every reopen, every commit seen (``PRAGMA data_version``) and every failure or recovery."""
        return self._version

    def lookup(self, platform: str, subject: str) -> Sequence[AuthorizationRecord]:
        """All records of one person on one platform; raises StoreUnavailable when the store cannot answer."""
        if self._clock() >= self._next_refresh:
            self._refresh()
        if self._broken is not None:
            raise StoreUnavailable(self._broken)
        return self._cached(platform, subject)  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return self.records

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._broken = f"authorization store {self.source} is closed"
            self._version = new_version()
            self._close_connection()

    def cache_info(self) -> Any:
        """The LRU's hits, misses and size (``functools.lru_cache`` statistics) since the store last changed."""
        return self._cached.cache_info()

    # -- lookups ------------------------------------------------------------------------------------------------

    def _new_cache(self, contents: _Contents) -> Any:
        """A new LRU over lookups in ``contents``: a lookup that was running when the store changed files its
        answer in the old LRU, which nothing reads any more, so no answer outlives a change."""
        return functools.lru_cache(maxsize=self.url.cache)(functools.partial(self._fetch, contents))

    def _fetch(self, contents: _Contents, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        """A lookup the LRU does not hold (it holds them by the subject as asked: a hit costs no normalising)."""
        keyfn = contents.keyfns.get(platform, casefold_key)
        key = keyfn(subject)
        hashes = key_hashes(platform, key)
        bases = list(contents.legacy.get((platform, key), ())) if contents.legacy else []
        bloom = contents.bloom
        if bloom is None or hashes in bloom:
            bases.insert(0, base_id(hashes[0]))
        elif not bases:
            self.bloom_rejects += 1
            return ()
        with self._lock:
            conn = self._conn
            if conn is None or self._broken is not None:
                raise StoreUnavailable(self._broken or f"authorization store {self.source} is closed")
            self.queries += 1
            try:
                rows = [row for first in dict.fromkeys(bases)
                        for row in conn.execute(_SELECT, (first, first + SLOTS)).fetchall()]
            except sqlite3.Error as exc:
                why = self._fail(f"failed: {type(exc).__name__}: {exc}", transient=_is_busy(exc))
                raise StoreUnavailable(why) from exc
        return tuple(self._record(row) for row in rows if row[1] == platform and keyfn(row[2]) == key)

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

    # -- following the file -------------------------------------------------------------------------------------

    def _open(self) -> None:
        """(Re)connect: check the file, the format and platforms, load the Bloom filter, start the read
        transaction. Raises StoreUnavailable, leaving the store without a connection."""
        self._close_connection()  # first: never a connection to the old file next to one to its replacement
        path = Path(self.path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise StoreUnavailable(f"no such file {str(path)!r}") from None
        except OSError as exc:
            raise StoreUnavailable(f"cannot be opened: {exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise StoreUnavailable(f"no such file {str(path)!r} (not a regular file)")
        file = _file_state(st)
        if self._file is not None and file[:2] != self._file[:2]:
            self._check_log_is_not_the_old_stores()
        _check_header(path)
        try:
            conn = sqlite3.connect(f"file:{_uri_path(path)}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot be opened: {exc}") from None
        try:
            conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
            conn.execute("PRAGMA mmap_size=0")
            conn.execute("BEGIN")
            contents = self._read_contents(conn)
            _check_pages(conn, path, st.st_size)
            data_version = conn.execute("PRAGMA data_version").fetchone()[0]
        except StoreUnavailable:
            conn.close()
            raise
        except Exception as exc:  # noqa: BLE001 - sqlite3 errors, and garbage in meta or the Bloom filter
            conn.close()
            raise StoreUnavailable(f"cannot be read: {type(exc).__name__}: {exc}") from None
        self._conn = conn
        self._file = file
        self._wal_salts = _wal_salts(self.path)
        self._data_version = data_version
        self._install(contents)

    def _read_contents(self, conn: sqlite3.Connection) -> _Contents:
        meta = _read_meta(conn)
        bloom = _read_bloom(conn)
        stored = set(json.loads(meta.get("platforms", "[]")))
        unknown = stored - (self._configured or set())
        if self._configured is not None and unknown:
            configured = ", ".join(sorted(self._configured)) or "none"
            raise StoreUnavailable(f"holds records of platform(s) {', '.join(sorted(unknown))} not configured in "
                                   f"the platforms file (configured: {configured})")
        legacy = meta["version"] == "1"
        rules: dict[str, str] = {} if legacy else json.loads(meta.get("subject_keys", "{}"))
        keyfns: dict[str, KeyFunction] = {}
        for name in stored | set(rules) | set(self._objects):
            platform = self._objects.get(name)
            recorded = rules.get(name, CASEFOLD)
            if platform is not None:
                if not legacy and name in rules and rule_of(platform) != recorded:
                    raise StoreUnavailable(
                        f"indexes the subjects of platform {name!r} {_RULE_TEXT.get(recorded, recorded)}, but the "
                        f"platforms file makes them {_RULE_TEXT[rule_of(platform)]}: import a file into it (one "
                        f"with no records will do) to index them again")
                keyfns[name] = key_function(platform)
            else:
                keyfns[name] = key_function(None, recorded)
        ranges = None
        if legacy:
            if not self._legacy_warned:
                self._legacy_warned = True
                logger.warning("authorization store %s has format version 1 (subjects indexed as written): it is "
                               "read as it is, at the cost of a scan when it is opened; import a file into it (one "
                               "with no records will do) to upgrade it to version %s", self.source, VERSION)
            ranges = _legacy_ranges(conn, keyfns)
        return _Contents(bloom, int(meta.get("records", 0)), int(meta.get("keys", 0)), keyfns, ranges)

    def _install(self, contents: _Contents) -> None:
        """Answer from ``contents`` from now on: a new LRU and a new version (the caller holds the lock)."""
        self._contents = contents
        self.records, self.keys, self.bloom = contents.records, contents.keys, contents.bloom
        self._cached = self._new_cache(contents)
        self._version = new_version()
        if self._broken is not None:
            logger.warning("authorization store %s answers again", self.source)
            self._broken, self._failed_at = None, None

    def _refresh(self) -> None:
        """End the read snapshot; reopen when the file was written outside a transaction seen here (replaced,
        overwritten, truncated, or checkpointed), reload when another connection committed.

        After a failure the store stays unavailable until the file or its log changes (a new commit, a new file
        moved into place): a corrupt page does not heal by itself, and every answer from a damaged store is
        suspect. While it is unavailable, every lookup looks (an ``os.stat``).
        """
        with self._lock:
            now = self._clock()
            if now < self._next_refresh or self._closed:
                return
            self._next_refresh = now + self.url.refresh  # a failure looks again on every lookup (see _fail)
            try:
                here = self._here()
            except OSError as exc:
                self._fail(f"is gone: {exc}", transient=False)
                return
            if self._broken is not None:
                if self._failed_at is None or here != self._failed_at:
                    self._reopen()
                else:
                    self._next_refresh = 0.0
                return
            if here[0] != self._file or self._conn is None:
                self._reopen()
                return
            conn = self._conn
            try:
                _check_header(Path(self.path))  # an overwrite within the granularity of the file's times
                conn.execute("COMMIT")
                conn.execute("BEGIN")
                data_version = conn.execute("PRAGMA data_version").fetchone()[0]
                if data_version != self._data_version:
                    contents = self._read_contents(conn)
                    self._data_version = data_version
                    self._install(contents)
                self._wal_salts = _wal_salts(self.path)
            except StoreUnavailable as exc:
                self._fail(str(exc), transient=False)
            except sqlite3.Error as exc:
                self._fail(f"failed: {type(exc).__name__}: {exc}", transient=_is_busy(exc))
            except Exception as exc:  # noqa: BLE001 - garbage in meta or the Bloom filter: answers are suspect
                self._fail(f"failed: {type(exc).__name__}: {exc}", transient=False)

    def _reopen(self) -> None:
        try:
            self._open()
        except StoreUnavailable as exc:
            self._fail(str(exc), transient=False)
        except Exception as exc:  # noqa: BLE001 - never keep answering after a reopen that did not finish
            self._fail(f"failed: {type(exc).__name__}: {exc}", transient=False)

    def _here(self) -> tuple[_FileState, Any]:
        """The main file and its log as they are now; raises OSError when the main file cannot be looked at."""
        return _file_state(os.stat(self.path)), _wal_state(self.path)

    def _fail(self, why: str, *, transient: bool) -> str:
        """Every lookup fails from now on, until the file changes (or at once, for a transient failure)."""
        with self._lock:
            message = f"authorization store {self.source} {why}"
            was, self._broken = self._broken, message  # before the version changes
            if was is None:
                self._version = new_version()
                logger.error("%s; every lookup fails (decisions that need it deny) until it answers again", message)
            try:
                self._failed_at = None if transient else self._here()
            except OSError:
                self._failed_at = None
            self._close_connection()
            self._cached = self._new_cache(self._contents)
            self._next_refresh = 0.0  # look again on every lookup
            return message

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _check_log_is_not_the_old_stores(self) -> None:
        """A file renamed over the store, while the old store's write-ahead log (``PATH-wal``) still holds pages,
        would be read with those pages in it (SQLite has no way to tell whose log it is): refuse it until the log
        is gone. A log holding frames with the salts it had next to the old file is the old store's."""
        salts = _wal_salts(self.path)
        if salts is not None and salts == self._wal_salts:
            raise StoreUnavailable(
                f"was replaced, but the old store's write-ahead log {self.path}-wal still holds pages of it: SQLite "
                f"would read them as part of the new one. Remove {self.path}-wal and {self.path}-shm once no "
                f"process writes to the old store (better: replace a store only with no -wal file next to it)")


_RULE_TEXT = {CASEFOLD: "case-insensitively (NFKC, case-folded)", EXACT: "case-sensitively (NFKC)"}


def _is_busy(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _BUSY


def _file_state(st: os.stat_result) -> _FileState:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _wal_state(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(f"{path}-wal")
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _check_header(path: Path) -> None:
    """The file starts like an SQLite database (an overwrite with anything else, or a truncation, fails here)."""
    try:
        with path.open("rb") as f:
            head = f.read(100)
    except OSError as exc:
        raise StoreUnavailable(f"cannot be read: {exc}") from None
    if not head:
        raise StoreUnavailable("cannot be read: the file is empty (truncated?)")
    if len(head) < 100 or not head.startswith(_MAGIC):
        raise StoreUnavailable("cannot be read: it is not an SQLite database (overwritten? truncated?)")


def _check_pages(conn: sqlite3.Connection, path: Path, size: int) -> None:
    """Every page of the database is in the file or in its write-ahead log: a truncated file fails here.

    A file shorter than the database is normal only while a checkpoint copies pages from the log (it writes page 1,
    with the new size, first); the pages the file lacks must then all be in the log.
    """
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    whole = size // page_size
    if pages <= whole:
        return
    logged = _wal_pages(str(path))
    missing = next((p for p in range(whole + 1, pages + 1) if p not in logged), None)
    if missing is not None:
        raise StoreUnavailable(f"cannot be read: it is truncated ({size} bytes, but the database has {pages} pages "
                               f"of {page_size} bytes)")


def _wal_header(f: Any) -> tuple[int, tuple[int, int]] | None:
    """The page size and salts of a write-ahead log, or None when it is not one."""
    head = f.read(32)
    if len(head) < 32:
        return None
    magic, _version, page_size, _checkpoint, salt1, salt2 = struct.unpack(">6I", head[:24])
    if magic not in _WAL_MAGIC or not page_size:
        return None
    return page_size, (salt1, salt2)


def _wal_salts(path: str) -> tuple[int, int] | None:
    """The salts of ``PATH-wal`` when it holds at least one frame of the current generation, else None."""
    try:
        with open(f"{path}-wal", "rb") as f:
            header = _wal_header(f)
            if header is None:
                return None
            frame = f.read(24)
    except OSError:
        return None
    if len(frame) < 24 or struct.unpack(">2I", frame[8:16]) != header[1]:
        return None
    return header[1]


def _wal_pages(path: str) -> set[int]:
    """The page numbers held by the frames of the current generation of ``PATH-wal``."""
    pages: set[int] = set()
    try:
        with open(f"{path}-wal", "rb") as f:
            header = _wal_header(f)
            if header is None:
                return pages
            page_size, salts = header
            offset = 32
            while True:
                f.seek(offset)
                frame = f.read(24)
                if len(frame) < 24:
                    break
                number, _commit, salt1, salt2 = struct.unpack(">4I", frame[:16])
                if (salt1, salt2) != salts:
                    break
                pages.add(number)
                offset += 24 + page_size
    except OSError:
        pass
    return pages


def _legacy_ranges(conn: sqlite3.Connection, keyfns: dict[str, KeyFunction]) -> dict[tuple[str, str], tuple[int, ...]]:
    """Format 1 placed each person by the subject as written: a key's records are at the key's own range (a
    subject written as its key) and at the ranges of every other way it was written. This finds the others: the
    subjects that are not lower-case ASCII (one scan, when the store is opened)."""
    ranges: dict[tuple[str, str], set[int]] = {}
    for platform, subject in conn.execute(_LEGACY_SCAN, (_NON_ASCII,)):
        key = keyfns.get(platform, casefold_key)(subject)
        if key != subject:
            ranges.setdefault((platform, key), set()).add(base_id(key_hashes(platform, subject)[0]))
    return {key: tuple(sorted(bases)) for key, bases in ranges.items()}


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
    if meta.get("version") not in READABLE:
        raise StoreUnavailable(f"has format version {meta.get('version')!r}; this consentcrawl reads version(s) "
                               f"{', '.join(READABLE)}")
    return meta


def _read_bloom(conn: sqlite3.Connection) -> Bloom | None:
    row = conn.execute("SELECT probes, bits FROM bloom WHERE id = 1").fetchone()
    return None if row is None else Bloom(row[1], row[0])


def __getattr__(name: str) -> Any:
    """The writing side lives in :mod:`consentcrawl.consent.sqlite_write`; its names are still importable here."""
    if name in ("ImportResult", "bulk_build", "import_records"):
        from . import sqlite_write

        return getattr(sqlite_write, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
