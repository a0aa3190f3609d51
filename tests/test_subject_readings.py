"""Whose page is it? A URL is decided for every person a reasonable server could read it as.

A lenient server (decodes every escape once, ``%2F`` included, turns ``\\`` into ``/``, drops ``;`` parameters,
resolves dot-segments after decoding, reads ids with a Unicode-aware parser) must never be able to serve a person
the policy did not decide for: each such spelling is either ambiguous (a deny) or resolves to that very person.
"""

from __future__ import annotations

import posixpath
import re
import textwrap
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from consentcrawl.errors import ConfigError
from consentcrawl.terms import platforms as platforms_module
from consentcrawl.terms.load import load_platforms
from consentcrawl.terms.platforms import (
    NOT_A_PROFILE,
    Platform,
    ProfileTemplate,
    SubjectReading,
    compile_subject_regex,
)
from consentcrawl.terms.readings import is_plain, readings
from consentcrawl.urls import canonicalize, raw_path_query, registered_domain

SETTINGS = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

DIGITS = "[0-9]+"
HANDLE = "[A-Za-z0-9_]+"


def platform(*templates: str, regex: str = DIGITS, case_sensitive: bool = False, name: str = "mb") -> Platform:
    return Platform(
        name=name,
        domains=frozenset({f"{name}.example"}),
        authorization=None,
        profiles=tuple(ProfileTemplate.compile(t, regex) for t in templates),
        subject_regex=regex,
        case_sensitive=case_sensitive,
    )


MB = platform("/u/{subject}", "/profile/{subject}")
AT = platform("/@{subject}", regex=HANDLE, name="at")
AT_CS = platform("/@{subject}", regex=HANDLE, case_sensitive=True, name="atcs")
FB = platform("/profile.php?id={subject}", name="fb")


def read(p: Platform, path_query: str) -> SubjectReading:
    url = f"http://{p.name}.example{path_query}"
    return p.read_subject(url, canonicalize(url))



# -- the spellings a lenient server reads as someone else ---------------------------------------------------------


@pytest.mark.parametrize(("path", "served"), [
    ("/u/101/..%2F107", "107"),
    ("/u/101/..%2f107", "107"),
    ("/u/101/%2e%2e%2f108", "108"),
    ("/u/101/%2E%2E%2F108", "108"),
    ("/u/101/..;/104", "104"),
    ("/u/101/..%3B/104", "104"),
    ("/u/0107", "107"),  # int() reads ids as numbers
    ("/u/1_07", "107"),
    ("/u/+107", "107"),
    ("/u/%20107", "107"),
    ("/u/\u0661\u0660\u0667", "107"),  # Arabic-Indic digits: NFKC keeps them, int() reads them
    ("/u/101/..%5C104", "104"),
    ("/u/101/..%5c..%5cu%5c104", "104"),
    ("/u%2F110", "110"),
    ("/u%2f110", "110"),
    ("/u%5C110", "110"),
    ("/u/109%2F", "109"),
    ("/u/109%2Ffollowers", "109"),
    ("/u/104;jsessionid=1", "104"),
    ("/u;x/104", "104"),
    ("/u/\uff11\uff10\uff15", "105"),  # fullwidth digits
    ("/u/1\uff105", "105"),
    ("/u/101\uff0f..\uff0f107", "107"),  # fullwidth solidus
])
def test_lenient_spellings_are_ambiguous(path: str, served: str) -> None:
    result = read(MB, path)
    assert result.ambiguous, result
    assert result.subject is None
    assert served in {key for _, key in result.readings} or result.readings  # evidence: what each reading saw
    assert all(isinstance(text, str) and text.startswith("/") for text, _ in result.readings)


def test_ambiguous_evidence_names_each_reading() -> None:
    result = read(MB, "/u/101/..%2F107")
    assert result == SubjectReading(None, True, (("/u/101/..%2F107", "101"), ("/u/107", "107")))
    assert read(MB, "/u/104;jsessionid=1").readings == (("/u/104;jsessionid=1", None), ("/u/104", "104"))


