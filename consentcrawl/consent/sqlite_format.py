"""The SQLite store's file format, shared by reading (:mod:`consentcrawl.consent.sqlite`) and writing
(:mod:`consentcrawl.consent.sqlite_write`): the tables, where a person's records are placed, the Bloom filter, the
``sqlite:///`` URL, reading the store's own bookkeeping (``meta``, ``bloom``) and a row as the record it holds.

The table is a rowid table whose rowid is derived from the person: 51 bits of BLAKE2b of (platform, subject key)
(:mod:`consentcrawl.consent.keys`: ``Alice`` and ``alice`` are one person unless the platform is case-sensitive),
shifted left by 12, plus the record's number within its key. A lookup is one seek on the integer key (the fastest
access SQLite has) and a short range scan; the rare hash collision is resolved by comparing platform and key.
Rows keep the subject as written. A record's ``source`` is ``sqlite:///PATH#ROWID``, which finds its row. The
store records each platform's key rule (``meta.subject_keys``): one opened under another rule is refused, and
the next import indexes it again. Format version 1 (placed by the subject as written) is still read, with a scan
for the subjects whose key differs when it is opened, and upgraded by the next import.

Every row also says how many rows its person has (``person_rows``, format version 3): a lookup that finds fewer
(or more) knows the file lost (or gained) a row below SQLite, which reads a damaged leaf page as a valid one. A
lost withdrawal beside a surviving grant would otherwise be an allow. The count costs nothing to read (it is in
the row a lookup reads anyway) and nearly nothing to write; checking a whole file (``PRAGMA quick_check``) costs
a scan of it, far beyond the time a store may take to open. Versions 1 and 2 are read without the check (a
warning says so) and upgraded by the next import.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from ..errors import ConfigError, StoreUnavailable
from .keys import CASEFOLD, EXACT, KeyFunction, casefold_key, key_function, rule_of
from .records import AuthorizationRecord

__all__ = ["FORMAT", "VERSION", "Bloom", "Row", "SQLiteURL", "StagedRow", "base_id", "key_hashes", "parse_sqlite_url"]

FORMAT = "consentcrawl-authorizations"
#: 3: every row holds its person's number of rows (``person_rows``).
#: 2: people are placed by subject key (``keys``), and ``meta.subject_keys`` records each platform's key rule.
#: 1: by the subject as written; still read (see ``legacy_ranges``), and upgraded by the next import.
VERSION = "3"
READABLE = ("1", "2", "3")
COUNTED = ("3",)  #: the versions whose rows hold ``person_rows``
SCHEME = "sqlite:///"
SLOT_BITS = 12  #: records per (platform, subject): up to 4096 (grants and withdrawals of one person)
SLOTS = 1 << SLOT_BITS
BLOOM_BITS_PER_KEY = 10  #: about 1% false positives with 7 probes
BLOOM_PROBES = 7
DEFAULT_CACHE = 65_536  #: keys kept in the LRU (about 1 KB each for a person with one record)
DEFAULT_REFRESH = 1.0  #: seconds between checks for another connection's commits
MAX_REFRESH = 2.0  #: the bound within which a live store's change must apply (design doc, "Live stores")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bloom (id INTEGER PRIMARY KEY CHECK (id = 1), probes INTEGER NOT NULL,
                                  keys INTEGER NOT NULL, bits BLOB NOT NULL);
"""
RECORDS_TABLE = """
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
    origin TEXT NOT NULL DEFAULT '',  -- where it was imported from (file:line)
    person_rows INTEGER          -- rows of this (platform, subject key): a lookup finding another number fails
)
"""
COLUMNS = ("id, platform, subject, purposes, granted_at, expires_at, revoked_at, evidence, fields, record_id, "
            "jurisdiction")
