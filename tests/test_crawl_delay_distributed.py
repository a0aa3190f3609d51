"""A ``Crawl-delay`` in a distributed crawl holds at the server, counted from the end of one fetch from the origin to
the start of the next, as in one process (:class:`consentcrawl.handler.OriginSpacing`). Real crawls on a real
``redis-server``, judged by the platform server's own log."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import time
from pathlib import Path
from typing import Any

from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.messages import Response
from consentcrawl_demo.server import LocalServer
from tests.lenient import LenientPeople, Robots, crawl, make_spider, people_settings
from tests.redis_server import RedisServer
from tests.test_hunt import SlotPerRequestLogic


@dataclasses.dataclass
class LateAndSlowFirstProfile(LenientPeople):
    """A server the first profile request reaches 0.4 s after it was sent (a new connection through a slow proxy),
    and that takes another 0.8 s to answer it."""

    def slow(self, request: Any, headers: dict[str, str]) -> bool:
        return bool(request.path == "/u/101")

    def __call__(self, request: Any, headers: dict[str, str]) -> Any:
        if not self.slow(request, headers):
            return super().__call__(request, headers)
        time.sleep(0.4)
        answer = super().__call__(dataclasses.replace(request, time=time.time()), headers)
        time.sleep(0.8)
        return answer


@deferred_f_from_coro_f
async def test_a_distributed_crawl_keeps_the_delay_from_the_end_of_a_slow_fetch(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: Any,
) -> None:
    """A worker of a distributed crawl sent the next profile while the first one's fetch was still going (its turn
    counted from the first one's *send*): the server, which the first request reached late, saw the next one 0.6 s
    after it under ``Crawl-delay: 1``. The worker now fetches one request at a time from an origin with a delay, as
    one process does, so the next one starts a delay after the previous one's response came back."""
    app = LateAndSlowFirstProfile(default_robots=Robots(crawl_delay=1))
    settings = people_settings(tmp_path, CONSENTCRAWL_REDIS_URL=redis_server.url)
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", SlotPerRequestLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, follow_links=False)
    times = sorted(s.time for s in app.served if s.kind == "profile")
    assert len(times) == 3, (app.describe(), result.stats)
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1.0, f"profile fetches {gaps} s apart at the server under Crawl-delay: 1\n{app.describe()}"


@dataclasses.dataclass
class LateAndSlowFirst(LenientPeople):
    """A server the first profile request reaches 0.4 s after it was sent, and that takes another 0.8 s to answer
    it; whichever profile that is."""

    first: list[str] = dataclasses.field(default_factory=list)

    def __call__(self, request: Any, headers: dict[str, str]) -> Any:
        if not request.path.startswith("/u/") or self.first:
            return super().__call__(request, headers)
        self.first.append(request.path)
        time.sleep(0.4)
        answer = super().__call__(dataclasses.replace(request, time=time.time()), headers)
        time.sleep(0.8)
        return answer


class OneProfile(SlotPerRequestLogic):
    async def start(self) -> Any:
        import scrapy

        yield scrapy.Request(f"http://people.example/u/{self.settings.get('PERSON')}", callback=self.parse)


@deferred_f_from_coro_f
async def test_two_workers_keep_the_delay_from_the_end_of_a_slow_fetch(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: Any,
) -> None:
    """Two workers, one profile each. The other worker's turn came while the first one's fetch was still going (the
    cluster knew only its send), so the server, which the first request reached late, saw the second 0.6 s after it
    under ``Crawl-delay: 1``. A fetch from an origin with a delay now holds the origin in the cluster until it ends
    (or its download timeout passes: a worker killed mid-fetch): the next one goes a delay after its end."""
    import asyncio

    app = LateAndSlowFirst(default_robots=Robots(crawl_delay=1))
    spider = make_spider("ADDONS", OneProfile)

    def settings(who: str, person: str) -> dict[str, Any]:
        (tmp_path / who).mkdir()
        return people_settings(tmp_path / who, CONSENTCRAWL_REDIS_URL=redis_server.url, PERSON=person)

    with LocalServer(app) as server:
        results = await asyncio.gather(
            crawl(spider, settings("a", "101"), proxy=server.proxy, monkeypatch=monkeypatch, follow_links=False),
            crawl(spider, settings("b", "102"), proxy=server.proxy, monkeypatch=monkeypatch, follow_links=False))
    times = sorted(s.time for s in app.served if s.kind == "profile")
    assert len(times) == 2, (app.describe(), [r.stats for r in results])
    gap = round(times[1] - times[0], 2)
    assert gap >= 1.0, f"profile fetches {gap} s apart at the server under Crawl-delay: 1\n{app.describe()}"


