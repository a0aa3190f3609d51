"""The shared queue (scrapy-redis's, :mod:`consentcrawl.distributed.scheduler`) loses nothing when Redis refuses a
push: a real crawl against the demo site and a real ``redis-server``, judged by the site's own request log."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from pathlib import Path
from typing import Any

import pytest
import redis
from scrapy import signals
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.test import get_crawler

from consentcrawl.distributed import serializer
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
    assert "/people" in paths, paths  # the start page, held then pushed
    assert any(path.startswith("/u/") for path in paths), paths  # and the crawl went on from it


@deferred_f_from_coro_f
async def test_a_request_popped_whose_answer_was_lost_is_queued_again_and_decided(
        redis_server: RedisServer, server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pop whose answer never came back (a timeout; redis-py then sends the pop again) leaves its request in this
    worker's in-flight hash, where nothing fetched it and the close deleted it. Written there as such a pop leaves
    it, it is queued again and decided like any request: the authorized person's page is fetched once, the
    withdrawn person's is not."""
    from scrapy import Request

    from consentcrawl.distributed.shared import worker_id
    from spiders.microblog import MicroblogSpider

    settings = consent_settings(
        tmp_path, SCHEDULER="consentcrawl.distributed.scheduler.ConsentRedisScheduler",
        DUPEFILTER_CLASS="consentcrawl.distributed.scheduler.ConsentRedisDupeFilter", REDIS_URL=redis_server.url)
    monkeypatch.setenv("http_proxy", server.proxy)
    crawler = get_crawler(MicroblogSpider, settings)
    stranded = {"1001": "http://microblog.example/u/1001?stranded=1",  # authorized
                "1002": "http://microblog.example/u/1002?stranded=1"}  # revoked

    def opened(spider: Any) -> None:
        client = redis.Redis.from_url(redis_server.url)
        try:
            for url in stranded.values():
                data = serializer.dumps(Request(url, callback=spider.parse_profile).to_dict(spider=spider))
                client.hset(f"{QUEUE}:inflight:{worker_id()}", f"h:0:{hashlib.sha1(data).hexdigest()}", data)
        finally:
            client.close()

    crawler.signals.connect(opened, signal=signals.spider_opened, weak=False)
    await crawl_within_limit(crawler)
    fetched = [request.url for request in server.requests]
    assert fetched.count(stranded["1001"]) == 1, fetched
    assert stranded["1002"] not in fetched
    assert crawler.stats is not None and crawler.stats.get_value("item_scraped_count")


def test_the_dupefilter_answers_a_request_asked_about_again_as_the_first_time(redis_server: RedisServer) -> None:
    """Asked again about the same request (redis-py sends a command again when its answer timed out; the scheduler
    asks again about a request it kept while Redis was away), the shared dupefilter does not call the request a
    duplicate of itself; another request for the same page, in this worker or another, is one."""
    from scrapy import Request

    from consentcrawl.distributed.scheduler import ConsentRedisDupeFilter

    client = redis.Redis.from_url(redis_server.url)
    try:
        here, there = (ConsentRedisDupeFilter(client, key="t:dupefilter") for _ in range(2))  # two workers
        first = Request("http://microblog.example/u/1001")
        assert not here.request_seen(first)
        assert not here.request_seen(first)  # asked again: not its own duplicate
        assert here.request_seen(Request("http://microblog.example/u/1001"))
        assert there.request_seen(Request("http://microblog.example/u/1001"))
        assert not there.request_seen(Request("http://microblog.example/u/1002"))
        assert client.scard("t:dupefilter") == 2  # scrapy-redis's set, as its own dupefilter keeps it
    finally:
        client.close()


def test_two_identical_entries_in_flight_are_each_held_and_taken_back(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker pops a request, and then an identical entry (the same request queued again: ``dont_filter``, or put
    back by a sweep) while the first is still in flight. Both were recorded under one field of the worker's
    in-flight hash: finishing the first erased the second's record, so when the worker was then killed nobody took
    the second back (it was lost). Each popped entry now has its own record: the second is taken back."""
    import gc

    import scrapy

    from consentcrawl.distributed.heldqueue import HeldPriorityQueue

    client = redis.Redis.from_url(redis_server.url)
    spider = scrapy.Spider(name="held")
    try:
        monkeypatch.setattr("consentcrawl.distributed.heldqueue.worker_id", lambda: "killed")
        queue = HeldPriorityQueue(client, spider, "held:requests", serializer)
        request = scrapy.Request("http://microblog.example/u/1001", dont_filter=True)
        queue.push(request)
        first = queue.pop()
        queue.push(request)
        second = queue.pop()
        assert first is not None and second is not None and first is not second
        assert client.hlen("held:requests:inflight:killed") == 2
        del first
        gc.collect()
        queue.housekeeping(force=True)  # the first is through: forgotten
        assert client.hlen("held:requests:inflight:killed") == 1
        client.delete("held:requests:alive:killed")  # killed: its heartbeat lapses, with the second in flight
        monkeypatch.setattr("consentcrawl.distributed.heldqueue.worker_id", lambda: "other")
        HeldPriorityQueue(client, spider, "held:requests", serializer).housekeeping(force=True)
        assert client.zcard("held:requests") == 1  # the second, queued again
        assert second.url == "http://microblog.example/u/1001"
    finally:
        client.close()
