"""Review 26 of the item guard's mentions (docs/mentions.md): values that are not strings, and shared values.

A project's item holds more than strings: the bytes of a page or a header, a ``scrapy.link.Link`` a link extractor
made, a ``Request`` it meant to follow, a ``yarl``/``urllib`` URL, a ``deque`` or an object of its own whose text is
a URL. The feed exporters write each of them as text (CSV and XML with ``str()``, JSON lines a ``Request`` as
``<Request GET url>``): whatever names a person who is not allowed must be out of them as out of a string. Real
crawls of the lenient people site (101, 102, 103 and alice authorized), judged by the feed files."""

from __future__ import annotations

import collections
import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import scrapy
from scrapy.link import Link
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.sqlite import import_records
from consentcrawl.mentions import WITHHELD
from consentcrawl.terms.load import load_platforms
from consentcrawl_demo.server import LocalServer
from tests.lenient import (
    AUTHORIZED,
    HOST,
    LenientPeople,
    crawl,
    make_spider,
    people_settings,
    person_of_url,
    write_config,
)

BASE = f"http://{HOST}"
#: 107 (never authorized) as a feed would show it
_NAMED = re.compile(r"(?<![0-9A-Za-z])107(?!\d)|%31%30%37")


class Url:
    """A project's own URL type: its text is the URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __str__(self) -> str:
        return self.url


class Typed:
    """101's page yields one item per kind of value, each naming 107 (not authorized) and 102 (authorized)."""

    seen: list[str]
    values: dict[str, Any] = {}

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        for kind, make in self.values.items():
            yield {"kind": kind, "value": make(response)}


VALUES: dict[str, Any] = {
    "bytes": lambda r: f"friends: {BASE}/u/107 and {BASE}/u/102".encode(),
    "link": lambda r: Link(f"{BASE}/u/107", text="a friend"),
    "links": lambda r: [Link(f"{BASE}/u/102"), Link(f"{BASE}/u/107")],
    "request": lambda r: scrapy.Request(f"{BASE}/u/107"),
    "split": lambda r: urlsplit(f"{BASE}/u/%31%30%37"),
    "own": lambda r: Url(f"{HOST.upper()}/u/107"),
    "deque": lambda r: collections.deque([f"{BASE}/u/102", f"{BASE}/u/107"]),
    "userlist": lambda r: collections.UserList([f"{BASE}/u/107"]),
    "selector": lambda r: scrapy.Selector(text='<a href="/u/107">a friend</a>').css("a")[0],
    "key": lambda r: {(f"{BASE}/u/107", "friend"): "yes", (f"{BASE}/u/102", "friend"): "yes"},
    "shared": lambda r: (lambda pair: {"first": pair, "again": pair})((f"{BASE}/u/107", f"{BASE}/u/102")),
}


