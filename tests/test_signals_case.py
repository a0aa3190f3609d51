"""On a platform whose ids are case-insensitive (``platforms.yaml``'s default) a request's path in lower case is
decided too (``/b/User1`` is ``/b/user1`` there); the site check skips matching that spelling only where no
pattern of the site's files holds a letter it changes (``signals._common.CaseSight``, beside the slash's and the
lenient readings' sights). These tests prove that shortcut never changes a key or a decision: the analysis against
the matchers themselves on arbitrary patterns and pairs of spellings, the key against the full selection of every
spelling, and the engine's decisions against deciding every spelling afresh; and they name the cases each rule of
the analysis exists for, so that dropping one fails.
"""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from consentcrawl.robots.matcher import _glob_match, _path_spellings, _pieces
from consentcrawl.robots.rules import RobotsRules
from consentcrawl.signals._common import CaseSight, PathPattern, reads_back
from consentcrawl.signals.evaluate import PathKey
from consentcrawl.terms.platforms import Platform, PlatformAuthorization, PlatformRegistry
from consentcrawl.urls import canonicalize

from .test_signals_slash import FILES, FullKey, decides_as_afresh, keys_agree, site_files

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SITE = "https://site.example"
KELVIN = "\u212a"  #: the Kelvin sign, ``k`` in lower case

#: the site as a platform with case-insensitive ids (the default of ``case_sensitive``)
PLATFORM = PlatformRegistry({"site": Platform("site", frozenset({"site.example"}), PlatformAuthorization(
    frozenset({"ai-training", "search-indexing", "research"}), "test agreement"))})

#: letters in both cases, escapes with letters as hex digits (``%2F``, ``%3B``, ``%C3%A9``), and what is around them
PARTS = ["/", "a", "A", "b", "B", "k", "K", "r", "R", "obots.txt", "OBOTS.TXT", "%2F", "%3B", "%C3%A9", "é", ";x",
         "?", "q=F", "1", "*"]
PATH = st.lists(st.sampled_from(PARTS), max_size=7).map(lambda parts: "/" + "".join(parts))
PATTERN = st.lists(st.sampled_from([*PARTS, "*", "$", "%2f", "f"]), max_size=5).map(
    lambda parts: "".join(parts)).map(lambda p: p if p[:1] in ("/", "*") else "/" + p)


def _recased(path: str, flips: list[int]) -> str:
    """``path`` with the characters at ``flips`` in the other case (``k`` as the Kelvin sign when flipped twice)."""
    chars = list(path)
    for i in flips:
        if i < len(chars):
            char = chars[i]
            chars[i] = KELVIN if char == "K" and flips.count(i) > 1 else char.swapcase()
    return "".join(chars)


def _own_form(path: str) -> bool:
    """The sight's precondition on the canonical path: read back, its own literal and normal spelling."""
    return reads_back(path) and _path_spellings(path) == (path, path)


@settings(max_examples=600, deadline=None)
@given(patterns=st.lists(PATTERN, min_size=1, max_size=4), path=PATH, lower=st.booleans(),
       flips=st.lists(st.integers(min_value=0, max_value=12), max_size=4))
@example(patterns=["/a"], path="/A", lower=True, flips=[])
@example(patterns=["/A"], path="/a", lower=False, flips=[1])
@example(patterns=["*b"], path="/aB", lower=True, flips=[])
@example(patterns=["/b*a$"], path="/bA", lower=True, flips=[])
@example(patterns=["/%2f"], path="/%2F", lower=True, flips=[])
@example(patterns=["*F"], path="/%2F", lower=False, flips=[2])
@example(patterns=["/k"], path="/K", lower=False, flips=[1, 1])
@example(patterns=["/x"], path="/Robots.txt", lower=True, flips=[])
def test_a_pattern_blind_to_the_case_matches_both_spellings_or_neither(patterns: list[str], path: str, lower: bool,
                                                                       flips: list[int]) -> None:
    """Where the sight cannot tell ``a`` from ``b`` (``a`` in lower case, or with any letters in the other case),
    every pattern matches both or neither: the glob walk on what the matchers compare of ``b`` (its literal and
    normal spellings), a :class:`PathPattern` (a tdmrep.json ``location``, a ``Content-Usage`` path, an RSL
    ``<content url>``), and the robots.txt regexes of an ai.txt or robots.txt group, which always allow
    ``/robots.txt``."""
    assume(_own_form(path))
    a, b = path, path.lower() if lower else _recased(path, flips)
    if not CaseSight([_pieces(p) for p in patterns]).tells_apart(a, b):
        assert b == a.lower()
        for pattern in patterns:
            for seen in _path_spellings(b):
                assert _glob_match(*_pieces(pattern), a) == _glob_match(*_pieces(pattern), seen), (pattern, a, b)
    compiled = [PathPattern(p) for p in patterns]
    if not CaseSight([(c.pieces, c.anchored) for c in compiled]).tells_apart(a, b):
        for pattern in compiled:
            assert pattern.matches(a) == pattern.matches(b), (pattern.pattern, a, b)
    for verb in ("Disallow", "Allow"):
        rules = RobotsRules.parse("User-agent: *\nDisallow: /\n" * (verb == "Allow")
                                  + "User-agent: *\n" + "".join(f"{verb}: {p}\n" for p in patterns))
        sight = CaseSight([_pieces(p) for p in rules.patterns("consentcrawl")], ("/robots.txt",))
        if not sight.tells_apart(a, b):
            assert rules.match(a, "consentcrawl") == rules.match(b, "consentcrawl"), (verb, patterns, a, b)


