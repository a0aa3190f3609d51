"""A distributed crawl: one worker collects a person, another worker then reads their refusal and publishes it to
the cluster; at its close the first worker purges what it collected of them (``CONSENTCRAWL_PURGE_ON_CLOSE``,
docs/purge.md). Judged by the platform server's log, the worker's own output files and its audit log.

The worker is a real process on the shared queue (``tests/test_distributed.py``'s harness) and a real
``redis-server``; the other worker's part is played by the test with the function every worker publishes a
refusal with (:func:`consentcrawl.distributed.refusals.publish_refusal`), at a moment the test chooses: after the
person's page was collected.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.audit.log import read_audit_log
from consentcrawl.distributed.refusals import publish_refusal
from consentcrawl.distributed.shared import SharedState
from consentcrawl_demo.server import LocalServer
from tests.conftest import run_crawl
from tests.lenient import LenientPeople, people_settings
from tests.redis_server import RedisServer
from tests.test_distributed import Workers, await_until, grant, push_seeds, worker_settings

EVIDENCE = {"url": "http://people.example/u/105", "form": "hashtag.nobot", "field": "p-note",
            "event_id": "event-of-the-other-worker"}


async def _publish(url: str) -> None:
    shared = SharedState(url)
    try:
        assert await publish_refusal(shared, "people", "105", EVIDENCE)
    finally:
        await shared.close()


def _whose(item: dict[str, Any]) -> str:
    return str(item["consentcrawl"]["subject"])


def test_a_refusal_another_worker_published_purges_what_this_worker_collected(
        redis_server: RedisServer, tmp_path: Path) -> None:
    people = LenientPeople()
    people.listing = {1: []}
    out = tmp_path / "out"
    settings = worker_settings(redis_server.url, tmp_path, CONSENTCRAWL_REDIS_IDLE_CLOSE=3,
                               CONSENTCRAWL_PURGE_ON_CLOSE=True, HTTPCACHE_ENABLED=True,
                               HTTPCACHE_DIR=str(out / "httpcache"),
                               FEEDS={str(out / "items.jsonl"): {"format": "jsonlines"}})
    grant(redis_server.url + "?prefix=auth", tmp_path, ["101", "105"])
    with LocalServer(people) as server:
        workers = Workers(tmp_path, server)
        try:
            workers.start(settings, ["ConsentSpider"])
            workers.wait_open()
            push_seeds(redis_server.url, ["http://people.example/u/105", "http://people.example/u/101"])
            await_until(lambda: {_whose(i) for i in workers.items()} == {"101", "105"}, 20, "both people collected")
            # another worker read 105's refusal, after this one collected (its own loop: the test's is running)
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, _publish(redis_server.url)).result(10)
            codes = workers.wait()
        finally:
            workers.kill()
    log = people.describe()
    assert codes == [0], workers.describe()
    # the path to the leak: 105's page was fetched (once) and collected before the refusal was known
    assert len(people.times_served("105")) == 1, log
    assert "105" in {_whose(i) for i in workers.items()}
    # after the close: nothing of 105 in the worker's feed or cache; 101 kept
    kept = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert {_whose(i) for i in kept} == {"101"}, kept
    urls = [str(ast.literal_eval(m.read_text())["url"]) for m in (out / "httpcache").rglob("meta")]
    assert "http://people.example/u/101" in urls and not [u for u in urls if "105" in u], urls
    [audit] = workers.audit_files()
    receipts = [e for e in read_audit_log(audit) if e.get("event") == "purge-receipt"]
    assert [(r["subject"], r["selection"]) for r in receipts] == [("people:105", "refused-during-crawl")], receipts
    assert receipts[0]["because"] == [{"event": "event-of-the-other-worker", "form": "hashtag.nobot",
                                       "seen_by": "another worker"}]
    assert {t["kind"]: t["removed"] for t in receipts[0]["targets"]} == {
        "jsonlines": 1, "httpcache": 1, "shared-queue": 0,  # nothing of 105 queued
        "shared-dupefilter": 1}  # the fingerprint of 105's page, which was fetched
    # pytest's temporary directory (``/tmp/pytest-of-root/pytest-105/...``) is in the lines that name files
    text = re.sub(r"pytest-\d+", "pytest-N", "\n".join(p.read_text() for p in workers.logs))
    # the id as a number of its own: ports, pids and the stats' byte counts in the log may hold its digits
    named = [line for line in text.splitlines() if "DEBUG" not in line and re.search(r"(?<!\d)105(?!\d)", line)]
    assert not named, text


def test_the_cluster_refusals_read_at_the_close_and_a_redis_that_cannot_answer(redis_server: RedisServer) -> None:
    """``RefusalFeed.settle``: every person refused or unread, with the evidence; a member this code does not
    write is skipped; Redis down leaves it unread (None: the purge says so, and counts a failure)."""
    from consentcrawl.distributed.refusals import RefusalFeed
    from consentcrawl.refusals.book import ClusterSay

    async def run() -> tuple[Any, Any]:
        shared = SharedState(redis_server.url)
        try:
            await publish_refusal(shared, "people", "105", EVIDENCE)
            await publish_refusal(shared, "people", "106", {"url": "u", "cause": "HTTP 500"}, unread=True)
            await shared.client.hset(shared.key("refused"), "not json", "{}")
            feed = RefusalFeed(shared)
            await feed.settle()
            up = feed.settled
            redis_server.stop()
            down = RefusalFeed(shared)
            await down.settle()
            return up, down.settled
        finally:
            await shared.close()

    with ThreadPoolExecutor(1) as pool:
        up, down = pool.submit(asyncio.run, run()).result(30)
    assert up == {("people", "105"): ClusterSay(False, EVIDENCE),
                  ("people", "106"): ClusterSay(True, {"url": "u", "cause": "HTTP 500"})}
    assert down is None


@deferred_f_from_coro_f
async def test_a_worker_that_cannot_read_the_cluster_at_its_close_says_so_and_counts_a_failure(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Redis stops after the worker collected 101: whether another worker found 101 refusing cannot be known at
    the close; 101's items stay (no one is purged on a guess), the ERROR says why, ``purge/failed`` counts it."""

    result, server, out = await crawl_while_redis_stops("/u/101", redis_server, tmp_path, monkeypatch, caplog)
    assert [r.decoded_path for r in server.requests if r.decoded_path.startswith("/u/")] == ["/u/101"]
    assert [i["subject"] for i in result.items] == ["101"]
    errors = [r.getMessage() for r in caplog.records if "cluster's refusals could not be read" in r.getMessage()]
    assert len(errors) == 1 and not re.search(r"(?<!\d)101(?!\d)", errors[0]), errors
    assert result.stats["consentcrawl/purge/failed"] >= 1
    assert [json.loads(line)["subject"] for line in (out / "items.jsonl").read_text().splitlines()] == ["101"]


async def crawl_while_redis_stops(path: str, redis_server: RedisServer, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                  ) -> tuple[Any, LocalServer, Path]:
    """One worker with purge on close fetches ``path`` and, in its callback, loses Redis, then yields an item of
    101: the crawl's result, the server, and the folder of its feed (``items.jsonl``); consentcrawl's ERROR lines
    captured."""

    class OnePage(scrapy.Spider):
        name = "onepage"
        custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}}

        async def start(self) -> Any:
            yield scrapy.Request(f"http://people.example{path}", callback=self.parse)

        def parse(self, response: Any) -> Iterator[Any]:
            redis_server.stop()
            yield {"subject": "101", "platform": "people"}

    out = tmp_path / "out"
    settings = people_settings(tmp_path, CONSENTCRAWL_REDIS_URL=redis_server.url, CONSENTCRAWL_REDIS_TIMEOUT=0.5,
                               CONSENTCRAWL_PURGE_ON_CLOSE=True, LOG_LEVEL="INFO",
                               FEEDS={str(out / "items.jsonl"): {"format": "jsonlines"}})
    with LocalServer(LenientPeople()) as server, caplog.at_level(logging.ERROR, logger="consentcrawl"):
        result = await run_crawl(OnePage, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    return result, server, out
