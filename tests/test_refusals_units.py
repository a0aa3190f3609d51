"""The refusal book in the engine: every way to ask is overruled, remembered allows included, for the purposes the
refusal names; the refusal log read by the configuration (so ``consentcrawl check`` decides as a crawl does)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.config import ConsentConfig, build_decider
from consentcrawl.consent.answers import StoreAnswers
from consentcrawl.engine import PolicyEngine
from consentcrawl.refusals.book import Refusal, RefusalBook
from consentcrawl.refusals.purposes import ALL_PURPOSES
from consentcrawl.robots.fetch import from_response
from consentcrawl.signals.evaluate import SiteFiles
from consentcrawl.signals.policy import SignalPolicy
from consentcrawl.signals.purposes import CustomPurpose
from consentcrawl.terms.platforms import PlatformRegistry
from tests.conftest import PLATFORMS
from tests.test_policy import NOW, RECORDS, ROBOTS, make_platform

URL = "http://microblog.example/u/1001"


def refusal(purposes: frozenset[str] = ALL_PURPOSES, subject: str = "1001") -> Refusal:
    return Refusal("microblog", subject, URL, "hashtag.nobot", "h-card p-note", "#nobot", purposes, NOW, "ev1")


def answers(version: int = 1) -> StoreAnswers:
    return StoreAnswers(version, "given", {("microblog", "1001"): tuple(r for r in RECORDS if r.subject == "1001")})


@pytest.mark.parametrize("cache", [True, False], ids=["cached", "uncached"])
def test_every_way_to_ask_is_overruled_once_the_person_refused(cache: bool) -> None:
    book = RefusalBook()
    engine = PolicyEngine(PlatformRegistry({"microblog": make_platform()}), "consentcrawl", cache=cache,
                          refusals=book)
    robots = from_response("http://microblog.example/robots.txt", 200, ROBOTS, NOW)
    files = SiteFiles(robots)
    facts = engine.facts(URL, "research", NOW)

    def all_four() -> list[str]:
        link, _, _ = engine.decide_link(URL, "research", NOW, answers())
        return [engine.decide(facts, robots, answers(), files).reason,
                engine.decide_consent(facts, answers()).reason, link.reason,
                engine.decide_subject("microblog", "1001", "research", NOW, answers()).reason]

    assert all_four() == ["subject.authorized"] * 4  # and remembered, when cached
    book.add(refusal())
    assert all_four() == ["subject.refused-on-page"] * 4  # whatever the record (and the cache) says
    denied = engine.decide(facts, robots, answers(), files)
    assert denied.evidence[-1].kind == "refusal-on-page" and denied.evidence[-1].detail["event"] == "ev1"
    other = engine.facts("http://microblog.example/u/1002", "research", NOW)  # another person: untouched
    assert engine.decide_consent(other, StoreAnswers(1, "given", {("microblog", "1002"): ()})).reason == \
        "subject.no-authorization"


def test_a_link_met_again_is_the_same_deny() -> None:
    book = RefusalBook()
    engine = PolicyEngine(PlatformRegistry({"microblog": make_platform()}), "consentcrawl", refusals=book)
    assert engine.decide_link(URL, "research", NOW, answers())[0].allowed
    book.add(refusal())
    first, _, repeat = engine.decide_link(URL, "research", NOW, answers())
    again, _, repeat_again = engine.decide_link(URL, "research", NOW, answers())
    assert first.reason == "subject.refused-on-page" and not repeat
    assert again is first and repeat_again


def test_a_refusal_denies_only_the_purposes_it_names() -> None:
    book = RefusalBook([refusal(frozenset({"search-indexing", "commercial-profiling"}))])
    engine = PolicyEngine(PlatformRegistry({"microblog": make_platform()}), "consentcrawl", refusals=book,
                          signal_policy=SignalPolicy(custom=(CustomPurpose("price-monitoring",
                                                                           frozenset({"commercial-profiling"})),)))
    assert engine.decide_subject("microblog", "1001", "research", NOW, answers()).reason == "subject.authorized"
    assert engine.refused_purposes("price-monitoring") >= {"commercial-profiling"}
    assert engine.refused_purposes("no-such-purpose") == ALL_PURPOSES  # unknown: every refusal refuses it


@deferred_f_from_coro_f
async def test_the_refusal_log_is_read_by_the_configuration_and_the_check_decides_with_it(tmp_path: Path) -> None:
    log = tmp_path / "refusals.jsonl"
    log.write_text(json.dumps(refusal().__dict__ | {"purposes": ["research"], "seen_at": NOW.isoformat(),
                                                    "event": "ev1"}, default=str) + "\n")
    records = tmp_path / "authorizations.jsonl"
    records.write_text(json.dumps({"platform": "microblog", "subject": "1001", "purposes": ["research"],
                                   "granted_at": (NOW - timedelta(days=30)).isoformat(), "evidence": "f"}) + "\n")
    settings = {"CONSENTCRAWL_PURPOSE": "research", "CONSENTCRAWL_PLATFORMS": str(PLATFORMS),
                "CONSENTCRAWL_AUTHORIZATIONS": str(records), "CONSENTCRAWL_REFUSALS_LOG": str(log)}
    decider = build_decider(ConsentConfig.from_settings(settings))
    facts = decider.engine.facts(URL, "research", NOW)
    assert (await decider.decide_consent(facts)).reason == "subject.refused-on-page"
    settings.pop("CONSENTCRAWL_REFUSALS_LOG")
    decider = build_decider(ConsentConfig.from_settings(settings))
    assert (await decider.decide_consent(facts)).reason == "subject.authorized"  # control


@deferred_f_from_coro_f
async def test_a_record_granted_after_the_refusal_does_not_lift_it(tmp_path: Path) -> None:
    """docs/refusals.md, "A refusal and a newer record": the refusal in the log wins until the operator lifts it."""
    seen = NOW - timedelta(days=10)
    log = tmp_path / "refusals.jsonl"
    log.write_text(json.dumps(refusal().__dict__ | {"purposes": ["research"], "seen_at": seen.isoformat(),
                                                    "event": "ev1"}, default=str) + "\n")
    records = tmp_path / "authorizations.jsonl"
    records.write_text(json.dumps({"platform": "microblog", "subject": "1001", "purposes": ["research"],
                                   "granted_at": (seen + timedelta(days=5)).isoformat(), "evidence": "f"}) + "\n")
    settings = {"CONSENTCRAWL_PURPOSE": "research", "CONSENTCRAWL_PLATFORMS": str(PLATFORMS),
                "CONSENTCRAWL_AUTHORIZATIONS": str(records), "CONSENTCRAWL_REFUSALS_LOG": str(log)}
    decider = build_decider(ConsentConfig.from_settings(settings))
    facts = decider.engine.facts(URL, "research", NOW)
    denied = await decider.decide_consent(facts)
    assert denied.reason == "subject.refused-on-page"
    kinds = [e.kind for e in denied.evidence]
    assert "subject-authorization" in kinds and kinds[-1] == "refusal-on-page"  # the newer record, overruled
    log.write_text("")  # the operator lifts it (the person took it off their page): the record applies
    decider = build_decider(ConsentConfig.from_settings(settings))
    assert (await decider.decide_consent(facts)).reason == "subject.authorized"
