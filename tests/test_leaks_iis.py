"""URL spellings that IIS on Windows (ASP.NET, or PHP behind FastCGI) serves as another person's page.

The test platform is served by :class:`tests.iis.IISPeople`, the lenient people site behind IIS's documented
reading of a path (its module docstring cites Microsoft's documents for each step): ``%uXXXX`` escapes, ``\\`` and
``%5C`` as ``/``, fullwidth forms as ASCII (best fit), NTFS streams (``::$DATA``), trailing dots and spaces
trimmed, case-insensitive names and 8.3 short names (``PROFIL~1.ASP``). Every crawl test is judged by that
server's own log: a spelling of a person the crawl may not collect is never requested (never served as theirs),
while an authorized person's ordinary URL still is. Tests marked "Fixed" failed on main (40d4575); "PIN" passed
there and cover a spelling no other test covers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.terms.load import load_platforms
from consentcrawl.terms.platforms import Platform, ProfileTemplate
from consentcrawl.urls import canonicalize
from consentcrawl_demo.server import LocalServer
from tests.iis import IIS_PROFILES, IISPeople, iis_path, iis_query
from tests.lenient import (
    KINDS,
    PLATFORMS_YAML,
    ListLogic,
    Robots,
    _route,
    crawl,
    make_spider,
    people_settings,
    record_yaml,
)

BASE = "http://people.example"

#: spellings IIS serves as a person's page (the person it serves), each read by a Windows rule the other lenient
#: readings lack. 101-103 and alice are authorized; 104 withdrew; the others never granted anything.
FIXED = {
    "/profile.php.?id=107": "107",  # trailing dot on the script: trimmed by Windows
    "/profile.aspx%20?id=108": "108",  # trailing space on the script
    "/profile.aspx.%20.?id=104": "104",
    "/profile.php::$DATA?id=109": "109",  # the file's own data stream
    "/profile.aspx::%24DATA?id=110": "110",
    "/u./111": "111",  # a directory with a trailing dot
    "/u::$INDEX_ALLOCATION/112": "112",  # a directory's index stream: the directory
    "/PROFIL~1.ASP?id=113": "113",  # 8.3 short name of profile.aspx
    "/people~1/114": "114",  # 8.3 short name of the directory people-profiles
    "/u/101/..%EF%BC%BC115": "115",  # a fullwidth backslash, read as ASCII, then as a separator
    "/u/101/..%C2%A5116": "116",  # the yen sign, best fit to a backslash in code page 932
    "/u/101/..%20/117": "117",  # a '.. ' segment, trimmed to '..'
    "/u/101/.../118": "118",
    "/(S(lit3py55t21z5v55vlm25s55))/u/119": "119",  # an ASP.NET cookieless session segment
    "/(A(x)F(y))/profile.aspx?id=120": "120",
}
#: spellings that were denied already on main, and must stay so
PINNED = {
    "/u\\107": "107",
    "/u%5C108": "108",  # an escaped backslash
    "/u/%u0031%u0030%u0039": "109",  # %uXXXX (Http.sys PercentUAllowed)
    "/profile.aspx?id=%u0031%u0031%u0030": "110",
    "/U/111": "111",  # case-insensitive paths
    "/PROFILE.ASPX?ID=112": "112",
    "/u/%EF%BC%91%EF%BC%91%EF%BC%93": "113",  # fullwidth digits: NFKC (and best fit) read them as 113
    "/@%EF%BC%A2%EF%BC%AF%EF%BC%A2": "bob",  # fullwidth letters: BOB
    "/profile.aspx?id=%EF%BC%91%EF%BC%91%EF%BC%94": "114",
    # Arabic-Indic digits, best fit to ASCII digits in code page 1256 (NFKC keeps them; a number parser reads them)
    "/u/%D9%A1%D9%A1%D9%A5": "115",
    "/profile.aspx?id=%D9%A1%D9%A1%D9%A6": "116",
}
#: the authorized people's ordinary URLs, which must still be fetched
ORDINARY = {"/u/101": "101", "/profile.aspx?id=102": "102", "/people-profiles/103": "103", "/@alice": "alice"}
DENIED = {*FIXED.values(), *PINNED.values()}


def iis_settings(tmp_path: Path) -> dict[str, Any]:
    """The people settings with the IIS site's templates; 104 withdrew, 101-103 and alice are authorized."""
    records = [record_yaml(s) for s in ("101", "102", "103", "alice")]
    records.append(record_yaml("104", revoked_at="2026-06-01T00:00:00Z"))
    settings = people_settings(tmp_path, records)
    platforms = Path(settings["CONSENTCRAWL_PLATFORMS"])
    platforms.write_text(platforms.read_text().replace(_PROFILES_LINE, f"profiles: {IIS_PROFILES}"))
    return settings


