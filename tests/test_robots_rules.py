"""The robots.txt matcher: RFC 9309 groups and rules, encoding, limits, line numbers and the extra records.

Each test is a small robots.txt and an assertion. A few of Google's conformance cases are copied inline so the
suite does not need ``../shared``.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentcrawl.robots import matcher as matcher_module
from consentcrawl.robots.rules import MAX_BYTES, MAX_LINE_BYTES, RobotsMatch, RobotsRules

TOKEN = "consentcrawl"


def allowed(body: bytes | str, path: str, token: str = TOKEN) -> bool:
    return RobotsRules.parse(body).allowed(path, token)


# -- user-agent lines and groups -------------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["User-Agent: FOO BAR", "User-Agent: foo bar", "User-Agent: FoO bAr"])
@pytest.mark.parametrize("token", ["Foo", "foo"])
def test_user_agent_value_is_cut_to_its_product_token(line: str, token: str) -> None:
    body = f"{line}\nAllow: /x/\nDisallow: /\n"
    assert allowed(body, "/x/y", token)
    assert not allowed(body, "/a/b", token)


def test_product_token_stops_at_slash_and_keeps_digits() -> None:
    body = "User-agent: FooBot/1.2\nDisallow: /\n\nUser-agent: consentcrawl2\nDisallow: /\n"
    assert not allowed(body, "/", "foobot")
    assert allowed(body, "/", "consentcrawl")  # another crawler's group, not ours


def test_our_token_is_compared_whole() -> None:
    body = "User-Agent: *\nDisallow: /\nUser-Agent: Foo Bar\nAllow: /x/\nDisallow: /\n"
    assert allowed(body, "/x/y", "Foo")
    assert not allowed(body, "/x/y", "Foo Bar")  # "Foo Bar" is not a product token: only "*" applies


def test_named_group_wins_over_star_and_star_applies_otherwise() -> None:
    body = "user-agent: *\nallow: /\nuser-agent: FooBot\ndisallow: /\n"
    assert not allowed(body, "/x/y", "FooBot")
    assert allowed(body, "/x/y", "BarBot")
    rules = RobotsRules.parse(body)
    assert rules.match("/x", "BarBot").group == "*"
    assert rules.match("/x", "fooBOT").group == "FooBot"


def test_no_group_applies_means_allowed() -> None:
    body = "user-agent: FooBot\nallow: /\nuser-agent: BarBot\ndisallow: /\n"
    assert RobotsRules.parse(body).match("/x/y", "QuxBot") == RobotsMatch(True, None, None, None, None)
    assert allowed("", "/x/y", "FooBot")
    assert allowed("user-agent: FooBot\ndisallow: /\n", "/", "")  # an empty token names no group


def test_empty_named_group_still_shadows_star() -> None:
    body = "User-agent: *\nDisallow: /\n\nUser-agent: consentcrawl\nCrawl-delay: 1\n"
    assert allowed(body, "/private")
    # without a rule in between, the next user-agent line joins the same group
    assert not allowed("User-agent: consentcrawl\nCrawl-delay: 1\nUser-agent: other\nDisallow: /\n", "/private")


GROUPS = """allow: /foo/bar/

user-agent: FooBot
disallow: /
allow: /x/
user-agent: BarBot
disallow: /
allow: /y/


allow: /w/
user-agent: BazBot

