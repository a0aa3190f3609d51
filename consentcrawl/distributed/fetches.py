"""One fetch per URL for the whole cluster: robots.txt and a site's signal files, single flight across workers.

The shared layer sits under the in-process fetchers (:class:`~consentcrawl.robots.scrapyfetch.ScrapyRobotsFetcher`
and the signal fetcher), at the level of what came off the wire (:class:`RawFetch`: the status, the body, the
redirect hops, or why there was no answer). Each worker classifies it with the same code as in one process
(:func:`consentcrawl.robots.fetch.from_response`, :func:`consentcrawl.signals.fetch.from_response`) and keeps it in
its own cache with the same rules (:class:`~consentcrawl.robots.cache.RobotsCache`), from the time it was fetched.

Single flight: a worker that finds no fresh result takes a lock (``SET NX PX``, ``CONSENTCRAWL_SHARED_LOCK_TIMEOUT``)
and fetches; the others poll for the result until it is there or the lock has lapsed (its holder died), and then
take the lock themselves. A result is kept in Redis for the robots TTL when it was an answer (2xx or 4xx), and for
the retry interval otherwise, doubled after each failure in a row up to the retry maximum: the rules of
:class:`RobotsCache`, counted for the cluster. A Redis error raises
:class:`~consentcrawl.distributed.shared.SharedStateUnavailable`: the fetcher then treats the file as unreachable
*without* caching that, so the origin is tried again as soon as Redis answers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .shared import SharedState, SharedStateUnavailable

#: KEYS: the lock; ARGV: the holder. Deletes the lock only if this holder still has it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
POLL = 0.05


@dataclass(frozen=True)
class RawFetch:
    """What fetching a URL gave, before it is classified: an answer (``status``, ``body``) or none (``cause``)."""

    answered: bool
    status: int | None
    body: bytes
    final_url: str
    hops: tuple[str, ...]
    cause: str
    fetched_at: datetime

    @property
    def good(self) -> bool:
        """An answer that is kept for the full TTL (2xx or 4xx); anything else is retried with a backoff."""
        return self.answered and self.status is not None and 200 <= self.status < 500

    def to_json(self) -> str:
        return json.dumps({"answered": self.answered, "status": self.status,
                           "body": base64.b64encode(self.body).decode("ascii"), "final_url": self.final_url,
                           "hops": list(self.hops), "cause": self.cause, "fetched_at": self.fetched_at.isoformat()})

    @classmethod
    def from_json(cls, text: str | bytes) -> RawFetch:
        data = json.loads(text)
        return cls(bool(data["answered"]), data["status"], base64.b64decode(data["body"]), str(data["final_url"]),
                   tuple(data["hops"]), str(data["cause"]), datetime.fromisoformat(data["fetched_at"]))


class SharedFetches:
    """The cluster's cache of side fetches, keyed by URL (see the module doc)."""

    def __init__(self, shared: SharedState, ttl: timedelta, retry_after: timedelta, retry_max: timedelta,
                 lock_timeout: float = 30.0) -> None:
        self.shared = shared
        self.ttl = ttl
        self.retry_after = retry_after
        self.retry_max = max(retry_max, retry_after)
        self.lock_timeout = max(lock_timeout, 1.0)
        self.fetched = 0  #: fetches this worker made for the cluster
        self.reused = 0  #: results another worker fetched

    def _keys(self, url: str, variant: str = "") -> tuple[str, str, str]:
        named = f"{url}\n{variant}" if variant else url
        digest = hashlib.sha256(named.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        base = self.shared.key("fetch", digest)
        return base, base + ":lock", base + ":failures"

    async def fetch(self, url: str, fetch: Callable[[], Awaitable[RawFetch]], *, variant: str = "") -> RawFetch:
        """The cluster's fresh result for ``url``, fetched here (``fetch()``) only if no worker has one or is
        fetching it; ``variant`` (the User-Agent sent) is shared only with workers that give the same. Raises
        SharedStateUnavailable when Redis cannot be asked."""
        client = self.shared.client
        key, lock, _ = self._keys(url, variant)
        deadline = time.monotonic() + 2 * self.lock_timeout + 1
        while True:
            cached = await self.shared.run(client.get(key), "reading a shared fetch")
            if cached is not None:
                self.reused += 1
                return _decode(cached, url)
            holder = f"{self.shared.worker}:{id(asyncio.current_task())}"
            taken = await self.shared.run(client.set(lock, holder, nx=True, px=int(self.lock_timeout * 1000)),
                                          "taking a fetch lock")
            if taken:
                try:
                    return await self._fetch_holding(url, fetch, variant)
                finally:
                    try:
                        await self.shared.run(self.shared.script(_RELEASE)((lock,), (holder,)),
                                              "releasing a fetch lock")
                    except SharedStateUnavailable:
                        pass  # it lapses by itself after the lock timeout
            if time.monotonic() > deadline:
                raise SharedStateUnavailable(f"no result for a shared fetch after {deadline:.0f} s of waiting")
            await asyncio.sleep(POLL)

    async def _fetch_holding(self, url: str, fetch: Callable[[], Awaitable[RawFetch]], variant: str) -> RawFetch:
        client = self.shared.client
        key, _, failures_key = self._keys(url, variant)
        cached = await self.shared.run(client.get(key), "reading a shared fetch")
        if cached is not None:  # another worker published it between our read and our lock
            self.reused += 1
            return _decode(cached, url)
        raw = await fetch()
        self.fetched += 1
        if raw.good:
            keep = self.ttl
            await self.shared.run(client.delete(failures_key), "recording a fetch")
        else:
            failures = int(await self.shared.run(client.incr(failures_key), "counting failed fetches"))
            await self.shared.run(client.pexpire(failures_key, int(2 * self.retry_max.total_seconds() * 1000)),
                                  "counting failed fetches")
            keep = min(self.retry_after * (2 ** min(failures - 1, 30)), self.retry_max)
        await self.shared.run(client.set(key, raw.to_json(), px=max(int(keep.total_seconds() * 1000), 1)),
                              "publishing a fetch")
        return raw


def _decode(cached: Any, url: str) -> RawFetch:
    try:
        return RawFetch.from_json(cached)
    except (ValueError, KeyError, TypeError) as exc:
        raise SharedStateUnavailable(f"the shared result for a fetch is not readable ({type(exc).__name__})") from None
