"""Lines at INFO or above that still named a person the crawl may not collect, each found by an earlier session:

- report mode: an item of a person who did not authorize the crawl (or that names one: 108) reaches Scrapy's
  ``Dropped: <exception>\\n<item>`` (WARNING), ``Error processing <item>`` (ERROR) and ``MediaPipeline found errors
  processing <item>`` (ERROR), the item's data in full;
- an exception raised in a signal handler (``response_received``, ``item_scraped``, ``request_dropped``) is
  logged at ERROR by Scrapy with its message: the project's ``ValueError(f"... {response.url}")``;
- ``UrlLengthMiddleware``'s ``Ignoring link (url length > N): <url>`` (INFO) and ``SitemapSpider``'s ``Ignoring
  invalid sitemap: <200 url>`` (WARNING) in report mode; the files pipeline's ``referred in <url>``;
- ``get_retry_request(..., logger=<the project's logger>)``: ``Gave up retrying <GET url>`` on a logger the
  middlewares' filter was not on;
- a close reason naming a denied person by a bare id (``stopped at 107``);
- an errback's own ``self.logger.error(failure)`` and ``self.logger.warning("... %s", failure.request.url)``.

Two real crawls against the lenient people site (one in report mode, one enforcing), each judged by every log record
at INFO or above, traceback included, and by what the server was asked; 101 authorized the crawl and is the control:
its lines keep what Scrapy or the project wrote."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy import signals
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import CloseSpider, DropItem
from scrapy.pipelines.files import FilesPipeline
from scrapy.pipelines.media import MediaPipeline
from scrapy.spiders import SitemapSpider
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, Response
from tests.lenient import HOST, LenientPeople, crawl, make_spider, people_settings
from tests.test_report_mode_lines import Answering

_WRITTEN = logging.Formatter("%(levelname)s %(name)s: %(message)s")
#: what of 107 (never authorized) and 108 (never authorized, named by an item on 101's page) must not be at INFO+
_DENIED = re.compile(r"(?:/u/|SECRET-NAME-|\b)(?:10[789]|115)(?!\d)")
LONG = "?ref=" + "x" * 60
#: a project's own logger, made at import as a project's module makes it
PROJECT_LOGGER = logging.getLogger(__name__)


def _loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [_WRITTEN.format(r) for r in caplog.records if r.levelno >= logging.INFO
            and not r.getMessage().startswith("Dumping Scrapy stats")]  # counts, some may be 107


def _named(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [line for line in _loud(caplog) if _DENIED.search(line)]


class Acts:
    """A project's pipeline: says whose item it has, drops or fails on the items that ask for it."""

    def process_item(self, item: Any) -> Any:
        PROJECT_LOGGER.info("acting on the item of %s", item.get("name"))
        if item.get("act") == "drop":
            raise DropItem("not wanted")
        if item.get("act") == "error":
            raise ValueError("the project's pipeline failed")
        return item


#: the page each file of :class:`EnforceLogic`'s items is about: 107's (refused) and 115's (never decided)
ABOUT = {f"http://{HOST}/static/missing.png?n={n}": f"http://{HOST}/u/{person}"
         for n, person in enumerate(("107", "115"))}


class ErrorsFiles(FilesPipeline):
    """A files pipeline that also reports its failed files as ``MediaPipeline`` does (``found errors processing
    <item>``), and sends each file with the page it is about as its referer: the item's ``about``, or the page
    :data:`ABOUT` names for the file (an allowed person's item holds no URL of someone not allowed: the guard
    withholds it)."""

    def get_media_requests(self, item: Any, info: Any) -> list[scrapy.Request]:
        return [scrapy.Request(url, headers={"Referer": item.get("about") or ABOUT.get(url) or item["url"]})
                for url in item.get("file_urls", ())]

    def item_completed(self, results: Any, item: Any, info: Any) -> Any:
        MediaPipeline.item_completed(self, results, item, info)
        return super().item_completed(results, item, info)


