"""``consentcrawl purge --shared-queue REDIS_URL#SPIDER:requests`` reaches what a distributed crawl keeps beside its
queue: the dupefilter's fingerprints (``SPIDER:dupefilter``) with their claims, and the seeds list.

A fingerprint is a hash of the request: no URL can be read back, but anyone with the Redis can fingerprint a guessed
URL (``/u/102``) and ask the set, and learn that the crawl queued that person. A real distributed crawl with a real
``redis-server`` stops early (its profiles still queued); 102 is purged; judged by what Redis holds afterwards
(``SMEMBERS``, ``EXISTS``, ``LRANGE``) and by the receipt.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.request import fingerprint

from consentcrawl.cli import main
from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, ListLogic, crawl, make_spider, people_settings
from tests.redis_server import RedisServer
from tests.test_purge_refusals import receipts_for

BASE = f"http://{HOST}"


def _fp(url: str) -> bytes:
    return fingerprint(scrapy.Request(url)).hex().encode()


@deferred_f_from_coro_f
async def test_the_persons_fingerprints_claims_and_seeds_leave_redis(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = people_settings(
        tmp_path, SCHEDULER="consentcrawl.distributed.scheduler.ConsentRedisScheduler",
        DUPEFILTER_CLASS="consentcrawl.distributed.scheduler.ConsentRedisDupeFilter", SCHEDULER_PERSIST=True,
        REDIS_URL=redis_server.url, CLOSESPIDER_PAGECOUNT=1, CONCURRENT_REQUESTS=1,
        CONSENTCRAWL_REDIS_IDLE_CLOSE=1)
    app = LenientPeople()
    with LocalServer(app) as server:
        await crawl(make_spider("ConsentSpider", ListLogic, name="stopped"), settings, proxy=server.proxy,
                    monkeypatch=monkeypatch, urls=[f"{BASE}/people?page=1"])
    assert app.people_served() == [], app.describe()
    module = tmp_path / "seeds_settings.py"
    module.write_text('CONSENTCRAWL_REDIS_START_KEY = "%(name)s:start_urls"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    client = redis.Redis.from_url(redis_server.url)
    try:
        held = client.smembers("stopped:dupefilter")
        assert {_fp(f"{BASE}/u/{p}") for p in ("101", "102", "103")} <= held, held
        assert client.exists(f"stopped:dupefilter:claim:{_fp(f'{BASE}/u/102').decode()}")
        seeds = [f"{BASE}/u/102".encode(), json.dumps({"url": f"{BASE}/@102"}).encode(), f"{BASE}/u/103".encode(),
                 json.dumps({"url": f"{BASE}/people?page=2", "meta": {"consentcrawl_subject": "people:102"}}).encode()]
        client.rpush("stopped:start_urls", *seeds)

        code = main(["purge", "--platforms", str(tmp_path / "platforms.yaml"), "--audit-log",
                     str(tmp_path / "audit.jsonl"), "--subject", "people:102", "--settings", "seeds_settings",
                     "--shared-queue", f"{redis_server.url}#stopped:requests"])
        assert code == 0, capsys.readouterr()
        left = client.smembers("stopped:dupefilter")
        assert _fp(f"{BASE}/u/102") not in left and _fp(f"{BASE}/u/101") in left and _fp(f"{BASE}/u/103") in left
        assert left == held - {_fp(f"{BASE}/u/102")}, "everyone else's fingerprints stay"
        assert not client.exists(f"stopped:dupefilter:claim:{_fp(f'{BASE}/u/102').decode()}")
        assert client.exists(f"stopped:dupefilter:claim:{_fp(f'{BASE}/u/103').decode()}")
        assert client.lrange("stopped:start_urls", 0, -1) == [seeds[2]]
        [receipt] = receipts_for(tmp_path / "audit.jsonl", "people:102")
        kinds = {t["kind"]: t["removed"] for t in receipt["targets"]}
        assert kinds == {"shared-queue": 1, "shared-dupefilter": 1, "shared-seeds": 3}, receipt
        assert not receipt["failed"], receipt
    finally:
        client.close()


def test_a_fingerprint_nothing_explains_takes_the_whole_dupefilter(
        redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A fingerprint no log line, queued request or profile URL explains may be the person's (a POST, a spelling
    nothing recorded): the set goes whole with every claim, as a ``requests.seen`` does; ``--keep-seen`` keeps the
    others; ``--dry-run`` changes nothing."""
    people_settings(tmp_path)
    client = redis.Redis.from_url(redis_server.url)
    try:
        both = {_fp(f"{BASE}/u/102"), b"ab" * 16}
        for keep_seen, expected in ((["--dry-run"], both), ([], set()), (["--keep-seen"], {b"ab" * 16})):
            client.sadd("spider:dupefilter", _fp(f"{BASE}/u/102"), b"ab" * 16)
            client.set("spider:dupefilter:claim:" + "ab" * 16, "w:1")
            code = main(["purge", "--platforms", str(tmp_path / "platforms.yaml"), "--audit-log",
                         str(tmp_path / "audit.jsonl"), "--subject", "people:102", *keep_seen,
                         "--shared-queue", f"{redis_server.url}#spider:requests"])
            assert code == 0, capsys.readouterr()
            assert client.smembers("spider:dupefilter") == expected
            assert bool(client.exists("spider:dupefilter:claim:" + "ab" * 16)) == bool(keep_seen), keep_seen
    finally:
        client.close()
