"""Fresh-eyes leak hunt (hunt15): what reaches a project's code between the download and the response phase.

Tests marked "Fixed" failed on main (3b0fb55) and pass since their fix.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from scrapy import signals
from scrapy.extensions.httpcache import FilesystemCacheStorage
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings, secret_name
from tests.test_hunt import _run_command
from tests.test_scrapy_commands import consent_spider_project

BASE = f"http://{HOST}"


class DownloadArchive:
    """A project extension that archives every page the downloader downloads, as WARC writers and page
    archivers do, from Scrapy's documented ``response_downloaded`` signal ("sent by the downloader right after a
    HTTPResponse is downloaded"): a file under ``ARCHIVE_DIR`` per page."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def from_crawler(cls, crawler: Any) -> DownloadArchive:
        archive = cls(Path(crawler.settings["ARCHIVE_DIR"]))
        crawler.signals.connect(archive.downloaded, signal=signals.response_downloaded)
        return archive

    def downloaded(self, response: Any, request: Any, spider: Any = None) -> None:
        name = f"{len(list(self.directory.iterdir()))}.html"
        (self.directory / name).write_bytes(response.url.encode() + b"\n" + response.body)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_page_refused_on_the_page_is_not_handed_to_response_downloaded(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. 103 holds a grant but says ``#nobot`` on their profile: the page has to be fetched to read that, and
    the response phase drops it (``subject.refused-on-page``) before the HTTP cache and the callback. But Scrapy's
    downloader sends ``response_downloaded`` with the page as soon as the download handler returns it, before any
    downloader middleware's ``process_response``, and the response phase was one: a project extension that
    archives what the downloader downloads wrote 103's page (their name) to disk. The send-time handler now makes
    the response-phase decision itself before it hands a page on; 101's page still reaches the archive."""
    archive = tmp_path / "archive"
    archive.mkdir()
    settings = people_settings(tmp_path, EXTENSIONS={f"{__name__}.DownloadArchive": 500}, ARCHIVE_DIR=str(archive))
    app = LenientPeople(refusing={"103"})
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/103", f"{BASE}/u/101"], follow_links=False)
    assert sorted(app.people_served()) == ["101", "103"], app.describe()  # 103's page had to be read
    archived = b"\n".join(p.read_bytes() for p in sorted(archive.iterdir()))
    assert secret_name("103").encode() not in archived, archived
    assert secret_name("101").encode() in archived  # the extension does archive what is allowed
    assert [e["reason"] for e in result.audit_for("/u/103", phase="response")] == ["subject.refused-on-page"]
    assert secret_name("103") not in str(result.items) and [i["name"] for i in result.items] == [secret_name("101")]


# -- a ConsentSpider whose settings name the add-on switched off ----------------------------------------------


class OffInSpider(ListLogic):
    """A ConsentSpider whose ``custom_settings`` switch the add-on off (``None``, as Scrapy switches a component
    off), copied from a project that runs ``scrapy shell`` without it."""

    custom_settings = {"ADDONS": {"consentcrawl.Addon": None}}


@pytest.mark.parametrize("where", ["project settings", "custom_settings"])
@deferred_f_from_coro_f
async def test_a_consent_spider_runs_with_its_add_on_whatever_settings_switch_it_off(
        where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Fixed. A ConsentSpider turns the add-on on for itself, but only if ``ADDONS`` does not name it already:
    ``{"consentcrawl.Addon": None}`` names it, and Scrapy's add-on manager skips an entry whose number is None,
    so the spider ran with no consentcrawl component at all: 107 (no authorization) was fetched and collected,
    with no audit line. The spider now puts the add-on back in that case, with a WARNING, as the add-on puts
    back a middleware the settings took out."""
    logic = OffInSpider if where == "custom_settings" else ListLogic
    overrides = {} if where == "custom_settings" else {"ADDONS": {"consentcrawl.Addon": None}}
    settings = people_settings(tmp_path, **overrides)
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", logic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/u/107", f"{BASE}/u/101"], follow_links=False)
    assert app.people_served() == ["101"], app.describe()
    assert secret_name("107") not in str(result.items)
    assert [e["reason"] for e in result.audit_for("/u/107")] == ["subject.no-authorization"], result.denies()
    assert "ADDONS switches consentcrawl.Addon off; a ConsentSpider runs with it" in caplog.text


# -- the stats, written as text at INFO ------------------------------------------------------------------------


class CountingLinks(ListLogic):
    """Counts each link it follows in the crawl's stats by its URL (``crawler.stats``, as a project tallies what it
    met), keeps the last page's URL and the last failed request's."""

    def parse(self, response: Any) -> Any:
        self.seen.append(response.url)
        self.crawler.stats.set_value("last_page", response.url)
        for href in response.css("a.link::attr(href)").getall():
            url = response.urljoin(href)
            self.crawler.stats.inc_value(f"links/{url}")
            yield response.follow(href, callback=self.parse, errback=self.failed)

    def failed(self, failure: Any) -> None:
        self.crawler.stats.set_value("last_failed", failure.request.url)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_the_stats_written_at_info_name_no_person_not_allowed(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Fixed. A spider counts the links it follows in the crawl's stats, by URL, and keeps the last failed
    request's URL; 107 has no authorization. Scrapy writes the stats as text at INFO: ``Dumping Scrapy stats``
    at the close, and PeriodicLog's lines (``PERIODIC_LOG_STATS``). The spider's own lines have each URL of a
    person not allowed taken out, but these were Scrapy's, on loggers consentcrawl did not watch, and the dump
    comes after ``spider_closed``, when the crawl's line filter was already off: both named 107's profile URL.
    They are now checked like the spider's lines; the stats themselves are left as the spider wrote them."""
    caplog.set_level(logging.INFO)
    settings = people_settings(tmp_path, EXTENSIONS={"scrapy.extensions.periodic_log.PeriodicLog": 0},
                               PERIODIC_LOG_STATS=True)
    app = LenientPeople().links_page("/list", [f"{BASE}/u/107", f"{BASE}/u/101"])
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, CountingLinks), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/list"], follow_links=False)
    assert app.people_served() == ["101"], app.describe()
    assert result.stats[f"links/{BASE}/u/107"] == 1 and result.stats["last_failed"] == f"{BASE}/u/107"
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    dumps = [r.getMessage() for r in shown if r.name in ("scrapy.statscollectors", "scrapy.extensions.periodic_log")]
    closing = [line for line in dumps if "links/" in line]  # the dump, and PeriodicLog's line at the close
    assert len(closing) == 2 and all("/u/107" not in line for line in dumps), dumps
    assert f"'last_page': '{BASE}/u/101'" in closing[-1], closing  # the dump: an allowed person's URL stays
    assert not [r.getMessage() for r in shown if "/u/107" in r.getMessage()]


