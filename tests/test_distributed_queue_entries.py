"""What a worker does with an entry of the shared queue it cannot use: one its spider cannot run (another deploy).

Judged by the platform server's own log (what was fetched), the workers' exit codes and log lines, and the queue's
keys in a real ``redis-server``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import redis
import scrapy
from scrapy import signals
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.test import get_crawler

from consentcrawl.distributed import serializer
from consentcrawl_demo.server import LocalServer
from tests.conftest import consent_settings, crawl_within_limit
from tests.redis_server import RedisServer
from tests.test_distributed import SPIDER, Workers, grant, people_with_delay, worker_settings

PEOPLE = [str(i) for i in range(101, 107)]


def queue_entry(url: str, serializer: Any, **fields: Any) -> bytes:
    """A request as a worker queues it (``Request.to_dict``), with ``fields`` replaced."""
    return bytes(serializer.dumps({**scrapy.Request(url).to_dict(), **fields}))


def test_a_worker_that_cannot_run_a_queued_request_puts_it_back_for_one_that_can(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """The newer deploy queued requests for its callback ``parse_detail``; an older worker, without it, pops them
    first. It used to drop each one (logged, never fetched, gone from the queue): the newer worker found nothing.
    Now the older worker puts the request back, takes nothing more and closes as misconfigured (one CRITICAL
    line); the newer one fetches every person."""
    settings = worker_settings(redis_server.url, tmp_path, CONSENTCRAWL_REDIS_IDLE_CLOSE=1)
    grant(redis_server.url + "?prefix=auth", tmp_path, PEOPLE)
    client = redis.Redis.from_url(redis_server.url)
    try:
        for person in PEOPLE:
            client.zadd(f"{SPIDER}:requests", {queue_entry(f"http://people.example/u/{person}", serializer,
                                                           callback="parse_detail"): 0})
        people = people_with_delay()
        people.default_robots.crawl_delay = 0.05
        with LocalServer(people) as server:
            older = Workers(tmp_path / "older", server)
            (tmp_path / "older").mkdir()
            try:
                older.start(settings, ["ConsentSpider"])
                codes = older.wait()
            finally:
                older.kill()
            assert people.people_served() == [], people.describe()
            assert client.zcard(f"{SPIDER}:requests") == len(PEOPLE), older.describe()
            assert codes == [1], older.describe()
            log = older.logs[0].read_text()
            assert "CRITICAL: consentcrawl: this worker stops taking requests from the shared queue" in log
            assert "'parse_detail'" in log and "consentcrawl_config_error" in log
            newer = Workers(tmp_path / "newer", server)
            (tmp_path / "newer").mkdir()
            try:
                newer.start(settings, ["Detail"])
                codes = newer.wait()
            finally:
                newer.kill()
        assert codes == [0], newer.describe()
        assert set(people.people_served()) == set(PEOPLE), people.describe()
        assert client.zcard(f"{SPIDER}:requests") == 0
    finally:
        client.close()


# -- the queue's format: JSON, never pickle -------------------------------------------------------------------------

QUEUE = "microblog:requests"  #: scrapy-redis's queue key for the demo spider


class _Opens:
    """Unpickled, this creates a file: what any code run from the queue's data could do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def _queue_only_crawler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: LocalServer,
                        **overrides: Any) -> Any:
    """The demo spider without start requests, on the shared queue: it fetches what the queue holds."""
    from spiders.microblog import MicroblogSpider

    async def start(self: Any) -> Any:
        return
        yield

    settings = consent_settings(
        tmp_path, SCHEDULER="consentcrawl.distributed.scheduler.ConsentRedisScheduler",
        DUPEFILTER_CLASS="consentcrawl.distributed.scheduler.ConsentRedisDupeFilter", SCHEDULER_PERSIST=True,
        **overrides)
    monkeypatch.setenv("http_proxy", server.proxy)
    return get_crawler(type("QueueOnly", (MicroblogSpider,), {"start": start}), settings)


