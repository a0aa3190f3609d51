"""An authorized person's item that names other people by their profile URLs (``friends``, a bio's links).

A profile URL identifies its person: the URL of someone who did not authorize the crawl (or who withdrew) must not
reach a pipeline, a feed or a log line at INFO or above, whoever's item carries it. The guard decides each person an
item mentions, in every spelling the lenient site reads (upper-case host, percent escapes, no scheme, a relative
path, backslashes), as it decides a page of theirs, when the item passes; a mention of someone not allowed is taken
out (``CONSENTCRAWL_ITEM_MENTIONS = "withhold"``) or the item is dropped (``"drop"``). Real crawls of the lenient
people site (101, 102, 103 and alice authorized), judged by the feed file, the items the signals saw, the audit log,
the stats and every log record at INFO or above."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.config import ConsentConfig
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.sqlite import import_records
from consentcrawl.errors import ConfigError
from consentcrawl.mentions import WITHHELD
from consentcrawl.terms.load import load_platforms
from consentcrawl_demo.server import LocalServer
from tests.lenient import AUTHORIZED, HOST, KINDS, LenientPeople, crawl, make_spider, people_settings, write_config
from tests.test_media_withdrawn_midcrawl import TwoPagesAroundAWithdrawal

BASE = f"http://{HOST}"
#: the people 101's item names who never authorized the crawl, each spelt as a lenient server (or a browser) reads
#: it, or in parentheses
DENIED = {"107": f"{BASE}/u/107", "109": "/u/109", "110": f"HTTP://{HOST.upper()}/u/%31%31%30",
          "111": f"{HOST}/u/111", "112": f"www.{HOST}\\u\\112", "113": "../u/113",
          "114": f"http:\\\\{HOST}\\u\\114", "115": "(/u/115)"}
#: what of them must not be in a feed or at INFO and above (the ids as the spellings above write them)
_NAMED = re.compile(r"(?<![0-9A-Za-z])(?:10[79]|11[0-5])(?!\d)|%31%31%30")
PROJECT_LOGGER = logging.getLogger(__name__)
_WRITTEN = logging.Formatter("%(levelname)s %(name)s: %(message)s")


@dataclasses.dataclass
class Card:
    """A nested item of another kind: itemadapter reads it as Scrapy does."""

    title: str
    links: tuple[str, ...]


class Stores:
    """A project's pipeline after the guard: it logs what it stores at INFO, as a project's database writer does."""

    def process_item(self, item: Any) -> Any:
        PROJECT_LOGGER.info("storing %r", item)
        return item


class Friends:
    """101's page yields an item naming its friends: 102 (authorized) and the people of :data:`DENIED`."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"url": response.url, "name": response.css(".name::text").get(),
               "friends": [f"{BASE}/u/102", *DENIED.values()],
               "bio": f"Friends with {DENIED['107']}. and /u/102, see also {DENIED['111']}",
               "best_friend": DENIED["109"],
               "cards": [Card("links", (DENIED["110"], "/u/103", "and/or 1/2")), {DENIED["113"]: "by key"}]}


def _loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [_WRITTEN.format(r) for r in caplog.records if r.levelno >= logging.INFO
            and not r.getMessage().startswith("Dumping Scrapy stats")]