@pytest.mark.parametrize("path", [
    "/u/",  # the prefix alone
    "/u//",
    "/u/abc",  # under /u/ but not an id of [0-9]+
    "/u/101abc",
    "/u/%31%30%31x",
    "/u/%FF",  # not UTF-8: no id can be read from it
    "/profile/",
    "/profile/me",
    "/U/x/followers",
])
def test_paths_under_a_prefix_that_name_no_one_are_ambiguous(path: str) -> None:
    assert read(MB, path).ambiguous


@pytest.mark.parametrize(("path", "subject"), [
    ("/u/1001", "1001"),
    ("/u/1001/followers", "1001"),
    ("/u/1001/followers/page/2", "1001"),
    ("/U/1001", "1001"),
    ("/PROFILE/42", "42"),
    ("/u/1001/", "1001"),
    ("/u//1001", "1001"),
    ("/u/./1001", "1001"),
    ("/x/../u/1001", "1001"),
    ("/u/%31%30%30%31", "1001"),  # escapes of unreserved characters: every reading decodes them
    ("/u/101/.%2E/1001", "1001"),  # a dot-segment to every reading, the canonical one included
    ("/\uff55/1001", "1001"),  # fullwidth u: literals compare folded, in every reading
    ("/u/1001?tab=posts", "1001"),
    ("/u/1001?q=a+b%20c;d", "1001"),  # a path template does not read the query
    ("/u/1001#followers", "1001"),
    ("\\u\\1001", "1001"),
])
def test_profile_urls_name_their_person(path: str, subject: str) -> None:
    assert read(MB, path) == SubjectReading(subject)


@pytest.mark.parametrize("path", ["/", "/u", "/users/1001", "/about", "/people?page=2", "/uu/1", "/u1/2", "/x/u/1",
                                  "/profile", "/static/app.js"])
def test_other_pages_are_no_ones(path: str) -> None:
    assert read(MB, path) is NOT_A_PROFILE


def test_a_platform_without_templates_has_no_profiles() -> None:
    bare = Platform("forum", frozenset({"forum.example"}), None)
    assert read(bare, "/u/101/..%2F107") is NOT_A_PROFILE


@pytest.mark.parametrize(("path", "expected"), [
    ("/@alice", SubjectReading("alice")),
    ("/@Alice", SubjectReading("alice")),
    ("/@ALICE/posts", SubjectReading("alice")),
    ("/%40alice", SubjectReading("alice")),
    ("/\uff20alice", SubjectReading("alice")),  # fullwidth @
    ("/@\uff21lice", None),  # fullwidth A: a lenient server reads alice, a strict one no valid handle
    ("/@", None),
    ("/@alice.json", None),
    ("/@alice;x", None),
    ("/about", NOT_A_PROFILE),
    ("/", NOT_A_PROFILE),
])
def test_handle_template(path: str, expected: SubjectReading | None) -> None:
    result = read(AT, path)
    if expected is None:
        assert result.ambiguous
    else:
        assert result == expected


# -- several templates, segments shared with literals --------------------------------------------------------------


def test_literal_text_around_the_subject() -> None:
    p = platform("/u/{subject}.json", "/people/{subject}/about", regex="[a-z0-9]+")
    assert read(p, "/u/bob.json") == SubjectReading("bob")
    assert read(p, "/u/BOB.JSON/raw") == SubjectReading("bob")
    assert read(p, "/u/bob") is NOT_A_PROFILE  # someone, but not the page the template names
    assert read(p, "/u/bob.xml").ambiguous  # under /u/, and "bob.xml" is no id
    assert read(p, "/u/.json").ambiguous
    assert read(p, "/people/bob/about") == SubjectReading("bob")
    assert read(p, "/people/bob/about/more") == SubjectReading("bob")
    assert read(p, "/people/bob") is NOT_A_PROFILE
    assert read(p, "/people/bob/posts") is NOT_A_PROFILE
    assert read(p, "/people/bob/posts/..%2Fabout").ambiguous


