"""scrapy-redis's scheduler and dupefilter, as a consent-aware distributed crawl uses them.

``SCHEDULER = "consentcrawl.distributed.scheduler.ConsentRedisScheduler"`` and
``DUPEFILTER_CLASS = "consentcrawl.distributed.scheduler.ConsentRedisDupeFilter"`` (set by
:func:`consentcrawl.distributed.settings.worker_settings`). They are scrapy-redis's (0.9.1), with three changes:

- the stats calls scrapy-redis makes with a ``spider`` argument, deprecated in Scrapy 2.19, are made without it;
- Redis away does not crash the engine and loses nothing: a request that cannot be pushed is kept here and pushed
  when Redis answers, and no request is popped meanwhile (the worker idles, and its send-time checks deny);
- what consentcrawl writes into a request's meta for the spider to read (:data:`~consentcrawl.meta_keys.META_DECISION`,
  :data:`~consentcrawl.meta_keys.META_NOFOLLOW`) is taken out before the request is queued. Nothing reads them back
  anyway (decisions are kept per request object); taking them out keeps another worker's spider from reading a
  decision that was never made for its request.

The dupefilter fingerprints with the crawl's ``REQUEST_FINGERPRINTER_CLASS`` (scrapy-redis's hashes
``w3lib.canonicalize_url`` itself), so :class:`~consentcrawl.distributed.fingerprint.CanonicalRequestFingerprinter`
works across the cluster.
"""

from __future__ import annotations

import logging
from typing import Any

from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.scheduler import Scheduler

from ..meta_keys import META_DECISION, META_NOFOLLOW

logger = logging.getLogger("consentcrawl")

#: meta keys that describe one request object in one process: not sent to the shared queue
LOCAL_META = (META_DECISION, META_NOFOLLOW)


class ConsentRedisScheduler(Scheduler):  # type: ignore[misc]
    """scrapy-redis's ``Scheduler`` (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unpushed: list[Any] = []  #: requests accepted while Redis was away, pushed when it is back
        self._down = False

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
        for key in LOCAL_META:
            request.meta.pop(key, None)
        try:
            if not request.dont_filter and self.df.request_seen(request):
                self.df.log(request, self.spider)
                return False
            self.queue.push(request)
        except Exception as exc:  # noqa: BLE001 - redis errors: keep it, push it later
            self._failed(exc)
            self._unpushed.append(request)
            return True
        self._back()
        if self.stats:
            self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def _push_held(self) -> bool:
        while self._unpushed:
            request = self._unpushed[0]
            try:
                if request.dont_filter or not self.df.request_seen(request):
                    self.queue.push(request)
            except Exception as exc:  # noqa: BLE001 - still away
                self._failed(exc)
                return False
            self._unpushed.pop(0)
        return True

    def next_request(self) -> Any:
        if not self._push_held():
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
        if self._unpushed:
            return True
        try:
            return len(self) > 0
        except Exception as exc:  # noqa: BLE001 - away: there may be requests there; do not close
            self._failed(exc)
            return True


class ConsentRedisDupeFilter(RFPDupeFilter):  # type: ignore[misc]
    """scrapy-redis's ``RFPDupeFilter`` fingerprinting with the crawl's request fingerprinter."""

    fingerprinter: Any = None

    @classmethod
    def from_spider(cls, spider: Any) -> ConsentRedisDupeFilter:
        dupefilter: ConsentRedisDupeFilter = super().from_spider(spider)
        crawler = getattr(spider, "crawler", None)
        dupefilter.fingerprinter = getattr(crawler, "request_fingerprinter", None)
        return dupefilter

    def request_fingerprint(self, request: Any) -> str:
        if self.fingerprinter is None:
            return str(super().request_fingerprint(request))
        return str(self.fingerprinter.fingerprint(request).hex())
