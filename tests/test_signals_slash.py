"""A URL written with a trailing slash is decided for both spellings (``/x/`` as requested, ``/x`` canonical); the
site check skips matching the second one only where no pattern of the site's files can tell the two apart
(``signals._common.SlashSight``). These tests prove that shortcut never changes a key or a decision: the analysis
against the matchers themselves on arbitrary patterns, the key against the full selection of both spellings, and
the engine's decision against deciding every spelling afresh.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from consentcrawl.robots.matcher import _glob_match, _pieces
from consentcrawl.robots.rules import RobotsRules
from consentcrawl.signals._common import PathPattern, SlashSight
from consentcrawl.signals.evaluate import PathKey, SiteFiles

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SITE = "https://site.example"

#: patterns over the characters that matter at the junction (``/``, ``?``) and around it, with ``*`` and ``$``
PATTERN = st.text(alphabet="/a?b*$.", max_size=9).map(lambda p: p if p[:1] in ("/", "*") else "/" + p)
#: a plain path part (no ``?``) and a query (empty, or starting with ``?``)
PATH = st.text(alphabet="/ab.", max_size=8).map(lambda p: "/" + p)
QUERY = st.sampled_from(["", "?"]) .flatmap(
    lambda q: st.just("") if not q else st.text(alphabet="ab=?/.", max_size=6).map(lambda t: "?" + t))


@settings(max_examples=800, deadline=None)
@given(patterns=st.lists(PATTERN, min_size=1, max_size=4), path=PATH, query=QUERY)
@example(patterns=["/a/"], path="/a", query="")
@example(patterns=["/a$"], path="/a", query="")
@example(patterns=["*.b$"], path="/a.b", query="")
@example(patterns=["/a?"], path="/a", query="?x")
@example(patterns=["*/?"], path="/a", query="?x")
@example(patterns=["/a*/$"], path="/a", query="")
@example(patterns=["*a?b"], path="/a", query="?b")
def test_a_pattern_blind_to_the_slash_matches_both_spellings_or_neither(patterns: list[str], path: str,
                                                                        query: str) -> None:
    """Where :class:`SlashSight` says the patterns cannot tell ``N+R`` from ``N+"/"+R``, each matches both or
    neither: the glob walk, the robots.txt regexes (every group rule of an ai.txt or robots.txt), and a
    :class:`PathPattern` (a tdmrep.json ``location``, a ``Content-Usage`` path, an RSL ``<content url>``)."""
    sight = SlashSight([_pieces(p) for p in patterns])
    bare, slashed = path + query, path + "/" + query
    if sight.tells_apart(path, bool(query)):
        return
    for pattern in patterns:
        assert _glob_match(*_pieces(pattern), bare) == _glob_match(*_pieces(pattern), slashed), pattern
        compiled = PathPattern(pattern)
        assert compiled.matches(bare) == compiled.matches(slashed), pattern
    rules = RobotsRules.parse("User-agent: *\n" + "".join(f"Disallow: {p}\n" for p in patterns))
    robots_sight = SlashSight([_pieces(p) for p in rules.patterns("consentcrawl")], ("/robots.txt",))
    if not robots_sight.tells_apart(path, bool(query)):
        assert rules.match(bare, "consentcrawl") == rules.match(slashed, "consentcrawl")


@settings(max_examples=800, deadline=None)
@given(path=PATH, query=QUERY, data=st.data())
def test_patterns_cut_from_either_spelling_match_both_or_neither_where_blind(path: str, query: str,
                                                                             data: st.DataObject) -> None:
    """The same, with patterns cut from the spellings themselves around the junction (pieces of ``N+R`` or
    ``N+"/"+R`` joined by ``*``, maybe anchored), which arbitrary text rarely hits."""
    text = data.draw(st.sampled_from([path + query, path + "/" + query]))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), min_size=2, max_size=6)))
    pieces = [text[a:b] for a, b in zip(cuts[::2], cuts[1::2], strict=False)]
    pattern = ("" if cuts[0] == 0 else "*") + "*".join(pieces) + data.draw(st.sampled_from(["", "$", "*", "*$"]))
    sight = SlashSight([_pieces(pattern)])
    if not sight.tells_apart(path, bool(query)):
        assert _glob_match(*_pieces(pattern), path + query) == _glob_match(*_pieces(pattern), path + "/" + query)


def test_the_analysis_sees_the_patterns_that_tell_a_slash_apart() -> None:
    """The cases it exists for: ``/private/`` tells ``/private`` apart, ``/private`` does not, nor does any pattern
    on another path; an anchored pattern ending the path does, and ``/robots.txt`` (always allowed) does."""
    sight = SlashSight([_pieces(p) for p in ("/private/", "/open", "*.jpg", "/x$", "/*.pdf$")], ("/robots.txt",))
    assert sight.tells_apart("/private", False)
    assert not sight.tells_apart("/open", False) and not sight.tells_apart("/b/0/1", False)
    assert sight.tells_apart("/x", False) and sight.tells_apart("/a.pdf", False)
    assert not sight.tells_apart("/a.pdf", True)  # the query ends the URL, not the path
    assert sight.tells_apart("/robots.txt", False)


# -- the key: the shortcut against the full selection of both spellings ------------------------------------------


class FullKey(PathKey):
    """The key as it was made before the shortcuts: every spelling selected."""

    def _blind(self, *args: Any) -> bool:
        return False


def site_files(locations: list[str], usage: list[str], contents: list[str], ai_txt: list[str] | None = None
               ) -> SiteFiles:
    """The site's files: tdmrep.json entries at ``locations``, ``Content-Usage`` rules for ``usage``, an RSL
    licence with a ``<content>`` per ``contents``, ai.txt disallowing ``ai_txt`` (None: no ai.txt read)."""
    from consentcrawl.robots.fetch import from_response as robots_file
    from consentcrawl.signals.fetch import from_response as signal_file

    robots = (f"License: {SITE}/license.xml\n" if contents else "") + "User-agent: *\nAllow: /\n" + "".join(
        f"Content-Usage: {p} train-ai=n\n" for p in usage)
    tdmrep = json.dumps([{"location": p, "tdm-reservation": i % 2} for i, p in enumerate(locations)]).encode()
    licence = ('<rsl xmlns="https://rslstandard.org/rsl">' + "".join(
        f'<content url="{p}"><license><prohibits type="usage">search</prohibits></license></content>'
        for p in contents) + "</rsl>").encode()
    return SiteFiles(
        robots_file(SITE + "/robots.txt", 200, robots.encode(), NOW),
        signal_file("tdmrep", SITE + "/.well-known/tdmrep.json", 200 if locations else 404, tdmrep, NOW),
        None if ai_txt is None else signal_file("ai-txt", SITE + "/ai.txt", 200 if ai_txt else 404,
                                                "".join(f"Disallow: {p}\n" for p in ai_txt).encode(), NOW),
        {SITE + "/license.xml": signal_file("rsl", SITE + "/license.xml", 200, licence, NOW)} if contents else {})


def keys_agree(files: tuple[list[str], ...], disallow: list[str], canonical: Any, paths: tuple[str, ...]) -> None:
    """On the site of ``files`` whose robots.txt also disallows ``disallow`` (``Content-Usage`` rules apply to
    crawlable paths only), the key of ``canonical`` with ``paths`` as its spellings is the one made by selecting
    every spelling, with none and with all of them crawlable."""
    from dataclasses import replace

    from consentcrawl.robots.fetch import from_response as robots_file

    robots = ("User-agent: *\n" + "".join(f"Disallow: {p}\n" for p in disallow) + "Allow: /\n"
              + "".join(f"Content-Usage: {p} train-ai=n\n" for p in files[1]))
    if files[2]:
        robots = f"License: {SITE}/license.xml\n" + robots
    site = replace(site_files(*files), robots=robots_file(SITE + "/robots.txt", 200, robots.encode(), NOW))
    for allowed in ((), paths):
        assert PathKey(site, "consentcrawl").canonical_key(canonical, allowed, paths) == \
            FullKey(site, "consentcrawl").canonical_key(canonical, allowed, paths), (canonical, paths)


FILES = st.tuples(*(st.lists(PATTERN, max_size=3) for _ in range(4)))
URLS = st.lists(st.tuples(PATH, QUERY, st.booleans()), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(files=FILES, urls=URLS)
@example(files=([], ["/private/"], [], []), urls=[("/private", "", True)])
@example(files=(["/a$"], [], [], []), urls=[("/a", "", True)])
@example(files=([], [], ["/b/*"], ["*.b$"]), urls=[("/b", "?q", True), ("/a.b", "", True)])
def test_the_shortcut_key_is_the_key_of_both_spellings(files: tuple[list[str], ...], urls: list[Any]) -> None:
    """For URLs with and without a trailing slash, allowed by robots.txt or not known to be, the key (what the
    memo decides by) is the one made by selecting every spelling."""
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.terms.platforms import PlatformRegistry

    site = site_files(*files)
    engine = PolicyEngine(PlatformRegistry({}), "consentcrawl")
    fast, full = PathKey(site, "consentcrawl"), FullKey(site, "consentcrawl")
    for path, query, slash in urls:
        facts = engine.facts(SITE + path + ("/" if slash else "") + query, "ai-training", NOW)
        for allowed in ((), facts.robots_paths):
            assert fast.canonical_key(facts.canonical, allowed, facts.robots_paths) == \
                FullKey(site, "consentcrawl").canonical_key(facts.canonical, allowed, facts.robots_paths), facts
        assert full.canonical_key(facts.canonical, (), facts.robots_paths) == \
            fast.canonical_key(facts.canonical, (), facts.robots_paths)


@settings(max_examples=150, deadline=None)
@given(files=FILES, urls=URLS, purpose=st.sampled_from(["ai-training", "search-indexing", "research"]))
@example(files=([], ["/private/"], [], []), urls=[("/private", "", False), ("/private", "", True)],
         purpose="ai-training")
def test_a_remembering_engine_decides_slashed_urls_as_every_spelling_decided_afresh(
        files: tuple[list[str], ...], urls: list[Any], purpose: str) -> None:
    """The engine (memo and shortcut) decides each URL, with or without its slash, exactly as a new engine does,
    and denies on the site's signals exactly when one spelling, decided afresh, does."""
    decides_as_afresh(site_files(*files), [SITE + path + ("/" if slash else "") + query for path, query, slash in urls],
                      purpose)