user-agent: FooBot
allow: /z/
disallow: /
"""


@pytest.mark.parametrize(("token", "path", "expected"), [
    ("FooBot", "/x/b", True), ("FooBot", "/z/d", True), ("FooBot", "/y/c", False),
    ("BarBot", "/y/c", True), ("BarBot", "/w/a", True), ("BarBot", "/z/d", False), ("BazBot", "/z/d", True),
    ("FooBot", "/foo/bar/", False), ("BarBot", "/foo/bar/", False), ("BazBot", "/foo/bar/", False),
])
def test_groups_merge_share_and_ignore_rules_before_any_user_agent(token: str, path: str, expected: bool) -> None:
    """ID_LineSyntax_Groups: same-agent groups merge, consecutive user-agent lines share, blank lines split nothing."""
    assert allowed(GROUPS, path, token) is expected


def test_rule_before_any_user_agent_is_ignored_with_a_warning() -> None:
    rules = RobotsRules.parse(GROUPS)
    assert "line 1: allow before any user-agent line, ignored" in rules.warnings


@pytest.mark.parametrize("other", ["Invalid-Unknown-Line: unknown", "Sitemap: https://foo.bar/sitemap",
                                   "Crawl-delay: 5", "Content-Signal: ai-train=no"])
@pytest.mark.parametrize("token", ["FooBot", "BarBot"])
def test_other_lines_never_split_a_group(other: str, token: str) -> None:
    body = f"User-agent: FooBot\n{other}\nUser-agent: *\nDisallow: /\n"
    assert not allowed(body, "/", token)


def test_shared_group_reports_its_first_user_agent_line() -> None:
    body = "# robots\nUser-agent: other\nUser-agent: ConsentCrawl/2.0\nDisallow: /private\n"
    m = RobotsRules.parse(body).match("/private/x", TOKEN)
    assert m == RobotsMatch(False, "Disallow: /private", 4, "ConsentCrawl", 2)


def test_merged_groups_report_the_group_of_the_deciding_rule() -> None:
    body = ("User-agent: consentcrawl\nDisallow: /a\n\nUser-agent: *\nDisallow: /\n\n"
            "User-agent: consentcrawl\nDisallow: /b\n")
    rules = RobotsRules.parse(body)
    assert rules.match("/a", TOKEN) == RobotsMatch(False, "Disallow: /a", 2, "consentcrawl", 1)
    assert rules.match("/b", TOKEN) == RobotsMatch(False, "Disallow: /b", 8, "consentcrawl", 7)
    assert rules.match("/c", TOKEN) == RobotsMatch(True, None, None, "consentcrawl", 1)


def test_star_followed_by_text_is_still_the_global_group() -> None:
    assert not allowed("User-agent: * # everyone\nDisallow: /\n", "/x", "anybot")


# -- record syntax ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    "USER-AGENT: FooBot\nALLOW: /x/\nDISALLOW: /\n",
    "uSeR-aGeNt: FooBot\nAlLoW: /x/\ndIsAlLoW: /\n",
    "user-agent FooBot\nallow /x/\ndisallow /\n",  # missing colons (ID_LineSyntax_Line#3)
    "useragent: FooBot\nallow: /x/\ndissallow: /\n",  # the reference parser's typos
])
def test_record_names_case_and_tolerances(body: str) -> None:
    assert allowed(body, "/x/y", "FooBot")
    assert not allowed(body, "/a/b", "FooBot")


def test_missing_colon_needs_exactly_two_words() -> None:
    assert allowed("user-agent FooBot\ndisallow / now\n", "/a", "FooBot")


def test_unknown_records_are_not_rules() -> None:
    assert allowed("foo: FooBot\nbar: /\n", "/x/y", "FooBot")


def test_comments_and_whitespace() -> None:
    body = "User-agent: FooBot  # me\n  # Disallow: /\nDisallow: /foo/quz#qux\nAllow: /\n"
    assert allowed(body, "/foo/bar", "FooBot")
    assert not allowed(body, "/foo/quz", "FooBot")


def test_line_endings() -> None:
    assert not allowed(b"User-agent: *\r\nDisallow: /a\rDisallow: /b\n", "/b")


def test_values_are_case_sensitive() -> None:
    assert not allowed("user-agent: FooBot\ndisallow: /x/\n", "/x/y", "FooBot")
    assert allowed("user-agent: FooBot\ndisallow: /X/\n", "/x/y", "FooBot")


# -- matching --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rules", "path", "expected"), [
    ("disallow: /x/page.html\nallow: /x/", "/x/page.html", False),
    ("allow: /x/page.html\ndisallow: /x/", "/x/page.html", True),
    ("allow: /x/page.html\ndisallow: /x/", "/x/", False),
    ("disallow: \nallow: ", "/x/page.html", True),  # empty rules match nothing
    ("disallow: /\nallow: /", "/x/page.html", True),  # a tie: Allow wins
    ("disallow: /x/page.html\nallow: /x/page.html", "/x/page.html", True),
    ("disallow: /x\nallow: /x/", "/x", False),
    ("disallow: /x\nallow: /x/", "/x/", True),
    ("allow: /page\ndisallow: /*.html", "/page.html", False),  # "*" and "$" count in the length
    ("allow: /page\ndisallow: /*.html", "/page", True),
    ("allow: /x/page.\ndisallow: /*.html", "/x/page.html", True),
    ("disallow: /foo/bar/quz\nallow: /foo/*/qux", "/foo//quz", True),
    ("disallow: /foo/bar$\nallow: /foo/bar/qux", "/foo/bar", False),
    ("disallow: /foo/bar$\nallow: /foo/bar/qux", "/foo/bar/", True),
    ("disallow: /\nallow: /$", "/", True),
    ("disallow: /\nallow: /$", "/page.html", False),
    ("disallow: /\nallow: /*.php$", "/folder/filename.php", True),
    ("disallow: /\nallow: /*.php$", "/filename.php?parameters", False),
    ("disallow: /\nallow: /fish*.php", "/fishheads/catfish.php?parameters", True),
    ("disallow: /\nallow: /fish", "/?id=fish", False),
    ("disallow: /a$b", "/a$b/c", False),  # "$" inside a pattern is a character
    ("disallow: /a$b", "/a", True),
    ("disallow: /*a*b*c", "/xaxbxc", False),
    ("disallow: /*a*b*c", "/xcxbxa", True),
    ("disallow: /**x", "/abcx", False),
    ("disallow: /a*$", "/abc?d", False),
    ("disallow: *.gif", "/x/y.gif", False),
    ("disallow: private", "/private", True),  # a pattern that does not start with "/" matches nothing
])
def test_longest_match_wildcards_and_anchor(rules: str, path: str, expected: bool) -> None:
    assert allowed(f"user-agent: FooBot\n{rules}\n", path, "FooBot") is expected


def test_robots_txt_is_always_allowed() -> None:
    assert allowed("User-agent: *\nDisallow: /\nDisallow: /robots.txt\n", "/robots.txt")
    assert RobotsRules.disallow_all("HTTP 503").allowed("/robots.txt", TOKEN)


def test_empty_path_is_the_root() -> None:
    rules = RobotsRules.parse("user-agent: FooBot\ndisallow: /\n")
    assert not rules.allowed("", "FooBot")
    assert rules.match("", "FooBot") == rules.match("/", "FooBot")


def test_query_and_fragment() -> None:
    body = "User-agent: *\nDisallow: /*?sessionid=\nDisallow: /search?q=\n"
    assert not allowed(body, "/a?sessionid=1")
    assert not allowed(body, "/search?q=x#top")
    assert allowed(body, "/search#q=")  # a fragment is not sent


def test_rule_text_is_canonical_name_and_value_as_written() -> None:
    m = RobotsRules.parse("user-agent: *\n DISALLOW :  /Private*  # no\n").match("/Private/x", TOKEN)
    assert (m.rule, m.line) == ("Disallow: /Private*", 2)


# -- encoding --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "path", "expected"), [
    ("/foo/bar?qux=taz&baz=http://foo.bar?tar&par", "/foo/bar?qux=taz&baz=http://foo.bar?tar&par", True),
    ("/foo/bar/ツ", "/foo/bar/%E3%83%84", True),
    ("/foo/bar/%E3%83%84", "/foo/bar/%E3%83%84", True),
    ("/foo/bar/%e3%83%84", "/foo/bar/%E3%83%84", True),
    ("/foo/bar/ツ", "/foo/bar/%e3%83%84", True),
    ("/foo/bar/%62%61%7A", "/foo/bar/%62%61%7A", True),
    # Google's ID_Encoding#3/#5/#6: a raw character in the path and a decoded unreserved one do not match its
    # Allow; we agree because a path is allowed only when both spellings allow it
    ("/foo/bar/ツ", "/foo/bar/ツ", False),
    ("/foo/bar/%E3%83%84", "/foo/bar/ツ", False),
    ("/foo/bar/%62%61%7A", "/foo/bar/baz", False),
])
def test_allow_encoding(rule: str, path: str, expected: bool) -> None:
    body = f"User-agent: FooBot\nDisallow: /\nAllow: {rule}\n"
    assert allowed(body.encode("utf-8"), path, "FooBot") is expected


@pytest.mark.parametrize(("rule", "path"), [
    ("/foo/bar/ツ", "/foo/bar/ツ"),  # a raw character is what goes on the wire percent-encoded
    ("/foo/bar/ツ", "/foo/bar/%E3%83%84"),
    ("/%70rivate", "/private"),  # RFC 3986: %70 is "p"
    ("/private", "/%70rivate"),
    ("/a b", "/a%20b"),
    ("/a%7Cb", "/a|b"),
])
def test_disallow_matches_every_spelling(rule: str, path: str) -> None:
    assert not allowed(f"User-agent: *\nDisallow: {rule}\n".encode(), path)


def test_reserved_escapes_are_not_decoded() -> None:
    body = "User-agent: *\nDisallow: /a%2Fb\nDisallow: /x%2A\n"
    assert allowed(body, "/a/b")
    assert not allowed(body, "/a%2fb")
    assert allowed(body, "/xyz")  # %2A is a literal "*", never a wildcard


def test_latin1_byte_keeps_its_meaning_and_warns() -> None:
    body = b"User-agent: *\nDisallow: /\nAllow: /caf\xe9\n"
    rules = RobotsRules.parse(body)
    assert rules.allowed("/caf%E9", TOKEN)
    assert rules.allowed("/caf%e9/menu", TOKEN)
    assert not rules.allowed("/caf", TOKEN)  # never shortened to "/caf"
    assert not rules.allowed("/cafe", TOKEN)
    assert not rules.allowed("/caf%C3%A9", TOKEN)  # UTF-8 "é" is other bytes
    assert rules.match("/caf%E9", TOKEN).rule == "Allow: /caf%E9"
    assert rules.warnings == ("line 3: bytes that are not UTF-8 were kept percent-encoded",)


def test_latin1_disallow_is_not_widened() -> None:
    rules = RobotsRules.parse(b"User-agent: *\nDisallow: /caf\xe9\n")
    assert not rules.allowed("/caf%E9", TOKEN)
    assert rules.allowed("/caf", TOKEN)
    assert rules.allowed("/cafeteria", TOKEN)


@pytest.mark.parametrize("body", [b"\xef\xbb\xbfUser-agent: *\nDisallow: /\n", "\ufeffUser-agent: *\nDisallow: /\n"])
def test_bom_is_skipped(body: bytes | str) -> None:
    rules = RobotsRules.parse(body)
    assert not rules.allowed("/", TOKEN)
    assert rules.warnings == ()
    assert rules.match("/", TOKEN).group_line == 1


# -- limits ----------------------------------------------------------------------------------------------------


def test_long_line_is_cut_like_the_reference_parser() -> None:
    """GoogleOnly_LineTooLong: the line is cut at 16,663 bytes; the cut Disallow still matches."""
    longline = "/x/" + "a" * (MAX_LINE_BYTES - len("disallow: /x/") + 2)
    body = f"user-agent: FooBot\ndisallow: {longline}/qux\n"
    rules = RobotsRules.parse(body)
    assert rules.allowed("/fux", "FooBot")
    assert not rules.allowed(f"{longline}/fux", "FooBot")
    assert rules.warnings == (f"line 2: longer than {MAX_LINE_BYTES} bytes, the rest was ignored",)


def _big_file(total: int) -> bytes:
    head = b"User-agent: *\nDisallow: /early\n"
    filler = b"# " + b"x" * 1000 + b"\n"
    body = head + filler * ((MAX_BYTES + 10_000 - len(head)) // len(filler)) + b"Disallow: /late\n"
    return body + filler * ((total - len(body)) // len(filler) + 1)


def test_file_over_max_bytes_is_parsed_up_to_the_limit_and_not_allow_all() -> None:
    body = _big_file(600 * 1024)
    assert len(body) > 600 * 1024
    rules = RobotsRules.parse(body)
    assert (rules.size, rules.truncated) == (len(body), True)
    assert not rules.allowed("/early", TOKEN)  # the first MAX_BYTES apply
    assert rules.allowed("/late", TOKEN)  # RFC 9309 §2.5: a crawler MAY stop at 500 KiB; we stop at 512 KiB
    assert rules.warnings[0] == f"only the first {MAX_BYTES} of {len(body)} bytes were parsed (RFC 9309 §2.5)"


def test_file_of_exactly_max_bytes_is_whole() -> None:
    head = b"User-agent: *\nDisallow: /a\n"
    body = head + b"#" * (MAX_BYTES - len(head) - len(b"\nDisallow: /z\n")) + b"\nDisallow: /z\n"
    rules = RobotsRules.parse(body)
    assert len(body) == MAX_BYTES and not rules.truncated
    assert not rules.allowed("/z", TOKEN)


def test_line_cut_by_the_size_limit() -> None:
    head = b"User-agent: *\nDisallow: /a\n"
    pad = b"#" * (MAX_BYTES - len(head) - len(b"\nDisallow: /sec"))
    cut_disallow = RobotsRules.parse(head + pad + b"\nDisallow: /secret/only\n")
    assert not cut_disallow.allowed("/sec", TOKEN)  # kept as a shorter Disallow: it can only block more
    pad = b"#" * (MAX_BYTES - len(head) - len(b"\nAllow: /a/pu"))
    cut_allow = RobotsRules.parse(head + pad + b"\nAllow: /a/public\n")
    assert not cut_allow.allowed("/a/pu", TOKEN)  # a cut Allow is dropped, it would allow more
    assert any("cut by the size limit, ignored" in w for w in cut_allow.warnings)


# -- the other records -----------------------------------------------------------------------------------------

EXTRAS = """Sitemap: https://example.com/a.xml
User-agent: *
Crawl-delay: 10
Request-rate: 1/5
Content-Signal: search=yes, ai-train=no
Disallow: /tmp/

