"""The request headers a decision reads (``Host``, ``Cookie``, the rewrite and framing headers), picked out of a
request in one pass (:func:`consentcrawl.facts.read_headers`): the same values, in the same order, as asking
Scrapy's ``Headers`` for each name, whatever the spelling of the name; the crawls that show what a server does with
them are in ``test_leaks_fresh.py``."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st
from scrapy.http import Headers

from consentcrawl.facts import FRAMING_HEADERS, REWRITE_HEADERS, read_headers

_NAMES = [*REWRITE_HEADERS, *FRAMING_HEADERS, "Host", "Cookie", "Accept", "X-Original", "Content-Type",
          "X-Forwarded-Host", "Forwarded"]


def _spelled(name: str, style: int) -> str:
    return (name, name.lower(), name.upper(), name.swapcase(), name.title())[style]


def _asked_by_name(headers: Headers, body: bytes) -> tuple[list[bytes], list[bytes], tuple[tuple[str, str], ...]]:
    """What Scrapy's ``Headers`` answers when asked for each name, one at a time (the reference)."""
    rewrites = tuple((name, value.decode("latin-1")) for name in (*REWRITE_HEADERS, *FRAMING_HEADERS)
                     for value in headers.getlist(name)
                     if name != "Content-Length" or value.strip() != str(len(body)).encode())
    forwarded = [h.strip() for v in headers.getlist("X-Forwarded-Host") for h in v.split(b",")]
    forwarded += [v.strip().strip(b'"') for value in headers.getlist("Forwarded")
                  for element in value.split(b",") for pair in element.split(b";")
                  for k, _, v in (pair.partition(b"="),) if k.strip().lower() == b"host"]
    return headers.getlist("Host") + forwarded, headers.getlist("Cookie"), rewrites


_VALUES = st.lists(st.sampled_from([b"/u/107", b"/about", b"chunked", b"3", b" 3 ", b"4", b"people.example",
                                    b"a=1; b=2", b"\xe9", b'for=1.2.3.4;HOST="people.example"',
                                    b"a.example, b.example"]),
                   min_size=1, max_size=3)


@given(st.lists(st.tuples(st.sampled_from(_NAMES), st.integers(0, 4), _VALUES), max_size=8),
       st.sampled_from([b"", b"abc", b"x=1&y=2"]))
@example([("Content-Length", 1, [b"3"]), ("X-Forwarded-Uri", 2, [b"/a", b"/b"]), ("X-Original-URL", 0, [b"/c"])],
         b"abc")
def test_one_pass_reads_what_asking_for_each_name_reads(
        headers: list[tuple[str, int, list[bytes]]], body: bytes) -> None:
    request_headers = Headers()
    for name, style, values in headers:
        request_headers.appendlist(_spelled(name, style), values)
    assert read_headers(request_headers, body) == _asked_by_name(request_headers, body)


def test_a_name_put_in_without_normalising_is_read_too() -> None:
    """A header put into the mapping past its normalising (``dict.__setitem__``) is still read, in any case."""
    headers = Headers({"Accept": "*/*"})
    dict.__setitem__(headers, b"x-original-url", [b"/u/107"])
    dict.__setitem__(headers, "TRANSFER-ENCODING", [b"chunked"])
    dict.__setitem__(headers, b"HOST", [b"other.example"])
    dict.__setitem__(headers, b"cookie", [b"id=107"])
    assert read_headers(headers, b"") == ([b"other.example"], [b"id=107"],
                                          (("X-Original-URL", "/u/107"), ("Transfer-Encoding", "chunked")))


def test_the_bodys_own_content_length_is_left_out_and_any_other_kept() -> None:
    headers = Headers({"Content-Length": ["3", " 3 ", "30"]})
    assert read_headers(headers, b"abc")[2] == (("Content-Length", "30"),)
    assert read_headers(headers, b"")[2] == (("Content-Length", "3"), ("Content-Length", " 3 "),
                                             ("Content-Length", "30"))
