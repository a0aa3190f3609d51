"""The fast paths and caches of the decision path give exactly what the plain code gives.

Every shortcut taken for speed (benchmarks/RESULTS.md) is checked here against the code it short-cuts: the URL
fast path against the general parser, a remembered decision against a fresh engine's, an audit line against
``json.dumps`` of its entry.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentcrawl import cache, urls
from consentcrawl.audit.chain import line_hash
from consentcrawl.audit.log import AuditLog, audit_entry
from consentcrawl.checks.subject import SubjectRecordsCheck
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.store import MemoryStore
from consentcrawl.decision import Decision, Evidence, Stage, Verdict, new_decision_id
from consentcrawl.errors import StoreUnavailable
from consentcrawl.robots.fetch import from_response
from consentcrawl.terms.platforms import PlatformRegistry
from tests.deciding import Engine
from tests.test_policy import NOW, RECORDS, ROBOTS, make_platform, t

SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


# -- canonicalize: the fast path ---------------------------------------------------------------------------------


def _outcome(function: Any, url: str) -> Any:
    try:
        return function(url)
    except ValueError as exc:
        return ("ValueError", str(exc))


_PIECES = st.sampled_from(["a", "Z", "0", "-", ".", "_", "~", "%", "%41", "%2f", "%2e", "/", "//", "/.", "/..",
                           "?", "#", "@", ":", ";", "=", "&", "+", "!", "*", "'", "(", ",", "$", "\\", " ", "\t",
                           "é", "[", "]", "|", "^", "`", "{", "\x00", "\x7f", "u", "1001"])


@st.composite
def url_strings(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "ftp", "http"]))
    host = draw(st.sampled_from(["microblog.example", "M.Microblog.Example", "127.0.0.1", "0x7f.1", "a..b", "-",
                                 "xn--bcher-kva.example", "bücher.example", "[::1]", "", "host."]))
    port = draw(st.sampled_from(["", "", ":80", ":443", ":0", ":65535", ":65536", ":123456", ":", ":8a"]))
    path = "".join(draw(st.lists(_PIECES, max_size=8)))
    if path and not path.startswith(("/", "?", "#")):
        path = "/" + path
    return f"{scheme}://{host}{port}{path}"


@SETTINGS
@given(url_strings())
def test_the_url_fast_path_gives_what_the_general_parser_gives(url: str) -> None:
    assert _outcome(urls.canonicalize, url) == _outcome(urls._canonicalize, url)


@pytest.mark.parametrize("url", [
    "http://microblog.example/u/1001", "http://microblog.example", "http://microblog.example?x=1",
    "https://www.microblog.example:8443/u/1001?a=1&b=%7e#top", "http://microblog.example/u/1001/",
    "http://microblog.example/.well-known/x", "http://microblog.example//u/1001", "http://MICROBLOG.example/u/1",
    "http://127.1/u/1", "http://microblog.example:99999/", "http://microblog.example/u/1#a b",
])
def test_the_url_fast_path_on_examples(url: str) -> None:
    assert _outcome(urls.canonicalize, url) == _outcome(urls._canonicalize, url)


# -- remembered decisions --------------------------------------------------------------------------------------------


class ChangingStore:
    """A store whose records can change between decisions, handing out new objects and a new version when they
    do."""

    def __init__(self, records: list[AuthorizationRecord]) -> None:
        self.store = MemoryStore(records)

    @property
    def version(self) -> Any:
        return self.store.version

    def lookup(self, platform: str, subject: str) -> Any:
        return self.store.lookup(platform, subject)

    def replace(self, records: list[AuthorizationRecord]) -> None:
        self.store = MemoryStore(records)


def _fields(decision: Decision) -> dict[str, Any]:
    values = {f.name: getattr(decision, f.name) for f in fields(decision) if f.name != "decision_id"}
    values["evidence"] = [e.to_dict() for e in decision.evidence]
    return values


def _all_stages(engine: Engine, facts: Any, robots: Any) -> Decision:
    """The full decision straight from the checks, with nothing remembered or reused (the cache off)."""
    uncached = Engine(engine.platforms, engine.store, engine.token, cache=False)
    return uncached.decide(facts, robots)


def test_a_remembered_decision_is_the_decision_a_fresh_engine_makes() -> None:
    """Across time thresholds, robots.txt refetches and store changes, reuse never changes an answer."""
    registry = PlatformRegistry({"microblog": make_platform(valid_until=t("2026-12-01"))})
    store = ChangingStore(list(RECORDS))
    engine = Engine(registry, store, "consentcrawl")
    robots = [from_response("http://microblog.example/robots.txt", 200, ROBOTS, NOW),
              from_response("http://microblog.example/robots.txt", 200, b"User-agent: *\nDisallow: /u/1001\n", NOW)]
    urls_ = [f"http://microblog.example/u/{n}" for n in range(1001, 1012)] + [
        "http://microblog.example/people", "http://microblog.example/search?q=x", "http://other.example/u/1",
        "http://microblog.example/u/1001/", "http://m.microblog.example/profile/1003"]
    times = [t("2026-01-15"), t("2026-02-01"), t("2026-03-01"), t("2026-05-31"), t("2026-06-01"), NOW,
             t("2026-12-01") - timedelta(microseconds=1), t("2026-12-01"), t("2027-01-01")]
    checked = 0
    for step in range(3):
        if step == 2:  # a withdrawal arrives: the store now answers with other objects
            store.replace([*RECORDS, AuthorizationRecord("microblog", "1001", frozenset({"research"}),
                                                         t("2026-02-01"), revoked_at=t("2026-11-01"),
                                                         evidence="withdrawn", source="new:1")])
        for now in times:
            for file in robots:
                for url in urls_:
                    for subject in (None, "microblog:1001"):
                        facts = engine.facts(url, "research", now, subject)
                        fresh = Engine(registry, store, "consentcrawl")
                        fresh_facts = fresh.facts(url, "research", now, subject)
                        reference = _all_stages(fresh, fresh_facts, file)
                        for _ in range(2):  # the second time comes from memory
                            assert _fields(engine.decide(facts, file)) == _fields(reference)
                            assert _fields(engine.decide_consent(facts)) == _fields(fresh.decide_consent(fresh_facts))
                            checked += 1
    assert checked > 1000


def test_link_and_item_decisions_from_memory_are_what_a_fresh_engine_decides() -> None:
    """decide_link (by URL string) and decide_subject (by person), across time thresholds and store changes."""
    registry = PlatformRegistry({"microblog": make_platform(valid_until=t("2026-12-01"))})
    store = ChangingStore(list(RECORDS))
    engine = Engine(registry, store, "consentcrawl")
    urls_ = [f"http://microblog.example/u/{n}" for n in range(1001, 1012)] + [
        "http://microblog.example/people", "http://other.example/u/1", "http://M.microblog.example/u/1001/"]
    times = [t("2026-01-15"), t("2026-02-01"), t("2026-03-01"), t("2026-05-31"), t("2026-06-01"), NOW,
             t("2026-12-01") - timedelta(microseconds=1), t("2026-12-01"), t("2027-01-01")]
    checked = repeats = links = 0
    last: dict[str, Decision] = {}
    for step in range(3):
        if step == 2:
            store.replace([*RECORDS, AuthorizationRecord("microblog", "1001", frozenset({"research"}),
                                                         t("2026-02-01"), revoked_at=t("2026-11-01"),
                                                         evidence="withdrawn", source="new:1")])
        for now in times:
            for url in urls_:
                fresh = Engine(registry, store, "consentcrawl")
                expected = fresh.decide_consent(fresh.facts(url, "research", now))
                for _ in range(2):
                    decision, canonical, repeat = engine.decide_link(url, "research", now)
                    assert _fields(decision) == _fields(expected) and canonical == expected_canonical(url)
                    if repeat:  # a repeat is the very decision handed out last time for this URL
                        assert decision is last[url]
                        repeats += 1
                    last[url] = decision
                    checked += 1
                    links += 1
            for subject in ("1001", "1002", "1003", "1004", "9999"):
                fresh = Engine(registry, store, "consentcrawl")
                for _ in range(2):
                    mine = engine.decide_subject("microblog", subject, "research", now)
                    assert _fields(mine) == _fields(fresh.decide_subject("microblog", subject, "research", now))
                    checked += 1
    # the second ask is a repeat, and so is a later time in the same span; a threshold or a change is not
    assert checked > 500 and links // 2 <= repeats < links


def test_the_item_decision_of_a_person_whose_profile_link_was_decided_is_that_decision(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The link check of a profile decided the person; the item guard reuses it (a new id), and a store change
    still makes it decide again (thresholds passing: the test above, which now reuses link decisions too)."""
    registry = PlatformRegistry({"microblog": make_platform()})
    store = ChangingStore(list(RECORDS))
    engine = Engine(registry, store, "consentcrawl")
    made: list[str] = []
    records_check = next(c for c in engine.checks if isinstance(c, SubjectRecordsCheck))
    check = records_check.check

    def counting(ctx: Any) -> Any:
        made.append(ctx.subject)
        return check(ctx)

    monkeypatch.setattr(records_check, "check", counting)
    for subject in ("1001", "1002", "1003", "9999"):
        link, _, _ = engine.decide_link(f"http://microblog.example/u/{subject}", "research", NOW)
        item = engine.decide_subject("microblog", subject, "research", NOW)
        fresh = Engine(registry, store, "consentcrawl").decide_subject("microblog", subject, "research", NOW)
        assert _fields(item) == _fields(fresh) == _fields(link) and item.decision_id != link.decision_id
    assert made == ["1001", "1002", "1003", "9999"]  # one decision per person, not two
    store.replace([*RECORDS, AuthorizationRecord("microblog", "1001", frozenset({"research"}), t("2026-02-01"),
                                                 revoked_at=t("2026-11-01"), evidence="withdrawn", source="new:1")])
    item = engine.decide_subject("microblog", "1001", "research", NOW)
    assert item.reason == "subject.revoked" and made[-1] == "1001" and len(made) == 5