User-agent: consentcrawl
User-agent: otherbot
Crawl-delay: 2.5
Crawl-delay: 7
Request-rate: 3/1m
Content-Signal: search=yes, ai-input=no
Content-Usage: train-ai=n
Disallow: /private/
Sitemap: https://example.com/b.xml
License: https://example.com/license
"""


def test_crawl_delay_and_request_rate_come_from_the_applying_group() -> None:
    rules = RobotsRules.parse(EXTRAS)
    assert rules.crawl_delay(TOKEN) == 2.5  # the first valid one
    assert rules.request_rate(TOKEN) == (3, 60.0)
    assert rules.crawl_delay("anybot") == 10.0
    assert rules.request_rate("anybot") == (1, 5.0)
    assert RobotsRules.parse("User-agent: *\nDisallow: /\n").crawl_delay(TOKEN) is None
    assert RobotsRules.allow_all().request_rate(TOKEN) is None


@pytest.mark.parametrize(("value", "expected"), [("1/5", (1, 5.0)), ("10 / 1h", (10, 3600.0)),
                                                 ("1/10m 0600-0845", (1, 600.0)), ("0/5", None), ("x", None),
                                                 ("1/0", None)])
def test_request_rate_forms(value: str, expected: tuple[int, float] | None) -> None:
    assert RobotsRules.parse(f"User-agent: *\nRequest-rate: {value}\n").request_rate(TOKEN) == expected


@pytest.mark.parametrize(("value", "expected"), [("5", 5.0), ("0.5", 0.5), ("abc", None), ("-1", None)])
def test_crawl_delay_forms(value: str, expected: float | None) -> None:
    assert RobotsRules.parse(f"User-agent: *\nCrawl-delay: {value}\n").crawl_delay(TOKEN) == expected


def test_group_lines_and_global_lines() -> None:
    rules = RobotsRules.parse(EXTRAS)
    assert rules.group_lines(TOKEN, "content-signal") == [(13, "search=yes, ai-input=no")]
    assert rules.group_lines("ConsentCrawl", "Content-Usage") == [(14, "train-ai=n")]
    assert rules.group_lines("anybot", "content-signal") == [(5, "search=yes, ai-train=no")]
    assert rules.group_lines(TOKEN, "license") == [(17, "https://example.com/license")]
    assert rules.group_lines(TOKEN, "sitemap") == []  # sitemaps belong to the file
    assert rules.global_lines("sitemap") == [(1, "https://example.com/a.xml"), (16, "https://example.com/b.xml")]
    assert rules.global_lines("Crawl-delay") == [(3, "10"), (10, "2.5"), (11, "7")]
    assert rules.match("/private/x", TOKEN) == RobotsMatch(False, "Disallow: /private/", 15, "consentcrawl", 8)
    assert rules.match("/tmp/x", TOKEN).allowed


def test_group_lines_when_no_group_applies() -> None:
    rules = RobotsRules.parse("User-agent: otherbot\nContent-Signal: ai-train=no\n")
    assert rules.group_lines(TOKEN, "content-signal") == []
    assert rules.global_lines("content-signal") == [(2, "ai-train=no")]


# -- constructors and robustness -------------------------------------------------------------------------------


def test_allow_all_and_disallow_all() -> None:
    everything = RobotsRules.allow_all()
    assert everything.match("/x", TOKEN) == RobotsMatch(True, None, None, None, None)
    assert (everything.size, everything.truncated, everything.warnings) == (0, False, ())
    nothing = RobotsRules.disallow_all("HTTP 503")
    m = nothing.match("/x", TOKEN)
    assert not m.allowed and m.rule == "Disallow: /"
    assert nothing.warnings == ("HTTP 503",)
    assert nothing.group_lines(TOKEN, "crawl-delay") == [] and nothing.crawl_delay(TOKEN) is None


def test_body_of_another_type_fails_closed() -> None:
    rules = RobotsRules.parse(12345)  # type: ignore[arg-type]
    assert not rules.allowed("/", TOKEN)
    assert "could not be parsed" in rules.warnings[0]
    assert RobotsRules.parse(bytearray(b"User-agent: *\nDisallow: /a\n")).allowed("/b", TOKEN)


def test_html_error_page_gives_one_summary_warning() -> None:
    rules = RobotsRules.parse("<html>\n<body>\n<h1>Not here</h1>\n</body>\n</html>\n")
    assert rules.allowed("/x", TOKEN)
    # "<h1>Not here</h1>" is two words: the missing-colon tolerance reads it as an unknown record
    assert rules.warnings == ("4 line(s) were not 'name: value' records and were ignored",)


def test_adversarial_wildcards_stay_fast() -> None:
    rules = RobotsRules.parse("User-agent: *\nDisallow: /" + "*a" * 2000 + "*b\n")
    start = time.perf_counter()
    assert rules.allowed("/" + "a" * 5000, TOKEN)
    assert time.perf_counter() - start < 2.0


def test_many_rules_in_one_group() -> None:
    body = "User-agent: *\n" + "".join(f"Disallow: /p{i}/x*y\n" for i in range(3000)) + "Allow: /p2999/xa\n"
    start = time.perf_counter()
    rules = RobotsRules.parse(body)
    assert rules.match("/p2999/xaay", TOKEN) == RobotsMatch(False, "Disallow: /p2999/x*y", 3001, "*", 1)
    assert rules.match("/p2999/xay", TOKEN).allowed is False
    assert rules.allowed("/p2999/xa", TOKEN)
    assert rules.allowed("/p3000/xay", TOKEN)
    assert time.perf_counter() - start < 5.0


def test_huge_wildcard_group_stays_usable() -> None:
    body = "User-agent: *\n" + "".join(f"Disallow: /*a*b*c*d{i}\n" for i in range(15000))
    rules = RobotsRules.parse(body)
    start = time.perf_counter()
    assert rules.allowed("/x", TOKEN)
    assert rules.match("/xaxbxcxd14999", TOKEN).line == 15001
    assert time.perf_counter() - start < 5.0


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)), st.text(max_size=40), st.text(max_size=12))
def test_parse_and_match_never_raise(body: bytes | str, path: str, token: str) -> None:
    rules = RobotsRules.parse(body)
    assert isinstance(rules.match(path, token), RobotsMatch)
    rules.crawl_delay(token)
    rules.request_rate(token)


# -- against a naive reference ---------------------------------------------------------------------------------


def _naive(rules: list[tuple[bool, str]], path: str) -> bool:
    """Every rule tried; the longest matching pattern wins and Allow wins a tie."""
    best: tuple[int, bool] | None = None
    for allow, pattern in rules:
        if not pattern:
            continue
        anchored = pattern.endswith("$")
        body = pattern[:-1] if anchored else pattern
        regex = ".*".join(re.escape(p) for p in body.split("*")) + (r"\Z" if anchored else "")
        if re.match(regex, path, re.S) and (best is None or (len(pattern), allow) > best):
            best = (len(pattern), allow)
    return best is None or best[1]


_PATTERN = st.text(alphabet="/ab*$", max_size=6).map(lambda p: "/" + p)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.booleans(), _PATTERN), max_size=120), st.text(alphabet="/ab$*", max_size=8),
       st.sampled_from([matcher_module.REGEX_RULES, 0, 5]))
def test_matches_a_naive_reference(rules: list[tuple[bool, str]], path: str, regex_rules: int) -> None:
    """Also with few or no rules compiled to regexes, which exercises the ``str.find`` path of huge groups."""
    body = "User-agent: *\n" + "".join(f"{'Allow' if a else 'Disallow'}: {p}\n" for a, p in rules)
    path = "/" + path
    default = matcher_module.REGEX_RULES
    matcher_module.REGEX_RULES = regex_rules
    try:
        assert RobotsRules.parse(body).allowed(path, TOKEN) is _naive(rules, path)
    finally:
        matcher_module.REGEX_RULES = default


# -- Google's conformance cases, a representative handful ------------------------------------------------------

CASES = [
    # (name, robots.txt, token, path, expected)
    ("ID_LineSyntax_Line#3", "user-agent FooBot\ndisallow /\n", "FooBot", "/x/y", False),
    ("ID_LineSyntax_Groups_OtherRules#3", "User-agent: FooBot\nInvalid-Unknown-Line: unknown\nUser-agent: *\n"
     "Disallow: /\n", "FooBot", "/", False),
    ("ID_UserAgentValueCaseInsensitive#4", "User-Agent: FOO BAR\nAllow: /x/\nDisallow: /\n", "Foo", "/a/b", False),
    ("GoogleOnly_AcceptUserAgentUpToFirstSpace#2", "User-Agent: *\nDisallow: /\nUser-Agent: Foo Bar\nAllow: /x/\n"
     "Disallow: /\n", "Foo Bar", "/x/y", False),
    ("ID_GlobalGroups_Secondary#4", "user-agent: FooBot\nallow: /\nuser-agent: BarBot\ndisallow: /\n"
     "user-agent: BazBot\ndisallow: /\n", "QuxBot", "/x/y", True),
    ("ID_Encoding#2", "User-agent: FooBot\nDisallow: /\nAllow: /foo/bar/ツ\n", "FooBot", "/foo/bar/%E3%83%84", True),
    ("ID_Encoding#7", "User-agent: FooBot\nDisallow: /\nAllow: /foo/bar/%62%61%7A\n", "FooBot",
     "/foo/bar/%62%61%7A", True),
    ("ID_SpecialCharacters#10", "User-agent: FooBot\n# Disallow: /\nDisallow: /foo/quz#qux\nAllow: /\n", "FooBot",
     "/foo/quz", False),
    ("GoogleOnly_IndexHTMLisDirectory#2", "User-Agent: *\nAllow: /allowed-slash/index.html\nDisallow: /\n",
     "foobot", "/allowed-slash/index.htm", False),
    ("GoogleOnly_DocumentationChecks#49", "user-agent: FooBot\ndisallow: /\nallow: /*.php$\n", "FooBot",
     "//windows.PHP", False),
    ("GoogleOnly_SystemTest#2", "user-agent: FooBot\ndisallow: /\n", "", "/", True),
]


@pytest.mark.parametrize(("name", "body", "token", "path", "expected"), CASES, ids=[c[0] for c in CASES])
def test_google_conformance_sample(name: str, body: str, token: str, path: str, expected: bool) -> None:
    assert allowed(body.encode("utf-8"), path, token) is expected


def test_index_html_does_not_allow_its_directory() -> None:
    """GoogleOnly_IndexHTMLisDirectory#1 is the one case we do not follow: it allows what the file does not say."""
    assert not allowed("User-Agent: *\nAllow: /allowed-slash/index.html\nDisallow: /\n", "/allowed-slash/", "foobot")
