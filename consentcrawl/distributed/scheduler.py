"""scrapy-redis's scheduler and dupefilter, as a consent-aware distributed crawl uses them.

``SCHEDULER = "consentcrawl.distributed.scheduler.ConsentRedisScheduler"`` and
``DUPEFILTER_CLASS = "consentcrawl.distributed.scheduler.ConsentRedisDupeFilter"``, set in the project's settings
(docs/distributed.md). They are scrapy-redis's (0.9.1), with these changes:

- the stats calls scrapy-redis makes with a ``spider`` argument, deprecated in Scrapy 2.19, are made without it;
- Redis away does not crash the engine and loses nothing: a request that cannot be pushed is kept here and pushed
  when Redis answers (without asking the dupefilter again once it has let the request through: it would call the
  request a duplicate of itself), and no request is popped meanwhile (the worker idles, and its send-time checks
  deny);
- a worker killed mid-crawl loses nothing: requests are popped into its in-flight hash
  (:mod:`~consentcrawl.distributed.heldqueue`), and taken back by the others once its heartbeat lapses;
- entries are JSON (:mod:`~consentcrawl.distributed.serializer`), not scrapy-redis's default pickle: whoever can
  write the queue's key cannot run code in the workers; a request JSON cannot carry is sent by this worker itself;
- a worker that cannot run what the others queued (a callback its spider lacks: another deploy) puts the request
  back and takes nothing more, closing as misconfigured (``consentcrawl_config_error``, one CRITICAL line);
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
import itertools
import logging
import weakref
from typing import Any

from scrapy import signals
from scrapy.exceptions import CloseSpider
from scrapy_redis.dupefilter import RFPDupeFilter  # type: ignore[import-untyped]
from scrapy_redis.scheduler import Scheduler  # type: ignore[import-untyped]

from ..meta_keys import META_DECISION, META_NOFOLLOW
from . import serializer
from .heldqueue import BEAT, HeldPriorityQueue, WorkerCannotRun
from .serializer import NotQueueable
from .shared import worker_id

logger = logging.getLogger("consentcrawl")

_counter = itertools.count()

#: meta keys that describe one request object in one process: not sent to the shared queue
LOCAL_META = (META_DECISION, META_NOFOLLOW)


class ConsentRedisScheduler(Scheduler):  # type: ignore[misc]
    """scrapy-redis's ``Scheduler`` (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("queue_cls") in (None, "scrapy_redis.queue.PriorityQueue"):
            kwargs["queue_cls"] = f"{HeldPriorityQueue.__module__}.HeldPriorityQueue"
        if kwargs.get("serializer") is None:
            kwargs["serializer"] = serializer
        elif kwargs["serializer"] is not serializer:
            logger.warning("consentcrawl: SCHEDULER_SERIALIZER is %s, not consentcrawl's JSON serializer: if it "
                           "unpickles, whoever can write the shared queue runs code in every worker",
                           getattr(kwargs["serializer"], "__name__", kwargs["serializer"]))
        super().__init__(*args, **kwargs)
        #: requests accepted while Redis was away, pushed when it is back; with whether the dupefilter has let each
        #: through already (asking it again would call the request a duplicate of itself, and drop it)
        self._unpushed: list[tuple[Any, bool]] = []
        #: requests the queue's format cannot carry (a value of the project's own in their meta): handed out here
        self._local: list[Any] = []
        self._kept = 0
        self._down = False
        self._beat: asyncio.Task[None] | None = None
        self._unguarded = False  #: the crawl runs without the add-on: nothing is queued or handed out
        self._cannot_run = False  #: a request popped named what this worker's spider lacks: it takes no more
        self._closing: asyncio.Future[None] | None = None

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
        except NotQueueable as exc:
            self._keep_local(request, exc)
            return True
        except Exception as exc:  # noqa: BLE001 - redis errors: keep it, push it later
            self._failed(exc)
            self._unpushed.append((request, filtered))
            return True
        self._back()
        if self.stats:
            self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def _keep_local(self, request: Any, exc: NotQueueable) -> None:
        """A request the shared queue's format cannot carry is this worker's to send (as Scrapy keeps a request its
        disk queue cannot store in memory): decided at send time like any other, lost if the worker is killed."""
        self._kept += 1
        if self._kept == 1:
            logger.warning("consentcrawl: a request cannot go to the shared queue (%s); this worker sends it itself "
                           "(later ones are counted: stat consentcrawl/shared_queue/kept_local)", exc)
        self._local.append(request)
        if self.stats:
            self.stats.inc_value("consentcrawl/shared_queue/kept_local")

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
            except NotQueueable as exc:
                self._keep_local(request, exc)
            except Exception as exc:  # noqa: BLE001 - still away
                self._failed(exc)
                return False
            self._unpushed.pop(0)
        return True

    def next_request(self) -> Any:
        if self._local and not self._unguarded:
            return self._local.pop(0)
        if self._unguarded or self._cannot_run or not self._push_held():
            return None
        try:
            request = self.queue.pop(self.idle_before_close)
        except WorkerCannotRun as exc:
            self._stop_taking(str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - away: nothing popped, nothing lost
            self._failed(exc)
            return None
        self._back()
        if request is not None and self.stats:
            self.stats.inc_value("scheduler/dequeued/redis")
        return request

    def _stop_taking(self, cause: str) -> None:
        """This worker cannot run what the others queue: it takes nothing more, and closes as misconfigured (the
        request it popped went back to the queue, and what it still holds goes back at the close)."""
        from ..runtime import CONFIG_ERROR_REASON

        self._cannot_run = True
        logger.critical("consentcrawl: this worker stops taking requests from the shared queue: %s; the request "
                        "went back to the queue for a worker that can run it", cause)
        if self.stats:
            self.stats.inc_value("consentcrawl/shared_queue/cannot_run")
        crawler = getattr(self.spider, "crawler", None)
        if crawler is not None and crawler.engine is not None:
            self._closing = asyncio.ensure_future(crawler.engine.close_spider_async(reason=CONFIG_ERROR_REASON))

    def has_pending_requests(self) -> bool:
        if self._unguarded:
            return False
        if self._local:
            return True
        if self._cannot_run:
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