@dataclasses.dataclass
class LateAndSlowRobots(LateAndSlowFirstProfile):
    """A server that robots.txt requests of one User-Agent (``slowbot``) reach 0.4 s after they were sent, and that
    takes another 0.8 s to answer them."""

    def slow(self, request: Any, headers: dict[str, str]) -> bool:
        agent = next((v for k, v in headers.items() if k.lower() == "user-agent"), "")
        return bool(request.path == "/robots.txt" and "slowbot" in agent)


@deferred_f_from_coro_f
async def test_two_workers_keep_the_delay_from_the_end_of_another_workers_robots_fetch(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: Any,
) -> None:
    """Two workers with different User-Agents (so each fetches robots.txt itself), one profile each. The slow
    worker's robots.txt reached the server late and took long; the cluster knew only its send, so the fast worker's
    next request (a signal file) went a delay after that send: the server saw it 0.6 s after robots.txt under
    ``Crawl-delay: 1``. A
    robots.txt or signal-file fetch now holds the origin in the cluster until it ends, and its end is the origin's
    last send, as in one process: every request the server sees is a delay after the one before it."""
    import asyncio

    app = LateAndSlowRobots(default_robots=Robots(crawl_delay=1))
    spider = make_spider("ADDONS", OneProfile)

    def settings(who: str, person: str) -> dict[str, Any]:
        (tmp_path / who).mkdir()
        return people_settings(tmp_path / who, CONSENTCRAWL_REDIS_URL=redis_server.url, PERSON=person,
                               USER_AGENT=f"{who}bot/1.0")

    with LocalServer(app) as server:
        results = await asyncio.gather(
            crawl(spider, settings("fast", "101"), proxy=server.proxy, monkeypatch=monkeypatch, follow_links=False),
            crawl(spider, settings("slow", "102"), proxy=server.proxy, monkeypatch=monkeypatch, follow_links=False))
    served = sorted(app.served, key=lambda s: s.time)
    assert [s.kind for s in served].count("robots") == 2, app.describe()
    assert sorted(app.people_served()) == ["101", "102"], (app.describe(), [r.stats for r in results])
    # robots.txt goes at once (it is how the delay is known); every other request keeps the delay
    gaps = [round(b.time - a.time, 2) for a, b in itertools.pairwise(served) if b.kind != "robots"]
    assert min(gaps) >= 1.0, f"requests {gaps} s after the one before under Crawl-delay: 1\n{app.describe()}"


@deferred_f_from_coro_f
async def test_each_side_fetch_holds_its_origin_until_its_own_end(redis_server: RedisServer) -> None:
    """Two workers fetch robots.txt from one origin at once (different User-Agents): each fetch holds the origin.
    The first one's end does not free the origin while the second is still going (a page of a third worker is told
    to wait), and the delay counts from the second one's end."""
    from consentcrawl.distributed.shared import SharedState
    from consentcrawl.distributed.spacing import MARGIN, SharedSpacing

    states = [SharedState(redis_server.url, prefix="side") for _ in range(3)]
    try:
        a, b, c = (SharedSpacing(state) for state in states)
        origin = "http://people.example"
        assert await a.send(origin, None, "a:robots", 5.0, side=True) == 0  # robots.txt goes at once
        assert await b.send(origin, None, "b:robots", 5.0, side=True) == 0
        await a.ended(origin, None, "a:robots", side=True)
        assert await c.send(origin, 0.2, "c:page", 5.0) < 0  # b's robots.txt still holds the origin
        await b.ended(origin, None, "b:robots", side=True)
        await asyncio.wait_for(c.until_free(origin, 0.2, "c:page"), 1)
        assert 0 < await c.send(origin, 0.2, "c:page", 5.0) <= 0.2 + MARGIN  # from b's end
    finally:
        for state in states:
            await state.close()


