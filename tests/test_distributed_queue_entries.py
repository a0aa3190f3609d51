"""What a worker does with an entry of the shared queue it cannot use: one its spider cannot run (another deploy).

Judged by the platform server's own log (what was fetched), the workers' exit codes and log lines, and the queue's
keys in a real ``redis-server``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
import scrapy

from consentcrawl_demo.server import LocalServer
from tests.redis_server import RedisServer
from tests.test_distributed import SPIDER, Workers, grant, people_with_delay, worker_settings

PEOPLE = [str(i) for i in range(101, 107)]


def queue_entry(url: str, serializer: Any, **fields: Any) -> bytes:
    """A request as a worker queues it (``Request.to_dict``), with ``fields`` replaced."""
    return bytes(serializer.dumps({**scrapy.Request(url).to_dict(), **fields}))


def _serializer() -> Any:
    import scrapy_redis.picklecompat

    return scrapy_redis.picklecompat


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
            client.zadd(f"{SPIDER}:requests", {queue_entry(f"http://people.example/u/{person}", _serializer(),
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
