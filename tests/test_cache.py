"""The consent cache (consentcrawl/cache.py) never changes an answer: a cached engine decides exactly what an
engine with the cache off decides, over random sequences of URLs, times, store changes and robots.txt changes.

Both ask the store the way the adapters do (tests/deciding.py): the cache is checked by the store's version alone,
and the store is looked up only when the cache cannot answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentcrawl.checks import default_checks
from consentcrawl.consent.answers import RecordsNeeded, StoreAnswers
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.store import MemoryStore
from consentcrawl.decision import Decision
from consentcrawl.engine import PolicyEngine
from consentcrawl.robots.fetch import from_response, unreachable
from consentcrawl.terms.platforms import PlatformRegistry
from tests.deciding import Engine, run_now
from tests.test_policy import NOW, RECORDS, make_platform, t

SETTINGS = settings(max_examples=150, deadline=None, database=None, stateful_step_count=40,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

PEOPLE = ["1001", "1002", "1003", "1004", "1005", "1007", "1008", "2001", "2002"]
URLS = [*(f"http://microblog.example/u/{p}" for p in PEOPLE),
        "http://m.microblog.example/profile/1001", "http://microblog.example/u/1001/",
        "http://microblog.example/people?page=2", "http://microblog.example/search?q=x",
        "http://microblog.example/private/", "http://other.example/u/1001", "http://127.0.0.1/u/1001",
        "http://microblog.example/u/1001/..%2F1002"]
#: every threshold of the grant and the records, a microsecond either side, and times in between
_THRESHOLDS = [t("2026-01-01"), t("2026-02-01"), t("2026-02-02"), t("2026-03-01"), t("2026-04-01"),
               t("2026-05-01"), t("2026-06-01"), t("2026-10-01"), NOW, t("2026-12-01"), t("2027-01-01")]
TIMES = sorted({x + d for x in _THRESHOLDS for d in (timedelta(0), timedelta(microseconds=-1),
                                                     timedelta(microseconds=1), timedelta(days=3))})
ROBOTS = [b"User-agent: *\nDisallow: /search\nDisallow: /private/\n",
          b"User-agent: *\nDisallow: /u/1001\n", b"User-agent: consentcrawl\nCrawl-delay: 2\nDisallow: /people\n",
          b"User-agent: *\nCrawl-delay: 90\n", None, 404]

times = st.sampled_from(TIMES)
records = st.builds(
    AuthorizationRecord, platform=st.just("microblog"), subject=st.sampled_from(PEOPLE),
    purposes=st.sampled_from([frozenset({"research"}), frozenset({"ai-training"}),
                              frozenset({"research", "archiving"})]),
    granted_at=times, expires_at=st.none() | times, revoked_at=st.none() | times,
    evidence=st.sampled_from(["form", "form, renewed"]), source=st.just("added"),
    fields=st.none() | st.just(frozenset({"name"})))
actions = st.one_of(
    st.tuples(st.just("decide"), st.sampled_from(URLS), times, st.sampled_from([None, "microblog:1001", "1003"])),
    st.tuples(st.just("consent"), st.sampled_from(URLS), times, st.sampled_from([None, "microblog:1002"])),
    st.tuples(st.just("link"), st.sampled_from(URLS), times),
    st.tuples(st.just("scheduled"), st.sampled_from(URLS), times),
    st.tuples(st.just("item"), st.sampled_from(PEOPLE), times),
    st.tuples(st.just("add"), records),
    st.tuples(st.just("robots"), st.integers(0, len(ROBOTS) - 1), times),
)


class InPlaceStore:
    """A store fed by a change stream that updates its answers in place and has no version: nothing decided on its
    records may be reused (the adapter gives it a version that changes every time it is read)."""

    source = "in-place"

    def __init__(self, records: Sequence[AuthorizationRecord]) -> None:
        self.records: dict[tuple[str, str], list[AuthorizationRecord]] = {}
        for record in records:
            self.add(record)

    def lookup(self, platform: str, subject: str) -> list[AuthorizationRecord]:
        return self.records.setdefault((platform, subject), [])

    def add(self, record: AuthorizationRecord) -> None:
        self.records.setdefault((record.platform, record.subject), []).append(record)


class VersionedInPlaceStore(InPlaceStore):
    """The same, saying so with a version: a decision is reused while the version stands, and the list it was made
    on changing in place afterwards must not change it (the adapter copies every answer)."""

    source = "in-place-versioned"
    version = 0

    def add(self, record: AuthorizationRecord) -> None:
        super().add(record)
        self.version += 1


class AsyncStore:
    """A store of the asynchronous protocol (its lookup never waits here, so no event loop is needed)."""

    source = "async"

    def __init__(self, records: Sequence[AuthorizationRecord]) -> None:
        self.memory = MemoryStore(records)

    @property
    def version(self) -> int:
        return self.memory.version

    async def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        return self.memory.lookup(platform, subject)

    def add(self, record: AuthorizationRecord) -> None:
        self.memory.add(record)


STORES = {"memory": MemoryStore, "in-place": InPlaceStore, "in-place-versioned": VersionedInPlaceStore,
          "async": AsyncStore}


def _robots(index: int, now: datetime) -> Any:
    url = "http://microblog.example/robots.txt"
    body = ROBOTS[index]
    if body is None:
        return unreachable(url, now, "HTTP 503", http_status=503)
    if body == 404:
        return from_response(url, 404, b"", now)
    return from_response(url, 200, body, now)


def _fields(decision: Decision) -> dict[str, Any]:
    values = {f.name: getattr(decision, f.name) for f in fields(decision) if f.name != "decision_id"}
    values["evidence"] = [e.to_dict() for e in decision.evidence]
    return values


def _checks(order: str) -> list[Any]:
    """The built-ins; or with robots.txt checked after the platform's terms (a site check amid consent checks,
    whose full decision puts the remembered consent part and the site check's evidence in list order)."""
    checks = default_checks()
    if order == "robots-after-terms":
        checks.insert(3, checks.pop(0))
    return checks


