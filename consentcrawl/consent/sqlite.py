"""Authorization records in SQLite: ``CONSENTCRAWL_AUTHORIZATIONS = "sqlite:///authorizations.db"``.

A YAML, CSV or JSONL file is read whole into memory, which stops scaling somewhere around a million people. This
store keeps the records on disk and answers :meth:`SQLiteStore.lookup` at close to in-memory speed:

- An indexed point read through Python's ``sqlite3`` costs more than a whole decision may, so lookups go through
  an in-process LRU of the keys already answered (a crawl decides the same person many times) and a Bloom filter
  of every (platform, subject key) in the store, which answers "no record" for people who never authorized us
  without touching SQLite (the rare false positive then asks SQLite).
- The records' table, its keys and the Bloom filter are described in :mod:`consentcrawl.consent.sqlite_format`;
  following the file on disk (its header, pages and write-ahead log) is :mod:`consentcrawl.consent.sqlite_files`.
- One read transaction is kept open (starting one per query costs file-lock system calls) and renewed at most
  every ``refresh`` seconds (default 1, at most 2) on the next lookup or read of the version; when another
  connection has committed in the meantime (``PRAGMA data_version``), the LRU is replaced and the Bloom filter
  reloaded. A withdrawal imported while a crawl runs therefore applies within about a second. The file is in WAL
  mode, so readers never block an import.
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

Damage: SQLite reads some damaged pages (a cell lost from a leaf) as valid, so a lookup could find a grant without
its withdrawal. Every row holds its person's row count (:mod:`~consentcrawl.consent.sqlite_format`); a lookup
finding another number, a row it cannot read, or a malformed page fails the store as below, ``is damaged``
(:class:`~consentcrawl.errors.StoreDamaged`), as does a malformed page met as the store opens or reloads (its meta or
Bloom filter: raised by the next lookup, so that it is counted). ``PRAGMA cell_size_check`` is on.

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
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, StoreDamaged, StoreUnavailable
from .keys import casefold_key, platform_names, platform_objects
from .records import AuthorizationRecord
from .sqlite_files import (
    FileState,
    check_header,
    check_log_is_not_the_old_stores,
    check_pages,
    damage,
    file_state,
    is_busy,
    is_corrupt,
    read_only_uri,
    wal_salts,
    wal_state,
)
from .sqlite_format import (
    SELECT,
    SELECT_UNCOUNTED,
    SLOTS,
    VERSION,
    Bloom,
    Contents,
    RowReader,
    SQLiteURL,
    base_id,
    key_hashes,
    parse_sqlite_url,
    read_contents,
)
from .store import new_version

__all__ = ["SQLiteStore", "parse_sqlite_url"]

logger = logging.getLogger(__name__)

PAGE_CACHE_KIB = 16_384


class SQLiteStore:
    """The authorization store for ``sqlite:///`` URLs (see the module doc).

    Its ``lookup`` is synchronous, and stays so behind :func:`~consentcrawl.consent.adapt.as_async_store`: most
    lookups are answered by the LRU or the Bloom filter without touching SQLite, and the rest are a point read of a
    local file, shorter than handing the call to a worker thread and waking the event loop for its answer.

    ``platforms`` is the configured ``PlatformRegistry``, its mapping of name to platform (each platform's
    subject key rule then comes from its configuration), or just the names (the rule recorded in the store).
    """

    _select = SELECT  #: the query of one person's range of rows
    _select_uncounted = SELECT_UNCOUNTED  #: the same in a store without ``person_rows`` (format 1 or 2)

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
        #: damage found outside a lookup (as the store reopened or reloaded), for the next lookup to raise
        self._unreported: StoreDamaged | None = None
        self._closed = False
        self._failed_at: tuple[FileState | None, Any] | None = None  #: the files when it broke (None: look again)
        self._file: FileState | None = None  #: the main file as of the last (re)open
        self._wal_salts: tuple[int, int] | None = None  #: the log last seen paired with that file, if it had frames
        self._data_version = 0
        self._warned: set[str] = set()  #: the format versions warned about
        self._rows = RowReader(self.source)
        self.records = 0
        self.keys = 0
        self.queries = 0  #: SQLite queries made by lookups
        self.bloom_rejects = 0  #: lookups the Bloom filter answered (no record) without SQLite
        self.bloom: Bloom | None = None
        self._contents = Contents(None, 0, 0, {}, None)
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
        """Changes with every reopen, every commit seen (``PRAGMA data_version``) and every failure or recovery.

        Reading it renews the read snapshot when ``refresh`` seconds have passed, as a lookup does: a remembered
        decision is checked by its version alone, so the version must notice a commit without a lookup."""
        if self._clock() >= self._next_refresh:
            self._refresh()
        return self._version

    def lookup(self, platform: str, subject: str) -> Sequence[AuthorizationRecord]:
        """All records of one person on one platform; raises StoreUnavailable when the store cannot answer."""
        if self._clock() >= self._next_refresh:
            self._refresh()
        if self._broken is not None:
            with self._lock:  # damage met as the store reopened or reloaded is raised (and counted) once
                damaged, self._unreported = self._unreported, None
            raise damaged or StoreUnavailable(self._broken)
        return self._cached(platform, subject)  # type: ignore[no-any-return]

    def refresh_now(self) -> None:
        """Renew the read snapshot now, not at the next ``refresh``: a writer in this process just committed."""
        with self._lock:
            self._next_refresh = 0.0
        self._refresh()

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

    def _new_cache(self, contents: Contents) -> Any:
        """A new LRU over lookups in ``contents``: a lookup that was running when the store changed files its
        answer in the old LRU, which nothing reads any more, so no answer outlives a change."""
        return functools.lru_cache(maxsize=self.url.cache)(functools.partial(self._fetch, contents))

    def _fetch(self, contents: Contents, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
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
        select = self._select if contents.counted else self._select_uncounted
        with self._lock:
            conn = self._conn
            if conn is None or self._broken is not None:
                raise StoreUnavailable(self._broken or f"authorization store {self.source} is closed")
            self.queries += 1
            try:
                rows = [row for first in dict.fromkeys(bases)
                        for row in conn.execute(select, (first, first + SLOTS)).fetchall()]
            except sqlite3.Error as exc:
                if is_corrupt(exc):
                    raise self._damaged(f"{type(exc).__name__}: {exc}") from exc
                why = self._fail(f"failed: {type(exc).__name__}: {exc}", transient=is_busy(exc))
                raise StoreUnavailable(why) from exc
        mine = [row for row in rows if row[1] == platform and keyfn(row[2]) == key]
        if contents.counted and any(row[11] != len(mine) for row in mine):
            wrote = " or ".join(sorted({str(row[11]) for row in mine}))
            raise self._damaged(f"{len(mine)} record{'s' if len(mine) != 1 else ''} of a person where the store "
                                f"wrote {wrote} (rows from {bases[0]}): a row was lost or changed below SQLite")
        try:
            return tuple(self._record(row) for row in mine)
        except Exception as exc:  # a time or a field list that does not parse: the row is damaged
            raise self._damaged(f"a row from {bases[0]} cannot be read: {type(exc).__name__}: {exc}") from exc

    def _damaged(self, why: str) -> StoreDamaged:
        """Fail the store (every answer of a damaged file is suspect) and give the error for this lookup."""
        return StoreDamaged(self._fail(damage(why), transient=False))

    def _record(self, row: tuple[Any, ...]) -> AuthorizationRecord:
        return self._rows(row)

    # -- following the file -------------------------------------------------------------------------------------

    def _open(self) -> None:
        """(Re)connect: check the file, the format and platforms, load the Bloom filter, start the read
        transaction. Raises StoreUnavailable, leaving the store without a connection."""
        self._close_connection()  # first: never a connection to the old file next to one to its replacement
        path = Path(self.path)
        try:
            st = os.stat(path)
        except FileNotFoundError:  # sqlite:///home/me/x.db: say where a relative path is
            raise StoreUnavailable(f"no such file {str(path)!r}{self.url.where}") from None
        except OSError as exc:
            raise StoreUnavailable(f"cannot be opened: {exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise StoreUnavailable(f"no such file {str(path)!r} (not a regular file)")
        file = file_state(st)
        if self._file is not None and file[:2] != self._file[:2]:
            check_log_is_not_the_old_stores(self.path, self._wal_salts)
        check_header(path)
        try:
            conn = sqlite3.connect(read_only_uri(path), uri=True, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot be opened: {exc}") from None
        try:
            conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
            conn.execute("PRAGMA mmap_size=0")
            conn.execute("PRAGMA cell_size_check=ON")
            conn.execute("BEGIN")
            contents = self._read_contents(conn)
            check_pages(conn, path, st.st_size)
            data_version = conn.execute("PRAGMA data_version").fetchone()[0]
        except StoreUnavailable:
            conn.close()
            raise
        except Exception as exc:  # noqa: BLE001 - sqlite3 errors, and garbage in meta or the Bloom filter
            conn.close()
            if is_corrupt(exc):  # a malformed page of its meta, Bloom filter or schema: named as a lookup's is
                raise StoreDamaged(damage(f"{type(exc).__name__}: {exc} (met as it was opened)")) from None
            raise StoreUnavailable(f"cannot be read: {type(exc).__name__}: {exc}") from None
        self._conn = conn
        self._file = file
        self._wal_salts = wal_salts(self.path)
        self._data_version = data_version
        self._install(contents)

    def _read_contents(self, conn: sqlite3.Connection) -> Contents:
        contents = read_contents(conn, self._configured, self._objects)
        if contents.legacy is not None and "1" not in self._warned:
            self._warned.add("1")
            logger.warning("authorization store %s has format version 1 (subjects indexed as written): it is read "
                           "as it is, at the cost of a scan when it is opened; import a file into it (one with no "
                           "records will do) to upgrade it to version %s", self.source, VERSION)
        if not contents.counted and "uncounted" not in self._warned:
            self._warned.add("uncounted")
            logger.warning("authorization store %s holds no count of each person's rows (format < %s): a lost "
                           "row goes unnoticed; import a file of no records into it", self.source, VERSION)
        return contents

    def _install(self, contents: Contents) -> None:
        """Answer from ``contents`` from now on: a new LRU and a new version (the caller holds the lock)."""
        self._contents = contents
        self.records, self.keys, self.bloom = contents.records, contents.keys, contents.bloom
        self._cached = self._new_cache(contents)
        self._version = new_version()
        if self._broken is not None:
            logger.warning("authorization store %s answers again", self.source)
            self._broken, self._failed_at, self._unreported = None, None, None

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
                check_header(Path(self.path))  # an overwrite within the granularity of the file's times
                conn.execute("COMMIT")
                conn.execute("BEGIN")
                data_version = conn.execute("PRAGMA data_version").fetchone()[0]
                if data_version != self._data_version:
                    contents = self._read_contents(conn)
                    self._data_version = data_version
                    self._install(contents)
                self._wal_salts = wal_salts(self.path)
            except StoreUnavailable as exc:
                self._fail(str(exc), transient=False)
            except sqlite3.Error as exc:
                if is_corrupt(exc):
                    self._unreported = self._damaged(f"{type(exc).__name__}: {exc} (met as its meta and Bloom filter "
                                                     f"were read again)")
                else:
                    self._fail(f"failed: {type(exc).__name__}: {exc}", transient=is_busy(exc))
            except Exception as exc:  # noqa: BLE001 - garbage in meta or the Bloom filter: answers are suspect
                self._fail(f"failed: {type(exc).__name__}: {exc}", transient=False)

    def _reopen(self) -> None:
        try:
            self._open()
        except StoreDamaged as exc:
            self._fail(str(exc), transient=False)
            self._unreported = StoreDamaged(self._broken or str(exc))
        except StoreUnavailable as exc:
            self._fail(str(exc), transient=False)
        except Exception as exc:  # noqa: BLE001 - never keep answering after a reopen that did not finish
            self._fail(f"failed: {type(exc).__name__}: {exc}", transient=False)

    def _here(self) -> tuple[FileState, Any]:
        """The main file and its log as they are now; raises OSError when the main file cannot be looked at."""
        return file_state(os.stat(self.path)), wal_state(self.path)

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


def __getattr__(name: str) -> Any:
    """The writing side lives in :mod:`consentcrawl.consent.sqlite_write`; its names are still importable here."""
    if name in ("ImportResult", "bulk_build", "import_records"):
        from . import sqlite_write

        return getattr(sqlite_write, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