def decides_as_afresh(site: Any, urls: list[str], purpose: str, platforms: Any = None) -> None:
    """One engine (memo and shortcuts) decides each URL, twice over, exactly as a new engine does, and denies on the
    site's signals exactly when one spelling of it, decided afresh, does (``platforms``: the engines' registry,
    default none)."""
    from consentcrawl.consent.answers import NO_STORE
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.signals.policy import DEFAULT_POLICY, site_decision
    from consentcrawl.terms.platforms import PlatformRegistry

    if platforms is None:
        platforms = PlatformRegistry({})
    remembering = PolicyEngine(platforms, "consentcrawl")  # conservative: ai.txt is read
    for url in urls * 2:
        facts = remembering.facts(url, purpose, NOW)
        made = remembering.decide(facts, site.robots, NO_STORE, site)
        fresh = PolicyEngine(platforms, "consentcrawl").decide(facts, site.robots, NO_STORE, site)
        assert (made.verdict, made.reason, made.evidence) == (fresh.verdict, fresh.reason, fresh.evidence)
        if made.reason and made.reason.startswith("robots."):
            continue
        denying = [p for p in facts.robots_paths
                   if (d := site_decision(facts.canonical.origin + p, facts.canonical.host, site, DEFAULT_POLICY,
                                          "consentcrawl", purpose, facts.platform)[0]).basis == "signals"
                   and not d.allowed]
        assert bool(made.reason and made.reason.startswith("terms.signal")) == bool(denying), (facts, denying)