def _pipelines(settings: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    settings["FILES_STORE"] = str(tmp_path / "files")
    settings["ITEM_PIPELINES"] = {**settings.get("ITEM_PIPELINES", {}), f"{__name__}.Acts": 200,
                                  f"{__name__}.ErrorsFiles": 300}
    return settings


def _items(response: Any, person: str) -> list[dict[str, Any]]:
    name = response.css(".name::text").get()
    base = {"url": response.url, "name": name}
    return [{**base, "act": "drop"}, {**base, "act": "error"},
            {**base, "act": "media", "file_urls": [f"http://{HOST}/static/missing.png"]}]


# -- report mode ---------------------------------------------------------------------------------------------------


class ReportLogic(SitemapSpider):
    """Profiles of 101 and 107, with their items; a long link to each; a sitemap at each profile (an HTML page:
    invalid); 107 asked for again (the dupefilter drops it); signal handlers that raise naming what they got."""

    sitemap_urls = [f"http://{HOST}/u/101/sitemap.xml", f"http://{HOST}/u/107/sitemap.xml"]
    seen: list[str]

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Any:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.received, signal=signals.response_received)
        crawler.signals.connect(spider.scraped, signal=signals.item_scraped)
        crawler.signals.connect(spider.dropped, signal=signals.request_dropped)
        return spider

    async def start(self) -> Any:
        for url in self.sitemap_urls:
            yield scrapy.Request(url, callback=self._parse_sitemap)
        for person in ("101", "107"):
            yield scrapy.Request(f"http://{HOST}/u/{person}", callback=self.profile)
            yield scrapy.Request(f"http://{HOST}/u/{person}{LONG}", callback=self.profile)
        for person in ("102", "109"):  # both answer too late: the timeout's message names the URL
            # their own 1 s timeout (a crawl-wide one would also bound the site's signal files, which a loaded
            # machine may then not get in time: 101's links denied terms.signal-unavailable, the control gone)
            yield scrapy.Request(f"http://{HOST}/u/{person}", callback=self.profile, errback=self.failed,
                                 meta={"download_timeout": 1.0})

    def failed(self, failure: Any) -> None:
        self.logger.error(failure)

    def profile(self, response: Any) -> Any:
        self.seen.append(response.url)
        person = response.url.rsplit("/", 1)[1]
        yield from _items(response, person)
        if person == "101":
            yield {"subject": "108", "platform": "people", "name": "SECRET-NAME-108", "act": "drop",
                   "url": response.url}
            yield scrapy.Request(f"http://{HOST}/u/107", callback=self.profile)  # a duplicate: dropped

    def received(self, response: Any, request: Any, spider: Any) -> None:
        if "/u/" in response.url and "sitemap" not in response.url:
            raise ValueError(f"an odd page: {response.url}")

    def scraped(self, item: Any, response: Any, spider: Any) -> None:
        raise ValueError(f"cannot store the item of {item.get('url')}")

    def dropped(self, request: Any, spider: Any) -> None:
        raise ValueError(f"dropped {request.url}")


