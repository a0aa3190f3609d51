"""The SQLite cache of a large YAML, CSV or JSONL authorization file.

A file of more records than ``CONSENTCRAWL_AUTHORIZATIONS_CACHE_THRESHOLD`` (default 50,000) is not held in memory:
its validated records are imported (:func:`~consentcrawl.consent.sqlite_bulk.build_store`) into an SQLite store
beside it, ``FILE.consentcrawl-cache.db``, or, when that directory is not writable, in
``$XDG_CACHE_HOME/consentcrawl/`` (``~/.cache/consentcrawl/``). Lookups then go to the cache
(:class:`CacheStore`: an :class:`~consentcrawl.consent.sqlite.SQLiteStore` whose records name the file and line
they were read from, as a file store's do).

The cache records what it was built from: the file's path, size, modification time and a SHA-256 digest of its bytes
(exactly the bytes that were parsed), the platforms' subject rules, and the cache format. It is reused while the
file has the same size and digest under the same platforms (a file touched but not changed keeps its cache);
anything else builds it again, except records appended to a JSONL file (:func:`append_to_cache`: the usual way a
withdrawal arrives), which are added to the cache with what it now holds, in one transaction. The file is the truth,
the cache only a faster way to read it: a cache that does not open cleanly is built again, never trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError, StoreUnavailable
from ..terms.platforms import PlatformRegistry
from .reading import file_digest
from .records import AuthorizationRecord
from .sqlite import SQLiteStore
from .sqlite_bulk import build_store
from .sqlite_files import read_only_uri
from .sqlite_format import COLUMNS, SQLiteURL, StagedRow
from .sqlite_write import import_records

__all__ = ["CACHE_FORMAT", "SUFFIX", "CacheStore", "CacheUnwritable", "append_to_cache", "build_cache", "cache_paths",
           "open_fresh_cache"]

logger = logging.getLogger(__name__)

CACHE_FORMAT = "3"  #: 3: each row holds its person's row count; 2: in WAL mode (records appended while it is read)
SUFFIX = ".consentcrawl-cache.db"


class CacheStore(SQLiteStore):
    """The cache of a file, read like any SQLite store; a record's ``source`` is the file and line it came from."""

    _select = f"SELECT {COLUMNS}, person_rows, origin FROM records WHERE id >= ? AND id < ?"
    _select_uncounted = f"SELECT {COLUMNS}, NULL, origin FROM records WHERE id >= ? AND id < ?"

    def _record(self, row: tuple[Any, ...]) -> AuthorizationRecord:
        return dataclasses.replace(super()._record(row[:-1]), source=row[-1])


def cache_paths(path: str) -> list[Path]:
    """Where the cache of ``path`` may be: beside it, then in the user's cache directory."""
    source = Path(path).resolve()
    beside = source.with_name(source.name + SUFFIX)
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    tag = hashlib.blake2b(os.fsencode(source), digest_size=8).hexdigest()
    return [beside, Path(home) / "consentcrawl" / f"{tag}-{source.name}{SUFFIX}"]


def platforms_fingerprint(platforms: PlatformRegistry) -> str:
    """What of the platforms file the validated records depend on: the names, subject patterns and key rules."""
    table = {name: [p.subject_regex, bool(getattr(p, "case_sensitive", False))]
             for name, p in sorted(platforms.platforms.items())}
    return hashlib.blake2b(json.dumps(table, sort_keys=True).encode(), digest_size=16).hexdigest()


def _wanted(path: str, st: os.stat_result, platforms: PlatformRegistry) -> dict[str, str]:
    return {"cache_format": CACHE_FORMAT, "source_path": str(Path(path).resolve()), "source_size": str(st.st_size),
            "platforms_fingerprint": platforms_fingerprint(platforms)}


