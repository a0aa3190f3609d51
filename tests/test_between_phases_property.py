"""The send-time decision is the decision a fresh one makes at send time, whatever happened since the request phase.

A property test over random sequences of requests, each decided by the request phase, then changed in any of the
ways the time between the phases allows (the store written: a withdrawal, a new grant; a new robots.txt; a refusal
found on a page; the clock moved, past a grant's expiry too; the request changed by a later downloader middleware:
its URL in place, a ``Host`` header, ``consentcrawl_subject``, a cookie), then decided at send time. Each send-time
decision must equal, in everything but its id, the one a runtime makes that never saw the request before and
remembers nothing (its engine's cache off), with the same store, robots.txt, refusals and clock.

It holds on every revision that decides at send time from scratch, and it is the proof any reuse of the request
phase's decision (or of anything remembered across requests) must pass: a reuse whose validity check leaves out an
input hands out a decision this test tells apart. The fixed cases, one change each: ``tests/test_between_phases.py``.
"""

from __future__ import annotations

import asyncio
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scrapy import Request

import tests.test_between_phases as between
from consentcrawl.audit.log import read_decisions
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.store import MemoryStore
from consentcrawl.decision import Decision
from consentcrawl.meta_keys import META_SUBJECT
from consentcrawl.refusals.book import Refusal
from consentcrawl.runtime import ConsentRuntime

NOW = between.NOW
EXPIRES = between.EXPIRES
#: the clock only moves on: each step is a time a later send can read (the expiry itself, a second before it, after)
TIMES = [NOW, NOW + timedelta(minutes=1), EXPIRES - timedelta(seconds=1), EXPIRES, EXPIRES + timedelta(minutes=1)]
PEOPLE = ["3001", "3002", "3003"]
PATHS = ["/u/3001", "/u/3002", "/u/3003", "/u/3001/", "/people", "/u/3002?id=3001"]
ROBOTS = [b"User-agent: *\nAllow: /\n", b"User-agent: *\nDisallow: /u/\n", b"User-agent: *\nDisallow: /u/3002\n"]


def _record(person: str, *, revoked: Any = None, expires: Any = EXPIRES, granted: Any = None) -> AuthorizationRecord:
    return AuthorizationRecord("microblog", person, frozenset({"research"}),
                               granted_at=granted or NOW - timedelta(days=30), expires_at=expires,
                               revoked_at=revoked, evidence="consent form T-1", source=f"test#{person}")


_change = st.one_of(
    st.tuples(st.just("withdraw"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("grant"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("robots"), st.sampled_from(range(len(ROBOTS)))),
    st.tuples(st.just("refusal"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("clock"), st.integers(1, len(TIMES) - 1)),
    st.tuples(st.just("url"), st.sampled_from(PATHS)),
    st.tuples(st.just("host"), st.sampled_from([b"microblog.example", b"elsewhere.example"])),
    st.tuples(st.just("subject"), st.sampled_from(["microblog:3001", "microblog:3002", "3003"])),
    st.tuples(st.just("cookie"), st.sampled_from([b"id=3002", b"theme=dark"])),
)
#: one request: its path, and the changes between its request phase and its send time
_round = st.tuples(st.sampled_from(PATHS), st.lists(_change, max_size=4))


class _World:
    """The runtime under test and a fresh one, given the same store, robots.txt, refusals and clock."""

    def __init__(self, tested: ConsentRuntime, fresh: ConsentRuntime, store: MemoryStore) -> None:
        self.tested, self.fresh, self.store = tested, fresh, store
        self.time = 0
        fresh.engine.cache.enabled = False  # remembers nothing: every decision made anew

    @property
    def both(self) -> tuple[ConsentRuntime, ConsentRuntime]:
        return self.tested, self.fresh

    def change(self, request: Request, change: tuple[Any, ...]) -> None:
        kind, value = change
        now = TIMES[self.time]
        if kind == "withdraw":
            self.store.add(_record(value, revoked=now))
        elif kind == "grant":
            self.store.add(_record(value, granted=now, expires=EXPIRES + timedelta(days=1)))
        elif kind == "robots":
            for runtime in self.both:
                between._robots(runtime, ROBOTS[value])
        elif kind == "refusal":
            for runtime in self.both:
                runtime.engine.refusals.add(Refusal("microblog", value, f"{between.ORIGIN}/u/{value}", "hashtag.nobot",
                                                    "h-card p-note", "#nobot", frozenset({"research"}), now,
                                                    "e" * 32))
        elif kind == "clock":
            self.time = min(self.time + value, len(TIMES) - 1)
            for runtime in self.both:
                runtime.config.fixed_now = TIMES[self.time]
        elif kind == "url":
            request._set_url(f"{between.ORIGIN}{value}")
        elif kind == "host":
            request.headers[b"Host"] = value
        elif kind == "subject":
            request.meta[META_SUBJECT] = value
        else:
            request.headers[b"Cookie"] = value


def _content(decision: Decision) -> tuple[Any, ...]:
    """A decision but its id: what it says and what it cites."""
    return (decision.verdict, decision.stage, decision.reason, decision.subject, decision.platform,
            decision.evidence, decision.fields, decision.crawl_delay)


async def _rounds(world: _World, rounds: list[tuple[str, list[tuple[Any, ...]]]]) -> list[tuple[Decision, Any]]:
    sent: list[tuple[Decision, Any]] = []
    for path, changes in rounds:
        request = Request(f"{between.ORIGIN}{path}")
        await world.tested.prefilter(request)
        for change in changes:
            world.change(request, change)
        decision = await world.tested.decide_send(request)
        fresh = await world.fresh.decide_send(request)
        assert _content(decision) == _content(fresh), (path, changes, decision.reason, fresh.reason)
        sent.append((decision, TIMES[world.time]))
    return sent


@settings(max_examples=50, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rounds=st.lists(_round, min_size=1, max_size=6))
@example(rounds=[("/u/3001", []), ("/u/3001", [("withdraw", "3001")])])
@example(rounds=[("/u/3001", []), ("/u/3001", [("robots", 1)])])
@example(rounds=[("/u/3001", []), ("/u/3001", [("refusal", "3001")])])
@example(rounds=[("/u/3001", []), ("/u/3001", [("clock", 3)])])
@example(rounds=[("/u/3001", []), ("/u/3001", [("url", "/u/3002")]), ("/u/3002", [("host", b"elsewhere.example")])])
@example(rounds=[("/u/3001", []), ("/u/3001", [("subject", "microblog:3002")]),
                 ("/u/3001", [("cookie", b"id=3002")])])
def test_the_send_time_decision_is_a_fresh_one_whatever_changed_since_the_request_phase(
        tmp_path: Path, rounds: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
    """Each send-time decision equals a fresh runtime's (same store, robots.txt, refusals, clock), and its line is
    in the audit log with the send time's clock."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as one, tempfile.TemporaryDirectory(dir=tmp_path) as two:
        store = MemoryStore([_record("3001"), _record("3002")])
        tested, fresh = between._runtime(Path(one), store), between._runtime(Path(two), store)
        try:  # on a loop of its own (the test runs inside the reactor's): the group commit runs on it
            with ThreadPoolExecutor(1) as thread:
                sent = thread.submit(asyncio.run, _rounds(_World(tested, fresh, store), rounds)).result()
        finally:
            tested.audit.close()
            fresh.audit.close()
        lines = {e["decision_id"]: e for e in read_decisions(Path(one) / "audit.jsonl") if e["phase"] == "request"}
        for decision, time in sent:
            assert lines[decision.decision_id]["time"] == time.isoformat()
