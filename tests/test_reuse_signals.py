"""The response phase's remembered site-level signal decisions (``signals.policy.ResponseSignals``) never decide
differently from :func:`~consentcrawl.signals.policy.response_decision`, which remembers nothing.

Every row of the conformance table is decided both ways, in an order that fills the memo with a silent page of the
same origin first (and after), so a remembered outcome is there to be (wrongly) reused; tags the signals read that
a byte search would miss (entities, case, spaces) must still be seen.
"""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentcrawl.decision import Decision, Stage, Verdict
from consentcrawl.signals.evaluate import SiteFiles, response_silent
from consentcrawl.signals.policy import ResponseSignals, SignalPolicy, response_decision
from consentcrawl.signals.purposes import CustomPurpose
from consentcrawl.signals.tdmrep import ResearchException

from .signals_conformance import CASES, SITE, Case, head
from .test_signals_conformance import _file, _robots, _Served

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
HOST = SITE.partition("://")[2]
SILENT = head('<meta charset="utf-8">', '<link rel="stylesheet" href="/s.css">', '<meta name="robots" content="all">')


def _inputs(case: Case) -> tuple[SiteFiles, SignalPolicy, Any]:
    files = SiteFiles(_robots(case), _file(case, "tdmrep", "/.well-known/tdmrep.json"),
                      _file(case, "ai-txt", "/ai.txt"), _Served(case), _Served(case, "tdm-policy"))
    policy = SignalPolicy(
        conservative=case.conservative, stores_items=case.stores_items,
        custom=tuple(CustomPurpose(name, frozenset(counts)) for name, counts in case.custom.items()),
        research_exception=ResearchException(*case.research_exception) if case.research_exception else None,
        licences={HOST: case.licence_held} if case.licence_held else {})
    platform = None
    if case.platform is not None:  # the fields grant_of reads, as platforms.yaml gives them
        platform = SimpleNamespace(name="example", source="platforms.yaml",
                                   research_exception=case.platform.get("research_exception"),
                                   signal_licence=((case.platform["signal_licence"], "platforms.yaml:3")
                                                   if case.platform.get("signal_licence") else None),
                                   authorization=SimpleNamespace(
            purposes=tuple(case.platform.get("purposes", ())), reference=case.platform.get("reference"),
            overrides_signals=bool(case.platform.get("overrides_signals"))))
    return files, policy, platform


def _prior() -> Decision:
    return Decision(Verdict.ALLOW, Stage.TERMS, "terms.off-platform", decision_id="prior")


def _both(memo: ResponseSignals, case: Case, files: SiteFiles, policy: SignalPolicy, platform: Any,
          headers: Any, html: str | None) -> tuple[Decision, Decision]:
    url = SITE + case.path
    args = (url, HOST, headers, html, "utf-8", files, policy, case.token, case.purpose, platform, NOW)
    plain, _ = response_decision(_prior(), *args)
    remembered = ResponseSignals.apply(_prior(), memo.added(*args))
    return plain, remembered


def _same(a: Decision, b: Decision) -> None:
    assert (a.verdict, a.stage, a.reason, a.evidence) == (b.verdict, b.stage, b.reason, b.evidence)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_remembered_response_signals_decide_as_uncached(case: Case) -> None:
    files, policy, platform = _inputs(case)
    memo = ResponseSignals()
    headers = [(k, v) for k, v in case.headers]
    _same(*_both(memo, case, files, policy, platform, [], SILENT))  # a silent page of the origin first
    _same(*_both(memo, case, files, policy, platform, headers, case.html))  # the row's page, memo filled
    _same(*_both(memo, case, files, policy, platform, [], SILENT))  # and a silent one again
    _same(*_both(memo, case, files, policy, platform, [], None))


