"""Report mode sends what it would deny, the media pipelines' requests too, so ``FilesPipeline`` writes its line
about a file it could not download as about any other: ``File (code: 404): Error downloading file from <GET url>
referred in <referer>`` at WARNING. When the file's URL is a page of a person the crawl may not collect, that line
names them at WARNING, in a log kept and shipped more widely than the audit log.

A real crawl against the lenient people site, judged by what the server was asked for and by every log record at
INFO or above."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, Response
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings
from tests.test_report_mode_lines import Answering

_WRITTEN = logging.Formatter("%(levelname)s %(name)s: %(message)s")


class Avatars(ListLogic):
    """101 (authorized) is read; their item names an avatar at 107's page (107 never authorized the crawl) and one
    at ``/static/missing.png`` (no one's), both 404s."""

    urls = [f"http://{HOST}/u/101"]
    follow_links = False

    def parse(self, response: Any) -> Any:
        self.seen.append(response.url)
        yield {"url": response.url, "file_urls": [f"http://{HOST}/u/107/avatar.png",
                                                  f"http://{HOST}/static/missing.png"]}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_report_mode_a_denied_persons_file_that_failed_names_no_url_at_warning(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    missing = Response.text("no such file\n", 404)
    app = Answering(LenientPeople(), {"/u/107/avatar.png": missing, "/static/missing.png": missing})
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report", FILES_STORE=str(tmp_path / "files"))
    settings["ITEM_PIPELINES"] = {**settings.get("ITEM_PIPELINES", {}), "scrapy.pipelines.files.FilesPipeline": 300}
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        await crawl(make_spider(kind, Avatars), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    asked = [s.path for s in app.site.served]
    assert "/u/107/avatar.png" in asked and "/static/missing.png" in asked, asked  # report mode sent both
    loud = [_WRITTEN.format(r) for r in caplog.records if r.levelno >= logging.INFO]
    assert [line for line in loud if re.search(r"/u/107(?!\d)", line)] == [], loud
    assert [line for line in loud if "/static/missing.png" in line], "control: no one's file keeps its URL"
    files = [r for r in caplog.records if r.name == "scrapy.pipelines.files" and r.levelno >= logging.WARNING]
    assert [r for r in files if "did not allow (subject.no-authorization" in r.getMessage()], loud
    debug = [r.getMessage() for r in caplog.records if r.name == "scrapy.pipelines.files"
             and r.levelno == logging.DEBUG and f"<GET http://{HOST}/u/107/avatar.png>" in r.getMessage()]
    assert len(debug) >= 2, "nothing lost: each line as Scrapy wrote it, at DEBUG"
