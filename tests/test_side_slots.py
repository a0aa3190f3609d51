"""Side requests (robots.txt, signal files) and the download slots: a page that holds its slot never waits on a
side request queued behind it in that slot (the crawl would never end), with one request per domain at a time.

Each crawl here is given a few seconds: a hang fails the test, with what the crawl was waiting for.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import scrapy
from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler
from scrapy.utils.defer import deferred_f_from_coro_f

import tests.conftest
from consentcrawl.browser import _RequestGate
from consentcrawl.originspacing import OriginSpacing, TurnNotFree
from consentcrawl_demo.messages import LoggedRequest, Response
from consentcrawl_demo.server import LocalServer
from tests.conftest import run_crawl
from tests.lenient import HOST, LenientPeople, ListLogic, Robots, crawl, make_spider, people_settings

#: seconds a crawl here may take before it counts as hung (each needs about two)
LIMIT = 10.0


class BrowserLikeHandler(HTTP11DownloadHandler):
    """A download handler that follows redirects itself, as a browser handler (scrapy-playwright's Chromium) does:
    each hop is asked of consentcrawl first, as Chromium's paused requests are (``browser._RequestGate``), and the
    page comes back with the final URL, decided by the response phase."""

    asks = True

    async def download_request(self, request: scrapy.Request) -> Any:
        gate = _RequestGate(self._crawler, None)
        for _ in range(5):
            response = await super().download_request(request)
            location = response.headers.get(b"Location")
            if response.status not in (301, 302, 303, 307, 308) or not location:
                return response
            url = urljoin(response.url, location.decode("latin-1"))
            if self.asks and not await gate.allowed(url, redirect=True):
                raise scrapy.exceptions.IgnoreRequest("the browser's redirect hop was blocked")
            request = request.replace(url=url)
        return response

    @classmethod
    def from_crawler(cls, crawler: Any) -> BrowserLikeHandler:
        handler = super().from_crawler(crawler)
        handler._crawler = crawler
        return handler


class FollowingHandler(BrowserLikeHandler):
    """A handler that follows redirects without asking (a remote rendering service's): only the response phase
    decides the final URL."""

    asks = False


def _slow_redirect(to: str, delay: float) -> Any:
    def answer(request: LoggedRequest) -> Response:
        return Response(302, {"Location": to}, b"", delay=delay)
    return answer


def _settings(tmp_path: Path, handler: str = "BrowserLikeHandler", **overrides: Any) -> dict[str, Any]:
    return people_settings(tmp_path, CONCURRENT_REQUESTS_PER_DOMAIN=1,
                           CONSENTCRAWL_HTTP_HANDLER=f"tests.test_side_slots.{handler}", **overrides)


@pytest.mark.parametrize(("where", "handler"), [("port", "BrowserLikeHandler"), ("slot", "BrowserLikeHandler"),
                                               ("port", "FollowingHandler")])
@deferred_f_from_coro_f
async def test_a_page_redirected_to_an_origin_whose_robots_txt_waits_in_its_slot_does_not_hang(
        where: str, handler: str, tmp_path: Path, monkeypatch: Any) -> None:
    """Page A is slow and ends (followed by its handler) on another origin, O2, whose robots.txt page B's request
    phase has meanwhile sent for into the download slot A holds (same host name on another port, or A's
    ``download_slot``): A's response phase and its handler's redirect hop need O2's robots.txt."""
    monkeypatch.setattr(tests.conftest, "CRAWL_LIMIT", LIMIT)
    o2 = f"http://{HOST}" if where == "port" else f"http://www.{HOST}"
    start = f"http://{HOST}:8080/slow" if where == "port" else f"http://{HOST}/slow"
    app = LenientPeople()
    app.pages["/slow"] = _slow_redirect(f"{o2}/people?page=1", 1.5)
    meta = {} if where == "port" else {"download_slot": f"www.{HOST}"}
    urls = [scrapy.Request(start, meta=meta, dont_filter=True), 0.5, f"{o2}/people?page=1&b=1"]
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", ListLogic), _settings(tmp_path, handler), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert sorted(result.seen) == [f"{o2}/people?page=1", f"{o2}/people?page=1&b=1"], app.describe()


LICENSED = ('<html><head><link rel="license" type="application/rsl+xml" href="/licence.xml"></head>'
            "<body><h1>about us</h1></body></html>")
LICENCE = ('<rsl xmlns="https://rslstandard.org/rsl"><content url="/"><license>'
           '<permits type="usage">search</permits></license></content></rsl>')


@deferred_f_from_coro_f
async def test_side_requests_keep_the_download_delay_of_their_slot(tmp_path: Path, monkeypatch: Any) -> None:
    """``DOWNLOAD_DELAY`` spaces every request the server gets, consentcrawl's own included: robots.txt and the
    site's files before the first page, and the licence a page names, fetched while that page holds its slot
    (its response phase), which went out at once, right after the page, and brought the next page closer."""
    monkeypatch.setattr(tests.conftest, "CRAWL_LIMIT", LIMIT)
    delay = 0.3
    app = LenientPeople()
    app.pages["/licensed"] = LICENSED
    app.pages["/licence.xml"] = lambda request: Response(200, {"Content-Type": "application/rsl+xml"}, LICENCE)
    settings = people_settings(tmp_path, DOWNLOAD_DELAY=delay, DOWNLOAD_DELAY_JITTER=0,
                               CONCURRENT_REQUESTS_PER_DOMAIN=1)
    urls = [f"http://{HOST}/licensed", f"http://{HOST}/people?page=1"]
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    paths = [s.target.split(HOST, 1)[1] for s in app.served]
    assert "/licence.xml" in paths and set(result.seen) == set(urls), (app.describe(), result.denies())
    times = [s.time for s in app.served]
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(times)]
    # the server's arrival times: a send Scrapy's slot let go ``delay`` after the last reaches it a little later or
    # sooner (on a busy machine, by tens of ms); one sent at once, past the slot, came within a few ms
    assert min(gaps) >= delay / 2, f"requests closer than DOWNLOAD_DELAY: {list(zip(paths[1:], gaps, strict=True))}"
    assert result.stats.get("consentcrawl/side_requests/slot_delay_waited"), result.stats


@deferred_f_from_coro_f
async def test_a_browser_redirect_hop_after_the_site_files_expired_does_not_wait_for_its_own_page(
        tmp_path: Path, monkeypatch: Any) -> None:
    """robots.txt and the site's files expire while a page of an origin with a ``Crawl-delay`` downloads; its
    handler's redirect hop, on the same origin, is decided while the page holds the origin's turn, and needs them
    fetched again."""
    monkeypatch.setattr(tests.conftest, "CRAWL_LIMIT", LIMIT)
    app = LenientPeople(robots={HOST: Robots(crawl_delay=0.2)})
    app.pages["/slow"] = _slow_redirect("/people?page=1", 1.3)
    settings = _settings(tmp_path, CONSENTCRAWL_ROBOTS_TTL=1, CONSENTCRAWL_MAX_CRAWL_DELAY=0.5)
    settings["DOWNLOAD_TIMEOUT"] = 3  # the side request's bound for the turn: 3.5 s
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"http://{HOST}/slow"], follow_links=False)
    # the hop waited for its origin's signal files, which waited for the page's turn: failed closed, the cause said
    assert result.seen == [] and "/people" not in {s.path for s in app.served}, app.describe()
    denies = result.audit_for("/people?page=1", phase="browser", verdict="deny")
    assert [e["reason"] for e in denies] == ["terms.signal-unavailable.tdmrep"], result.denies()
    assert "Crawl-delay turn was not free" in json.dumps(denies[0]["evidence"]), denies
    assert result.stats.get("consentcrawl/side_requests/turn_not_free"), result.stats  # tdmrep.json, ai.txt