def test_the_analysis_sees_the_letters_that_tell_a_case_apart() -> None:
    """Each rule of the test exists for a case: a letter of a pattern in either case, upper in the path; the
    letters of the exact ``/robots.txt``; a spelling that is not the path in lower case (another text, upper case
    where the path has lower, a Kelvin sign, which is ``k`` in lower case but which a matcher compares as UTF-8)."""
    sight = CaseSight([_pieces("/private/"), _pieces("*.jpg")], ("/robots.txt",))
    assert not sight.tells_apart("/b/User1", "/b/user1")
    assert not sight.tells_apart("/b/0%2F1", "/b/0%2f1")  # escapes are read in upper case
    assert sight.tells_apart("/b/Private", "/b/private")  # ``p``: the pattern's letter, upper in ``a``
    assert sight.tells_apart("/b/x.JPG", "/b/x.jpg")  # a later piece's letter
    assert sight.tells_apart("/ROBOTS.TXT", "/robots.txt")  # the exact path's letters
    assert sight.tells_apart("/b/User1", "/b/user2")  # not the same text in lower case
    assert sight.tells_apart("/b/user1", "/b/User1")  # upper case where ``a`` has lower
    assert sight.tells_apart("/b/User1", "/b/User1/")
    assert sight.tells_apart("/Kb", f"/{KELVIN}b")  # not ASCII
    assert not CaseSight([_pieces("/private/")]).tells_apart("/b/SOUND", "/b/sound")
    assert CaseSight([_pieces("/b/S")]).tells_apart("/b/Secret", "/b/secret")
    assert CaseSight([_pieces("/b/s")]).tells_apart("/b/Secret", "/b/secret")


# -- the key: the shortcut against the full selection of every spelling --------------------------------------------

URL_PARTS = ["/", "a", "A", "b", "B", "k", "K", "%2F", "%2f", ";x", "%41", "%C3%A9", "é", "U", "user", "?", "q=%2F",
             "F", ".jpg", ".JPG"]
URL = st.lists(st.sampled_from(URL_PARTS), max_size=8).map(lambda parts: "/" + "".join(parts))


@settings(max_examples=400, deadline=None)
@given(files=FILES, paths=st.lists(URL, min_size=1, max_size=5))
@example(files=(["/a/"], [], [], []), paths=["/A/1"])
@example(files=([], ["/a/"], [], []), paths=["/A/1"])
@example(files=([], [], ["/a/*"], []), paths=["/A/1"])
@example(files=([], [], [], ["/a/"]), paths=["/A/1"])
@example(files=([], [], [], ["*a/1"]), paths=["/b/A%2F1"])
@example(files=([], [], [], ["/b/0%2f"]), paths=["/b/0%2F1"])
@example(files=([], [], [], ["/robots.txt"]), paths=["/Robots.txt"])
def test_the_shortcut_key_is_the_key_of_every_spelling(files: tuple[list[str], ...], paths: list[str]) -> None:
    """For URLs on a case-insensitive platform (with their lenient readings and trailing slashes), allowed by
    robots.txt or not known to be, the key (what the memo decides by) is the one made by selecting every
    spelling."""
    from consentcrawl.engine import PolicyEngine

    site = site_files(*files)
    engine = PolicyEngine(PLATFORM, "consentcrawl")
    fast = PathKey(site, "consentcrawl")
    for path in paths:
        try:
            facts = engine.facts(SITE + path, "ai-training", NOW)
        except ValueError:
            continue
        for allowed in ((), facts.robots_paths, facts.robots_paths[:1]):
            assert fast.canonical_key(facts.canonical, allowed, facts.robots_paths) == \
                FullKey(site, "consentcrawl").canonical_key(facts.canonical, allowed, facts.robots_paths), facts


