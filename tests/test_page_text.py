"""A response's page is worked out once for every reader (the refusal reading, meta robots, the signals), and never
read from what a middleware changed since: the reading is kept with everything it depends on."""

from __future__ import annotations

import gzip

from scrapy.http import HtmlResponse, Response

from consentcrawl.robots.meta import parse_meta_robots
from consentcrawl.signalphase import body_readings, page_text

PAGE = b'<html><head><meta name="robots" content="noai"></head><body><p>Hi</p></body></html>'


def test_one_response_is_worked_out_once() -> None:
    response = HtmlResponse("https://example.com/u/a", body=PAGE, headers={"Content-Type": "text/html; charset=utf-8"})
    first = page_text(response, 0)
    assert first.body == PAGE and first.html and first.encodings[0] == "utf-8"
    assert page_text(response, 0) is first
    assert body_readings(response, 0) == (PAGE, first.encodings)


def test_a_header_changed_in_place_is_read_anew() -> None:
    # a middleware that changes the type of the same response object changes whether it is read for its tags
    doc = b'{"bio": "<meta name=robots content=noai>"}'
    response = Response("https://example.com/u/a", body=doc, headers={"Content-Type": "text/html"})
    assert page_text(response, 0).html
    response.headers[b"Content-Type"] = b"application/json"
    assert not page_text(response, 0).html
    assert body_readings(response, 0) == (None, ("utf-8",))
    # and one that drops its Content-Encoding changes what the bytes are
    plain = Response("https://example.com/u/a", body=PAGE.replace(b"<html>", b"<html> "),
                     headers={"Content-Type": "text/html; charset=utf-8"})
    assert page_text(plain, 0).body == plain.body
    plain.headers[b"Content-Encoding"] = b"gzip"
    try:
        page_text(plain, 0)
    except ValueError:
        pass  # plain bytes said to be gzip: not readable, denied (not the plain reading kept from before)
    else:
        raise AssertionError("a Content-Encoding added in place was not read")


def test_a_new_limit_is_read_anew() -> None:
    big = PAGE + b" " * 5000
    response = Response("https://example.com/u/a", body=gzip.compress(big),
                        headers={"Content-Type": "text/html", "Content-Encoding": "gzip"})
    assert page_text(response, 0).body == big
    try:
        page_text(response, 100)
    except ValueError:
        pass
    else:
        raise AssertionError("a body over the new limit was read from the reading within the old one")


def test_a_new_body_is_read_anew() -> None:
    response = HtmlResponse("https://example.com/u/a", body=PAGE, headers={"Content-Type": "text/html"})
    assert page_text(response, 0).body == PAGE
    other = PAGE.replace(b"noai", b"noindex")
    response._set_body(other)  # what a middleware that rewrites the body in place does
    assert page_text(response, 0).body == other


def test_meta_robots_directives_are_remembered_by_token_and_encoding_and_handed_out_fresh() -> None:
    page = PAGE.replace(b"</head>", b'<meta name="otherbot" content="noindex"></head>')
    mine = parse_meta_robots(page, "consentcrawl")
    assert [d.name for d in mine] == ["noai"]
    mine.clear()  # a caller that extends or clears its list changes nothing remembered
    assert [d.name for d in parse_meta_robots(page, "consentcrawl")] == ["noai"]
    assert sorted(d.name for d in parse_meta_robots(page, "otherbot")) == ["noai", "noindex"]
    ebcdic = page.decode().encode("cp500")
    assert [d.name for d in parse_meta_robots(ebcdic, "consentcrawl", "cp500")] == ["noai"]
    assert parse_meta_robots(ebcdic, "consentcrawl", "utf-8") == []