@deferred_f_from_coro_f
async def test_a_turn_not_free_within_its_bound_raises_and_leaves_nothing_held() -> None:
    """The bound of :meth:`OriginSpacing.turn`: a second request past it gets ``TurnNotFree`` (the first still holds
    the turn); once the first lets go, the origin's turn is free again and nothing of it is kept."""
    spacing, seen = OriginSpacing(30.0), []
    async with spacing.turn("http://a.example", 0.01):
        try:
            async with spacing.turn("http://a.example", 0.01, within=0.05):
                seen.append("entered beside the holder")
        except TurnNotFree as exc:
            seen.append(str(exc))
    async with spacing.turn("http://a.example", 0.01, within=0.5):
        seen.append("entered after")
    seen.append(f"kept {len(spacing._turns)}")
    assert seen == ["the origin's Crawl-delay turn was not free within 0.05 s", "entered after", "kept 0"]


@deferred_f_from_coro_f
async def test_a_turn_taken_in_turn_by_others_is_waited_for_past_the_bound() -> None:
    """The bound is on one holder, not the queue: three holders each keep the turn for most of it, one after
    another; the request behind them waits longer than the bound in all, and gets the turn."""
    import asyncio

    spacing, seen, bound = OriginSpacing(30.0), [], 0.2

    async def hold(name: str) -> None:
        async with spacing.turn("http://a.example", 0.01, within=bound):
            seen.append(name)
            await asyncio.sleep(0.15)

    started = asyncio.get_running_loop().time()
    await asyncio.gather(hold("a"), hold("b"), hold("c"), hold("late"))
    assert seen == ["a", "b", "c", "late"] and asyncio.get_running_loop().time() - started > 2 * bound
    assert len(spacing._turns) == 0