def test_two_templates_naming_different_people_is_ambiguous() -> None:
    p = platform("/u/{subject}", "/u/friend/{subject}")
    assert read(p, "/u/friend/7").ambiguous  # "friend" is no id under /u/: when unsure, deny
    q = platform("/u/{subject}", "/x/{subject}", regex="[^/]+")
    assert read(q, "/u/7") == SubjectReading("7")


def test_a_template_at_the_root_makes_every_first_segment_someone() -> None:
    p = platform("/{subject}", regex="[A-Za-z0-9_-]+")
    assert read(p, "/alice") == SubjectReading("alice")
    assert read(p, "/Alice/repos") == SubjectReading("alice")
    assert read(p, "/robots.txt").ambiguous  # under the prefix "/", and no handle
    assert read(p, "/").ambiguous  # the prefix alone, as "/u/" is for "/u/{subject}"


# -- query templates ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path_query", "expected"), [
    ("/profile.php?id=5", SubjectReading("5")),
    ("/profile.php?x=1&id=5&y=2", SubjectReading("5")),
    ("/profile.php?ID=5", SubjectReading("5")),
    ("/Profile.PHP?id=5", SubjectReading("5")),
    ("/profile.php?id=%35", SubjectReading("5")),
    ("/profile.php?%69d=5", SubjectReading("5")),
    ("/profile.php?id=5&id=5", SubjectReading("5")),
    ("/profile.php/extra?id=5", SubjectReading("5")),  # PATH_INFO: still profile.php
    ("/profile.php?id=5#x", SubjectReading("5")),
    ("/profile.php", NOT_A_PROFILE),
    ("/profile.php?name=5", NOT_A_PROFILE),
    ("/index.php?id=5", NOT_A_PROFILE),
    ("/profile.phpx?id=5", NOT_A_PROFILE),
    ("/profile.php?id=1&id=2", None),
    ("/profile.php?id=1&ID=2", None),
    ("/profile.php?id=", None),
    ("/profile.php?id", None),
    ("/profile.php?id=abc", None),
    ("/profile.php?id=5;id=6", None),  # ";" separates parameters on some servers
    ("/profile.php?id=5%26id%3D6", None),
    ("/profile.php?id=%EF%BC%95", None),  # fullwidth 5
    ("/profile.php?id=+5", None),
    ("/x/..%2Fprofile.php?id=5", None),
    ("/profile.php?id[]=5", None),  # a list of ids to PHP, Rails, Express's qs: String(["5"]) is "5"
    ("/profile.php?id%5B0%5D=5", None),
    ("/profile.php?x=1&ID[]=5", None),
    ("/profile.php?id=5&id[x]=6", None),
    # a path after a PHP script is also the route a front controller serves (PATH_INFO): its person, or ambiguous
    ("/index.php/profile.php?id=5", SubjectReading("5")),
    ("/app.php/profile.php/?id=5", SubjectReading("5")),
    ("/profile.php/profile.php?id=5", SubjectReading("5")),
    ("/profile.php/profile.php?id=5&x=1", SubjectReading("5")),
    ("/index.php/", NOT_A_PROFILE),
    ("/index.php/about?id=5", NOT_A_PROFILE),
])
def test_query_templates(path_query: str, expected: SubjectReading | None) -> None:
    result = read(FB, path_query)
    if expected is None:
        assert result.ambiguous, result
    else:
        assert result == expected


@pytest.mark.parametrize(("path", "expected"), [
    ("/index.php/u/5", SubjectReading("5")),
    ("/INDEX.PHP/u/5/posts", SubjectReading("5")),
    ("/wp/index.php/u/5", NOT_A_PROFILE),  # only a script at the root: a path template is rooted
    ("/index.php/u/5/..%2F6", None),
    ("/index.php", NOT_A_PROFILE),
    ("/u/5/index.php/u/6", SubjectReading("5")),  # under 5's profile: the site's front controller is at its root
])
def test_a_path_after_a_php_script_is_read_as_a_front_controllers_route(path: str,
                                                                        expected: SubjectReading | None) -> None:
    result = read(platform("/u/{subject}"), path)
    if expected is None:
        assert result.ambiguous, result
    else:
        assert result == expected


