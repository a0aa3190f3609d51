"""Canonical URLs and registered domains: every spelling of a profile URL must resolve to the same thing."""

from __future__ import annotations

import gc
import importlib.util
import ipaddress
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from consentcrawl import domains, urls
from consentcrawl.urls import CanonicalURL, canonical_url, canonicalize, registered_domain

# Modest and stateless: no .hypothesis/ directory in the tree, a few seconds in all.
SETTINGS = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

BASE = "http://microblog.example/u/alice"
FULLWIDTH = "".join(chr(ord(ch) + 0xFEE0) for ch in "microblog.example")  # full-width forms, U+FF01..U+FF5E


def c(url: str) -> str:
    return canonical_url(url)


# -- example-based: one rule each --------------------------------------------------------------------------------


def test_dataclass_fields_and_properties() -> None:
    u = canonicalize("HTTPS://User:pw@M.MicroBlog.Example:8443/u/%61lice/?b=2&a=1#top")
    assert u == CanonicalURL("https", "m.microblog.example", 8443, "/u/alice", "b=2&a=1")
    assert u.origin == "https://m.microblog.example:8443"
    assert u.path_query == "/u/alice?b=2&a=1"
    assert u.url == "https://m.microblog.example:8443/u/alice?b=2&a=1"
    assert str(u) == u.url
    with pytest.raises(AttributeError):
        u.host = "evil.example"  # type: ignore[misc]


@pytest.mark.parametrize(("url", "expected"), [
    ("HTTP://MicroBlog.EXAMPLE/u/Alice", "http://microblog.example/u/Alice"),  # path case is kept
    ("hTTpS://microblog.example/", "https://microblog.example/"),
])
def test_scheme_and_host_lower_case(url: str, expected: str) -> None:
    assert c(url) == expected


@pytest.mark.parametrize(("url", "host"), [
    ("http://micróblog.example/", "xn--micrblog-y3a.example"),
    ("http://MICRÓBLOG.example/", "xn--micrblog-y3a.example"),
    ("http://XN--MICRBLOG-Y3A.example/", "xn--micrblog-y3a.example"),
    (f"http://{FULLWIDTH}/", "microblog.example"),  # full-width, UTS #46 mapped
    ("http://münchen。de/", "xn--mnchen-3ya.de"),  # ideographic full stop is a dot
    ("http://straße.example/", "xn--strae-oqa.example"),  # non-transitional, as browsers and terms/ do
    ("http://☃.example/", "xn--n3h.example"),  # IDNA 2008 rejects, clients fetch it: Python's codec fallback
    ("http://microblog.example./", "microblog.example"),  # trailing root dot
    ("http://microblog.example../", "microblog.example"),
    ("http://micro%62log.example/", "microblog.example"),  # WHATWG percent-decodes the host
    ("http://micr%C3%B3blog.example/", "xn--micrblog-y3a.example"),
    ("http://a_b.example/", "a_b.example"),
])
def test_host_idna(url: str, host: str) -> None:
    assert canonicalize(url).host == host


@pytest.mark.parametrize(("url", "port", "expected"), [
    ("http://microblog.example:80/u", 80, "http://microblog.example/u"),
    ("https://microblog.example:443/u", 443, "https://microblog.example/u"),
    ("http://microblog.example/u", 80, "http://microblog.example/u"),
    ("https://microblog.example/u", 443, "https://microblog.example/u"),
    ("http://microblog.example:443/u", 443, "http://microblog.example:443/u"),
    ("https://microblog.example:80/u", 80, "https://microblog.example:80/u"),
    ("http://microblog.example:8080/u", 8080, "http://microblog.example:8080/u"),
    ("http://microblog.example:0080/u", 80, "http://microblog.example/u"),
    ("http://microblog.example:/u", 80, "http://microblog.example/u"),  # empty port is the default
])
def test_ports(url: str, port: int, expected: str) -> None:
    assert canonicalize(url).port == port
    assert c(url) == expected


