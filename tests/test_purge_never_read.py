"""People whose posts a crawl collected but whose profile it never read (the crawl ended, ``CLOSESPIDER_*`` came
first, or the spider never asked for it): no page showing their profile was read for refusals, so what they say is
not known. With ``CONSENTCRAWL_PURGE_ON_CLOSE`` they are erased as ``unread-during-crawl`` (``because``
``profile-never-read``); without it they are counted (a WARNING, no id, and a stat). Real crawls of the fediverse
demo server, judged by the server's request log and the output files on disk (docs/purge.md, "Purge on close")."""

from __future__ import annotations

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
from scrapy.exceptions import CloseSpider
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.audit.chain import verify
from consentcrawl.distributed.refusals import profiles_read, publish_profile_read
from consentcrawl.distributed.shared import SharedState
from consentcrawl.purge.denied import NEVER_READ, UNREAD, denied_people
from consentcrawl.refusals.book import RefusalBook
from consentcrawl_demo.fediverse import FediverseSite
from tests.redis_server import RedisServer
from tests.test_purge_refusals import (
    TimelineSpider,
    cached_urls,
    crawl_site,
    feed_subjects,
    no_name_at_info,
    receipts_for,
    served_paths,
)

OUTPUTS = ("jsonl", "json", "csv", "sqlite")


class PostsFirst(TimelineSpider):
    """Alice's posts then her profile; Grace's posts only (the spider never asks for her profile)."""

    name = "posts_first"
    authors = ("alice", "grace")

    def parse_posts(self, response: Any, name: str) -> Iterator[Any]:
        for request_or_item in super().parse_posts(response, name):
            if isinstance(request_or_item, scrapy.Request) and name == "grace":
                continue
            yield request_or_item


@deferred_f_from_coro_f
async def test_a_person_whose_profile_was_never_read_is_purged_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        result, server, out = await crawl_site(FediverseSite(), PostsFirst, tmp_path, monkeypatch,
                                               CONSENTCRAWL_PURGE_ON_CLOSE=True)
    # by the server's log: grace's posts were served, her profile and her actor never were
    assert [p for _, p in served_paths(server, "grace")] == ["/@grace/posts"]
    assert [p for _, p in served_paths(server, "alice")][:2] == ["/@alice/posts", "/@alice"]
    assert [i["kind"] for i in result.items if i["subject"] == "grace"] == ["post"] * 3  # collected, then purged
    # the files on disk: nothing of grace, alice as she was
    assert feed_subjects(out) == {k: {"alice"} for k in OUTPUTS}
    urls = cached_urls(out)
    assert not [u for u in urls if "grace" in u], urls
    assert "http://fedi.example/@alice/posts" in urls
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:grace")
    assert receipt["selection"] == UNREAD == "unread-during-crawl"
    assert receipt["because"] == [{"seen_by": "this crawl", "cause": "profile-never-read"}]
    assert {t["kind"]: t["removed"] for t in receipt["targets"]} == {
        "jsonlines": 3, "json": 3, "csv": 3, "sqlite": 3, "httpcache": 1}, receipt
    assert not receipts_for(tmp_path / "audit.jsonl", "fediverse:alice")
    assert verify(tmp_path / "audit.jsonl").problem is None
    assert result.stats["consentcrawl/refusals/profile_never_read"] == 1
    assert result.stats["consentcrawl/refusals/after_collection"] == 1
    assert result.stats["consentcrawl/purge/people"] == 1
    assert "consentcrawl/purge/failed" not in result.stats
    assert not no_name_at_info(caplog, "grace")


class Stopping(TimelineSpider):
    """Grace's posts; then the spider closes the crawl (``CloseSpider``, as a budget would) before her profile's
    turn."""

    name = "stopping"
    authors = ("grace",)

    def parse_posts(self, response: Any, name: str) -> Iterator[Any]:
        for request_or_item in super().parse_posts(response, name):
            if isinstance(request_or_item, scrapy.Request):
                raise CloseSpider("budget")
            yield request_or_item


@deferred_f_from_coro_f
async def test_a_crawl_closed_before_the_profile_purges_the_posts_it_collected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    result, server, out = await crawl_site(FediverseSite(), Stopping, tmp_path, monkeypatch,
                                           CONSENTCRAWL_PURGE_ON_CLOSE=True)
    assert result.stats["finish_reason"] == "budget"
    assert [p for _, p in served_paths(server, "grace")] == ["/@grace/posts"]  # her profile: never served
    assert [i["kind"] for i in result.items] == ["post"] * 3
    assert feed_subjects(out) == {k: set() for k in OUTPUTS}
    assert not [u for u in cached_urls(out) if "grace" in u]
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:grace")
    assert receipt["because"] == [dict(NEVER_READ)]
    assert receipt["removed"] == 3 * 4 + 1