@deferred_f_from_coro_f
async def test_report_mode_lines_about_items_signals_long_links_and_sitemaps_name_no_denied_person(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    late = Response.text("late\n", 200, None)
    late.delay = 1.5
    app = Answering(LenientPeople(), {"/static/missing.png": Response.text("no such file\n", 404), "/u/102": late,
                                      "/u/109": late})
    settings = _pipelines(people_settings(tmp_path, CONSENTCRAWL_MODE="report", URLLENGTH_LIMIT=60), tmp_path)
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        await crawl(make_spider("ADDONS", ReportLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    asked = [s.path for s in app.site.served]
    assert {"/u/107", "/u/107/sitemap.xml", "/u/109"} <= set(asked), asked  # report mode sent them
    assert _named(caplog) == [], "\n".join(_named(caplog))
    loud = _loud(caplog)
    # the control: 101 authorized the crawl; Scrapy's and the project's lines about them are as written
    for line in (f"WARNING scrapy.core.scraper: Dropped: not wanted\n{{'url': 'http://{HOST}/u/101', 'name': "
                 "'SECRET-NAME-101', 'act': 'drop'",
                 "ERROR scrapy.core.scraper: Error processing {'url': 'http://people.example/u/101', 'name': "
                 "'SECRET-NAME-101', 'act': 'error'",
                 "ERROR scrapy.pipelines.media: ErrorsFiles found errors processing {'url': "
                 "'http://people.example/u/101'",
                 f"INFO scrapy.spidermiddlewares.urllength: Ignoring link (url length > 60): http://{HOST}/u/101{LONG}",
                 f"WARNING scrapy.spiders.sitemap: Ignoring invalid sitemap: <200 http://{HOST}/u/101/sitemap.xml>",
                 f"ValueError: an odd page: http://{HOST}/u/101",
                 f"ValueError: cannot store the item of http://{HOST}/u/101",
                 f"INFO {__name__}: acting on the item of SECRET-NAME-101",
                 "ERROR reportlogic: [Failure instance: Traceback: <class 'scrapy.exceptions.DownloadTimeoutError'>: "
                 f"Getting http://{HOST}/u/102 took longer than 1.0 seconds."):
        assert [m for m in loud if line in m], (line, loud)
    # 107's and 108's lines are there, at Scrapy's level, with the reason code in place of the person
    for line in ("WARNING scrapy.core.scraper: Dropped: DropItem (its message at DEBUG)\n"
                 "an item consentcrawl did not allow (subject.no-authorization; its data at DEBUG)",
                 f"INFO {__name__}: a line written while the pipelines processed an item consentcrawl did not allow "
                 "(subject.no-authorization; its data at DEBUG)",
                 "ERROR scrapy.core.scraper: Error processing an item consentcrawl did not allow "
                 "(subject.no-authorization; its data at DEBUG)",
                 "ERROR scrapy.pipelines.media: ErrorsFiles found errors processing an item consentcrawl did not allow",
                 "INFO scrapy.spidermiddlewares.urllength: Ignoring link (url length > 60): <a URL consentcrawl did "
                 "not allow (subject.no-authorization); at DEBUG>",
                 "WARNING scrapy.spiders.sitemap: Ignoring invalid sitemap: <200 <a URL consentcrawl did not allow",
                 "ValueError: an odd page: <a URL consentcrawl did not allow (subject.no-authorization); at DEBUG>",
                 "ValueError: dropped <a URL consentcrawl did not allow (subject.no-authorization); at DEBUG>",
                 "ERROR reportlogic: [Failure instance: Traceback: <class 'scrapy.exceptions.DownloadTimeoutError'>: "
                 "Getting <a URL consentcrawl did not allow (subject.no-authorization); at DEBUG> took longer"):
        assert [m for m in loud if line in m], (line, loud)
    debug = [_WRITTEN.format(r) for r in caplog.records if r.levelno == logging.DEBUG]
    for text in ("SECRET-NAME-107", "SECRET-NAME-108", f"/u/107{LONG}", "/u/107/sitemap.xml",
                 f"dropped http://{HOST}/u/107"):
        assert [line for line in debug if text in line], f"nothing lost: {text} at DEBUG"


# -- enforcing -----------------------------------------------------------------------------------------------------


class EnforceLogic:
    """101's page, with a media item whose referer is 107's page and an item naming 108; 107 is refused, and its
    errback logs the failure, retries through ``get_retry_request`` with the project's logger, then raises; the
    crawl closes from ``spider_idle`` naming 107 by id."""

    seen: list[str]

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Any:
        spider = super().from_crawler(crawler, *args, **kwargs)  # type: ignore[misc]
        crawler.signals.connect(spider.idle, signal=signals.spider_idle)
        return spider

    async def start(self) -> Any:
        for person in ("101", "107"):
            yield scrapy.Request(f"http://{HOST}/u/{person}", callback=self.profile, errback=self.failed)

    def profile(self, response: Any) -> Any:
        self.seen.append(response.url)
        for n in range(2):  # referred by 107's page (refused) and 115's (never decided): ABOUT
            yield {"url": response.url, "name": response.css(".name::text").get(), "act": "media",
                   "file_urls": [f"http://{HOST}/static/missing.png?n={n}"]}
        yield {"subject": "108", "platform": "people", "name": "SECRET-NAME-108", "act": "drop",
               "url": response.url}

    def failed(self, failure: Any) -> Any:
        self.logger.error(failure)  # type: ignore[attr-defined]
        self.logger.warning("gave up on %s", failure.request.url)  # type: ignore[attr-defined]
        get_retry_request(failure.request, spider=self, reason="refused", max_retry_times=0, logger=PROJECT_LOGGER)
        raise ValueError(f"no page at {failure.request.url}")

    def idle(self, spider: Any = None) -> None:
        raise CloseSpider("stopped at 107, after 101")


@pytest.mark.parametrize("kind", ["ConsentSpider", "ADDONS"])
@deferred_f_from_coro_f
async def test_enforcing_errback_retry_close_reason_and_media_lines_name_no_denied_person(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = Answering(LenientPeople(), {"/static/missing.png": Response.text("no such file\n", 404)})
    settings = _pipelines(people_settings(tmp_path), tmp_path)
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        result = await crawl(make_spider(kind, EnforceLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.site.people_served() == ["101"], app.site.describe()  # 115's page was not asked for either
    assert _named(caplog) == [], "\n".join(_named(caplog))
    loud = _loud(caplog)
    assert result.stats.get("finish_reason") == "stopped at <a person consentcrawl did not allow " \
                                                "(subject.no-authorization); at DEBUG>, after 101", result.stats
    for line in ("Gave up retrying a request consentcrawl did not allow (subject.no-authorization; its URL is in "
                 "the audit log) (failed 1 times): its reason at DEBUG",
                 "gave up on <a URL consentcrawl did not allow (subject.no-authorization); at DEBUG>",
                 f"File (code: 404): Error downloading file from <GET http://{HOST}/static/missing.png?n=0> referred "
                 "in <<a URL consentcrawl did not allow (subject.no-authorization); at DEBUG>>",
                 f"File (code: 404): Error downloading file from <GET http://{HOST}/static/missing.png?n=1> referred "
                 "in <<a URL consentcrawl did not allow (undecided); at DEBUG>>",
                 "ErrorsFiles found errors processing {'url': 'http://people.example/u/101', 'name': "
                 "'SECRET-NAME-101'"):  # the control: 101's item
        assert [m for m in loud if line in m], (line, loud)
    debug = [_WRITTEN.format(r) for r in caplog.records if r.levelno == logging.DEBUG]
    for text in ("stopped at 107", f"gave up on http://{HOST}/u/107", f"Gave up retrying <GET http://{HOST}/u/107>",
                 "Dropped: consentcrawl: subject.no-authorization"):  # the guard dropped 108's item, at DEBUG
        assert [line for line in debug if text in line], f"nothing lost: {text} at DEBUG"


def test_a_denied_persons_id_is_taken_out_as_a_word_of_its_own_only() -> None:
    """The id of a person the crawl denied, wherever it stands as a word (a handle with dots too), in any case; not
    inside a longer word or number."""
    from consentcrawl.decision import Stage, deny
    from consentcrawl.deniedpeople import DeniedPeople

    people = DeniedPeople()
    for subject, reason in (("107", "subject.no-authorization"), ("john.doe", "subject.revoked"),
                            ("Alice", "subject.refused-on-page")):
        people.saw(deny(Stage.SUBJECT, reason, subject=subject, platform="people"))
    said = people.ids_out("at 107, 1070, /u/107. by john.doe. not john.doe.smith; @ALICE alice_x", "<{reason}>")
    assert said == ("at <subject.no-authorization>, 1070, /u/<subject.no-authorization>. by <subject.revoked>. not "
                    "john.doe.smith; @<subject.refused-on-page> alice_x")
