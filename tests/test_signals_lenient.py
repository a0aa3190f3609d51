"""A URL a decoding server reads otherwise (``/b/0%2F1`` is ``/b/0/1`` to it) is decided for every spelling; the
site check skips matching a spelling only where no pattern of the site's files can tell it from the canonical path
(``signals._common.SpellingSight``, beside the trailing slash's ``SlashSight``). These tests prove that shortcut
never changes a key or a decision: the analysis against the matchers themselves on arbitrary patterns and pairs of
spellings, the key against the full selection of every spelling, and the engine's decisions against deciding
every spelling afresh; and they name the cases each rule of the analysis exists for, so that dropping one fails.
"""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import example, given, settings
from hypothesis import strategies as st

from consentcrawl.robots.matcher import _glob_match, _path_spellings, _pieces
from consentcrawl.robots.rules import RobotsRules
from consentcrawl.signals._common import PathPattern, SpellingSight
from consentcrawl.signals.evaluate import PathKey
from consentcrawl.urls import CanonicalURL

from .test_reuse_signals import HOSTS
from .test_signals_slash import FILES, FullKey, decides_as_afresh, keys_agree, site_files

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SITE = "https://site.example"

#: the characters of a decoded ``%2F`` (and of ``;`` parameters and dot-segments) around letters, with ``*``, ``$``
ALPHABET = "/a%2F;.?1"
PATTERN = st.text(alphabet=ALPHABET + "*$", max_size=9).map(lambda p: p if p[:1] in ("/", "*") else "/" + p)
TEXT = st.text(alphabet=ALPHABET, max_size=6)


def _spellings(common: str, one: str, other: str, tail: str) -> tuple[str, str]:
    return "/" + common + one + tail, "/" + common + other + tail


def _matchers_agree(patterns: list[str], a: str, b: str) -> None:
    """Where the sight of ``patterns`` cannot tell ``a`` from ``b``, each pattern matches both or neither: the glob
    walk, a :class:`PathPattern` (a tdmrep.json ``location``, a ``Content-Usage`` path, an RSL ``<content url>``,
    whose pieces are the pattern's normal form), and the robots.txt regexes of an ai.txt or robots.txt group."""
    if not SpellingSight([_pieces(p) for p in patterns]).tells_apart(a, b):
        for pattern in patterns:
            assert _glob_match(*_pieces(pattern), a) == _glob_match(*_pieces(pattern), b), (pattern, a, b)
    compiled = [PathPattern(p) for p in patterns]
    if not SpellingSight([(c.pieces, c.anchored) for c in compiled]).tells_apart(a, b):
        for pattern in compiled:
            assert pattern.matches_normal(a) == pattern.matches_normal(b), (pattern.pattern, a, b)
    if _path_spellings(a) != (a, a) or _path_spellings(b) != (b, b):
        return  # the matcher compares another text (the caller never asks for such a path)
    for verb in ("Disallow", "Allow"):
        rules = RobotsRules.parse("User-agent: *\nDisallow: /\n" * (verb == "Allow")
                                  + "User-agent: *\n" + "".join(f"{verb}: {p}\n" for p in patterns))
        sight = SpellingSight([_pieces(p) for p in rules.patterns("consentcrawl")], ("/robots.txt",))
        if not sight.tells_apart(a, b):
            assert rules.match(a, "consentcrawl") == rules.match(b, "consentcrawl"), (verb, patterns, a, b)


@settings(max_examples=1000, deadline=None)
@given(patterns=st.lists(PATTERN, min_size=1, max_size=4), common=TEXT, one=TEXT, other=TEXT, tail=TEXT)
@example(patterns=["/a/"], common="a", one="%2F", other="/", tail="1")
@example(patterns=["*/1"], common="a", one="%2F", other="/", tail="1")
@example(patterns=["*F1"], common="a", one="%2F", other="/", tail="1")
@example(patterns=["*a/"], common="a", one="%2F", other="/", tail="1")
@example(patterns=["*.a$"], common="a", one="%2F", other="/", tail="1.a")
@example(patterns=["/a%2F1$"], common="a", one="%2F", other="/", tail="1")
@example(patterns=["/a/"], common="a", one="", other="/", tail="")
def test_a_pattern_blind_to_the_change_matches_both_spellings_or_neither(patterns: list[str], common: str,
                                                                         one: str, other: str, tail: str) -> None:
    """Two spellings that share a start and an end, each pattern on arbitrary text."""
    _matchers_agree(patterns, *_spellings(common, one, other, tail))