def _events(path: str, kind: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [line for line in lines if line.get("event") == kind]


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_authorized_persons_item_loses_the_urls_of_people_who_did_not_authorize(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    feed = tmp_path / "items.jsonl"
    settings = people_settings(tmp_path, FEEDS={str(feed): {"format": "jsonlines"}},
                               ITEM_PIPELINES={f"{__name__}.Stores": 500})
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, Friends), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert app.people_served() == ["101"], app.describe()
    written = feed.read_text(encoding="utf-8")
    assert not _NAMED.search(written), f"a person who did not authorize is in the feed: {written}"
    (item,) = [json.loads(line) for line in written.splitlines()]
    assert item["friends"] == [f"{BASE}/u/102"], item
    assert item["bio"] == f"Friends with {WITHHELD}. and /u/102, see also {WITHHELD}", item
    assert item["best_friend"] is None, item
    assert item["cards"] == [{"title": "links", "links": ["/u/103", "and/or 1/2"]}, {}], item
    assert item["name"] == "SECRET-NAME-101" and item["consentcrawl"]["subject"] == "101", item
    assert len(result.items) == 1 and not _NAMED.search(repr(result.items)), result.items
    loud = [line for line in _loud(caplog) if _NAMED.search(line)]
    assert loud == [], loud
    assert any("storing" in line and "/u/102" in line for line in _loud(caplog)), "control: the project's line"
    (event,) = _events(settings["CONSENTCRAWL_AUDIT_LOG"], "mentions-withheld")
    assert event["action"] == "withheld" and event["withheld"] == 10, event  # distinct: the same string twice is one
    assert sorted(p["subject"] for p in event["people"]) == sorted(DENIED), event
    assert {p["reason"] for p in event["people"]} == {"subject.no-authorization"}, event
    assert event["item"]["subject"] == "101" and event["item"]["platform"] == "people", event
    written_urls = re.compile(r"[/\\]u[/\\](?:10[79]|11[0-5])|%31")
    assert not written_urls.search(json.dumps(event)), "the event names people by id, not by the URL as written"
    assert result.stats.get("consentcrawl/items/mentions_withheld") == 10, result.stats
    assert result.stats.get("consentcrawl/items/with_mentions_withheld") == 1, result.stats


@deferred_f_from_coro_f
async def test_drop_drops_an_item_that_mentions_someone_not_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    class TwoItems(Friends):
        def parse(self, response: scrapy.http.Response) -> Any:
            yield {"url": response.url, "friends": [f"{BASE}/u/102"]}
            yield {"url": response.url, "friends": [f"{BASE}/u/102", f"{HOST}/U/107"]}

    feed = tmp_path / "items.jsonl"
    settings = people_settings(tmp_path, FEEDS={str(feed): {"format": "jsonlines"}},
                               CONSENTCRAWL_ITEM_MENTIONS="drop")
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", TwoItems), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    items = [json.loads(line) for line in feed.read_text(encoding="utf-8").splitlines()]
    assert [i["friends"] for i in items] == [[f"{BASE}/u/102"]], items
    assert "107" not in json.dumps(result.dropped), f"a dropped item is handed on emptied: {result.dropped}"
    (event,) = _events(settings["CONSENTCRAWL_AUDIT_LOG"], "mentions-withheld")
    assert event["action"] == "dropped" and [p["subject"] for p in event["people"]] == ["107"], event
    assert result.stats.get("consentcrawl/items/dropped") == 1, result.stats


class ListingItem(scrapy.Item):
    links = scrapy.Field()


@dataclasses.dataclass
class ListingCard:
    links: list[str]


@attrs.frozen
class FrozenListing:
    links: tuple[str, ...]
    first: str


class Listing:
    """The listing page (links to 101 to 110; only 101, 102 and 103 authorized): its links, as a page has them, in
    one item of each kind itemadapter knows; none names a person whose page it is."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/people", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        links = response.css("a.profile-link::attr(href)").getall()
        yield {"links": list(links)}
        yield ListingItem(links=list(links))
        yield ListingCard(list(links))
        yield FrozenListing(tuple(links), links[-1])


@deferred_f_from_coro_f
async def test_a_listings_links_keep_only_the_people_who_authorized_in_every_kind_of_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed = tmp_path / "items.jsonl"
    settings = people_settings(tmp_path, FEEDS={str(feed): {"format": "jsonlines"}})
    with LocalServer(LenientPeople()) as server:
        result = await crawl(make_spider("ConsentSpider", Listing), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    items = [json.loads(line) for line in feed.read_text(encoding="utf-8").splitlines()]
    allowed = ["/u/101", "/u/102", "/u/103"]
    assert [(i["links"], i.get("first", "")) for i in items] == [(allowed, "")] * 3 + [(allowed, None)], items
    assert len(_events(settings["CONSENTCRAWL_AUDIT_LOG"], "mentions-withheld")) == 4
    assert result.stats.get("consentcrawl/items/mentions_withheld") == 4 * 7, result.stats


@deferred_f_from_coro_f
async def test_report_mode_keeps_the_mention_and_no_line_at_info_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    class OneFriend(Friends):
        def parse(self, response: scrapy.http.Response) -> Any:
            yield {"url": response.url, "friends": [f"{BASE}/u/102", f"{BASE}/u/107"]}

    caplog.set_level(logging.DEBUG)
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report", ITEM_PIPELINES={f"{__name__}.Stores": 500})
    with LocalServer(LenientPeople()) as server:
        result = await crawl(make_spider("ConsentSpider", OneFriend), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert [i["friends"] for i in result.items] == [[f"{BASE}/u/102", f"{BASE}/u/107"]], "report mode changes nothing"
    (event,) = _events(settings["CONSENTCRAWL_AUDIT_LOG"], "mentions-withheld")
    assert event["action"] == "would withhold" and event["people"][0]["subject"] == "107", event
    loud = _loud(caplog)
    assert [line for line in loud if "/u/107" in line] == [], loud
    assert any("a line written while the pipelines processed an item" in line for line in loud), loud


def _record(subject: str, revoked: datetime | None = None) -> AuthorizationRecord:
    return AuthorizationRecord("people", subject, frozenset({"research"}), datetime(2026, 1, 1, tzinfo=timezone.utc),
                               revoked_at=revoked, evidence="test consent", source="test")


class AroundAWithdrawal(TwoPagesAroundAWithdrawal):
    """101's page, then (once its item went through the pipelines) 104 withdraws, then 102's page: each page's
    item names 104 as a friend."""

    def parse(self, response: scrapy.http.Response) -> Any:
        yield {"url": response.url, "friends": [f"{BASE}/u/104"]}


@deferred_f_from_coro_f
async def test_a_friend_who_withdrew_mid_crawl_is_withheld_from_the_items_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    platforms_file, _ = write_config(tmp_path)
    platforms = load_platforms([str(platforms_file)])
    store = f"sqlite:///{tmp_path / 'store.db'}?refresh=0"
    import_records(store, [_record(s) for s in (*AUTHORIZED, "104")], platforms=platforms)

    spider = make_spider("ConsentSpider", AroundAWithdrawal)
    spider.withdraw = staticmethod(  # type: ignore[attr-defined]
        lambda: import_records(store, [_record("104", datetime.now(timezone.utc))], platforms=platforms))
    settings = {**people_settings(tmp_path, CONCURRENT_REQUESTS=1), "CONSENTCRAWL_AUTHORIZATIONS": store}
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(spider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.people_served() == ["101", "102"], app.describe()
    friends = {item["url"]: item["friends"] for item in result.items}
    assert friends == {f"{BASE}/u/101": [f"{BASE}/u/104"], f"{BASE}/u/102": []}, friends
    (event,) = _events(settings["CONSENTCRAWL_AUDIT_LOG"], "mentions-withheld")
    (person,) = event["people"]
    assert person["subject"] == "104" and person["reason"] == "subject.revoked", event
    (seen,) = _events(settings["CONSENTCRAWL_AUDIT_LOG"], "withdrawal-seen")
    assert person["because"] == seen["event_id"] and seen["subject"] == "104", (event, seen)


class AfterARefusal:
    """102 (authorized) refuses the crawl's purpose on their own page; once that page was read, 101's item names
    102 as a friend."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/102", callback=self.parse)
        stats = self.crawler.stats  # type: ignore[attr-defined]
        while not stats.get_value("consentcrawl/refusals/found"):
            await asyncio.sleep(0.05)
        yield scrapy.Request(f"{BASE}/u/101", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        yield {"url": response.url, "friends": [f"{BASE}/u/102", f"{BASE}/u/103"]}


@deferred_f_from_coro_f
async def test_a_friend_who_refused_on_their_page_is_withheld(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = people_settings(tmp_path)
    with LocalServer(LenientPeople(refusing={"102"})) as server:
        result = await crawl(make_spider("ConsentSpider", AfterARefusal), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert [i["friends"] for i in result.items] == [[f"{BASE}/u/103"]], result.items
    (event,) = _events(settings["CONSENTCRAWL_AUDIT_LOG"], "mentions-withheld")
    (refusal,) = _events(settings["CONSENTCRAWL_AUDIT_LOG"], "refusal-found")
    assert event["people"] == [{"platform": "people", "subject": "102", "reason": "subject.refused-on-page",
                                "because": refusal["event_id"]}], (event, refusal)


class NamesNext:
    """Logs, at INFO, the next profile it means to follow at the end of a sentence (a full stop after the URL)."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.logger.info("next up: %s/u/108.", BASE)  # type: ignore[attr-defined]
        self.logger.info("and then /u/109.")  # type: ignore[attr-defined]
        self.logger.info("or (/u/108) or (%s/u/109)", HOST)  # type: ignore[attr-defined]
        self.logger.info("control: %s/u/101.", BASE)  # type: ignore[attr-defined]
        return []


@deferred_f_from_coro_f
async def test_a_url_at_the_end_of_a_sentence_is_out_of_the_log_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """The finder the guard shares with the log filter read ``http://host/u/108.`` without its full stop, then
    looked for the URL followed by a delimiter: the full stop is none, and the line kept the URL."""
    caplog.set_level(logging.DEBUG)
    settings = people_settings(tmp_path)
    with LocalServer(LenientPeople()) as server:
        await crawl(make_spider("ConsentSpider", NamesNext), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    loud = _loud(caplog)
    assert [line for line in loud if re.search(r"/u/10[89]", line)] == [], loud
    assert any(f"control: {BASE}/u/101." in line for line in loud), loud


def test_the_setting_takes_withhold_or_drop(tmp_path: Path) -> None:
    settings = people_settings(tmp_path)
    for value, read in (("drop", "drop"), ("Withhold", "withhold"), ("", "withhold")):
        assert ConsentConfig.from_settings({**settings, "CONSENTCRAWL_ITEM_MENTIONS": value}).item_mentions == read
    with pytest.raises(ConfigError) as raised:
        ConsentConfig.from_settings({**settings, "CONSENTCRAWL_ITEM_MENTIONS": "keep"})
    assert "CONSENTCRAWL_ITEM_MENTIONS" in str(raised.value) and "unknown value 'keep'" in str(raised.value)