def test_query_template_with_required_parameters() -> None:
    p = platform("/index.php?page=profile&uid={subject}")
    assert read(p, "/index.php?uid=7&page=profile") == SubjectReading("7")
    assert read(p, "/index.php?page=PROFILE&uid=7&x=1") == SubjectReading("7")
    assert read(p, "/index.php?page=forum&uid=7") is NOT_A_PROFILE
    assert read(p, "/index.php?uid=7") is NOT_A_PROFILE
    assert read(p, "/index.php?page=profile&page=forum&uid=7").ambiguous
    assert read(p, "/index.php?page=profile").ambiguous is False


def test_query_template_at_the_root() -> None:
    p = platform("/?author={subject}")
    assert read(p, "/?author=3") == SubjectReading("3")
    assert read(p, "/blog/post?author=3") == SubjectReading("3")  # anything below the template's path
    assert read(p, "/?p=3") is NOT_A_PROFILE


# -- keys: case folding and NFKC --------------------------------------------------------------------------------------


def test_subject_key_folds_case_and_compatibility_forms() -> None:
    assert AT.subject_key("Alice") == AT.subject_key("alice") == AT.subject_key("\uff21\uff2c\uff29\uff23\uff25")
    assert AT.subject_key("Stra\u00dfe") == AT.subject_key("STRASSE")
    assert AT.subject_key("\u210c") == "h"  # NFKC gives H, folding h: the key is stable
    for text in ("Alice", "\u210c", "\u1e9e", "Stra\u00dfe", "\ufb01", "\u0130", "x\u0307"):
        key = AT.subject_key(text)
        assert AT.subject_key(key) == key


def test_a_withdrawal_for_alice_applies_to_any_spelling_of_her_handle() -> None:
    withdrawn = AT.subject_key("Alice")  # the key a store indexes the record by
    for path in ("/@alice", "/@ALICE", "/@Alice/posts", "/%40aLiCe"):
        assert read(AT, path).subject == withdrawn


def test_case_sensitive_platforms_keep_case() -> None:
    assert AT_CS.subject_key("Alice") == "Alice" != AT_CS.subject_key("alice")
    assert AT_CS.subject_key("\uff21lice") == "Alice"  # NFKC still applies
    assert read(AT_CS, "/@Alice") == SubjectReading("Alice")
    assert read(AT_CS, "/@alice") == SubjectReading("alice")
    assert read(AT_CS, "/%40Alice/x") == SubjectReading("Alice")
    cs_digits = platform("/U/{subject}", case_sensitive=True)
    assert read(cs_digits, "/u/7") == SubjectReading("7")  # literals still match in any case


def test_query_values_differing_only_in_case() -> None:
    p = platform("/p?user={subject}", regex="[a-z]+")
    assert read(p, "/p?user=Bob&user=bob") == SubjectReading("bob")
    cs = platform("/p?user={subject}", regex="[a-z]+", case_sensitive=True)
    assert read(cs, "/p?user=Bob&user=bob").ambiguous


# -- the legacy single-reading API ---------------------------------------------------------------------------------


def test_subject_of_still_reads_canonical_paths() -> None:
    assert MB.subject_of("/u/1001/followers") == "1001"
    assert MB.subject_of("/profile/42") == "42"
    assert MB.subject_of("/u/alice") is None
    assert MB.subject_of("/about") is None
    assert AT.subject_of("/@Alice") == "Alice"  # as written; read_subject gives the key
    assert FB.subject_of("/profile.php?id=9") == "9"
    assert FB.subject_of("/profile.php?id=9&id=8") is None
    assert MB.profiles[0].subject_of("/u/3/x") == "3"
    assert MB.profiles[0].subject_of("/profile/3") is None


