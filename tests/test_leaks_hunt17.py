"""Fresh-eyes leak hunt (hunt17): what a purge leaves in outputs a project shaped with Scrapy's feed options.

Tests marked "Fixed" failed on main (f2753f1) and pass since their fix.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import redis
import scrapy
from scrapy.exceptions import CloseSpider
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl.distributed import serializer
from consentcrawl_demo.fediverse import FediverseSite
from consentcrawl_demo.server import LocalServer
from spiders.fediverse import SETTINGS
from tests.conftest import consent_settings, jsonl, run_crawl
from tests.lenient import HOST, LenientPeople, ListLogic, crawl, make_spider, people_settings
from tests.redis_server import RedisServer
from tests.test_purge_refusals import TimelineSpider, receipts_for

BASE = f"http://{HOST}"


@pytest.mark.parametrize("fmt", ["jsonlines", "json"])
@deferred_f_from_coro_f
async def test_a_feed_exported_without_the_subject_and_provenance_fields_is_not_purged_silently(
        fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Fixed. ``FEED_EXPORT_FIELDS`` (or a feed's ``fields``) that leaves out the subject and the provenance field,
    as a project that wants only its own columns writes it, gives a JSON Lines or JSON feed whose records name no
    one by the fields the purge reads. Bob's posts, collected before his profile said ``#nobot``, stayed in the
    feed while the purge on close counted him purged, with no failure: a CSV feed of the same fields failed the
    purge ("cannot tell whose records are in it"). Such a record is now a failure named with its cause (an ERROR,
    ``consentcrawl/purge/failed``, the receipt lists it), as in a CSV feed."""
    out = tmp_path / "out"
    feed = out / ("items.jsonl" if fmt == "jsonlines" else "items.json")
    with caplog.at_level(logging.INFO):
        settings = consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=[str(SETTINGS / "fediverse.yaml")],
                                    CONSENTCRAWL_AUTHORIZATIONS=str(SETTINGS / "fediverse-authorizations.jsonl"),
                                    CONSENTCRAWL_PURGE_ON_CLOSE=True, FEEDS={str(feed): {"format": fmt}},
                                    FEED_EXPORT_FIELDS=["kind", "text", "name"])
        with LocalServer(FediverseSite()) as server:
            result = await run_crawl(TimelineSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    served = [r.decoded_path for r in server.requests if r.decoded_path.startswith("/@bob")]
    assert served == ["/@bob/posts", "/@bob"], served  # bob's posts came before his refusal
    assert result.stats["consentcrawl/purge/people"] == 1
    records = jsonl(feed) if fmt == "jsonlines" else json.loads(feed.read_text())
    posts = [r for r in records if r["kind"] == "post"]
    assert posts, records
    # bob's posts are still in the feed (nothing in them says whose they are): the purge must not claim success
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:bob")
    failed = [f["why"] for f in receipt["failed"] if f["path"] == str(feed)]
    assert failed and all("cannot tell whose" in why for why in failed), receipt
    assert result.stats.get("consentcrawl/purge/failed"), result.stats
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("cannot tell whose" in line for line in errors), errors


# -- a distributed crawl's shared queue, left in Redis ---------------------------------------------------------------


@deferred_f_from_coro_f
async def test_purge_shared_queue_erases_the_persons_requests_a_stopped_distributed_crawl_left_in_redis(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Fixed. A distributed crawl keeps its queue in Redis (``SCHEDULER_PERSIST = True``, as docs/distributed.md
    says to set it), so a worker stopped early (``CLOSESPIDER_*``, a deploy, a signal) leaves every request it queued
    there: each one's URL, headers and meta, the person's data at rest, as a paused crawl's ``JOBDIR`` keeps them.
    ``consentcrawl purge --jobdir`` erases those of a person who withdrew; nothing erased them from Redis. Now
    ``--shared-queue REDIS_URL#KEY`` does: the person's entries go, everyone else's stay as they were, with a
    receipt."""
    settings = people_settings(
        tmp_path, SCHEDULER="consentcrawl.distributed.scheduler.ConsentRedisScheduler",
        DUPEFILTER_CLASS="consentcrawl.distributed.scheduler.ConsentRedisDupeFilter", SCHEDULER_PERSIST=True,
        REDIS_URL=redis_server.url, CLOSESPIDER_PAGECOUNT=1, CONCURRENT_REQUESTS=1,
        CONSENTCRAWL_REDIS_IDLE_CLOSE=1)
    app = LenientPeople()
    with LocalServer(app) as server:
        await crawl(make_spider("ConsentSpider", ListLogic, name="stopped"), settings, proxy=server.proxy,
                    monkeypatch=monkeypatch, urls=[f"{BASE}/people?page=1"])
    assert app.people_served() == [], app.describe()  # the listing only: the profiles waited in the queue
    client = redis.Redis.from_url(redis_server.url)
    try:
        def queued() -> list[str]:
            return sorted(serializer.loads(raw)["url"] for raw in client.zrange("stopped:requests", 0, -1))

        assert queued() == [f"{BASE}/u/{p}" for p in ("101", "102", "103")]  # the authorized ones were queued
        code = main(["purge", "--platforms", str(tmp_path / "platforms.yaml"), "--audit-log",
                     str(tmp_path / "audit.jsonl"), "--subject", "people:102",
                     "--shared-queue", f"{redis_server.url}#stopped:requests"])
        assert code == 0, capsys.readouterr()
        assert queued() == [f"{BASE}/u/101", f"{BASE}/u/103"]
        [receipt] = receipts_for(tmp_path / "audit.jsonl", "people:102")
        [target] = [t for t in receipt["targets"] if t["kind"] == "shared-queue"]
        assert target["removed"] == 1, receipt
        assert not receipt["failed"], receipt
    finally:
        client.close()


def test_purge_shared_queue_reads_every_key_of_the_queue_and_fails_on_what_it_cannot_read(
        redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Whose an entry is, read as a ``JOBDIR``'s queued request: 101's page found on 102's (its ``Referer``) goes
    with 102; a killed worker's in-flight entry of 102 goes; a pickle another version set aside cannot be read: it
    stays, and the purge fails (exit 1) saying so. Everyone else's entries stay, byte for byte."""
    people_settings(tmp_path)  # writes platforms.yaml
    key = "spider:requests"
    entry = scrapy.Request(f"{BASE}/u/103").to_dict()
    keep = serializer.dumps(entry)
    via = serializer.dumps({**entry, "url": f"{BASE}/u/101", "headers": {b"Referer": [f"{BASE}/u/102".encode()]}})
    held = serializer.dumps({**entry, "url": f"{BASE}/@102"})
    pickled = b"\x80\x05" + b"not read"
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.zadd(key, {keep: 0, via: 1})
        client.hset(f"{key}:inflight:w1", "h:0:x:1", held)
        client.zadd(f"{key}:refused", {pickled: 0, serializer.dumps(["not", "a", "request"]): 1})
        code = main(["purge", "--platforms", str(tmp_path / "platforms.yaml"), "--audit-log",
                     str(tmp_path / "audit.jsonl"), "--subject", "people:102",
                     "--shared-queue", f"{redis_server.url}#{key}"])
        err = capsys.readouterr().err
        assert code == 1 and "cannot tell whose" in err, err
        assert client.zrange(key, 0, -1) == [keep]
        assert client.hgetall(f"{key}:inflight:w1") == {}
        assert client.zrange(f"{key}:refused", 0, -1)[0] == pickled and client.zcard(f"{key}:refused") == 2
        assert "2 entries not in consentcrawl's queue format" in err, err
        [receipt] = receipts_for(tmp_path / "audit.jsonl", "people:102")
        assert [t["removed"] for t in receipt["targets"]] == [2], receipt
    finally:
        client.close()


def test_purge_shared_queue_usage_and_an_unreachable_redis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A queue named without its key is a usage error (exit 2, its password not echoed); a Redis that does not answer
    fails the purge naming the queue (exit 1), with no traceback and no credential."""
    people_settings(tmp_path)
    base = ["purge", "--platforms", str(tmp_path / "platforms.yaml"), "--audit-log", str(tmp_path / "audit.jsonl"),
            "--subject", "people:102", "--shared-queue"]
    assert main([*base, "redis://user:s3cret@127.0.0.1:1/0"]) == 2
    err = capsys.readouterr().err
    assert "--shared-queue" in err and "s3cret" not in err, err
    assert main([*base, "redis://user:s3cret@127.0.0.1:1/0#spider:requests"]) == 1
    err = capsys.readouterr().err
    assert "127.0.0.1:1/0#spider:requests: Redis did not answer" in err and "s3cret" not in err, err
    assert "Traceback" not in err


class StopsAtTheWithdrawal(TimelineSpider):
    """Alice's profile, then her posts and, at a lower priority, their second page, both queued in the shared queue;
    she withdraws while her posts wait out ``DOWNLOAD_DELAY`` (the store polls every 0.1 s), so they are denied at
    send time and the errback stops the crawl (``CloseSpider``). The worker put back what it still held: her denied
    request is in the shared queue when the crawl ends."""

    name = "stops"
    custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}, "CONCURRENT_REQUESTS": 1}
    authorizations: Path

    async def start(self) -> Any:
        yield scrapy.Request("http://fedi.example/@alice", callback=self.parse_profile, cb_kwargs={"name": "alice"})

    def parse_profile(self, response: Any, name: str) -> Any:
        yield response.follow(f"/@{name}/posts", callback=self.parse_posts, cb_kwargs={"name": name}, priority=5,
                              errback=self.stop)
        yield response.follow(f"/@{name}/posts?page=2", callback=self.parse_posts, cb_kwargs={"name": name},
                              priority=-10)
        # queued; she withdraws while her posts wait out DOWNLOAD_DELAY (the store sees it within 2 s)
        lines = self.authorizations.read_text().splitlines()
        self.authorizations.write_text("".join(
            line.replace('"granted_at"', '"revoked_at": "2026-03-01T00:00:00Z", "granted_at"') + "\n"
            if '"alice"' in line else line + "\n" for line in lines))

    def stop(self, failure: Any) -> None:
        raise CloseSpider("withdrawn")


@deferred_f_from_coro_f
async def test_purge_on_close_erases_a_withdrawn_persons_requests_from_the_shared_queue(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. Purge on close erased the requests a withdrawn (or refused) person had in the crawl's ``JOBDIR``; a
    distributed crawl's queue, kept in Redis (``SCHEDULER_PERSIST``), kept them after the crawl. Now the worker's
    purge on close takes them out of the shared queue too."""
    out = tmp_path / "out"
    authorizations = tmp_path / "authorizations.jsonl"
    authorizations.write_text((SETTINGS / "fediverse-authorizations.jsonl").read_text())
    settings = consent_settings(
        tmp_path, CONSENTCRAWL_PLATFORMS=[str(SETTINGS / "fediverse.yaml")],
        CONSENTCRAWL_AUTHORIZATIONS=str(authorizations), CONSENTCRAWL_PURGE_ON_CLOSE=True,
        FEEDS={str(out / "items.jsonl"): {"format": "jsonlines"}},
        SCHEDULER="consentcrawl.distributed.scheduler.ConsentRedisScheduler",
        DUPEFILTER_CLASS="consentcrawl.distributed.scheduler.ConsentRedisDupeFilter", SCHEDULER_PERSIST=True,
        REDIS_URL=redis_server.url, DOWNLOAD_DELAY=1, DOWNLOAD_DELAY_JITTER=0,
        CONSENTCRAWL_AUTHORIZATIONS_POLL=0.1)
    with LocalServer(FediverseSite()) as server:
        result = await run_crawl(StopsAtTheWithdrawal, settings, proxy=server.proxy, monkeypatch=monkeypatch,
                                 authorizations=authorizations)
        served = [r.decoded_path for r in server.requests if r.decoded_path.startswith("/@alice")]
    assert served == ["/@alice"], served
    assert result.stats["consentcrawl/purge/people"] == 1
    assert not jsonl(out / "items.jsonl")
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.zrange("stops:requests", 0, -1) == []
    finally:
        client.close()
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:alice")
    assert {t["kind"]: t["removed"] for t in receipt["targets"]}.get("shared-queue") == 1, receipt


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_record_with_an_empty_subject_and_no_provenance_fails_the_purge(
        suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Fixed. An item that names no one on a person's page is judged by the guard as that person's; exported
    without its provenance (``FEED_EXPORT_FIELDS = ["subject", "text"]``), it has a subject field, empty, and
    nothing else to tell whose it is. The purge kept it silently, in JSON Lines and CSV alike; it is now kept and
    reported (exit 1), beside a record it can read, which goes."""
    people_settings(tmp_path)
    feed = tmp_path / f"items{suffix}"
    if suffix == ".jsonl":
        feed.write_text('{"subject": "102", "platform": "people", "text": "theirs"}\n'
                        '{"subject": null, "text": "SECRET-NAME-102 wrote this"}\n')
    else:
        feed.write_text("subject,platform,text\r\n102,people,theirs\r\n,,SECRET-NAME-102 wrote this\r\n")
    code = main(["purge", "--platforms", str(tmp_path / "platforms.yaml"), "--audit-log",
                 str(tmp_path / "audit.jsonl"), "--subject", "people:102", str(feed)])
    err = capsys.readouterr().err
    assert code == 1 and "names no one by its 'subject' or 'consentcrawl' field" in err, err
    assert "theirs" not in feed.read_text() and "SECRET-NAME-102" in feed.read_text()
