"""A ``CloseSpider`` raised outside a callback or errback (a ``spider_idle`` handler, ``start()``) and an extension's
own ``engine.close_spider_async(reason=...)`` give the crawl's close reason too: Scrapy logs ``Closing spider
(<reason>)`` and ``Spider closed (<reason>)`` at INFO and keeps it as ``finish_reason``. No request vouches for a
URL in such a reason, so every URL or path in it is taken out (the reason as given at DEBUG); the rest of the text,
and a reason with no URL, are kept. Real crawls against the lenient people site: 107 did not authorize the crawl
and is never fetched; the reasons name their page anyway (a project's own list of URLs, say)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy import signals
from scrapy.exceptions import CloseSpider
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.spidererrors import NOT_ALLOWED_URL
from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings

REFUSED = f"http://{HOST}/u/107"


class ClosesWhenIdle(ListLogic):
    """Fetches 101, then closes from its ``spider_idle`` handler naming 107's page."""

    urls = [f"http://{HOST}/u/101"]
    follow_links = False

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Any:
        spider = super().from_crawler(crawler, *args, **kwargs)  # type: ignore[misc]
        crawler.signals.connect(spider.idle, signal=signals.spider_idle)
        return spider

    def idle(self, spider: Any = None) -> None:
        raise CloseSpider(f"idle; next was {REFUSED}, 1/2 done")


class ClosesFromStart(ListLogic):
    async def start(self) -> Any:
        raise CloseSpider(f"nothing to do before {HOST}/u/107")
        yield  # pragma: no cover - an async generator


class ClosingExtension:
    """An extension that closes the crawl itself when 101's page comes, naming 107's path."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        crawler.signals.connect(self.received, signal=signals.response_received)

    @classmethod
    def from_crawler(cls, crawler: Any) -> ClosingExtension:
        return cls(crawler)

    def received(self, response: Any, request: Any, spider: Any) -> None:
        if response.url.endswith("/u/101"):
            assert self.crawler.engine is not None
            scrapy.utils.defer.deferred_from_coro(self.crawler.engine.close_spider_async(reason="quota: /u/107 next"))


class OneProfile(ListLogic):
    urls = [f"http://{HOST}/u/101"]
    follow_links = False


CASES = {
    "spider_idle": (ClosesWhenIdle, {}, f"idle; next was {NOT_ALLOWED_URL}, 1/2 done"),
    "start": (ClosesFromStart, {}, f"nothing to do before {NOT_ALLOWED_URL}"),
    "extension": (OneProfile, {"EXTENSIONS": {f"{__name__}.ClosingExtension": 0}}, f"quota: {NOT_ALLOWED_URL} next"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_close_reason_given_outside_a_callback_names_no_url_at_info_or_in_stats(
        kind: str, case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    logic, extra, expected = CASES[case]
    app = LenientPeople()
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        result = await crawl(make_spider(kind, logic), people_settings(tmp_path, **extra), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert "107" not in app.people_served(), app.describe()
    assert result.stats.get("finish_reason") == expected, result.stats
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert [m for m in loud if "/u/107" in m] == [], loud
    assert f"Spider closed ({expected})" in loud, loud
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert [m for m in debug if "close reason named a URL" in m and "/u/107" in m], "the reason as given, at DEBUG"


class ClosesWhenIdlePlainly(ClosesWhenIdle):
    def idle(self, spider: Any = None) -> None:
        raise CloseSpider("idle: 1/2 done")


@deferred_f_from_coro_f
async def test_a_close_reason_with_no_url_is_kept_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalServer(LenientPeople()) as server:
        result = await crawl(make_spider("ADDONS", ClosesWhenIdlePlainly), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert result.stats.get("finish_reason") == "idle: 1/2 done", result.stats


def test_an_engine_without_close_spider_async_stops_the_crawl_naming_why(caplog: pytest.LogCaptureFixture) -> None:
    """Where the engine has no ``close_spider_async`` to put the cleaning in front of (another Scrapy; here no
    engine at all), the crawl is refused with one CRITICAL line rather than run with close reasons unchecked."""
    from scrapy.utils.test import get_crawler

    from consentcrawl.runtime import CONFIG_ERROR_REASON
    from consentcrawl.startup import hook_engine_close

    with caplog.at_level(logging.CRITICAL), pytest.raises(CloseSpider) as raised:
        hook_engine_close(get_crawler(), lambda reason: reason)
    assert raised.value.reason == CONFIG_ERROR_REASON
    assert [r.getMessage() for r in caplog.records if "close_spider_async" in r.getMessage()
            and r.levelno == logging.CRITICAL], caplog.records