def open_fresh_cache(path: str, st: os.stat_result, platforms: PlatformRegistry) -> tuple[CacheStore, bytes] | None:
    """The cache of the file as it is now (same size and digest, same platforms), opened, with the file's digest;
    None when there is none."""
    wanted = _wanted(path, st, platforms)
    digest: bytes | None = None
    for candidate in cache_paths(path):
        meta = _meta_of(candidate)
        if meta is None or any(meta.get(k) != v for k, v in wanted.items()):
            continue
        if digest is None:
            digest = file_digest(path)
        if meta.get("source_digest") != digest.hex():
            continue
        try:
            return CacheStore(SQLiteURL(str(candidate)), platforms.platforms), digest
        except ConfigError as exc:
            logger.warning("authorization file %s: its cache %s does not open (%s); reading the file again",
                           path, candidate, exc.message)
    return None


def _meta_of(candidate: Path) -> dict[str, str] | None:
    try:
        if not candidate.is_file():
            return None
    except OSError:  # a cache directory this user may not look in (another user's ~/.cache): no cache there
        return None
    try:
        conn = sqlite3.connect(read_only_uri(candidate), uri=True)
    except sqlite3.Error:
        return None
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _writable(directory: Path) -> bool:
    """Whether a file can be created in ``directory`` (``os.access`` alone is wrong for root and some mounts)."""
    probe = directory / f".consentcrawl-probe-{os.getpid()}"
    try:
        probe.touch(exist_ok=False)
    except OSError:
        return False
    probe.unlink(missing_ok=True)
    return True


def build_cache(path: str, st: os.stat_result, records: Iterable[AuthorizationRecord | StagedRow],
                platforms: PlatformRegistry, digest: Any, *, tick: Any = None) -> CacheStore:
    """Import ``records`` (the file's, as they are read) into a new cache and open it.

    ``digest()`` gives the digest of the bytes read, once every record was. The cache goes beside the file when
    its directory is writable, else into the user's cache directory. Record errors (ConfigError) propagate."""
    wanted = _wanted(path, st, platforms)

    def meta() -> dict[str, str]:
        return {**wanted, "source_mtime_ns": str(st.st_mtime_ns), "source_digest": digest().hex()}

    beside, elsewhere = cache_paths(path)
    where = beside if _writable(beside.parent) else elsewhere
    try:
        build_store(str(where), _reading(records), platforms=platforms.platforms, meta=lambda: _reading_meta(meta),
                    tick=tick, wal=True)  # appended records are added while the crawl reads it (append_to_cache)
    except _FileUnread as exc:
        raise exc.error from None  # the file itself: the store says "cannot read file"
    except (OSError, sqlite3.Error) as exc:  # the cache: a full disk, a directory this user may not write
        raise CacheUnwritable(f"cannot write the cache of this file at {where}: {type(exc).__name__}: {exc}",
                              path) from None
    try:
        return CacheStore(SQLiteURL(str(where)), platforms.platforms)
    except ConfigError as exc:  # pragma: no cover - what was just built does not open: never answer from it
        raise StoreUnavailable(f"its cache {where} does not open: {exc.message}") from None


class CacheUnwritable(ConfigError):
    """The cache of a file could not be written (a full disk, a directory this user may not write): the file
    itself may be fine."""


class _FileUnread(Exception):
    """An OSError reading the authorization file while its cache was built: not the cache's (a full disk) error."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def _reading(records: Iterable[Any]) -> Iterator[Any]:
    try:
        yield from records
    except OSError as exc:
        raise _FileUnread(exc) from exc


def _reading_meta(meta: Callable[[], dict[str, str]]) -> dict[str, str]:
    try:
        return meta()  # it reads the rest of the file, for its digest
    except OSError as exc:
        raise _FileUnread(exc) from exc


def append_to_cache(cache: CacheStore, path: str, st: os.stat_result, records: Iterable[AuthorizationRecord],
                    platforms: PlatformRegistry, digest: bytes) -> int:
    """Add the records appended to the file (validated, naming their lines) to its cache, with the file's new size,
    time and ``digest`` in the same transaction, and make the cache answer from them now. Returns the number added.

    A duplicate of a record the cache holds is a ConfigError; any error leaves the cache as it was (the caller
    then reads the whole file, which says what is wrong)."""
    meta = {**_wanted(path, st, platforms), "source_mtime_ns": str(st.st_mtime_ns), "source_digest": digest.hex()}
    result = import_records(cache.url, records, platforms=platforms.platforms, meta=meta)
    cache.refresh_now()
    return result.imported
