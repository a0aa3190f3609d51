"""The shared queue (scrapy-redis's, :mod:`consentcrawl.distributed.scheduler`) loses nothing when Redis refuses a
push: a real crawl against the demo site and a real ``redis-server``, judged by the site's own request log."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
import redis
from scrapy import signals
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.test import get_crawler

from consentcrawl_demo.server import LocalServer
from tests.conftest import consent_settings, crawl_within_limit
from tests.redis_server import RedisServer

QUEUE = "microblog:requests"  #: scrapy-redis's queue key for the demo spider


@deferred_f_from_coro_f
async def test_a_request_the_queue_refused_is_pushed_again_not_dropped_as_its_own_duplicate(
        redis_server: RedisServer, server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue's key holds a string when the crawl starts: the dupefilter takes the start request (its
    fingerprint is recorded) and the push fails (``WRONGTYPE``), so the scheduler keeps the request. Once the key is
    free again it must push it, not ask the dupefilter again (which would call it a duplicate of itself): before,
    the crawl ended having fetched nothing."""
    from spiders.microblog import MicroblogSpider

    settings = consent_settings(
        tmp_path, SCHEDULER="consentcrawl.distributed.scheduler.ConsentRedisScheduler",
        DUPEFILTER_CLASS="consentcrawl.distributed.scheduler.ConsentRedisDupeFilter", REDIS_URL=redis_server.url)
    monkeypatch.setenv("http_proxy", server.proxy)
    crawler = get_crawler(MicroblogSpider, settings)
    client = redis.Redis.from_url(redis_server.url)

    async def free_the_queue_once_refused() -> None:
        assert crawler.stats is not None
        while not crawler.stats.get_value("consentcrawl/shared_queue/unavailable"):
            await asyncio.sleep(0.02)
        client.delete(QUEUE)

    watcher: list[asyncio.Task[None]] = []

    def opened(spider: Any) -> None:  # after the scheduler opened (it counts the queue), before any request
        client.set(QUEUE, "not a sorted set")
        watcher.append(asyncio.ensure_future(free_the_queue_once_refused()))

    crawler.signals.connect(opened, signal=signals.spider_opened, weak=False)
    try:
        await crawl_within_limit(crawler)
    finally:
        for task in watcher:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client.close()
    assert crawler.stats is not None and crawler.stats.get_value("consentcrawl/shared_queue/unavailable")
    paths = [request.decoded_path for request in server.requests]
    assert "/people" in {path.split("?")[0] for path in paths}, paths  # the start page, held then pushed
    assert any(path.startswith("/u/") for path in paths), paths  # and the crawl went on from it
