"""scrapy-redis's scheduler and dupefilter, as a consent-aware distributed crawl uses them.

``SCHEDULER = "consentcrawl.distributed.scheduler.ConsentRedisScheduler"`` and
``DUPEFILTER_CLASS = "consentcrawl.distributed.scheduler.ConsentRedisDupeFilter"`` (set by
:func:`consentcrawl.distributed.settings.worker_settings`). They are scrapy-redis's (0.9.1), with three changes:

- the stats calls scrapy-redis makes with a ``spider`` argument, deprecated in Scrapy 2.19, are made without it;
- Redis away does not crash the engine and loses nothing: a request that cannot be pushed is kept here and pushed
  when Redis answers (without asking the dupefilter again once it has let the request through: it would call the
  request a duplicate of itself), and no request is popped meanwhile (the worker idles, and its send-time checks
  deny);
- a worker killed mid-crawl loses nothing: a request is popped and recorded as this worker's in one Lua script
  (``QUEUE:inflight:WORKER``), and forgotten once this worker is done with it (the request object is gone: its
  response and everything its callback produced are through). While the worker lives it refreshes
  ``QUEUE:alive:WORKER`` every second; the other workers put back into the queue what a worker whose key has lapsed
  (``ALIVE_TTL``) still held, and whoever pops it decides it again at send time, against consent as it is then.
  A request this worker was through with but had not yet forgotten (kept alive by a reference cycle) is then
  fetched again: a duplicate, never an undecided fetch. A worker stopped early puts back what it still holds;
- it hands out nothing in a crawl consentcrawl does not guard (a worker whose spider lost the add-on: an older
  deploy, ``custom_settings`` that replaced ``ADDONS``): the requests other workers queued were decided for them
  when queued, and must be decided again when sent, which only the add-on's send-time handler does. Such a worker
  stops before its first request with one CRITICAL line, and the queue keeps everything for the guarded workers;
- what consentcrawl writes into a request's meta for the spider to read (:data:`~consentcrawl.meta_keys.META_DECISION`,
  :data:`~consentcrawl.meta_keys.META_NOFOLLOW`) is taken out before the request is queued. Nothing reads them back
  anyway (decisions are kept per request object); taking them out keeps another worker's spider from reading a
  decision that was never made for its request.

The dupefilter fingerprints with the crawl's ``REQUEST_FINGERPRINTER_CLASS`` (scrapy-redis's hashes
``w3lib.canonicalize_url`` itself), so :class:`~consentcrawl.distributed.fingerprint.CanonicalRequestFingerprinter`
works across the cluster.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import logging
import time
import weakref
from typing import Any

from scrapy import signals
from scrapy.exceptions import CloseSpider
from scrapy_redis.dupefilter import RFPDupeFilter  # type: ignore[import-untyped]
from scrapy_redis.queue import PriorityQueue  # type: ignore[import-untyped]
from scrapy_redis.scheduler import Scheduler  # type: ignore[import-untyped]

from ..meta_keys import META_DECISION, META_NOFOLLOW
from .shared import worker_id

logger = logging.getLogger("consentcrawl")

_counter = itertools.count()

#: meta keys that describe one request object in one process: not sent to the shared queue
LOCAL_META = (META_DECISION, META_NOFOLLOW)


#: seconds after a worker's last heartbeat before the others take back what it held
ALIVE_TTL = 5.0
BEAT = 1.0

#: KEYS: the queue (sorted set), this worker's in-flight hash. Pops the first request and records it as held.
_POP = """
local got = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #got == 0 then return false end
redis.call('ZREM', KEYS[1], got[1])
redis.call('HSET', KEYS[2], ARGV[1] .. got[2] .. ':' .. redis.sha1hex(got[1]), got[1])
return {got[1], got[2]}
"""
#: KEYS: a worker's in-flight hash, its alive key, the queue. ARGV: 1 to take back only if the worker is gone.
_RECLAIM = """
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local held = redis.call('HGETALL', KEYS[1])
for i = 1, #held, 2 do
  local score = string.match(held[i], '^[^:]*:([^:]*):')
  redis.call('ZADD', KEYS[3], tonumber(score) or 0, held[i + 1])
