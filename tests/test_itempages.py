"""The page an item that cannot carry its provenance came from (``consentcrawl/itempages.py``): how long it is held,
and whose it is when one object is yielded from two pages.

With ``CONSENTCRAWL_PROVENANCE_FIELD`` off, a plain dict cannot be stamped and cannot be weakly referenced: its
page was held until the guard took it, so a dict a later spider middleware drops was held for the rest of the crawl.
The same dict yielded from two pages kept only the later page: the other pass went to the outputs judged as no
one's, or as another person's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.itempages import ItemPages
from consentcrawl.runtime import get_runtime
from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, crawl, make_spider, people_settings, secret_name
from tests.test_hunt import FIELDS_PLATFORMS_YAML


def _page(subject: str | None, url: str = "http://x/") -> dict[str, Any]:
    return {"decision_id": "d", "url": url, "platform": "people", "subject": subject}


# --------------------------------------------------------------------------- ItemPages itself


def test_a_dict_no_one_else_holds_is_released_without_reaching_the_guard() -> None:
    pages = ItemPages()
    for _ in range(2000):
        pages.put({"x": 1}, _page("101"))  # dropped by a later spider middleware: only ItemPages holds it
    assert len(pages) < 600, len(pages)


def test_a_dict_still_held_elsewhere_keeps_its_page_through_every_release() -> None:
    pages = ItemPages()
    kept = [{"n": n} for n in range(2000)]  # a middleware holds them back, to yield them later
    for item in kept:
        pages.put(item, _page("101"))
        pages.put({"junk": 1}, _page("102"))
    assert [(pages.take(item) or {}).get("subject") for item in kept] == ["101"] * len(kept)


@pytest.mark.parametrize(("first", "second", "whose"), [
    ("101", "101", "101"),
    (None, "101", "101"),  # a listing page (no one's) and a profile page: the profile's person
    ("101", None, "101"),
])
def test_a_dict_yielded_from_two_pages_is_judged_as_the_person_of_either_each_time(
        first: str | None, second: str | None, whose: str) -> None:
    pages, item = ItemPages(), {"x": 1}
    pages.put(item, _page(first, "http://x/1"))
    pages.put(item, _page(second, "http://x/2"))
    taken = [pages.take(item), pages.take(item)]
    assert [t and t.get("subject") for t in taken] == [whose, whose], taken
    assert pages.take(item) is None and len(pages) == 0


def test_a_dict_yielded_from_two_peoples_pages_is_no_ones_for_sure() -> None:
    pages, item = ItemPages(), {"x": 1}
    pages.put(item, _page("101", "http://x/u/101"))
    pages.put(item, _page("102", "http://x/u/102"))
    for _ in range(2):
        taken = pages.take(item)
        assert taken is not None and ItemPages.conflicting(taken), taken
        assert sorted(p["subject"] for p in ItemPages.conflicting(taken)) == ["101", "102"]


# --------------------------------------------------------------------------- in a crawl

#: the provenance field off: a plain dict cannot carry its page
NO_FIELD = {"CONSENTCRAWL_PROVENANCE_FIELD": ""}


class DropsJunk:
    """A project's spider middleware after consentcrawl's: drops the items marked ``junk``, and notes how many
    pages consentcrawl holds as it goes."""

    peak = 0

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> DropsJunk:
        return cls(crawler)

    async def process_spider_output(self, response: Any, result: Any) -> Any:
        pages = get_runtime(self.crawler).item_pages  # type: ignore[union-attr]
        async for obj in result:
            DropsJunk.peak = max(DropsJunk.peak, len(pages))
            if isinstance(obj, dict) and "junk" in obj:
                continue
            yield obj


class JunkLogic:
    """Profile pages of the authorized people, each yielding many items a later middleware drops."""

    seen: list[str]

    async def start(self) -> Any:
        for person in ("101", "102", "103"):
            yield scrapy.Request(f"http://{HOST}/u/{person}", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        for n in range(700):
            yield {"junk": n}
        yield {"name": response.css(".name::text").get()}


@deferred_f_from_coro_f
async def test_dicts_a_later_spider_middleware_drops_are_not_held_for_the_rest_of_the_crawl(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    DropsJunk.peak = 0
    settings = people_settings(tmp_path, SPIDER_MIDDLEWARES={f"{__name__}.DropsJunk": 10}, **NO_FIELD)
    with LocalServer(LenientPeople()) as server:
        result = await crawl(make_spider("ConsentSpider", JunkLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert sorted(i["name"] for i in result.items) == [secret_name(p) for p in ("101", "102", "103")], result.items
    assert 0 < DropsJunk.peak < 1000, DropsJunk.peak  # 2100 dropped
    pages = get_runtime(result.crawler).item_pages  # type: ignore[union-attr]
    assert len(pages) < 1000, len(pages)


class Barrier:
    """A project's spider middleware after consentcrawl's that holds the item marked ``shared`` back until it has
    been yielded twice (from two pages), then lets both passes go: both are on their way to the guard at once."""

    def __init__(self) -> None:
        self.count = 0
        self.both = asyncio.Event()

    async def process_spider_output(self, response: Any, result: Any) -> Any:
        async for obj in result:
            if isinstance(obj, dict) and obj.get("shared"):
                self.count += 1
                if self.count >= 2:
                    self.both.set()
                await asyncio.wait_for(self.both.wait(), 20)
            yield obj


class SharedLogic:
    """Fetches ``first``; its callback asks for ``second`` and yields one dict, which ``second``'s callback yields
    again: the same object from two pages. It names no one; its ``email`` is outside the platform's fields."""

    first = f"http://{HOST}/u/101"
    second = f"http://{HOST}/people?page=1"
    seen: list[str]
    shared: dict[str, Any]

    async def start(self) -> Any:
        self.shared = {"shared": True, "name": secret_name("101"), "email": "jane.roe@mail.example"}
        yield scrapy.Request(self.first, callback=self.parse_first)

    def parse_first(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield scrapy.Request(self.second, callback=self.parse_second, dont_filter=True)
        yield self.shared

    def parse_second(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield self.shared


#: where the item's page goes: kept by ItemPages (the field off), or stamped into the item (the default field)
CARRIERS = {"itempages": NO_FIELD, "field": {}}


def _shared_settings(tmp_path: Path, carrier: str) -> dict[str, Any]:
    settings = people_settings(tmp_path, SPIDER_MIDDLEWARES={f"{__name__}.Barrier": 10}, **CARRIERS[carrier])
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(FIELDS_PLATFORMS_YAML)
    return settings


@pytest.mark.parametrize("carrier", sorted(CARRIERS))
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_dict_yielded_from_a_profile_and_a_listing_is_judged_as_the_persons_both_times(
        kind: str, carrier: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The listing page is no one's, the profile page 101's: both passes are 101's item, trimmed to the fields
    the platform's grant allows (``name``, and the provenance field)."""
    with LocalServer(LenientPeople()) as server:
        result = await crawl(make_spider(kind, SharedLogic), _shared_settings(tmp_path, carrier),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert len(result.seen) == 2, result.seen
    assert len(result.items) == 2, result.items
    fields = ["name"] if carrier == "itempages" else ["consentcrawl", "name"]
    assert [sorted(i) for i in result.items] == [fields, fields], result.items
    judged = [e for e in result.audit if e.get("phase") == "item"]
    assert [e["subject"] for e in judged] == ["101", "101"], judged


@pytest.mark.parametrize("carrier", sorted(CARRIERS))
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_dict_yielded_from_two_peoples_pages_is_dropped_both_times(
        kind: str, carrier: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """101's and 102's pages yield one object: whose it is cannot be told, so neither pass is kept (even though
    both people authorized the crawl, as for a URL two people can be read from)."""
    spider = type("Shared", (make_spider(kind, SharedLogic),), {"second": f"http://{HOST}/u/102"})
    with LocalServer(LenientPeople()) as server:
        result = await crawl(spider, _shared_settings(tmp_path, carrier), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert len(result.seen) == 2, result.seen
    assert result.items == [], result.items
    judged = [(e["verdict"], e["reason"]) for e in result.audit if e.get("phase") == "item"]
    # in the field, the first pass's drop empties the object: the second holds nothing left to decide on
    assert judged == [("deny", "subject.mismatch")] * (2 if carrier == "itempages" else 1), judged
    assert result.stats.get("consentcrawl/items/dropped") == 2, result.stats


class Stash:
    """A project's spider middleware after consentcrawl's that holds every item of one page back and yields it
    with the next page's output, dropping the ``junk`` ones: pages are released meanwhile, never these."""

    def __init__(self) -> None:
        self.stash: list[Any] = []

    async def process_spider_output(self, response: Any, result: Any) -> Any:
        for obj in self.stash:
            yield obj
        self.stash = []
        async for obj in result:
            if isinstance(obj, dict) and "junk" in obj:
                continue
            if isinstance(obj, dict):
                self.stash.append(obj)
                continue
            yield obj


class StashLogic:
    """101's page: an item naming no one (its ``email`` outside the platform's fields) and many junk items; then
    the listing page, with as many junk items again."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"http://{HOST}/u/101", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        if "/u/" in response.url:
            yield {"name": response.css(".name::text").get(), "email": "jane.roe@mail.example"}
            yield scrapy.Request(f"http://{HOST}/people?page=1", callback=self.parse)
        for n in range(1500):
            yield {"junk": n}
        if "/u/" not in response.url:
            yield scrapy.Request(f"http://{HOST}/people?page=2", callback=self.parse)


@deferred_f_from_coro_f
async def test_a_dict_a_later_middleware_holds_back_keeps_its_page_while_others_are_released(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = people_settings(tmp_path, SPIDER_MIDDLEWARES={f"{__name__}.Stash": 10}, **NO_FIELD)
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(FIELDS_PLATFORMS_YAML)
    with LocalServer(LenientPeople()) as server:
        result = await crawl(make_spider("ConsentSpider", StashLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert result.items == [{"name": secret_name("101")}], result.items  # judged as 101's: trimmed
    pages = get_runtime(result.crawler).item_pages  # type: ignore[union-attr]
    assert len(pages) < 1000, len(pages)  # 3000 junk items went meanwhile