@SETTINGS
@given(st.sampled_from(sorted(STORES)), st.sampled_from(["default", "robots-after-terms"]),
       st.lists(actions, min_size=1, max_size=60))
def test_a_cached_engine_decides_what_an_uncached_one_decides(kind: str, order: str,
                                                              steps: list[tuple[Any, ...]]) -> None:
    registry = PlatformRegistry({"microblog": make_platform(valid_until=t("2026-12-01"))})
    store: Any = STORES[kind](RECORDS)
    cached = Engine(registry, store, "consentcrawl", max_crawl_delay=30.0, checks=_checks(order))
    uncached = Engine(registry, store, "consentcrawl", max_crawl_delay=30.0, checks=_checks(order),
                            cache=False)
    robots = _robots(0, NOW)
    handed_out: dict[str, Decision] = {}
    for step in steps:
        action = step[0]
        if action == "add":
            store.add(step[1])
        elif action == "robots":
            robots = _robots(step[1], step[2])  # a refetch: a new file object, even with the same text
        elif action == "decide":
            _, url, now, subject = step
            mine = cached.decide(cached.facts(url, "research", now, subject), robots)
            assert _fields(mine) == _fields(uncached.decide(uncached.facts(url, "research", now, subject), robots))
        elif action == "consent":
            _, url, now, subject = step
            mine = cached.decide_consent(cached.facts(url, "research", now, subject))
            theirs = uncached.decide_consent(uncached.facts(url, "research", now, subject))
            assert _fields(mine) == _fields(theirs)
        elif action == "link":
            _, url, now = step
            mine, canonical, repeat = cached.decide_link(url, "research", now)
            theirs, canonical_theirs, repeat_theirs = uncached.decide_link(url, "research", now)
            assert _fields(mine) == _fields(theirs) and canonical == canonical_theirs and not repeat_theirs
            if repeat:  # a repeat is the very decision handed out last time for this URL
                assert mine is handed_out[url]
            handed_out[url] = mine
        elif action == "scheduled":  # as scheduling.py asks: its own question, around the engine's link check
            _, url, now = step
            mine, canonical, repeat = _scheduled(cached, url, now)
            theirs, canonical_theirs, repeat_theirs = _scheduled(uncached, url, now)
            assert _fields(mine) == _fields(theirs) and canonical == canonical_theirs and not repeat_theirs
            if repeat:
                assert mine is handed_out[url]
            handed_out[url] = mine
        else:
            _, person, now = step
            mine = cached.decide_subject("microblog", person, "research", now)
            assert _fields(mine) == _fields(uncached.decide_subject("microblog", person, "research", now))


def _scheduled(engine: Engine, url: str, now: datetime) -> tuple[Decision, str, bool]:
    """The link check asked the way the scheduling adapter asks it: a question of the adapter's own, which the
    decider knows nothing of, asked again from the start after a lookup."""
    return run_now(engine.decider.run(lambda answers: engine.engine.decide_link(url, "research", now, answers)))


