"""``consentcrawl signals`` reads robots.txt before it fetches anything else of a site, and fetches what a crawl
would fetch for the URL: nothing more. A URL robots.txt denies (``Disallow``, robots.txt unreachable) makes a crawl
fetch robots.txt and nothing else (the site's signal files are read only when the decision reaches the signals
check, and the page is never sent); ``signals`` and ``signals --fetch`` do the same.

A real crawl and the real command against one loopback server each, judged by the server's request log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl import ConsentSpider
from consentcrawl.cli import main
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.conftest import consent_settings
from tests.lenient import crawl

SITE = "http://site.example"
TDMREP = json.dumps([{"location": "/*", "tdm-reservation": 1}])
PLATFORMS = "platforms:\n  people:\n    domains: [people.example]\n"


def _site(robots: Response) -> Any:
    def app(request: LoggedRequest, headers: dict[str, str]) -> Response:
        if request.path == "/robots.txt":
            return robots
        if request.path == "/.well-known/tdmrep.json":
            return Response(200, {"Content-Type": "application/json"}, TDMREP)
        if request.path == "/ai.txt":
            return Response.text("User-Agent: *\nDisallow: /\n")
        return Response.html("<html><body><p class='name'>a page</p></body></html>")

    return app


ROBOTS = {
    "disallowed": Response.text("User-agent: *\nDisallow: /private\n"),
    "unreachable": Response.text("down for maintenance\n", 503),
}


class PageSpider(ConsentSpider):
    name = "page"
    purpose = "research"

    def __init__(self, url: str = "", seen: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = [url]

    def parse(self, response: scrapy.http.Response) -> Any:
        yield {"url": response.url}


def _paths(server: LocalServer) -> list[str]:
    return [r.path for r in server.requests if r.host == "site.example"]


def _signals(url: str, platforms: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["signals", url, "--platforms", str(platforms), *extra])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("robots", sorted(ROBOTS))
@deferred_f_from_coro_f
async def test_signals_fetches_what_the_crawl_fetches_for_a_url_robots_txt_denies(
    robots: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: ``signals`` fetched ``/.well-known/tdmrep.json`` and ``/ai.txt`` whatever robots.txt said of the
    URL, and ``signals --fetch`` fetched the page itself too (its check before the fetch was the consent checks
    only), where a crawl sends nothing after robots.txt."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    platforms = tmp_path / "platforms.yaml"
    platforms.write_text(PLATFORMS)
    url = f"{SITE}/private/page"
    settings = consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=str(platforms), CONSENTCRAWL_AUTHORIZATIONS=None)
    with LocalServer(_site(ROBOTS[robots])) as server:
        result = await crawl(PageSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch, url=url)
        crawled = _paths(server)
    assert crawled == ["/robots.txt"], f"control: the crawl fetches robots.txt alone ({crawled}, {result.denies()})"
    reason = f"robots.{robots}"
    for extra in ((), ("--json",), ("--fetch",), ("--fetch", "--json")):
        with LocalServer(_site(ROBOTS[robots])) as server:
            monkeypatch.setenv("http_proxy", server.proxy)
            code, out, err = _signals(url, platforms, capsys, *extra)
            fetched = _paths(server)
        assert fetched == crawled, f"signals {' '.join(extra)} fetched {fetched}, the crawl {crawled}\n{out}{err}"
        if "--fetch" in extra:  # as for a page the consent checks deny: not fetched, the command says why
            assert code == 2 and reason in err and not out, (code, out, err)
            continue
        assert code == 0, err
        if "--json" in extra:
            rows = json.loads(out)["purposes"]
            assert {row["reason"] for row in rows.values()} == {reason}, rows
            assert {row["verdict"] for row in rows.values()} == {"deny"}, rows
        else:
            assert reason in out, out


@deferred_f_from_coro_f
async def test_signals_fetches_the_site_files_and_the_page_robots_txt_allows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Control: a URL robots.txt allows gets its site files read, and with ``--fetch`` the page, as in a crawl."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    platforms = tmp_path / "platforms.yaml"
    platforms.write_text(PLATFORMS)
    with LocalServer(_site(ROBOTS["disallowed"])) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        code, out, err = _signals(f"{SITE}/open", platforms, capsys, "--fetch", "--json")
        fetched = _paths(server)
    assert code == 0, err
    assert sorted(fetched) == sorted(["/robots.txt", "/.well-known/tdmrep.json", "/ai.txt", "/open"]), fetched
    assert json.loads(out)["purposes"]["ai-training"]["reason"] == "terms.signal.tdmrep", out