@settings(max_examples=800, deadline=None)
@given(common=TEXT, one=TEXT, other=TEXT, tail=TEXT, data=st.data())
def test_patterns_cut_from_either_spelling_match_both_or_neither_where_blind(common: str, one: str, other: str,
                                                                             tail: str, data: st.DataObject) -> None:
    """The same, with patterns cut from the spellings themselves (pieces joined by ``*``, maybe anchored), which
    arbitrary text rarely hits: a piece across the change, a first piece that reaches past the common start."""
    a, b = _spellings(common, one, other, tail)
    text = data.draw(st.sampled_from([a, b]))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), min_size=2, max_size=6)))
    pieces = [text[x:y] for x, y in zip(cuts[::2], cuts[1::2], strict=False)]
    pattern = ("" if cuts[0] == 0 else "*") + "*".join(pieces) + data.draw(st.sampled_from(["", "$", "*", "*$"]))
    _matchers_agree([pattern], a, b)


def test_the_analysis_sees_the_patterns_that_tell_a_reading_apart() -> None:
    """The cases each rule exists for, on ``/b/0%2F1`` read ``/b/0/1`` (the part before the escape: ``/b/0``)."""
    def tells(*patterns: str, exact: tuple[str, ...] = ()) -> bool:
        return SpellingSight([_pieces(p) for p in patterns], exact).tells_apart("/b/0%2F1", "/b/0/1")

    # a first piece that reaches past the common start: only the reading is under /b/0/
    assert tells("/b/0/") and tells("/b/0%2F") and tells("/b/0/1$") and tells("/b/0/*x")
    assert not tells("/b/") and not tells("/b/0") and not tells("/c/0/") and not tells("/b/1/")
    # a later piece with a character of the changed stretch: ``/1`` is only in the reading, ``F1`` only in the other
    assert tells("*/1") and tells("*F1") and tells("/b*%") and tells("*2*$") and tells("*0/")
    assert not tells("*.jpg") and not tells("*x$") and not tells("/b*0*") and not tells("/*b")
    assert tells("*1$")  # the stretch is all that follows the cut: the ``1`` both end with counts
    # an exact path (ai.txt's /robots.txt, always allowed) is a first piece
    assert SpellingSight([], ("/robots.txt",)).tells_apart("/robots%3Btxt", "/robots.txt")
    assert not SpellingSight([], ("/robots.txt",)).tells_apart("/b/0%2F1", "/b/0/1")
    # the part before the first escape, or with none the first ``;``, must start the other spelling, which goes on
    assert not SpellingSight([]).tells_apart("/b/0;x/1", "/b/0/1") and not SpellingSight([]).tells_apart("/b%2F", "/b/")
    assert SpellingSight([]).tells_apart("/b/0%2F1", "/c/0/1") and SpellingSight([]).tells_apart("/b/0%2F1", "/b/0")
    assert SpellingSight([]).tells_apart("/b/0", "/b/0/") and SpellingSight([]).tells_apart("/b/0/", "/b/0")


# -- the key: the shortcut against the full selection of every spelling --------------------------------------------

#: URL paths a decoding server may read otherwise: escaped separators and dots, ``;`` parameters, ``\\``, escapes of
#: unreserved characters, a trailing slash, a query; mixed with what the files' patterns name
PARTS = ["/", "a", "b", "%2F", "%2f", "%2E%2E", "..", ";x", ";", "%3B", "\\", "%41", "%7e", "%25", "%C3%A9", "é",
         ".jpg", "1", "F", "?", "q=%2F", "&"]
LENIENT = st.lists(st.sampled_from(PARTS), max_size=8).map(lambda parts: "/" + "".join(parts))


