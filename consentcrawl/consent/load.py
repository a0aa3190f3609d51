"""Load and validate authorization records (leg 3: each person's authorization to us) from YAML, CSV or JSONL.

Consent has to be demonstrable, so a record we cannot read exactly is worse than no record: a wrong date or a
misspelt purpose silently widens or narrows what may be collected about a person. Every mistake therefore stops
the crawl with a :class:`~consentcrawl.errors.ConfigError` naming the file and the line (for CSV, the line the
row starts on, the header being line 1).

Times: a date means midnight UTC; a date-time without an offset is read as UTC. All stored times are aware UTC.

A crawl opens the file as a :class:`FileStore` (:func:`load_authorizations`): checked strictly once at startup,
then followed while the crawl runs, so that a withdrawal added to the file applies within a fraction of a second.
Records are indexed by subject key (:mod:`consentcrawl.consent.keys`) and keep the subject as written. The file
is read as a stream (:func:`~consentcrawl.consent.formats.iter_records`); a file of more records than the cache
threshold is imported into an SQLite cache (:mod:`consentcrawl.consent.filecache`) instead of memory.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import ConfigError, RecordsError, StoreUnavailable, cannot_read, redact
from ..terms.platforms import PlatformRegistry
from .filecache import CacheStore, CacheUnwritable, append_to_cache, build_cache, open_fresh_cache
from .filerows import csv_header
from .formats import RECORD_FIELDS, _parse, _rows_of, config_words, iter_records, open_validator
from .progress import Progress
from .reading import Look, file_digest, look_at, open_hashed, settles_at, signature
from .records import AuthorizationRecord
from .store import MemoryStore, new_version

__all__ = ["CACHE_THRESHOLD", "CHECK_INTERVAL", "RECORD_FIELDS", "FileStore", "load_authorizations",
           "read_authorizations"]

logger = logging.getLogger(__name__)

#: seconds between two looks at the file (a lookup looks when this much time has passed since the last look)
CHECK_INTERVAL = 0.25
#: a file of more records than this is imported into an SQLite cache (CONSENTCRAWL_AUTHORIZATIONS_CACHE_THRESHOLD)
CACHE_THRESHOLD = 50_000
#: a changed file this much larger than the threshold's worth of bytes is read again in a thread of its own
_BACKGROUND_BYTES = 4 << 20
#: records appended to a cached JSONL or CSV file, up to this many bytes, are added to its cache while lookups wait
_APPEND_BYTES = 4 << 20


def load_authorizations(path: str | os.PathLike[str], platforms: PlatformRegistry, *,
                        interval: float = CHECK_INTERVAL, threshold: int | None = CACHE_THRESHOLD) -> FileStore:
    """Open a ``.yaml``/``.yml``, ``.csv`` or ``.jsonl`` file of authorization records as a live store.

    The file is read and checked now: any mistake is a ConfigError naming the file and line, and the crawl does
    not start. After that the store follows the file (see :class:`FileStore`). A file of more than ``threshold``
    records is read into an SQLite cache beside it (None: always in memory).
    """
    return FileStore(path, platforms, interval=interval, threshold=threshold)


def read_authorizations(path: str | os.PathLike[str], platforms: PlatformRegistry) -> MemoryStore:
    """Read authorization records from a ``.yaml``/``.yml``, ``.csv`` or ``.jsonl`` file once, into a MemoryStore.

    Records are checked against ``platforms`` (a subject on an unconfigured platform, or whose id does not match
    the platform's ``subject`` pattern, is an error). A withdrawal is a record of its own, never merged: history
    stays append-only.
    """
    _rows_of(str(path))  # an unsupported file type is named before the file is read
    return _parse(os.fspath(path), str(path), platforms)


# -- a file store follows its file --------------------------------------------------------------------------------


class FileStore:
    """A YAML, CSV or JSONL file of authorization records, followed while the crawl runs.

    The file is read as a stream. Up to ``threshold`` records are held in a :class:`MemoryStore`; a file of more
    is imported into an SQLite cache (:mod:`consentcrawl.consent.filecache`), reused while the file is unchanged,
    and lookups read the cache. After that, a lookup or a read of :attr:`version` looks at the file (``os.stat``)
    when ``interval`` seconds (default 0.25) have passed since the last look; when its device, inode, size or times
    changed and its bytes did too, the file is read again and, if it reads cleanly, its records replace the old
    ones and :attr:`version` changes. A withdrawal appended to the file (or a new file renamed over it) therefore
    applies within ``interval`` plus the time to read it, far inside the 2-second bound of live stores.

    Records appended to a cached JSONL or CSV file (its old bytes unchanged at its start) are added to the cache at once
    (:meth:`_append`): a withdrawal is usually appended, and lookups must not fail for the minutes a big file takes
    to import again. Otherwise, a file bigger than the threshold's worth of bytes is read again in a thread of its
    own, and lookups fail
    (:class:`~consentcrawl.errors.StoreUnavailable`, so decisions that need them deny) from the moment the change
    is seen until the new records are in: the old ones may hold a grant the change withdrew.

    A read that fails (the file deleted or unreadable, a syntax or validation error, a file caught half-written)
    makes every lookup raise :class:`~consentcrawl.errors.StoreUnavailable` until the file reads cleanly again:
    the records last read are not used, since the file that should hold them is broken (it may hold a withdrawal
    that cannot be read). The failure is logged once at ERROR with the full error; the exception's message names
    the file and the line but quotes no values (it goes into evidence, and values may be subject ids).

    Lookups are safe from several threads; one thread reads the file while the others wait for it.
    """

    def __init__(self, path: str | os.PathLike[str], platforms: PlatformRegistry, *,
                 interval: float = CHECK_INTERVAL, clock: Callable[[], float] = time.monotonic,
                 threshold: int | None = CACHE_THRESHOLD) -> None:
        self.path = os.fspath(path)
        self.source = str(path)
        self.platforms = platforms
        self.interval = interval
        self.threshold = threshold
        self._clock = clock
        self._lock = threading.Lock()
        _rows_of(self.source)  # an unsupported file type stops the crawl before the file is read
        started = time.time_ns()
        self.cache_builds = 0  #: caches built (not reused) since the store was opened
        self._backend: MemoryStore | CacheStore
        self._digest: bytes | None
        try:
            st = os.stat(self.path)
            #: the records, and the digest of the bytes they were read from
            self._backend, self._digest = self._read(st)
        except ConfigError as exc:  # its values are a person's data in the crawl's log (errors.RecordsError)
            raise RecordsError(exc.message, exc.source, exc.line, keep=config_words(platforms)) from None
        except OSError as exc:  # no such file, or one this user may not read
            raise ConfigError(cannot_read(exc, self.path), self.source) from exc
        self._length = st.st_size  #: the file's size when it was read (if it grew since, its digest differs)
        self._version: int = new_version()
        self._seen = signature(st)  #: the file as of the last look at its bytes
        #: until when the file may change without its signature changing (None: the digest covers every change)
        self._settles = settles_at(st, started)
        self.digests = 0  #: looks that read the whole file to tell whether its bytes changed
        self._bytes_per_record = st.st_size / max(len(self._backend), 1)
        self._error: str | None = None  #: why lookups fail, while they do
        self._os_error = False  #: the failure is the file system's (a missing file): look again every time
        self._reading: threading.Thread | None = None  #: a read in a thread of its own, while it runs
        self._next_check = self._clock() + interval
        self.reloads = 0  #: successful reloads since the store was opened
        self.appends = 0  #: appended records added to the cache (not a reload) since the store was opened

    # -- the protocol -------------------------------------------------------------------------------------------

    @property
    def version(self) -> Any:
        """Changes with each reload and when the store starts failing. Reading it looks at the file when
        ``interval`` has passed since the last look: a remembered decision is checked by its version alone, so the
        version must notice a change to the file without a lookup."""
        if self._clock() >= self._next_check:
            self._check()
        backend = self._backend
        if isinstance(backend, CacheStore):
            return (self._version, backend.version)
        return self._version

    def lookup(self, platform: str, subject: str) -> Sequence[AuthorizationRecord]:
        """All records of one person on one platform; raises StoreUnavailable while the file does not read."""
        if self._clock() >= self._next_check:
            self._check()
        error = self._error
        if error is not None:
            raise StoreUnavailable(error)
        backend = self._backend
        try:
            return backend.lookup(platform, subject)
        except StoreUnavailable:
            if isinstance(backend, CacheStore):
                self._rebuild(backend)
            raise

    def __iter__(self) -> Iterator[AuthorizationRecord]:
        """Every record of the last clean read, in file order (a cached file is read again for them)."""
        backend = self._backend
        if isinstance(backend, MemoryStore):
            return iter(backend)
        return iter_records(self.path, self.source, self.platforms, dedup=False)

    def __len__(self) -> int:
        return len(self._backend)

    @property
    def available(self) -> bool:
        return self._error is None

    @property
    def cached(self) -> CacheStore | None:
        """The SQLite cache the records are read from, when the file is over the threshold."""
        backend = self._backend
        return backend if isinstance(backend, CacheStore) else None

    def refresh_now(self) -> None:
        """Look at the file now, not when ``interval`` has passed since the last look (as ``SQLiteStore``'s): the
        purge on close asks who withdrew as the spider closes, and a withdrawal written in the last ``interval``
        would otherwise not be seen. A changed file read in a thread of its own (a big one) is not waited for here
        (until it is read, lookups fail): :meth:`wait_read` waits for it, in a thread of the caller's."""
        with self._lock:
            self._next_check = 0.0
        self._check()

    def wait_read(self) -> None:
        """Return once the file's read in a thread of its own, if one runs, is done. It blocks: call it in a thread
        (the purge on close does), not on the event loop, which would stand still for the whole read."""
        reading = self._reading
        if reading is not None:
            reading.join()

    def close(self) -> None:
        backend = self._backend
        if isinstance(backend, CacheStore):
            backend.close()

    # -- reading the file ---------------------------------------------------------------------------------------

    def _read(self, st: os.stat_result) -> tuple[MemoryStore | CacheStore, bytes]:
        """The file's records (in memory, or in its cache), and the digest of the bytes they were read from.
        Raises ConfigError (a record error, naming the line) or OSError."""
        if self.threshold is not None:
            fresh = open_fresh_cache(self.path, st, self.platforms)
            if fresh is not None:
                return fresh
        raw, buffered = open_hashed(self.path)
        try:
            validator = open_validator(self.source, self.platforms)
            records = validator.records(buffered)
            first = list(itertools.islice(records, self.threshold + 1 if self.threshold is not None else None))
            if self.threshold is None or len(first) <= self.threshold:
                raw.drain()
                return MemoryStore(first, source=self.source, platforms=self.platforms), raw.digest()
            validator.stage()  # from here on the cache's import takes rows, and finds the duplicates itself
            progress = Progress(f"importing {self.source} into its cache", st.st_size)

            def tick(count: int) -> None:
                progress.update(raw.position, count)

            def digest() -> bytes:
                raw.drain()
                return raw.digest()

            cache = build_cache(self.path, st, itertools.chain(first, records), self.platforms, digest, tick=tick)
            progress.finish(len(cache))
            self.cache_builds += 1
            logger.info("authorization file %s: %d records imported into its cache %s", self.source, len(cache),
                        cache.path)
            return cache, raw.digest()
        finally:
            raw.close()

    # -- following the file -------------------------------------------------------------------------------------

    def _check(self) -> None:
        with self._lock:
            if self._clock() < self._next_check:
                return  # another thread looked while this one waited for the lock
            try:
                self._look()
            finally:
                self._next_check = self._clock() + self.interval

    def _look(self) -> None:
        if self._reading is not None:
            return  # a read runs in its own thread; lookups fail until it is done
        started = time.time_ns()
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._fail(f"cannot be read ({exc.strerror or type(exc).__name__})",
                       f"cannot read file: {exc.strerror or exc}", os_error=True)
            return
        seen = signature(st)
        if seen == self._seen and not self._os_error and not self._must_read(st, started):
            return  # unchanged since its bytes were last read
        appendable = isinstance(self._backend, CacheStore) and self.source.lower().endswith((".jsonl", ".csv"))
        try:
            look = look_at(self.path, self._length, _APPEND_BYTES) if appendable else None
            digest = look.digest if look is not None else file_digest(self.path)
        except OSError as exc:
            self._fail(f"cannot be read ({exc.strerror or type(exc).__name__})",
                       f"cannot read file: {exc.strerror or exc}", os_error=True)
            return
        self.digests += 1
        self._seen, self._settles = seen, settles_at(st, started)
        if digest == self._digest and not self._os_error:
            return  # the same bytes as last read (touched, copied over with the same content, a racy look)
        if look is not None and self._append(st, look):
            return
        self._digest = digest  # these bytes are not parsed again: they either read cleanly or fail below
        big = self.threshold is not None and st.st_size > max(
            self.threshold * self._bytes_per_record, _BACKGROUND_BYTES)
        if big or isinstance(self._backend, CacheStore):
            self._fail("changed and is being read again", "changed", os_error=False, quiet=True)
            self._reading = threading.Thread(target=self._reload, args=(st,), name="consentcrawl-file-store",
                                             daemon=True)
            self._reading.start()
            return
        self._reload(st)

    def _must_read(self, st: os.stat_result, now: int) -> bool:
        """Whether a look must read the file's bytes although its signature did not change: its last read came
        within a tick of its clock after a write (:func:`~consentcrawl.consent.reading.settles_at`), so another write
        in that tick would not show. The bytes are read once the tick is over (once per change, not on every look:
        a big file takes seconds to hash, lookups waiting); a file whose times are whole seconds, on every look
        until then too, so that such a change is still seen within the 2-second bound."""
        settles = self._settles
        if settles is None:
            return False
        return now >= settles or st.st_mtime_ns % 1_000_000_000 == 0

    def _append(self, st: os.stat_result, look: Look) -> bool:
        """Add the records appended to a cached JSONL or CSV file to its cache, if that is what the change is: the
        bytes last read unchanged at its start, ending a line, followed by whole lines (a CSV file's rows are read
        under the header at its start, which those bytes hold). True when they were added (the
        lookups then answer from them: the caller holds the lock, so none answered meanwhile); False for any other
        change, or an appended part that does not read cleanly (the whole file is then read again, and says what
        is wrong)."""
        cache = self._backend
        if (not isinstance(cache, CacheStore) or self._error is not None or look.tail is None
                or look.prefix_digest != self._digest or not look.prefix_ends_line or not look.tail.endswith(b"\n")):
            return False
        header = csv_header(look.head) if self.source.lower().endswith(".csv") else None
        if header is None and self.source.lower().endswith(".csv"):
            return False
        try:
            validator = open_validator(self.source, self.platforms)
            records = list(validator.records(io.BytesIO(look.tail), line=look.prefix_lines + 1, offset=self._length,
                                             header=header))
            added = append_to_cache(cache, self.path, st, records, self.platforms, look.digest)
        except (ConfigError, OSError, sqlite3.Error) as exc:
            logger.info("authorization file %s: the appended records could not be added to its cache (%s); "
                        "reading the whole file", self.source, type(exc).__name__)
            return False
        self._digest, self._length = look.digest, look.length
        self._bytes_per_record = st.st_size / max(len(cache), 1)
        self._version = new_version()
        self.appends += 1
        logger.info("authorization file %s: %d appended record(s) added to its cache", self.source, added)
        return True

    def _rebuild(self, broken: CacheStore) -> None:
        """The cache failed (damaged, removed, replaced): build it again from the file, in a thread of its own;
        lookups fail until it is done."""
        with self._lock:
            if self._reading is not None or self._backend is not broken:
                return
            try:
                st = os.stat(self.path)
            except OSError:
                return  # the next look at the file fails the store
            broken.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    os.unlink(f"{broken.path}{suffix}")
            self._fail("has a cache that cannot be read; it is being built again", "cache failed", os_error=False,
                       quiet=True)
            self._reading = threading.Thread(target=self._reload, args=(st,), name="consentcrawl-file-store",
                                             daemon=True)
            self._reading.start()

    def _reload(self, st: os.stat_result) -> None:
        try:
            try:
                backend, digest = self._read(st)
            except ConfigError as exc:
                where = f", line {exc.line}" if exc.line is not None else ""
                what = "cannot be cached" if isinstance(exc, CacheUnwritable) else f"does not read cleanly{where}"
                self._fail(f"{what}: {redact(exc.message)}", str(exc), os_error=False)
                return
            except OSError as exc:
                self._fail(f"cannot be read ({exc.strerror or type(exc).__name__})",
                           f"cannot read file: {exc.strerror or exc}", os_error=True)
                return
            except Exception as exc:  # noqa: BLE001 - a bug or a resource limit: the old records must not be used
                self._fail(f"could not be read ({type(exc).__name__})", repr(exc), os_error=False)
                return
            old, self._backend = self._backend, backend  # the records first, then the version
            self._digest, self._length = digest, st.st_size
            self._bytes_per_record = st.st_size / max(len(backend), 1)
            self._version = new_version()
            self.reloads += 1
            if old is not backend and isinstance(old, CacheStore):
                old.close()
            if self._error is not None:
                if self._error.endswith(("is being read again", "is being built again")):
                    logger.info("authorization file %s read again (%d records): lookups answer again",
                                self.source, len(backend))
                else:
                    logger.warning("authorization file %s reads cleanly again (%d records): lookups answer again",
                                   self.source, len(backend))
                self._error, self._os_error = None, False
        finally:
            self._reading = None

    def _fail(self, why: str, detail: str, *, os_error: bool, quiet: bool = False) -> None:
        was = self._error
        self._error = f"authorization file {self.source} {why}"  # before the version changes
        self._os_error = os_error
        if os_error:
            self._digest = None  # whatever comes back is read and checked again
        if was is None or quiet:
            self._version = new_version()
        if quiet:
            logger.info("%s; lookups fail (decisions that need them deny) until it is read", self._error)
        elif was is None or was.endswith(("is being read again", "is being built again")):
            # the ERROR line names the cause without the record's values (a withdrawal's free text can name the
            # person); the full message, values included, is for DEBUG only
            logger.error("%s; every lookup fails (decisions that need it deny) until it reads cleanly again",
                         self._error)
            logger.debug("authorization file %s: %s", self.source, detail)
