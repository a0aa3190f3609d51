"""``consentcrawl purge --shared-queue REDIS_URL#KEY`` names a key that is no queue, or no key at all.

A key of another type (a string, a list) was reported as "Redis did not answer: ResponseError"; a key that does not
exist (a typo, another database) was "nothing to remove", exit 0, as an emptied queue is: an erasure the user
believed done was done nowhere. Both fail (exit 1) naming the key and what is wrong, without the URL's password; an
emptied queue of a crawl that ran (it leaves ``SPIDER:dupefilter``, or keys under ``KEY:``) still purges. Against a
real ``redis-server`` (tests/redis_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import scrapy

from consentcrawl.cli import main
from consentcrawl.distributed import serializer
from tests.lenient import HOST, people_settings
from tests.redis_server import RedisServer

PASSWORD = "s3cret-pw"


def _purge(tmp_path: Path, queue: str) -> int:
    return main(["purge", "--platforms", str(tmp_path / "platforms.yaml"), "--audit-log",
                 str(tmp_path / "audit.jsonl"), "--subject", "people:104", "--shared-queue", queue])


@pytest.fixture
def guarded(redis_server: RedisServer) -> Iterator[tuple[redis.Redis, str]]:
    """The server with a password (as a shared Redis has), a client, and its URL with the password in it."""
    client = redis.Redis.from_url(redis_server.url)
    client.config_set("requirepass", PASSWORD)
    client.close()
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_server.port}/0"
    client = redis.Redis.from_url(url)
    yield client, url
    client.close()


@pytest.mark.parametrize(("make", "kind"), [
    (lambda c, k: c.set(k, "x"), "string"),
    (lambda c, k: c.rpush(k, "x"), "list"),  # a FifoQueue's, not the PriorityQueue consentcrawl's workers keep
    (lambda c, k: c.set(f"{k}:refused", "x"), "string"),
    (lambda c, k: c.set(f"{k}:inflight:w1", "x"), "string"),
])
def test_a_key_of_another_type_fails_naming_it(
    guarded: tuple[redis.Redis, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, kind: str,
) -> None:
    client, url = guarded
    people_settings(tmp_path)
    key = "spider:requests"
    entry = serializer.dumps(scrapy.Request(f"http://{HOST}/u/104").to_dict())
    make(client, key)  # type: ignore[operator]
    if client.type(key) == b"none":
        client.zadd(key, {entry: 0})
    assert _purge(tmp_path, f"{url}#{key}") == 1
    err = capsys.readouterr().err
    assert "is not a scrapy-redis queue's: it is a Redis " + kind in err, err
    assert "ResponseError" not in err and "did not answer" not in err and "Traceback" not in err, err
    assert PASSWORD not in err and PASSWORD not in (tmp_path / "audit.jsonl").read_text(), err
    if client.type(key) == b"zset":
        assert client.zrange(key, 0, -1) == [entry], "nothing removed from a queue the purge could not read whole"


@pytest.mark.parametrize("key", ["spider:requets", "jobs"])
def test_a_key_that_does_not_exist_fails_naming_it(
    guarded: tuple[redis.Redis, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str,
) -> None:
    client, url = guarded
    people_settings(tmp_path)
    client.zadd("spider:requests", {serializer.dumps(scrapy.Request(f"http://{HOST}/u/104").to_dict()): 0})
    client.sadd("spider:dupefilter", "f" * 40)
    assert _purge(tmp_path, f"{url}#{key}") == 1
    err = capsys.readouterr().err
    assert f"no key {key!r} in this Redis database" in err and "nothing removed" in err, err
    assert "nothing to remove" not in err and PASSWORD not in err, err
    assert client.zcard("spider:requests") == 1  # the real queue was not the one named


@pytest.mark.parametrize("left", [
    lambda c: c.sadd("spider:dupefilter", "f" * 40),  # a persisting crawl's fingerprints
    lambda c: c.hset("spider:requests:callbacks", "w1", "[]"),  # a worker still up
    lambda c: c.zadd("spider:requests:refused", {b"\x80\x05x": 0}),
])
def test_an_emptied_queue_of_a_crawl_that_ran_is_nothing_to_remove(
    guarded: tuple[redis.Redis, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], left: object,
) -> None:
    client, url = guarded
    people_settings(tmp_path)
    left(client)  # type: ignore[operator]
    code = _purge(tmp_path, f"{url}#spider:requests")
    out, err = capsys.readouterr()
    assert "no key" not in err and "not a scrapy-redis queue" not in err, err
    # a pickle set aside in KEY:refused is still reported as unreadable (exit 1): that is the only failure
    assert code == (1 if client.exists("spider:requests:refused") else 0), (out, err)