# -- the response phase: every spelling, remembered or not ----------------------------------------------------------

HEADERS = st.sampled_from([[], [("Content-Usage", "train-ai=y")], [("Content-Usage", "search=n")],
                           [("tdm-reservation", "0")]])


@settings(max_examples=150, deadline=None)
@given(files=FILES, urls=URLS, headers=HEADERS,
       purpose=st.sampled_from(["ai-training", "search-indexing", "research"]))
@example(files=([], ["/open$"], [], []), urls=[("/open", "", True)], headers=[], purpose="ai-training")
def test_the_response_phase_denies_when_any_spelling_does_and_remembers_it_so(
        files: tuple[list[str], ...], urls: list[Any], headers: list[tuple[str, str]], purpose: str) -> None:
    """The response phase (remembered for silent responses, or decided in full) denies a page exactly when the
    response decided afresh as one of its spellings would, for the reason of the first such spelling."""
    from consentcrawl.decision import Decision, Stage, Verdict
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.signals.evaluate import response_spellings
    from consentcrawl.signals.policy import DEFAULT_POLICY, ResponseSignals, response_decision
    from consentcrawl.terms.platforms import PlatformRegistry

    site = site_files(*files)
    engine = PolicyEngine(PlatformRegistry({}), "consentcrawl")
    memo = ResponseSignals()
    prior = Decision(Verdict.ALLOW, Stage.TERMS, "terms.off-platform", decision_id="prior")
    for path, query, slash in urls * 2:
        url = SITE + path + ("/" if slash else "") + query
        facts = engine.facts(url, purpose, NOW)
        spellings = response_spellings(url, facts.canonical, facts.robots_paths)
        args = (url, facts.canonical.host, headers, None, "utf-8", site, DEFAULT_POLICY, "consentcrawl", purpose,
                None, NOW)
        decided, _ = response_decision(prior, *args, spellings)
        remembered = ResponseSignals.apply(prior, memo.added(*args, spellings=spellings))
        assert (decided.verdict, decided.reason, decided.evidence) == \
            (remembered.verdict, remembered.reason, remembered.evidence)
        each = [response_decision(prior, u, *args[1:])[0] for _p, u in spellings]
        assert decided.allowed == all(d.allowed for d in each), (url, [d.reason for d in each])
        if not decided.allowed:  # the first spelling denied decides
            assert decided.reason == next(d.reason for d in each if not d.allowed)