# -- the plain-URL shortcut -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "query_matters", "plain"), [
    ("http://mb.example/u/1001", True, True),
    ("HTTP://MB.example:80/U/1001", True, True),
    ("http://mb.example/u/1001?a=1&b=2", True, True),
    ("http://mb.example/u/1001#frag", True, True),
    ("http://mb.example/u/1001?q=a+b", False, True),
    ("http://mb.example/u/1001?q=a+b", True, False),
    ("http://mb.example/u/1001?q=%41", False, True),
    ("http://mb.example/u/1001?q=%41", True, False),
    ("http://mb.example/u/1001?", True, False),
    ("http://mb.example/u/1001/", True, False),
    ("http://mb.example/u//1001", True, False),
    ("http://mb.example/u/./1001", True, False),
    ("http://mb.example/u/%31", True, False),
    ("http://mb.example/u/1;x", True, False),
    ("http://mb.example\\u/1", True, False),
    ("http://mb.example/u/\u0661", True, False),
    ("http://user@mb.example/u/1", True, False),
    ("http://mb.example", True, False),
    (" http://mb.example/u/1", True, False),
])
def test_is_plain(url: str, query_matters: bool, plain: bool) -> None:
    assert is_plain(url, canonicalize(url), query_matters) is plain


def test_plain_urls_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(url: str, canonical: object) -> object:
        calls.append(url)
        return readings(url, canonical)  # type: ignore[arg-type]

    monkeypatch.setattr(platforms_module, "readings", counting)
    assert read(MB, "/u/1001") == SubjectReading("1001")
    assert read(MB, "/about/team") is NOT_A_PROFILE
    assert calls == []
    assert read(MB, "/u/1001/") == SubjectReading("1001")
    assert len(calls) == 1


def test_raw_path_query() -> None:
    assert raw_path_query("http://h/u/101/..%2F107?a=%2F#x") == ("/u/101/..%2F107", "a=%2F")
    assert raw_path_query("HTTP:\\\\h\\u\\1?q=\\") == ("/u/1", "q=\\")
    assert raw_path_query("http://h") == ("/", "")
    assert raw_path_query(" http://u:p@h:8080/a\tb\n/c ") == ("/ab/c", "")
    with pytest.raises(ValueError):
        raw_path_query("ftp://h/x")


# -- platforms.yaml ---------------------------------------------------------------------------------------------------


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "platforms.yaml"
    path.write_text("platforms:\n  mb:\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n",
                    encoding="utf-8")
    return path


def config_error(path: Path, line: int, *fragments: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_platforms(path)
    assert (info.value.source, info.value.line) == (str(path), line), str(info.value)
    assert str(info.value).startswith(f"{path}, line {line}: ")
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_case_sensitive_is_read_from_platforms_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, """
        domains: [mb.example]
        profiles: ["/@{subject}"]
        case_sensitive: true
    """)
    mb = load_platforms(path).get("mb")
    assert mb is not None and mb.case_sensitive
    assert mb.subject_key("Alice") == "Alice"
    path = write(tmp_path, "domains: [mb.example]\ncase_sensitive: false\n")
    assert load_platforms(path).get("mb").case_sensitive is False  # type: ignore[union-attr]
    path = write(tmp_path, "domains: [mb.example]\n")
    assert load_platforms(path).get("mb").case_sensitive is False  # type: ignore[union-attr]


