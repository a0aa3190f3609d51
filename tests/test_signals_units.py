"""The pieces of consentcrawl.signals the conformance table does not reach directly."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from consentcrawl import reasons
from consentcrawl.robots.fetch import from_response as robots_response
from consentcrawl.robots.rules import RobotsRules
from consentcrawl.signals import (
    CustomPurpose,
    Level,
    PlatformGrant,
    SignalFileStatus,
    SignalVerdict,
    base_purposes,
    combine,
    deny_reason,
)
from consentcrawl.signals.combine import SIGNAL_REASONS
from consentcrawl.signals.content_usage import parse_content_usage
from consentcrawl.signals.fetch import MAX_TTL, from_response, unavailable
from consentcrawl.signals.purposes import BASE_PURPOSES, CONSERVATIVE_DEFAULTS, VOCABULARY
from consentcrawl.signals.rsl import parse_rsl
from consentcrawl.signals.tdmrep import site_tdmrep

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def test_signal_file_fetches_are_classified_like_robots_txt() -> None:
    ok = from_response("tdmrep", "https://s.example/.well-known/tdmrep.json", 200, b"[]", NOW)
    assert ok.status is SignalFileStatus.OK and ok.body == b"[]"
    assert from_response("tdmrep", "u", 404, b"<html>", NOW).status is SignalFileStatus.ABSENT
    assert from_response("tdmrep", "u", 410, b"", NOW).body == b""  # an error page is never a statement
    for status in (500, 503, 302, 101):
        assert from_response("tdmrep", "u", status, b"[]", NOW).status is SignalFileStatus.UNAVAILABLE
    down = unavailable("tdmrep", "u", NOW, "TimeoutError")
    assert down.status is SignalFileStatus.UNAVAILABLE and down.evidence()["cause"] == "TimeoutError"


def test_a_signal_file_is_fresh_for_at_most_24_hours() -> None:
    f = from_response("ai-txt", "u", 200, b"", NOW)
    assert f.fresh(NOW + timedelta(hours=23))
    assert not f.fresh(NOW + MAX_TTL)
    assert not f.fresh(NOW + timedelta(hours=30), ttl=timedelta(days=7))  # a longer TTL is capped
    assert not f.fresh(NOW - timedelta(seconds=1))


def test_every_code_combining_can_give_is_published() -> None:
    for site, response, missing in SIGNAL_REASONS.values():
        for code in (site, response, missing):
            assert code is None or code in reasons.ALL
    assert reasons.TERMS_DEFAULT_DENY in reasons.ALL
    assert not {c for c in reasons.ALL if "signal" in c or "default" in c} & reasons.ALLOWS
    assert deny_reason("tdmrep", Level.RESPONSE) == "response.signal.tdmrep"
    assert deny_reason("rsl", Level.RESPONSE, unavailable=True) == "terms.signal-unavailable.rsl"
    with pytest.raises(ValueError):
        deny_reason("ai-txt", Level.RESPONSE)


def test_the_vocabulary_names_only_our_purposes_and_defaults_cover_them_all() -> None:
    for labels in VOCABULARY.values():
        for purposes in labels.values():
            assert purposes and purposes <= BASE_PURPOSES
    assert set(CONSERVATIVE_DEFAULTS) == BASE_PURPOSES
    assert [p for p, allowed in CONSERVATIVE_DEFAULTS.items() if allowed] == \
        ["search-indexing", "research", "archiving"]


def test_custom_purposes_declare_what_they_count_as() -> None:
    price = CustomPurpose("price-monitoring", frozenset({"search-indexing", "commercial-profiling"}))
    assert base_purposes("price-monitoring", [price]) == {"search-indexing", "commercial-profiling"}
    assert base_purposes("research") == {"research"}
    with pytest.raises(ValueError, match="unknown purpose"):
        base_purposes("price-monitoring")
    for bad in (("x", frozenset()), ("x", frozenset({"mining"})), ("research", frozenset({"research"}))):
        with pytest.raises(ValueError):
            CustomPurpose(*bad)


def test_a_custom_purpose_is_denied_when_any_purpose_it_counts_as_is() -> None:
    tdm = from_response("tdmrep", "https://s.example/.well-known/tdmrep.json", 200,
                        b'[{"location": "/", "tdm-reservation": 1}]', NOW)
    result = site_tdmrep(tdm, "https://s.example/a")
    custom = [CustomPurpose("rag", frozenset({"search-indexing", "ai-input"}))]
    decision = combine("rag", [result], custom=custom)
    assert (decision.verdict, decision.reason, decision.purpose) == (SignalVerdict.DENY, "terms.signal.tdmrep", "rag")


def test_an_agreement_override_shows_both_the_signal_and_the_grant() -> None:
    tdm = from_response("tdmrep", "https://s.example/.well-known/tdmrep.json", 200,
                        b'[{"location": "/", "tdm-reservation": 1}]', NOW)
    grant = PlatformGrant("microblog", frozenset({"research"}), "MB-2026-17", True, "settings/platforms.yaml:4")
    decision = combine("research", [site_tdmrep(tdm, "https://s.example/a")], platform=grant)
    assert decision.allowed and decision.basis == "agreement"
    kinds = [e.kind for e in decision.evidence]
    assert kinds == ["signal.tdmrep", "platform-authorization"]
    assert decision.evidence[1].detail["reference"] == "MB-2026-17"


def test_before_the_fetch_the_default_waits_for_the_response() -> None:
    decision = combine("ai-training", [], before_fetch=True)
    assert decision.allowed and decision.basis == "pending"
    assert combine("ai-training", []).reason == "terms.default-deny"
    assert combine("ai-training", [], defaults={"ai-training": True}).allowed


def test_robots_preamble_lines_are_the_records_before_any_group() -> None:
    rules = RobotsRules.parse(b"Content-Signal: ai-train=no\nSitemap: /s.xml\nUser-agent: *\n"
                              b"Content-Signal: search=yes\nAllow: /\n")
    assert rules.preamble_lines("content-signal") == [(1, "ai-train=no")]
    assert rules.group_lines("consentcrawl", "content-signal") == [(4, "search=yes")]
    assert RobotsRules.parse(b"Content-Signal: x=1\n").preamble_lines("CONTENT-SIGNAL") == [(1, "x=1")]


def test_content_usage_rule_splits_groups_but_other_records_do_not() -> None:
    split = RobotsRules.parse(b"User-agent: a\nContent-Usage: / train-ai=n\nUser-agent: b\nDisallow: /\n")
    assert split.allowed("/x", "a") and not split.allowed("/x", "b")
    joined = RobotsRules.parse(b"User-agent: a\nContent-Signal: ai-train=no\nUser-agent: b\nDisallow: /\n")
    assert not joined.allowed("/x", "a") and not joined.allowed("/x", "b")


def test_evidence_names_signal_url_line_raw_value_and_fetch_time() -> None:
    robots = robots_response("https://s.example/robots.txt", 200,
                             b"User-agent: *\nAllow: /\nContent-Usage: / train-ai=n\n", NOW)
    from consentcrawl.signals.content_usage import site_content_usage

    decision = combine("ai-training", [site_content_usage(robots, "https://s.example/a", "consentcrawl")])
    entry = decision.evidence[0].to_dict()
    assert entry == {"kind": "signal.content-usage", "source": "https://s.example/robots.txt",
                     "signal": "content-usage", "level": "site", "purpose": "ai-training", "verdict": "deny",
                     "where": "line 3", "raw": "Content-Usage: / train-ai=n", "fetched_at": NOW.isoformat(),
                     "note": "train-ai=n", "rule_path": "/"}


def test_aipref_spec_examples_parse_as_the_draft_says() -> None:
    assert parse_content_usage("train-ai=y, search=n").labels == {"train-ai": "y", "search": "n"}
    assert parse_content_usage('train-ai=y, train-ai, search=n, search="n"').labels == \
        {"train-ai": None, "search": None}
    assert parse_content_usage("train-ai;allow=n, train-ai=y").labels == {"train-ai": "y"}
    assert parse_content_usage("train-ai;has;parameters=\"?\";").valid is False  # a trailing ';' is invalid
    assert parse_content_usage(b"train-ai=n\xff").valid is False


def test_rsl_refuses_entity_expansion_without_reading_anything() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            b'<rsl xmlns="https://rslstandard.org/rsl"><content url="/">&lol2;</content></rsl>')
    assert parse_rsl(bomb).error is not None
    ok = parse_rsl(b'<rsl xmlns="https://rslstandard.org/rsl/"><content url="/a"><license>'
                   b'<permits type="usage">ai-train, search</permits><payment/></license></content></rsl>')
    assert ok.error is None
    lic = ok.contents[0].licenses[0]
    assert lic.permits == {"usage": frozenset({"ai-train", "search"})} and lic.payment == ""


def test_the_robots_tag_row_of_the_vocabulary_is_the_response_phase_table() -> None:
    from consentcrawl.robots.tags import PURPOSE_DENIALS

    inverted = {(rule, purpose) for purpose, rules in PURPOSE_DENIALS.items() for rule in rules}
    assert {(rule, p) for rule, ps in VOCABULARY["robots-tag"].items() for p in ps} == inverted
    assert VOCABULARY["robots-tag"]["noml"] == {"ai-training"}


def test_a_parsed_file_is_remembered_by_its_body() -> None:
    from consentcrawl.signals.tdmrep import parse_tdmrep_file

    body = b'[{"location": "/", "tdm-reservation": 1}]'
    assert parse_tdmrep_file(body) is parse_tdmrep_file(bytes(bytearray(body)))


def test_signal_file_cache_keeps_a_statement_24_hours_and_retries_an_unavailable_file() -> None:
    from consentcrawl.signals.fetch import SignalFileCache

    cache = SignalFileCache(ttl=timedelta(days=3))
    url = "https://s.example/.well-known/tdmrep.json"
    assert cache.get(url, NOW) is None
    ok = cache.put(from_response("tdmrep", url, 200, b"[]", NOW), NOW)
    assert cache.get(url, NOW + timedelta(hours=23)) is ok
    assert cache.get(url, NOW + timedelta(hours=24)) is None  # the TTL is capped at 24 h
    later = NOW + timedelta(days=1)
    cache.put(unavailable("tdmrep", url, later, "HTTP 503"), later)
    assert cache.get(url, later + timedelta(seconds=59)).status is SignalFileStatus.UNAVAILABLE  # type: ignore[union-attr]
    assert cache.get(url, later + timedelta(seconds=60)) is None
    again = later + timedelta(seconds=60)
    cache.put(unavailable("tdmrep", url, again, "HTTP 503"), again)
    assert cache.get(url, again + timedelta(seconds=119)) is not None  # doubled
    assert cache.get(url, again + timedelta(seconds=120)) is None


def test_rsl_geography_never_allows_but_still_prohibits() -> None:
    from consentcrawl.signals.rsl import RslLink, evaluate_rsl

    link = RslLink("https://s.example/l.xml", Level.SITE, "https://s.example/robots.txt", "line 1", "")
    doc = parse_rsl(b'<rsl xmlns="https://rslstandard.org/rsl"><content url="/"><license>'
                    b'<permits type="usage">all</permits><permits type="geo">FR</permits>'
                    b'<prohibits type="usage">ai-train</prohibits></license></content></rsl>')
    result = evaluate_rsl(doc, "https://s.example/a", link)
    assert result.verdict("search-indexing") is SignalVerdict.UNKNOWN
    assert result.verdict("ai-training") is SignalVerdict.DENY


def test_scrapy_and_httpx_header_objects_are_read_line_by_line() -> None:
    import httpx
    from scrapy.http.headers import Headers

    from consentcrawl.signals.content_usage import response_content_usage
    from consentcrawl.signals.tdmrep import response_tdmrep

    scrapy_headers = Headers({"Content-Usage": ["search=y", "train-ai=n"], "TDM-Reservation": "1"})
    httpx_headers = httpx.Headers([("content-usage", "search=y"), ("Content-Usage", "train-ai=n"),
                                   ("tdm-reservation", "1")])
    for headers in (scrapy_headers, httpx_headers):
        usage = response_content_usage("https://s.example/a", headers)
        assert usage.verdict("ai-training") is SignalVerdict.DENY
        assert usage.verdict("search-indexing") is SignalVerdict.ALLOW
        assert response_tdmrep("https://s.example/a", headers).verdict("research") is SignalVerdict.DENY


def test_the_signal_modules_are_pure() -> None:
    """No Scrapy, no I/O, no clock in consentcrawl/signals (the same rule as tests/test_pure_core.py)."""
    import ast
    from pathlib import Path

    from .test_pure_core import FORBIDDEN_CALLS, FORBIDDEN_MODULES

    package = Path(__file__).resolve().parent.parent / "consentcrawl" / "signals"
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 10
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                names = []
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN_MODULES, (path.name, name)
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) \
                    else ""
                assert called not in FORBIDDEN_CALLS, (path.name, node.lineno, called)
