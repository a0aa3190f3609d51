"""A value a callback or errback yields that is no item (a ``str``, a ``tuple``, a number): Scrapy 2.19 hands every
output that is not a request or None to the item pipelines as an item. The guard cannot read whose it is and drops
it (``error.internal``), but it cannot be emptied in place (a ``str`` or a ``tuple`` is immutable), so Scrapy
handed it, with whatever it holds (a person's name, a refused URL), to every ``item_dropped`` handler. Such a value
is now refused before the pipelines: recorded and counted as the guard's drop was, at DEBUG in the log, and no
handler is handed it. Real crawls against the lenient people site whose spider keeps what its handlers receive."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy import signals
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, crawl, make_spider, people_settings, secret_name


class YieldsValues:
    """A listing page that yields, besides a dict item for 101 (the control), a ``str`` and a ``tuple`` naming 107
    (not authorized), and an errback for 107's refused request yielding its URL as a ``str`` and a ``tuple``."""

    seen: list[str]
    received: list[Any]
    errors: list[Any]
    scraped: list[Any]

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Any:
        spider = super().from_crawler(crawler, *args, **kwargs)  # type: ignore[misc]
        spider.received, spider.errors, spider.scraped = [], [], []
        crawler.signals.connect(spider.on_dropped, signal=signals.item_dropped)
        crawler.signals.connect(spider.on_error, signal=signals.item_error)
        crawler.signals.connect(spider.on_scraped, signal=signals.item_scraped)
        return spider

    def on_dropped(self, item: Any, response: Any, exception: BaseException, spider: Any) -> None:
        self.received.append(item)

    def on_error(self, item: Any, response: Any, spider: Any, failure: Any) -> None:
        self.errors.append(item)

    def on_scraped(self, item: Any) -> None:
        self.scraped.append(item)

    async def start(self) -> Any:
        yield scrapy.Request(f"http://{HOST}/people?page=1", callback=self.parse)
        yield scrapy.Request(f"http://{HOST}/u/107", callback=self.parse, errback=self.failed)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"subject": "101", "platform": "people", "name": secret_name("101")}
        yield f"107 {secret_name('107')}"
        yield ("107", secret_name("107"))

    def failed(self, failure: Any) -> Any:
        yield f"failed {failure.request.url}"
        yield ("failed", failure.request.url)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_value_that_is_no_item_reaches_no_item_dropped_handler(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    with LocalServer(app) as server, caplog.at_level(logging.INFO):
        result = await crawl(make_spider(kind, YieldsValues), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    spider = result.crawler.spider
    assert "107" not in app.people_served(), app.describe()
    assert [item.get("subject") for item in spider.scraped] == ["101"], spider.scraped  # the control
    handed = [repr(item) for item in [*spider.received, *spider.errors]]
    assert [text for text in handed if "107" in text] == [], handed
    assert result.stats.get("consentcrawl/items/dropped", 0) >= 2, result.stats  # the listing's str and tuple
    not_items = [e for e in result.audit if e.get("phase") == "item" and e.get("reason") == "error.internal"]
    assert len(not_items) >= 2, result.denies()
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert [m for m in loud if secret_name("107") in m or f"{HOST}/u/107" in m] == [], loud
