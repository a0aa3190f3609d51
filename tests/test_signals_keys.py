"""A new URL's memo key (``signals.pathkey.PathKey``) is made cheaply: its path read off the canonical form without
a regex or a second normalisation, and its selection walked over flat rows of the files' patterns. These tests hold
each shortcut to what it replaces: ``reads_back`` to the regex it stands for, the canonical form to being its own
normal form, and the flat selection to the signals' own matchers (the tdmrep.json entry, the ``Content-Usage``
rules, the RSL ``<content>`` elements) on arbitrary patterns, origins and paths, and ai.txt's part (asked of the
matcher only where a ``Disallow`` reaches the path) to the matcher's verdict; and the site check's per-request
memory to deciding afresh.
"""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import example, given, settings
from hypothesis import strategies as st

from consentcrawl.robots.matcher import _path_spellings
from consentcrawl.signals._common import (
    _READ_BACK,
    PLAIN,
    PagePath,
    canonical_page,
    normal_path,
    reads_back,
    spelled_page,
    url_path,
)
from consentcrawl.signals.content_usage import selected_rules, usage_rules
from consentcrawl.signals.evaluate import SiteFiles
from consentcrawl.signals.pathkey import PathKey
from consentcrawl.signals.rsl import parse_rsl, selected_contents
from consentcrawl.signals.tdmrep import parse_tdmrep_file
from consentcrawl.urls import canonicalize

from .test_reuse_signals import HOSTS, URL_TEXT
from .test_signals_slash import site_files

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SITE = "https://site.example"


@settings(max_examples=600, deadline=None)
@given(text=st.text(alphabet="/a%?#Z9-~:@!;= é\\", max_size=10))
@example(text="/a?")
@example(text="/a??")
@example(text="/?")
@example(text="a")
@example(text="")
def test_reads_back_is_the_regex_it_stands_for(text: str) -> None:
    assert reads_back(text) == (_READ_BACK.fullmatch(text) is not None)


@settings(max_examples=500, deadline=None)
@given(scheme=st.sampled_from(["http", "https", "HTTP"]), host=HOSTS, rest=URL_TEXT)
@example(scheme="http", host="site.example", rest="%7e%2f%c3%a9?%41%26%2f=%3d")
def test_a_canonical_path_read_back_is_its_own_normal_form(scheme: str, host: str, rest: str) -> None:
    """What ``canonical_page`` skips: normalising the canonical path+query again never changes it, and the pair it
    gives is the path the signals read and that path's normal form."""
    try:
        canonical = canonicalize(f"{scheme}://{host}/{rest}")
    except ValueError:
        return
    path, normal, plain = canonical_page(canonical)
    assert path == url_path(canonical.url)
    assert normal == normal_path(path)
    assert bool(plain) == (":" not in canonical.host and PLAIN.fullmatch(canonical.path_query) is not None
                           and canonical.path_query == path)
    assert (plain is None) == (":" in canonical.host or not reads_back(canonical.path_query))
    if plain is not None:  # read back: the path as it is, its own normal form and robots.txt's literal one
        assert path == canonical.path_query == normal and _path_spellings(path) == (path, path)


@settings(max_examples=500, deadline=None)
@given(scheme=st.sampled_from(["http", "https"]), host=HOSTS, rest=URL_TEXT)
def test_every_spelling_of_a_request_is_read_as_its_url_would_be(scheme: str, host: str, rest: str) -> None:
    """``spelled_page`` reads each of a request's spellings (the slash as written, the lenient readings) as the
    signals read the URL of that spelling, and its normal form as ``PathPattern`` compares it."""
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.terms.platforms import PlatformRegistry

    try:
        facts = PolicyEngine(PlatformRegistry({}), "consentcrawl").facts(f"{scheme}://{host}/{rest}", "research", NOW)
    except ValueError:
        return
    for spelling in facts.robots_paths:
        url, path, normal = spelled_page(facts.canonical, spelling)
        text = url if isinstance(url, str) else url.url
        assert text == facts.canonical.origin + spelling or url is facts.canonical
        assert path == url_path(facts.canonical.origin + spelling)
        assert normal == normal_path(path)


