"""The consent API's lookup ``version`` (docs/consent-api.md, 1.) is the store's version: an answer at a version the
store has not seen is a change, so what was remembered at the old one is asked again. Against a real API server on
loopback whose change feed is stuck, judged by the platform server's own log."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.consent.apiserver import AuthorizationServer
from consentcrawl.consent.load import load_authorizations
from consentcrawl.terms.load import load_platforms
from consentcrawl.terms.platforms import PlatformRegistry
from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, ListLogic, make_spider, write_config
from tests.lenient import crawl as run_crawl
from tests.test_remote_stores import TOKEN, api_settings, line
from tests.test_send_time import _timeline


class StuckFeed(AuthorizationServer):
    """The reference API whose ``/v1/changes`` is stuck at one version with nothing listed (a CRM's change-log
    replica that stopped), while ``/v1/authorizations`` answers from the live records, at their version."""

    def changes(self, since: str | None) -> dict[str, Any]:
        return {"version": "stuck.1", "changed": [], **({"reset": True} if since is None else {})}


class NewPeopleLogic(ListLogic):
    """Every 0.15 s for 6 s: 101's profile, and the profile of someone not seen before (whose records are looked
    up: denied, none)."""

    async def start(self) -> Any:
        deadline = time.monotonic() + 6
        n = 0
        while time.monotonic() < deadline:
            for person in ("101", str(300 + n)):
                yield scrapy.Request(f"http://{HOST}/u/{person}?n={n}", callback=self.parse, dont_filter=True)
            n += 1
            await asyncio.sleep(0.15)


async def crawl_while_withdrawing(app: Any, settings: dict[str, Any], logic: Any, withdraw: Any, stop: Any,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Crawl ``app`` with ``withdraw`` running in a thread beside it until the crawl ends (``stop`` is set)."""
    watcher = threading.Thread(target=withdraw, daemon=True)
    with LocalServer(app) as server:
        watcher.start()
        try:
            await run_crawl(make_spider("ConsentSpider", logic), settings, proxy=server.proxy,
                            monkeypatch=monkeypatch, follow_links=False)
        finally:
            stop.set()
            watcher.join()


def assert_withdrawal_honoured(app: Any, written: list[float]) -> None:
    """The server's log: 101 served before the withdrawal was written (the control), never 2 s after it."""
    assert written, "the withdrawal was not made during the crawl"
    timeline = _timeline(app, written[0], "the withdrawal")
    served = app.times_served("101")
    assert any(t < written[0] for t in served), f"control: 101 not served before\n{timeline}"
    late = [round(t - written[0], 2) for t in served if t > written[0] + 2.0]
    assert not late, f"101 fetched after withdrawing (s after): {late}\n{timeline}"


@dataclass
class Withdrawing:
    """101 authorized in ``records`` (the JSON lines an API serves), and 101's withdrawal: :meth:`withdraw`, run
    beside the crawl until ``stop``, writes it into the file a second after 101 was first served (``before`` is
    called just before), and notes the time in ``written``."""

    platforms: PlatformRegistry
    records: Path
    app: LenientPeople = field(default_factory=LenientPeople)
    written: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    before: Callable[[], None] = lambda: None

    @classmethod
    def in_(cls, tmp_path: Path) -> Withdrawing:
        config, _ = write_config(tmp_path)
        records = tmp_path / "records.jsonl"
        records.write_text(line("101"), encoding="utf-8")
        return cls(load_platforms([str(config)]), records)

    def store(self) -> Any:
        """The records as the API serves them."""
        return load_authorizations(self.records, self.platforms)

    def withdraw(self) -> None:
        deadline = time.monotonic() + 60
        while not self.app.times_served("101"):
            if self.stop.wait(0.05) or time.monotonic() > deadline:
                return
        if not self.stop.wait(1.0):
            self.before()
            with self.records.open("a", encoding="utf-8") as f:
                f.write(line("101", revoked=True))
            self.written.append(time.time())


