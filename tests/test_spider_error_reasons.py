"""The reason code ``spider_error`` handlers and Scrapy's ERROR line give for a request refused in the request
phase (robots.txt, or consent before the download slot's wait) whose refusal a project's downloader middleware
turned into its own error: the errback then gets that error, not the refusal, and the reason is read from what was
decided for the request. It was not remembered there, so the line said ``undecided``. Real crawls against the
lenient people site."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, Robots, crawl, make_spider, people_settings
from tests.test_spider_error_signal import Report, UrlRaisingErrback

_PROFILE = re.compile(r"/u/(\d+)")


@deferred_f_from_coro_f
async def test_a_request_phase_refusal_turned_into_a_projects_error_is_reported_with_its_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople(default_robots=Robots("User-agent: *\nDisallow: /u/102\n"))
    settings = people_settings(tmp_path, DOWNLOADER_MIDDLEWARES={
        "tests.test_errback_output.WrapsDownloadErrors": 500})
    reports: list[Report] = []
    with LocalServer(app) as server, caplog.at_level(logging.INFO):
        await crawl(make_spider("ConsentSpider", UrlRaisingErrback), settings, proxy=server.proxy,
                    monkeypatch=monkeypatch, reports=reports)
    assert "102" not in app.people_served() and "104" not in app.people_served(), app.describe()
    assert [r.leaks() for r in reports if r.leaks()] == [], [r.leaks() for r in reports]
    sanitized = sorted(r.message for r in reports if not r.message.startswith("failed"))
    assert len(sanitized) == 8, [r.message for r in reports]  # 102 (robots: request phase), 104 to 110 (links)
    assert len([m for m in sanitized if "(robots.disallowed)" in m]) == 1, sanitized
    assert len([m for m in sanitized if "(subject.no-authorization)" in m]) == 7, sanitized
    # Scrapy's ERROR line says the same
    errors = [r.getMessage() for r in caplog.records
              if r.name == "scrapy.core.scraper" and r.levelno >= logging.ERROR and "consentcrawl refused" in
              r.getMessage()]
    assert len(errors) == 8 and not [e for e in errors if "undecided" in e], errors
    assert [e for e in errors if "(robots.disallowed;" in e], errors
    # the control: the missing page's error is the project's own
    assert [r for r in reports if r.message == f"failed http://{HOST}/missing-page"], [r.message for r in reports]
