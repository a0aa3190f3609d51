"""The robots stage in real crawls, side by side with Scrapy 2.19's own RobotsTxtMiddleware.

Each scenario serves one robots.txt behaviour on a local server and crawls a fixed list of URLs twice: once with
Scrapy's ``ROBOTSTXT_OBEY`` (Protego), once with consentcrawl. The assertions are on what the server received.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.conftest import consent_settings, run_crawl

HOST = "site.example"


class ListSpider(scrapy.Spider):
    """Fetches a fixed list of URLs, optionally with pauses between them (``None`` in the list = sleep)."""

    name = "list"
    urls: list[str | float] = []

    async def start(self) -> Any:
        for url in self.urls:
            if isinstance(url, float):
                await asyncio.sleep(url)
            else:
                yield scrapy.Request(url, callback=self.parse, dont_filter=True)

    def parse(self, response: scrapy.http.Response) -> Any:
        yield {"url": response.url}


class ConsentListSpider(ListSpider):
    name = "consent-list"
    custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}}


@dataclass
class Site:
    """A site whose robots.txt answer is chosen per call."""

    robots: Callable[[int], Response | None]
    calls: int = 0

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.path == "/robots.txt":
            self.calls += 1
            return self.robots(self.calls)
        return Response.html(f"<html><body>{request.path}</body></html>")


#: consentcrawl's own side requests: robots.txt and the site's signal files (issue #13)
SIDE_FILES = frozenset({"/robots.txt", "/.well-known/tdmrep.json", "/ai.txt"})


def pages(server: LocalServer) -> list[str]:
    return [r.path + (f"?{r.query}" if r.query else "") for r in server.requests if r.path not in SIDE_FILES]


async def crawl_both(site: Site, urls: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                     **settings: Any) -> tuple[list[str], list[str], Any]:
    """(paths Scrapy fetched, paths consentcrawl fetched, consentcrawl's crawl result)."""
    full = [f"http://{HOST}{u}" if isinstance(u, str) else u for u in urls]
    ListSpider.urls = ConsentListSpider.urls = full
    base = {"TELNETCONSOLE_ENABLED": False, "REMOTE_CONTROL_ENABLED": False, "RETRY_ENABLED": False,
            "DOWNLOAD_TIMEOUT": 2, "LOG_LEVEL": "INFO", **settings}
    with LocalServer(site) as server:
        await run_crawl(ListSpider, {"ROBOTSTXT_USER_AGENT": "consentcrawl", **base, "ROBOTSTXT_OBEY": True},
                        proxy=server.proxy, monkeypatch=monkeypatch)
        scrapy_pages = pages(server)
    site.calls = 0
    with LocalServer(site) as server:
        result = await run_crawl(ConsentListSpider, {**consent_settings(tmp_path), **base}, proxy=server.proxy,
                                 monkeypatch=monkeypatch)
        ours = pages(server)
    return sorted(scrapy_pages), sorted(ours), result


def always(status: int, body: str | bytes = "", delay: float = 0, headers: Any = None) -> Callable[[int], Response]:
    return lambda _n: Response(status, headers or {"Content-Type": "text/plain"}, body, delay)


def reasons(result: Any) -> dict[str, str]:
    return {e["url"].split(HOST, 1)[1]: e["reason"] for e in result.audit if e["phase"] == "request"}


@deferred_f_from_coro_f
async def test_5xx_scrapy_allows_everything_we_deny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(always(503, "User-agent: *\nAllow: /\n"))
    theirs, ours, result = await crawl_both(site, ["/a", "/b"], tmp_path, monkeypatch)
    assert theirs == ["/a", "/b"]
    assert ours == []
    assert set(reasons(result).values()) == {"robots.unreachable"}


@deferred_f_from_coro_f
async def test_timeout_scrapy_allows_everything_we_deny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(always(200, "User-agent: *\nDisallow: /\n", delay=4))
    theirs, ours, result = await crawl_both(site, ["/a"], tmp_path, monkeypatch)
    assert theirs == ["/a"] and ours == []
    entry = next(e for e in result.audit if e["reason"] == "robots.unreachable")
    assert "Timeout" in entry["evidence"][0]["cause"] or "timeout" in entry["evidence"][0]["cause"]


@deferred_f_from_coro_f
async def test_connection_dropped_we_deny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(lambda _n: None)
    theirs, ours, result = await crawl_both(site, ["/a"], tmp_path, monkeypatch)
    assert theirs == ["/a"] and ours == []
    assert reasons(result) == {"/a": "robots.unreachable"}


@deferred_f_from_coro_f
async def test_404_page_with_rules_is_not_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(always(404, "User-agent: *\nDisallow: /\n"))
    theirs, ours, _ = await crawl_both(site, ["/a"], tmp_path, monkeypatch)
    assert theirs == []  # Scrapy enforces the rules of an error page
    assert ours == ["/a"]  # RFC 9309: 4xx = no rules


@deferred_f_from_coro_f
async def test_oversize_file_keeps_its_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = "User-agent: *\nDisallow: /private\n" + "# padding\n" * 70_000  # ~700 KB
    site = Site(always(200, body))
    theirs, ours, result = await crawl_both(site, ["/private", "/public"], tmp_path, monkeypatch,
                                            DOWNLOAD_MAXSIZE=600_000)
    assert theirs == ["/private", "/public"]  # over DOWNLOAD_MAXSIZE: Scrapy treats it as allow-all
    assert ours == []  # we never turn a file we could not read into allow-all
    assert set(reasons(result).values()) == {"robots.unreachable"}


@deferred_f_from_coro_f
async def test_large_file_rules_in_first_500k_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = "User-agent: *\nDisallow: /private\n" + "# padding\n" * 60_000 + "Disallow: /public\n"  # ~600 KB
    site = Site(always(200, body))
    _, ours, result = await crawl_both(site, ["/private", "/public", "/other"], tmp_path, monkeypatch)
    assert ours == ["/other", "/public"]  # the Disallow after 512 KiB is not read; the one before is
    assert reasons(result)["/private"] == "robots.disallowed"


@deferred_f_from_coro_f
async def test_latin1_byte_never_widens_a_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(always(200, b"User-agent: *\nDisallow: /\nAllow: /caf\xe9\n"))
    theirs, ours, result = await crawl_both(site, ["/caf%E9", "/cafeteria"], tmp_path, monkeypatch)
    assert theirs == ["/caf%E9", "/cafeteria"]  # Protego read "Allow: /caf": /cafeteria slipped through
    assert ours == ["/caf%E9"]
    entry = next(e for e in result.audit if e["url"].endswith("/caf%E9"))
    assert entry["evidence"][0]["warnings"]


@deferred_f_from_coro_f
async def test_product_token_not_substring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(always(200, "User-agent: *\nDisallow: /\n\nUser-agent: org\nAllow: /\n"))
    theirs, ours, _ = await crawl_both(site, ["/a"], tmp_path, monkeypatch, ROBOTSTXT_USER_AGENT=None)
    assert theirs == ["/a"]  # Scrapy's User-Agent "Scrapy/2.19.0 (+https://scrapy.org)" contains "org"
    assert ours == []  # our product token is "consentcrawl": the * group applies


@deferred_f_from_coro_f
async def test_group_with_two_word_user_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(always(200, "User-agent: ConsentCrawl Bot\nDisallow: /\n"))
    theirs, ours, _ = await crawl_both(site, ["/a"], tmp_path, monkeypatch)
    assert theirs == ["/a"]  # Protego never matches "consentcrawl" against "ConsentCrawl Bot"
    assert ours == []  # the line is cut to its product token: the group is ours


@deferred_f_from_coro_f
async def test_unknown_line_does_not_split_a_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(always(200, "User-agent: consentcrawl\nNoindex: /x\nUser-agent: otherbot\nDisallow: /\n"))
    theirs, ours, _ = await crawl_both(site, ["/a"], tmp_path, monkeypatch)
    assert theirs == ["/a"]  # Protego ends the group at the unknown line: no rules for consentcrawl
    assert ours == []  # RFC 9309: both user-agent lines head one group with "Disallow: /"


@deferred_f_from_coro_f
async def test_redirect_across_hosts_rules_apply_to_original_origin(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def app(request: LoggedRequest, headers: dict[str, str]) -> Response:
        if request.host == HOST and request.path == "/robots.txt":
            return Response.redirect("http://cdn.other.example/r1", 301)
        if request.host == "cdn.other.example" and request.path.startswith("/r"):
            n = int(request.path[2:])
            if n < 4:
                return Response.redirect(f"/r{n + 1}", 302)
            return Response.text("User-agent: *\nDisallow: /private\n")
        return Response.html("ok")

    ConsentListSpider.urls = [f"http://{HOST}/private", f"http://{HOST}/public"]
    with LocalServer(app) as server:
        result = await run_crawl(ConsentListSpider, consent_settings(tmp_path, LOG_LEVEL="INFO"),
                                 proxy=server.proxy, monkeypatch=monkeypatch)
        got = [r.url for r in server.requests]
    assert f"http://{HOST}/public" in got and f"http://{HOST}/private" not in got
    assert "http://cdn.other.example/r4" in got
    entry = next(e for e in result.audit if e["url"].endswith("/private"))
    assert entry["reason"] == "robots.disallowed"
    assert entry["evidence"][0]["final_url"] == "http://cdn.other.example/r4"
    assert len(entry["evidence"][0]["redirects"]) == 4


@deferred_f_from_coro_f
async def test_offsite_filtered_redirect_is_not_allow_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def app(request: LoggedRequest, headers: dict[str, str]) -> Response:
        if request.host == HOST and request.path == "/robots.txt":
            return Response.redirect("http://elsewhere.example/robots.txt", 301)
        if request.host == "elsewhere.example":
            return Response.text("User-agent: *\nDisallow: /\n")
        return Response.html("ok")

    site: Any = app
    ListSpider.allowed_domains = ConsentListSpider.allowed_domains = [HOST]
    try:
        theirs, ours, _ = await crawl_both(site, ["/a"], tmp_path, monkeypatch)
    finally:
        ListSpider.allowed_domains = ConsentListSpider.allowed_domains = []
    assert theirs == ["/a"]  # Scrapy's robots redirect was filtered offsite: allow-all
    assert ours == []


@deferred_f_from_coro_f
async def test_too_many_redirects_deny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def app(request: LoggedRequest, headers: dict[str, str]) -> Response:
        if request.path.startswith("/robots") or request.path.startswith("/loop"):
            return Response.redirect(f"/loop{len(request.path)}", 302)
        return Response.html("ok")

    ConsentListSpider.urls = [f"http://{HOST}/a"]
    with LocalServer(app) as server:
        result = await run_crawl(ConsentListSpider, consent_settings(tmp_path), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
        assert pages(server) == [p for p in pages(server) if p.startswith("/loop")]
    entry = next(e for e in result.audit if e["reason"] == "robots.unreachable")
    assert "redirects" in entry["evidence"][0]["cause"]


@deferred_f_from_coro_f
async def test_recovers_when_the_5xx_period_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(lambda n: Response.text("down", 503) if n == 1 else Response.text("User-agent: *\nAllow: /\n"))
    ConsentListSpider.urls = [f"http://{HOST}/a", 1.6, f"http://{HOST}/b"]
    with LocalServer(site) as server:
        result = await run_crawl(ConsentListSpider, consent_settings(tmp_path, CONSENTCRAWL_ROBOTS_RETRY=1),
                                 proxy=server.proxy, monkeypatch=monkeypatch)
        assert pages(server) == ["/b"]
    assert site.calls == 2
    assert reasons(result) == {"/a": "robots.unreachable", "/b": "terms.off-platform"}


@deferred_f_from_coro_f
async def test_ttl_expiry_fetches_the_new_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(lambda n: Response.text("User-agent: *\nDisallow: /a\n" if n == 1 else "User-agent: *\nDisallow: /b\n"))
    ConsentListSpider.urls = [f"http://{HOST}/a", f"http://{HOST}/b", 1.6, f"http://{HOST}/a?2", f"http://{HOST}/b?2"]
    with LocalServer(site) as server:
        await run_crawl(ConsentListSpider, consent_settings(tmp_path, CONSENTCRAWL_ROBOTS_TTL=1), proxy=server.proxy,
                        monkeypatch=monkeypatch)
        assert sorted(pages(server)) == ["/a?2", "/b"]
    assert site.calls == 2


@deferred_f_from_coro_f
async def test_stale_copy_used_while_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(lambda n: Response.text("User-agent: *\nDisallow: /a\n") if n == 1 else Response.text("", 500))
    ConsentListSpider.urls = [f"http://{HOST}/b", 1.6, f"http://{HOST}/a", f"http://{HOST}/b?2"]
    with LocalServer(site) as server:
        result = await run_crawl(ConsentListSpider, consent_settings(tmp_path, CONSENTCRAWL_ROBOTS_TTL=1),
                                 proxy=server.proxy, monkeypatch=monkeypatch)
        assert sorted(pages(server)) == ["/b", "/b?2"]
    entry = next(e for e in result.audit if e["url"].endswith("/b?2"))
    assert entry["verdict"] == "allow" and "unreachable since" in entry["evidence"][0]["stale"]


@deferred_f_from_coro_f
async def test_crawl_delay_spaces_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(always(200, "User-agent: *\nCrawl-delay: 1\n"))
    urls = ["/a", "/b", "/c"]
    ListSpider.urls = ConsentListSpider.urls = [f"http://{HOST}{u}" for u in urls]
    base = {"TELNETCONSOLE_ENABLED": False, "REMOTE_CONTROL_ENABLED": False, "LOG_LEVEL": "INFO"}
    with LocalServer(site) as server:
        await run_crawl(ListSpider, {**base, "ROBOTSTXT_OBEY": True}, proxy=server.proxy, monkeypatch=monkeypatch)
        theirs = [r.time for r in server.requests if r.path not in SIDE_FILES]
    with LocalServer(site) as server:
        await run_crawl(ConsentListSpider, {**consent_settings(tmp_path), **base}, proxy=server.proxy,
                        monkeypatch=monkeypatch)
        # robots.txt included: it counts as a request to the origin. The signal files (tdmrep.json, ai.txt) are
        # read right after robots.txt, with it, before the delay is known to apply: they are left out here
        ours = [r.time for r in server.requests if r.path == "/robots.txt" or r.path not in SIDE_FILES]
    assert min(b - a for a, b in itertools.pairwise(theirs)) < 1  # Scrapy parses Crawl-delay but ignores it
    assert len(ours) == 4
    assert min(b - a for a, b in itertools.pairwise(ours)) >= 0.975


@deferred_f_from_coro_f
async def test_crawl_delay_over_the_cap_skips_the_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(always(200, "User-agent: consentcrawl\nRequest-rate: 1/120\n"))
    ConsentListSpider.urls = [f"http://{HOST}/a"]
    with LocalServer(site) as server:
        result = await run_crawl(ConsentListSpider, consent_settings(tmp_path, CONSENTCRAWL_MAX_CRAWL_DELAY=10),
                                 proxy=server.proxy, monkeypatch=monkeypatch)
        assert pages(server) == []
    entry = next(e for e in result.audit if e["phase"] == "request")
    assert entry["reason"] == "robots.crawl-delay"
    assert entry["evidence"][0]["crawl_delay"] == 120 and entry["evidence"][0]["max_crawl_delay"] == 10


# --- X-Robots-Tag, Robots-Tag, meta robots: read before any callback and before the HTTP cache -----------------


class FollowSpider(ListSpider):
    name = "follow"

    def parse(self, response: scrapy.http.Response) -> Any:
        yield {"url": response.url}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href, callback=self.parse)


class ConsentFollowSpider(FollowSpider):
    name = "consent-follow"
    custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}}