@settings(max_examples=400, deadline=None)
@given(files=FILES, paths=st.lists(LENIENT, min_size=1, max_size=5), host=HOSTS | st.just("site.example"))
@example(files=(["/a/"], [], [], []), paths=["/a%2F1"], host="site.example")
@example(files=([], ["/a/"], [], []), paths=["/a%2F1"], host="site.example")
@example(files=([], [], ["/a/*"], []), paths=["/a%2F1"], host="site.example")
@example(files=([], [], [], ["/a/"]), paths=["/a%2F1"], host="site.example")
@example(files=([], [], [], ["*a/1"]), paths=["/b/a%2F1"], host="site.example")
@example(files=([], [], [], ["/aé"]), paths=["/a%C3%A9%2F1"], host="site.example")
@example(files=([], [], [], ["/a$"]), paths=["/a;x"], host="site.example")
@example(files=([], [], [], ["/a/"]), paths=["/a%2f1/"], host="site.example")
@example(files=([], [], [], ["/A/"]), paths=["/%41%2F1"], host="site.example")
@example(files=(["/a/1"], [], [], []), paths=["/a%2F1"], host="[::1]")
def test_the_shortcut_key_is_the_key_of_every_spelling(files: tuple[list[str], ...], paths: list[str],
                                                        host: str) -> None:
    """For URLs with lenient readings (and trailing slashes), allowed by robots.txt or not known to be, on any host,
    the key (what the memo decides by) is the one made by selecting every spelling."""
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.terms.platforms import PlatformRegistry

    site = site_files(*files)
    engine = PolicyEngine(PlatformRegistry({}), "consentcrawl")
    fast = PathKey(site, "consentcrawl")
    for path in paths:
        try:
            facts = engine.facts(f"https://{host}{path}", "ai-training", NOW)
        except ValueError:
            continue
        for allowed in ((), facts.robots_paths, facts.robots_paths[:1]):
            assert fast.canonical_key(facts.canonical, allowed, facts.robots_paths) == \
                FullKey(site, "consentcrawl").canonical_key(facts.canonical, allowed, facts.robots_paths), facts


#: spellings as any caller may pass them: escapes in any case (``%7e`` is ``~`` in normal form), non-ASCII, spaces
SPELLING = st.lists(st.sampled_from([*PARTS, "%7e", "~", " ", "robots.txt", ".txt", "#"]), max_size=6).map(
    lambda parts: "/" + "".join(parts))


@settings(max_examples=400, deadline=None)
@given(files=FILES, path=LENIENT, spellings=st.lists(SPELLING, min_size=1, max_size=3),
       disallow=st.lists(PATTERN, max_size=2))
@example(files=(["/a~"], [], [], []), path="/a%2F1", spellings=["/a%7e"], disallow=[])
@example(files=(["/a$"], [], [], []), path="/axb", spellings=["/a#b"], disallow=[])
@example(files=(["/a$"], [], [], []), path="/a%2Fb", spellings=["/a#/b"], disallow=[])
@example(files=(["*~"], [], [], []), path="/a%2F1", spellings=["/a%7e"], disallow=[])
@example(files=(["/x$"], [], [], []), path="/x%2Fq", spellings=["/x?"], disallow=[])
@example(files=([], [], [], ["/"]), path="/robots%3Btxt", spellings=["/robots.txt"], disallow=[])
@example(files=([], [], [], ["/"]), path="/robots.txt", spellings=["/robots;txt"], disallow=[])
@example(files=([], ["/"], [], []), path="/a%2F1", spellings=["/a/1"], disallow=["/a/"])
def test_the_key_is_that_of_every_spelling_given(files: tuple[list[str], ...], path: str, spellings: list[str],
                                                 disallow: list[str]) -> None:
    """Whatever spellings a caller hands in (escapes not in normal form, text that does not read back, one that is
    ``/robots.txt``, which ai.txt always allows) and whatever robots.txt disallows (``Content-Usage`` rules apply
    to crawlable paths only), the key is the one made by selecting every spelling."""
    from consentcrawl.urls import canonicalize

    try:
        canonical = canonicalize(SITE + path)
    except ValueError:
        return
    keys_agree(files, disallow, canonical, (*spellings, canonical.path_query))


def test_a_canonical_path_not_read_back_is_matched() -> None:
    """Where the canonical URL is split to read its path (an IPv6 host), the path read is not known to be its own
    normal form, so the spellings are matched rather than compared as text: ``/x%2F%7e`` (an escape
    ``canonicalize`` never leaves in lower case, but the key maker takes any canonical URL) is ``/x%2F~`` to the
    patterns, which ``*~`` selects and the spelling ``/x/1`` does not."""
    site = site_files(["*~"], [], [], [])
    canonical = CanonicalURL("https", "::1", 443, "/x%2F%7e", "")
    paths = ("/x%2F%7e", "/x/1")
    assert PathKey(site, "consentcrawl").canonical_key(canonical, paths, paths) == \
        FullKey(site, "consentcrawl").canonical_key(canonical, paths, paths)