@pytest.mark.parametrize("fmt", ["jsonlines", "csv", "xml"])
@deferred_f_from_coro_f
async def test_values_that_are_not_strings_lose_the_mentions_in_every_feed(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed = tmp_path / f"items.{fmt}"
    settings = people_settings(tmp_path, FEEDS={str(feed): {"format": fmt}})
    spider = make_spider("ConsentSpider", Typed)
    spider.values = VALUES  # type: ignore[attr-defined]
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(spider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.people_served() == ["101"], app.describe()
    written = feed.read_text(encoding="utf-8")
    assert not _NAMED.search(written), f"107 is in the {fmt} feed: {written}"
    assert len(result.items) == len(VALUES), result.items
    items = {item["kind"]: item["value"] for item in result.items}
    assert not _NAMED.search(repr(items)), items
    assert items["bytes"] == f"friends: {WITHHELD} and {BASE}/u/102".encode(), items["bytes"]
    assert [link.url for link in items["links"]] == [f"{BASE}/u/102"], items["links"]
    assert items["link"] is items["request"] is items["own"] is items["deque"] is items["selector"] is None, items
    assert items["key"] == {(f"{BASE}/u/102", "friend"): "yes", ("friend",): "yes"}, items["key"]
    assert items["shared"] == {"first": (f"{BASE}/u/102",), "again": (f"{BASE}/u/102",)}, items["shared"]
    if fmt == "csv":  # what is allowed stays
        assert f"friends: {WITHHELD} and {BASE}/u/102" in written and "u/102', text=''" in written, written


#: a members page's hrefs as a PHP site writes them, relative to the page without a slash; 107 is not authorized
MEMBER_HREFS = ["profile.php?id=107", "profile.php?id=102", "Profile.php?sort=new&id=107", "profile.php?id=101#top"]


class Members:
    """A members page (on the site's root): its links, as the page has them, in a listing item."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/members", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        yield {"links": response.css("a.link::attr(href)").getall(),
               "text": " ".join(f"({href})" for href in response.css("a.link::attr(href)").getall())}


@deferred_f_from_coro_f
async def test_a_relative_link_without_a_slash_to_a_query_profile_is_a_mention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``profile.php?id=107`` on ``/members`` is ``/profile.php?id=107``: the page of 107 on a site whose profiles
    are ``/profile.php?id={subject}``. The finder read only words with a slash, so the link went out."""
    feed = tmp_path / "items.jsonl"
    settings = people_settings(tmp_path, FEEDS={str(feed): {"format": "jsonlines"}})
    app = LenientPeople().links_page("/members", MEMBER_HREFS)
    with LocalServer(app) as server:
        await crawl(make_spider("ConsentSpider", Members), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    (item,) = [json.loads(line) for line in feed.read_text(encoding="utf-8").splitlines()]
    page = f"{BASE}/members"
    words = [*item["links"], *item["text"].split()]
    served = {word: person_of_url(_path_and_query(urljoin(page, word.strip("()")))) for word in words}
    assert [word for word, person in served.items() if person == "107"] == [], served
    assert item["links"] == ["profile.php?id=102", "profile.php?id=101#top"], item


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


class OwnProvenance:
    """Items from ``start()`` (no page stamps them) that write the provenance field themselves."""

    seen: list[str]

    async def start(self) -> Any:
        yield {"n": 1, "consentcrawl": {"friends": [f"{BASE}/u/107", f"{BASE}/u/102"]}}
        yield {"n": 2, "consentcrawl": {"subject": "101", "platform": "people", "url": f"{HOST}/u/107",
                                        "platform_agreement": {"note": "see /u/107"}}}
        yield scrapy.Request(f"{BASE}/u/101", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        return []


@deferred_f_from_coro_f
async def test_what_a_spider_writes_into_the_provenance_field_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The provenance field was never read, as consentcrawl's own record; an item from ``start()`` carries the one
    the spider wrote (no page stamps it), and the guard keeps what it holds besides its own keys."""
    feed = tmp_path / "items.jsonl"
    settings = people_settings(tmp_path, FEEDS={str(feed): {"format": "jsonlines"}})
    app = LenientPeople()
    with LocalServer(app) as server:
        await crawl(make_spider("ConsentSpider", OwnProvenance), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    written = feed.read_text(encoding="utf-8")
    assert not _NAMED.search(written), written
    items = [json.loads(line) for line in written.splitlines()]
    assert [item["n"] for item in items] == [1, 2], items
    assert items[0]["consentcrawl"]["friends"] == [f"{BASE}/u/102"], items
    assert items[1]["consentcrawl"]["subject"] == "101" and items[1]["consentcrawl"]["url"] is None, items


#: URLs of schemes the crawl does not fetch, on hosts no platform has: no one's page
ELSEWHERE = ["s3://bucket/photos/a.png", "ftp://ftp.example.org/pub/x.tar.gz", "sqlite:////var/db/app.db",
             "redis://localhost:6379/0", "git+ssh://git@example.org/team/repo.git"]


class OtherSchemes:
    """101's item names files elsewhere (kept) and 107's page under a scheme the crawl cannot read (withheld)."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        yield {"files": list(ELSEWHERE), "mirror": f"ftp://{HOST}/u/107", "also": f"FTP:///www.{HOST}/u/107"}


@deferred_f_from_coro_f
async def test_urls_of_other_schemes_off_the_platforms_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every URL the crawl could not read was withheld as ``error.bad-url``: an ``s3://`` file, an ``ftp://``
    mirror, the ``sqlite:`` store the provenance names. Only one on a platform's host may be someone's."""
    feed = tmp_path / "items.jsonl"
    settings = people_settings(tmp_path, FEEDS={str(feed): {"format": "jsonlines"}})
    with LocalServer(LenientPeople()) as server:
        result = await crawl(make_spider("ConsentSpider", OtherSchemes), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    (item,) = [json.loads(line) for line in feed.read_text(encoding="utf-8").splitlines()]
    assert item["files"] == ELSEWHERE, item
    assert item["mirror"] is None and item["also"] is None, item
    assert result.stats.get("consentcrawl/items/mentions_withheld") == 2, result.stats


class Generated:
    """101's item holds one-shot iterators of its friends' URLs: a generator, a ``map``, an iterator in a list."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        friends = [f"{BASE}/u/107", f"{BASE}/u/102"]
        yield {"friends": (url for url in friends), "upper": map(str.upper, friends),
               "cards": [{"links": iter(friends)}], "tuple": (iter(friends),)}


@deferred_f_from_coro_f
async def test_a_generator_in_an_item_is_read_as_the_xml_exporter_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The XML exporter consumes a generator and writes each element; the guard did not look into it."""
    feed = tmp_path / "items.xml"
    settings = people_settings(tmp_path, FEEDS={str(feed): {"format": "xml"}})
    with LocalServer(LenientPeople()) as server:
        result = await crawl(make_spider("ConsentSpider", Generated), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    written = feed.read_text(encoding="utf-8")
    assert not _NAMED.search(written), written
    assert written.count(f"{BASE}/u/102") == 3 and written.count(f"{BASE.upper()}/U/102") == 1, written
    (item,) = result.items
    assert item["friends"] == [f"{BASE}/u/102"] and item["cards"] == [{"links": [f"{BASE}/u/102"]}], item


PROJECT_LOGGER = logging.getLogger(__name__)


class Stores:
    """A project's pipeline after the guard that logs what it stores at INFO."""

    def process_item(self, item: Any) -> Any:
        PROJECT_LOGGER.info("storing %r", item)
        return item


@deferred_f_from_coro_f
async def test_a_line_keeps_a_url_of_another_scheme_off_the_platforms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """The log filter read every URL the crawl could not fetch as a person's it could not decide: the ``s3://`` file
    of an item, and the ``sqlite:`` store its provenance names, were taken out of the project's line."""
    caplog.set_level(logging.DEBUG)
    platforms_file, _ = write_config(tmp_path)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    import_records(store, [AuthorizationRecord("people", subject, frozenset({"research"}),
                                               datetime(2026, 1, 1, tzinfo=timezone.utc), evidence="test consent",
                                               source="test") for subject in AUTHORIZED],
                   platforms=load_platforms([str(platforms_file)]))
    settings = {**people_settings(tmp_path, ITEM_PIPELINES={f"{__name__}.Stores": 500}),
                "CONSENTCRAWL_AUTHORIZATIONS": store}
    with LocalServer(LenientPeople()) as server:
        await crawl(make_spider("ConsentSpider", OtherSchemes), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and r.name == __name__]
    assert all(url in line for url in ELSEWHERE) and f"'source': '{store}#" in line, line
    assert "u/107" not in line, line