@deferred_f_from_coro_f
async def test_a_holders_wait_off_the_clock_does_not_count_against_the_bound() -> None:
    """A holder waiting off the clock (a distributed crawl's schedule) three times the bound keeps a request behind
    it waiting; once it is back on the clock and does not let go, that request fails within the bound from there."""
    import asyncio

    spacing, seen, bound, loop = OriginSpacing(30.0), [], 0.2, asyncio.get_running_loop()
    origin = "http://a.example"

    async def holder(stuck: float) -> None:
        async with spacing.turn(origin, 0.01, within=bound):
            with spacing.off_the_clock(origin, 0.01):
                await asyncio.sleep(3 * bound)
            seen.append("on the clock")
            await asyncio.sleep(stuck)
            seen.append("let go")

    async def waiter() -> None:
        await asyncio.sleep(0.02)
        started = loop.time()
        try:
            async with spacing.turn(origin, 0.01, within=bound):
                seen.append("turn")
        except TurnNotFree:
            seen.append(f"not free; past the wait off the clock: {loop.time() - started > 3 * bound}")

    await asyncio.gather(holder(0.05), waiter())
    await asyncio.gather(holder(2 * bound), waiter())
    assert seen == ["on the clock", "let go", "turn",
                    "on the clock", "not free; past the wait off the clock: True", "let go"]
    assert len(spacing._turns) == 0