@pytest.mark.parametrize(("url", "path"), [
    ("http://x.example/u/%61%6C%69%63%65", "/u/alice"),  # unreserved escapes decoded, either case
    ("http://x.example/u/%41%7e%7E%2D%5f%2e", "/u/A~~-_."),
    ("http://x.example/u/%c3%bc", "/u/%C3%BC"),  # other escapes upper-cased
    ("http://x.example/u/ü", "/u/%C3%BC"),  # raw non-ASCII encoded as UTF-8
    ("http://x.example/u/漢", "/u/%E6%BC%A2"),
    ("http://x.example/u/a b\"<>`{}|^[]", "/u/a%20b%22%3C%3E%60%7B%7D%7C%5E%5B%5D"),  # unsafe characters
    ("http://x.example/u/a%2fb", "/u/a%2Fb"),  # %2F is data, never a separator
    ("http://x.example/u/a%2Fb", "/u/a%2Fb"),
    ("http://x.example/u/%25", "/u/%25"),  # an escaped % stays escaped
    ("http://x.example/u/%zz%", "/u/%25zz%25"),  # a lone % is data
    ("http://x.example/u/%%34%31", "/u/%2541"),  # ... and never becomes an escape on a second pass
    ("http://x.example/%40alice", "/@alice"),  # every pchar is literal in the path
    ("http://x.example/u/%3A%21%24%26%27%28%29%2A%2B%2C%3B%3D", "/u/:!$&'()*+,;="),
    ("http://x.example/u/%3F%23", "/u/%3F%23"),  # ? and # would change the parse
    ("http://x.example/u/%5C", "/u/%5C"),  # an escaped backslash is not a slash
])
def test_path_percent_encoding(url: str, path: str) -> None:
    assert canonicalize(url).path == path


@pytest.mark.parametrize(("url", "query"), [
    ("http://x.example/p?a=%61&b=%7e", "a=a&b=~"),
    ("http://x.example/p?a=%40%3a%2f%3f", "a=@:/?"),
    ("http://x.example/p?a=%26%3D%2B%3B%2c", "a=%26%3D%2B%3B%2C"),  # form delimiters keep their escapes
    ("http://x.example/p?a=1&b=2&a=3", "a=1&b=2&a=3"),  # parameters and order kept
    ("http://x.example/p?b=2&a=1", "b=2&a=1"),
    ("http://x.example/p?q=ü x", "q=%C3%BC%20x"),
    ("http://x.example/p?q=a+b", "q=a+b"),
    ("http://x.example/p?q=%zz", "q=%25zz"),
    ("http://x.example/p?q=a\\b", "q=a%5Cb"),  # backslash is a slash only before the query
    ("http://x.example/p?", ""),
    ("http://x.example/p", ""),
    ("http://x.example/p?a=1#frag?b=2", "a=1"),
])
def test_query(url: str, query: str) -> None:
    assert canonicalize(url).query == query


@pytest.mark.parametrize(("url", "path"), [
    ("http://x.example/u/./alice", "/u/alice"),
    ("http://x.example/u/x/../alice", "/u/alice"),
    ("http://x.example/u/alice/.", "/u/alice"),
    ("http://x.example/u/alice/x/..", "/u/alice"),
    ("http://x.example/../../u/alice", "/u/alice"),  # never above the root
    ("http://x.example/u/%2e/alice", "/u/alice"),  # %2E is "." — decoded BEFORE dot-segment removal
    ("http://x.example/u/x/%2e%2e/alice", "/u/alice"),
    ("http://x.example/u/x/.%2E/alice", "/u/alice"),
    ("http://x.example/u/x/%2E./alice", "/u/alice"),
    ("http://x.example/u/x%2f%2e%2e/alice", "/u/x%2F../alice"),  # not a segment of its own: kept
    ("http://x.example/u/...", "/u/..."),
    ("http://x.example//u///alice", "/u/alice"),  # repeated slashes collapsed
    ("http://x.example/u//../alice", "/alice"),  # ... before dot-segments are resolved
    ("http://x.example/u/alice/", "/u/alice"),  # trailing slash ignored
    ("http://x.example/u/alice//", "/u/alice"),
    ("http://x.example/", "/"),
    ("http://x.example", "/"),  # empty path
    ("http://x.example?a=1", "/"),
    ("http://x.example/u/alice#/u/bob", "/u/alice"),  # fragment dropped
])
def test_path_segments(url: str, path: str) -> None:
    assert canonicalize(url).path == path


