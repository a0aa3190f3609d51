"""Report mode sends what it would deny, so Scrapy's ``HttpCompressionMiddleware`` writes its WARNING lines about
such a page as about any other: ``HttpCompressionMiddleware cannot decode the response for <url> from unsupported
encoding(s) ...``, ``<200 url> body size after decompression ... is larger than the download warning size``,
``Ignored response <200 url> because its body ... exceeded DOWNLOAD_MAXSIZE``. They come after consentcrawl's
response phase (which meets the response first), so nothing holds them; written as text, they have no request in
their arguments. A page of a person who did not authorize the crawl must not be named there at INFO or above.

A real crawl against the lenient people site, judged by what the server was asked for and by every log record at
INFO or above."""

from __future__ import annotations

import gzip
import logging
import re
from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, Response
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings
from tests.test_report_mode_lines import Answering

_WRITTEN = logging.Formatter("%(levelname)s %(name)s: %(message)s")
_LOGGER = "scrapy.downloadermiddlewares.httpcompression"


class Encoded(ListLogic):
    """107 and 108 never authorized the crawl; ``/big`` is no one's page."""

    urls = [f"http://{HOST}/u/107", f"http://{HOST}/big", f"http://{HOST}/u/108"]
    follow_links = False


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_report_mode_compression_lines_name_no_denied_persons_url(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    odd = Response.html("<html><body>odd</body></html>", headers={"Content-Encoding": "x-odd"})
    big = Response.html("", headers={"Content-Encoding": "gzip"})
    big.body = gzip.compress(b"<html><body>" + b"x" * 40_000 + b"</body></html>")
    app = Answering(LenientPeople(), {"/u/107": odd, "/big": big, "/u/108": big})
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report", DOWNLOAD_WARNSIZE=20_000)
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        await crawl(make_spider(kind, Encoded), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    asked = [s.path for s in app.site.served]
    assert "/u/107" in asked and "/u/108" in asked, asked  # report mode sent them
    lines = [r.getMessage() for r in caplog.records if r.name == _LOGGER and r.levelno >= logging.WARNING]
    assert [m for m in lines if f"http://{HOST}/big>" in m], "control: no one's page keeps its URL"
    loud = [_WRITTEN.format(r) for r in caplog.records if r.levelno >= logging.INFO]
    assert [line for line in loud if re.search(r"/u/10[78](?!\d)", line)] == [], loud
    assert len([m for m in lines if "a request consentcrawl did not allow (" in m]) == 2, lines
    debug = [r.getMessage() for r in caplog.records if r.name == _LOGGER and r.levelno == logging.DEBUG]
    assert [m for m in debug if f"http://{HOST}/u/107 " in m] and [m for m in debug if f"{HOST}/u/108>" in m], \
        "nothing lost: each line as Scrapy wrote it, at DEBUG"


class AllowedBig(ListLogic):
    urls = [f"http://{HOST}/u/101"]
    follow_links = False


@deferred_f_from_coro_f
async def test_an_allowed_persons_read_page_keeps_its_url_in_a_compression_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """101 authorized the crawl, and their page was read (decided in the response phase, before the compression
    middleware wrote its line): the line is Scrapy's, not a ``page-unread`` one."""
    site = LenientPeople()
    big = Response.html("", headers={"Content-Encoding": "gzip"})
    big.body = gzip.compress(b"<html><body><p class='name'>101</p><!--" + b"x" * 40_000 + b"--></body></html>")
    app = Answering(site, {"/u/101": big})
    settings = people_settings(tmp_path, DOWNLOAD_WARNSIZE=20_000)
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        result = await crawl(make_spider("ConsentSpider", AllowedBig), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert result.seen == [f"http://{HOST}/u/101"], result.audit  # read and allowed
    lines = [r.getMessage() for r in caplog.records if r.name == _LOGGER and r.levelno >= logging.WARNING]
    assert [m for m in lines if f"<200 http://{HOST}/u/101>" in m], lines



class BrokenPipeline:
    """A project's pipeline with a bug in its constructor: Scrapy builds it after the log formatter and raises out
    of ``crawl`` with no engine, so that crawl gets no ``spider_closed``."""

    def __init__(self) -> None:
        raise RuntimeError("a bug in the project's pipeline")


@deferred_f_from_coro_f
async def test_a_crawl_that_failed_to_start_leaves_the_next_crawls_lines_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The failed crawl's filter stays on the middlewares' loggers (no close came to take it off). It has no
    decisions, so it took every URL of a later crawl's text line for ``undecided``: 101's read and allowed page
    lost its URL in the next crawl of the same process (a service running crawls; the test suite)."""
    site = LenientPeople()
    big = Response.html("", headers={"Content-Encoding": "gzip"})
    big.body = gzip.compress(b"<html><body><p class='name'>101</p><!--" + b"x" * 40_000 + b"--></body></html>")
    app = Answering(site, {"/u/101": big})
    (tmp_path / "failed").mkdir()
    broken = people_settings(tmp_path / "failed", ITEM_PIPELINES={f"{__name__}.BrokenPipeline": 100})
    settings = people_settings(tmp_path, DOWNLOAD_WARNSIZE=20_000)
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        with pytest.raises(RuntimeError, match="a bug in the project's pipeline"):
            await crawl(make_spider("ADDONS", AllowedBig), broken, proxy=server.proxy, monkeypatch=monkeypatch)
        assert site.served == []  # control: the failed crawl asked nothing
        result = await crawl(make_spider("ConsentSpider", AllowedBig), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert result.seen == [f"http://{HOST}/u/101"], result.audit
    lines = [r.getMessage() for r in caplog.records if r.name == _LOGGER and r.levelno >= logging.WARNING]
    assert [m for m in lines if f"<200 http://{HOST}/u/101>" in m], lines
