"""What the remote stores (the HTTP consent API, Redis) share: records as JSON, and a cache kept honest by a feed.

A remote store answers a lookup over the network and remembers the answer in a bounded LRU keyed by (platform,
subject key). What keeps a remembered answer true is the store's *change feed*, followed by a background task on
the crawl's event loop (:class:`FeedStore`):

- every change the feed reports drops the answers it names (or all of them, for a reset) and changes
  :attr:`FeedStore.version`, so a decision remembered at the old version is taken again;
- each time the feed answers, the cache is *confirmed*; when it has not been confirmed for ``stale_after`` seconds
  (the feed fails, hangs, or its task is not running) or the feed fails, the store is unavailable: every lookup
  raises :class:`~consentcrawl.errors.StoreUnavailable` with the cause (``error.store-unavailable``), the cache is
  dropped and the version changes. When the feed answers again, the store recovers (a new version again);
- an answer that was on its way while the feed dropped it is not remembered (a generation count), so the cache
  never keeps what a change took back.

The feed task and the network clients belong to the event loop they were started on: a store asked from another
loop (``consentcrawl check`` runs one per command) starts afresh there, unconfirmed, with an empty cache.

Records travel as JSON objects with the fields of the YAML format (:data:`~consentcrawl.consent.formats.RECORD_FIELDS`),
validated by the same reader as a file's records (:func:`records_from_json`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from ..errors import ConfigError, StoreUnavailable, redact
from ..tasks import stop_task
from ..terms.platforms import PlatformRegistry
from .filerows import wrap
from .formats import _RecordReader
from .keys import KeyFunction, casefold_key, key_function
from .records import AuthorizationRecord
from .store import new_version

__all__ = ["FeedStore", "record_to_json", "records_from_json"]

logger = logging.getLogger(__name__)

CACHE_SIZE = 100_000  #: answers a remote store remembers (people, not records)
MIN_POLL = 0.02  #: the shortest poll interval accepted (0 would spin)


def record_to_json(record: AuthorizationRecord) -> dict[str, Any]:
    """A record as a JSON object with the YAML format's fields (absent optional fields left out)."""
    out: dict[str, Any] = {"platform": record.platform, "subject": record.subject,
                           "purposes": sorted(record.purposes), "granted_at": _iso(record.granted_at)}
    if record.expires_at is not None:
        out["expires_at"] = _iso(record.expires_at)
    if record.revoked_at is not None:
        out["revoked_at"] = _iso(record.revoked_at)
    out["evidence"] = record.evidence
    if record.fields is not None:
        out["fields"] = sorted(record.fields)
    if record.record_id:
        out["record_id"] = record.record_id
    if record.jurisdiction:
        out["jurisdiction"] = record.jurisdiction
    return out


def _iso(moment: Any) -> str:
    return str(moment.isoformat().replace("+00:00", "Z"))


def records_from_json(items: Any, source: str, platforms: PlatformRegistry, platform: str,
                      key: str) -> tuple[AuthorizationRecord, ...]:
    """Validate the records one lookup of (``platform``, subject ``key``) was answered with, as a file's records
    are validated; each must be of that person. Anything else raises StoreUnavailable: an answer we cannot read
    exactly is not an answer (the message quotes no values)."""
    if not isinstance(items, list):
        raise StoreUnavailable(f"authorization store {source} answered with 'records' that is not a list")
    reader = _RecordReader(source, platforms)
    keyfn = key_function(platforms.get(platform))
    records = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise StoreUnavailable(f"authorization store {source} answered with record {number} not an object")
        try:
            fields = {name: wrap(value, number) for name, value in item.items()}
            record = reader.record(number, fields, dict.fromkeys(fields, number))
        except ConfigError as exc:
            raise StoreUnavailable(f"authorization store {source} answered with record {number} that does not "
                                   f"read cleanly: {redact(exc.message)}") from None
        if record.platform != platform or keyfn(record.subject) != key:
            raise StoreUnavailable(f"authorization store {source} answered with record {number} of another "
                                   "person than the one asked for")
        where = f"record_id {record.record_id}" if record.record_id else f"record {number} of the answer"
        records.append(dataclasses.replace(record, source=f"{source} ({where})"))
    return tuple(records)