@pytest.mark.parametrize(("url", "expected"), [
    ("http://user:pw@microblog.example/u/alice", BASE),  # userinfo dropped
    ("http://a@b@microblog.example/u/alice", BASE),  # userinfo ends at the last @
    ("http://microblog.example\\u\\alice", BASE),  # WHATWG: \ is / for http(s)
    ("http:\\\\microblog.example\\u\\alice", BASE),
    ("http://microblog.example\\@evil.example/u", "http://microblog.example/@evil.example/u"),  # where it goes
    ("http:///microblog.example/u/alice", BASE),  # any run of slashes after the scheme
    ("http:microblog.example/u/alice", BASE),
    ("  http://microblog.example/u/al\tice\n ", BASE),  # surrounding spaces, tabs and newlines removed
    ("http://microblog.example/u/alice?#", BASE),
])
def test_whatwg_parsing(url: str, expected: str) -> None:
    assert c(url) == expected


@pytest.mark.parametrize(("url", "host", "origin"), [
    ("http://127.0.0.1/", "127.0.0.1", "http://127.0.0.1"),
    ("http://0x7f.1/", "127.0.0.1", "http://127.0.0.1"),  # numeric forms a resolver accepts
    ("http://2130706433/", "127.0.0.1", "http://127.0.0.1"),
    ("http://0177.0.0.01/", "127.0.0.1", "http://127.0.0.1"),
    ("http://127.0.0.1.:8080/", "127.0.0.1", "http://127.0.0.1:8080"),
    ("http://[::1]/", "::1", "http://[::1]"),
    ("http://[2001:DB8:0:0:1:0:0:1]:8080/", "2001:db8::1:0:0:1", "http://[2001:db8::1:0:0:1]:8080"),
    ("http://[2001:db8:0000::0001]:80/", "2001:db8::1", "http://[2001:db8::1]"),
    ("http://[::ffff:1.2.3.4]/", "::ffff:102:304", "http://[::ffff:102:304]"),  # WHATWG serialisation
    ("https://[0:0:0:0:0:0:0:0]/", "::", "https://[::]"),
])
def test_ip_hosts(url: str, host: str, origin: str) -> None:
    u = canonicalize(url)
    assert (u.host, u.origin) == (host, origin)
    assert canonicalize(u.url) == u


@pytest.mark.parametrize("url", [
    "ftp://microblog.example/u/alice",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "microblog.example/u/alice",
    "//microblog.example/u/alice",
    "",
    "http://",
    "http:///",
    "http://user@/u",
    "http://[::1/u",
    "http://[::1]x/u",
    "http://[fe80::1%25eth0]/",
    "http://[1.2.3.4]/",
    "http://microblog..example/",
    "http://micro blog.example/",
    "http://micro%20blog.example/",
    "http://micro%2fblog.example/",
    "http://micro%ffblog.example/",
    "http://x.example:99999/",
    "http://x.example:8o/",
    "http://x.example:-1/",
    "http://x.example:\uff18\uff10/",  # full-width digits are not a port
    "http://1.2.3.4.5/",
    "http://256.1.1.1/",
    "http://08.1.1.1/",
    "http://example.123/",
    "http://xn--zz.-a.example\udcff/",
    "http://x.example/\udcff",
])
def test_unparseable_urls_raise_value_error(url: str) -> None:
    with pytest.raises(ValueError):
        canonicalize(url)


def test_non_str_raises_value_error() -> None:
    with pytest.raises(ValueError, match="str"):
        canonicalize(b"http://microblog.example/")  # type: ignore[arg-type]


def test_error_messages_say_why() -> None:
    with pytest.raises(ValueError, match="unsupported scheme 'ftp'"):
        canonicalize("ftp://x.example/")
    with pytest.raises(ValueError, match="invalid port"):
        canonicalize("http://x.example:99999/")