def tagged_site(headers: dict[str, list[str]], head: str = "") -> Callable[[LoggedRequest, dict[str, str]], Response]:
    def app(request: LoggedRequest, _headers: dict[str, str]) -> Response:
        if request.path == "/robots.txt":
            return Response.text("User-agent: *\nAllow: /\n")
        if request.path == "/page":
            pairs = [("Content-Type", "text/html")] + [(k, v) for k, vs in headers.items() for v in vs]
            body = f"<html><head>{head}</head><body><a href='/linked'>next</a></body></html>"
            return Response(200, pairs, body)
        return Response.html("<html><body>plain</body></html>")
    return app


async def crawl_tagged(app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, purpose: str,
                       ours_only: bool = False) -> tuple[Any, Any, list[str], list[str], Path]:
    FollowSpider.urls = ConsentFollowSpider.urls = [f"http://{HOST}/page"]
    base = {"TELNETCONSOLE_ENABLED": False, "REMOTE_CONTROL_ENABLED": False, "LOG_LEVEL": "INFO"}
    theirs_result, theirs = None, []
    if not ours_only:
        with LocalServer(app) as server:
            theirs_result = await run_crawl(FollowSpider, {**base, "ROBOTSTXT_OBEY": True}, proxy=server.proxy,
                                            monkeypatch=monkeypatch)
            theirs = pages(server)
    cache = tmp_path / "cache"
    settings = {**consent_settings(tmp_path, CONSENTCRAWL_PURPOSE=purpose), **base, "HTTPCACHE_ENABLED": True,
                "HTTPCACHE_DIR": str(cache)}
    with LocalServer(app) as server:
        ours_result = await run_crawl(ConsentFollowSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        ours = pages(server)
    return theirs_result, ours_result, theirs, ours, cache


def cached_urls(cache: Path) -> list[str]:
    return sorted(p.read_text().split("'url': '")[1].split("'")[0] for p in cache.rglob("meta"))


@deferred_f_from_coro_f
async def test_x_robots_tag_noindex_denies_search_indexing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = tagged_site({"X-Robots-Tag": ["noindex"]})
    theirs, ours, _, _, cache = await crawl_tagged(app, tmp_path, monkeypatch, "search-indexing")
    assert [i["url"] for i in theirs.items] == [f"http://{HOST}/page", f"http://{HOST}/linked"]  # Scrapy: ignored
    assert ours.items == []  # the callback never ran: no item, no links followed
    assert cached_urls(cache) == []  # and the cache never stored it
    entry = next(e for e in ours.audit if e["phase"] == "response")
    assert (entry["verdict"], entry["reason"]) == ("deny", "response.robots-tag")
    assert entry["evidence"][-1]["directive"] == "noindex" and entry["evidence"][-1]["raw"] == "X-Robots-Tag: noindex"


@deferred_f_from_coro_f
async def test_noindex_does_not_concern_research(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = tagged_site({"X-Robots-Tag": ["noindex"]})
    _, ours, _, _, cache = await crawl_tagged(app, tmp_path, monkeypatch, "research", ours_only=True)
    assert sorted(i["url"] for i in ours.items) == [f"http://{HOST}/linked", f"http://{HOST}/page"]
    assert len(cached_urls(cache)) == 2
    # the directive is still evidence: an allow entry for the response, not counted as a second allowed request
    entry = next(e for e in ours.audit if e["phase"] == "response")
    assert entry["verdict"] == "allow" and entry["evidence"][-1]["directive"] == "noindex"
    assert ours.stats["consentcrawl/allowed"] == 2


@deferred_f_from_coro_f
async def test_scoped_and_colon_directives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = tagged_site({"x-robots-tag": ["otherbot: noindex, nofollow", "unavailable_after: 25 Jun 2010 15:00:00 PST",
                                        "max-snippet: 50"]})
    _, ours, _, _, _ = await crawl_tagged(app, tmp_path, monkeypatch, "search-indexing", ours_only=True)
    # otherbot's noindex is not ours, but unavailable_after is in the past: noindex for everyone
    assert ours.items == []
    entry = next(e for e in ours.audit if e["phase"] == "response")
    assert entry["evidence"][-1]["directive"] == "unavailable_after"
    app = tagged_site({"X-Robots-Tag": ["otherbot: noindex, nofollow", "max-snippet: 50"]})
    _, ours, _, _, _ = await crawl_tagged(app, tmp_path / "2", monkeypatch, "search-indexing", ours_only=True)
    assert len(ours.items) == 2


@deferred_f_from_coro_f
async def test_meta_robots_for_our_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = tagged_site({}, head='<meta name="googlebot" content="noindex"><META NAME="ConsentCrawl" CONTENT="noai">')
    theirs, ours, _, _, _ = await crawl_tagged(app, tmp_path, monkeypatch, "ai-training")
    assert len(theirs.items) == 2
    assert ours.items == []
    entry = next(e for e in ours.audit if e["phase"] == "response")
    assert entry["reason"] == "response.meta-robots" and entry["evidence"][-1]["directive"] == "noai"


@deferred_f_from_coro_f
async def test_nofollow_drops_the_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = tagged_site({"X-Robots-Tag": ["nofollow"]})
    _, ours, pages_theirs, pages_ours, _ = await crawl_tagged(app, tmp_path, monkeypatch, "research")
    assert pages_theirs == ["/page", "/linked"]
    assert pages_ours == ["/page"]
    assert [i["url"] for i in ours.items] == [f"http://{HOST}/page"]
    entry = next(e for e in ours.audit if e["phase"] == "output")
    assert (entry["reason"], entry["url"]) == ("response.nofollow", f"http://{HOST}/linked")