def expected_canonical(url: str) -> str:
    return urls.canonicalize(url).url


def test_remembered_decisions_get_new_ids_and_do_not_ask_the_store_again() -> None:
    registry = PlatformRegistry({"microblog": make_platform()})
    calls: list[str] = []

    class Counting(ChangingStore):
        def lookup(self, platform: str, subject: str) -> Any:
            calls.append(subject)
            return super().lookup(platform, subject)

    engine = Engine(registry, Counting(list(RECORDS)), "consentcrawl")
    facts = engine.facts("http://microblog.example/u/1001", "research", NOW)
    first, second = engine.decide_consent(facts), engine.decide_consent(facts)
    assert first.decision_id != second.decision_id and _fields(first) == _fields(second)
    assert calls == ["1001"]  # the version is unchanged: equal answers are promised, so none is asked for
    # a new version (a change, or a failure) makes the next decision look the person up again
    engine.store.replace(list(RECORDS))
    assert _fields(engine.decide_consent(facts)) == _fields(first) and calls == ["1001", "1001"]


def test_a_renewed_decision_is_the_same_decision_with_a_new_id() -> None:
    """A remembered decision handed out again is the same decision with an id of its own."""
    evidence = (Evidence("robots.txt", "http://microblog.example/robots.txt", {"path": "/u/1"}),)
    original = Decision(Verdict.ALLOW, Stage.SUBJECT, "subject.authorized", subject="1", platform="microblog",
                        evidence=evidence, fields=frozenset({"name"}), crawl_delay=2.5)
    renewed = cache.renew(original)
    assert renewed == replace(original, decision_id=renewed.decision_id) and renewed.decision_id != original.decision_id
    assert renewed.evidence is original.evidence


