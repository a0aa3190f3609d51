"""Report mode sends what it would deny, so Scrapy's middlewares write their lines about such a request as about
any other: ``Ignoring response <404 url>: HTTP status code is not handled or not allowed`` at INFO
(``HttpErrorMiddleware``) and ``Gave up retrying <GET url> (failed N times): <reason>`` at ERROR
(``RetryMiddleware``; a timeout's reason names the URL too). At INFO or above those lines name the reason code, not
the URL (:mod:`consentcrawl.requestlines`); the line as Scrapy wrote it is at DEBUG. A retry that gave up on an
allowed person's page, or an error status for it, left it unread: ``page-unread``. Pages that are no one's keep
their URL (the control).

Real crawls against the lenient people site, some of whose pages answer 503 or too late, judged by what the server
was asked for and by every log record at INFO or above."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings

_WRITTEN = logging.Formatter("%(levelname)s %(name)s: %(message)s")
_HTTPERROR = "scrapy.spidermiddlewares.httperror"
_RETRY = "scrapy.downloadermiddlewares.retry"


def _loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [_WRITTEN.format(r) for r in caplog.records if r.levelno >= logging.INFO]


def _lines(caplog: pytest.LogCaptureFixture, name: str, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelno == level]


class Answering:
    """The lenient site, with the pages at some paths answered otherwise (the site still logs what it was asked)."""

    def __init__(self, site: LenientPeople, answers: dict[str, Response]) -> None:
        self.site = site
        self.answers = answers

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        served = self.site(request, headers)
        return self.answers.get(request.path, served)


class Missing(ListLogic):
    """150 has no page on the site (a 404) and did not authorize the crawl; ``/nothing`` is no one's 404."""

    urls = [f"http://{HOST}/nothing", f"http://{HOST}/u/150"]
    follow_links = False


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_report_mode_ignoring_a_denied_persons_404_names_no_url_at_info(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report")
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        result = await crawl(make_spider(kind, Missing), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert [s.target for s in app.served if s.path == "/u/150"], app.describe()  # report mode sent it
    assert result.audit_for("/u/150", verdict="deny"), result.audit
    person = re.compile(r"/u/150(?!\d)")
    assert [line for line in _loud(caplog) if person.search(line)] == [], _loud(caplog)
    info = _lines(caplog, _HTTPERROR, logging.INFO)
    assert f"Ignoring response <404 http://{HOST}/nothing>: HTTP status code is not handled or not allowed" in info
    assert ("Ignoring response <404> to a request consentcrawl did not allow (subject.no-authorization; its URL is "
            "in the audit log): HTTP status code is not handled or not allowed") in info, info
    assert [m for m in _lines(caplog, _HTTPERROR, logging.DEBUG) if f"<404 http://{HOST}/u/150>" in m], \
        "the line as Scrapy wrote it, at DEBUG"


class Failing(ListLogic):
    urls = [f"http://{HOST}/down", f"http://{HOST}/u/104", f"http://{HOST}/u/105", f"http://{HOST}/u/101"]
    follow_links = False



@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_report_mode_giving_up_retrying_a_denied_persons_page_names_no_url_at_error(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """104 (not authorized) answers 503, 105 (not authorized) too late: Scrapy gives up retrying each, and the
    timeout's message names the URL. 101 (authorized) answers 503: its page, a refusal on it included, was never
    read. ``/down``, no one's page, answers 503 and keeps its URL."""
    down = Response.text("down for maintenance\n", 503)
    app = Answering(LenientPeople(), {"/down": down, "/u/104": down, "/u/101": down,
                                      "/u/105": Response.text("late\n", 200, None)})
    app.answers["/u/105"].delay = 3.0
    settings = {**people_settings(tmp_path, CONSENTCRAWL_MODE="report", RETRY_ENABLED=True, RETRY_TIMES=1),
                "DOWNLOAD_TIMEOUT": 1}
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        await crawl(make_spider(kind, Failing), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    asked = [s.path for s in app.site.served]
    assert asked.count("/u/104") == 2 and asked.count("/u/105") == 2 and asked.count("/u/101") == 2, asked
    people = re.compile(r"/u/10[145](?!\d)")
    assert [line for line in _loud(caplog) if people.search(line)] == [], _loud(caplog)
    errors = _lines(caplog, _RETRY, logging.ERROR)
    assert (f"Gave up retrying <GET http://{HOST}/down> (failed 2 times): 503 Service Unavailable") in errors, errors
    assert ("Gave up retrying a request consentcrawl did not allow (subject.no-authorization; its URL is in the "
            "audit log) (failed 2 times): 503 Service Unavailable") in errors, errors
    assert [m for m in errors if "did not allow (subject.no-authorization" in m and "(failed 2 times): "
            "DownloadTimeoutError, its message at DEBUG" in m], errors
    assert [m for m in errors if "a person's page consentcrawl did not read (page-unread" in m], errors
    assert len(errors) == 4, errors
    info = _lines(caplog, _HTTPERROR, logging.INFO)  # the 503s the retries gave up on reach the spider
    assert ("Ignoring response <503> to a person's page consentcrawl did not read (page-unread; its URL is in the "
            "audit log): HTTP status code is not handled or not allowed") in info, info
    debug = _lines(caplog, _RETRY, logging.DEBUG)
    for person in ("104", "105", "101"):  # nothing lost: Scrapy's lines, URL and message, at DEBUG
        assert [m for m in debug if m.startswith(f"Gave up retrying <GET http://{HOST}/u/{person}>")], debug