@deferred_f_from_coro_f
async def test_without_purge_on_close_the_people_never_read_are_counted_and_not_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        result, server, out = await crawl_site(FediverseSite(), PostsFirst, tmp_path, monkeypatch)
    assert [p for _, p in served_paths(server, "grace")] == ["/@grace/posts"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and "CONSENTCRAWL_PURGE_ON_CLOSE" in r.getMessage()]
    assert len(warnings) == 1 and "1 person(s)" in warnings[0] and "1 of them" in warnings[0], warnings
    assert result.stats["consentcrawl/refusals/profile_never_read"] == 1
    assert result.stats["consentcrawl/refusals/after_collection"] == 1
    assert not no_name_at_info(caplog, "grace")
    assert feed_subjects(out)["jsonl"] == {"alice", "grace"}  # nothing purged, and no receipt
    assert not receipts_for(tmp_path / "audit.jsonl", "fediverse:grace")


def test_never_read_only_when_nothing_else_says_why_and_only_when_known() -> None:
    people = [("fediverse", p) for p in ("ann", "bo", "cy")]
    out = denied_people(RefusalBook(), frozenset({"research"}), refused_decided=[], collected=people,
                        profile_read={("fediverse", "ann")})
    assert {who: cause.receipt_fields() for (_, who), cause in out.items()} == {
        "bo": {"selection": UNREAD, "because": [dict(NEVER_READ)]},
        "cy": {"selection": UNREAD, "because": [dict(NEVER_READ)]},
    }
    # a distributed crawl whose cluster could not say whose profile another worker read: not known, not applied
    assert denied_people(RefusalBook(), frozenset({"research"}), refused_decided=[], collected=people) == {}


# -- a distributed crawl: the workers tell each other whose profile they read ----------------------------------------


class ThreePeople(PostsFirst):
    """Alice's posts and profile; Grace's and Kim's posts only."""

    authors = ("alice", "grace", "kim")

    def parse_posts(self, response: Any, name: str) -> Iterator[Any]:
        for request_or_item in TimelineSpider.parse_posts(self, response, name):
            if isinstance(request_or_item, scrapy.Request) and name != "alice":
                continue
            yield request_or_item


@deferred_f_from_coro_f
async def test_a_worker_keeps_a_person_whose_profile_another_worker_read_and_tells_the_others_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer,
) -> None:
    """Another worker read Grace's profile (published before this worker's close); no one read Kim's. This worker,
    which collected both people's posts, keeps Grace and purges Kim; Alice's profile, which it read, it publishes."""

    async def other_worker(action: str) -> Any:
        shared = SharedState(redis_server.url)
        try:
            if action == "publish":
                await publish_profile_read(shared, "fediverse", "grace", "research")
                return None
            return await profiles_read(shared, [("fediverse", p) for p in ("alice", "grace", "kim")], "research")
        finally:
            await shared.close()

    def in_thread(action: str) -> Any:
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, other_worker(action)).result(10)

    in_thread("publish")
    result, server, out = await crawl_site(FediverseSite(), ThreePeople, tmp_path, monkeypatch,
                                           CONSENTCRAWL_PURGE_ON_CLOSE=True, CONSENTCRAWL_REDIS_URL=redis_server.url)
    for name in ("grace", "kim"):
        assert [p for _, p in served_paths(server, name)] == [f"/@{name}/posts"]
    assert feed_subjects(out) == {k: {"alice", "grace"} for k in OUTPUTS}
    assert not receipts_for(tmp_path / "audit.jsonl", "fediverse:grace")
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:kim")
    assert receipt["because"] == [dict(NEVER_READ)]
    assert result.stats["consentcrawl/refusals/profile_never_read"] == 1
    assert "consentcrawl/purge/failed" not in result.stats
    assert in_thread("ask") == {("fediverse", "alice"), ("fediverse", "grace")}  # alice: published by this worker


# -- a platform whose profile pages carry no card: the profile page itself counts as read ---------------------------


def test_a_profile_page_is_the_templates_page_itself_not_a_page_under_it(tmp_path: Path) -> None:
    from consentcrawl.terms.load import load_platforms
    from tests.lenient import write_config

    platforms = load_platforms([str(write_config(tmp_path, None)[0])]).get("people")
    assert platforms is not None
    for path in ("/u/101", "/u/101/", "/@alice", "/profile.php?id=101", "/profile.php?id=101&tab=about"):
        assert platforms.is_profile_page(path), path
    for path in ("/u/101/posts", "/u/101/posts/", "/@alice/followers", "/u/", "/profile.php", "/about"):
        assert not platforms.is_profile_page(path), path


