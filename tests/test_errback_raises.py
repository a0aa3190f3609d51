"""An errback (or callback) that raises for a request consentcrawl refused: its exception's text can hold the refused
person's URL (``raise ValueError(f"failed {failure.request.url}")``), and Scrapy logs it, with its traceback, at
ERROR. At INFO and above only the exception's type and the reason code are written; the message and the traceback
go to DEBUG. Real crawls against the lenient people site, judged by its served log and by every log record at INFO
or above, formatted as a handler writes it (traceback included)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings

#: a profile URL of a person the lenient site has and who did not authorize the crawl (104 to 120, bob)
_DENIED_URL = re.compile(r"/u/(?:10[4-9]|11\d|120|bob)(?!\d)")
_WRITTEN = logging.Formatter("%(levelname)s %(name)s: %(message)s")


def _loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every record at INFO or above as a handler writes it: the message, its arguments and any traceback."""
    return [_WRITTEN.format(r) for r in caplog.records if r.levelno >= logging.INFO]


def _naming_the_denied(caplog: pytest.LogCaptureFixture, denied: re.Pattern[str] = _DENIED_URL) -> list[str]:
    return [line for line in _loud(caplog) if denied.search(line)]


class UrlRaisingErrback(ListLogic):
    """Follows the listing's profile links; its errback raises with the failed request's URL in the message, plain
    or from an async generator after yielding (Scrapy then reports the error from the iteration)."""

    shape = "plain"
    urls = [f"http://{HOST}/people", f"http://{HOST}/missing-page"]

    async def start(self) -> Any:
        for url in self.urls:
            yield scrapy.Request(url, callback=self.parse, errback=self.failed, dont_filter=True)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        for href in response.css("a.profile-link::attr(href)").getall():
            yield response.follow(href, callback=self.parse, errback=self.failed)

    def failed(self, failure: Any) -> Any:
        if self.shape == "async":
            return self._failed_later(failure)
        raise ValueError(f"failed {failure.request.url}")

    async def _failed_later(self, failure: Any) -> Any:
        yield scrapy.Request(f"http://{HOST}/after-errback", dont_filter=True)
        raise ValueError(f"failed {failure.request.url}")


def _spider_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "scrapy.core.scraper"]


@pytest.mark.parametrize("shape", ["plain", "async"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_errback_raising_with_the_refused_url_writes_it_only_at_debug(
        kind: str, shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    spider = type("UrlRaising", (make_spider(kind, UrlRaisingErrback),), {"shape": shape})
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        result = await crawl(spider, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert sorted(app.people_served()) == ["101", "102", "103"], app.describe()
    assert result.stats.get("spider_exceptions/ValueError") == 8, result.stats  # 104-110 and the missing page
    assert not _naming_the_denied(caplog), _naming_the_denied(caplog)
    errors = _spider_errors(caplog)
    refused = [r for r in errors if "consentcrawl refused" in r.getMessage()]
    assert len(refused) == 7, _loud(caplog)
    for record in refused:  # the exception's type and the reason code, no traceback
        assert "ValueError" in record.getMessage() and "subject." in record.getMessage(), record.getMessage()
        assert record.exc_info is None and record.exc_text is None, record.getMessage()
    # the message and the traceback are not lost: at DEBUG
    debug = [_WRITTEN.format(r) for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    for person in range(104, 111):
        assert [t for t in debug if f"ValueError: failed http://{HOST}/u/{person}" in t], person
    # the control: an errback raising for a failure that is not a refusal is logged as Scrapy logs it
    control = [r for r in errors if "missing-page" in _WRITTEN.format(r)]
    assert len(control) == 1 and control[0].exc_info is not None, _loud(caplog)


class RefusedPageErrback(UrlRaisingErrback):
    urls = [f"http://{HOST}/u/101", f"http://{HOST}/u/103"]


@deferred_f_from_coro_f
async def test_an_errback_raising_for_a_page_its_person_refuses_on_writes_no_url_at_info(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The page was fetched and refused in the response phase (its person's bio says #nobot): the errback's
    exception is reported as for any other refusal."""
    app = LenientPeople(refusing={"103"})
    with LocalServer(app) as server, caplog.at_level(logging.INFO):
        result = await crawl(make_spider("ConsentSpider", RefusedPageErrback), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert "103" in app.people_served(), app.describe()
    assert result.stats.get("spider_exceptions/ValueError") == 1, result.stats
    refusing = re.compile(r"/u/103(?!\d)")
    assert not _naming_the_denied(caplog, refusing), _naming_the_denied(caplog, refusing)
    assert ["subject.refused-on-page" in r.getMessage() for r in _spider_errors(caplog)] == [True], _loud(caplog)


class UrlRaisingCallback(ListLogic):
    """Its callback raises with the page's URL in the message on every profile page."""

    urls = [f"http://{HOST}/people"]

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        if "/u/" in response.url:
            raise ValueError(f"cannot parse {response.url}")
        for href in response.css("a.profile-link::attr(href)").getall():
            yield response.follow(href, callback=self.parse)


@deferred_f_from_coro_f
async def test_a_callback_raising_on_a_page_report_mode_would_deny_writes_no_url_at_info(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """In report mode a denied page reaches its callback; one that raises is reported with the reason code that
    would have denied it. An allowed page's error is logged as Scrapy logs it (the control)."""
    app = LenientPeople()
    with LocalServer(app) as server, caplog.at_level(logging.INFO):
        result = await crawl(make_spider("ConsentSpider", UrlRaisingCallback),
                             people_settings(tmp_path, CONSENTCRAWL_MODE="report"), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert "107" in app.people_served(), app.describe()
    assert result.stats.get("spider_exceptions/ValueError", 0) >= 10, result.stats
    assert not _naming_the_denied(caplog), _naming_the_denied(caplog)
    allowed = [line for line in _loud(caplog) if f"cannot parse http://{HOST}/u/101" in line]
    assert len(allowed) == 1 and "Traceback" in allowed[0], _loud(caplog)
