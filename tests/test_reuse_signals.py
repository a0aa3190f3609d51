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
from hypothesis import example, given, settings
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
#: path parts: "" makes a trailing slash (``/private/``, ``/private/?q=1``), and the lenient spellings a server may
#: read as another path (``%2F``, ``;a``, ``..%2F``) give the request more spellings than its canonical one
PATHS = st.lists(st.sampled_from(["private", "open", "x", "a.html", "Private", "%70rivate", "", "?q=1", "..",
                                  "y?q=", "open/b.html", "x$", "private%2Fa", "private;a", "a..%2F", "open%2F",
                                  "/?q=1"]), max_size=4).map(lambda parts: "/" + "/".join(parts))


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


@settings(max_examples=30, deadline=None)
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


# -- what the key reuses from the request: the canonical path, the robots check's match -------------------------

#: URL spellings: hosts of every kind (IPv6 too), ports, userinfo, and path and query characters the canonical form
#: has to encode, decode, resolve or drop (``%``, ``#``, ``?``, ``\\``, dot segments, tabs, non-ASCII)
HOSTS = st.sampled_from(["site.example", "SITE.example.", "[::1]", "[2001:DB8::1]", "127.0.0.1", "0x7f.1",
                         "xn--caf-dma.example", "café.example", "u:p@site.example", "site.example:8080",
                         "site.example:80", "[::ffff:1.2.3.4]:443"])
