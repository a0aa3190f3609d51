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


# -- request bodies naming a person as a JSON server or a UTF-8 form reader reads them -------------------------

#: (body, content type): each names 107 to a server that reads the body as Express or Django does (JavaScript's
#: numbers: ``107.0`` and ``1.07e2`` are 107; a form's raw UTF-8 read as UTF-8, its fullwidth digits by ``int()``)
NAMING_107 = ((b'{"user": 107.0}', "application/json"), (b'{"follow": {"user": 1.07e2}}', "application/json"),
              ("user=\uff11\uff10\uff17".encode(), "application/x-www-form-urlencoded"))
#: the control: the same bodies naming 101, who authorized the crawl
NAMING_101 = ((b'{"user": 101.0}', "application/json"),
              ("user=\uff11\uff10\uff11".encode(), "application/x-www-form-urlencoded"))


class PostsNaming:
    """POSTs to the listing (a URL of no one) whose bodies name 107 (never authorized) or 101 (the control), by a
    key that is no query template's parameter (a body mentioning ``id`` is read as a query would be)."""

    seen: list[str]

    async def start(self) -> Any:
        for body, kind in (*NAMING_107, *NAMING_101):
            yield scrapy.Request(f"{BASE}/people", method="POST", body=body, headers={"Content-Type": kind},
                                 callback=self.seen_it, dont_filter=True)

    def seen_it(self, response: Any) -> None:
        self.seen.append(response.url)


@deferred_f_from_coro_f
async def test_a_body_naming_107_as_a_json_number_with_a_fraction_or_raw_utf8_fullwidth_digits_is_not_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = LenientPeople()
    with LocalServer(app) as server:
        await crawl(make_spider("ADDONS", PostsNaming), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch)
        sent = sorted(r.body for r in server.requests if r.method == "POST")
    assert sent == sorted(body for body, _ in NAMING_101), sent  # the control went