@deferred_f_from_coro_f
async def test_a_lookup_at_a_new_version_is_a_change_of_the_store(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """101 withdraws in the CRM; its change feed does not say so, but its lookups answer at a new version. Before,
    the lookup's version was read and ignored: 101's remembered grant was used until the crawl ended. Now the
    first answer at the new version drops what was remembered: 101 is asked again and not fetched 2 s after."""
    w = Withdrawing.in_(tmp_path)
    with StuckFeed(w.store(), w.platforms, token=TOKEN) as api:
        settings = api_settings(tmp_path, api.url, monkeypatch)
        await crawl_while_withdrawing(w.app, settings, NewPeopleLogic, w.withdraw, w.stop, monkeypatch)
    assert_withdrawal_honoured(w.app, w.written)


class LaggingReplica(AuthorizationServer):
    """The reference API behind a load balancer one of whose replicas lags: for ``lag`` seconds after ``lag_from``,
    lookups are answered as they were before (the old records, at the old version); the change feed is the
    primary's, and says who changed."""

    lag_from: float | None = None
    lag = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before: dict[tuple[str, str], dict[str, Any]] = {}

    def authorizations(self, platform: str, subject: str) -> dict[str, Any]:
        if self.lag_from is not None and time.time() < self.lag_from + self.lag:
            old = self.before.get((platform, subject))
            if old is not None:
                return old
        answer = super().authorizations(platform, subject)
        if self.lag_from is None:
            self.before[(platform, subject)] = answer
        return answer


class SamePersonLogic(ListLogic):
    """101's profile every 0.15 s for 5 s."""

    async def start(self) -> Any:
        deadline, n = time.monotonic() + 5, 0
        while time.monotonic() < deadline:
            yield scrapy.Request(f"http://{HOST}/u/101?n={n}", callback=self.parse, dont_filter=True)
            n += 1
            await asyncio.sleep(0.15)


@deferred_f_from_coro_f
async def test_an_answer_of_a_lagging_replica_is_not_remembered(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """101 withdraws; the change feed says so at once, but for 1 s a lagging replica answers lookups with 101's old
    grant, at the old version. The first such answer (a version other than the one last seen) dropped what was
    remembered; the next, at the same old version, was remembered, and 101's stale grant was used from the cache
    to the end of the crawl, long after every replica had caught up. Now an answer at a version other than the
    change feed's is used for its own lookup only, never remembered: 101 is not fetched 2 s after withdrawing."""
    w = Withdrawing.in_(tmp_path)
    with LaggingReplica(w.store(), w.platforms, token=TOKEN) as api:

        def lag_from_now() -> None:
            api.lag_from = time.time()

        w.before = lag_from_now
        settings = api_settings(tmp_path, api.url, monkeypatch)
        await crawl_while_withdrawing(w.app, settings, SamePersonLogic, w.withdraw, w.stop, monkeypatch)
    assert_withdrawal_honoured(w.app, w.written)



class UnversionedAnswers(StuckFeed):
    """An API whose lookups answer without a ``version`` (the contract requires one), and whose change feed is stuck:
    nothing it says can tell the crawl that an answer went stale."""

    def authorizations(self, platform: str, subject: str) -> dict[str, Any]:
        answer = super().authorizations(platform, subject)
        return {"records": answer["records"]}


@deferred_f_from_coro_f
async def test_an_answer_without_a_version_is_not_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """101 withdraws; the API's lookups carry no ``version`` and its change feed does not list the withdrawal. The
    answer without a version was remembered as if current, and 101's grant was used from the cache to the end of the
    crawl. A store that cannot say which version answered cannot prove an answer is still current: such an answer
    is used for its own lookup only, never remembered (nor any decision made of it), so 101 is asked again and not
    fetched 2 s after withdrawing."""
    w = Withdrawing.in_(tmp_path)
    with UnversionedAnswers(w.store(), w.platforms, token=TOKEN) as api:
        settings = api_settings(tmp_path, api.url, monkeypatch)
        await crawl_while_withdrawing(w.app, settings, SamePersonLogic, w.withdraw, w.stop, monkeypatch)
    assert_withdrawal_honoured(w.app, w.written)