#: patterns with ``*``, ``$``, escapes and full URLs on this origin or another, so that every branch of the rows
#: (prefix only, glob walk, origin) is met
PATTERN = st.text(alphabet="/ab*$?%7e.", max_size=7).map(lambda p: p if p[:1] in ("/", "*") else "/" + p)
LOCATION = PATTERN | PATTERN.map(lambda p: SITE + p) | PATTERN.map(lambda p: "https://other.example" + p) \
    | st.sampled_from(["https://", "https://[bad/x", "", "a"])
PAGE = st.text(alphabet="/ab.?%7e~", max_size=8).map(lambda p: "/" + p)


def _reference(files: SiteFiles, url: str) -> tuple[object, ...]:
    """The selection as the signals themselves make it (the matchers ``site_results`` calls)."""
    page = PagePath(url)
    parts: list[object] = []
    assert files.tdmrep is not None
    if files.tdmrep.body:
        entry = parse_tdmrep_file(files.tdmrep.body).match(page)
        parts.append(entry.index if entry is not None else None)
    assert files.robots is not None
    rules = usage_rules(files.robots, "consentcrawl")
    if rules:
        parts.append(tuple(r.line for r in selected_rules(rules, page)))
    for licence in files.licences.values():
        document = parse_rsl(licence.body)
        if document.error is None:  # a licence that cannot be read says the same for every page
            parts.append(tuple(c.index for c in selected_contents(document, page)))
    return tuple(parts)


@settings(max_examples=500, deadline=None)
@given(locations=st.lists(LOCATION, max_size=4), usage=st.lists(PATTERN, max_size=4),
       contents=st.lists(LOCATION, max_size=4), pages=st.lists(PAGE, min_size=1, max_size=5))
@example(locations=["/a*", "/"], usage=["/a", "/a$", "/ab"], contents=["/a", "/b"], pages=["/a", "/ab", "/b"])
@example(locations=["https://other.example/", SITE + "/a"], usage=[], contents=["https://other.example/"],
         pages=["/a"])
@example(locations=["/a%7e", "/a~"], usage=["/a%7E", "/a"], contents=["/a~$"], pages=["/a~", "/a%7e"])
@example(locations=["https://"], usage=[], contents=["https://"], pages=["/"])
def test_the_flat_selection_is_the_signals_own(locations: list[str], usage: list[str], contents: list[str],
                                              pages: list[str]) -> None:
    """For any files and pages, the key's selection (rows walked with ``startswith``, the glob walk for ``*`` and
    ``$``, the origin only where a statement names one) is what the tdmrep.json, ``Content-Usage`` and RSL
    matchers select; and the key of the page's URL is made of it."""
    files = site_files(locations, usage, contents)
    keyer = PathKey(files, "consentcrawl")
    for path in pages:
        url = SITE + path
        expected = _reference(files, url)
        assert keyer._select(url, url_path(url), normal_path(url_path(url)), False) == expected, (url, expected)
        assert keyer.key(url) == (None if keyer.origin_wide else expected)


#: ai.txt (robots.txt grammar) rules: escapes of unreserved characters (two spellings), ``*``, ``$``, groups for
#: our token and for others, Allow and Disallow
AI_RULE = st.tuples(st.sampled_from(["Allow", "Disallow"]), st.text(alphabet="/ab*$%7e~.", max_size=6))
AI_GROUP = st.tuples(st.sampled_from(["*", "consentcrawl", "other"]), st.lists(AI_RULE, max_size=4))


def _ai_body(groups: list[tuple[str, list[tuple[str, str]]]]) -> str:
    return "".join(f"User-agent: {agent}\n" + "".join(f"{verb}: {p}\n" for verb, p in rules)
                   for agent, rules in groups)