STATEMENTS = [
    ([], head('<meta name="tdm-reservation" content="1">')),
    ([], head('<META NAME=" TDM-Reservation " CONTENT="1">')),
    ([], head('<meta name="tdm&#45;reservation" content="1">')),
    ([], head('<meta content="1" name=tdm-reservation>')),
    ([("TDM-Reservation", "1")], SILENT),
    ([("tdm-reservation", "1")], None),
    ([("Content-Usage", "train-ai=n")], SILENT),
    ([("Content-Signal", "ai-train=no")], SILENT),
    ([("content-signals", "ai-train=no")], SILENT),
]


@pytest.mark.parametrize(("headers", "html"), STATEMENTS)
def test_a_statement_on_the_page_is_never_answered_from_the_memo(headers: Any, html: str | None) -> None:
    """The memo holds an allow for the origin (silent pages); a page that reserves TDM rights (or opts out of AI
    training) is still denied for ai-training."""
    case = Case("memo", "combine", "test", "/page", "ai-training", "allow",
                files={"/robots.txt": (200, "User-agent: *\nAllow: /\n")}, platform={"purposes": ["ai-training"]})
    files, policy, platform = _inputs(case)
    memo = ResponseSignals()
    plain, remembered = _both(memo, case, files, policy, platform, [], SILENT)
    assert plain.allowed and remembered.allowed
    assert not response_silent(headers, html)
    plain, remembered = _both(memo, case, files, policy, platform, headers, html)
    _same(plain, remembered)
    assert not remembered.allowed, remembered.reason
    assert remembered.reason.startswith("response.signal."), remembered.reason


def test_a_new_fetch_of_the_files_is_a_new_memo_entry() -> None:
    """The memo is as fresh as the files the adapter hands in: refetched files (a new object) saying otherwise
    are never answered with the old outcome."""
    quiet = Case("q", "combine", "test", "/page", "ai-training", "allow",
                 files={"/robots.txt": (200, "User-agent: *\nAllow: /\n")}, platform={"purposes": ["ai-training"]})
    loud = Case("l", "combine", "test", "/page", "ai-training", "deny",
                files={"/robots.txt": (200, "User-agent: *\nAllow: /\nContent-Signal: ai-train=no\n")},
                platform={"purposes": ["ai-training"]})
    memo = ResponseSignals()
    files, policy, platform = _inputs(quiet)
    assert _both(memo, quiet, files, policy, platform, [], SILENT)[1].allowed
    files2, _, _ = _inputs(loud)
    plain, remembered = _both(memo, loud, files2, policy, platform, [], SILENT)
    _same(plain, remembered)
    assert not remembered.allowed and remembered.reason == "terms.signal.content-signal"


# -- the site check's memo keyed by the tdmrep.json entry a URL selects ----------------------------------------------

TDMREP = (b'[{"location": "/private/*", "tdm-reservation": 1, "tdm-policy": "https://site.example/p"},'
          b' {"location": "/x$", "tdm-reservation": 2}, {"location": "https://other.example/*", "tdm-reservation": 1},'
          b' {"location": "/open/*.html", "tdm-reservation": 0}, {"location": "/*?q=", "tdm-reservation": 1}]')
PATHS = st.lists(st.sampled_from(["private", "open", "x", "a.html", "Private", "%70rivate", "", "?q=1", "..",
                                  "y?q=", "open/b.html", "x$"]), max_size=4).map(lambda parts: "/" + "/".join(parts))


@settings(max_examples=60, deadline=None)
@given(paths=st.lists(PATHS, min_size=1, max_size=12),
       purpose=st.sampled_from(["research", "ai-training", "search-indexing", "commercial-profiling"]),
       robots_extra=st.sampled_from(["", "Content-Signal: ai-train=no\n", "Content-Usage: /open train-ai=n\n"]))