@pytest.mark.parametrize(("host", "expected"), [
    ("microblog.example", "microblog.example"),
    ("m.microblog.example", "microblog.example"),
    ("WWW.MicroBlog.Example.", "microblog.example"),
    ("a.b.c.microblog.example", "microblog.example"),
    ("www.bbc.co.uk", "bbc.co.uk"),
    ("bbc.co.uk", "bbc.co.uk"),
    ("news.example.com", "example.com"),
    ("alice.github.io", "github.io"),  # ICANN suffixes only: private ones would split a platform
    ("x.y.test", "y.test"),  # reserved names: the last label is the suffix
    ("foo.localhost", "foo.localhost"),
    ("printer.local", "printer.local"),
    ("a.b.invalid", "b.invalid"),
    ("münchen.de", "xn--mnchen-3ya.de"),
    ("www.xn--mnchen-3ya.de", "xn--mnchen-3ya.de"),
    ("a.b.ck", "a.b.ck"),  # PSL wildcard *.ck
    ("www.ck", "www.ck"),  # ... and its exception !www.ck
    ("co.uk", ""),  # a public suffix has no registered domain
    ("localhost", ""),
    ("192.0.2.1", "192.0.2.1"),  # IP addresses are their own registered domain
    ("0xc0.0.2.1", "192.0.2.1"),
    ("2001:DB8::1", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
])
def test_registered_domain(host: str, expected: str) -> None:
    assert registered_domain(host) == expected


@pytest.mark.parametrize("host", ["", "a..b", "a b.example", "[::1", "::zz", "microblog.example:80"])
def test_registered_domain_rejects_invalid_hosts(host: str) -> None:
    with pytest.raises(ValueError):
        registered_domain(host)


def test_registered_domain_of_canonical_hosts() -> None:
    """The way the policy uses it: registered_domain(canonicalize(url).host)."""
    for url, expected in [("http://M.MicroBlog.Example:80/u/a", "microblog.example"),
                          ("http://[2001:db8::1]:8080/", "2001:db8::1"), ("http://0x7f.1/", "127.0.0.1")]:
        assert registered_domain(canonicalize(url).host) == expected


# -- property-based: respellings of one profile URL ---------------------------------------------------------------

_ID_ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~@:!$&'()*+,;="
_ID_CHARS = st.one_of(st.sampled_from(_ID_ASCII), st.sampled_from("üéß漢字😀ж"))
profile_ids = st.lists(_ID_CHARS, min_size=1, max_size=12).map("".join).filter(lambda s: s.strip(".") != "")


def _hex(data: bytes, upper: bool) -> str:
    text = "".join(f"%{b:02X}" for b in data)
    return text if upper else text.lower()


@st.composite
def spelled_char(draw: st.DrawFn, ch: str) -> str:
    """One character of an id: raw, or percent-encoded (UTF-8) in either hex case."""
    how = draw(st.sampled_from(["raw", "upper", "lower"]))
    return ch if how == "raw" else _hex(ch.encode(), how == "upper")


def random_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(ch.upper() if flip else ch for ch, flip in zip(text, flips, strict=True))


@st.composite
def respelled_profile(draw: st.DrawFn) -> tuple[str, str, bool]:
    """(plain URL, a respelling of it, whether the respelling uses a subdomain)."""
    ident = draw(profile_ids)
    plain = f"http://microblog.example/u/{ident}"
    scheme = random_case(draw, "http")
    slashes = draw(st.sampled_from(["//", "//", "///", "\\\\", "/\\"]))
    userinfo = draw(st.sampled_from(["", "", "user@", "user:pw@", "a@b@"]))
    sub = draw(st.sampled_from(["", "", "m.", "www."]))
    host = random_case(draw, sub + "microblog.example")
    if draw(st.booleans()):
        i = draw(st.integers(0, len(host) - 1))
        if host[i] != ".":
            host = host[:i] + _hex(host[i].encode(), draw(st.booleans())) + host[i + 1:]
    host += draw(st.sampled_from(["", "", "."]))
    port = draw(st.sampled_from(["", "", ":80", ":", ":0080"]))
    sep = st.sampled_from(["/", "/", "//", "/./", "/%2e/", "/%2E/", "/zz/../", "/zz/%2e%2E/", "/zz/.%2e/", "\\",
                           "/./zz//..//"])
    lead = draw(st.sampled_from(["/", "//", "\\", "/./", "/../"]))
    body = "".join(draw(spelled_char(ch)) for ch in ident)
    tail = draw(st.sampled_from(["", "", "/", "/.", "//", "/%2e", "/zz/.."]))
    query = draw(st.sampled_from(["", "?", "?a=1&b=%7e", "?q=%2f"]))
    fragment = draw(st.sampled_from(["", "#", "#frag", "#/u/bob/../x"]))
    respelled = f"{scheme}:{slashes}{userinfo}{host}{port}{lead}u{draw(sep)}{body}{tail}{query}{fragment}"
    return plain, respelled, sub != ""


@SETTINGS
@given(respelled_profile())
def test_respellings_resolve_to_the_same_profile(case: tuple[str, str, bool]) -> None:
    plain, respelled, has_sub = case
    a, b = canonicalize(plain), canonicalize(respelled)
    assert b.path == a.path
    assert (b.scheme, b.port) == (a.scheme, a.port)
    assert registered_domain(b.host) == registered_domain(a.host) == "microblog.example"
    if not has_sub:
        assert b.host == a.host
        assert b.origin == a.origin


@SETTINGS
@given(profile_ids, st.booleans(), st.booleans())
def test_escaped_slash_is_never_a_separator(ident: str, upper: bool, twice: bool) -> None:
    escaped = "%2F" if upper else "%2f"
    path = canonicalize(f"http://microblog.example/u/{ident}{escaped}x").path
    assert path.endswith("%2Fx")
    assert path != canonicalize(f"http://microblog.example/u/{ident}/x").path
    if twice:
        assert canonicalize(f"http://microblog.example/u/{ident}%2f%2e%2e").path.endswith("%2F..")


# -- property-based: idempotence on arbitrary URLs ----------------------------------------------------------------

_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_üßжσ漢Ｍ",
                 min_size=1, max_size=10)
_ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)

hosts = st.one_of(
    st.lists(_LABEL, min_size=1, max_size=4).map(".".join).map(lambda h: h + ".example"),
    st.sampled_from(["microblog.example", "M.MicroBlog.Example.", "micróblog.example", "www.bbc.co.uk"]),
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 2**32 - 1).map(str),
    st.integers(0, 2**128 - 1).map(lambda n: f"[{ipaddress.IPv6Address(n).exploded.upper()}]"),
    st.integers(0, 2**128 - 1).map(lambda n: f"[{ipaddress.IPv6Address(n)}]"),
)
segments = st.one_of(_ANY_TEXT, st.sampled_from([".", "..", "%2e", "%2E%2e", "", "%", "%2f", "%41", "%7e", "a%2F.."]))


@st.composite
def arbitrary_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https"]))
    userinfo = draw(st.sampled_from(["", "u:p@"]))
    port = draw(st.one_of(st.just(""), st.integers(0, 65535).map(lambda p: f":{p}")))
    path = "/".join(draw(st.lists(segments, max_size=6)))
    query = draw(st.one_of(st.just(""), _ANY_TEXT.map(lambda q: "?" + q)))
    fragment = draw(st.one_of(st.just(""), _ANY_TEXT.map(lambda f: "#" + f)))
    return f"{scheme}://{userinfo}{draw(hosts)}{port}/{path}{query}{fragment}"


def _assert_canonical(u: CanonicalURL) -> None:
    assert canonicalize(u.url) == u
    assert canonicalize(u.url).url == u.url
    assert u.url.isascii() and not any(ch.isspace() for ch in u.url)
    assert u.path.startswith("/") and (u.path == "/" or not u.path.endswith("/"))
    assert "//" not in u.path and "#" not in u.url
    assert u.scheme in ("http", "https") and u.host == u.host.lower()


@SETTINGS
@given(arbitrary_urls())
def test_idempotent_on_generated_urls(url: str) -> None:
    try:
        u = canonicalize(url)
    except ValueError:
        assume(False)
        raise
    _assert_canonical(u)


@SETTINGS
@given(st.text(max_size=40))
def test_arbitrary_text_either_raises_value_error_or_is_idempotent(tail: str) -> None:
    for url in ("http://" + tail, "https://microblog.example/" + tail):
        try:
            u = canonicalize(url)
        except ValueError:
            continue
        _assert_canonical(u)


@pytest.mark.skipif(importlib.util.find_spec("w3lib") is None, reason="w3lib (a Scrapy dependency) not installed")
@SETTINGS
@given(respelled_profile())
def test_same_result_before_and_after_scrapy_normalisation(case: tuple[str, str, bool]) -> None:
    """Scrapy passes every Request URL through w3lib's safe_url_string: canonicalising before or after agrees."""
    from w3lib.url import safe_url_string

    _, respelled, _ = case
    assert canonicalize(safe_url_string(respelled)) == canonicalize(respelled)


# -- the suffix list is the bundled one: no network, no cache files -----------------------------------------------