class FeedStore:
    """The cache, the feed task and the version of a remote store (see the module doc). A subclass gives
    :meth:`_fetch` (one lookup over the network), :meth:`_follow` (one round of the change feed: returns when
    the feed answered, raising when it failed; calls :meth:`_changed`), :meth:`_start` and :meth:`_stop` (its
    clients on the current loop)."""

    #: seconds without a confirmation after which answers are not trusted (the store's bound, minus a margin)
    stale_after: float = 1.5

    def __init__(self, source: str, platforms: PlatformRegistry, *, cache_size: int = CACHE_SIZE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.platforms = platforms
        self.cache_size = cache_size
        self._clock = clock
        self._keys: dict[str, KeyFunction] = {}
        self._cache: OrderedDict[tuple[str, str], tuple[AuthorizationRecord, ...]] = OrderedDict()
        self._identity = new_version()
        self._generation = 0
        self._error: str | None = None  #: why lookups fail, while they do
        self._confirmed_at: float | None = None  #: when the feed last answered (None: not since it started)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Event | None = None  #: set once the feed answered or failed for the first time
        self._closed = False
        self.lookups = 0  #: lookups that went over the network
        self.hits = 0  #: lookups the cache answered

    # -- the protocol -------------------------------------------------------------------------------------------

    @property
    def version(self) -> Hashable:
        """Changes with every change the feed reports, every failure and every recovery; never waits."""
        self._check_fresh()
        return (self._identity, self._generation)

    async def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        if self._closed:
            raise StoreUnavailable(f"authorization store {self.source} is closed")
        await self._ensure_started()
        self._check_fresh()
        if self._error is not None:
            raise StoreUnavailable(self._error)
        key = self.key(platform, subject)
        cached = self._cache.get((platform, key))
        if cached is not None:
            self._cache.move_to_end((platform, key))
            self.hits += 1
            return cached
        generation = self._generation
        self.lookups += 1
        answer = await self._fetch(platform, key)
        if generation == self._generation and self._error is None:
            self._cache[(platform, key)] = answer
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return answer

    def key(self, platform: str, subject: str) -> str:
        function = self._keys.get(platform)
        if function is None:
            known = self.platforms.get(platform)
            function = self._keys[platform] = key_function(known) if known is not None else casefold_key
        return function(subject)

    @property
    def available(self) -> bool:
        return self._error is None and self._confirmed_at is not None

    async def aclose(self) -> None:
        """Stop following the feed and close the clients (at the end of a crawl)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            if self._loop is asyncio.get_running_loop():
                await stop_task(task, f"the change feed of {self.source}")
            else:
                task.cancel()
        if self._loop is asyncio.get_running_loop():
            await self._stop()
        self._loop = None

    # -- for subclasses -----------------------------------------------------------------------------------------

    async def _fetch(self, platform: str, key: str) -> tuple[AuthorizationRecord, ...]:
        raise NotImplementedError

    async def _follow(self) -> None:
        raise NotImplementedError

    def _start(self) -> None:
        """Open the clients on the running loop, without waiting (the feed starts from scratch)."""

    async def _stop(self) -> None:
        """Close the clients of the loop they were opened on."""

    def _changed(self, keys: Iterable[tuple[str, str]] | None) -> None:
        """The feed reported changes to these (platform, subject) pairs, or to anything (None: a reset)."""
        if keys is None:
            self._cache.clear()
        else:
            for platform, subject in keys:
                self._cache.pop((platform, self.key(platform, subject)), None)
        self._generation += 1

    # -- following the feed -------------------------------------------------------------------------------------

    async def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            if self._loop is not loop:
                old = self._task
                if old is not None and not old.done():
                    with contextlib.suppress(RuntimeError):  # its loop is closed: nothing runs it any more
                        old.get_loop().call_soon_threadsafe(old.cancel)
                self._loop = loop
                self._confirmed_at = None
                self._cache.clear()
                self._generation += 1
                self._start()
            self._first = asyncio.Event()
            self._task = loop.create_task(self._run(self._first), name=f"consentcrawl feed {self.source}")
        if self._confirmed_at is None and self._first is not None:
            await self._first.wait()  # the feed's starting point comes before the first answer

    async def _run(self, first: asyncio.Event) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as exc:
                self._fail(str(exc))
            except Exception as exc:  # noqa: BLE001 - whatever stops the feed stops the answers
                self._fail(f"authorization store {self.source} change feed failed: {type(exc).__name__}: {exc}")
            else:
                self._confirm()
                first.set()
                await asyncio.sleep(self._pause())
                continue
            first.set()
            await asyncio.sleep(max(self._pause(), 0.1))

    def _pause(self) -> float:
        """Seconds between two rounds of the feed (a feed that blocks until it has news needs none)."""
        return 0.0

    def _confirm(self) -> None:
        self._confirmed_at = self._clock()
        if self._error is not None:
            self._error = None
            self._cache.clear()  # what changed while it could not tell us is unknown
            self._generation += 1
            logger.warning("authorization store %s answers again", self.source)

    def _fail(self, message: str) -> None:
        self._cache.clear()
        if self._error is None:
            self._error = message
            self._generation += 1
            logger.error("%s; every lookup fails (decisions that need it deny) until it answers again", message)
        else:
            self._error = message

    def _check_fresh(self) -> None:
        confirmed = self._confirmed_at
        if confirmed is not None and self._error is None and self._clock() - confirmed > self.stale_after:
            self._fail(f"authorization store {self.source} cannot confirm its answers: its change feed has not "
                       f"answered for {self._clock() - confirmed:.1f} s")