@settings(max_examples=400, deadline=None)
@given(files=FILES, path=URL, flips=st.lists(st.lists(st.integers(min_value=0, max_value=12), max_size=4),
                                              min_size=1, max_size=3), disallow=st.lists(PATTERN, max_size=2))
@example(files=([], [], [], ["/a"]), path="/A", flips=[[1]], disallow=[])
@example(files=([], [], [], ["/k"]), path="/K", flips=[[1, 1]], disallow=[])
@example(files=([], ["/"], [], []), path="/A", flips=[[1]], disallow=["/a"])
def test_the_key_is_that_of_every_spelling_given(files: tuple[list[str], ...], path: str, flips: list[list[int]],
                                                 disallow: list[str]) -> None:
    """Whatever spellings in other cases a caller hands in (letters upper-cased as well as lower-cased, escapes in
    lower case, a Kelvin sign) and whatever robots.txt disallows (``Content-Usage`` rules apply to crawlable paths
    only), the key is the one made by selecting every spelling."""
    try:
        canonical = canonicalize(SITE + path)
    except ValueError:
        return
    first = canonical.path_query
    keys_agree(files, disallow, canonical, (first, first.lower(), *(_recased(first, f) for f in flips)))


def test_the_shortcut_is_taken_for_a_case_no_pattern_sees() -> None:
    """It exists to be taken: on the benchmark's kinds of site the lower-case spelling of ``/b/User1``, and that of
    ``/b/0%2F1`` (``/b/0%2f1``, beside its reading ``/b/0/1``), are not matched (the key is the canonical path's
    alone); where a pattern holds the letter, every spelling is."""
    from consentcrawl.engine import PolicyEngine

    engine = PolicyEngine(PLATFORM, "consentcrawl")
    user = engine.facts(SITE + "/b/User1", "ai-training", NOW)
    escaped = engine.facts(SITE + "/b/0%2F1", "ai-training", NOW)
    assert user.robots_paths == ("/b/User1", "/b/user1")
    assert escaped.robots_paths == ("/b/0%2F1", "/b/0/1", "/b/0%2f1")
    for files in ((["/private/*", "/"], [], [], []), ([], ["/", "/private/"], [], []), ([], [], ["/private/*"], []),
                  ([], [], [], ["/private/", "*.jpg"])):
        keyer = PathKey(site_files(*files), "consentcrawl")
        for facts, plain in ((user, True), (escaped, False)):
            paths = facts.robots_paths
            assert keyer._blind(facts.canonical.path_query, plain, paths, paths), (files, paths)
    for files in ((["/b/u"], [], [], []), ([], [], [], ["*U"]), ([], ["/b/U"], [], [])):
        keyer = PathKey(site_files(*files), "consentcrawl")
        assert not keyer._blind("/b/User1", True, user.robots_paths, user.robots_paths), files


@settings(max_examples=150, deadline=None)
@given(files=FILES, paths=st.lists(URL, min_size=1, max_size=4),
       purpose=st.sampled_from(["ai-training", "search-indexing", "research"]))
@example(files=([], [], [], ["/a/"]), paths=["/A/1"], purpose="ai-training")
@example(files=([], ["/a/"], [], []), paths=["/A%2F1", "/a%2F1"], purpose="ai-training")
def test_a_remembering_engine_decides_urls_on_the_platform_as_every_spelling_decided_afresh(
        files: tuple[list[str], ...], paths: list[str], purpose: str) -> None:
    """The engine (memo and shortcuts) decides each URL on the platform exactly as a new engine does, and denies on
    the site's signals exactly when one spelling, decided afresh, does."""
    decides_as_afresh(site_files(*files), [SITE + path for path in paths], purpose, PLATFORM)


def test_a_spelling_is_asked_of_the_sight_its_length_names_and_must_be_that_change() -> None:
    """The length of a spelling only names which sight to ask: a spelling one longer that is not the trailing slash
    as written (with or without a query), as long but not the path in lower case, or shorter but not a reading of
    the path's escapes, is matched (here tdmrep.json's ``/b`` selects it and not the canonical path)."""
    site = site_files(["/b"], [], [], [])
    for first, spelling in (("/a", "/b/"), ("/a?q", "/b?q1"), ("/a?q", "/b/?q"), ("/a", "/b"), ("/a%2Fx", "/b")):
        canonical = canonicalize(SITE + first)
        assert canonical.path_query == first
        paths = (first, spelling)
        keyer = PathKey(site, "consentcrawl")
        assert not keyer._blind(first, "%" not in first, paths, paths), spelling
        assert keyer.canonical_key(canonical, paths, paths) == \
            FullKey(site, "consentcrawl").canonical_key(canonical, paths, paths) != \
            keyer.canonical_key(canonical, (first,), (first,)), spelling
