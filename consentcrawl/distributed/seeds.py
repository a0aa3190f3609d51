"""Seeds from a Redis key: workers that can be started and stopped at any time, and idle while more may come.

scrapy-redis's ``RedisSpider`` does this for itself, but its start path is broken on Scrapy >= 2.16
(rmax/scrapy-redis#317). This is an extension instead, installed by the add-on, so ``ConsentSpider`` and any spider
with the add-on get it:

- the key is the spider's ``redis_key`` attribute or ``CONSENTCRAWL_REDIS_START_KEY`` (``%(name)s`` is the spider's
  name), a Redis list in the shared Redis (``CONSENTCRAWL_REDIS_URL``, else ``REDIS_URL``); push seeds with
  ``redis-cli LPUSH KEY URL``. An entry is a URL, or a JSON object ``{"url": ..., "meta": {...}}``; a spider with
  ``make_request_from_data(data: bytes)`` builds the request itself;
- every 0.1 s the worker pops up to 16 seeds and hands them to the engine (``engine.crawl``: the schedule guard
  decides them like any other request), and wakes the engine when the shared queue has requests;
- the spider does not close while idle (``DontCloseSpider``) until it has been idle, with no seed, for
  ``CONSENTCRAWL_REDIS_IDLE_CLOSE`` seconds (0, the default: never, like scrapy-redis's ``MAX_IDLE_TIME``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from scrapy import Request, signals
from scrapy.exceptions import DontCloseSpider, NotConfigured

from .._scrapy_internals import wake_engine
from ..errors import ConfigError
from ..runtime import get_runtime, refuse_to_start
from ..settings import read
from ..tasks import stop_task
from .shared import SharedStateUnavailable

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from typing_extensions import Self

logger = logging.getLogger("consentcrawl")

POLL = 0.1
BATCH = 16


class RedisSeeds:
    """The extension (see the module doc)."""

    def __init__(self, crawler: Crawler, key: str, idle_close: float) -> None:
        self.crawler = crawler
        self.key_template = key
        self.idle_close = idle_close
        self._idle_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.seeds = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        try:
            key = (getattr(crawler.spidercls, "redis_key", None)
                   or read(crawler.settings, "CONSENTCRAWL_REDIS_START_KEY"))
            idle_close = read(crawler.settings, "CONSENTCRAWL_REDIS_IDLE_CLOSE")
        except ConfigError as exc:  # one line naming the setting; every component then refuses everything
            refuse_to_start(crawler, exc)
            raise NotConfigured(str(exc)) from None
        if not key:
            raise NotConfigured("no redis_key or CONSENTCRAWL_REDIS_START_KEY")
        seeds = cls(crawler, str(key), idle_close)
        crawler.signals.connect(seeds._opened, signal=signals.spider_opened)
        crawler.signals.connect(seeds._idle, signal=signals.spider_idle)
        crawler.signals.connect(seeds._closed, signal=signals.spider_closed)
        return seeds

    def _opened(self, spider: Any) -> None:
        runtime = get_runtime(self.crawler)
        if runtime is None:
            return
        if runtime.distributed is None:  # refused as the runtime was built (:meth:`.wiring.Distributed.open`)
            return
        self.key = self.key_template % {"name": spider.name}
        self._task = asyncio.ensure_future(self._run(spider))

    async def _closed(self, spider: Any = None, reason: str = "") -> None:
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task, "the seed reader")

    def _idle(self, spider: Any = None) -> None:
        if self._task is None:
            return  # not reading seeds (refused to start): close as usual
        if not self.idle_close:
            raise DontCloseSpider
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since < self.idle_close:
            raise DontCloseSpider
        logger.info("consentcrawl: no seed in %s and nothing to do for %.1f s: closing", self.key, self.idle_close)

    async def _run(self, spider: Any) -> None:
        runtime = get_runtime(self.crawler)
        assert runtime is not None and runtime.distributed is not None
        shared = runtime.distributed.shared
        engine = self.crawler.engine
        assert engine is not None
        while True:
            try:
                popped = await shared.run(shared.client.lpop(self.key, BATCH), "reading seeds")
            except SharedStateUnavailable:
                popped = None
            for data in popped or ():
                request = self._request(spider, data)
                if request is not None:
                    self.seeds += 1
                    self._idle_since = None
                    try:
                        engine.crawl(request)
                    except RuntimeError:  # the spider closed meanwhile: the seed goes back for another worker
                        await shared.run(shared.client.rpush(self.key, data), "returning a seed")
                        return
            try:
                idle = engine.spider_is_idle()
            except RuntimeError:  # the engine is closing
                return
            if not idle:
                self._idle_since = None
            wake_engine(self.crawler)
            await asyncio.sleep(POLL)

    def _request(self, spider: Any, data: bytes) -> Request | None:
        make = getattr(spider, "make_request_from_data", None)
        try:
            if make is not None:
                request = make(data)
                return request if isinstance(request, Request) else None
            text = data.decode("utf-8").strip()
            if text.startswith("{"):
                entry = json.loads(text)
                return Request(str(entry["url"]), meta=dict(entry.get("meta") or {}))
            return Request(text)
        except Exception as exc:  # noqa: BLE001 - a bad seed is skipped, and said so (not its text: it may name someone)
            logger.error("consentcrawl: a seed in %s could not be read (%s)", self.key, type(exc).__name__)
            return None