end
redis.call('DEL', KEYS[1])
return #held / 2
"""
#: KEYS: this worker's in-flight hash, the queue. ARGV: fields popped here whose requests never reached this worker.
_PUT_BACK = """
local n = 0
for i = 1, #ARGV do
  local data = redis.call('HGET', KEYS[1], ARGV[i])
  if data then
    local score = string.match(ARGV[i], '^[^:]*:([^:]*):')
    redis.call('ZADD', KEYS[2], tonumber(score) or 0, data)
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
"""


class HeldPriorityQueue(PriorityQueue):  # type: ignore[misc]
    """scrapy-redis's priority queue, popping into this worker's in-flight hash (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker = worker_id()
        self.inflight_key = f"{self.key}:inflight:{self.worker}"
        self.alive_key = f"{self.key}:alive:{self.worker}"
        self._pop = self.server.register_script(_POP)
        self._reclaim = self.server.register_script(_RECLAIM)
        self._put_back = self.server.register_script(_PUT_BACK)
        self._done: list[str] = []  #: fields of requests this worker is through with, to forget
        self._mine: set[str] = set()  #: fields of the requests this worker got and is not through with
        self._beaten = 0.0
        self._swept = 0.0

    def pop(self, timeout: int = 0) -> Any:
        self.housekeeping()
        while True:
            got = self._pop(keys=[self.key, self.inflight_key], args=["h:"])
            if not got:
                return None
            data, score = got
            field = f"h:{score.decode() if isinstance(score, bytes) else score}:{hashlib.sha1(data).hexdigest()}"
            self._mine.add(field)
            try:
                request = self._decode_request(data)
            except Exception as exc:  # noqa: BLE001 - no worker can make a request of it: dropped, and said so
                logger.error("consentcrawl: a request in the shared queue cannot be read (%s); dropped",
                             type(exc).__name__)
                self._done.append(field)
                continue
            weakref.finalize(request, self._done.append, field)
            return request

    def housekeeping(self, force: bool = False) -> None:
        """Forget what is done, say this worker is alive, and take back what dead workers held."""
        now = time.monotonic()
        if self._done:
            done, self._done = self._done, []
            self.server.hdel(self.inflight_key, *done)
            self._mine.difference_update(done)
        if force or now - self._beaten >= BEAT:
            self.server.set(self.alive_key, 1, px=int(ALIVE_TTL * 1000))
            self._beaten = now
        if force or now - self._swept >= BEAT:
            self._swept = now
            self._put_back_stranded()
            prefix = f"{self.key}:inflight:"
            for key in self.server.scan_iter(match=prefix + "*", count=100):
                name = (key.decode() if isinstance(key, bytes) else key)[len(prefix):]
                if name != self.worker:
                    taken = self._reclaim(keys=[key, f"{self.key}:alive:{name}", self.key], args=["1"])
                    if taken:
                        logger.warning("consentcrawl: worker %s is gone; %d request(s) it held are queued again, "
                                       "to be decided again", name, taken)

    def _put_back_stranded(self) -> None:
        """Queue again what this worker popped but never got: a pop whose answer was lost (a timeout) and that
        redis-py then sent again left the first request in the in-flight hash, where nothing would fetch it."""
        fields = {f.decode() if isinstance(f, bytes) else f for f in self.server.hkeys(self.inflight_key)}
        stranded = sorted(fields - self._mine - set(self._done))
        if stranded and self._put_back(keys=[self.inflight_key, self.key], args=stranded):
            logger.warning("consentcrawl: %d request(s) popped from the shared queue by this worker never reached "
                           "it (a lost answer); queued again, to be decided again", len(stranded))

    def release(self, finished: bool) -> None:
        """Closing: a crawl that finished (idle) is through with everything it held; one stopped early (a
        shutdown, ``CloseSpider``) puts back what it still holds, for another worker."""
        if finished:
            self._put_back_stranded()
            self.server.delete(self.inflight_key, self.alive_key)
            return
        gc.collect()  # requests caught in reference cycles (an exception's traceback) are through too
        self.housekeeping()
        taken = self._reclaim(keys=[self.inflight_key, self.alive_key, self.key], args=["0"])
        self.server.delete(self.alive_key)
        if taken:
            logger.info("consentcrawl: %d request(s) this worker held are queued again", taken)


class ConsentRedisScheduler(Scheduler):  # type: ignore[misc]
    """scrapy-redis's ``Scheduler`` (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("queue_cls") in (None, "scrapy_redis.queue.PriorityQueue"):
            kwargs["queue_cls"] = f"{__name__}.HeldPriorityQueue"
        super().__init__(*args, **kwargs)
        #: requests accepted while Redis was away, pushed when it is back; with whether the dupefilter has let each
        #: through already (asking it again would call the request a duplicate of itself, and drop it)
        self._unpushed: list[tuple[Any, bool]] = []
        self._down = False
        self._beat: asyncio.Task[None] | None = None
        self._unguarded = False  #: the crawl runs without the add-on: nothing is queued or handed out

    def open(self, spider: Any) -> Any:
        crawler = getattr(spider, "crawler", None)
        if crawler is not None and not _guarded(crawler):
            self._unguarded = True
            logger.critical("consentcrawl: the crawl does not start: SCHEDULER is consentcrawl's shared queue but "
                            "this crawl runs without consentcrawl.Addon (put it in the project's ADDONS, or make "
                            "the spider a ConsentSpider); it would fetch what other workers queued undecided")
            crawler.signals.connect(_refuse, signal=signals.spider_opened, weak=False)
        result = super().open(spider)
        if isinstance(self.queue, HeldPriorityQueue) and not self._unguarded:
            self._beat = asyncio.ensure_future(self._heartbeat())
        return result

    async def _heartbeat(self) -> None:
        """The engine does not ask for requests while its downloader is full: the heartbeat has its own timer."""
        while True:
            try:
                self.queue.housekeeping()
            except Exception as exc:  # noqa: BLE001 - away: said by _failed; held requests stay held
                self._failed(exc)
            await asyncio.sleep(BEAT / 2)

    def close(self, reason: str) -> Any:
        if self._unguarded:
            return None  # it took nothing: the queue, the seen set and the other workers' holdings stay as they are
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        if isinstance(self.queue, HeldPriorityQueue):
            try:
                self.queue.release(reason == "finished")
            except Exception as exc:  # noqa: BLE001 - the others take it back when our alive key lapses
                self._failed(exc)
        return super().close(reason)

    def _failed(self, exc: Exception) -> None:
        if not self._down:
            self._down = True
            logger.warning("consentcrawl: the shared queue's Redis is unavailable (%s: %s); holding requests here "
                           "until it answers", type(exc).__name__, exc)
        if self.stats:
            self.stats.inc_value("consentcrawl/shared_queue/unavailable")

    def _back(self) -> None:
        if self._down:
            self._down = False
            logger.info("consentcrawl: the shared queue's Redis answers again")

    def enqueue_request(self, request: Any) -> bool:
        if self._unguarded:
            return False
        for key in LOCAL_META:
            request.meta.pop(key, None)
        filtered = bool(request.dont_filter)
        try:
            if not filtered and self.df.request_seen(request):
                self.df.log(request, self.spider)
                return False
            filtered = True
            self.queue.push(request)
        except Exception as exc:  # noqa: BLE001 - redis errors: keep it, push it later
            self._failed(exc)
            self._unpushed.append((request, filtered))
            return True
        self._back()
        if self.stats:
            self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def _push_held(self) -> bool:
        while self._unpushed:
            request, filtered = self._unpushed[0]
            try:
                if not filtered:
                    if self.df.request_seen(request):
                        self._unpushed.pop(0)
                        continue
                    self._unpushed[0] = (request, True)
                self.queue.push(request)
            except Exception as exc:  # noqa: BLE001 - still away
                self._failed(exc)
                return False
            self._unpushed.pop(0)
        return True

    def next_request(self) -> Any:
        if self._unguarded or not self._push_held():
            return None
        try:
            request = self.queue.pop(self.idle_before_close)
        except Exception as exc:  # noqa: BLE001 - away: nothing popped, nothing lost
            self._failed(exc)
            return None
        self._back()
        if request is not None and self.stats:
            self.stats.inc_value("scheduler/dequeued/redis")
        return request

    def has_pending_requests(self) -> bool:
        if self._unguarded:
            return False
        if self._unpushed:
            return True
        try:
            return len(self) > 0
        except Exception as exc:  # noqa: BLE001 - away: there may be requests there; do not close
            self._failed(exc)
            return True


def _guarded(crawler: Any) -> bool:
    """Whether consentcrawl's add-on runs in this crawl (a ``ConsentSpider`` adds it to ``ADDONS`` itself)."""
    from ..addon import Addon

    return any(isinstance(addon, Addon) for addon in getattr(getattr(crawler, "addons", None), "addons", ()))


def _refuse(spider: Any = None) -> None:
    """Close a crawl the shared queue refused to serve, before its first request (see the module doc)."""
    from ..runtime import CONFIG_ERROR_REASON

    raise CloseSpider(CONFIG_ERROR_REASON)


#: KEYS: the fingerprint set, the fingerprint's claim. ARGV: fingerprint, the asking request's token, claim ttl (ms).
#: 1 when the fingerprint was seen before, by another request than the one asking.
_SEEN = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 0
end
if redis.call('GET', KEYS[2]) == ARGV[2] then return 0 end
return 1
"""
#: how long a request's claim on its fingerprint answers its own repeated question
CLAIM_TTL = 600.0


class ConsentRedisDupeFilter(RFPDupeFilter):  # type: ignore[misc]
    """scrapy-redis's ``RFPDupeFilter`` fingerprinting with the crawl's request fingerprinter, and answering the
    same request's question again the same way.

    scrapy-redis adds the fingerprint with ``SADD`` and calls the request a duplicate when it was there already. A
    question asked again about the same request (redis-py sends a command again when its answer timed out; the
    scheduler asks again about a request it kept while Redis was away) then finds the fingerprint its first
    try added, and the request, a duplicate of itself, was never fetched. Each request that adds a fingerprint
    claims it for ``CLAIM_TTL`` with a token of its own (``FINGERPRINTS:claim:FP``), and the claim's owner is not
    told it is a duplicate. The set stays scrapy-redis's, shared with workers that use its dupefilter.
    """

    fingerprinter: Any = None
    _tokens: weakref.WeakKeyDictionary[Any, str] | None = None
    _script: Any = None

    @classmethod
    def from_spider(cls, spider: Any) -> ConsentRedisDupeFilter:
        dupefilter: ConsentRedisDupeFilter = super().from_spider(spider)
        crawler = getattr(spider, "crawler", None)
        dupefilter.fingerprinter = getattr(crawler, "request_fingerprinter", None)
        return dupefilter

    def request_seen(self, request: Any) -> bool:
        if self._tokens is None:
            self._tokens = weakref.WeakKeyDictionary()
            self._script = self.server.register_script(_SEEN)
        token = self._tokens.get(request)
        if token is None:
            token = self._tokens[request] = f"{worker_id()}:{next(_counter)}"
        fp = self.request_fingerprint(request)
        return bool(self._script(keys=[self.key, f"{self.key}:claim:{fp}"], args=[fp, token, int(CLAIM_TTL * 1000)]))

    def request_fingerprint(self, request: Any) -> str:
        if self.fingerprinter is None:
            return str(super().request_fingerprint(request))
        return str(self.fingerprinter.fingerprint(request).hex())