SELECT = f"SELECT {COLUMNS}, person_rows FROM records WHERE id >= ? AND id < ?"
#: the same for a store written before ``person_rows`` (format 1 or 2): nothing to check
SELECT_UNCOUNTED = f"SELECT {COLUMNS}, NULL FROM records WHERE id >= ? AND id < ?"
INSERT = ("INSERT INTO records (id, platform, subject, purposes, granted_at, expires_at, revoked_at, evidence, "
           "fields, record_id, jurisdiction, origin, person_rows) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)")

#: one row as written: platform, subject, purposes, granted_at, expires_at, revoked_at, evidence, fields (JSON or
#: None), record_id, jurisdiction, origin
Row = tuple[str, str, str, str, "str | None", "str | None", str, "str | None", str, str, str]
#: a record as the bulk importer takes it from a validator that need not build the record: (subject key, row)
StagedRow = tuple[str, Row]


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

    @property
    def where(self) -> str:
        """What a missing store's error adds: ``sqlite:///home/me/x.db`` is ``home/me/x.db``, in the working
        directory, which a new user writing SQLAlchemy's three slashes before an absolute path does not expect."""
        return "" if self.path.startswith("/") else (" (relative to the working directory; an absolute path takes "
                                                     "four slashes: sqlite:////PATH)")


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


# -- reading the store's bookkeeping ---------------------------------------------------------------------------------

#: format 1 indexed people by the subject as written: the subjects whose key differs (not lower-case ASCII)
_LEGACY_SCAN = "SELECT DISTINCT platform, subject FROM records WHERE subject <> lower(subject) OR subject GLOB ?"
_NON_ASCII = "*[^\x01-\x7f]*"


class RowReader:
    """A row of the records table (as :data:`SELECT` reads it) as the record it holds. The purpose and field sets
    of the rows read are shared: most records repeat a few, and a set is far bigger than its text."""

    def __init__(self, source: str) -> None:
        self.source = source  #: the store's URL: a record's ``source`` is ``SOURCE#ROWID``
        self._purpose_sets: dict[str, frozenset[str]] = {}
        self._field_sets: dict[str, frozenset[str]] = {}

    def __call__(self, row: tuple[Any, ...]) -> AuthorizationRecord:
        rid, platform, subject, purposes, granted, expires, revoked, evidence, fields, record_id, jurisdiction, *_ = row
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


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError:
        raise StoreUnavailable("is not a consentcrawl authorization store (it has no meta table); import the "
                               "records into a new file with `consentcrawl authorizations import SRC "
                               "sqlite:///NEW.db` and name that file") from None
    if meta.get("format") != FORMAT:
        raise StoreUnavailable("is not a consentcrawl authorization store")
    if meta.get("version") not in READABLE:
        raise StoreUnavailable(f"has format version {meta.get('version')!r}; this consentcrawl reads version(s) "
                               f"{', '.join(READABLE)}")
    return meta


def read_bloom(conn: sqlite3.Connection) -> Bloom | None:
    row = conn.execute("SELECT probes, bits FROM bloom WHERE id = 1").fetchone()
    return None if row is None else Bloom(row[1], row[0])


def legacy_ranges(conn: sqlite3.Connection, keyfns: dict[str, KeyFunction]) -> dict[tuple[str, str], tuple[int, ...]]:
    """Format 1 placed each person by the subject as written: a key's records are at the key's own range (a
    subject written as its key) and at the ranges of every other way it was written. This finds the others: the
    subjects that are not lower-case ASCII (one scan, when the store is opened)."""
    ranges: dict[tuple[str, str], set[int]] = {}
    for platform, subject in conn.execute(_LEGACY_SCAN, (_NON_ASCII,)):
        key = keyfns.get(platform, casefold_key)(subject)
        if key != subject:
            ranges.setdefault((platform, key), set()).add(base_id(key_hashes(platform, subject)[0]))
    return {key: tuple(sorted(bases)) for key, bases in ranges.items()}


_RULE_TEXT = {CASEFOLD: "case-insensitively (NFKC, case-folded)", EXACT: "case-sensitively (NFKC)"}