# -- report mode: the HTTP cache's line about an entry it cannot read -----------------------------------------


class UnreadableCache(FilesystemCacheStorage):
    """Scrapy's filesystem cache whose entries cannot be read (a disk error, an entry written by another Scrapy):
    HttpCacheMiddleware then writes ``Could not read the cache entry for <GET url>`` at WARNING."""

    def retrieve_response(self, spider: Any, request: Any = None) -> Any:
        raise OSError("the cache entry is unreadable")


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_report_mode_an_unreadable_cache_entry_names_no_person_not_allowed(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Fixed. Report mode sends the requests it would refuse (107 has no authorization), and Scrapy's lines about
    such a request are written with the reason code for the URL; HttpCacheMiddleware's WARNING about a cache entry
    it could not read was not among them, and named 107's profile. It is now checked as the other lines of Scrapy's
    that name a person as text are; 101's stays as written."""
    caplog.set_level(logging.INFO)
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report", HTTPCACHE_ENABLED=True,
                               HTTPCACHE_DIR=str(tmp_path / "cache"), HTTPCACHE_STORAGE=f"{__name__}.UnreadableCache")
    app = LenientPeople()
    with LocalServer(app) as server:
        await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                    urls=[f"{BASE}/u/107", f"{BASE}/u/101"], follow_links=False)
    assert sorted(app.people_served()) == ["101", "107"], app.describe()  # report mode sent both
    cache = [r.getMessage() for r in caplog.records if r.name == "scrapy.downloadermiddlewares.httpcache"
             and r.levelno >= logging.INFO]
    assert len(cache) == 2 and any(f"<GET {BASE}/u/101>" in line for line in cache), cache
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and "/u/107" in r.getMessage()]