@pytest.mark.parametrize(("body", "line", "fragments"), [
    ("domains: [mb.example]\ncase_sensitive: 'yes'\n", 4, ["'case_sensitive' of platform 'mb'", "true or false"]),
    ("domains: [mb.example]\ncase_sensitive: 1\n", 4, ["true or false"]),
    ("domains: [mb.example]\ncase_sensitiv: true\n", 4, ["unknown key 'case_sensitiv'", "'case_sensitive'"]),
    ("domains: [mb.example]\nprofiles: ['/u//{subject}']\n", 4, ["canonical form", "'/u/{subject}'"]),
    ("domains: [mb.example]\nprofiles: ['/u/./{subject}']\n", 4, ["canonical form", "'/u/{subject}'"]),
    ("domains: [mb.example]\nprofiles:\n  - /u/{subject}\n  - /a/../{subject}\n", 6, ["'/a/../{subject}'"]),
    ("domains: [mb.example]\nprofiles: ['/u/{subject}/..']\n", 4, ["can never match"]),
    ("domains: [mb.example]\nprofiles: ['/u%2f{subject}']\n", 4, ["canonical form", "'/u%2F{subject}'"]),
    ("domains: [mb.example]\nprofiles: ['/%7Eu/{subject}']\n", 4, ["'/~u/{subject}'"]),
    ("domains: [mb.example]\nprofiles: ['/u#/{subject}']\n", 4, ["canonical form"]),
    ("domains: [mb.example]\nprofiles: ['/u/{subject}#top']\n", 4, ["canonical form"]),
    ("domains: [mb.example]\nprofiles: ['/profile.php/?id={subject}']\n", 4, ["'/profile.php?id={subject}'"]),
    ("domains: [mb.example]\nprofiles: ['/u/{subject}//']\n", 4, ["canonical form"]),
    ("domains: [mb.example]\nprofiles: ['/p?id=%7e&x={subject}']\n", 4, ["'/p?id=~&x={subject}'"]),
    ("domains: [mb.example]\nprofiles: ['/u/{subject}?tab=1']\n", 4, ["value of a query parameter"]),
    ("domains: [mb.example]\nprofiles: ['/p?id=u{subject}']\n", 4, ["whole value"]),
    ("domains: [mb.example]\nprofiles: ['/p?{subject}=1']\n", 4, ["whole value"]),
    ("domains: [mb.example]\nprofiles: ['/p?id={subject}&id=2']\n", 4, ["given twice"]),
    ("domains: [mb.example]\nprofiles: ['/caf\u00e9/{subject}']\n", 4, ["'/caf%C3%A9/{subject}'"]),
    ("domains: [mb.example]\nsubject: '.+'\n", 4, ["'subject' of platform 'mb'", "can match '/'"]),
    ("domains: [mb.example]\nsubject: '[^x]+'\n", 4, ["can match '/'"]),
    ("domains: [mb.example]\nsubject: '\\S+'\n", 4, ["can match '/'"]),
    ("domains: [mb.example]\nsubject: '[0-9]+(/[0-9]+)?'\n", 4, ["can match '/'"]),
    ("domains: [mb.example]\nsubject: '(?!)x'\n", 4, ["matches no non-empty id"]),
    ("domains: [mb.example]\nsubject: '[^\\s\\S]+'\n", 4, ["matches no non-empty id"]),
    ("domains: [mb.example]\nsubject: 'a\\bb'\n", 4, ["matches no non-empty id"]),
    ("domains: [mb.example]\nsubject: '[0-9]*'\n", 4, ["empty subject id"]),
    ("domains: ['fe80::1%eth0']\n", 3, ["IP address"]),
])
def test_platforms_yaml_errors(tmp_path: Path, body: str, line: int, fragments: list[str]) -> None:
    config_error(write(tmp_path, body), line, *fragments)


@pytest.mark.parametrize("regex", [
    "[0-9]+", "[A-Za-z0-9_]+", "[^/]+", "\\d+", "\\w+", "[a-z]{3,8}", "(?i)[A-Z]+", "(?P<subject>x)", "(a|b)\\1",
    "[^/?#]+", "(?=[0-9])\\w+", "u[0-9]{6}", "[\u00e9]+", "(?x) [0-9] +", "(?:[a-z]+\\.)?[a-z]+",
])
def test_subject_regexes_that_can_name_someone_are_accepted(regex: str) -> None:
    assert compile_subject_regex(regex).fullmatch("") is None


def test_trailing_slash_after_the_subject_is_still_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "domains: [mb.example]\nprofiles: ['/profile/{subject}/']\nsubject: '[0-9]+'\n")
    mb = load_platforms(path).get("mb")
    assert mb is not None and read(mb, "/profile/42") == SubjectReading("42")


