"""Download handler lines held per request (not per URL), and the line of a person's page whose download failed.

Two requests for one URL in flight at once: Scrapy's handler names each by its text (``<GET url>``), the same for
both, so a line cannot be told apart from the other's. The line waits for both to be decided; if either is not
allowed (the person refuses on the page the second one brought back) it names no URL at WARNING.

A download that fails (data loss with ``DOWNLOAD_FAIL_ON_DATALOSS``, or cancelled at ``DOWNLOAD_MAXSIZE``) leaves
the person's page unread: the send-time allow cannot stand for what that page says, so its lines name no URL at
INFO or above, with ``page-unread`` in its place (fail closed). A page that is no one's keeps its URL.

Real crawls through a scripted loopback proxy (:mod:`tests.rawproxy`) and the lenient people site, judged by what
the server was asked for and by every log record at INFO or above."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, _profile_html, crawl, make_spider, people_settings
from tests.rawproxy import address, head, scripted_proxy, whole

_WRITTEN = logging.Formatter("%(levelname)s %(name)s: %(message)s")
_HANDLER_LOGGER = "scrapy.core.downloader.handlers.http11"


def _loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [_WRITTEN.format(r) for r in caplog.records if r.levelno >= logging.INFO]


def _handler_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == _HANDLER_LOGGER and r.levelno == level]


class TwiceAfterTheFirst(ListLogic):
    """Reads 103's page once (its first page opens the person's gate), then asks for it twice at once."""

    urls = [f"http://{HOST}/u/103"]
    follow_links = False

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        if len(self.seen) == 1:
            for _ in range(2):
                yield scrapy.Request(response.url, callback=self.parse, errback=self.failed, dont_filter=True)

    def failed(self, failure: Any) -> None:
        pass


#: 103's profile card (an h-card: the first page read shows whose it is, and opens the person's gate) without a refusal
_CARD = _profile_html("103", refusing=True).replace("Please do not scrape me. #nobot", "Hello.")


def _refuses_on_the_third(target: str, nth: int) -> list[tuple[float, bytes]]:
    """103's first and second pages are whole and refuse nothing, the second after 0.3 s; the third comes as headers
    at once and a body saying ``#nobot`` a second later: its size line is logged before the second page is decided,
    its refusal after."""
    if nth == 0:
        return whole(_CARD)
    if nth == 1:
        return [(0.3, whole(_CARD)[0][1])]
    body = _profile_html("103", refusing=True).encode()
    return [(0.0, head(len(body))), (1.0, body)]


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_size_line_of_one_url_sent_twice_waits_for_both_and_the_refusal_wins(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    settings = people_settings(tmp_path, DOWNLOAD_WARNSIZE=60)
    with scripted_proxy(_refuses_on_the_third) as server, caplog.at_level(logging.DEBUG):
        result = await crawl(make_spider(kind, TwiceAfterTheFirst), settings, proxy=address(server),
                             monkeypatch=monkeypatch)
    assert server.targets.count(f"http://{HOST}/u/103") == 3, server.targets
    assert result.audit_for("/u/103", phase="response", verdict="deny", reason="subject.refused-on-page"), \
        result.denies()
    warnings = [m for m in _handler_lines(caplog, logging.WARNING) if "download warn size" in m]
    # the first page's line, decided alone and allowed, as Scrapy wrote it; the two sent together both wait for the
    # refusal, which the second of them brought back
    named = [m for m in warnings if f"<GET http://{HOST}/u/103>" in m]
    assert len(named) == 1, warnings
    refused = [m for m in warnings if "consentcrawl refused (subject.refused-on-page" in m]
    assert len(refused) == 2, warnings
    debug = [m for m in _handler_lines(caplog, logging.DEBUG) if f"<GET http://{HOST}/u/103>" in m]
    assert len(debug) == 2, debug  # nothing lost: both as Scrapy wrote them, at DEBUG


class OneProfileAndTheListing(ListLogic):
    urls = [f"http://{HOST}/people", f"http://{HOST}/u/101"]
    follow_links = False


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_data_loss_line_of_an_allowed_persons_unread_page_names_no_url_at_info(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """101 is authorized, and the download of their page fails for data loss: what the page says (a refusal?) was
    never read. The listing's data loss, no one's page, is the control: its line keeps its URL."""

    def script(target: str, nth: int) -> list[tuple[float, bytes]]:
        if target.endswith(("/people", "/u/101")):  # the site's signal files are whole: their origin is readable
            return [(0.0, head(5000) + b"<html><body>SECRET-NAME</body>")]
        return [(0.0, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")]

    settings = people_settings(tmp_path, CONCURRENT_REQUESTS=1)
    with scripted_proxy(script) as server, caplog.at_level(logging.DEBUG):
        result = await crawl(make_spider(kind, OneProfileAndTheListing), settings, proxy=address(server),
                             monkeypatch=monkeypatch)
    assert f"http://{HOST}/u/101" in server.targets, server.targets  # allowed, sent
    assert result.audit_for("/u/101", verdict="allow"), result.audit
    person = re.compile(r"/u/101(?!\d)")
    assert [line for line in _loud(caplog) if person.search(line)] == [], _loud(caplog)
    lines = [m for m in _handler_lines(caplog, logging.WARNING) if "data loss" in m]
    # Scrapy logs the data loss line once per handler: the first page's (the listing's, no one's) names its URL
    assert lines == [next(m for m in lines if f"Got data loss in http://{HOST}/people." in m)], lines


class OneProfile(ListLogic):
    urls = [f"http://{HOST}/u/103"]
    follow_links = False


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_max_size_line_of_a_page_whose_person_refuses_on_it_names_no_url_at_info(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """103 is authorized and refuses on their own page, which is cancelled at the max size: never read, so the
    refusal is not known; their lines (the handler's WARNING, Scrapy's ``Error downloading``) name no URL at INFO
    or above. The listing, no one's page, is cancelled too and keeps its URL: the control."""
    app = LenientPeople(refusing={"103"})
    settings = people_settings(tmp_path, DOWNLOAD_MAXSIZE=60)
    spider = make_spider(kind, type("ListingThen103", (OneProfile,), {"urls": [f"http://{HOST}/people",
                                                                               f"http://{HOST}/u/103"]}))
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        await crawl(spider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert "103" in app.people_served(), app.describe()
    person = re.compile(r"/u/103(?!\d)")
    assert [line for line in _loud(caplog) if person.search(line)] == [], _loud(caplog)
    lines = [m for m in _handler_lines(caplog, logging.WARNING) if "download max size" in m]
    assert [m for m in lines if f"<GET http://{HOST}/people>" in m], lines
    assert [m for m in lines if "a person's page consentcrawl did not read (page-unread" in m], lines
    debug = [m for m in _handler_lines(caplog, logging.DEBUG) if f"<GET http://{HOST}/u/103>" in m]
    assert debug, "the line as Scrapy wrote it is kept at DEBUG"


def test_a_line_naming_a_request_whose_method_has_a_space_is_held_and_written_without_its_url(
        caplog: pytest.LogCaptureFixture) -> None:
    """Scrapy names a request as ``<METHOD url>``, and a method is any text a spider gives (``GET X``). None of
    Scrapy's HTTP handlers can send such a method (Twisted, h11 and aiohttp refuse it before the wire), so no crawl
    can make this line: Scrapy's own message, for such a request, goes through the filter on the handler's logger.
    It is held until the request is decided, then written at WARNING with the reason code in its place."""
    from scrapy.utils._download_handlers import get_warnsize_msg

    from consentcrawl.decision import Stage, deny
    from consentcrawl.downloadlines import DownloadLines

    lines = DownloadLines()
    logger = logging.getLogger(_HANDLER_LOGGER)
    logger.addFilter(lines)
    request = scrapy.Request(f"http://{HOST}/u/104", method="GET X")
    try:
        with caplog.at_level(logging.DEBUG, logger=_HANDLER_LOGGER):
            lines.sending(request)
            logger.warning(get_warnsize_msg(500, 60, request, expected=True))
            assert _handler_lines(caplog, logging.WARNING) == [], "held until the request is decided"
            lines.decided(request, deny(Stage.SUBJECT, "subject.no-authorization", subject="104"))
    finally:
        logger.removeFilter(lines)
    assert _handler_lines(caplog, logging.WARNING) == [
        "Expected to receive 500 bytes which is larger than download warn size (60) in request a request "
        "consentcrawl refused (subject.no-authorization; its URL is in the audit log)."]
    assert _handler_lines(caplog, logging.DEBUG) == [get_warnsize_msg(500, 60, request, expected=True)]
