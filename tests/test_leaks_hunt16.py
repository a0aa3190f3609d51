"""Fresh-eyes leak hunt (hunt16): Scrapy 2.19's own components, met by a project's code below consentcrawl's.

Tests marked "Fixed" failed on main (e58a9af) and pass since their fix.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, Robots, crawl, make_spider, people_settings
from tests.test_hunt import assert_not_served, shown_lines

BASE = f"http://{HOST}"


class FriendsMiddleware:
    """A project spider middleware that follows, from each profile, the person's friend (a friends widget the page
    loads by script), carrying the page's meta along (``meta=response.meta``, the idiom Scrapy 2.19's
    ``MetaCopyDetectionMiddleware`` warns about). Its priority puts it between consentcrawl's link check (10000,
    nearest the spider) and Scrapy's built-ins (up to 1000): its requests are decided when they are scheduled."""

    async def process_spider_output(self, response: Any, result: Any) -> Any:
        async for out in result:
            yield out
        if "/u/" in response.url:
            yield response.follow("/u/107", meta=response.meta)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_project_middlewares_request_with_copied_meta_is_not_named_at_warning(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Fixed. A request a project's spider middleware adds below consentcrawl's link check meets Scrapy's
    ``MetaCopyDetectionMiddleware`` (1000) before it is decided at scheduling; with meta copied from a response
    that came through a redirect, it warns once per crawl, quoting the request: ``target request: <GET
    http://people.example/u/107>``, at WARNING, 107 having no authorization. Its logger was not among those whose
    lines are read for people; it is now."""
    settings = people_settings(tmp_path, SPIDER_MIDDLEWARES={f"{__name__}.FriendsMiddleware": 5000})
    app = LenientPeople()
    with caplog.at_level(logging.DEBUG), LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/redirect?to=/u/101"], follow_links=False)
    assert_not_served(app, {"107"})
    assert result.seen == [f"{BASE}/u/101"], app.describe()
    assert [e["reason"] for e in result.audit_for("/u/107")] == ["subject.no-authorization"], result.denies()
    shown = shown_lines(caplog)
    assert any("MetaCopyDetectionMiddleware" in line for line in shown), shown  # the warning itself is kept
    assert not [line for line in shown if "/u/107" in line], shown


class UnpicklableMeta(ListLogic):
    """Follows each link with something in its meta that cannot be pickled (a lambda), as a project keeps a
    function for its callback to call: a ``JOBDIR`` crawl's disk queue cannot store such a request."""

    def parse(self, response: Any) -> Any:
        self.seen.append(response.url)
        for href in response.css("a.link::attr(href)").getall():
            yield response.follow(href, callback=self.parse, meta={"then": lambda page: page})


@deferred_f_from_coro_f
async def test_report_mode_unserializable_request_of_a_denied_person_is_not_named_at_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Fixed. With ``SCHEDULER_DEBUG`` and a ``JOBDIR``, Scrapy's scheduler logs the first request its disk queue
    cannot store at WARNING: ``Unable to serialize request: <GET http://people.example/u/107> - reason: ...``.
    Report mode schedules 107's request (it would deny it), and the scheduler's logger was not among those whose
    lines are read for people; it is now."""
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report", JOBDIR=str(tmp_path / "job"),
                               SCHEDULER_DEBUG=True)
    app = LenientPeople().links_page("/friends", ["/u/107"])
    with caplog.at_level(logging.DEBUG), LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", UnpicklableMeta), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/friends"])
    assert result.stats.get("scheduler/unserializable") == 1, result.stats
    assert "subject.no-authorization" in {e["reason"] for e in result.audit_for("/u/107")}, result.denies()
    shown = shown_lines(caplog)
    assert any("Unable to serialize request" in line for line in shown), shown  # the line itself is kept
    assert not [line for line in shown if "/u/107" in line], shown


class LinksTheSiteDisallows(ListLogic):
    """From 101's profile, two links to people who hold a grant but whose pages robots.txt disallows: one longer
    than ``URLLENGTH_LIMIT`` (Scrapy's ``UrlLengthMiddleware`` logs it at INFO), one followed with the page's meta
    (``MetaCopyDetectionMiddleware`` warns, quoting it)."""

    def parse(self, response: Any) -> Any:
        self.seen.append(response.url)
        yield response.follow("/u/102?from=" + "x" * 100, callback=self.parse)
        yield response.follow("/u/103", callback=self.parse, meta=response.meta)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_link_robots_txt_disallows_is_not_named_at_info(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Fixed. The link check decides a link by the platform's terms and the person's records (102 and 103 hold
    grants); the site's own say (robots.txt, its signals) comes in the request phase. Scrapy's spider middlewares
    in between log the links at INFO and above, and the lines were read for people by the person's records only:
    ``Ignoring link (url length > 80): http://people.example/u/102?...`` and ``target request: <GET
    http://people.example/u/103>`` named pages the site's operator refuses, though the crawl held the robots.txt
    that disallows them (the page that links them came from the same site). A person's URL in such a line is now
    decided with the site's files the crawl holds too."""
    settings = people_settings(tmp_path, URLLENGTH_LIMIT=80)
    app = LenientPeople(default_robots=Robots(body="User-agent: *\nDisallow: /u/102\nDisallow: /u/103\n"))
    with caplog.at_level(logging.DEBUG), LocalServer(app) as server:
        result = await crawl(make_spider(kind, LinksTheSiteDisallows), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/redirect?to=/u/101"], follow_links=False)
    assert app.people_served() == ["101"], app.describe()
    assert [e["reason"] for e in result.audit_for("/u/103")] == ["robots.disallowed"], result.denies()
    shown = shown_lines(caplog)
    assert any("Ignoring link" in line for line in shown) and any("target request" in line for line in shown), shown
    assert not [line for line in shown if "/u/102" in line or "/u/103" in line], shown