@settings(max_examples=300, deadline=None)
@given(groups=st.lists(AI_GROUP, min_size=1, max_size=3), pages=st.lists(PAGE, min_size=1, max_size=5))
@example(groups=[("*", [("Disallow", "/%7e")])], pages=["/~"])
@example(groups=[("*", [("Disallow", "/~")])], pages=["/%7e", "/~"])
@example(groups=[("*", [("Disallow", "/a"), ("Allow", "/ab")])], pages=["/ab", "/a"])
@example(groups=[("*", [("Disallow", "*.b$")])], pages=["/a.b", "/a.b/"])
@example(groups=[("*", [("Disallow", "/")])], pages=["/robots.txt"])
@example(groups=[("other", [("Disallow", "/")]), ("*", [("Allow", "/")])], pages=["/a"])
def test_the_ai_txt_part_is_the_matchers_verdict(groups: list[tuple[str, list[tuple[str, str]]]],
                                                 pages: list[str]) -> None:
    """The key's ai.txt part (the matcher asked only where a ``Disallow`` of our group reaches the path, in either
    spelling of the rule) is the matcher's own verdict for any rules and paths; and a path that is its own
    spelling and meets no ``Disallow`` is allowed."""
    from consentcrawl.robots.rules import RobotsRules
    from consentcrawl.signals.ai_txt import parse_ai_txt
    from consentcrawl.signals.fetch import from_response as signal_file

    body = _ai_body(groups)
    files = site_files([], [], [], None)
    files = SiteFiles(files.robots, files.tdmrep, signal_file("ai-txt", SITE + "/ai.txt", 200, body.encode(), NOW))
    rules = parse_ai_txt(body)
    reach = rules.disallow_reach("consentcrawl")
    assert reach is not None
    keyer = PathKey(files, "consentcrawl")
    for path in pages:
        match = rules.match(path, "consentcrawl")
        assert keyer._select(SITE + path, path, normal_path(path), False) == \
            ((None if match.allowed else (match.line, match.rule, match.group)),), (body, path)
        if _path_spellings(path) == (path, path) and reach.match(path) is None:
            assert match.allowed, (body, path)
    assert RobotsRules.disallow_all("unreachable").disallow_reach("consentcrawl") is None
    many = RobotsRules.parse("User-agent: *\n" + "".join(f"Disallow: /{i}\n" for i in range(100)))
    assert many.disallow_reach("consentcrawl") is None


@settings(max_examples=60, deadline=None)
@given(locations=st.lists(LOCATION, max_size=3), usage=st.lists(PATTERN, max_size=3),
       contents=st.lists(LOCATION, max_size=3), pages=st.lists(PAGE, min_size=1, max_size=4),
       purposes=st.lists(st.sampled_from(["ai-training", "search-indexing", "research"]), min_size=1, max_size=3))
@example(locations=["/a"], usage=[], contents=[], pages=["/a"], purposes=["ai-training", "research"])
@example(locations=[], usage=["/a/"], contents=[], pages=["/a"], purposes=["ai-training"])
@example(locations=[], usage=["/a"], contents=[], pages=["/a"], purposes=["ai-training"])
def test_a_request_decided_again_is_decided_as_afresh(locations: list[str], usage: list[str], contents: list[str],
                                                      pages: list[str], purposes: list[str]) -> None:
    """The site check remembers a request's outcome for its next decision (by its canonical URL's identity, with
    every input it was decided from). Each decision equals a new engine's: for the same request again, for another
    purpose (the same canonical object), with other spellings of the same canonical URL (the trailing slash as
    written), with other signal files beside the same robots.txt, with another robots.txt beside the same files,
    and with other files altogether."""
    from dataclasses import replace

    from consentcrawl.consent.answers import NO_STORE
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.terms.platforms import PlatformRegistry

    first = site_files(locations, usage, contents)
    beside = replace(site_files(contents, usage, locations), robots=first.robots)  # same robots.txt object
    other = site_files(contents, locations, usage)
    remembering = PolicyEngine(PlatformRegistry({}), "consentcrawl")
    for path in pages:
        for purpose in purposes:
            facts = remembering.facts(SITE + path, purpose, NOW)
            slashed = replace(facts, robots_paths=(facts.canonical.path + "/", *facts.robots_paths)) \
                if facts.canonical.path != "/" and not facts.canonical.query else facts
            for files, robots, asked in ((first, first.robots, facts), (first, first.robots, facts),
                                         (first, first.robots, slashed), (first, first.robots, facts),
                                         (beside, first.robots, facts), (beside, other.robots, facts),
                                         (other, other.robots, facts), (first, first.robots, facts)):
                made = remembering.decide(asked, robots, NO_STORE, files)
                fresh = PolicyEngine(PlatformRegistry({}), "consentcrawl").decide(asked, robots, NO_STORE, files)
                assert (made.verdict, made.reason, made.evidence) == (fresh.verdict, fresh.reason, fresh.evidence)