# -- lines written as the spider closes ------------------------------------------------------------------------

_REPORT = logging.getLogger("tests.closing_report")


class ClosingReport:
    """A project extension that reports, as the spider closes, the links the spider met (a crawl summary)."""

    @classmethod
    def from_crawler(cls, crawler: Any) -> ClosingReport:
        report = cls()
        crawler.signals.connect(report.spider_closed, signal=signals.spider_closed)
        return report

    def spider_closed(self, spider: Any, reason: str) -> None:
        _REPORT.warning("links met: %s", spider.links)


class RemembersLinks(ListLogic):
    """Remembers each link it follows, and says which as it closes (``Spider.closed``)."""

    links: list[str]

    def parse(self, response: Any) -> Any:
        self.seen.append(response.url)
        for href in response.css("a.link::attr(href)").getall():
            self.links.append(response.urljoin(href))
            yield response.follow(href, callback=self.parse)

    def closed(self, reason: str) -> None:
        self.logger.info("closed (%s) after following %s", reason, self.links)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_lines_written_as_the_spider_closes_name_no_person_not_allowed(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Fixed. The crawl's line filter was taken off at ``spider_closed``, from a handler connected before the
    spider's and the project's own: the lines those write as the spider closes (``Spider.closed()``, an
    extension's closing report) went out as written, and named 107's profile URL (no authorization) at INFO and
    WARNING. The filter now stays on until the engine has stopped."""
    caplog.set_level(logging.INFO)
    settings = people_settings(tmp_path, EXTENSIONS={f"{__name__}.ClosingReport": 500})
    app = LenientPeople().links_page("/list", [f"{BASE}/u/107", f"{BASE}/u/101"])
    with LocalServer(app) as server:
        await crawl(make_spider(kind, RemembersLinks), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                    urls=[f"{BASE}/list"], follow_links=False, links=[])
    assert app.people_served() == ["101"], app.describe()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO
            and ("links met" in r.getMessage() or "after following" in r.getMessage())]
    assert len(said) == 2 and all(f"{BASE}/u/101" in line for line in said), said
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and "/u/107" in r.getMessage()]


def test_scrapy_fetch_in_a_project_that_switches_the_add_on_off_is_guarded(tmp_path: Path) -> None:
    """Fixed. A ConsentSpider project whose settings switch the add-on off (``{"consentcrawl.Addon": None}``, so
    that its plain spiders run without it): ``scrapy fetch`` guards the spider it uses by making it a
    ConsentSpider, which did not put the add-on back, and fetched and printed 107's page (no authorization)."""
    project = consent_spider_project(tmp_path)
    settings = project / "peopleproj" / "settings.py"
    settings.write_text(settings.read_text() + 'ADDONS = {"consentcrawl.Addon": None}\n')
    app = LenientPeople()
    with LocalServer(app) as server:
        code, output = _run_command(project, server.proxy, ["fetch", "--loglevel", "INFO", f"{BASE}/u/107"],
                                    timeout=60)
    assert "107" not in app.people_served(), f"the refused page was downloaded\n{app.describe()}\n{output[-3000:]}"
    assert secret_name("107") not in output and code == 1, output[-2000:]