@deferred_f_from_coro_f
async def test_a_pickle_in_the_shared_queue_is_set_aside_never_loaded(
        redis_server: RedisServer, server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Whoever can write the queue's key wrote entries that run code when unpickled: one pickled as scrapy-redis's
    default serializer writes it, one of consentcrawl's format naming as its request class a module's that runs code
    when imported (Scrapy's ``request_from_dict`` imports the class an entry names, and calls it with the entry's
    values). Before, a worker unpickled the first (the file was created) and fetched it. Now neither runs anything:
    both are moved to ``QUEUE:refused`` as they were, counted and logged; the plain entry beside them is fetched."""
    marker = tmp_path / "ran"
    client = redis.Redis.from_url(redis_server.url)
    entry = scrapy.Request("http://microblog.example/u/1003").to_dict()
    pickled = pickle.dumps({**entry, "meta": {"x": _Opens(marker)}}, protocol=-1)
    (tmp_path / "queued_side_effect.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # a module that is there, never imported by the crawl
    popen = queue_entry("http://microblog.example/u/1004", serializer, _class="queued_side_effect.Request")
    plain = queue_entry("http://microblog.example/u/1001", serializer)
    crawler = _queue_only_crawler(tmp_path, monkeypatch, server, REDIS_URL=redis_server.url)
    crawler.signals.connect(lambda spider: client.zadd(QUEUE, {pickled: 0, popen: 1, plain: 2}),
                            signal=signals.spider_opened, weak=False)  # after the scheduler counted the queue
    try:
        await crawl_within_limit(crawler)
        refused = set(client.zrange(f"{QUEUE}:refused", 0, -1))
    finally:
        client.close()
    assert not marker.exists()
    fetched = [request.decoded_path for request in server.requests]
    assert "/u/1001" in fetched and "/u/1003" not in fetched and "/u/1004" not in fetched, fetched
    assert refused == {pickled, popen}
    assert crawler.stats.get_value("consentcrawl/shared_queue/refused/pickled") == 1
    assert crawler.stats.get_value("consentcrawl/shared_queue/refused/unreadable") == 1
    lines = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("an entry of the shared queue is a pickle (PickledEntry" in line for line in lines), lines
    assert any("'queued_side_effect.Request' is not a request class" in line for line in lines), lines


@deferred_f_from_coro_f
async def test_a_request_json_cannot_carry_is_sent_by_its_own_worker(
        redis_server: RedisServer, server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request whose meta holds a value of the project's own (a ``datetime``) cannot go to the shared queue in
    JSON; the worker that made it keeps and sends it (as Scrapy keeps in memory what its disk queue cannot store),
    after its decision: the authorized person is fetched, the revoked one is not."""
    from datetime import datetime, timezone

    crawler = _queue_only_crawler(tmp_path, monkeypatch, server, REDIS_URL=redis_server.url)
    when = {"when": datetime.now(timezone.utc)}

    def opened(spider: Any) -> None:
        for person in ("1001", "1002"):
            crawler.engine.crawl(scrapy.Request(f"http://microblog.example/u/{person}", meta=when))

    crawler.signals.connect(opened, signal=signals.spider_opened, weak=False)
    await crawl_within_limit(crawler)
    fetched = [request.decoded_path for request in server.requests]
    assert fetched.count("/u/1001") == 1 and "/u/1002" not in fetched, fetched
    assert crawler.stats.get_value("consentcrawl/shared_queue/kept_local") == 1


# -- a put-back that Redis refused --------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Spider.log:scrapy.exceptions.ScrapyDeprecationWarning")  # scrapy-redis's
@deferred_f_from_coro_f
async def test_a_request_a_worker_could_not_put_back_stays_where_another_worker_takes_it_back(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker pops a request for a callback its spider lacks, and Redis refuses the put-back (here its ACL denies
    ZADD: a real error, as a failover's would be). The request stayed in the worker's own in-flight hash, counted
    as the worker's, and when the worker then finished (idle) its in-flight hash was deleted: the request was gone,
    for every worker. Now it is left in the hash (not counted as the worker's: the next sweep queues it again),
    where the other workers take it back once this one's heartbeat lapses."""
    from tests.lenient import LenientPeople, ListLogic, crawl, make_spider, people_settings

    admin = redis.Redis.from_url(redis_server.url)
    try:
        admin.execute_command("ACL", "SETUSER", "worker", "on", ">secret", "~*", "&*", "+@all", "-zadd")
        restricted = redis_server.url.replace("redis://", "redis://worker:secret@")
        entry = queue_entry("http://people.example/u/101", serializer, callback="parse_detail")
        admin.zadd("worker:requests", {entry: 0})
        settings = people_settings(tmp_path, SCHEDULER="consentcrawl.distributed.scheduler.ConsentRedisScheduler",
                                   DUPEFILTER_CLASS="consentcrawl.distributed.scheduler.ConsentRedisDupeFilter",
                                   SCHEDULER_PERSIST=True, REDIS_URL=restricted, CONSENTCRAWL_REDIS_TIMEOUT=0.5,
                                   REDIS_PARAMS={"socket_timeout": 1, "socket_connect_timeout": 1})
        app = LenientPeople()
        with LocalServer(app) as server:
            result = await crawl(make_spider("ADDONS", ListLogic, name="worker"), settings, proxy=server.proxy,
                                 monkeypatch=monkeypatch, urls=[])
        assert app.people_served() == [], app.describe()
        assert result.stats.get("consentcrawl/shared_queue/unavailable"), result.stats  # the refused put-back
        held = [value for key in admin.scan_iter(match="worker:requests:inflight:*")
                for value in admin.hvals(key)]
        assert admin.zcard("worker:requests") + len(held) == 1, (result.stats, held)
    finally:
        admin.close()


@pytest.mark.filterwarnings("ignore:Spider.log:scrapy.exceptions.ScrapyDeprecationWarning")  # scrapy-redis's
@deferred_f_from_coro_f
async def test_a_queue_entry_for_a_file_of_the_worker_is_not_fetched(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whoever can write the shared queue pushed a ``file://`` request for a file on the workers' disk (a local URL
    is never decided). The worker that popped it read the file and handed it to the spider's callback. A local file
    is no request another worker can have meant for this one: the entry is set aside (``QUEUE:refused``), counted,
    and nothing reads the file. A worker's own ``file://`` requests are sent by itself, never queued."""
    from tests.lenient import LenientPeople, ListLogic, crawl, make_spider, people_settings

    secret = tmp_path / "secret.txt"
    secret.write_text("the worker's own secret\n", encoding="utf-8")
    own = tmp_path / "own.txt"
    own.write_text("a file this worker's spider asks for\n", encoding="utf-8")
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.zadd("worker:requests", {queue_entry(secret.as_uri(), serializer, callback="parse"): 0})
        settings = people_settings(tmp_path, SCHEDULER="consentcrawl.distributed.scheduler.ConsentRedisScheduler",
                                   DUPEFILTER_CLASS="consentcrawl.distributed.scheduler.ConsentRedisDupeFilter",
                                   SCHEDULER_PERSIST=True, REDIS_URL=redis_server.url,
                                   REDIS_PARAMS={"socket_timeout": 1, "socket_connect_timeout": 1})
        with LocalServer(LenientPeople()) as server:
            result = await crawl(make_spider("ADDONS", ListLogic, name="worker"), settings, proxy=server.proxy,
                                 monkeypatch=monkeypatch, urls=[own.as_uri()])
        assert secret.as_uri() not in result.seen, result.seen
        assert own.as_uri() in result.seen, result.seen  # control: the worker's own file request
        assert result.stats.get("consentcrawl/shared_queue/refused/unreadable") == 1, result.stats
        assert client.zcard("worker:requests:refused") == 1
    finally:
        client.close()