def test_the_shortcut_is_taken_for_a_lenient_reading_no_pattern_sees() -> None:
    """It exists to be taken: on the benchmark's kind of site the reading of ``/b/0%2F1`` is not matched (its key is
    the canonical path's alone); where a pattern sees the change, every spelling is."""
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.terms.platforms import PlatformRegistry

    engine = PolicyEngine(PlatformRegistry({}), "consentcrawl")
    facts = engine.facts(SITE + "/b/0%2F1", "ai-training", NOW)
    assert facts.robots_paths == ("/b/0%2F1", "/b/0/1")
    paths = facts.robots_paths
    for files in ((["/private/*", "/"], [], [], []), ([], ["/", "/private/"], [], []), ([], [], ["/private/*"], []),
                  ([], [], [], ["/private/", "*.jpg"])):
        keyer = PathKey(site_files(*files), "consentcrawl")
        assert keyer._blind(facts.canonical.path_query, False, paths, paths), files
        for url in ("/b/0%2F1/?q=1", "/b/1/?q=1"):  # the slash as written before a query, with a reading or not
            other = engine.facts(SITE + url, "ai-training", NOW)
            assert len(other.robots_paths) > 1
            spellings = other.robots_paths
            assert keyer._blind(other.canonical.path_query, "%" not in url, spellings, spellings), (url, files)
    for files in ((["/b/0/"], [], [], []), ([], [], [], ["*/1"]), ([], ["/b/0/"], [], [])):
        keyer = PathKey(site_files(*files), "consentcrawl")
        assert not keyer._blind(facts.canonical.path_query, False, paths, paths), files
        assert keyer.canonical_key(facts.canonical, paths, paths) != \
            keyer.canonical_key(engine.facts(SITE + "/b/0%2F2", "ai-training", NOW).canonical, (), ()), files
    keyer = PathKey(site_files([], ["/"], [], []), "consentcrawl")  # robots.txt can tell them apart
    assert not keyer._blind(facts.canonical.path_query, False, paths, ())


@settings(max_examples=150, deadline=None)
@given(files=FILES, paths=st.lists(LENIENT, min_size=1, max_size=4),
       purpose=st.sampled_from(["ai-training", "search-indexing", "research"]))
@example(files=([], ["/a/"], [], []), paths=["/a%2F1", "/a%2F1"], purpose="ai-training")
@example(files=([], [], [], ["/a/"]), paths=["/a%2F1"], purpose="ai-training")
@example(files=([], [], [], ["/a/é"]), paths=["/a%2F%C3%A8", "/a%2F%C3%A9"], purpose="ai-training")
def test_a_remembering_engine_decides_lenient_urls_as_every_spelling_decided_afresh(
        files: tuple[list[str], ...], paths: list[str], purpose: str) -> None:
    """The engine (memo and shortcut) decides each URL exactly as a new engine does, and denies on the site's
    signals exactly when one spelling, decided afresh, does."""
    decides_as_afresh(site_files(*files), [SITE + path for path in paths], purpose)


@settings(max_examples=600, deadline=None)
@given(path=st.text(alphabet="/a%2Ff7e~?;#[] é", max_size=10), patterns=st.lists(PATTERN, max_size=3),
       allow=st.lists(PATTERN, max_size=2))
@example(path="/a%2F", patterns=["/a/"], allow=[])
@example(path="/a%2f", patterns=["/a%2F"], allow=[])
@example(path="/a%7e", patterns=["/a~"], allow=[])
def test_a_path_that_is_its_normal_form_is_matched_as_it_is(path: str, patterns: list[str], allow: list[str]) -> None:
    """The key tells the ai.txt matcher that a path equal to its normal form is its own literal spelling too
    (``spelled``), so the matcher skips working both out: the same match as without."""
    from consentcrawl.signals._common import normal_path

    if normal_path(path) != path:
        return
    assert _path_spellings(path) == (path, path)
    rules = RobotsRules.parse("User-agent: *\n" + "".join(f"Disallow: {p}\n" for p in patterns)
                              + "".join(f"Allow: {p}\n" for p in allow))
    assert rules.match(path, "consentcrawl", True) == rules.match(path, "consentcrawl")