def test_remembered_site_signals_decide_as_a_fresh_check(paths: list[str], purpose: str, robots_extra: str) -> None:
    """One engine deciding a sequence of URLs (its memo filled by each) decides every one as a new engine does."""
    from consentcrawl.consent.answers import NO_STORE
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.robots.fetch import from_response as robots_file
    from consentcrawl.signals.fetch import from_response as signal_file
    from consentcrawl.terms.platforms import PlatformRegistry

    robots = robots_file(SITE + "/robots.txt", 200, ("User-agent: *\n" + robots_extra + "Allow: /\n").encode(), NOW)
    files = SiteFiles(robots, signal_file("tdmrep", SITE + "/.well-known/tdmrep.json", 200, TDMREP, NOW))
    remembering = PolicyEngine(PlatformRegistry({}), "consentcrawl")
    memo = ResponseSignals()
    for path in paths:
        fresh = PolicyEngine(PlatformRegistry({}), "consentcrawl")
        facts = fresh.facts(SITE + path, purpose, NOW)
        _same(remembering.decide(facts, robots, NO_STORE, files), fresh.decide(facts, robots, NO_STORE, files))
        args = (facts.canonical.url, HOST, [], SILENT, "utf-8", files, fresh.signal_policy, "consentcrawl", purpose,
                None, NOW)
        _same(ResponseSignals.apply(_prior(), memo.added(*args)), response_decision(_prior(), *args)[0])


# -- keyed by the robots.txt Content-Usage rule, the RSL <content> and the ai.txt rule a URL selects ---------------

LICENCE = (b'<rsl xmlns="https://rslstandard.org/rsl">'
           b'<content url="/private/*"><license><prohibits type="usage">search ai-train</prohibits></license></content>'
           b'<content url="/open/*.html"><license><permits type="usage">all</permits></license></content>'
           b'<content url="https://site.example/x$" server="https://l.example"><license/></content>'
           b'<content url="https://other.example/*"><license><prohibits type="usage">all</prohibits></license>'
           b'</content><content url="/"><license><permits type="user">education</permits></license></content>'
           b'<content url="/"><license><permits type="usage">search</permits></license></content></rsl>')
AI_TXT = b"User-agent: *\nDisallow: *.html\nDisallow: /private/\nAllow: /private/ok\nDisallow: /x$\n"
USAGE = ("Content-Usage: / search=y, train-ai=y\nContent-Usage: /private/ train-ai=n\n"
         "Content-Usage: /open/ search=n\nContent-Usage: /open/ search=y\nContent-Usage: /*.html train-ai=n\n"
         "Content-Usage: bots=n\nDisallow: /x$\n")


def _rule_files(usage: bool, licence: bool, ai_txt: bool, tdmrep: bool) -> SiteFiles:
    from consentcrawl.robots.fetch import from_response as robots_file
    from consentcrawl.signals.fetch import from_response as signal_file

    robots = (f"License: {SITE}/license.xml\n" if licence else "") + "User-agent: *\nAllow: /\n" + (
        USAGE if usage else "")
    return SiteFiles(
        robots_file(SITE + "/robots.txt", 200, robots.encode(), NOW),
        signal_file("tdmrep", SITE + "/.well-known/tdmrep.json", 200 if tdmrep else 404, TDMREP if tdmrep else b"",
                    NOW),
        signal_file("ai-txt", SITE + "/ai.txt", 200 if ai_txt else 404, AI_TXT if ai_txt else b"", NOW),
        {SITE + "/license.xml": signal_file("rsl", SITE + "/license.xml", 200, LICENCE, NOW)} if licence else {})


@settings(max_examples=60, deadline=None)
@given(paths=st.lists(PATHS, min_size=1, max_size=10), usage=st.booleans(), licence=st.booleans(),
       ai_txt=st.booleans(), tdmrep=st.booleans(), conservative=st.booleans())
