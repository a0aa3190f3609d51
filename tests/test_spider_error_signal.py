"""``spider_error`` handlers (an error reporter such as Sentry's, sending to a remote service) receive nothing of a
person whose request consentcrawl refused.

When a project's errback or callback raises for a refused request (or, in report mode, for a page that would be
denied), Scrapy sends ``spider_error`` with the Failure and the download's failure (or the page). The project's
exception text can hold the person's URL or name, and the traceback's frames hold the request, the refusal and
the page in their locals: everything a reporter collects. Real crawls against the lenient people site; the
handler records what a reporter reads (the exception's text and repr, the formatted traceback, every traceback
frame's locals, the ``response`` argument); nothing of a refused person may be in it. The control: an allowed
request's error reaches the handler unchanged, with its own frames."""

from __future__ import annotations

import logging
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy import signals
from scrapy.utils.defer import deferred_f_from_coro_f
from twisted.python.failure import Failure

from consentcrawl_demo.server import LocalServer
from tests import test_errback_raises as errback_raises
from tests.lenient import (
    AUTHORIZED,
    HOST,
    KINDS,
    LenientPeople,
    ListLogic,
    crawl,
    make_spider,
    people_settings,
    secret_name,
)

#: what names a person who did not authorize the crawl (104 to 120, bob): their profile URL, their id as a value
#: (quoted, after a slash, ``=`` or ``:``) and the name on their page
_DENIED = re.compile(r"/u/(?:10[4-9]|11\d|120|bob)(?!\d)|['\"/=:](?:10[4-9]|11\d|120|bob)(?![\d\w])"
                     r"|SECRET-NAME-(?:10[4-9]|11\d|120|bob)")


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # noqa: BLE001 - a reporter's repr failing is recorded, not raised
        return f"<repr failed: {exc!r}>"


def _frames_text(tb: Any) -> list[str]:
    """Each traceback frame's code location and the repr of every local, as a reporter collects them."""
    out = []
    while tb is not None:
        frame = tb.tb_frame
        local_reprs = {name: _safe_repr(value) for name, value in dict(frame.f_locals).items()}
        out.append(f"{frame.f_code.co_name} {local_reprs}")
        tb = tb.tb_next
    return out


def _exception_text(error: BaseException | None, seen: set[int] | None = None) -> list[str]:
    """The exception's text, repr, attributes and traceback frames, and those of its ``__cause__``/``__context__``."""
    seen = seen if seen is not None else set()
    if error is None or id(error) in seen:
        return []
    seen.add(id(error))
    out = [str(error), _safe_repr(error), _safe_repr(getattr(error, "__dict__", {})), _safe_repr(error.args)]
    if error.__traceback__ is not None:
        out += traceback.format_tb(error.__traceback__) + _frames_text(error.__traceback__)
    return out + _exception_text(error.__cause__, seen) + _exception_text(error.__context__, seen)


def _failure_text(failure: Failure) -> list[str]:
    tb = failure.getTracebackObject()
    out = [failure.getErrorMessage(), failure.getTraceback(), _safe_repr(failure),
           _safe_repr(getattr(failure, "request", None))]
    if tb is not None:
        out += traceback.format_tb(tb) + _frames_text(tb)
    return out + _exception_text(failure.value)


@dataclass
class Report:
    """What one ``spider_error`` handler call received, as text, and whether it had its project's frames."""

    error_type: str
    message: str
    texts: list[str] = field(default_factory=list)
    code_names: list[str] = field(default_factory=list)
    response: str = ""  #: what the ``response`` argument was: its kind and what a handler reads first

    def leaks(self) -> list[str]:
        return [m.group(0) + " in " + text[:300] for text in self.texts for m in [_DENIED.search(text)] if m]


class ReportsSpiderErrors:
    """Connects a ``spider_error`` handler that records everything an error reporter would send."""

    reports: list[Report]

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Any:
        spider = super().from_crawler(crawler, *args, **kwargs)  # type: ignore[misc]
        crawler.signals.connect(spider.on_spider_error, signal=signals.spider_error)
        return spider

    def on_spider_error(self, failure: Failure, response: Any, spider: Any) -> None:
        texts = [*_failure_text(failure), _safe_repr(response)]
        kind = type(response).__name__
        if isinstance(response, Failure):
            texts += _failure_text(response)
            decision = getattr(response.value, "decision", None)
            texts.append(_safe_repr(decision))
            kind = f"Failure {type(response.value).__name__} {getattr(decision, 'reason', '')}"
        elif isinstance(response, scrapy.http.Response):
            texts += [response.url, response.body.decode("utf-8", "replace"), _safe_repr(response.request)]
            kind = f"Response {response.url} {response.status}"
        tb = failure.getTracebackObject()
        code_names = []
        while tb is not None:
            code_names.append(tb.tb_frame.f_code.co_name)
            tb = tb.tb_next
        self.reports.append(Report(type(failure.value).__name__, str(failure.value), texts, code_names, kind))