#: what paths mostly are (so that rules match: robots.txt disallows /private/ and /x, the key rules name /open, .html)
PLAIN = ["/", "private", "private/", "ok", "x", "open", "a", ".html", "?", "q=1", "&", "%41", "%2F", "%7e", "%3F", ";"]
#: what the canonical form has to encode, decode, resolve or drop
ODD = [*"#%.=+:@!$'()*,~-_ \t\\\"<>^`{|}[]Z09é\u2028\x00\x7f", "%2e", "%23", "%zz", "%c3%a9", "/..", "//", "/./"]
URL_TEXT = st.lists(st.sampled_from(PLAIN) | st.sampled_from(ODD), max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(scheme=st.sampled_from(["http", "https", "HTTP"]), host=HOSTS, rest=URL_TEXT)
def test_the_canonical_path_is_the_path_every_signal_reads(scheme: str, host: str, rest: str) -> None:
    """The key reads a request's path off its canonical form instead of splitting the URL: for every URL the
    canonical form can hold, that is the path the signals read (``url_path`` of the canonical URL), and only an
    IPv6 host (checked by ``urlsplit``) is split instead."""
    from consentcrawl.signals._common import _READ_BACK, canonical_path, url_path
    from consentcrawl.urls import canonicalize

    try:
        canonical = canonicalize(f"{scheme}://{host}/{rest}")
    except ValueError:
        return
    assert canonical_path(canonical) == url_path(canonical.url)
    assert canonical.path_query == url_path(canonical.url)  # they never disagree: the guard is only a guard
    if ":" not in canonical.host:
        assert _READ_BACK.fullmatch(canonical.path_query) is not None  # and the path is reused, not split


@settings(max_examples=300, deadline=None)
@given(path=URL_TEXT)
@example(path="/%41")
@example(path="/a%7e?%3F")
@example(path="")
def test_a_path_normalised_once_matches_as_each_pattern_normalises_it(path: str) -> None:
    """The key normalises a page's path once for all the patterns it is matched against; that normal form is the
    one each pattern compares when given the raw path."""
    from consentcrawl.robots.matcher import _path_spellings
    from consentcrawl.signals._common import PathPattern, normal_path

    assert normal_path(path) == _path_spellings(path or "/")[1]
    for pattern in ("/", "/a", "/a%2F", "*.html", "/%41*Z$", "/é", "/a?b"):
        assert PathPattern(pattern).matches(path) == PathPattern(pattern).matches_normal(normal_path(path))


ROBOTS_RULES = ("User-agent: *\nDisallow: /private/\nAllow: /private/ok\nDisallow: /*.html$\nDisallow: /x$\n"
                "Disallow: /a%2Fb\n")


@settings(max_examples=120, deadline=None)
@given(host=HOSTS, rest=URL_TEXT, usage=st.booleans(), licence=st.booleans(), ai_txt=st.booleans(),
       tdmrep=st.booleans())
def test_the_key_from_the_request_is_the_key_from_the_url(host: str, rest: str, usage: bool, licence: bool,
                                                          ai_txt: bool, tdmrep: bool) -> None:
    """The key made from what the request knows (its canonical path, the paths the robots check found allowed in
    the same robots.txt for the same token) is the key made from its URL alone, on arbitrary spellings."""
    from dataclasses import replace

    from consentcrawl.checks.base import CheckContext
    from consentcrawl.checks.robots import RobotsCheck
    from consentcrawl.consent.answers import NO_STORE
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.robots.fetch import from_response as robots_file
    from consentcrawl.signals.evaluate import PathKey
    from consentcrawl.terms.platforms import PlatformRegistry

    files = _rule_files(usage, licence, ai_txt, tdmrep)
    text = (f"License: {SITE}/license.xml\n" if licence else "") + ROBOTS_RULES + (USAGE if usage else "")
    files = replace(files, robots=robots_file(SITE + "/robots.txt", 200, text.encode(), NOW))
    try:
        facts = PolicyEngine(PlatformRegistry({}), "consentcrawl").facts(f"https://{host}/{rest}", "ai-training", NOW)
    except ValueError:
        return
    ctx = CheckContext(facts, None, None, "ai-training", NOW, "consentcrawl", NO_STORE, robots=files.robots)
    RobotsCheck().check(ctx)
    assert set(ctx.robots_allowed) <= set(facts.robots_paths)
    fresh = PathKey(files, "consentcrawl").key(facts.canonical.url)
    keyer = PathKey(files, "consentcrawl")
    assert keyer.canonical_key(facts.canonical, ctx.robots_allowed) == fresh
    assert keyer.canonical_key(facts.canonical) == fresh  # remembered for this object
    assert keyer.canonical_key(replace(facts.canonical)) == fresh  # an equal one: made again, the same
    assert PathKey(files, "consentcrawl").canonical_key(facts.canonical) == fresh


@settings(max_examples=60, deadline=None)
@given(paths=st.lists(PATHS, min_size=1, max_size=8), signals_first=st.booleans(), licence=st.booleans(),
       ai_txt=st.booleans(), tdmrep=st.booleans())
def test_robots_disallowed_paths_decide_as_a_fresh_check_in_either_check_order(
        paths: list[str], signals_first: bool, licence: bool, ai_txt: bool, tdmrep: bool) -> None:
    """With the signals check before the robots check (``CONSENTCRAWL_CHECKS``), the key matches robots.txt itself
    (a path it disallows takes no Content-Usage rule); after it, it reuses the robots check's match. Either way a
    remembering engine decides every URL as a fresh one."""
    from consentcrawl.checks import default_checks
    from consentcrawl.checks.robots import RobotsCheck
    from consentcrawl.consent.answers import NO_STORE
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.terms.platforms import PlatformRegistry

    def engine() -> PolicyEngine:
        checks = default_checks()
        if signals_first:
            checks = [checks[1], checks[0], *checks[2:]]
        assert isinstance(checks[1 if signals_first else 0], RobotsCheck)
        return PolicyEngine(PlatformRegistry({}), "consentcrawl", checks=checks)

    files = _rule_files(True, licence, ai_txt, tdmrep)
    remembering = engine()
    for path in ["/x", "/a", "/private/a", "/private/ok", *paths] * 2:
        for purpose in ("search-indexing", "ai-training"):
            facts = remembering.facts(SITE + path, purpose, NOW)
            _same(remembering.decide(facts, files.robots, NO_STORE, files),
                  engine().decide(facts, files.robots, NO_STORE, files))


# -- every spelling of the page the robots check matches: the trailing slash as requested, the lenient readings ---


@settings(max_examples=150, deadline=None)
@given(rest=URL_TEXT | PATHS.map(lambda p: p[1:]), usage=st.booleans(), licence=st.booleans(),
       ai_txt=st.booleans(), tdmrep=st.booleans(),
       purpose=st.sampled_from(["ai-training", "search-indexing", "research", "ai-input"]),
       host=st.sampled_from(["site.example", "site.example", "[::1]", "site.example:8080"]))
@example(rest="private/", usage=True, licence=False, ai_txt=False, tdmrep=False, purpose="ai-training",
         host="site.example")
@example(rest="private/?q=1", usage=False, licence=False, ai_txt=False, tdmrep=True, purpose="research",
         host="site.example")
@example(rest="private/", usage=False, licence=True, ai_txt=False, tdmrep=False, purpose="search-indexing",
         host="site.example")
@example(rest="private/", usage=False, licence=False, ai_txt=True, tdmrep=False, purpose="ai-training",
         host="[::1]")
def test_a_page_is_denied_when_any_spelling_of_it_is(rest: str, usage: bool, licence: bool, ai_txt: bool,
                                                    tdmrep: bool, purpose: str, host: str) -> None:
    """The site check denies a page exactly when the site-level signals, decided afresh for one of the spellings
    the robots check matched (each as a URL of its own, on the page's origin), deny the purpose; the evidence
    names that spelling. (An IPv6 host: the spelling is read by splitting its URL, not reused.)"""
    from consentcrawl.consent.answers import NO_STORE
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.signals.policy import DEFAULT_POLICY, site_decision
    from consentcrawl.terms.platforms import PlatformRegistry

    files = _rule_files(usage, licence, ai_txt, tdmrep)
    engine = PolicyEngine(PlatformRegistry({}), "consentcrawl")
    try:
        facts = engine.facts(f"https://{host}/{rest}", purpose, NOW)
    except ValueError:
        return
    made = engine.decide(facts, files.robots, NO_STORE, files)
    if made.reason and made.reason.startswith("robots."):
        return
    denying = []
    for path in facts.robots_paths:
        decided, _ = site_decision(facts.canonical.origin + path, facts.canonical.host, files, DEFAULT_POLICY,
                                   "consentcrawl", purpose, None)
        if not decided.allowed and decided.basis == "signals":
            denying.append((path, decided.reason))
    signal_deny = made.reason is not None and made.reason.startswith("terms.signal")
    assert signal_deny == bool(denying), (facts.robots_paths, made.reason, denying)
    if denying:
        named = [e.detail.get("path") for e in made.evidence if e.kind == "site-signals"]
        assert [(p, r) for p, r in denying if p in named and r == made.reason], (named, denying, made.reason)


@settings(max_examples=50, deadline=None)
@given(paths=st.lists(PATHS, min_size=1, max_size=10), signals_first=st.booleans(), usage=st.booleans(),
       licence=st.booleans(), ai_txt=st.booleans(), tdmrep=st.booleans())
def test_spelled_keys_decide_as_a_fresh_check(paths: list[str], signals_first: bool, usage: bool, licence: bool,
                                              ai_txt: bool, tdmrep: bool) -> None:
    """Pages with trailing slashes and lenient spellings, several of them selecting the same rules in the canonical
    form but not as requested (``/private`` and ``/private/``): a remembering engine decides each, its evidence
    naming the spelling, as a fresh engine does, in either check order."""
    from consentcrawl.checks import default_checks
    from consentcrawl.consent.answers import NO_STORE
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.terms.platforms import PlatformRegistry

    def engine() -> PolicyEngine:
        checks = default_checks()
        if signals_first:
            checks = [checks[1], checks[0], *checks[2:]]
        return PolicyEngine(PlatformRegistry({}), "consentcrawl", checks=checks)

    files = _rule_files(usage, licence, ai_txt, tdmrep)
    remembering = engine()
    for path in ["/private", "/private/", "/private/?q=1", "/private?q=1", "/private%2Fa", "/open/", *paths] * 2:
        for purpose in ("search-indexing", "ai-training", "research"):
            facts = remembering.facts(SITE + path, purpose, NOW)
            _same(remembering.decide(facts, files.robots, NO_STORE, files),
                  engine().decide(facts, files.robots, NO_STORE, files))


def test_the_spelled_key_tells_a_trailing_slash_apart() -> None:
    """``/private/`` selects the ``/private/`` rules as requested, ``/private`` does not: different keys; a URL
    whose every spelling selects what its canonical form does keeps the canonical key."""
    from consentcrawl.signals.evaluate import PathKey
    from consentcrawl.urls import canonicalize

    keyer = PathKey(_rule_files(True, True, True, True), "consentcrawl")
    slash, bare = canonicalize(SITE + "/private/"), canonicalize(SITE + "/private")
    assert slash == bare
    assert keyer.canonical_key(slash, (), ("/private/", "/private")) != keyer.canonical_key(bare, (), ("/private",))
    plain = canonicalize(SITE + "/a/")
    assert keyer.canonical_key(plain, (), ("/a/", "/a")) == PathKey(_rule_files(True, True, True, True),
                                                                    "consentcrawl").key(SITE + "/a")
