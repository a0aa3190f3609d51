"""Load and validate authorization records (leg 3: each person's authorization to us) from YAML, CSV or JSONL.

Consent has to be demonstrable, so a record we cannot read exactly is worse than no record: a wrong date or a
misspelt purpose silently widens or narrows what may be collected about a person. Every mistake therefore stops
the crawl with a :class:`~consentcrawl.errors.ConfigError` naming the file and the line (for CSV, the line the
row starts on, the header being line 1).

Times: a date means midnight UTC; a date-time without an offset is read as UTC. All stored times are aware UTC.

A crawl opens the file as a :class:`FileStore` (:func:`load_authorizations`): checked strictly once at startup,
then followed while the crawl runs, so that a withdrawal added to the file applies within a fraction of a second.
Records are indexed by subject key (:mod:`consentcrawl.consent.keys`) and keep the subject as written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import ConfigError, StoreUnavailable
from ..terms.platforms import PlatformRegistry
from ..yamlsource import decode_text, read_text
from .formats import RECORD_FIELDS, _parse, _rows_of
from .records import AuthorizationRecord
from .store import MemoryStore, new_version

__all__ = ["CHECK_INTERVAL", "RECORD_FIELDS", "FileStore", "load_authorizations", "read_authorizations"]

logger = logging.getLogger(__name__)

#: seconds between two looks at the file (a lookup looks when this much time has passed since the last look)
CHECK_INTERVAL = 0.25
#: a file modified less than this long before it was read may change again without its size or times changing
#: (file times have a granularity: ext4 takes them from a clock that ticks every few ms, HFS+ every second); such
#: a file is read again, and compared byte for byte, until it has been quiet this long
_RACY_NS = 2_000_000_000


def load_authorizations(path: str | os.PathLike[str], platforms: PlatformRegistry, *,
                        interval: float = CHECK_INTERVAL) -> FileStore:
    """Open a ``.yaml``/``.yml``, ``.csv`` or ``.jsonl`` file of authorization records as a live store.

    The file is read and checked now: any mistake is a ConfigError naming the file and line, and the crawl does
    not start. After that the store follows the file (see :class:`FileStore`).
    """
    return FileStore(path, platforms, interval=interval)


def read_authorizations(path: str | os.PathLike[str], platforms: PlatformRegistry) -> MemoryStore:
    """Read authorization records from a ``.yaml``/``.yml``, ``.csv`` or ``.jsonl`` file once, into a MemoryStore.

    Records are checked against ``platforms`` (a subject on an unconfigured platform, or whose id does not match
    the platform's ``subject`` pattern, is an error). A withdrawal is a record of its own, never merged: history
    stays append-only.
    """
    _rows_of(str(path))  # an unsupported file type is named before the file is read
    return _parse(read_text(os.fspath(path)), str(path), platforms)


# -- a file store follows its file --------------------------------------------------------------------------------

_Signature = tuple[int, int, int, int, int]


def _signature(st: os.stat_result) -> _Signature:
    """What changes when a file is written in place or another file is renamed over it."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileStore:
    """A YAML, CSV or JSONL file of authorization records, followed while the crawl runs.

    The file is read whole into a :class:`MemoryStore`. After that, a lookup or a read of :attr:`version` looks at
    the file (``os.stat``) when ``interval`` seconds (default 0.25) have passed since the last look; when its
    device, inode, size or times changed, the file is read again and, if it reads cleanly, its records replace the
    old ones and :attr:`version` changes. A withdrawal appended to the file (or a new file renamed over it)
    therefore applies within ``interval`` plus the time to read it, far inside the 2-second bound of live stores.

    A read that fails (the file deleted or unreadable, a syntax or validation error, a file caught half-written)
    makes every lookup raise :class:`~consentcrawl.errors.StoreUnavailable` until the file reads cleanly again:
    the records last read are not used, since the file that should hold them is broken (it may hold a withdrawal
    that cannot be read). The failure is logged once at ERROR with the full error; the exception's message names
    the file and the line but quotes no values (it goes into evidence, and values may be subject ids).

    Lookups are safe from several threads; one thread reads the file while the others wait for it.
    """

    def __init__(self, path: str | os.PathLike[str], platforms: PlatformRegistry, *,
                 interval: float = CHECK_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = os.fspath(path)
        self.source = str(path)
        self.platforms = platforms
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        _rows_of(self.source)  # an unsupported file type stops the crawl before the file is read
        try:
            st = os.stat(self.path)
            data = Path(self.path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read file: {exc.strerror or exc}", self.source) from exc
        self._memory = _parse(decode_text(data, self.source), self.source, platforms)
        self._version: int = self._memory.version
        self._seen = _signature(st)  #: the file as of the last read
        self._digest: bytes | None = _digest(data)  #: its bytes as of the last read (None: not read)
        self._racy = _is_racy(st)
        self._error: str | None = None  #: why lookups fail, while they do
        self._os_error = False  #: the failure is the file system's (a missing file): look again every time
        self._next_check = self._clock() + interval
        self.reloads = 0  #: successful reloads since the store was opened

    # -- the protocol -------------------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Changes with each reload and when the store starts failing. Reading it looks at the file when
        ``interval`` has passed since the last look: a remembered decision is checked by its version alone, so the
        version must notice a change to the file without a lookup."""
        if self._clock() >= self._next_check:
            self._check()
        return self._version

    def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        """All records of one person on one platform; raises StoreUnavailable while the file does not read."""
        if self._clock() >= self._next_check:
            self._check()
        error = self._error
        if error is not None:
            raise StoreUnavailable(error)
        return self._memory.lookup(platform, subject)

    def __iter__(self) -> Iterator[AuthorizationRecord]:
        """Every record of the last clean read, in file order."""
        return iter(self._memory)

    def __len__(self) -> int:
        return len(self._memory)

    @property
    def available(self) -> bool:
        return self._error is None

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
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._fail(f"cannot be read ({exc.strerror or type(exc).__name__})",
                       f"cannot read file: {exc.strerror or exc}", os_error=True)
            return
        signature = _signature(st)
        if signature == self._seen and not self._racy and not self._os_error:
            return  # unchanged since it was last read
        try:
            data = Path(self.path).read_bytes()
        except OSError as exc:
            self._fail(f"cannot be read ({exc.strerror or type(exc).__name__})",
                       f"cannot read file: {exc.strerror or exc}", os_error=True)
            return
        digest = _digest(data)
        self._seen, self._racy = signature, _is_racy(st)
        if digest == self._digest and not self._os_error:
            return  # the same bytes as last read (touched, copied over with the same content, a racy look)
        self._digest = digest  # these bytes are not parsed again: they either read cleanly or fail below
        try:
            memory = _parse(decode_text(data, self.source), self.source, self.platforms)
        except ConfigError as exc:
            where = f", line {exc.line}" if exc.line is not None else ""
            self._fail(f"does not read cleanly{where}: {_redact(exc.message)}", str(exc), os_error=False)
            return
        except Exception as exc:  # noqa: BLE001 - a bug or a resource limit: the old records must not be used
            self._fail(f"could not be read ({type(exc).__name__})", repr(exc), os_error=False)
            return
        self._memory = memory  # the records first, then the version: a version never names older records
        self._version = memory.version
        self.reloads += 1
        if self._error is not None:
            logger.warning("authorization file %s reads cleanly again (%d records): lookups answer again",
                           self.source, len(memory))
            self._error, self._os_error = None, False

    def _fail(self, why: str, detail: str, *, os_error: bool) -> None:
        was = self._error
        self._error = f"authorization file {self.source} {why}"  # before the version changes
        self._os_error = os_error
        if os_error:
            self._digest = None  # whatever comes back is read and checked again
        if was is None:
            self._version = new_version()
            # the ERROR line names the cause without the record's values (a withdrawal's free text can name the
            # person); the full message, values included, is for DEBUG only
            logger.error("%s; every lookup fails (decisions that need it deny) until it reads cleanly again",
                         self._error)
            logger.debug("authorization file %s: %s", self.source, detail)


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _is_racy(st: os.stat_result) -> bool:
    return time.time_ns() - st.st_mtime_ns < _RACY_NS


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def _redact(message: str) -> str:
    """An error message without the values it quotes (they may be subject ids or evidence): ``'…'``."""
    return _QUOTED.sub("'…'", message)