@dataclass(frozen=True)
class Contents:
    """What one read of the store's state gave: everything a lookup uses besides the connection."""

    bloom: Bloom | None
    records: int
    keys: int
    keyfns: dict[str, KeyFunction]  #: each platform's subject key function
    legacy: dict[tuple[str, str], tuple[int, ...]] | None  #: format 1: more ranges of a key (see legacy_ranges)
    counted: bool = True  #: rows hold ``person_rows``, which every lookup checks


def read_contents(conn: sqlite3.Connection, configured: frozenset[str] | set[str] | None,
                  objects: dict[str, Any]) -> Contents:
    """The store's state as one read gives it: its Bloom filter, counts, and each platform's key function.

    ``configured`` are the platform names of the crawl (None: any), ``objects`` the configured platforms by name.
    Raises StoreUnavailable for a store holding platforms not configured, or indexed under another key rule.
    """
    meta = read_meta(conn)
    bloom = read_bloom(conn)
    stored = set(json.loads(meta.get("platforms", "[]")))
    unknown = stored - (configured or set())
    if configured is not None and unknown:
        names = ", ".join(sorted(configured)) or "none"
        raise StoreUnavailable(f"holds records of platform(s) {', '.join(sorted(unknown))} not configured in "
                               f"the platforms file (configured: {names})")
    legacy = meta["version"] == "1"
    rules: dict[str, str] = {} if legacy else json.loads(meta.get("subject_keys", "{}"))
    keyfns: dict[str, KeyFunction] = {}
    for name in stored | set(rules) | set(objects):
        platform = objects.get(name)
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
    ranges = legacy_ranges(conn, keyfns) if legacy else None
    return Contents(bloom, int(meta.get("records", 0)), int(meta.get("keys", 0)), keyfns, ranges,
                    meta["version"] in COUNTED)


def miscounted(rows: Iterable[tuple[int, str, str, int | None]], keyfns: dict[str, KeyFunction]) -> str | None:
    """The first person whose rows are not as many as each of them says (``person_rows``), described, or None.
    ``rows`` are (id, platform, subject, person_rows) in rowid order, as a whole-store check reads them: what a
    lookup checks for one person (``authorizations validate``, ``purge --withdrawn``)."""
    current: int | None = None
    people: dict[tuple[str, str], list[int | None]] = {}
    for rid, platform, subject, count in itertools.chain(rows, [(-1, "", "", None)]):
        number = rid >> SLOT_BITS if rid >= 0 else None
        if number != current:
            for counts in people.values():
                if any(c != len(counts) for c in counts):
                    wrote = " or ".join(sorted({str(c) for c in counts}))
                    return (f"{len(counts)} record(s) of a person where the store wrote {wrote} (rows from "
                            f"{(current or 0) << SLOT_BITS})")
            current, people = number, {}
        people.setdefault((platform, keyfns.get(platform, casefold_key)(subject)), []).append(count)
    return None


def checked_rows(conn: sqlite3.Connection, contents: Contents, columns: str,
                 into: list[tuple[Any, ...]] | None = None) -> str | None:
    """Reads the store's rows in rowid order (``columns``, which start with ``id, platform, subject``, then
    ``person_rows`` in a counted store) and checks them as :func:`miscounted` does: the first person whose rows are
    miscounted, described, or None. Each row read is put in ``into`` when given (a caller that reads the records
    too); otherwise none is kept: a check of a whole store holds one person's rows at a time. Raises sqlite3.Error.
    What ``authorizations validate`` and ``purge --withdrawn`` read a whole store by."""
    cursor = conn.execute(f"SELECT {columns}{', person_rows' if contents.counted else ''} FROM records ORDER BY id")
    rows = cursor if into is None else _kept(cursor, into)
    if not contents.counted:
        for _ in rows:
            pass
        return None
    return miscounted(((r[0], r[1], r[2], r[-1]) for r in rows), contents.keyfns)


def _kept(rows: Iterable[tuple[Any, ...]], into: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    for row in rows:
        into.append(row)
        yield row