def test_registered_domain_never_touches_network_or_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    attempts: list[str] = []

    def refuse(name: str) -> Callable[..., None]:
        def blocked(*args: object, **kwargs: object) -> None:
            attempts.append(f"{name}{args!r}")
            raise AssertionError(f"network attempt: {name}{args!r}")
        return blocked

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TLDEXTRACT_CACHE", str(tmp_path / "tldextract"))
    monkeypatch.delenv("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", raising=False)

    import tldextract

    package_dir = Path(tldextract.__file__).parent
    package_files = sorted(p.name for p in package_dir.iterdir() if p.name != "__pycache__")

    # A fresh extractor: tldextract really reads its suffix list inside this test.
    domains._extractor.cache_clear()
    domains._suffix_rules.cache_clear()
    registered_domain.cache_clear()
    urls._canonical_host.cache_clear()
    try:
        assert registered_domain("m.microblog.example") == "microblog.example"
        assert registered_domain("www.bbc.co.uk") == "bbc.co.uk"
        assert registered_domain("news.example.com") == "example.com"
        assert registered_domain("a.b.ck") == "a.b.ck"
        assert registered_domain("münchen.de") == "xn--mnchen-3ya.de"
        assert registered_domain("192.0.2.1") == "192.0.2.1"
        assert domains._suffix_rules.cache_info().misses == 1
        assert domains._extractor().suffix_list_urls == ()
    finally:
        domains._extractor.cache_clear()
        registered_domain.cache_clear()
        urls._canonical_host.cache_clear()
    assert attempts == []
    assert list(tmp_path.rglob("*")) == []  # no cache directory or file anywhere under the temp HOME / XDG dirs
    assert sorted(p.name for p in package_dir.iterdir() if p.name != "__pycache__") == package_files
    assert not os.path.exists(package_dir / ".suffix_cache")


def _tldextract_registered_domain(host: str) -> str:
    """What registered_domain answered when it asked tldextract's own extractor (the reference)."""
    parts = domains._extractor()(host)
    if not parts.suffix:
        labels = host.split(".")
        return ".".join(labels[-2:]) if len(labels) >= 2 else ""
    return f"{parts.domain}.{parts.suffix}" if parts.domain else ""


def test_registered_domain_agrees_with_tldextract_on_every_rule_of_the_list() -> None:
    """Our suffix-rule lookup and tldextract's trie give the same answer around every ICANN rule."""
    rules = sorted(domains._suffix_rules())
    assert len(rules) > 6000 and "co.uk" in rules and "*.ck" in rules and "!www.ck" in rules
    checked = 0
    try:
        for rule in rules:
            base = rule.lstrip("!").replace("*", "wild")
            try:
                base_ascii = urls._canonical_host(base)
            except ValueError:
                continue
            for host in (base_ascii, f"a.{base_ascii}", f"b.a.{base_ascii}", f"www.{base_ascii}"):
                registered_domain.cache_clear()
                assert registered_domain(host) == _tldextract_registered_domain(host), host
                checked += 1
    finally:
        domains._extractor.cache_clear()
        registered_domain.cache_clear()
    assert checked > 20000


def test_registered_domain_keeps_no_suffix_trie_alive() -> None:
    """The suffix list lives as one set of strings, not as tldextract's ~17,000 trie nodes (GC cost, see urls.py)."""
    import gc

    import tldextract.tldextract as tx

    domains._extractor.cache_clear()
    domains._suffix_rules.cache_clear()
    registered_domain.cache_clear()
    assert registered_domain("www.bbc.co.uk") == "bbc.co.uk"
    gc.collect()
    scrapys = _reachable_tries()  # Scrapy's cookie middleware keeps an extractor of its own once cookies are used
    assert not any(isinstance(o, tx.Trie) and id(o) not in scrapys for o in gc.get_objects())


def _reachable_tries() -> set[int]:
    """The ids of the tldextract objects reachable from ``scrapy.downloadermiddlewares.cookies``'s module-level
    extractor (built the first time a crawl handles a cookie, and kept for the process)."""
    from scrapy.downloadermiddlewares import cookies

    seen: set[int] = set()
    stack: list[Any] = [cookies._split_domain]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        for ref in gc.get_referents(obj):
            if isinstance(ref, (dict, list, tuple, frozenset, set)) or type(ref).__module__.startswith("tldextract"):
                stack.append(ref)
    return seen
