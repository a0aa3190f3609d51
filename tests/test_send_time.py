"""The authoritative decision is made at send time: after the download-slot wait, with the clock read then.

Judged by the lenient site's served log (arrival times, ``time.time()``): a grant that expires, or a withdrawal
written to the authorizations file, while requests wait in their download slot must stop those requests.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import (
    HOST,
    KINDS,
    LenientPeople,
    ListLogic,
    Robots,
    crawl,
    iso,
    make_spider,
    once_served,
    people_settings,
    record_yaml,
)

BASE = f"http://{HOST}"
#: how late a change may take effect (the contract's bound for a store change; used for expiries too)
GRACE = 2.0
#: authorized until the expiry
EXPIRING = ("101", "102", "103", *(str(i) for i in range(111, 119)))
#: the site's Crawl-delay in the expiry test: its requests wait in the slot one after another
EXPIRY_CRAWL_DELAY = 0.25
#: the expiry test's requests, all asked for at once: spaced by the delay from the first profile (1 s after the
#: test starts at the soonest), they would go on being sent about 1 s past the expiry (3 s after the test starts)
#: plus the grace, so a fetch decided before its wait would show
REQUESTED = [f"/u/{EXPIRING[n % len(EXPIRING)]}?n={n}" for n in range(22)]


def went_on(app: LenientPeople, marks: list[float], seconds: float) -> Callable[[], bool]:
    """:attr:`RepeatLogic.enough`: 102 (the control, never withdrawn) was served more than ``seconds`` after the
    change (``marks[0]``, once made). The crawl runs as long as the judgement looks, however late it started."""
    return lambda: bool(marks) and any(t > marks[0] + seconds for t in app.times_served("102"))


def _timeline(app: LenientPeople, mark: float, label: str) -> str:
    rows = [f"  {s.time - mark:+6.2f}s {s.target} -> {s.person or s.kind}" for s in app.served]
    return f"served log, times relative to {label}:\n" + "\n".join(rows)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_grant_expiring_while_requests_wait_in_the_slot(kind: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 s from now: robots.txt, then tdmrep.json and ai.txt, each keeping the Crawl-delay, come before the first
    # profile, and the next ones are still waiting in the slot at the expiry
    expiry = time.time() + 3
    at = datetime.fromtimestamp(expiry, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    records = [record_yaml(s, expires_at=at) for s in EXPIRING]
    settings = people_settings(tmp_path, records, CONSENTCRAWL_MAX_CRAWL_DELAY=5)
    app = LenientPeople(default_robots=Robots(crawl_delay=EXPIRY_CRAWL_DELAY))
    with LocalServer(app) as server:
        await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                    urls=[BASE + path for path in REQUESTED], follow_links=False)
    served = [(s.time, s.person) for s in app.served if s.person in EXPIRING]
    timeline = _timeline(app, expiry, "the expiry")
    assert any(t < expiry for t, _ in served), f"control: nobody was served before the expiry\n{timeline}"
    late = [(round(t - expiry, 2), p) for t, p in served if t > expiry + GRACE]
    assert not late, f"served more than {GRACE}s after their grant expired: {late}\n{timeline}"


class RepeatLogic(ListLogic):
    """Requests ``/u/101?n=i`` and ``/u/102?n=i`` every ``every`` seconds for ``seconds`` seconds, or until
    ``enough()`` (a spider argument, see :func:`went_on`) says the test has seen all it judges."""

    every: float = 0.3
    seconds: float = 6.5
    enough: Callable[[], bool] | None = None

    async def start(self) -> Any:
        deadline = time.monotonic() + self.seconds
        n = 0
        while time.monotonic() < deadline and not (self.enough is not None and self.enough()):
            for person in ("101", "102"):
                yield scrapy.Request(f"{BASE}/u/{person}?n={n}", callback=self.parse, dont_filter=True)
            n += 1
            await asyncio.sleep(self.every)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_withdrawal_written_mid_crawl_stops_the_fetches(kind: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    settings = people_settings(tmp_path)
    path = Path(settings["CONSENTCRAWL_AUTHORIZATIONS"])
    written: list[float] = []

    def withdraw() -> None:
        now = time.time()
        block = record_yaml("101", revoked_at=iso(now), evidence="withdrawn mid-crawl")
        with path.open("a") as f:  # one write: another process appending a withdrawal
            f.write(block)
            f.flush()
            os.fsync(f.fileno())
        written.append(time.time())

    app = LenientPeople()
    with LocalServer(app) as server, once_served(app, "101", withdraw, after=1.0):
        result = await crawl(make_spider(kind, RepeatLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, follow_links=False, enough=went_on(app, written, GRACE + 2))
    assert written, "the withdrawal was not written during the crawl"
    write = written[0]
    timeline = _timeline(app, write, "the write")
    assert any(t < write for t in app.times_served("101")), f"control: 101 not served before the write\n{timeline}"
    assert any(t > write + GRACE + 1 for t in app.times_served("102")), \
        f"control: the crawl did not go on requesting after the write\n{timeline}"
    late = [round(t - write, 2) for t in app.times_served("101") if t > write + GRACE]
    assert not late, f"101 fetched after withdrawing (s after the write): {late}\n{timeline}"
    assert any(e["reason"] == "subject.revoked" for e in result.audit if e.get("subject") == "101"), \
        "no subject.revoked line for 101"


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_send_time_allow_carries_the_decision_time(kind: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # Crawl-delay 1 s: robots.txt, tdmrep.json and ai.txt come first, so 101 and 102 wait 3 and 4 s in the slot,
    # far past the 0.5 s the allow line's time may be off by
    app = LenientPeople(default_robots=Robots(crawl_delay=1))
    urls = [f"{BASE}/u/101", f"{BASE}/u/102"]
    settings = people_settings(tmp_path, CONSENTCRAWL_MAX_CRAWL_DELAY=5)
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=urls, follow_links=False)
    timeline = _timeline(app, result.started, "the spider opening")
    waited = [s for s in app.served if s.person in ("101", "102") and s.time - result.started >= 1.8]
    assert waited, f"control: no request waited 1.8 s in its download slot\n{timeline}"
    for arrival in waited:
        url = f"{BASE}{arrival.target.removeprefix(BASE)}"
        lines = [e for e in result.audit if e.get("url") == url and e.get("phase") == "request"
                 and e.get("verdict") == "allow"]
        assert lines, f"no request-phase allow line for {url}"
        decided = datetime.fromisoformat(lines[-1]["time"]).timestamp()
        assert abs(decided - arrival.time) <= 0.5, (
            f"{url}: the allow line's time is {decided - arrival.time:+.2f}s from the server's arrival time "
            f"({decided - result.started:+.2f}s after the spider opened; arrival "
            f"{arrival.time - result.started:+.2f}s)\n{timeline}")


@deferred_f_from_coro_f
async def test_origin_spacing_counts_the_delay_from_the_end_of_the_previous_fetch() -> None:
    """Requests to one origin that reach the handler at once go one at a time, each a delay after the previous
    fetch *ended* (robots.txt's end included), so a slow fetch or a late arrival never brings the next one closer;
    a request denied after its wait sends nothing and does not move the clock; another origin, and an origin
    without a delay, are not held back."""
    from consentcrawl.handler import OriginSpacing

    spacing = OriginSpacing(horizon=30)
    delay, fetch = 0.2, 0.15
    log: list[tuple[str, str, float]] = []

    async def request(origin: str, wanted: float | None, *, sent: bool = True) -> None:
        async with spacing.turn(origin, wanted):
            log.append((origin, "start", time.monotonic()))
            if sent:
                await asyncio.sleep(fetch)
                spacing.ended(origin)
                log.append((origin, "end", time.monotonic()))

    async def main() -> None:
        spacing.ended("http://a.example")  # robots.txt
        log.append(("http://a.example", "end", time.monotonic()))
        await asyncio.gather(request("http://a.example", delay), request("http://a.example", delay, sent=False),
                             request("http://a.example", delay), request("http://b.example", delay),
                             request("http://c.example", None), request("http://c.example", None))

    started = time.monotonic()
    await main()
    a = [(what, at) for origin, what, at in log if origin == "http://a.example"]
    assert [what for what, _ in a] == ["end", "start", "end", "start", "start", "end"], a
    (_, robots_end), (_, first), (_, first_end), (_, denied), (_, second), _ = a
    assert first - robots_end >= delay - 0.01 and denied - first_end >= delay - 0.01, a
    assert second - first_end >= delay - 0.01 and second - denied < delay, a  # the denied one moved nothing
    others = [at - started for origin, what, at in log if origin != "http://a.example" and what == "start"]
    assert len(others) == 3 and max(others) < delay, others  # not held: b's first request, c without a delay


@deferred_f_from_coro_f
async def test_origin_spacing_forgets_origins_it_has_nothing_left_to_enforce_for() -> None:
    """A broad crawl's spacing state is the origins fetched within the longest delay it may keep (the horizon,
    ``CONSENTCRAWL_MAX_CRAWL_DELAY``) and those whose turn is held or waited for, not every origin ever fetched.
    An origin's turn is kept while a request waits for it: one arriving as the holder lets go queues behind the
    waiter, a delay after the waiter's fetch ended, never beside it."""
    from consentcrawl.handler import OriginSpacing

    now = [0.0]
    spacing = OriginSpacing(horizon=5, clock=lambda: now[0])
    for i in range(10_000):  # one fetch each, 0.01 s apart: the last 5 s of them are within the horizon
        origin = f"http://h{i}.example"
        async with spacing.turn(origin, 1.0):
            spacing.ended(origin)
        now[0] += 0.01
    assert len(spacing) <= 501, len(spacing)
    assert spacing.wait("http://h9999.example", 1.0) > 0  # the recent ones are still kept apart

    spacing, delay = OriginSpacing(horizon=5), 0.1
    log: list[tuple[str, str, float]] = []

    async def request(name: str) -> None:
        async with spacing.turn("http://a.example", delay):
            log.append((name, "start", time.monotonic()))
            await asyncio.sleep(0.02)
            spacing.ended("http://a.example")
            log.append((name, "end", time.monotonic()))

    async def late() -> None:  # arrives once the first has let go, while the second waits out the delay
        while len(log) < 2:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)
        await request("late")

    await asyncio.gather(request("first"), request("second"), late())
    assert [(name, what) for name, what, _ in log] == [
        ("first", "start"), ("first", "end"), ("second", "start"), ("second", "end"), ("late", "start"),
        ("late", "end")], log
    assert log[4][2] - log[3][2] >= delay - 0.01, log
    assert len(spacing._turns) == 0 and len(spacing) == 1  # no turn held: only the last end is kept