def test_a_records_evidence_is_built_once_and_cited_by_every_decision_about_the_person() -> None:
    registry = PlatformRegistry({"microblog": make_platform()})
    store = ChangingStore(list(RECORDS))
    engine = Engine(registry, store, "consentcrawl")
    link, _, _ = engine.decide_link("http://microblog.example/u/1001", "research", NOW)
    item = engine.decide_subject("microblog", "1001", "research", NOW)
    full = engine.decide(engine.facts("http://microblog.example/u/1001/", "research", NOW),
                         from_response("http://microblog.example/robots.txt", 200, ROBOTS, NOW))
    cited = [next(e for e in d.evidence if e.kind == "subject-authorization") for d in (link, item, full)]
    assert cited[0] is cited[1] is cited[2]
    assert cited[0].detail["purposes"] == ("research",)  # a tuple: the GC stops tracking it, a list it never does
    # the store reloaded with equal records (same fields, source line included): the same evidence stands
    store.replace([replace(r) for r in RECORDS])
    again = engine.decide_subject("microblog", "1001", "research", NOW)
    rebuilt = next(e for e in again.evidence if e.kind == "subject-authorization")
    assert rebuilt == cited[0]
    # and a changed record is decided from the new record
    store.replace([replace(r, evidence="form 1, renewed") if r.subject == "1001" else r for r in RECORDS])
    renewed = engine.decide_subject("microblog", "1001", "research", NOW)
    assert next(e for e in renewed.evidence if e.kind == "subject-authorization").detail["evidence"] == \
        "form 1, renewed"