_PROFILES_LINE = 'profiles: ["/u/{subject}", "/@{subject}", "/profile.php?id={subject}"]'


def served_as(href: str) -> str | None:
    """The person the IIS site serves for ``href``."""
    path, _, query = href.partition("?")
    return _route(iis_path(path), iis_query(query))[1]


@pytest.mark.parametrize("href", [*FIXED, *PINNED, *ORDINARY])
def test_the_iis_site_serves_each_spelling_as_that_person(href: str) -> None:
    """The server the crawls are judged by reads each spelling as the person the tables say (its model holds)."""
    expected = {**FIXED, **PINNED, **ORDINARY}[href]
    assert served_as(href) == expected


async def _crawl_spellings(kind: str, hrefs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    app = IISPeople().links_page("/spellings", [*hrefs, *ORDINARY])
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), iis_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/spellings"], follow_links=True)
    served = set(app.people_served())
    assert not served & DENIED, f"denied people served: {sorted(served & DENIED)}\n{app.describe()}"
    assert set(ORDINARY.values()) <= served, f"an authorized person's ordinary URL was not fetched\n{app.describe()}"
    targets = {s.target.split("people.example", 1)[-1] for s in app.served}
    return result, targets


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_windows_spellings_of_a_denied_persons_page_are_never_requested(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. IIS opens ``profile.php.``, ``profile.aspx%20``, ``profile.php::$DATA``, ``u.`` and ``PROFIL~1.ASP``
    as the script or directory they name, and a fullwidth backslash or a yen sign (best fit) and a ``.. ``
    segment as a way up: each spelling here is served as the person in :data:`FIXED`, none of whom the crawl may
    collect (104 withdrew). They were read as no one's page (a script ``profile.php.`` is no template's) or as
    101's, and fetched. Now each is read as IIS reads it too, so the readings disagree and the URL is denied as
    ``subject.ambiguous-url``; the authorized people's ordinary URLs are still fetched."""
    result, _ = await _crawl_spellings(kind, list(FIXED), tmp_path, monkeypatch)
    reasons = {e.get("reason") for e in result.audit if e.get("verdict") == "deny"}
    assert "subject.ambiguous-url" in reasons, result.denies()


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_other_iis_spellings_stay_denied(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PIN. ``\\`` and ``%5C`` as ``/``, ``%uXXXX`` escapes, upper-case paths and parameter names, and fullwidth
    digits and letters (best fit reads them as ASCII; NFKC, which the readings apply, maps them the same way) are
    each served as a person the crawl may not collect, and none is requested. So are Arabic-Indic digits, which
    best fit maps to ASCII where NFKC does not: a number parser reads them as a number, and such an id is
    ambiguous."""
    await _crawl_spellings(kind, list(PINNED), tmp_path, monkeypatch)


# -- the property: whatever IIS reads a generated spelling as, the decision is that person's or a deny ----------

_SEGMENT_SUFFIXES = st.sampled_from(["", ".", " ", "%20", ". .", "::$DATA", ":$DATA", "::%24DATA", "%2E",
                                     "::$DATA.", "::$DATA%20"])
_SEPARATORS = st.sampled_from(["/", "\\", "%5C", "%2F", "%EF%BC%BC/", "/./", "//"])
_DIGIT_FORMS = st.sampled_from(["ascii", "fullwidth", "percent-u"])


def _digits(text: str, form: str) -> str:
    if form == "fullwidth":
        return "".join("%EF%BC%" + format(0x90 + int(c), "02X") for c in text)
    if form == "percent-u":
        return "".join(f"%u{ord(c):04X}" for c in text)
    return text


@st.composite
def _iis_spellings(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(["", "/(S(lit3py55t21z5v55vlm25s55))"])) + draw(_iis_paths())


@st.composite
def _iis_paths(draw: st.DrawFn) -> str:
    person = draw(st.sampled_from(["101", "107", "104"]))
    ident = _digits(person, draw(_DIGIT_FORMS))
    kind = draw(st.sampled_from(["u", "people-profiles", "profile.aspx", "profile.php", "up"]))
    if kind == "up":  # an authorized person's page, then a way up to another person
        other = draw(st.sampled_from(["107", "104"]))
        way_up = draw(st.sampled_from(["..", ". .", "..%20", "...", "..::$DATA"]))
        return f"/u/101{draw(_SEPARATORS)}{way_up}{draw(_SEPARATORS)}{_digits(other, draw(_DIGIT_FORMS))}"
    name = draw(st.sampled_from({"u": ["u", "U"],
                                 "people-profiles": ["people-profiles", "PEOPLE~1", "people~1", "PEOPLE%7E1"],
                                 "profile.aspx": ["profile.aspx", "PROFIL~1.ASP", "Profile.ASPX",
                                                  "PROFIL%EF%BD%9E1.ASP"],
                                 "profile.php": ["profile.php", "PROFILE.PHP"]}[kind]))
    name += draw(_SEGMENT_SUFFIXES)
    if kind.startswith("profile."):
        return f"/{name}?{draw(st.sampled_from(['id', 'ID', 'Id']))}={ident}"
    return f"/{name}{draw(_SEPARATORS)}{ident}{draw(_SEGMENT_SUFFIXES)}"


def _iis_platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    directory = tmp_path_factory.mktemp("iis")
    (directory / "platforms.yaml").write_text(PLATFORMS_YAML.replace(_PROFILES_LINE, f"profiles: {IIS_PROFILES}"))
    platform = load_platforms(directory / "platforms.yaml").get("people")
    assert platform is not None
    return platform


@pytest.fixture(scope="module")
def iis_platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    return _iis_platform(tmp_path_factory)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(href=_iis_spellings())
def test_a_person_iis_reads_a_spelling_as_is_the_person_decided(iis_platform: Platform, href: str) -> None:
    """Whoever the IIS site serves for a generated spelling (script or directory names with trailing dots,
    spaces and streams, short names, case, backslashes fullwidth or escaped, ``%uXXXX`` and fullwidth digits,
    ways up, a cookieless session segment), the URL is decided as that person's page or denied as ambiguous:
    never as another person's, never as no one's."""
    url = BASE + href
    try:
        canonical = canonicalize(url)
    except ValueError:
        return  # not a URL the crawl would send: denied as error.bad-url
    served = served_as(href)
    reading = iis_platform.read_subject(url, canonical)
    if served is not None:
        assert reading.ambiguous or reading.subject == served, (href, served, reading)


#: spellings IIS serves as ``/private/page``, which robots.txt disallows with ``Disallow: /private/``
PRIVATE = ["/private./page", "/private%20/page", "/private::$INDEX_ALLOCATION/page", "/PRIVATE./page"]


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_robots_rules_are_matched_against_the_path_iis_opens(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. ``Disallow: /private/`` is about the page IIS serves, and it serves ``/private./page``,
    ``/private%20/page`` and ``/private::$INDEX_ALLOCATION/page`` as ``/private/page`` (no one's profile, so only
    robots.txt can stop them). They were matched as written, which no rule disallows, and fetched. Now robots rules
    are matched against the Windows reading of the path too; ``/ok/page``, the control, is still fetched."""
    app = IISPeople(default_robots=Robots(body="User-agent: *\nDisallow: /private/\n"))
    app.page("/private/page", "<html><body>private</body></html>").page("/ok/page", "<html><body>ok</body></html>")
    app.links_page("/spellings", [*PRIVATE, "/ok/page"])
    with LocalServer(app) as server:
        await crawl(make_spider(kind, ListLogic), iis_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch, urls=[f"{BASE}/spellings"])
    paths = [s.path for s in app.served]
    assert "/ok/page" in paths, app.describe()
    assert "/private/page" not in paths, app.describe()


@pytest.mark.parametrize(("path", "subject"), [
    ("/wiki/User:Alice", "alice"), ("/wiki/user:alice/talk", "alice"), ("/wiki/Special:Random", None),
])
def test_a_colon_that_is_no_ntfs_stream_still_names_its_person(path: str, subject: str | None) -> None:
    """A template whose literal holds a colon (MediaWiki's ``/wiki/User:{subject}``) still names its person: only a
    stream suffix with its ``$`` type (``::$DATA``) is cut in the Windows reading, so ``User:Alice`` is not read
    as the file ``User`` and the URL is not denied as ambiguous."""
    wiki = Platform(name="wiki", domains=frozenset({"wiki.example"}), authorization=None,
                    profiles=(ProfileTemplate.compile("/wiki/User:{subject}", "[A-Za-z0-9_]+"),))
    url = f"http://wiki.example{path}"
    reading = wiki.read_subject(url, canonicalize(url))
    assert (reading.subject, reading.ambiguous) == (subject, False)


#: 8.3 short names whose ``~`` is escaped or fullwidth: IIS decodes the escape (and best fit reads a fullwidth
#: tilde as ``~``) before it opens the name, so each is served as the person here
SHORT_ESCAPED = {
    "/PROFIL%7E1.ASP?id=109": "109",
    "/people%7e1/110": "110",
    "/PROFIL%EF%BD%9E1.ASP?id=111": "111",  # the fullwidth tilde, best fit to '~'
    "/people%EF%BD%9E1/112": "112",
}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_short_name_with_an_escaped_tilde_is_denied(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. Short names were read only when the URL as written held a ``~``, so ``/PROFIL%7E1.ASP?id=109`` and
    ``/people%7e1/110`` (and a fullwidth tilde) were read as no one's page and fetched, and IIS served them as
    109's and 110's. Now a reading whose text holds a ``~`` is read with short names too, however it was
    written."""
    assert {href: served_as(href) for href in SHORT_ESCAPED} == SHORT_ESCAPED
    await _crawl_spellings(kind, list(SHORT_ESCAPED), tmp_path, monkeypatch)


#: NTFS stream suffixes followed by dots or spaces: Windows trims those off the path first, then reads the stream
STREAM_TRIMMED = {
    "/profile.aspx::$DATA%20?id=113": "113",
    "/profile.php::$DATA.?id=114": "114",
    "/u::$INDEX_ALLOCATION./115": "115",
}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_stream_suffix_followed_by_dots_or_spaces_is_denied(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. The Windows reading cut a ``::$DATA`` suffix only at the very end of a segment, and then trimmed
    dots and spaces; Windows trims them first, so ``/profile.aspx::$DATA%20?id=113`` is ``profile.aspx`` to IIS and
    was read as no one's page (the script ``profile.aspx::$DATA``) and fetched. Now the segment is trimmed before
    its stream suffix is cut, too."""
    assert {href: served_as(href) for href in STREAM_TRIMMED} == STREAM_TRIMMED
    await _crawl_spellings(kind, list(STREAM_TRIMMED), tmp_path, monkeypatch)
