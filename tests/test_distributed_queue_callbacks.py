"""What a worker runs of an entry of the shared queue: only a callback its requests could have named, and an entry
no worker can run is set aside rather than stopping every worker in turn.

Judged by the site's own log (what was fetched), files a wrongly called attribute would write, the crawl's stats
and the queue's keys in a real ``redis-server``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.distributed import serializer
from consentcrawl_demo.server import LocalServer
from tests.lenient import LenientPeople, ListLogic, crawl, make_spider, people_settings
from tests.redis_server import RedisServer
from tests.test_distributed_queue_entries import queue_entry

QUEUE = "worker:requests"
pytestmark = pytest.mark.filterwarnings("ignore:Spider.log:scrapy.exceptions.ScrapyDeprecationWarning")


class Marks:
    """Called as a callback, it leaves a file: what a class-valued attribute named by an entry would run."""

    where: Path | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if Marks.where is not None:
            Marks.where.write_text("a class attribute was called with a response\n")


class HookLogic(ListLogic):
    """A project's spider with a ``closed`` hook and a class-valued attribute (both callable)."""

    maker = Marks
    marker: Path | None = None

    def closed(self, reason: Any) -> None:
        if not isinstance(reason, str) and self.marker is not None:
            self.marker.write_text(f"closed() was called with a {type(reason).__name__}\n")


#: settings a test adds to its workers' (set with ``monkeypatch.setitem``)
_SETTINGS_EXTRA: dict[str, Any] = {}


def _settings(tmp_path: Path, url: str) -> dict[str, Any]:
    return people_settings(tmp_path, SCHEDULER="consentcrawl.distributed.scheduler.ConsentRedisScheduler",
                           DUPEFILTER_CLASS="consentcrawl.distributed.scheduler.ConsentRedisDupeFilter",
                           SCHEDULER_PERSIST=True, REDIS_URL=url,
                           REDIS_PARAMS={"socket_timeout": 1, "socket_connect_timeout": 1}, **_SETTINGS_EXTRA)


def _site(*paths: str) -> LenientPeople:
    app = LenientPeople()
    for path in paths:
        app.page(path, f"<html><body>{path}</body></html>")
    return app


