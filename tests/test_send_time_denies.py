"""A request the send-time handler refuses, and the project's downloader middlewares that answer a failed download:
one that hands back a page of its own (a "fallback page" from a mirror or an archive, at the refused URL), one that
sends the request again (rebuilt, another spelling of the URL, its meta copied), Scrapy's RetryMiddleware.

The refused request here is one a project middleware turned into another person's after the request phase allowed
it (``SwapsPerson``): only the send-time decision sees the URL actually sent. Judged by the lenient site's served
log, the callback's runs, the items and the audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.http import HtmlResponse
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.middlewares import ConsentDenied
from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, ListLogic, crawl, make_spider, people_settings, secret_name

BASE = f"http://{HOST}"
#: not authorized (tests/lenient.py's AUTHORIZED are 101, 102, 103 and alice)
REFUSED = "105"
#: the send-time deny of REFUSED, as the audit log has it (send-time lines are in the "request" phase)
SEND_DENY = ("request", f"{BASE}/u/{REFUSED}", "subject.no-authorization")
#: allowed by the request phase, then turned into REFUSED's page by ``SwapsPerson``
SWAPPED = f"{BASE}/u/101?swap=1"


class SwapsPerson:
    """A project's downloader middleware (after the request phase) that changes the URL in place."""

    def process_request(self, request: scrapy.Request) -> None:
        if "swap=1" in request.url:
            request._set_url(f"{BASE}/u/{REFUSED}")


class FallbackPage:
    """Answers any failed download with a page of its own at the request's URL, as if it were the page: here the
    refused person's profile, as a mirror would have it (their name in it). ``restore``: the request's URL first
    put back as the spider wrote it (what the request phase allowed)."""

    restore = False

    @classmethod
    def from_crawler(cls, crawler: Any) -> FallbackPage:
        middleware = cls()
        middleware.restore = crawler.settings.getbool("TEST_RESTORE_URL")
        return middleware

    def process_exception(self, request: scrapy.Request, exception: Exception) -> Any:
        if self.restore:
            request._set_url(SWAPPED)
        body = (f'<html><body><div class="profile" data-subject="{REFUSED}"><h1 class="name">'
                f"{secret_name(REFUSED)}</h1></div></body></html>")
        return HtmlResponse(request.url, body=body.encode(), encoding="utf-8", request=request)


class RebuildsRequest:
    """Sends a failed request again, rebuilt: another spelling of its URL, its meta copied, twice at most."""

    def process_exception(self, request: scrapy.Request, exception: Exception) -> Any:
        tries = request.meta.get("tries", 0)
        if tries < 2:
            return request.replace(url=request.url + "/", dont_filter=True, meta={**request.meta, "tries": tries + 1})
        return None


class Failures(ListLogic):
    """Keeps what each failed request's errback was called with; items name their subject."""

    failures: list[Any]

    async def start(self) -> Any:
        for url in self.urls:
            yield scrapy.Request(url, callback=self.parse, errback=self.failed, dont_filter=True)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"url": response.url, "name": response.css(".name::text").get(),
               "subject": response.css("[data-subject]::attr(data-subject)").get()}

    def failed(self, failure: Any) -> None:
        self.failures.append(failure.value)


async def _crawl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, middleware: str, app: LenientPeople,
                 **extra: Any) -> tuple[Any, list[Any]]:
    middlewares = {f"{__name__}.SwapsPerson": 600, f"{__name__}.{middleware}": 500}
    settings = people_settings(tmp_path, DOWNLOADER_MIDDLEWARES=middlewares, **extra)
    failures: list[Any] = []
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", Failures), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[SWAPPED, f"{BASE}/u/102"], failures=failures)
    return result, failures


def _nothing_of_the_refused(app: LenientPeople, result: Any) -> None:
    assert REFUSED not in app.people_served(), app.describe()
    assert app.people_served() == ["102"], app.describe()  # control: the crawl ran
    assert result.seen == [f"{BASE}/u/102"], result.seen
    leaked = [i for i in result.items + result.dropped if secret_name(REFUSED) in str(i) or i.get("subject") == REFUSED]
    assert not leaked, leaked