def _own_slots(*paths: Any) -> list[Any]:
    """The pages' requests, each in a download slot of its own, so that they all wait at the origin's turn (a
    number: the spider sleeps that long)."""
    import scrapy

    return [p if isinstance(p, (int, float)) else scrapy.Request(f"http://people.example{p}", dont_filter=True,
                                                                   meta={"download_slot": p}) for p in paths]


@deferred_f_from_coro_f
async def test_a_licence_waits_behind_a_page_waiting_for_the_clusters_schedule(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: Any,
) -> None:
    """Two workers on one origin with ``Crawl-delay: 0.5``: a page of worker A holds A's turn for the origin while it
    waits for the cluster's schedule, the other worker's turn first (about two delays), then its own. The licence
    another page of A named waits behind it, and was denied as unavailable (``terms.signal-unavailable.rsl``): the
    wait was longer than ``DOWNLOAD_TIMEOUT`` + ``CONSENTCRAWL_MAX_CRAWL_DELAY`` (0.7 s), though the page was in no
    fetch. A holder's wait for the cluster's schedule no longer counts against that bound: the licence is fetched
    and the page decided on it (judged by the server's log and the audit logs), every request still a delay after
    the one before at the server."""
    from tests.lenient import ListLogic
    from tests.test_side_slots import LICENCE, LICENSED

    delay = 0.5
    app = LenientPeople(default_robots=Robots(crawl_delay=delay))
    page = "<html><body><p>a page</p></body></html>"
    for name in ("a1", "a2", "b1", "b2", "b3", "b4"):
        app.pages[f"/{name}"] = page
    app.pages["/licensed"] = LICENSED
    app.pages["/licence.xml"] = lambda request: Response(200, {"Content-Type": "application/rsl+xml"}, LICENCE)
    spider = make_spider("ConsentSpider", ListLogic)

    def settings(who: str) -> dict[str, Any]:
        (tmp_path / who).mkdir()
        values = people_settings(tmp_path / who, CONSENTCRAWL_REDIS_URL=redis_server.url,
                                 CONSENTCRAWL_MAX_CRAWL_DELAY=delay)
        values["DOWNLOAD_TIMEOUT"] = 0.2  # a holder's bound: 0.7 s
        return values

    with LocalServer(app) as server:
        a, b = await asyncio.gather(
            crawl(spider, settings("a"), proxy=server.proxy, monkeypatch=monkeypatch, follow_links=False,
                  urls=_own_slots("/licensed", 0.2, "/a1", "/a2")),
            crawl(spider, settings("b"), proxy=server.proxy, monkeypatch=monkeypatch, follow_links=False,
                  urls=_own_slots("/b1", "/b2", "/b3", "/b4")))
    served = sorted(app.served, key=lambda s: s.time)
    assert "/licence.xml" in [s.path for s in served], app.describe()
    unavailable = [d for d in a.denies() + b.denies() if d[2].startswith("terms.signal-unavailable")]
    assert not unavailable and not a.stats.get("consentcrawl/side_requests/turn_not_free"), (unavailable, a.stats)
    assert sorted(a.seen) == [f"http://people.example/{p}" for p in ("a1", "a2", "licensed")], a.denies()
    assert len(b.seen) == 4, b.denies()
    decided = a.audit_for("/licensed", phase="response", verdict="allow")
    assert decided and "licence.xml" in json.dumps(decided), a.audit_for("/licensed")
    # robots.txt goes at once (it is how the delay is known); every other request keeps the delay
    gaps = [round(y.time - x.time, 2) for x, y in itertools.pairwise(served) if y.kind != "robots"]
    assert min(gaps) >= delay, f"requests {gaps} s after the one before under Crawl-delay: {delay}\n{app.describe()}"
