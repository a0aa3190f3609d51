"""A project's ``raise CloseSpider(reason)`` from the errback of a request consentcrawl refused, the reason naming
that request's URL (``CloseSpider(f"gave up at {failure.request.url}")``): Scrapy logs ``Closing spider (<reason>)``
and ``Spider closed (<reason>)`` at INFO and keeps it as the ``finish_reason`` stat, the refused person's URL in
each. The reason is the project's own text, but it reaches the same log and stats as Scrapy's lines do: a URL in it
that the crawl did not allow (or whose page it does not know to be allowed) is taken out (the original reason at
DEBUG). The control: a reason naming an allowed page's own URL is kept. Real crawls against the lenient people
site."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.exceptions import CloseSpider
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings


class ClosesWithTheUrl(ListLogic):
    """Requests one profile; its callback and its errback close the spider with a reason naming the URL."""

    person = "107"

    async def start(self) -> Any:
        yield scrapy.Request(f"http://{HOST}/u/{self.person}", callback=self.parse, errback=self.failed)

    def parse(self, response: scrapy.http.Response) -> Any:
        raise CloseSpider(f"done with {response.url}")

    def failed(self, failure: Any) -> Any:
        raise CloseSpider(f"gave up at {failure.request.url}")


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_close_reason_naming_a_refused_url_keeps_it_out_of_info_and_stats(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        result = await crawl(make_spider(kind, ClosesWithTheUrl), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert "107" not in app.people_served(), app.describe()
    reason = result.stats.get("finish_reason")
    assert isinstance(reason, str) and reason.startswith("gave up at ") and "/u/107" not in reason, reason
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert [m for m in loud if "/u/107" in m] == [], loud
    assert [m for m in loud if m.startswith("Spider closed (gave up at")], loud
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert [m for m in debug if f"gave up at http://{HOST}/u/107" in m], "the original reason is kept at DEBUG"


@deferred_f_from_coro_f
async def test_a_close_reason_naming_an_allowed_pages_own_url_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spider = type("Closes101", (make_spider("ConsentSpider", ClosesWithTheUrl),), {"person": "101"})
    with LocalServer(LenientPeople()) as server:
        result = await crawl(spider, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert result.stats.get("finish_reason") == f"done with http://{HOST}/u/101", result.stats
