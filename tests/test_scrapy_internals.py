"""The Scrapy internals ``consentcrawl/_scrapy_internals/`` reaches into, checked on the installed Scrapy.

Each helper there degrades quietly when what it reaches for is missing (a crawl must not crash on a Scrapy
release that moved an attribute), so a release that moves one would switch a behaviour off without a failure:
``Crawl-delay`` no longer spacing requests, errbacks of denied requests no longer run, ``scrapy crawl`` exiting 0
after a configuration error. These tests look for each attribute in a real, running crawl and check its effect,
so that CI on the newest Scrapy names the one that moved. ``fail_crawl``'s effect (``scrapy crawl`` exits non-zero)
is checked by ``tests/test_settings.py::test_scrapy_crawl_with_a_bad_value_exits_non_zero_with_one_line_naming_it``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl import _scrapy_internals as internals
from consentcrawl import scrapylines
from consentcrawl_demo.server import LocalServer
from tests.conftest import run_crawl


class Probe(scrapy.Spider):
    """Fetches one page and, from its callback, while the engine runs, tries each internal."""

    name = "probe"
    found: dict[str, Any] = {}

    async def start(self) -> Any:
        yield scrapy.Request("http://microblog.example/robots.txt", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        crawler = self.crawler
        engine = crawler.engine
        downloader = engine.downloader
        found = Probe.found
        assert response.request is not None
        found["slot key"] = downloader.get_slot_key(response.request)
        found["slots"] = isinstance(downloader.slots, dict) and found["slot key"] in downloader.slots
        found["per slot settings"] = isinstance(downloader.per_slot_settings, dict)
        slot = downloader.slots[found["slot key"]]
        found["slot delay before"] = slot.delay
        request = scrapy.Request("http://microblog.example/u/1001")
        internals.apply_crawl_delay(crawler, request, 7.5)
        found["slot delay after"] = (slot.delay, slot.jitter, request.meta.get("autothrottle_dont_adjust_delay"))
        # a slot not made yet: the delay waits in per_slot_settings for it
        other = scrapy.Request("http://other.example/")
        internals.apply_crawl_delay(crawler, other, 3.0)
        found["pending slot"] = downloader.per_slot_settings.get(downloader.get_slot_key(other))
        found["scraper"] = callable(getattr(engine.scraper, "enqueue_scrape", None)) and engine.scraper.slot is not None
        found["item pipelines"] = [type(p).__name__ for p in internals.item_pipelines(crawler)]
        found["nextcall"] = callable(getattr(getattr(engine._slot, "nextcall", None), "schedule", None))
        internals.wake_engine(crawler)  # must not raise while the engine runs
        errbacks: list[str] = []
        dropped = scrapy.Request("http://microblog.example/u/1002", errback=lambda f: errbacks.append(str(f.value)))
        found["errback handed"] = internals.fail_request(crawler, dropped, ValueError("denied here"))
        found["errbacks"] = errbacks
        scraper = engine.scraper
        handles: list[Any] = []

        def wrap(crawler: Any, handle: Any) -> Any:
            handles.append(handle)
            return lambda *args: handle(*args)

        for name in ("handle_spider_error", "start_itemproc_async"):
            handles.clear()
            found[f"{name} wrapped"] = (internals.wrap_scraper(crawler, name, wrap),
                                        internals.wrap_scraper(crawler, name, wrap), len(handles))
            found[f"{name} method"] = handles[0].__func__ is getattr(type(scraper), name)
            found[f"{name} in place"] = getattr(scraper, name) is not handles[0]
            delattr(scraper, name)  # this probe's own errors and items as Scrapy handles them
        found["no such method"] = internals.wrap_scraper(crawler, "no_such_method", wrap)
        reasons: list[Any] = []

        def clean(reason: Any) -> Any:
            reasons.append(reason)
            return f"{reason} (cleaned)"

        found["close reasons"] = reasons
        found["engine close wrapped"] = (internals.wrap_engine_close(crawler, clean),
                                         internals.wrap_engine_close(crawler, clean),
                                         "close_spider_async" in vars(engine))
        checked: list[str] = []
        internals.guard_engine_download(crawler, lambda request: checked.append(request.url))
        internals.guard_engine_download(crawler, lambda request: checked.append("twice"))
        found["engine download guarded"] = ("download_async" in vars(engine), checked)
        found["default callback"] = internals.spider_default_callback(crawler)
        return self.parse_inline()

    async def parse_inline(self) -> Any:
        response = await self.crawler.engine.download_async(scrapy.Request("http://microblog.example/u/1001"))
        Probe.found["downloaded in line"] = response.status
        return None


@deferred_f_from_coro_f
async def test_each_internal_is_where_the_helpers_look_for_it_in_a_running_crawl(
        server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    Probe.found = {}
    result = await run_crawl(Probe, {"ROBOTSTXT_OBEY": False, "DOWNLOAD_DELAY": 0, "DOWNLOAD_DELAY_JITTER": 0.5,
                            "LOG_LEVEL": "WARNING", "IMAGES_STORE": str(tmp_path / "images"),
                            "ITEM_PIPELINES": {"scrapy.pipelines.images.ImagesPipeline": 1}},
                    proxy=server.proxy, monkeypatch=monkeypatch)
    found = Probe.found
    assert found["slots"] and found["per slot settings"]
    assert found["slot delay before"] == 0
    assert found["slot delay after"] == (7.5, 0, True)  # the delay grows, its jitter is off, AutoThrottle is told
    assert found["pending slot"] == {"delay": 3.0, "jitter": 0}
    assert found["scraper"] and found["nextcall"]
    assert found["item pipelines"] == ["ImagesPipeline"]  # the crawl's own instance
    assert found["errback handed"] is True
    assert found["errbacks"] == ["denied here"]  # the scraper ran the errback before the spider closed
    # each scraper method is replaced once, by an attribute Scrapy looks up at each call
    for name in ("handle_spider_error", "start_itemproc_async"):
        assert found[f"{name} wrapped"] == (True, True, 1), name
        assert found[f"{name} method"] and found[f"{name} in place"], name
    assert found["no such method"] is False
    # the engine's close is replaced once, and the reason Scrapy logs and keeps is the one it hands back
    assert found["engine close wrapped"] == (True, True, True)
    assert found["close reasons"] == ["finished"]
    assert result.stats["finish_reason"] == "finished (cleaned)"
    # the engine's download_async is replaced once, by an attribute the callback's await looks up
    assert found["engine download guarded"] == (True, ["http://microblog.example/u/1001"])
    assert found["downloaded in line"] == 200
    assert getattr(found["default callback"], "__name__", None) == "_parse"  # Scrapy calls it for no callback


def test_wrap_scraper_says_when_there_is_no_scraper_or_no_such_method() -> None:
    from scrapy.utils.test import get_crawler

    assert internals.wrap_scraper(get_crawler(), "handle_spider_error", lambda crawler, handle: handle) is False
    assert internals.wrap_engine_close(get_crawler(), lambda reason: reason) is False
    assert internals.item_pipelines(get_crawler()) == []


@deferred_f_from_coro_f
async def test_the_http11_handlers_pool_is_where_no_silent_resend_looks_for_it() -> None:
    """The pool's own resend is off for Scrapy's HTTP/1.1 handler (the crawl that shows why is in
    ``tests/test_resend.py``); a release that renames ``_pool`` fails here rather than resending quietly."""
    from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler
    from scrapy.utils.misc import build_from_crawler
    from scrapy.utils.test import get_crawler
    from twisted.web.client import HTTPConnectionPool

    handler = build_from_crawler(HTTP11DownloadHandler, get_crawler())
    try:
        assert isinstance(handler._pool, HTTPConnectionPool) and handler._pool.retryAutomatically
        internals.no_silent_resend(handler)
        assert handler._pool.retryAutomatically is False
        internals.no_silent_resend(object())  # a handler without a pool: left alone
    finally:
        await handler.close()


@contextmanager
def _captured(name: str) -> Iterator[list[logging.LogRecord]]:
    """The records logger ``name`` writes at INFO or above inside the block."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _httpx_request_line(method: str, url: str) -> str:
    """The line httpx's client writes at INFO for each request it sends, as it writes it (on the installed httpx)."""
    import httpx

    with httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200))) as client, \
            _captured("httpx") as records:
        client.request(method.split()[0], url)
    (record,) = records
    return record.getMessage()