@pytest.mark.parametrize(("written", "url"), [
    ("192.0.2.7", "http://192.0.2.7/u/1"),
    ("192.0.2.7", "http://3221225991/u/1"),  # the same address, as a browser would read the number
    ("2001:DB8::1", "http://[2001:db8:0:0::1]:8080/u/1"),
    ("'[2001:db8::1]'", "http://[2001:DB8::1]/u/1"),
    ("'::ffff:192.0.2.7'", "http://[::ffff:c000:207]/u/1"),
])
def test_ip_addresses_as_domains(tmp_path: Path, written: str, url: str) -> None:
    path = write(tmp_path, f"domains: [{written}]\nprofiles: ['/u/{{subject}}']\nsubject: '[0-9]+'\n")
    registry = load_platforms(path)
    canonical = canonicalize(url)
    found = registry.by_domain(registered_domain(canonical.host))
    assert found is registry.get("mb")
    assert found is not None and found.read_subject(url, canonical) == SubjectReading("1")


def test_the_same_ip_twice_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "domains:\n  - 2001:db8::1\n  - '[2001:DB8:0::1]'\n")
    config_error(path, 5, "listed twice")


# -- property: a lenient server never reads a person the policy did not decide for --------------------------------


def lenient_server(path_query: str, case_sensitive: bool, tomcat: bool) -> tuple[str, list[tuple[str, str]]]:
    """An independent model of a lenient server: the path and query parameters it acts on.

    ``tomcat``: ``;`` parameters are dropped from the raw segments before decoding; otherwise after.
    """
    path, _, query = path_query.partition("?")
    if tomcat:
        path = "/".join(s.split(";", 1)[0] for s in path.replace("\\", "/").split("/"))
    path = unquote(path).replace("\\", "/")  # decode every escape once; backslash is a separator
    segments = [s.split(";", 1)[0] for s in path.split("/")]  # drop ;parameters
    path = posixpath.normpath("/" + "/".join(segments)).lstrip("/")  # resolve dot-segments, collapse slashes
    path = "/" + unicodedata.normalize("NFKC", path)
    params = []
    for item in re.split("[&;]", query):
        if item:
            name, _, value = item.partition("=")
            params.append((unquote(name.replace("+", " ")), unquote(value.replace("+", " "))))
    params = [(unicodedata.normalize("NFKC", k), unicodedata.normalize("NFKC", v)) for k, v in params]
    if not case_sensitive:
        path = path.casefold()
        params = [(k.casefold(), v.casefold()) for k, v in params]
    return path, params


def as_number(text: str) -> set[str]:
    """The id a server that parses numeric ids with int() reads (spaces, sign, '_', any script's digits)."""
    try:
        number = int(text)
    except ValueError:
        return set()
    return {str(number)} if number >= 0 else set()


def people_served(p: Platform, path_query: str) -> set[str]:
    """Everyone a model server could serve for ``path_query`` on one of the test platforms."""
    served: set[str] = set()
    for tomcat in (False, True):
        path, params = lenient_server(path_query, p.case_sensitive, tomcat)
        if p is FB:
            if path.casefold() == "/profile.php" or path.casefold().startswith("/profile.php/"):
                values = [v for k, v in params if k.casefold() == "id"]
                for value in values[:1] + values[-1:]:  # first wins, or last wins
                    served |= as_number(value) | ({value} if re.fullmatch(DIGITS, value) else set())
            continue
        pattern = r"/(?:u|profile)/([^/]+)(?:/.*)?" if p is MB else r"/@([A-Za-z0-9_]+)(?:/.*)?"
        m = re.fullmatch(pattern, path, re.IGNORECASE | re.DOTALL)
        if m and p is MB:
            served |= as_number(m.group(1)) | ({m.group(1)} if re.fullmatch(DIGITS, m.group(1)) else set())
        elif m:
            served.add(m.group(1))
    return served


