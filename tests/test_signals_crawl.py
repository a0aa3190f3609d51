"""Operator signals in real crawls (issue #13, phase 2), judged by the server's log.

- A site-level deny (tdmrep.json, robots.txt Content-Signal / Content-Usage) is decided before the fetch: the
  server sees robots.txt and the signal files, never the page.
- A response-level deny (a Content-Usage header, a tdm-reservation meta tag) is decided in the response phase,
  before the HTTP cache and the callbacks: the page was fetched, no item comes out, nothing is cached.
- Off any platform, a purpose no signal speaks about falls back to its default (ai-training: deny).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.conftest import consent_settings, run_crawl
from tests.test_robots_crawl import HOST, ConsentListSpider

SIDE = {"/robots.txt", "/.well-known/tdmrep.json", "/ai.txt"}


class SignalSite:
    """robots.txt, tdmrep.json and pages, each with the headers given."""

    def __init__(self, robots: str = "User-agent: *\nAllow: /\n", tdmrep: str | None = None,
                 pages: dict[str, tuple[list[tuple[str, str]], str]] | None = None) -> None:
        self.robots = robots
        self.tdmrep = tdmrep
        self.pages = pages or {}

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.path == "/robots.txt":
            return Response(200, {"Content-Type": "text/plain"}, self.robots)
        if request.path == "/.well-known/tdmrep.json":
            if self.tdmrep is None:
                return Response(404, {"Content-Type": "text/plain"}, "no")
            return Response(200, {"Content-Type": "application/json"}, self.tdmrep)
        if request.path in self.pages:
            extra, html = self.pages[request.path]
            return Response(200, [("Content-Type", "text/html; charset=utf-8"), *extra], html)
        if request.path == "/ai.txt":
            return Response(404, {"Content-Type": "text/plain"}, "no")
        return Response.html(f"<html><body>{request.path}</body></html>")


def _settings(tmp_path: Path, purpose: str, **more: Any) -> dict[str, Any]:
    return consent_settings(tmp_path, CONSENTCRAWL_PURPOSE=purpose, CONSENTCRAWL_PLATFORMS=[],
                            CONSENTCRAWL_AUTHORIZATIONS=None, **more)


def _pages(server: LocalServer) -> list[str]:
    return sorted(r.path for r in server.requests if r.path not in SIDE)


def _denied(result: Any) -> dict[str, str]:
    return {e["url"].rsplit("/", 1)[1]: e["reason"] for e in result.audit if e["verdict"] == "deny"}


@deferred_f_from_coro_f
async def test_a_site_level_signal_denies_before_the_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = SignalSite(tdmrep='[{"location": "/reserved/*", "tdm-reservation": 1}, {"location": "/", '
                             '"tdm-reservation": 0}]')
    ConsentListSpider.urls = [f"http://{HOST}/reserved/a", f"http://{HOST}/open"]
    with LocalServer(site) as server:
        result = await run_crawl(ConsentListSpider, _settings(tmp_path, "research"), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
        assert _pages(server) == ["/open"]  # the reserved page was never requested
        assert sum(r.path == "/.well-known/tdmrep.json" for r in server.requests) == 1  # once per origin
    assert [i["url"] for i in result.items] == [f"http://{HOST}/open"]
    entry = next(e for e in result.audit if e["url"].endswith("/reserved/a"))
    assert (entry["verdict"], entry["reason"], entry["stage"]) == ("deny", "terms.signal.tdmrep", "terms")
    signal = next(ev for ev in entry["evidence"] if ev["kind"] == "signal.tdmrep")
    assert signal["where"] == "tdmrep.json[0]" and signal["verdict"] == "deny" and signal["fetched_at"]


@deferred_f_from_coro_f
async def test_content_signal_in_robots_txt_denies_before_the_fetch(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    site = SignalSite(robots="User-agent: *\nContent-Signal: search=yes, ai-train=no\nAllow: /\n")
    ConsentListSpider.urls = [f"http://{HOST}/a", f"http://{HOST}/b"]
    with LocalServer(site) as server:
        result = await run_crawl(ConsentListSpider, _settings(tmp_path, "ai-training"), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
        assert _pages(server) == []
    assert result.items == []
    assert set(_denied(result).values()) == {"terms.signal.content-signal"}


@deferred_f_from_coro_f
async def test_a_response_level_signal_denies_before_the_cache_and_the_callback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "httpcache"
    site = SignalSite(robots="User-agent: *\nContent-Usage: / train-ai=y\nAllow: /\n", pages={
        "/header": ([("Content-Usage", "train-ai=n")], "<p>no training</p>"),
        "/meta": ([], '<html><head><meta name="tdm-reservation" content="1"></head><body>x</body></html>'),
        "/ok": ([], "<p>fine</p>"),
    })
    ConsentListSpider.urls = [f"http://{HOST}/header", f"http://{HOST}/meta", f"http://{HOST}/ok"]
    settings = _settings(tmp_path, "ai-training", HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(cache))
    with LocalServer(site) as server:
        result = await run_crawl(ConsentListSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        assert _pages(server) == ["/header", "/meta", "/ok"]  # allowed before the fetch, so fetched
    assert [i["url"] for i in result.items] == [f"http://{HOST}/ok"]  # no callback ran for the others
    denied = _denied(result)
    assert denied == {"header": "response.signal.content-usage", "meta": "response.signal.tdmrep"}
    cached = [p for p in cache.rglob("meta") if p.is_file()] if cache.exists() else []
    urls = [p.read_bytes() for p in cached if p.parent.name != cache.name]
    assert not any(b"/header" in u or b"/meta" in u for u in urls)  # nothing denied was cached
    assert any(b"/ok" in u for u in urls)


@deferred_f_from_coro_f
async def test_off_any_platform_an_unspoken_purpose_falls_back_to_its_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ConsentListSpider.urls = [f"http://{HOST}/a"]
    with LocalServer(SignalSite()) as server:
        result = await run_crawl(ConsentListSpider, _settings(tmp_path, "ai-input"), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
        assert _pages(server) == ["/a"]
    assert result.items == [] and _denied(result) == {"a": "terms.default-deny"}
    with LocalServer(SignalSite()) as server:
        result = await run_crawl(ConsentListSpider, _settings(
            tmp_path, "ai-input", CONSENTCRAWL_PURPOSE_DEFAULTS={"ai-input": "allow"}), proxy=server.proxy,
            monkeypatch=monkeypatch)
    assert [i["url"] for i in result.items] == [f"http://{HOST}/a"]


NS = 'xmlns="https://rslstandard.org/rsl"'


@deferred_f_from_coro_f
async def test_rsl_and_ai_txt_deny_before_the_fetch_and_page_statements_before_the_callback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The RSL licence robots.txt names and ai.txt are read once per origin and decide before the fetch; a licence a
    page names in its ``Link`` header, and a ``Content-Signal`` header, deny in the response phase (fetched, never
    cached, no callback)."""
    cache = tmp_path / "httpcache"
    files = {
        "/robots.txt": ("text/plain", f"License: http://{HOST}/licence.xml\nUser-agent: *\nAllow: /\n"),
        "/licence.xml": ("application/rsl+xml", f'<rsl {NS}><content url="/private/*"><license><prohibits '
                                                 'type="usage">ai-train</prohibits></license></content></rsl>'),
        "/page-licence.xml": ("application/rsl+xml", f'<rsl {NS}><content url="/"><license><permits type="usage">'
                                                      'search</permits></license></content></rsl>'),
        "/ai.txt": ("text/plain", "User-agent: *\nDisallow: *.jpg\n"),
    }
    pages = {"/private/a": [], "/photo.jpg": [], "/ok": [], "/signal": [("Content-Signal", "ai-train=no")],
             "/linked": [("Link", '</page-licence.xml>; rel="license"; type="application/rsl+xml"')]}

    def app(request: LoggedRequest, headers: dict[str, str]) -> Response:
        if request.path in files:
            kind, body = files[request.path]
            return Response(200, {"Content-Type": kind}, body)
        if request.path in pages:
            return Response(200, [("Content-Type", "text/html; charset=utf-8"), *pages[request.path]],
                            f"<html><body>{request.path}</body></html>")
        return Response(404, {"Content-Type": "text/plain"}, "no")

    ConsentListSpider.urls = [f"http://{HOST}{p}" for p in pages]
    settings = _settings(tmp_path, "ai-training", CONSENTCRAWL_PURPOSE_DEFAULTS={"ai-training": "allow"},
                         HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(cache))
    with LocalServer(app) as server:
        result = await run_crawl(ConsentListSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        asked = [r.path for r in server.requests]
    assert sorted(p for p in asked if p in pages) == ["/linked", "/ok", "/signal"]  # never /private/a, /photo.jpg
    assert asked.count("/licence.xml") == 1 and asked.count("/ai.txt") == 1  # once per origin
    assert asked.count("/page-licence.xml") == 1  # fetched before the response was released
    assert [i["url"] for i in result.items] == [f"http://{HOST}/ok"]
    assert _denied_paths(result) == {"/private/a": "terms.signal.rsl", "/photo.jpg": "terms.signal.ai-txt",
                                     "/signal": "response.signal.content-signal", "/linked": "response.signal.rsl"}
    cached = [p.read_bytes() for p in cache.rglob("meta") if p.is_file()] if cache.exists() else []
    assert any(b"/ok" in c for c in cached)
    assert not any(b"/signal" in c or b"/linked" in c for c in cached)


def _denied_paths(result: Any) -> dict[str, str]:
    return {e["url"].split(HOST, 1)[1]: e["reason"] for e in result.audit if e["verdict"] == "deny"}


@deferred_f_from_coro_f
async def test_a_site_level_signal_about_private_slash_denies_the_page_as_requested(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Content-Usage: /private/ search=n`` is about the page ``/private/`` (and ``/private/?q=1``), though the
    canonical form drops the slash: the server never sees them requested; ``/private``, another page, is fetched."""
    site = SignalSite(robots="User-agent: *\nContent-Usage: /private/ search=n\nAllow: /\n")
    ConsentListSpider.urls = [f"http://{HOST}/private", f"http://{HOST}/private/", f"http://{HOST}/private/?q=1",
                              f"http://{HOST}/open/"]
    with LocalServer(site) as server:
        result = await run_crawl(ConsentListSpider, _settings(tmp_path, "search-indexing"), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
        assert _pages(server) == ["/open/", "/private"]  # neither spelling of /private/ was requested
    denied = {e["url"]: e for e in result.audit if e["verdict"] == "deny"}
    assert set(denied) == {f"http://{HOST}/private/", f"http://{HOST}/private/?q=1"}, result.audit
    for url, entry in denied.items():
        assert entry["reason"] == "terms.signal.content-usage"
        summary = next(ev for ev in entry["evidence"] if ev["kind"] == "site-signals")
        assert summary["path"] == url.partition(HOST)[2]  # the spelling that is denied is named
    assert sorted(i["url"] for i in result.items) == [f"http://{HOST}/open/", f"http://{HOST}/private"]


@deferred_f_from_coro_f
async def test_a_page_statement_in_utf16_is_read_as_the_spider_reads_the_page(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page sent in UTF-16 (its charset in the header, a byte order mark) whose head reserves TDM: Scrapy decodes
    it for the spider, so the response phase must read the same head (``<meta`` is not ASCII bytes there)."""
    reserved = '<html><head><meta name="tdm-reservation" content="1"></head><body>x</body></html>'
    plain = SignalSite(robots="User-agent: *\nContent-Usage: / train-ai=y\nAllow: /\n")  # the site allows training

    def site(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.path in ("/meta16", "/meta16le"):
            codec = "utf-16" if request.path == "/meta16" else "utf-16-le"
            return Response(200, {"Content-Type": f"text/html; charset={codec}"}, reserved.encode(codec))
        return plain(request, headers)

    ConsentListSpider.urls = [f"http://{HOST}/meta16", f"http://{HOST}/meta16le", f"http://{HOST}/ok"]
    with LocalServer(site) as server:
        result = await run_crawl(ConsentListSpider, _settings(tmp_path, "ai-training"), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
        assert _pages(server) == ["/meta16", "/meta16le", "/ok"]
    assert [i["url"] for i in result.items] == [f"http://{HOST}/ok"]  # no callback ran for the reserved pages
    denied = _denied(result)
    assert denied["meta16"] == "response.signal.tdmrep"
    assert denied["meta16le"] == "response.signal.tdmrep"


@deferred_f_from_coro_f
async def test_a_licence_a_page_names_at_a_url_no_parser_reads_denies_the_page(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page whose ``Link`` header names its RSL licence at ``http://[bad/licence.xml`` (a bracket no URL parser
    reads) was let through as if it named no licence, while ``http://a b/x`` was denied as a licence that cannot be
    read: the site said there are terms and we cannot tell what they are. Both deny now."""
    pages = {"/bracket": [("Link", '<http://[bad/licence.xml>; rel="license"; type="application/rsl+xml"')],
             "/relative": [("Link", '<//[bad/licence.xml>; rel="license"; type="application/rsl+xml"')],
             "/spaced": [("Link", '<http://a b/x>; rel="license"; type="application/rsl+xml"')], "/ok": []}

    def app(request: LoggedRequest, headers: dict[str, str]) -> Response:
        if request.path in pages:
            return Response(200, [("Content-Type", "text/html; charset=utf-8"), *pages[request.path]],
                            f"<html><body>{request.path}</body></html>")
        return Response(404, {"Content-Type": "text/plain"}, "no")

    ConsentListSpider.urls = [f"http://{HOST}{p}" for p in pages]
    settings = _settings(tmp_path, "ai-training", CONSENTCRAWL_PURPOSE_DEFAULTS={"ai-training": "allow"})
    with LocalServer(app) as server:
        result = await run_crawl(ConsentListSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert [i["url"] for i in result.items] == [f"http://{HOST}/ok"]
    denied = {e["url"].split(HOST, 1)[1]: e["reason"] for e in result.audit
              if e["verdict"] == "deny" and e["url"].startswith(f"http://{HOST}/")}
    assert set(denied) == {"/bracket", "/relative", "/spaced"}, result.audit
    assert len(set(denied.values())) == 1, denied  # as the spaced URL's