@deferred_f_from_coro_f
async def test_an_entry_naming_a_spider_attribute_that_is_no_callback_is_set_aside_never_called(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whoever can write the shared queue names as a request's callback (or errback) an attribute of the spider that
    no request of it names: Scrapy's hooks (``close``, ``start_requests``, ``closed``), methods of ``scrapy.Spider``
    and ``ConsentSpider``, a class-valued attribute. The worker used to accept any callable attribute: it fetched the
    page and called it (``closed`` with a response, the class with a response). Now each such entry is moved to
    ``QUEUE:refused`` with its cause, counted (``refused/callback``), never fetched nor called; the spider's own
    ``parse`` beside them is fetched."""
    marker, made = tmp_path / "closed-called", tmp_path / "maker-called"
    Marks.where = made
    odd = {"close": {"callback": "close"}, "start_requests": {"callback": "start_requests"},
           "closed": {"callback": "closed"}, "maker": {"callback": "maker"}, "log": {"callback": "log"},
           "from_crawler": {"callback": "from_crawler"}, "set_crawler": {"callback": "_set_crawler"},
           "init": {"callback": "__init__"}, "errback": {"callback": "parse", "errback": "close"}}
    app = _site("/p/parse", *(f"/p/{name}" for name in odd))
    client = redis.Redis.from_url(redis_server.url)
    try:
        entries = {queue_entry(f"http://people.example/p/{name}", serializer, **fields): 0
                   for name, fields in odd.items()}
        client.zadd(QUEUE, {**entries, queue_entry("http://people.example/p/parse", serializer, callback="parse"): 1})
        spider = make_spider("ADDONS", HookLogic, name="worker")
        with LocalServer(app) as server:
            result = await crawl(spider, _settings(tmp_path, redis_server.url), proxy=server.proxy,
                                 monkeypatch=monkeypatch, urls=[], marker=marker)
        refused = set(client.zrange(f"{QUEUE}:refused", 0, -1))
        causes = client.hvals(f"{QUEUE}:refused:causes")
    finally:
        Marks.where = None
        client.close()
    fetched = [s.path for s in app.served if s.kind == "page"]
    assert fetched == ["/p/parse"], app.describe()
    assert not marker.exists() and not made.exists()
    assert refused == set(entries), len(refused)
    assert result.stats.get("consentcrawl/shared_queue/refused/callback") == len(odd), result.stats
    assert len(causes) == len(odd) and all(c.startswith(b"callback: NotACallback") for c in causes), causes
    assert result.stats["finish_reason"] == "finished"


@deferred_f_from_coro_f
async def test_a_request_for_a_callback_the_queue_refuses_is_sent_by_its_own_worker(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule holds when a request is queued, too: a request of the spider's own whose callback the queue would
    refuse (here a ``staticmethod``) is not queued for other workers, who would set it aside, but sent by the worker
    that made it (``kept_local``)."""
    import scrapy

    class StaticLogic(ListLogic):
        @staticmethod
        def parse_static(response: Any) -> None:
            return None

        async def start(self) -> Any:
            yield scrapy.Request("http://people.example/p/static", callback=self.parse_static)

    app = _site("/p/static")
    client = redis.Redis.from_url(redis_server.url)
    try:
        with LocalServer(app) as server:
            result = await crawl(make_spider("ADDONS", StaticLogic, name="worker"),
                                 _settings(tmp_path, redis_server.url), proxy=server.proxy, monkeypatch=monkeypatch)
        assert client.zcard(f"{QUEUE}:refused") == 0
    finally:
        client.close()
    assert [s.path for s in app.served if s.kind == "page"] == ["/p/static"], app.describe()
    assert result.stats.get("consentcrawl/shared_queue/kept_local") == 1, result.stats


# -- an entry no worker can run ------------------------------------------------------------------------------------


async def _worker(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, app: LenientPeople) -> Any:
    """One worker of the cluster, named ``name`` (workers are processes; here two crawls of one process)."""
    monkeypatch.setattr("consentcrawl.distributed.heldqueue.worker_id", lambda: name)
    (tmp_path / name).mkdir()
    with LocalServer(app) as server:
        return await crawl(make_spider("ADDONS", ListLogic, name="worker"), _settings(tmp_path / name, url),
                           proxy=server.proxy, monkeypatch=monkeypatch, urls=[])


@deferred_f_from_coro_f
async def test_an_entry_no_worker_can_run_is_set_aside_not_stopping_every_worker(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries name a callback no deploy of the spider has (removed, or written by hand). Each worker that popped
    one put it back and stopped taking work: the first stopped, then the next, until none was left and the queue
    stalled. Now the first still stops (a deploy that has the callback may be on its way), and the second worker
    that lacks it, finding no live worker whose spider has it, sets every entry naming it aside (``QUEUE:refused``,
    the cause in ``QUEUE:refused:causes``) and works on: the pages queued behind them are fetched."""
    app = _site("/p/1", "/p/2")
    client = redis.Redis.from_url(redis_server.url)
    try:
        gone = {queue_entry(f"http://people.example/p/gone{n}", serializer, callback="parse_gone"): -1
                for n in range(2)}
        client.zadd(QUEUE, {**gone, queue_entry("http://people.example/p/1", serializer, callback="parse"): 0,
                            queue_entry("http://people.example/p/2", serializer, callback="parse"): 0})
        first = await _worker("w1", monkeypatch, tmp_path, redis_server.url, app)
        assert first.stats["finish_reason"] == "consentcrawl_config_error", first.stats
        assert [s.path for s in app.served if s.kind == "page"] == [], app.describe()
        second = await _worker("w2", monkeypatch, tmp_path, redis_server.url, app)
        refused = client.zrange(f"{QUEUE}:refused", 0, -1)
        causes = client.hvals(f"{QUEUE}:refused:causes")
        left = client.zcard(QUEUE)
    finally:
        client.close()
    assert sorted(s.path for s in app.served if s.kind == "page") == ["/p/1", "/p/2"], app.describe()
    assert second.stats["finish_reason"] == "finished", second.stats
    assert set(refused) == set(gone) and left == 0
    assert len(causes) == 2 and all(b"'parse_gone'" in c and c.startswith(b"unrunnable:") for c in causes), causes
    assert second.stats.get("consentcrawl/shared_queue/refused/unrunnable") == 2, second.stats


@deferred_f_from_coro_f
async def test_an_entry_a_live_worker_can_run_stays_queued(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same, but a live worker of a newer deploy has the callback (its heartbeat and the callbacks it
    announced are in Redis): the entry is not set aside by the older workers; it stays queued for the newer one."""
    app = _site("/p/1")
    client = redis.Redis.from_url(redis_server.url)
    try:
        newer = queue_entry("http://people.example/p/new", serializer, callback="parse_new")
        client.zadd(QUEUE, {newer: -1, queue_entry("http://people.example/p/1", serializer, callback="parse"): 0})
        client.hset(f"{QUEUE}:callbacks", "w-new", '["parse", "parse_new"]')
        client.set(f"{QUEUE}:alive:w-new", 1, px=60_000)
        for name in ("w1", "w2"):
            result = await _worker(name, monkeypatch, tmp_path, redis_server.url, app)
            assert result.stats["finish_reason"] == "consentcrawl_config_error", result.stats
        assert client.zrange(QUEUE, 0, 0) == [newer]
        assert client.zcard(f"{QUEUE}:refused") == 0
    finally:
        client.close()
    assert [s.path for s in app.served if s.kind == "page"] == [], app.describe()


def test_the_callbacks_an_entry_may_name_are_the_spiders_own_and_scrapys_generic_spiders():
    """The rule (consentcrawl/distributed/callbacks.py) on Scrapy's generic spiders, whose own requests name their
    private callbacks: a ``CrawlSpider``'s rule requests (``_callback``, ``_errback``) and a ``SitemapSpider``'s
    (``_parse_sitemap``) can be queued and run; their other methods, the hooks and anything that is not a method
    of the class cannot."""
    from scrapy.spiders import CrawlSpider, SitemapSpider

    from consentcrawl.distributed.callbacks import MISSING, callback_names, refusal

    class Crawler(CrawlSpider):
        name = "c"
        helper = staticmethod(len)

        def parse_item(self, response: Any) -> None:
            return None

        def closed(self, reason: str) -> None:
            return None

    class Sitemap(SitemapSpider):
        name = "s"

    crawl, sitemap = Crawler(), Sitemap()
    crawl.on_instance = crawl.parse_item  # type: ignore[attr-defined]
    assert {"parse_item", "_callback", "_errback", "parse_start_url", "parse"} <= set(callback_names(crawl))
    for name in ("_requests_to_follow", "_parse_response", "start_requests", "start", "closed", "close", "helper",
                 "on_instance", "__init__", "from_crawler", "_set_crawler", "not a name"):
        assert refusal(crawl, name) not in (None, MISSING), name
    assert refusal(crawl, "parse_gone") == MISSING
    assert refusal(sitemap, "_parse_sitemap") is None and "sitemap_filter" not in callback_names(sitemap)


@deferred_f_from_coro_f
async def test_a_worker_whose_heartbeat_came_back_is_counted_again_for_the_callbacks_it_has(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A live worker of the newer deploy, whose spider has ``parse_new``, misses its heartbeat once (an event loop
    held up past ``CONSENTCRAWL_WORKER_ALIVE_TTL``): an older worker that lacks ``parse_new`` finds it gone, forgets
    what it announced and sets that entry aside (as the rule says). Then its heartbeat comes back, and it queues
    another ``parse_new`` request. It announced its callbacks once, at its first beat, so it was never counted again:
    the next older worker set that entry aside too, though a live worker could run it. Now each beat says what the
    worker can run; the entry stays queued for it."""
    from consentcrawl.distributed.heldqueue import HeldPriorityQueue

    class NewLogic(ListLogic):
        def parse_new(self, response: Any) -> None:
            return None

    app = _site("/p/1")
    client = redis.Redis.from_url(redis_server.url)
    newer_queue = None
    try:
        monkeypatch.setattr("consentcrawl.distributed.heldqueue.worker_id", lambda: "w-new")
        newer = make_spider("ADDONS", NewLogic, name="worker")()
        newer_queue = HeldPriorityQueue(client, newer, QUEUE, serializer)
        newer_queue.housekeeping(force=True)  # its first beat: alive, and what it can run announced
        client.sadd(f"{QUEUE}:cannot_run:parse_new", "w0")  # an older worker lacked it before
        client.zadd(QUEUE, {queue_entry("http://people.example/p/new1", serializer, callback="parse_new"): -1})
        client.delete(f"{QUEUE}:alive:w-new")  # its heartbeat late once
        first = await _worker("w1", monkeypatch, tmp_path, redis_server.url, _site("/p/0"))
        assert first.stats.get("consentcrawl/shared_queue/refused/unrunnable") == 1, first.stats
        newer_queue.housekeeping(force=True)  # its heartbeat is back
        assert client.exists(f"{QUEUE}:alive:w-new")
        again = queue_entry("http://people.example/p/new2", serializer, callback="parse_new")
        client.zadd(QUEUE, {again: -1, queue_entry("http://people.example/p/1", serializer, callback="parse"): 0})
        second = await _worker("w2", monkeypatch, tmp_path, redis_server.url, app)
        assert second.stats["finish_reason"] == "consentcrawl_config_error", second.stats
        assert client.zrange(QUEUE, 0, 0) == [again], client.zrange(f"{QUEUE}:refused", 0, -1)
        assert second.stats.get("consentcrawl/shared_queue/refused/unrunnable") is None, second.stats
    finally:
        if newer_queue is not None:
            newer_queue.release(True)
        client.close()
    assert [s.path for s in app.served if s.kind == "page"] == [], app.describe()


@deferred_f_from_coro_f
async def test_a_worker_setting_many_entries_aside_keeps_its_heartbeat_and_what_it_holds(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker pops a request (``/p/held``, in flight), then reaches a long run of entries naming a callback no
    deploy has (a removed one) in a cluster of live workers, and sets them aside one by one in one pop. The pop ran
    on the event loop without a beat: its heartbeat lapsed (``CONSENTCRAWL_WORKER_ALIVE_TTL``), another worker took
    back what it held, and ``/p/held`` was fetched twice (here by the same worker, which popped it again). Now the
    pop beats as it goes; the site serves ``/p/held`` once."""
    import threading

    from consentcrawl.distributed.heldqueue import HeldPriorityQueue

    app = _site("/p/held")
    client, watching = redis.Redis.from_url(redis_server.url), redis.Redis.from_url(redis_server.url)
    stop = threading.Event()
    try:
        for n in range(20):  # live workers of the same deploy (none has the removed callback)
            client.hset(f"{QUEUE}:callbacks", f"live{n}", '["parse"]')
            client.set(f"{QUEUE}:alive:live{n}", 1, px=120_000)
        client.sadd(f"{QUEUE}:cannot_run:parse_gone", "w0")  # an earlier worker lacked it
        gone = {queue_entry(f"http://people.example/p/gone{n}", serializer, callback="parse_gone"): -1
                for n in range(1200)}
        client.zadd(QUEUE, {**gone, queue_entry("http://people.example/p/held", serializer, callback="parse"): -2})
        monkeypatch.setattr("consentcrawl.distributed.heldqueue.worker_id", lambda: "w-other")
        other = HeldPriorityQueue(watching, make_spider("ADDONS", ListLogic, name="worker")(), QUEUE, serializer)

        def beat() -> None:  # another worker's heartbeat thread: takes back what a worker gone silent held
            while not stop.wait(0.2):
                other.housekeeping(force=True)

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        monkeypatch.setitem(_SETTINGS_EXTRA, "CONSENTCRAWL_WORKER_ALIVE_TTL", 2)
        result = await _worker("w1", monkeypatch, tmp_path, redis_server.url, app)
    finally:
        stop.set()
        client.close()
    thread.join(5)
    watching.close()
    assert [s.path for s in app.served if s.kind == "page"] == ["/p/held"], app.describe()
    assert result.stats.get("consentcrawl/shared_queue/refused/unrunnable") == len(gone), result.stats