_NOISE = st.sampled_from([
    "/", "/", "/", "x", "followers", "u", "@", "101", "1", "alice", "\uff21lice",
    ".", "..", "%2e", "%2E", "%2e%2e", ".%2E", "%2F", "%2f", "%5C", "%5c", "\\", "\uff0f", "\uff0e",
    ";", ";x", ";jsessionid=1", "%3B", "%3b", "..;", "%25", "%252F", "%", "%FF", "%C3%A9",
])
_NUMBERS = [
    "101", "107", "\uff11\uff10\uff17", "%31%30%37", "1\u0661", "\u0661\u0660\u0667", "0101", "1_01", "+101",
    "%2B101", "%20101", "101%20", "-0", "", "abc", "101;x", "101%3Bx", "101.json",
]
_HANDLES = [
    "alice", "Alice", "ALICE", "\uff21\uff2c\uff29\uff23\uff25", "\uff21lice", "bob_1", "stra\u00dfe", "\u017fam",
    "\u212aim", "", "%61lice", "%41lice", "1_01", "0101", "alice;x", "alice.json",
]
#: per platform: spellings of its profile prefix, and of ids
_SHAPES = {
    "mb": (["/u/", "/U/", "u/", "/u%2F", "/u%2f", "/u%5C", "/\uff55/", "/u;x/", "/u/./", "/u//", "/profile/",
            "/PROFILE/", "/x/../u/", "/u/x/..%2F"], _NUMBERS),
    "at": (["/@", "@", "/%40", "/\uff20", "/@;x", "/x/..%2F@", "/@x/..%2F@"], _HANDLES),
    "fb": (["/profile.php", "/profile.php/", "/Profile.php", "/profile.php%2F", "/x/..%2Fprofile.php",
            "/profile.php;x"], _NUMBERS),
}
_QUERY_PIECES = st.sampled_from([
    *(f"id={n}" for n in _NUMBERS), "ID=107", "%69d=101", "x=1", ";", "&", "&", "=", "id", "id=101;id=107",
    "id=1%26id=2", "id=1+0",
])


@st.composite
def cases(draw: st.DrawFn) -> tuple[Platform, str]:
    """A platform, and a profile-looking path on it (a spelling of a template's prefix, of an id) with noise
    around: escapes of ``/ . \\ ;``, dot-segments, ``;`` parameters, fullwidth and other Unicode forms, case
    changes; a query, always for the query template and sometimes for the others."""
    p = draw(st.sampled_from([MB, AT, AT_CS, FB]))
    starts, idents = _SHAPES[p.name[:2]]
    before = "".join(draw(st.one_of(st.just([]), st.lists(_NOISE, max_size=3))))
    after = "".join(draw(st.one_of(st.just([]), st.lists(_NOISE, max_size=4))))
    path = "/" + before + draw(st.sampled_from(starts))
    if p is FB:
        return p, path + after + "?" + "&".join(draw(st.lists(_QUERY_PIECES, min_size=1, max_size=4)))
    path += draw(st.sampled_from(idents)) + after
    if "?" not in path and draw(st.booleans()):
        path = f"{path}?{'&'.join(draw(st.lists(_QUERY_PIECES, max_size=3)))}"
    return p, path


@SETTINGS
@given(cases())
def test_a_lenient_server_never_serves_someone_else(case: tuple[Platform, str]) -> None:
    p, path_query = case
    url = f"http://{p.name}.example{path_query}"
    try:
        canonical = canonicalize(url)
    except ValueError:
        assume(False)
        raise
    result = p.read_subject(url, canonical)
    assert result.ambiguous or result.subject is not None or result is NOT_A_PROFILE
    for person in people_served(p, path_query):
        assert result.ambiguous or result.subject == p.subject_key(person), (path_query, person, result)


@st.composite
def plain_urls(draw: st.DrawFn) -> str:
    segment = st.sampled_from(["u", "U", "profile", "@alice", "@Bob_1", "101", "abc", "profile.php", "x", "@"])
    path = "/" + "/".join(draw(st.lists(segment, max_size=4)))
    query = draw(st.sampled_from(["", "?id=7", "?x=1&id=8", "?id=7&id=9", "?ID=3", "?id=a"]))
    return path + query + draw(st.sampled_from(["", "#f"]))


@SETTINGS
@given(plain_urls(), st.sampled_from([MB, AT, AT_CS, FB]))
def test_the_plain_shortcut_agrees_with_every_reading(path_query: str, p: Platform) -> None:
    url = f"http://{p.name}.example{path_query}"
    fast = p.read_subject(url, canonicalize(url))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(platforms_module, "is_plain", lambda *args: False)
        slow = p.read_subject(url, canonicalize(url))
    assert (fast.subject, fast.ambiguous) == (slow.subject, slow.ambiguous)