@pytest.mark.parametrize("restore", [False, True])
@deferred_f_from_coro_f
async def test_a_fallback_page_for_a_request_refused_at_send_time_reaches_no_callback(
        restore: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. A page a project middleware makes up for a refused request is not the person's page fetched: it
    reaches no callback, no item, no pipeline; the errback gets the refusal. (Before, the middleware's page went
    to the response phase, and there reached the callback when the middleware had put the URL the request phase
    allowed back on the request.)"""
    app = LenientPeople()
    result, failures = await _crawl(tmp_path, monkeypatch, "FallbackPage", app, TEST_RESTORE_URL=restore)
    _nothing_of_the_refused(app, result)
    assert result.denies() == [SEND_DENY], result.denies()
    assert len(failures) == 1 and type(failures[0]) is ConsentDenied, failures
    assert failures[0].decision.reason == "subject.no-authorization"


@deferred_f_from_coro_f
async def test_a_request_refused_at_send_time_is_not_sent_again_by_a_middleware_that_rebuilds_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. A middleware that answers the refusal with a rebuilt request (another spelling, the meta copied) never
    gets the person's page: the refusal goes to the errback, once, and nothing is sent again. (Before, the rebuilt
    request was scheduled and refused again.)"""
    app = LenientPeople()
    result, failures = await _crawl(tmp_path, monkeypatch, "RebuildsRequest", app)
    _nothing_of_the_refused(app, result)
    assert result.denies() == [SEND_DENY], result.denies()
    assert len(failures) == 1 and type(failures[0]) is ConsentDenied, failures
    assert not [s for s in app.served if REFUSED in s.target], app.describe()


@deferred_f_from_coro_f
async def test_scrapys_retry_middleware_does_not_retry_a_request_refused_at_send_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. Even told to retry ``IgnoreRequest`` (the class of every refusal), Scrapy's RetryMiddleware never sees
    the refusal. (Before, it retried it: the retry was scheduled and refused again.)"""
    app = LenientPeople()
    result, failures = await _crawl(tmp_path, monkeypatch, "SwapsPerson", app, RETRY_ENABLED=True, RETRY_TIMES=3,
                                    RETRY_EXCEPTIONS=["scrapy.exceptions.IgnoreRequest"])
    _nothing_of_the_refused(app, result)
    assert not any(k.startswith("retry/") for k in result.stats), result.stats
    assert result.denies() == [SEND_DENY], result.denies()
    assert len(failures) == 1 and type(failures[0]) is ConsentDenied, failures


@deferred_f_from_coro_f
async def test_a_fallback_page_for_a_request_refused_in_the_request_phase_reaches_no_callback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for the request phase's refusal (robots.txt disallows the page): the middleware's page is never
    made (before, the response phase refused it: the request's refusal was remembered for its URL)."""
    from tests.lenient import Robots

    app = LenientPeople(default_robots=Robots("User-agent: *\nDisallow: /private\n")).page("/private", "<p>x</p>")
    settings = people_settings(tmp_path, DOWNLOADER_MIDDLEWARES={f"{__name__}.FallbackPage": 500})
    failures: list[Any] = []
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", Failures), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/private", f"{BASE}/u/102"], failures=failures)
    _nothing_of_the_refused(app, result)
    assert result.denies() == [("request", f"{BASE}/private", "robots.disallowed")], result.denies()
    assert len(failures) == 1 and type(failures[0]) is ConsentDenied, failures


# --------------------------------------------------------------------------- a scheme changed in place

class FetchesOverHttp:
    """A project's download handler for ``ftp`` that reaches the site (here over HTTP, through the test's proxy):
    what Scrapy's FTP handler does on a host that serves FTP."""

    lazy = False

    def __init__(self, crawler: Any) -> None:
        self.proxy = crawler.settings["TEST_PROXY"]

    @classmethod
    def from_crawler(cls, crawler: Any) -> FetchesOverHttp:
        return cls(crawler)

    async def download_request(self, request: scrapy.Request) -> Any:
        import asyncio
        import urllib.request

        url = "http://" + request.url.split("://", 1)[1]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": self.proxy}))
        body = await asyncio.to_thread(lambda: opener.open(url, timeout=5).read())
        return HtmlResponse(request.url, body=body, encoding="utf-8", request=request)

    async def close(self) -> None:
        pass


class ToFtp:
    """A project's downloader middleware that changes the scheme in place, before any middleware parsed the URL."""

    def process_request(self, request: scrapy.Request) -> None:
        if "swap=1" in request.url:
            request._set_url(f"ftp://{HOST}/u/{REFUSED}")


@pytest.mark.parametrize("priority", [20, 800])
@pytest.mark.parametrize("queue", ["scrapy.pqueues.DownloaderAwarePriorityQueue", "scrapy.pqueues.ScrapyPriorityQueue"])
@deferred_f_from_coro_f
async def test_a_scheme_changed_in_place_after_the_request_phase_is_refused_whatever_handler_scrapy_picks(
        priority: int, queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. A middleware turns an allowed request into an ``ftp://`` one in place after the request phase: Scrapy
    picks the download handler by its parse of the URL, cached the first time a component reads it (Scrapy's
    default priority queue as it queues the request, else the cookies or proxy middleware, or the download slot).
    With ScrapyPriorityQueue and the change made at 20, before any of them, that was the ``ftp`` URL: the project's
    ftp handler fetched the refused person's page, decided by nobody. The request phase now reads it first: the
    send-time handler for http gets the request and refuses the ``ftp`` URL it has."""
    app = LenientPeople()
    failures: list[Any] = []
    with LocalServer(app) as server:
        settings = people_settings(tmp_path, DOWNLOADER_MIDDLEWARES={f"{__name__}.ToFtp": priority},
                                   DOWNLOAD_HANDLERS={"ftp": f"{__name__}.FetchesOverHttp"}, TEST_PROXY=server.proxy,
                                   SCHEDULER_PRIORITY_QUEUE=queue)
        result = await crawl(make_spider("ADDONS", Failures), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[SWAPPED, f"{BASE}/u/102"], failures=failures)
    _nothing_of_the_refused(app, result)
    assert [(phase, reason) for phase, _, reason in result.denies()] == [("request", "error.bad-url")], result.denies()
    assert len(failures) == 1 and type(failures[0]) is ConsentDenied, failures
