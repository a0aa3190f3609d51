"""An attacker's review of reportlogs and items4: each a real crawl judged by the log records at INFO or above and
by the test server's own log."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, crawl, make_spider, people_settings
from tests.test_person_lines import _DENIED, _loud

BASE = f"http://{HOST}"


class OtherLoggers:
    """Report mode lets 107's page through: it is asked for with a cookie that has no value (Scrapy's cookies
    middleware warns naming the request, on ``scrapy.utils.request``), its callback logs its URL on the root logger
    (``logging.warning``, as Scrapy's own docs show), and ``start`` fails naming it (the engine's ERROR line)."""

    seen: list[str]

    async def start(self) -> Any:
        for person in ("101", "107"):
            yield scrapy.Request(f"{BASE}/u/{person}", callback=self.profile, cookies=[{"name": "session"}])
        raise ValueError(f"no more after {BASE}/u/107 and {BASE}/u/101")

    def profile(self, response: Any) -> None:
        self.seen.append(response.url)
        logging.warning("reached %s", response.url)


@deferred_f_from_coro_f
async def test_report_mode_cookie_root_logger_and_start_error_lines_name_no_denied_person(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report")
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        await crawl(make_spider("ADDONS", OtherLoggers), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert "107" in app.people_served(), app.describe()  # report mode sent it
    loud = _loud(caplog)
    named = [line for line in loud if _DENIED.search(line)]
    assert named == [], "\n".join(named)
    for line in (f"Invalid cookie found in request <GET {BASE}/u/101>", f"WARNING root: reached {BASE}/u/101",
                 f"no more after <a URL consentcrawl did not allow (subject.no-authorization); at DEBUG> and "
                 f"{BASE}/u/101"):  # the control: 101 authorized the crawl
        assert [m for m in loud if line in m], (line, loud)