def test_site_signals_keyed_by_the_rule_decide_as_a_fresh_check(paths: list[str], usage: bool, licence: bool,
                                                                  ai_txt: bool, tdmrep: bool,
                                                                  conservative: bool) -> None:
    """Robots.txt Content-Usage rules (longest, same-length conflicts, a path that may not be crawled, a rule
    without a path), an RSL licence with path, absolute-URL and other-origin scopes, ai.txt rules (leading ``*``,
    ``$``, an Allow inside a Disallow): one engine deciding a sequence of URLs decides each as a new engine does,
    and the response phase's memo as :func:`response_decision`."""
    from consentcrawl.consent.answers import NO_STORE
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.terms.platforms import PlatformRegistry

    files = _rule_files(usage, licence, ai_txt, tdmrep)
    policy = SignalPolicy(conservative=conservative)
    remembering = PolicyEngine(PlatformRegistry({}), "consentcrawl", signal_policy=policy)
    memo = ResponseSignals()
    visits = [(path, purpose) for purpose in ("research", "ai-training", "search-indexing", "ai-input", "archiving")
              for path in ["/x", "/a", *paths] * 2]  # every URL again once the memo holds all of them
    for path, purpose in visits:
        fresh = PolicyEngine(PlatformRegistry({}), "consentcrawl", signal_policy=policy)
        facts = fresh.facts(SITE + path, purpose, NOW)
        _same(remembering.decide(facts, files.robots, NO_STORE, files),
              fresh.decide(facts, files.robots, NO_STORE, files))
        args = (facts.canonical.url, HOST, [], SILENT, "utf-8", files, policy, "consentcrawl", purpose, None, NOW)
        _same(ResponseSignals.apply(_prior(), memo.added(*args)), response_decision(_prior(), *args)[0])


def test_urls_that_select_the_same_rules_share_one_key() -> None:
    """A new URL on a cached site is a lookup: the key is what the URL selects, not the URL."""
    from consentcrawl.signals.evaluate import PathKey

    keyer = PathKey(_rule_files(True, True, True, False), "consentcrawl")
    assert not keyer.origin_wide
    assert keyer.key(SITE + "/a") == keyer.key(SITE + "/b/c?d=1")
    assert keyer.key(SITE + "/private/a") == keyer.key(SITE + "/private/b")
    assert keyer.key(SITE + "/private/a") != keyer.key(SITE + "/a")
    assert keyer.key(SITE + "/private/ok") != keyer.key(SITE + "/private/a")  # ai.txt allows it again
    assert keyer.key(SITE + "/open/a.html") != keyer.key(SITE + "/open/a")
    assert PathKey(_rule_files(False, False, False, False), "consentcrawl").origin_wide


def test_interleaved_origins_each_keep_their_key_and_decide_as_a_fresh_check() -> None:
    """A crawl decides several origins' pages in turn: each origin's files keep their own key maker, and no origin
    is answered with another's outcome."""
    from consentcrawl.consent.answers import NO_STORE
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.robots.fetch import from_response as robots_file
    from consentcrawl.signals.evaluate import PathKeys
    from consentcrawl.terms.platforms import PlatformRegistry

    def files_of(origin: str, usage: str) -> SiteFiles:
        return SiteFiles(robots_file(origin + "/robots.txt", 200, f"User-agent: *\nAllow: /\n{usage}".encode(), NOW))

    sites = {"https://site.example": files_of("https://site.example", "Content-Usage: /private/ search=n\n"),
             "https://other.example": files_of("https://other.example", "Content-Usage: /open/ search=n\n")}
    keys = PathKeys()
    assert keys.of(sites["https://site.example"], "consentcrawl") is keys.of(sites["https://site.example"],
                                                                             "consentcrawl")
    remembering = PolicyEngine(PlatformRegistry({}), "consentcrawl")
    memo = ResponseSignals()
    for path in ["/private/a", "/open/a", "/a"] * 2:
        for origin, files in sites.items():
            fresh = PolicyEngine(PlatformRegistry({}), "consentcrawl")
            facts = fresh.facts(origin + path, "search-indexing", NOW)
            made = remembering.decide(facts, files.robots, NO_STORE, files)
            _same(made, fresh.decide(facts, files.robots, NO_STORE, files))
            assert made.allowed == (path != ("/private/a" if origin == "https://site.example" else "/open/a"))
            host = origin.partition("://")[2]
            args = (facts.canonical.url, host, [], SILENT, "utf-8", files, fresh.signal_policy, "consentcrawl",
                    "search-indexing", None, NOW)
            _same(ResponseSignals.apply(_prior(), memo.added(*args)), response_decision(_prior(), *args)[0])