def test_the_download_handlers_lines_are_read_as_scrapy_writes_them() -> None:
    """The download lines filter finds the request in the messages Scrapy's handlers build, on the installed Scrapy,
    from the loggers they log on (a moved module or a reworded message would let the URL through): as
    ``<METHOD url>`` whatever the method (a space in it included) or as the URL alone, not as a longer URL."""
    import importlib

    from scrapy import Request
    from scrapy.utils._download_handlers import get_dataloss_msg, get_maxsize_msg, get_warnsize_msg

    from consentcrawl.downloadlines import named_in

    # httpx's client logs on "httpx" from its private _client module, scrapy-playwright's handler on its own name
    modules = {"httpx": "httpx._client", "scrapy-playwright": "scrapy_playwright.handler"}
    for name in scrapylines.DOWNLOAD_HANDLER_LOGGERS:
        try:
            module = importlib.import_module(modules.get(name, name))
        except ImportError:  # an optional dependency missing (h2 for HTTP/2): that handler cannot run either
            continue
        assert module.logger.name == name
    url = "http://people.example/u/104?a=1"
    for method in ("GET", "GET X", "M-SEARCH  TWO SPACES"):
        request = Request(url, method=method)
        messages = [get_warnsize_msg(500, 60, request, expected=True),
                    get_warnsize_msg(61, 60, request, expected=False),
                    get_maxsize_msg(500, 60, request, expected=True), get_dataloss_msg(url),
                    _httpx_request_line(method, url)]
        for message in messages:
            pattern = named_in(message, url)
            assert pattern is not None, message
            assert url not in pattern.sub("", message) and method not in pattern.sub("", message)[-20:], message
            assert named_in(message, url[:-1]) is None, message  # a URL this one starts with is another page