@deferred_f_from_coro_f
async def test_a_persons_linked_actor_keeps_the_download_delay(tmp_path: Path, monkeypatch: Any) -> None:
    """The ActivityPub actor a profile links to is fetched while the profile holds its slot (past the queue): it
    went out right after the profile. Judged by the fediverse server's arrival times."""
    from consentcrawl_demo.fediverse import FediverseSite
    from tests.test_refusals_actor import ProfilesOnly
    from tests.test_refusals_crawl import SETTINGS, fedi_settings

    monkeypatch.setattr(tests.conftest, "CRAWL_LIMIT", 30.0)
    delay = 0.15
    settings = fedi_settings(tmp_path, CONSENTCRAWL_PLATFORMS=[str(SETTINGS / "fediverse.yaml")],
                             DOWNLOAD_DELAY=delay, DOWNLOAD_DELAY_JITTER=0)
    site = FediverseSite()
    with LocalServer(site) as server:
        result = await run_crawl(ProfilesOnly, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    sent = [(r.time, r.path) for r in server.requests]
    actors = [(path, round(b - a, 3)) for (a, _), (b, path) in itertools.pairwise(sent) if path.startswith("/users/")]
    assert actors and result.stats.get("consentcrawl/refusals/actor_requests"), sent  # control: actors were fetched
    # each after the profile that links to it, as above: sent at once, it came within a few ms
    assert min(gap for _, gap in actors) >= delay / 2, f"closer than DOWNLOAD_DELAY to the page before: {actors}"


@deferred_f_from_coro_f
async def test_the_site_files_expiring_between_a_pages_send_and_its_response_phase_do_not_hang_it(
        tmp_path: Path, monkeypatch: Any) -> None:
    """robots.txt and the site's files expire while a slow page downloads; another page of the origin, asked for
    then, sends for robots.txt again in its request phase, and the slow page's response phase for the site's files
    (one request per domain at a time): both pages are read, each file fetched again once."""
    monkeypatch.setattr(tests.conftest, "CRAWL_LIMIT", LIMIT)
    app = LenientPeople()
    app.pages["/slow"] = lambda request: Response(200, {"Content-Type": "text/html"}, "<p>slow</p>", delay=1.4)
    settings = people_settings(tmp_path, CONCURRENT_REQUESTS_PER_DOMAIN=1, CONSENTCRAWL_ROBOTS_TTL=1)
    urls = [f"http://{HOST}/slow", 1.1, f"http://{HOST}/people?page=1"]
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert sorted(result.seen) == [f"http://{HOST}/people?page=1", f"http://{HOST}/slow"], (app.describe(),
                                                                                             result.denies())
    fetched = [s.path for s in app.served]
    assert (fetched.count("/robots.txt"), fetched.count("/.well-known/tdmrep.json")) == (2, 2), app.describe()


@deferred_f_from_coro_f
async def test_a_busy_origins_pages_taking_turns_do_not_time_out_a_licence_waiting_behind_them(
        tmp_path: Path, monkeypatch: Any) -> None:
    """An origin with a ``Crawl-delay`` whose pages take a while: Scrapy's slot lets one go every delay (counted
    between sends), the origin's turn one every delay plus the fetch (counted from a fetch's end), so pages pile
    up at the turn, each taking it in order, none near its download timeout. A licence a page names waits behind
    them all: longer than ``DOWNLOAD_TIMEOUT`` + ``CONSENTCRAWL_MAX_CRAWL_DELAY``, though no holder held the turn
    that long. It is fetched, and the page kept (judged by the server's log and the audit log)."""
    monkeypatch.setattr(tests.conftest, "CRAWL_LIMIT", 30.0)
    app = LenientPeople(robots={HOST: Robots(crawl_delay=0.1)})
    page = "<html><body><p>a page</p></body></html>"
    for i in range(12):
        app.pages[f"/p{i}"] = lambda request: Response(200, {"Content-Type": "text/html"}, page, delay=0.3)
    app.pages["/licensed"] = lambda request: Response(200, {"Content-Type": "text/html"}, LICENSED, delay=0.3)
    app.pages["/licence.xml"] = lambda request: Response(200, {"Content-Type": "application/rsl+xml"}, LICENCE)
    settings = people_settings(tmp_path, CONCURRENT_REQUESTS_PER_DOMAIN=8, CONSENTCRAWL_MAX_CRAWL_DELAY=0.5)
    settings["DOWNLOAD_TIMEOUT"] = 1.5  # each fetch takes 0.3 s; the bound for a turn's holder: 2 s
    urls = [f"http://{HOST}/p{i}" for i in range(3)] + [f"http://{HOST}/licensed"] + [
        f"http://{HOST}/p{i}" for i in range(3, 12)]
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert "/licence.xml" in {s.path for s in app.served}, app.describe()
    assert f"http://{HOST}/licensed" in result.seen, result.denies()
    assert not result.stats.get("consentcrawl/side_requests/turn_not_free"), result.stats
    assert sorted(result.seen) == sorted(set(urls)), result.denies()


@deferred_f_from_coro_f
async def test_a_licence_waits_for_a_page_given_a_longer_download_timeout_of_its_own(
        tmp_path: Path, monkeypatch: Any) -> None:
    """A page given a longer timeout of its own (``meta["download_timeout"]``, as a spider's ``download_timeout``
    attribute gives every page) holds its origin's turn longer than ``DOWNLOAD_TIMEOUT`` + the delay, within its
    own timeout. A licence another page named, waiting behind it, is fetched once it ends (judged by the server's
    log and the audit log), not denied as unavailable."""
    monkeypatch.setattr(tests.conftest, "CRAWL_LIMIT", LIMIT)
    app = LenientPeople(robots={HOST: Robots(crawl_delay=0.1)})
    app.pages["/licensed"] = LICENSED
    app.pages["/licence.xml"] = lambda request: Response(200, {"Content-Type": "application/rsl+xml"}, LICENCE)
    app.pages["/large"] = lambda request: Response(200, {"Content-Type": "text/html"}, "<p>large</p>", delay=2.2)
    settings = people_settings(tmp_path, CONSENTCRAWL_MAX_CRAWL_DELAY=0.5)
    settings["DOWNLOAD_TIMEOUT"] = 1  # the bound for a turn's holder without a timeout of its own: 1.5 s
    urls = [f"http://{HOST}/licensed", scrapy.Request(f"http://{HOST}/large", meta={"download_timeout": 4})]
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    paths = [s.path for s in app.served]
    assert "/licence.xml" in paths and paths.index("/licence.xml") > paths.index("/large"), app.describe()
    assert sorted(result.seen) == [f"http://{HOST}/large", f"http://{HOST}/licensed"], result.denies()
    assert not result.stats.get("consentcrawl/side_requests/turn_not_free"), result.stats


@deferred_f_from_coro_f
async def test_a_side_request_that_timed_out_is_logged_without_its_url(
        tmp_path: Path, monkeypatch: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A licence a page names times out: the WARNING that says it is unavailable names its host, as every side
    request's line does, not the URL Scrapy's timeout error gives (a file's path may name a person)."""
    import logging

    monkeypatch.setattr(tests.conftest, "CRAWL_LIMIT", LIMIT)
    app = LenientPeople()
    app.pages["/licensed"] = LICENSED.replace("/licence.xml", "/files/jane-doe-licence.xml")
    app.pages["/files/jane-doe-licence.xml"] = lambda request: Response(
        200, {"Content-Type": "application/rsl+xml"}, LICENCE, delay=2)
    settings = people_settings(tmp_path)
    settings["DOWNLOAD_TIMEOUT"] = 1
    with LocalServer(app) as server, caplog.at_level(logging.INFO):
        result = await crawl(make_spider("ConsentSpider", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"http://{HOST}/licensed"], follow_links=False)
    assert "/files/jane-doe-licence.xml" in {s.path for s in app.served} and not result.seen, app.describe()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert any("rsl file of people.example unavailable" in line for line in lines), lines
    assert not [line for line in lines if "jane-doe" in line], lines
