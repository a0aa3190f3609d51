"""Page-level robots rules: X-Robots-Tag, Robots-Tag and meta robots, and what they deny per purpose."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentcrawl.pagehead import head_tags
from consentcrawl.purposes import KNOWN_PURPOSES
from consentcrawl.robots.dates import parse_date
from consentcrawl.robots.meta import parse_meta_robots
from consentcrawl.robots.tags import (
    META_SCAN_BYTES,
    PURPOSE_DENIALS,
    RAW_MAX,
    RobotsDirective,
    denials,
    nofollow,
    parse_robots_headers,
    product_token,
)

TOKEN = "ConsentCrawl/1.0"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def xrt(*values: str, token: str = TOKEN) -> list[tuple[str | None, str, str | None]]:
    """(scope, name, value) of the X-Robots-Tag lines `values`."""
    found = parse_robots_headers([("X-Robots-Tag", v) for v in values], token)
    return [(d.scope, d.name, d.value) for d in found]


def names(directives: list[RobotsDirective]) -> list[str]:
    return [d.name for d in directives]


def d(name: str, value: str | None = None) -> RobotsDirective:
    return RobotsDirective(name, value, "X-Robots-Tag", None, f"X-Robots-Tag: {name}")


# --- X-Robots-Tag -------------------------------------------------------------------------------------------------

def test_global_rules() -> None:
    found = parse_robots_headers([("X-Robots-Tag", "noindex, nofollow")], TOKEN)
    assert found == [
        RobotsDirective("noindex", None, "X-Robots-Tag", None, "X-Robots-Tag: noindex, nofollow"),
        RobotsDirective("nofollow", None, "X-Robots-Tag", None, "X-Robots-Tag: noindex, nofollow"),
    ]


def test_scoped_to_another_bot_does_not_apply() -> None:
    assert xrt("otherbot: noindex") == []
    assert xrt("otherbot: noindex", token="otherbot") == [("otherbot", "noindex", None)]


@pytest.mark.parametrize("line", ["consentcrawl: noindex", "ConsentCrawl: NOINDEX", "CONSENTCRAWL:noindex",
                                  "ConsentCrawl/2.0: noindex"])
def test_scoped_to_us_applies_whatever_the_case_and_version(line: str) -> None:
    assert xrt(line) == [("consentcrawl", "noindex", None)]


def test_user_agent_cut_to_product_token() -> None:
    assert product_token("ConsentCrawl/1.0 (+https://example.org/bot)") == "consentcrawl"
    assert product_token("  Other_Bot-2 x") == "other_bot-2"
    assert product_token("/nothing") == ""
    assert xrt("consentcrawlx: noindex") == []  # a longer token is another crawler


def test_scope_lasts_to_end_of_line_and_switches_at_next_agent() -> None:
    assert xrt("otherbot: noindex, nofollow") == []
    assert xrt("noarchive, otherbot: noindex, consentcrawl: noai, nosnippet") == [
        (None, "noarchive", None), ("consentcrawl", "noai", None), ("consentcrawl", "nosnippet", None)]
    assert xrt("*: noindex") == [(None, "noindex", None)]


@pytest.mark.parametrize(("line", "expected"), [
    ("unavailable_after: 25 Jun 2010 15:00:00 PST", [(None, "unavailable_after", "25 Jun 2010 15:00:00 PST")]),
    ("max-snippet: 50", [(None, "max-snippet", "50")]),
    ("max-snippet:50, noarchive", [(None, "max-snippet", "50"), (None, "noarchive", None)]),
    ("max-image-preview: large", [(None, "max-image-preview", "large")]),
    ("max-video-preview: -1", [(None, "max-video-preview", "-1")]),
    ("Unavailable_After: 2010-06-25T15:00:00Z", [(None, "unavailable_after", "2010-06-25T15:00:00Z")]),
    ("unavailable-after: 2010-06-25", [(None, "unavailable_after", "2010-06-25")]),
    ("max-foo: 5", [(None, "max-foo", "5")]),  # an unknown rule with a number is a rule, not an agent
    ("max-foo: bar, noindex", [(None, "max-foo", "bar"), (None, "noindex", None)]),  # unknown: never a scope
])
def test_rules_with_a_colon_are_not_user_agents(line: str, expected: list[tuple[str | None, str, str | None]]) -> None:
    assert xrt(line) == expected


def test_agent_then_rule_with_a_colon() -> None:
    assert xrt("googlebot: unavailable_after: 2010-06-25") == []
    assert xrt("googlebot: unavailable_after: 2010-06-25", token="Googlebot") == [
        ("googlebot", "unavailable_after", "2010-06-25")]
    assert xrt("consentcrawl: unavailable_after: 25 Jun 2010 15:00:00 PST, noai") == [
        ("consentcrawl", "unavailable_after", "25 Jun 2010 15:00:00 PST"), ("consentcrawl", "noai", None)]


@pytest.mark.parametrize(("line", "date", "rest"), [
    ("unavailable_after: Friday, 25-Jun-2010 15:00:00 GMT", "Friday, 25-Jun-2010 15:00:00 GMT", []),
    ("unavailable_after: Fri, 25 Jun 2010 15:00:00 GMT, noindex", "Fri, 25 Jun 2010 15:00:00 GMT",
     [(None, "noindex", None)]),
    ("unavailable_after: Monday, June 25, 2010 3:00 PM, noarchive, otherbot: noindex",
     "Monday, June 25, 2010 3:00 PM", [(None, "noarchive", None)]),
    ("unavailable_after: Friday, 25-Jun-2010 15:00:00 GMT, consentcrawl: noai", "Friday, 25-Jun-2010 15:00:00 GMT",
     [("consentcrawl", "noai", None)]),
])
def test_commas_inside_dates_do_not_split_the_rule(line: str, date: str,
                                                   rest: list[tuple[str | None, str, str | None]]) -> None:
    assert xrt(line) == [(None, "unavailable_after", date), *rest]


def test_several_lines_are_unioned_and_a_scoped_line_never_relaxes() -> None:
    headers = [("X-Robots-Tag", "noindex"), ("x-robots-tag", "consentcrawl: index, follow"),
               ("Content-Type", "text/html"), ("X-ROBOTS-TAG", "NoArchive"), ("X-Robots-Tag", "otherbot: noai")]
    found = parse_robots_headers(headers, TOKEN)
    assert names(found) == ["noindex", "index", "follow", "noarchive"]
    assert [x.raw for x in found] == ["X-Robots-Tag: noindex", "x-robots-tag: consentcrawl: index, follow",
                                      "x-robots-tag: consentcrawl: index, follow", "X-ROBOTS-TAG: NoArchive"]
    assert names(denials(found, "search-indexing", NOW)) == ["noindex"]


def test_space_separated_rules_and_junk() -> None:
    assert xrt("noindex nofollow") == [(None, "noindex", None), (None, "nofollow", None)]
    assert xrt("noindex;nofollow") == [(None, "noindex", None), (None, "nofollow", None)]
    assert xrt(",, ,noindex,,") == [(None, "noindex", None)]
    assert xrt("") == []
    assert xrt("%%%, 42, (x)") == []


def test_header_containers() -> None:
    from scrapy.http.headers import Headers

    expected = ["noindex", "noai"]
    scrapy_headers = Headers({"X-Robots-Tag": ["noindex", "consentcrawl: noai"], "Content-Type": "text/html"})
    assert names(parse_robots_headers(scrapy_headers, TOKEN)) == expected
    as_bytes = [(b"X-Robots-Tag", b"noindex"), (b"x-robots-tag", b"consentcrawl: noai")]
    assert names(parse_robots_headers(as_bytes, TOKEN)) == expected
    assert names(parse_robots_headers({"X-Robots-Tag": "noindex, consentcrawl: noai"}, TOKEN)) == expected
    assert parse_robots_headers([("X-Robots-Tag", None), ("X-Robots-Tag",), 7], TOKEN) == []  # type: ignore[list-item]
    assert parse_robots_headers(None, TOKEN) == []  # type: ignore[arg-type]


def test_raw_is_truncated() -> None:
    found = parse_robots_headers([("X-Robots-Tag", "noindex, " + "x" * 1000)], TOKEN)
    assert found[0].name == "noindex" and len(found[0].raw) == RAW_MAX


def test_identical_directives_from_repeated_lines_are_kept_once() -> None:
    assert names(parse_robots_headers([("X-Robots-Tag", "noindex")] * 3, TOKEN)) == ["noindex"]


# --- Robots-Tag ---------------------------------------------------------------------------------------------------

def rt(*values: str, token: str = TOKEN, warnings: list[str] | None = None) -> list[tuple[str | None, str, str | None]]:
    found = parse_robots_headers([("Robots-Tag", v) for v in values], token, warnings=warnings)
    assert all(x.source == "Robots-Tag" for x in found)
    return [(x.scope, x.name, x.value) for x in found]


def test_robots_tag_list() -> None:
    assert rt("*;nosnippet, ConsentBot;noindex", token="ConsentBot/3") == [
        (None, "nosnippet", None), ("consentbot", "noindex", None)]
    assert rt("*;nosnippet, ConsentBot;noindex") == [(None, "nosnippet", None)]
    assert rt("consentcrawl;noai;max-snippet=50;unavailable_after=\"2010-06-25\";noindex=?0") == [
        ("consentcrawl", "noai", None), ("consentcrawl", "max-snippet", "50"),
        ("consentcrawl", "unavailable_after", "2010-06-25")]


def test_robots_tag_draft_example_and_inner_list() -> None:
    assert rt("*;noindex;nosnippet, ExampleBot;") == [(None, "noindex", None), (None, "nosnippet", None)]
    assert rt("(otherbot ConsentCrawl);noimageai, \"consentcrawl\";noai") == [
        ("consentcrawl", "noimageai", None), ("consentcrawl", "noai", None)]


@pytest.mark.parametrize("value", ["googlebot: noindex", "(a;noai",
                                   "*;noindex x", "*;max-snippet=", "*;x=\"unterminated", "caf\u00e9;noindex",
                                   "*;noindex=1.23456"])
def test_malformed_robots_tag_line_is_ignored_and_noted(value: str) -> None:
    warnings: list[str] = []
    assert rt(value, warnings=warnings) == []
    assert len(warnings) == 1 and "malformed" in warnings[0]


@pytest.mark.parametrize(("value", "expected"), [
    ("*;NoIndex", [(None, "noindex", None)]),
    ("*;noindex,", [(None, "noindex", None)]),
    ("*;noindex, ,x", [(None, "noindex", None)]),
    ("ConsentCrawl;NoAI;noimageai, *;NoArchive", [("consentcrawl", "noai", None), ("consentcrawl", "noimageai", None),
                                                  (None, "noarchive", None)]),
])
def test_a_restriction_spelt_with_upper_case_keys_or_empty_members_is_read_leniently(
        value: str, expected: list[tuple[str | None, str, str | None]]) -> None:
    """Invalid RFC 9651, but plainly meant: a restriction is not lost to its spelling (it can only restrict)."""
    warnings: list[str] = []
    assert rt(value, warnings=warnings) == expected
    assert len(warnings) == 1 and "read leniently" in warnings[0]


def test_malformed_robots_tag_line_does_not_drop_the_others() -> None:
    assert rt("*;noai", "bad: line", "*;noarchive") == [(None, "noai", None), (None, "noarchive", None)]


def test_bare_rule_in_robots_tag_is_read_as_global_with_a_warning() -> None:
    warnings: list[str] = []
    assert rt("noindex, ExampleBot", warnings=warnings) == [(None, "noindex", None)]
    assert len(warnings) == 1


def test_robots_tag_other_bare_items_are_valid_but_no_agents() -> None:
    assert rt('1;noindex, ?1;noai, :aGVsbG8=:;noarchive, @1659578233;none, %"caf%c3%a9";nofollow, *;nosnippet') == [
        (None, "nosnippet", None)]


# --- meta ---------------------------------------------------------------------------------------------------------

def meta(html: str | bytes, token: str = TOKEN, encoding: str = "utf-8") -> list[tuple[str | None, str, str | None]]:
    body = html.encode(encoding) if isinstance(html, str) else html
    found = parse_meta_robots(body, token, encoding)
    assert all(x.source == "meta" for x in found)
    return [(x.scope, x.name, x.value) for x in found]


def test_meta_robots_and_our_token() -> None:
    page = ('<!doctype html><html><head><meta charset="utf-8"><title>robots</title>'
            '<meta name="robots" content="noindex, nofollow"><meta name="ConsentCrawl" content="noai">'
            '<meta name="googlebot" content="noarchive"></head><body>hello</body></html>')
    assert meta(page) == [(None, "noindex", None), (None, "nofollow", None), ("consentcrawl", "noai", None)]
    assert meta(page, token="googlebot") == [(None, "noindex", None), (None, "nofollow", None),
                                             ("googlebot", "noarchive", None)]


@pytest.mark.parametrize("tag", [
    '<META NAME="ROBOTS" CONTENT="NOINDEX">',
    "<meta content='noindex' name='robots'>",
    "<meta name=robots content=noindex>",
    '<meta name="robots" content="noindex"/>',
    '<meta\nname = "robots"\tcontent= "noindex" />',
    '<meta name=" Robots " content=" noindex ">',
    '<meta name="robots" content="noindex" name="googlebot">',  # the first of repeated attributes counts
    '<meta data-x="a > b" name="robots" content="noindex">',  # a quoted ">" does not end the tag
    '<meta name="robots" content="&#110;oindex">',
])
def test_meta_attribute_syntax(tag: str) -> None:
    assert meta(f"<html><head>{tag}</head><body></body></html>") == [(None, "noindex", None)]


def test_meta_values_with_colons() -> None:
    page = ("<head><meta name='robots' content='index, follow, max-image-preview:large, max-snippet:-1, "
            "unavailable_after: Friday, 25-Jun-2010 15:00:00 GMT'></head>")
    assert meta(page) == [(None, "index", None), (None, "follow", None), (None, "max-image-preview", "large"),
                          (None, "max-snippet", "-1"), (None, "unavailable_after", "Friday, 25-Jun-2010 15:00:00 GMT")]


def test_several_meta_tags_are_unioned() -> None:
    page = ('<head><meta name="robots" content="noindex"><meta name="robots" content="index, follow">'
            '<meta name="consentcrawl" content="all"><meta name="robots" content="noarchive"></head>')
    assert [n for _, n, _ in meta(page)] == ["noindex", "index", "follow", "all", "noarchive"]


def test_meta_in_the_body_is_read_too() -> None:
    """A spider's ``.css("meta[name=robots]")`` finds a tag a template put in the body: it is read as the head's."""
    assert meta('<head></head><body><meta name="robots" content="noindex"></body>') == [(None, "noindex", None)]
    assert meta('<head><title>x</title></head><BODY class=x><meta name="robots" content="noindex">') == [
        (None, "noindex", None)]
    # between </head> and <body> HTML still puts a meta into the head
    assert meta('<head></head><meta name="robots" content="noindex"><body>') == [(None, "noindex", None)]


@pytest.mark.parametrize("hidden", [
    '<!-- <meta name="robots" content="noai"> -->',
    '<script>document.write(\'<meta name="robots" content="noai">\')</script>',
    '<title><meta name="robots" content="noai"></title>',
    '<style>/* <meta name="robots" content="noai"> */</style>',
])
def test_meta_in_comments_and_raw_text_does_not_count(hidden: str) -> None:
    page = f'<head>{hidden}<meta name="robots" content="noindex"></head>'
    assert meta(page) == [(None, "noindex", None)]


def test_body_tag_inside_a_script_does_not_end_the_head() -> None:
    page = '<head><script>var s = "<body>";</script><meta name="robots" content="noindex"></head><body>'
    assert meta(page) == [(None, "noindex", None)]


@pytest.mark.parametrize("times", [1, 5, 17])
def test_meta_after_the_first_window_is_read_up_to_the_body(times: int) -> None:
    """A head longer than the first window (:data:`META_SCAN_BYTES`) is read to its end, and the head's scan no
    further (the body's ``<meta>`` tags are read after it, for meta robots only)."""
    filler = "<link rel=x>" * (META_SCAN_BYTES // 12) * times
    style = "<style>" + "a{b:c}" * (META_SCAN_BYTES // 6) * times + "</style>"
    noindex = '<meta name="robots" content="noindex">'
    for head in (filler, style, f"<!--{style}-->", f'<script>"<body>"{style}</script>'):
        assert meta(f"<head>{head}{noindex}</head><body>") == [(None, "noindex", None)], head[:40]
        assert meta(f"<head>{noindex}{head}</head><body>") == [(None, "noindex", None)], head[:40]
        assert all(t.tag == "link" for t in head_tags(f"<head>{head}</head><body>{noindex}".encode())), head[:40]
        assert meta(f"<head>{head}</head><body>{noindex}") == [(None, "noindex", None)], head[:40]
    for codec in ("utf-16", "cp037"):
        page = f"<head>{style}{noindex}</head><body>".encode(codec)
        assert parse_meta_robots(page, TOKEN, codec)[0].name == "noindex", codec


def test_meta_pre_check() -> None:
    assert meta('<html><head><meta name="viewport" content="width=device-width"></head>') == []
    assert meta("<html><head><title>robots</title></head>") == []
    assert meta(b"") == []
    assert parse_meta_robots(None, TOKEN) == []  # type: ignore[arg-type]


def test_meta_encodings() -> None:
    page = '<head><meta name="robots" content="noindex"><title>caf\u00e9</title></head>'
    for encoding in ("utf-16", "utf-16-le", "latin-1", "cp1252", "no-such-encoding"):
        body = page.encode("utf-8" if encoding == "no-such-encoding" else encoding)
        assert parse_meta_robots(body, TOKEN, encoding)[0].name == "noindex", encoding
    assert parse_meta_robots(page, TOKEN)[0].name == "noindex"  # type: ignore[arg-type]  # str is tolerated


def test_meta_raw_and_unclosed_tags() -> None:
    found = parse_meta_robots(b'<head><meta name="robots" content="noindex">', TOKEN)
    assert found[0].raw == '<meta name="robots" content="noindex">'
    assert meta('<head><meta name="robots" content="noindex') == [(None, "noindex", None)]
    # an unclosed quote runs to the end of the document, as in HTML: nothing readable is left
    assert meta('<head><meta name="robots" content="noindex><meta name=robots content=noai>') == []


# --- denials ------------------------------------------------------------------------------------------------------

def test_purpose_table_covers_every_known_purpose() -> None:
    assert set(PURPOSE_DENIALS) == KNOWN_PURPOSES


@pytest.mark.parametrize(("purpose", "denied_by"), [
    ("search-indexing", {"noindex", "none"}),
    ("ai-training", {"noai", "noimageai"}),
    ("ai-input", {"noai", "noarchive"}),
    ("commercial-profiling", {"noindex", "none", "noarchive"}),
    ("archiving", {"noarchive", "none", "noindex"}),
    ("research", set()),
])
def test_denials_mapping(purpose: str, denied_by: set[str]) -> None:
    every = ["noindex", "nofollow", "none", "noarchive", "nosnippet", "noimageindex", "noai", "noimageai",
             "nocache", "notranslate", "index", "follow", "all", "max-snippet"]
    assert {x.name for x in denials([d(n) for n in every], purpose, NOW)} == denied_by


def test_none_is_noindex_and_nofollow() -> None:
    found = parse_robots_headers([("X-Robots-Tag", "none")], TOKEN)
    assert names(found) == ["none"]
    assert nofollow(found)
    assert names(denials(found, "search-indexing", NOW)) == ["none"]
    assert not nofollow([d("noindex"), d("noarchive")])
    assert nofollow([d("noindex"), d("nofollow")])


@pytest.mark.parametrize(("value", "past"), [
    ("25 Jun 2010 15:00:00 PST", True),
    ("Friday, 25-Jun-2010 15:00:00 GMT", True),
    ("Fri, 25 Jun 2010 15:00:00 GMT", True),
    ("2010-06-25", True),
    ("2010-06-25T15:00:00Z", True),
    ("25 Jun 2010", True),
    ("June 25, 2010", True),
    ("2099-01-01T00:00:00+02:00", False),
    ("Thu, 01 Jan 2099 00:00:00 GMT", False),
    ("@1277478000", True),  # an RFC 9651 Date, as the Robots-Tag structured form writes it: 2010-06-25
    ("@-99999999999999", True),  # before year 1: long past, not unreadable
    ("@4102444800", False),  # 2100-01-01
])
def test_unavailable_after(value: str, past: bool) -> None:
    rule = [d("unavailable_after", value)]
    for purpose in ("search-indexing", "commercial-profiling"):
        assert bool(denials(rule, purpose, NOW)) is past
    for purpose in ("ai-training", "ai-input", "archiving", "research"):
        assert denials(rule, purpose, NOW) == []


def test_unavailable_after_boundary_and_naive_now() -> None:
    rule = [d("unavailable_after", "2026-01-01T00:00:00Z")]
    assert denials(rule, "search-indexing", NOW)
    assert not denials(rule, "search-indexing", NOW - timedelta(seconds=1))
    assert denials(rule, "search-indexing", datetime(2026, 1, 1))  # naive: UTC
    assert parse_date("25 Jun 2010 15:00:00 PST") == datetime(2010, 6, 25, 23, tzinfo=timezone.utc)


@pytest.mark.parametrize("value", [None, "", "garbage", "32 Jun 2010", "Fri, 25 Jun 99999 15:00:00 GMT",
                                   "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "99:99 GMT", "Jun 2010",
                                   "Smarch 25, 2010", "@999999999999999", "@1.5", "@"])
def test_unreadable_unavailable_after_is_ignored(value: str | None) -> None:
    assert denials([d("unavailable_after", value)], "search-indexing", NOW) == []


def test_unknown_purpose_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown purpose"):
        denials([d("noindex")], "sightseeing", NOW)


def test_to_evidence() -> None:
    found = parse_meta_robots(b'<meta name="robots" content="noai">', TOKEN)
    evidence = found[0].to_evidence("https://example.org/p/1")
    assert evidence.to_dict() == {"kind": "meta-robots", "source": "https://example.org/p/1", "directive": "noai",
                                  "value": None, "scope": None, "raw": '<meta name="robots" content="noai">'}


def test_end_to_end_headers_and_meta() -> None:
    headers = [("X-Robots-Tag", "otherbot: noindex"), ("Robots-Tag", "*;noarchive")]
    body = b'<html><head><meta name="consentcrawl" content="noai"></head><body>text</body></html>'
    found = parse_robots_headers(headers, TOKEN) + parse_meta_robots(body, TOKEN)
    assert names(denials(found, "ai-input", NOW)) == ["noarchive", "noai"]
    assert names(denials(found, "ai-training", NOW)) == ["noai"]
    assert denials(found, "search-indexing", NOW) == []
    assert not nofollow(found)


# --- never raises -------------------------------------------------------------------------------------------------

_FRAGMENTS = ["noindex", "none", "noai", "nofollow", "unavailable_after", "max-snippet", "consentcrawl", "otherbot",
              "*", ":", ",", ";", "=", " ", "\t", "\"", "'", "(", ")", "?1", "?0", "@", "%\"", "-1", "2010-06-25",
              "Fri", "25 Jun 2010", "15:00:00", "GMT", "\\", "\x00", "\u00e9", "\r\n", "<meta", "name=", "robots",
              "content=", ">", "<body>", "<!--", "-->", "<script>", "</script>", "<head>", "/"]
_fragmented = st.lists(st.sampled_from(_FRAGMENTS), max_size=30).map("".join)
_text = st.one_of(st.text(max_size=200), _fragmented)
_names = st.sampled_from(["X-Robots-Tag", "x-robots-tag", "Robots-Tag", "ROBOTS-TAG", "Content-Type"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_names, _text), max_size=4), st.one_of(st.text(max_size=20), st.just(TOKEN)),
       st.datetimes(timezones=st.sampled_from([None, timezone.utc, timezone(timedelta(hours=-12)),
                                                timezone(timedelta(hours=14))])))
def test_headers_never_raise(headers: list[tuple[str, str]], token: str, now: datetime) -> None:
    warnings: list[str] = []
    found = parse_robots_headers(headers, token, warnings=warnings)
    for purpose in KNOWN_PURPOSES:
        denials(found, purpose, now)
    nofollow(found)
    assert all(len(x.raw) <= RAW_MAX for x in found)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.binary(max_size=20), _names), st.one_of(st.binary(max_size=60),
                                                                                st.lists(st.binary(max_size=30)))),
                max_size=4))