@deferred_f_from_coro_f
async def test_a_person_whose_cardless_profile_page_was_read_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The people platform's profile pages have no h-card (no refusal form the reader knows): reading the page
    at the profile URL is reading what the person says there. 101 (profile page) is kept; 102, met only through
    a page under his profile, is purged."""
    from consentcrawl_demo.server import LocalServer
    from tests.conftest import run_crawl
    from tests.lenient import LenientPeople, people_settings

    class Pages(scrapy.Spider):
        name = "pages"
        custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}, "CONCURRENT_REQUESTS": 1}

        async def start(self) -> Any:
            for url in ("http://people.example/u/101", "http://people.example/u/102/posts"):
                yield scrapy.Request(url, callback=self.parse)

        def parse(self, response: Any) -> Iterator[Any]:
            yield {"subject": response.url.split("/")[4], "platform": "people"}

    out = tmp_path / "out"
    settings = people_settings(tmp_path, CONSENTCRAWL_PURGE_ON_CLOSE=True, LOG_LEVEL="INFO",
                               FEEDS={str(out / "items.jsonl"): {"format": "jsonlines"}})
    with LocalServer(LenientPeople()) as server:
        result = await run_crawl(Pages, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert sorted(r.decoded_path for r in server.requests if r.decoded_path.startswith("/u/")) == [
        "/u/101", "/u/102/posts"]
    assert [i["subject"] for i in result.items] == ["101", "102"]
    assert [json.loads(line)["subject"] for line in (out / "items.jsonl").read_text().splitlines()] == ["101"]
    assert not receipts_for(tmp_path / "audit.jsonl", "people:101")
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "people:102")
    assert receipt["because"] == [dict(NEVER_READ)]


@deferred_f_from_coro_f
async def test_a_worker_that_cannot_ask_whose_profile_was_read_purges_no_one_for_it_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis stops after the worker collected 101's posts (his profile never read here): whether another worker
    read it cannot be known at the close; 101's items stay (no one is purged on a guess), an ERROR without his id
    says why, and ``purge/failed`` counts it."""
    from tests.test_purge_refusals_distributed import crawl_while_redis_stops

    result, server, out = await crawl_while_redis_stops("/u/101/posts", redis_server, tmp_path, monkeypatch, caplog)
    assert [r.decoded_path for r in server.requests if r.decoded_path.startswith("/u/")] == ["/u/101/posts"]
    errors = [r.getMessage() for r in caplog.records if "whose profile another worker read" in r.getMessage()]
    assert len(errors) == 1 and not re.search(r"(?<!\d)101(?!\d)", errors[0]), errors  # not in a port
    assert result.stats["consentcrawl/purge/failed"] >= 2  # this, and the cluster's refusals
    assert "consentcrawl/refusals/profile_never_read" not in result.stats
    assert [json.loads(line)["subject"] for line in (out / "items.jsonl").read_text().splitlines()] == ["101"]


@deferred_f_from_coro_f
async def test_an_error_page_at_the_profile_url_is_no_profile_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """101's posts are collected; his profile page answers 500: what he says there was not read, so he goes."""
    from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
    from tests.conftest import run_crawl
    from tests.lenient import LenientPeople, people_settings

    class Failing(LenientPeople):
        def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
            if request.path == "/u/101":
                return Response.text("500 Internal Server Error\n", 500)
            return super().__call__(request, headers)

    class PostsThenProfile(scrapy.Spider):
        name = "posts_then_profile"
        custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}, "CONCURRENT_REQUESTS": 1}

        async def start(self) -> Any:
            yield scrapy.Request("http://people.example/u/101/posts", callback=self.parse)

        def parse(self, response: Any) -> Iterator[Any]:
            yield {"subject": "101", "platform": "people"}
            yield response.follow("/u/101", callback=self.parse)

    out = tmp_path / "out"
    settings = people_settings(tmp_path, CONSENTCRAWL_PURGE_ON_CLOSE=True,
                               FEEDS={str(out / "items.jsonl"): {"format": "jsonlines"}})
    with LocalServer(Failing()) as server:
        result = await run_crawl(PostsThenProfile, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert [r.decoded_path for r in server.requests if r.decoded_path.startswith("/u/")] == [
        "/u/101/posts", "/u/101"]
    assert [i["subject"] for i in result.items] == ["101"]
    assert (out / "items.jsonl").read_text() == ""
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "people:101")
    assert receipt["because"] == [dict(NEVER_READ)]
