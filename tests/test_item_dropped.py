"""Handlers of Scrapy's ``item_dropped`` signal never receive a denied person's data.

When the guard pipeline drops an item, Scrapy sends ``item_dropped`` with the very item object to every handler: a
project's handler that logs or stores dropped items would hold the data of a person who did not authorize the
crawl. Real crawls of the lenient people site whose spider connects such a handler; judged by what it received and
by every log line at INFO or above."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import attrs
import pytest
import scrapy
from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl import ConsentDropItem
from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, crawl, make_spider, people_settings, secret_name


class _PersonItem(scrapy.Item):
    subject = scrapy.Field()
    platform = scrapy.Field()
    name = scrapy.Field()
    case = scrapy.Field()


@dataclasses.dataclass
class _PersonRecord:
    subject: Any = None
    platform: Any = None
    name: Any = None
    case: Any = None


@dataclasses.dataclass(frozen=True)
class _FrozenRecord:
    subject: Any = None
    platform: Any = None
    name: Any = None
    case: Any = None


@attrs.define
class _SlottedRecord:  # attrs: __slots__, no __dict__
    subject: Any = None
    platform: Any = None
    name: Any = None
    case: Any = None


@attrs.frozen
class _FrozenSlottedRecord:
    subject: Any = None
    platform: Any = None
    name: Any = None
    case: Any = None


ITEM_KINDS: dict[str, Any] = {"dict": dict, "Item": _PersonItem, "dataclass": _PersonRecord,
                              "frozen": _FrozenRecord, "attrs": _SlottedRecord, "attrs-frozen": _FrozenSlottedRecord}


class KeepsDropped:
    """One listing page yielding an item for 101 (authorized, the control) and one for 107 (not), of
    ``item_kind``; its own ``item_dropped`` handler keeps (and logs at INFO) every item it is handed."""

    item_kind = "dict"
    seen: list[str]
    received: list[tuple[Any, Any]]
    scraped: list[Any]

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Any:
        spider = super().from_crawler(crawler, *args, **kwargs)  # type: ignore[misc]
        spider.received, spider.scraped = [], []
        crawler.signals.connect(spider.on_dropped, signal=signals.item_dropped)
        crawler.signals.connect(spider.on_scraped, signal=signals.item_scraped)
        return spider

    def on_dropped(self, item: Any, response: Any, exception: BaseException, spider: Any) -> None:
        self.received.append((item, exception))
        self.logger.info("dropped %r: %s", item, exception)

    def on_scraped(self, item: Any) -> None:
        self.scraped.append(item)

    async def start(self) -> Any:
        yield scrapy.Request(f"http://{HOST}/people?page=1", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        make = ITEM_KINDS[self.item_kind]
        for person in ("101", "107"):
            yield make(subject=person, platform="people", name=secret_name(person), case=person)


@pytest.mark.parametrize("item_kind", sorted(ITEM_KINDS))
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_item_dropped_handler_is_not_handed_the_denied_persons_data(
        kind: str, item_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    spider = type("KeepsDropped", (make_spider(kind, KeepsDropped),), {"item_kind": item_kind})
    with LocalServer(LenientPeople()) as server, caplog.at_level(logging.INFO):
        result = await crawl(spider, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    scraped, received = result.crawler.spider.scraped, result.crawler.spider.received
    assert [ItemAdapter(i).get("case") for i in scraped] == ["101"], scraped
    assert len(received) == 1, received  # the handler still learns that an item was dropped, and why
    item, exception = received[0]
    assert isinstance(exception, ConsentDropItem) and "subject." in str(exception), exception
    assert secret_name("107") not in repr(item) and "107" not in repr(item), item
    held = {k: v for k, v in ItemAdapter(item).items() if v is not None}
    if item_kind == "dict":  # a stand-in in the provenance field says why, and nothing else
        assert held == {"consentcrawl": {"dropped": str(exception).removeprefix("consentcrawl: ")}}, held
    else:  # an Item class without the provenance field, an item of fields: nothing
        assert held == {}, held
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [m for m in loud if secret_name("107") in m], loud


class _Unreadable(dict):  # type: ignore[type-arg]
    """A dict whose subject cannot be read: the guard fails on it (error.internal) and drops it."""

    def __getitem__(self, key: Any) -> Any:
        if key == "subject":
            raise RuntimeError(f"cannot read {dict.get(self, 'name')}")
        return super().__getitem__(key)


class KeepsDroppedUnreadable(KeepsDropped):
    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"subject": "101", "platform": "people", "name": secret_name("101"), "case": "101"}
        yield _Unreadable(subject="102", platform="people", name=secret_name("102"), case="102")


@deferred_f_from_coro_f
async def test_an_item_the_guard_fails_on_is_emptied_before_the_handler_gets_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The guard's own failure drops the item (error.internal): the handler gets it emptied too."""
    with LocalServer(LenientPeople()) as server, caplog.at_level(logging.INFO):
        result = await crawl(make_spider("ConsentSpider", KeepsDroppedUnreadable), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    received = result.crawler.spider.received
    assert [str(exception) for _, exception in received] == ["consentcrawl: error.internal (RuntimeError)"]
    item = received[0][0]
    assert dict(item) == {"consentcrawl": {"dropped": "error.internal (RuntimeError)"}}, dict(item)
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [m for m in loud if secret_name("102") in m], loud


def _record_with_notes(**fields: Any) -> _PersonRecord:
    """A dataclass item the spider gave an attribute of its own, outside its fields (a scratch value it means to
    drop later): the item object holds it all the same."""
    record = _PersonRecord(**fields)
    record.notes = f"notes on {fields['name']}"  # type: ignore[attr-defined]
    return record


@deferred_f_from_coro_f
async def test_an_item_dropped_handler_is_not_handed_an_attribute_outside_the_items_fields(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ITEM_KINDS["dataclass-notes"] = _record_with_notes
    try:
        spider = type("KeepsDropped", (make_spider("ConsentSpider", KeepsDropped),), {"item_kind": "dataclass-notes"})
        with LocalServer(LenientPeople()) as server:
            result = await crawl(spider, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    finally:
        del ITEM_KINDS["dataclass-notes"]
    received = result.crawler.spider.received
    assert len(received) == 1, received
    item = received[0][0]
    assert secret_name("107") not in repr(vars(item)), vars(item)
    assert [getattr(i, "notes", None) for i in result.crawler.spider.scraped] == [f"notes on {secret_name('101')}"]