def test_binary_headers_never_raise(headers: list[tuple[bytes, bytes]]) -> None:
    parse_robots_headers(headers, TOKEN)


@settings(max_examples=120, deadline=None)
@given(st.one_of(st.binary(max_size=400), _fragmented.map(lambda s: s.encode("utf-8", "surrogatepass"))),
       st.sampled_from([TOKEN, "robots", "", "x" * 30]), st.sampled_from(["utf-8", "utf-16", "latin-1", "bogus"]))
def test_meta_never_raises(body: bytes, token: str, encoding: str) -> None:
    for x in parse_meta_robots(body, token, encoding):
        assert x.source == "meta" and len(x.raw) <= RAW_MAX
        denials([x], "search-indexing", NOW)


@settings(max_examples=120, deadline=None)
@given(st.one_of(st.text(max_size=60), _fragmented))
def test_dates_never_raise(value: str) -> None:
    when = parse_date(value)
    assert when is None or when.tzinfo is timezone.utc
    denials([d("unavailable_after", value)], "commercial-profiling", NOW)


def test_large_inputs_stay_linear() -> None:
    parse_robots_headers([("X-Robots-Tag", "unavailable_after: x" + ", y" * 40_000)], TOKEN)
    parse_robots_headers([("Robots-Tag", "*;a" * 30_000)], TOKEN)
    parse_meta_robots(b"<head>" + b'<meta name="robots" content="' * 20_000, TOKEN)
    parse_meta_robots(b"<head>" + b"<!--" * 30_000 + b"robots", TOKEN)