class UrlRaisingErrback(ReportsSpiderErrors, errback_raises.UrlRaisingErrback):
    """test_errback_raises' spider (its errback raises with the failed request's URL, plain or from an async
    generator after yielding), its spider errors reported. ``/missing-page`` (a 404: HttpError, no refusal) is the
    control."""


def _check(reports: list[Report], refused: int, control: str) -> None:
    """``refused`` reports name no refused person; the control's is the project's exception, unchanged."""
    assert [r.leaks() for r in reports if r.leaks()] == [], [r.leaks() for r in reports]
    controls = [r for r in reports if control in r.message]
    assert len(controls) == 1, [r.message for r in reports]
    assert controls[0].error_type == "ValueError", controls[0]
    assert len(reports) - 1 == refused, [r.message for r in reports]
    for report in reports:
        if report is not controls[0]:  # the type and the reason code are kept: a reporter can still group them
            assert report.error_type == "ValueError" and "subject." in report.message, report.message
            # the refusal handed on as response carries its reason code alone
            assert report.response.startswith("Failure ConsentDenied subject."), report.response


@pytest.mark.parametrize("shape", ["plain", "async"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_spider_error_handlers_receive_nothing_of_a_refused_person_from_an_errback(
        kind: str, shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = LenientPeople()
    spider = type("UrlRaising", (make_spider(kind, UrlRaisingErrback),), {"shape": shape})
    reports: list[Report] = []
    with LocalServer(app) as server:
        result = await crawl(spider, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch,
                             reports=reports)
    assert sorted(app.people_served()) == ["101", "102", "103"], app.describe()
    _check(reports, refused=7, control=f"failed http://{HOST}/missing-page")
    control = next(r for r in reports if "missing-page" in r.message)
    # the control keeps its traceback: the errback's frame, with the failure in its locals
    assert ("failed" if shape == "plain" else "_failed_later") in control.code_names, control.code_names
    assert control.response == f"Response http://{HOST}/missing-page 404", control.response  # the page itself
    raising = control.code_names[-1]
    assert any(t.startswith(f"{raising} {{") and "'failure':" in t for t in control.texts), control.texts
    # Scrapy's stats and CLOSESPIDER_ERRORCOUNT count every error, under the project's exception type
    assert result.stats.get("spider_exceptions/ValueError") == 8, result.stats
    assert result.stats.get("spider_exceptions/count") == 8, result.stats


class RefusingPageErrback(UrlRaisingErrback):
    """Its errback raises with the URL; the pages are fetched, and 103's says it refuses (response phase)."""

    urls = [f"http://{HOST}/u/101", f"http://{HOST}/u/103", f"http://{HOST}/missing-page"]


@deferred_f_from_coro_f
async def test_spider_error_handlers_receive_nothing_of_a_person_who_refused_on_their_page(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = LenientPeople(refusing={"103"})
    reports: list[Report] = []
    with LocalServer(app) as server:
        await crawl(make_spider("ConsentSpider", RefusingPageErrback), people_settings(tmp_path),
                    proxy=server.proxy, monkeypatch=monkeypatch, reports=reports)
    assert "103" in app.people_served(), app.describe()
    refusing = re.compile(r"/u/103(?!\d)|['\"/=:]103(?![\d\w])|" + secret_name("103"))
    leaks = [t[:300] for r in reports for t in r.texts if refusing.search(t)]
    assert leaks == [], leaks
    assert sorted(r.message.startswith("failed") for r in reports) == [False, True], [r.message for r in reports]
    assert any("subject.refused-on-page" in r.message for r in reports), [r.message for r in reports]


class NameRaisingCallback(ReportsSpiderErrors, ListLogic):
    """Its callback raises on every profile page with the page's URL and the name it read there, the page in its
    locals; the listing's own error (after its links) is the control for a page that is not a person's."""

    urls = [f"http://{HOST}/people"]

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        if "/u/" in response.url:
            name = response.css(".name::text").get()
            raise ValueError(f"cannot parse {response.url} ({name})")
        for href in response.css("a.profile-link::attr(href)").getall():
            yield response.follow(href, callback=self.parse)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_spider_error_handlers_receive_nothing_of_a_page_report_mode_would_deny(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In report mode a would-deny page reaches its callback; the error it raises reaches the handlers as the type
    and the reason code. An allowed person's page error reaches them unchanged, name and frames included."""
    app = LenientPeople()
    reports: list[Report] = []
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, NameRaisingCallback),
                             people_settings(tmp_path, CONSENTCRAWL_MODE="report"), proxy=server.proxy,
                             monkeypatch=monkeypatch, reports=reports)
    served = app.people_served()
    assert "107" in served, app.describe()
    assert [r.leaks() for r in reports if r.leaks()] == [], [r.leaks() for r in reports]
    allowed = [r for r in reports if f"cannot parse http://{HOST}/u/101 ({secret_name('101')})" == r.message]
    assert len(allowed) == 1, [r.message for r in reports]
    assert "parse" in allowed[0].code_names, allowed[0].code_names
    denied = [r for r in reports if r is not allowed[0] and not r.message.startswith("cannot parse")]
    assert len(denied) == len(set(served) - set(AUTHORIZED)), [
        r.message for r in reports]
    assert all(r.error_type == "ValueError" and "subject." in r.message for r in denied), [r.message for r in denied]
    # the page handed on as response is an empty stand-in with the status; the allowed page is the page itself
    assert {r.response for r in denied} == {"Response about:blank 200"}, {r.response for r in denied}
    assert allowed[0].response == f"Response http://{HOST}/u/101 200", allowed[0].response
    assert result.stats.get("spider_exceptions/ValueError") == len(reports), result.stats



class NoSuchScraperMethod(UrlRaisingErrback):
    """Stands for a Scrapy release whose scraper lacks a method consentcrawl must replace: as the spider opens, it
    asks :func:`consentcrawl.startup.hook_scraper` to replace one that does not exist, as the formatter and the
    guard ask for theirs."""

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Any:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.hook, signal=signals.spider_opened)
        return spider

    def hook(self, spider: Any) -> None:
        from consentcrawl.startup import hook_scraper

        hook_scraper(self.crawler, "handle_spider_errors_v3", lambda crawler, method: method,
                     "a refused person's data would reach spider_error handlers")


@deferred_f_from_coro_f
async def test_a_crawl_whose_scraper_lacks_a_method_consentcrawl_replaces_does_not_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Where Scrapy's scraper has no method to put the sanitizing (or the item's source) in place of, the crawl
    stops before its first request, naming why, rather than run unguarded."""
    app = LenientPeople()
    with LocalServer(app) as server, caplog.at_level(logging.INFO):
        result = await crawl(make_spider("ConsentSpider", NoSuchScraperMethod), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch, reports=[])
    assert app.people_served() == [], app.describe()
    assert result.stats.get("finish_reason") == "consentcrawl_config_error", result.stats
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert any("handle_spider_errors_v3" in m and "spider_error handlers" in m for m in critical), critical

class CloseSpiderErrback(UrlRaisingErrback):
    """Its errback stops the crawl (``CloseSpider``) on the first refusal."""

    def failed(self, failure: Any) -> Any:
        raise scrapy.exceptions.CloseSpider("enough")


@deferred_f_from_coro_f
async def test_close_spider_raised_for_a_refused_request_still_closes_the_crawl(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reports: list[Report] = []
    with LocalServer(LenientPeople()) as server:
        result = await crawl(make_spider("ConsentSpider", CloseSpiderErrback), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch, reports=reports)
    assert result.stats.get("finish_reason") == "enough", result.stats
    assert reports == [] and "spider_exceptions/count" not in result.stats, result.stats


class FailingProfiles:
    """A project's downloader middleware that fails every profile request: before it is sent (``process_request``,
    placed before consentcrawl's request phase: no decision made yet) or after (``process_response``)."""

    def __init__(self, when: str) -> None:
        self.when = when

    @classmethod
    def from_crawler(cls, crawler: Any) -> FailingProfiles:
        return cls(crawler.settings.get("TEST_FAIL_WHEN"))

    def process_request(self, request: scrapy.Request) -> None:
        if self.when == "request" and "/u/" in request.url:
            raise ConnectionError("refused by the test")

    def process_response(self, request: scrapy.Request, response: Any) -> Any:
        if self.when == "response" and "/u/" in request.url:
            raise ConnectionError("refused by the test")
        return response


@pytest.mark.parametrize("when", ["request", "response"])
@deferred_f_from_coro_f
async def test_spider_error_handlers_receive_nothing_of_a_would_deny_request_whose_download_failed(
        when: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Report mode sends what it would deny; when such a request fails to download (here a project's downloader
    middleware fails it, before the send-time decision or after), its errback gets the download's failure, not a
    refusal, and the exception it raises with the URL reaches the handlers and Scrapy's ERROR line as for a
    refused request: type and reason code only. An authorized person's failure is the control."""
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report", TEST_FAIL_WHEN=when,
                               DOWNLOADER_MIDDLEWARES={f"{__name__}.FailingProfiles": 5 if when == "request" else 960})
    reports: list[Report] = []
    with LocalServer(LenientPeople()) as server, caplog.at_level(logging.INFO):
        await crawl(make_spider("ConsentSpider", UrlRaisingErrback), settings, proxy=server.proxy,
                    monkeypatch=monkeypatch, reports=reports)
    assert [r.leaks() for r in reports if r.leaks()] == [], [r.leaks() for r in reports]
    loud = [logging.Formatter("%(message)s").format(r) for r in caplog.records if r.levelno >= logging.INFO]
    assert [line for line in loud if _DENIED.search(line)] == [], [line for line in loud if _DENIED.search(line)]
    # Scrapy's "Error downloading <GET url>" line is written without the URL, with the error's type and reason
    downloads = [line for line in loud if line.startswith("Error downloading a request consentcrawl did not allow")]
    assert len(downloads) == (10 if when == "request" else 7), loud
    # an authorized person's too, decided at send time: the failed download left their page unread
    unread = [line for line in loud if line.startswith("Error downloading a person's page consentcrawl did not read "
                                                       "(page-unread;")]
    assert len(unread) == (0 if when == "request" else 3), loud
    downloads += unread
    assert all("ConnectionError" in line for line in downloads), downloads
    unchanged = sorted(r.message for r in reports if r.message.startswith("failed"))
    sanitized = [r for r in reports if not r.message.startswith("failed")]
    assert all(r.error_type == "ValueError" for r in sanitized), [r.message for r in reports]
    if when == "response":  # decided at send time: an authorized person's error is the project's, unchanged
        assert unchanged == [f"failed http://{HOST}/missing-page",
                             *(f"failed http://{HOST}/u/{p}" for p in ("101", "102", "103"))], unchanged
        assert len(sanitized) == 7 and all("(subject." in r.message for r in sanitized), [r.message for r in reports]
    else:  # failed before any decision: whose it is was never checked, so every profile's error is sanitized
        assert unchanged == [f"failed http://{HOST}/missing-page"], unchanged
        assert len(sanitized) == 10 and all("(undecided)" in r.message for r in sanitized), [r.message for r in reports]


class ReadsTheHandledException(UrlRaisingErrback):
    """Its ``spider_error`` handler also reports the exception being handled where it runs: what
    ``logger.exception(...)`` and ``sentry_sdk.capture_exception()`` without an argument read (``sys.exc_info()``).
    Scrapy calls the handlers from inside its ``except`` clause, where that is the project's own exception."""

    def on_spider_error(self, failure: Failure, response: Any, spider: Any) -> None:
        super().on_spider_error(failure, response, spider)
        handled = sys.exc_info()[1]
        self.reports[-1].texts += _exception_text(handled)
        logging.getLogger("project.errors").exception("spider error")


@pytest.mark.parametrize("shape", ["plain", "async"])
@deferred_f_from_coro_f
async def test_spider_error_handlers_reading_the_handled_exception_get_nothing_of_a_refused_person(
        shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    reports: list[Report] = []
    spider = type("ReadsHandled", (make_spider("ConsentSpider", ReadsTheHandledException),), {"shape": shape})
    with LocalServer(LenientPeople()) as server, caplog.at_level(logging.INFO):
        await crawl(spider, people_settings(tmp_path),
                    proxy=server.proxy, monkeypatch=monkeypatch, reports=reports)
    _check(reports, refused=7, control=f"failed http://{HOST}/missing-page")
    lines = [logging.Formatter("%(message)s").format(r) for r in caplog.records
             if r.name == "project.errors" and r.levelno >= logging.INFO]
    assert len(lines) == 8, lines
    leaked = [line[:300] for line in lines if _DENIED.search(line)]
    assert leaked == [], leaked