def _counting(engine: Engine) -> dict[str, int]:
    """How often ``engine`` makes facts and runs each check, and how often its store is looked up."""
    counts: dict[str, int] = {"facts": 0, "lookups": 0}
    reader = engine.engine._reader
    make = reader.facts

    def facts(*args: Any, **kwargs: Any) -> Any:
        counts["facts"] += 1
        return make(*args, **kwargs)

    reader.facts = facts  # type: ignore[method-assign]
    for check in engine.engine.checks:
        name, run = type(check).__name__, check.check
        counts[name] = 0

        def counted(ctx: Any, name: str = name, run: Any = run) -> Any:
            counts[name] += 1
            return run(ctx)

        check.check = counted
    lookup = engine.store.lookup

    def looked_up(platform: str, subject: str) -> Any:
        counts["lookups"] += 1
        return lookup(platform, subject)

    engine.store.lookup = looked_up
    cache = engine.engine.cache
    for name in ("recall", "recall_link"):
        counts[name] = 0
        ask = getattr(cache, name)

        def asked(*args: Any, name: str = name, ask: Any = ask) -> Any:
            counts[name] += 1
            return ask(*args)

        setattr(cache, name, asked)
    return counts


def test_a_new_links_facts_are_made_and_its_checks_run_once() -> None:
    """A link to a person not looked up yet: the engine finds the records missing before any check runs, and the
    facts and consent key it made come back with the records, so the facts are made once, the consent memo is
    asked once, each check runs once, the store is asked once, asked through the decider's own link
    check or through an adapter's question of its own."""
    registry = PlatformRegistry({"microblog": make_platform()})
    for ask in (lambda e, url: e.decide_link(url, "research", NOW), lambda e, url: _scheduled(e, url, NOW)):
        engine = Engine(registry, MemoryStore(RECORDS), "consentcrawl")
        counts = _counting(engine)
        decision, canonical, repeat = ask(engine, "http://microblog.example/u/1001")
        assert decision.allowed and canonical == "http://microblog.example/u/1001" and not repeat
        assert counts["facts"] == 1 and counts["lookups"] == 1
        # the link memo before each ask (a decision remembered while the lookup was awaited is a repeat), the
        # consent memo once
        assert counts["recall_link"] == 2 and counts["recall"] == 1
        assert counts["SubjectRecordsCheck"] == 1 and counts["PlatformTermsCheck"] == 1
        assert "RobotsCheck" in counts and counts["RobotsCheck"] == 0  # a link check runs no site check
        # another URL of the same person, at the same version: the remembered answer, no lookup
        assert ask(engine, "http://m.microblog.example/profile/1001")[0].allowed
        assert counts["facts"] == 2 and counts["lookups"] == 1 and counts["SubjectRecordsCheck"] == 2


def test_facts_carried_over_are_used_only_for_the_question_that_made_them() -> None:
    """The facts a link check carries to its next ask belong to one URL, purpose, time and engine: asked anything
    else with them, the engine makes the facts of what it is asked."""
    registry = PlatformRegistry({"microblog": make_platform()})
    engine, other = (PolicyEngine(registry, "consentcrawl", cache=False) for _ in range(2))
    url = "http://microblog.example/u/1001"
    with pytest.raises(RecordsNeeded) as need:
        engine.decide_link(url, "research", NOW, StoreAnswers(1, "given"))
    mine = tuple(r for r in RECORDS if r.subject == "1001")
    answers = StoreAnswers(1, "given", {("microblog", "1001"): mine}, carried=need.value.carried)
    made: list[tuple[PolicyEngine, str, datetime]] = []
    for each in (engine, other):
        make = each._reader.facts

        def facts(url: str, purpose: str, now: datetime, *args: Any, make: Any = make, each: Any = each,
                  **kwargs: Any) -> Any:
            made.append((each, url, now))
            return make(url, purpose, now, *args, **kwargs)

        each._reader.facts = facts  # type: ignore[method-assign]
    assert engine.decide_link(url, "research", NOW, answers)[0].allowed and made == []
    later = NOW + timedelta(microseconds=1)
    assert engine.decide_link(url, "research", later, answers)[0].allowed and made == [(engine, url, later)]
    mobile = "http://m.microblog.example/profile/1001"
    assert engine.decide_link(mobile, "research", NOW, answers)[1] == mobile and made[-1] == (engine, mobile, NOW)
    assert engine.decide_link(url, "ai-training", NOW, answers)[0].reason == "terms.purpose"
    assert made[-1] == (engine, url, NOW)
    assert other.decide_link(url, "research", NOW, answers)[0].allowed and made[-1] == (other, url, NOW)
    elsewhere = NOW.astimezone(timezone(timedelta(hours=1)))  # the same instant, written in another zone
    assert engine.decide_link(url, "research", elsewhere, answers)[0].allowed and made[-1][2] is elsewhere
    assert len(made) == 5