def test_a_store_that_fails_after_the_link_check_denies_the_fetch_with_its_cause() -> None:
    """The full decision reuses the link check's consent part while the store's version stands; a store that fails
    changes its version, so the fetch asks it again and denies with the cause."""
    registry = PlatformRegistry({"microblog": make_platform()})

    class Failing(ChangingStore):
        error: Exception | None = None

        @property
        def version(self) -> Any:
            return (self.store.version, repr(self.error))

        def lookup(self, platform: str, subject: str) -> Any:
            if self.error is not None:
                raise self.error
            return super().lookup(platform, subject)

    store = Failing(list(RECORDS))
    engine = Engine(registry, store, "consentcrawl")
    robots = from_response("http://microblog.example/robots.txt", 200, ROBOTS, NOW)
    url = "http://microblog.example/u/1001"
    assert engine.decide_link(url, "research", NOW)[0].allowed
    for error in (StoreUnavailable("gone"), RuntimeError("bug")):
        store.error = error
        decision = engine.decide(engine.facts(url, "research", NOW), robots)
        assert (decision.verdict, decision.stage, decision.reason) == (
            Verdict.DENY, Stage.ERROR, "error.store-unavailable")
        assert decision.evidence[-1].detail["error"] == "StoreUnavailable"
        assert str(error) in decision.evidence[-1].detail["message"]
    store.error = None
    assert engine.decide(engine.facts(url, "research", NOW), robots).allowed


def test_a_failure_seen_by_any_lookup_makes_every_remembered_decision_stale() -> None:
    """A store that fails without changing its version: the adapter changes the version it reports as soon as a
    lookup fails, so no decision remembered from before the failure is reused."""
    registry = PlatformRegistry({"microblog": make_platform()})

    class Silent(ChangingStore):
        error: Exception | None = None

        def lookup(self, platform: str, subject: str) -> Any:
            if self.error is not None:
                raise self.error
            return super().lookup(platform, subject)

    store = Silent(list(RECORDS))
    engine = Engine(registry, store, "consentcrawl")
    assert engine.decide_link("http://microblog.example/u/1001", "research", NOW)[0].allowed
    store.error = StoreUnavailable("gone")
    assert engine.decide_link("http://microblog.example/u/1001", "research", NOW)[2]  # the version stood: reused
    assert engine.decide_subject("microblog", "1004", "research", NOW).reason == "error.store-unavailable"
    decision, _, repeat = engine.decide_link("http://microblog.example/u/1001", "research", NOW)
    assert not repeat and decision.reason == "error.store-unavailable"


def test_decision_ids_are_unique_uuid4_hex() -> None:
    ids = {new_decision_id() for _ in range(2000)}
    assert len(ids) == 2000
    for value in ids:  # the audit log's ``decision_id`` is documented as a version-4 UUID
        parsed = uuid.UUID(value)
        assert len(value) == 32 and parsed.variant == uuid.RFC_4122 and parsed.version == 4 and parsed.hex == value
    # the 122 bits that are not the version and the variant are random: every hex digit takes many values
    assert all(len({value[i] for value in ids}) > 8 for i in range(32) if i not in (12, 16))


# -- the audit line --------------------------------------------------------------------------------------------------


def test_an_audit_line_is_json_dumps_of_its_entry(tmp_path: Path) -> None:
    registry = PlatformRegistry({"microblog": make_platform()})
    engine = Engine(registry, MemoryStore(RECORDS), "consentcrawl")
    file = from_response("http://microblog.example/robots.txt", 200, ROBOTS, NOW)
    log = AuditLog(tmp_path / "audit.jsonl")
    entries = []
    for url in ["http://microblog.example/u/1001", "http://microblog.example/u/1003", "http://microblog.example/u/\"x",
                "http://microblog.example/search?q=é", "http://other.example/"]:
        facts = engine.facts(url, "research", NOW)
        for decision in (engine.decide(facts, file), engine.decide_consent(facts), engine.decide_consent(facts)):
            for extra in (None, {"note": "x"}, {"verdict": "replaced"}, {"evidence": []}):
                when = datetime(2026, 11, 27, 12, 0, 0, 5, tzinfo=NOW.tzinfo)
                log.record(decision, time=when, phase="request", url=url, canonical_url=facts.canonical.url,
                           purpose="research", extra=extra, durable=len(entries) % 3 == 0)
                entries.append(audit_entry(decision, time=when, phase="request", url=url,
                                           canonical_url=facts.canonical.url, purpose="research", extra=extra))
    log.close()
    lines = (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    assert [json.loads(line)["event"] for line in (lines[0], lines[-1])] == ["chain-start", "chain-end"]
    # each decision line: its entry, then its seq and the hash of the line before it (the hash chain)
    assert lines[1:-1] == [json.dumps({**e, "seq": n, "prev": line_hash(lines[n - 2].encode())}, ensure_ascii=False,
                                      separators=(",", ":"), default=str) + "\n"
                           for n, e in enumerate(entries, 2)]
