"""Scrapy's download handlers log a WARNING naming the request (``... larger than download warn size (N) in request
<GET url>``, the same for the max size, ``Got data loss in url``) while the page is being downloaded: before the
response phase reads it. A person who refuses on their own page (``#nobot`` in their bio) is only known then, and
in report mode a request consentcrawl would deny is downloaded as well. Those lines name no such URL at INFO or
above: the line is written once the response phase has decided (or the download failed), with the reason code in
place of the request when the decision is not an allow; the original goes to DEBUG. Real crawls against the
lenient people site, judged by its served log and by every log record at INFO or above, as a handler writes it."""

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
from tests.rawproxy import Script, address, head, scripted_proxy, whole

_WRITTEN = logging.Formatter("%(levelname)s %(name)s: %(message)s")
_HANDLER_LOGGER = "scrapy.core.downloader.handlers.http11"
CHROMIUM = "/usr/bin/chromium"


def _lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [_WRITTEN.format(r) for r in caplog.records if r.levelno >= level]


def _size_lines(caplog: pytest.LogCaptureFixture, what: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == _HANDLER_LOGGER and f"download {what} size" in r.getMessage()]


class TwoProfiles(ListLogic):
    urls = [f"http://{HOST}/u/101", f"http://{HOST}/u/103"]
    follow_links = False


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_the_warn_size_line_of_a_page_its_person_refuses_on_names_no_url_at_info(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople(refusing={"103"})
    settings = people_settings(tmp_path, DOWNLOAD_WARNSIZE=60)
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        result = await crawl(make_spider(kind, TwoProfiles), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert sorted(app.people_served()) == ["101", "103"], app.describe()  # 103 was downloaded: refused on the page
    assert result.audit_for("/u/103", phase="response", verdict="deny"), result.denies()
    refusing = re.compile(r"/u/103(?!\d)")
    assert [line for line in _lines(caplog) if refusing.search(line)] == [], _lines(caplog)
    loud = [r for r in _size_lines(caplog, "warn") if r.levelno >= logging.WARNING]
    # the control: the allowed page's line as Scrapy writes it; the refused page's with the reason code
    assert [r for r in loud if f"<GET http://{HOST}/u/101>" in r.getMessage()], _lines(caplog)
    refused = [r.getMessage() for r in loud if "consentcrawl refused" in r.getMessage()]
    assert len(refused) == 1 and "subject.refused-on-page" in refused[0], _lines(caplog)
    assert "larger than download warn size (60)" in refused[0], refused
    # nothing is lost: Scrapy's own line, URL included, at DEBUG
    debug = [r for r in _size_lines(caplog, "warn") if r.levelno == logging.DEBUG]
    assert [r for r in debug if f"<GET http://{HOST}/u/103>" in r.getMessage()], _lines(caplog, logging.DEBUG)


class DeniedProfiles(ListLogic):
    urls = [f"http://{HOST}/u/101", f"http://{HOST}/u/104"]
    follow_links = False


@pytest.mark.parametrize("what", ["warn", "max"])
@deferred_f_from_coro_f
async def test_report_mode_downloads_a_denied_page_and_its_size_line_names_no_url_at_info(
        what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Report mode sends what it would deny: 104 (no authorization) is downloaded. The max size line is logged as
    the download is cancelled (it never reaches the response phase): written with the send-time decision."""
    app = LenientPeople()
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report", **{f"DOWNLOAD_{what.upper()}SIZE": 60})
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        await crawl(make_spider("ConsentSpider", DeniedProfiles), settings, proxy=server.proxy,
                    monkeypatch=monkeypatch)
    assert "104" in app.people_served(), app.describe()
    denied = re.compile(r"/u/104(?!\d)")
    assert [line for line in _lines(caplog) if denied.search(line)] == [], _lines(caplog)
    loud = [r.getMessage() for r in _size_lines(caplog, what) if r.levelno >= logging.WARNING]
    if what == "warn":  # allowed and read: as Scrapy wrote it
        assert [m for m in loud if f"<GET http://{HOST}/u/101>" in m], _lines(caplog)
    else:  # cancelled: 101's page was never read, and 101 may refuse on it (test_download_fails_unread.py)
        assert [m for m in loud if "did not read (page-unread" in m], _lines(caplog)
    assert [m for m in loud if "consentcrawl refused (subject.no-authorization" in m], _lines(caplog)


def truncating(*paths: str) -> Script:
    """Pages at ``paths`` promise more bytes than they send, then the connection closes: Scrapy's handler loses data
    (``Got data loss in <url>``, logged once per handler). Any other page is whole."""

    def script(target: str, nth: int) -> list[tuple[float, bytes]]:
        if target.endswith(paths):
            return [(0.0, head(5000) + b"<html><body>SECRET-NAME</body>")]
        return whole("<html><body>SECRET-NAME</body></html>")

    return script


@deferred_f_from_coro_f
async def test_report_mode_the_data_loss_line_of_a_denied_page_names_no_url_at_info(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The download fails (``DOWNLOAD_FAIL_ON_DATALOSS``, Scrapy's default): the page is never read, and its line
    is written with the send-time decision, a would-deny in report mode."""
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report", RETRY_ENABLED=False)
    with scripted_proxy(truncating("/u/104")) as server, caplog.at_level(logging.DEBUG):
        await crawl(make_spider("ConsentSpider", DeniedProfiles), settings, proxy=address(server),
                    monkeypatch=monkeypatch)
    assert f"http://{HOST}/u/104" in server.targets, server.targets  # report mode sent it
    lines = [r for r in caplog.records if r.name == _HANDLER_LOGGER and "data loss" in r.getMessage()]
    loud = [r.getMessage() for r in lines if r.levelno >= logging.WARNING]
    assert len(loud) == 1 and "Got data loss in a request consentcrawl refused (subject.no-authorization" in loud[0], \
        _lines(caplog, logging.DEBUG)
    assert [r for r in lines if r.levelno == logging.DEBUG and f"{HOST}/u/104" in r.getMessage()], lines
    denied = re.compile(r"/u/104(?!\d)")
    assert [line for line in _lines(caplog) if denied.search(line)] == [], _lines(caplog)


@deferred_f_from_coro_f
async def test_httpx_s_own_request_line_of_a_page_its_person_refuses_on_names_no_url_at_info(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """httpx logs every request it sends at INFO (``HTTP Request: GET url "HTTP/1.1 200 OK"``, logger ``httpx``),
    as the response's head arrives: before the response phase reads the page. With Scrapy's httpx handler
    (``CONSENTCRAWL_HTTP_HANDLER``) the URL of a person who refuses on that page was written at INFO. Held as the
    other handlers' lines are."""
    app = LenientPeople(refusing={"103"})
    settings = people_settings(
        tmp_path, CONSENTCRAWL_HTTP_HANDLER="scrapy.core.downloader.handlers._httpx.HttpxDownloadHandler")
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        result = await crawl(make_spider("ConsentSpider", TwoProfiles), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert sorted(app.people_served()) == ["101", "103"], app.describe()  # 103 was downloaded: refused on the page
    assert result.audit_for("/u/103", phase="response", verdict="deny"), result.denies()
    httpx_lines = [r for r in caplog.records if r.name == "httpx"]
    assert [r for r in httpx_lines if "/u/101" in r.getMessage() and r.levelno == logging.INFO], _lines(caplog)
    refusing = re.compile(r"/u/103(?!\d)")
    assert [line for line in _lines(caplog) if refusing.search(line)] == [], _lines(caplog)
    # nothing is lost: httpx's own line, URL included, at DEBUG
    assert [r for r in httpx_lines if "/u/103" in r.getMessage() and r.levelno == logging.DEBUG], httpx_lines


class WaitsInTheBrowser(ListLogic):
    """Crawls with scrapy-playwright; on each person's page but 101's, a page method waits for what never comes (a
    selector a spider expects on a page that changed): the browser download fails after the page was loaded."""

    async def start(self) -> Any:
        from scrapy_playwright.page import PageMethod

        for url in self.urls:
            methods = [] if url.endswith("/u/101") else [PageMethod("wait_for_selector", "#never", timeout=500)]
            yield scrapy.Request(url, callback=self.parse,
                                 meta={"playwright": True, "playwright_page_methods": methods})


@pytest.mark.parametrize("mode", ["enforce", "report"])
@deferred_f_from_coro_f
async def test_scrapy_playwright_s_failed_request_line_of_a_persons_unread_page_names_no_url_at_info(
        mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """scrapy-playwright logs ``Closing page due to failed request: <GET url> exc_type=... exc_msg=...`` at WARNING
    as a browser download fails, before consentcrawl's response phase: 103 (authorized, refusing on their page) was
    named there while Scrapy's own ``Error downloading`` line said only ``page-unread``; in report mode 104 (no
    authorization) is sent, and its line is written with the send-time decision. Held as the handlers' lines are."""
    pytest.importorskip("scrapy_playwright", reason="scrapy-playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian: apt-get install chromium)")
    from consentcrawl.browser import PLAYWRIGHT_HANDLER

    app = LenientPeople(refusing={"103"})
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        settings = people_settings(
            tmp_path, CONSENTCRAWL_MODE=mode,
            DOWNLOAD_HANDLERS={"http": PLAYWRIGHT_HANDLER, "https": PLAYWRIGHT_HANDLER},
            PLAYWRIGHT_LAUNCH_OPTIONS={"executable_path": CHROMIUM, "args": ["--no-sandbox"],
                                       "proxy": {"server": server.proxy}},
            ADDONS={"consentcrawl.Addon": 0, "consentcrawl.browser.PlaywrightAddon": 10})
        result = await crawl(make_spider("ConsentSpider", WaitsInTheBrowser), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"http://{HOST}/u/{p}" for p in ("103", "104", "101")])
    served = ["101", "103", "104"] if mode == "report" else ["101", "103"]
    assert sorted(app.people_served()) == served, app.describe()  # the browser loaded 103's page
    assert [i["url"] for i in result.items] == [f"http://{HOST}/u/101"], result.items  # the control
    people = re.compile(r"/u/10[34](?!\d)")
    assert [line for line in _lines(caplog) if people.search(line)] == [], _lines(caplog)
    closing = [r for r in caplog.records if r.name == "scrapy-playwright" and "Closing page" in r.getMessage()]
    loud = [r.getMessage() for r in closing if r.levelno >= logging.WARNING]
    assert [m for m in loud if "a person's page consentcrawl did not read (page-unread" in m], _lines(caplog)
    if mode == "report":
        assert [m for m in loud if "a request consentcrawl refused (subject.no-authorization" in m], loud
    assert len(loud) == len(served) - 1, loud  # nothing is lost: each failed page's line, and at DEBUG as written
    assert [r for r in closing if r.levelno == logging.DEBUG and f"<GET http://{HOST}/u/103>" in r.getMessage()]