def test_the_cache_is_used() -> None:
    """The property above would also hold for a cache that never hits: it does hit, and the uncached engine
    does not."""
    registry = PlatformRegistry({"microblog": make_platform()})
    store = MemoryStore(RECORDS)
    cached = Engine(registry, store, "consentcrawl")
    uncached = Engine(registry, store, "consentcrawl", cache=False)
    for engine, repeats in ((cached, True), (uncached, False)):
        engine.decide_link("http://microblog.example/u/1001", "research", NOW)
        assert engine.decide_link("http://microblog.example/u/1001", "research", NOW)[2] is repeats
    assert len(cached.cache.links) == 1 and len(cached.cache.decisions) == 1 and len(cached.cache.people) == 1
    assert len(uncached.cache.links) == len(uncached.cache.decisions) == len(uncached.cache.people) == 0


def test_a_remembered_decision_is_checked_by_the_version_alone() -> None:
    """The link check, the pre-filter, the send-time decision and the item guard of one person ask the store once
    while its version stands; a new version makes the next decision look the person up again."""
    calls: list[str] = []

    class Counting(MemoryStore):
        def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
            calls.append(subject)
            return super().lookup(platform, subject)

    registry = PlatformRegistry({"microblog": make_platform()})
    store = Counting(RECORDS)
    engine = Engine(registry, store, "consentcrawl")
    url, robots = "http://microblog.example/u/1001", _robots(0, NOW)
    engine.decide_link(url, "research", NOW)
    for _ in range(3):
        assert engine.decide_consent(engine.facts(url, "research", NOW)).allowed
        assert engine.decide(engine.facts(url, "research", NOW), robots).allowed
        assert engine.decide_subject("microblog", "1001", "research", NOW).allowed
    assert calls == ["1001"]
    store.add(AuthorizationRecord("microblog", "1001", frozenset({"research"}), granted_at=t("2026-02-01"),
                                  revoked_at=t("2026-06-01"), evidence="withdrawn", source="added"))
    assert engine.decide(engine.facts(url, "research", NOW), robots).reason == "subject.revoked"
    assert calls == ["1001", "1001"]


class _Watched(MemoryStore):
    """A memory store that counts how often its version is read, and can change while a lookup is under way."""

    def __init__(self, records: Sequence[AuthorizationRecord]) -> None:
        super().__init__(records)
        self.reads = 0
        self.change_in_lookup: AuthorizationRecord | None = None

    @property
    def version(self) -> int:
        self.reads += 1
        return self._version

    def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        answer = super().lookup(platform, subject)
        if self.change_in_lookup is not None:  # a withdrawal lands between the read and the version after it
            self.add(self.change_in_lookup)
            self.change_in_lookup = None
        return answer


def test_a_new_links_decision_reads_the_store_version_before_and_after_its_lookup_only() -> None:
    """The version the decider reads before asking is the read before the lookup (nothing is awaited between
    them): a new person's decision reads it twice, a remembered one once."""
    registry = PlatformRegistry({"microblog": make_platform()})
    store = _Watched(RECORDS)
    engine = Engine(registry, store, "consentcrawl")
    assert engine.decide_link("http://microblog.example/u/1001", "research", NOW)[0].allowed
    assert store.reads == 2
    assert engine.decide_link("http://microblog.example/u/1001", "research", NOW)[2]  # a repeat
    assert store.reads == 3


def test_a_store_that_changes_during_the_lookup_leaves_nothing_remembered() -> None:
    """A change between the version read before the lookup and the one after: the decision is made on the answer,
    remembered under no version, and the next decision looks the person up again and sees the change."""
    registry = PlatformRegistry({"microblog": make_platform()})
    store = _Watched(RECORDS)
    engine = Engine(registry, store, "consentcrawl")
    counts = _counting(engine)
    store.change_in_lookup = AuthorizationRecord("microblog", "1001", frozenset({"research"}),
                                                 granted_at=t("2026-02-01"), revoked_at=t("2026-06-01"),
                                                 evidence="withdrawn", source="added")
    url = "http://microblog.example/u/1001"
    first, _, _ = engine.decide_link(url, "research", NOW)
    assert first.allowed and counts["lookups"] == 1  # the answer given before the withdrawal landed
    second, _, repeat = engine.decide_link(url, "research", NOW)
    assert not repeat and second.reason == "subject.revoked" and counts["lookups"] == 2
    assert engine.decide_link(url, "research", NOW)[2] and counts["lookups"] == 2  # now steady: remembered
