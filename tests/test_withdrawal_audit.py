"""The audit log says when a withdrawal was seen and which requests it stopped (issue #14, "Withdrawal, live").

A real crawl of the fediverse demo server with a real SQLite store; mid-crawl another thread imports a withdrawal
into the store file, as ``consentcrawl authorizations import`` does. Judged by the server's request log and the
audit log: a ``withdrawal-seen`` event, and every request denied because of it names that event.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.consent.load import load_authorizations
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.sqlite import import_records
from consentcrawl.terms.load import load_platforms
from consentcrawl_demo.fediverse import FediverseSite
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from spiders.fediverse import SETTINGS
from tests.conftest import consent_settings, run_crawl

BOUND = 2.0  #: seconds within which a withdrawal written to a SQLite store must stop fetches
WITHDRAW_AFTER = 5  #: alice's page served this many times, then her withdrawal is imported


class Repeating(scrapy.Spider):
    """Asks for alice's and dave's posts again and again for a few seconds (a monitoring crawl)."""

    name = "repeating"
    custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}, "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
                       "DOWNLOAD_DELAY": 0.05, "DOWNLOAD_DELAY_JITTER": 0}

    async def start(self) -> Any:
        for n in range(45):
            for name in ("alice", "dave"):
                yield scrapy.Request(f"http://fedi.example/@{name}/posts?n={n}", callback=self.parse,
                                     errback=self.dropped)
            await asyncio.sleep(0.06)

    def parse(self, response: Any) -> Any:
        return []

    def dropped(self, failure: Any) -> None:
        pass


@deferred_f_from_coro_f
async def test_a_withdrawal_in_a_sqlite_store_mid_crawl_is_an_event_and_names_what_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    platforms = load_platforms([str(SETTINGS / "fediverse.yaml")])
    store = f"sqlite:///{tmp_path / 'store.db'}"
    import_records(store, load_authorizations(SETTINGS / "fediverse-authorizations.jsonl", platforms),
                   platforms=platforms)
    written: list[float] = []

    def withdraw() -> None:
        now = datetime.now(timezone.utc)
        import_records(store, [AuthorizationRecord("fediverse", "alice", frozenset({"research"}),
                                                   datetime(2026, 2, 1, tzinfo=timezone.utc), revoked_at=now,
                                                   evidence="withdrawn by e-mail", source="test")],
                       platforms=platforms)
        written.append(time.time())

    settings = consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=[str(SETTINGS / "fediverse.yaml")],
                                CONSENTCRAWL_AUTHORIZATIONS=store, CONSENTCRAWL_PURPOSE="research")
    site = FediverseSite()
    served_alice: list[float] = []

    def app(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.path == "/@alice/posts":
            served_alice.append(request.time)
            if len(served_alice) == WITHDRAW_AFTER:  # mid-crawl, by what the server saw: from another thread
                threading.Thread(target=withdraw).start()
        return site(request, headers)

    with LocalServer(app) as server:
        result = await run_crawl(Repeating, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert written, "the withdrawal was not written during the crawl"
    write = written[0]
    alice = [r.time for r in server.requests if r.path == "/@alice/posts"]
    dave = [r.time for r in server.requests if r.path == "/@dave/posts"]
    timeline = f"write at {write:.3f}; alice: {[round(t - write, 2) for t in alice]}"
    assert any(t < write for t in alice), f"control: alice was fetched before the withdrawal\n{timeline}"
    assert any(t > write + BOUND for t in dave), f"control: the crawl went on\n{timeline}"
    assert not [t for t in alice if t > write + BOUND], timeline

    (seen,) = [e for e in result.events if e["event"] == "withdrawal-seen"]
    assert (seen["platform"], seen["subject"], seen["reason"]) == ("fediverse", "alice", "subject.revoked")
    assert seen["store_version"] != seen["allowed_at_version"]
    seen_at = datetime.fromisoformat(seen["time"]).timestamp()
    assert write <= seen_at <= write + BOUND
    assert not [t for t in alice if t > seen_at], f"fetched after the withdrawal was seen\n{timeline}"

    # the requests it stopped: every deny of alice after it names it; none of them reached the server
    stopped = [e for e in result.audit if e["subject"] == "alice" and e["verdict"] == "deny"]
    assert stopped and all(e.get("because") == seen["event_id"] for e in stopped)
    assert {e["reason"] for e in stopped} == {"subject.revoked"}
    sent = {r.url for r in server.requests}
    assert not {e["url"] for e in stopped if e["phase"] == "request"} & sent
    assert len(stopped) >= 5  # control: a good many requests were waiting for alice when it was seen
    # and dave's denies (none) or allows never name it
    assert not [e for e in result.audit if e["subject"] == "dave" and e.get("because")]
