"""Fixes for what the reference-docs review found at HEAD; each test fails without its fix.

Real in-process crawls against the lenient ``people`` site (:mod:`tests.lenient`), judged by its served log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, ListLogic, Robots, crawl, make_spider, people_settings

BASE = f"http://{HOST}"


@deferred_f_from_coro_f
async def test_report_mode_fetches_robots_txt_for_what_consent_would_deny(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Report mode drops only robots denies, so robots.txt must be known also for a request whose terms or person
    would be denied: without it the request went out undecided by robots (error.robots-missing, not dropped)."""
    app = LenientPeople(robots={HOST: Robots("User-agent: *\nDisallow: /u/107\n")})
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", ListLogic), people_settings(tmp_path, CONSENTCRAWL_MODE="report"),
                             proxy=server.proxy, monkeypatch=monkeypatch, urls=[f"{BASE}/u/107", f"{BASE}/u/104"],
                             follow_links=False)
    served = app.people_served()
    assert "104" in served, app.describe()  # control: report mode lets a consent deny through
    assert "107" not in served, app.describe()  # robots.txt disallows it: enforced in report mode too
    assert any(e["reason"] == "robots.disallowed" for e in result.audit_for("/u/107"))


@deferred_f_from_coro_f
async def test_a_service_url_embedding_two_platforms_profiles_is_denied(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An off-platform fetch-through URL embedding people of two platforms is ambiguous, not off-platform."""
    platforms = tmp_path / "two.yaml"
    platforms.write_text(Path(people_settings(tmp_path)["CONSENTCRAWL_PLATFORMS"]).read_text() + (
        "  other:\n    domains: [other.example]\n    authorization: {purposes: [research], reference: x}\n"
        "    profiles: ['/p/{subject}']\n"))
    settings = people_settings(tmp_path)
    settings["CONSENTCRAWL_PLATFORMS"] = str(platforms)
    inner = quote(f"{BASE}/u/107", safe="")
    url = f"http://api.example/fetch?a={quote('http://other.example/p/1', safe='')}&b={inner}"
    app = LenientPeople(any_host=True)
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[url, f"{BASE}/u/101"], follow_links=False)
    assert "101" in app.people_served()
    assert not [s for s in app.served if "fetch" in s.target], app.describe()
    assert [e["reason"] for e in result.audit if e["url"] == url] == ["subject.ambiguous-url"]


class OtherAddon:
    """An add-on that sets DOWNLOAD_HANDLERS, applied after consentcrawl's (as scrapy-zyte-api's at 500)."""

    def update_settings(self, settings: Any) -> None:
        settings["DOWNLOAD_HANDLERS"].set("http", "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler",
                                          "addon")


@deferred_f_from_coro_f
async def test_a_later_add_on_replacing_the_send_time_handler_stops_the_crawl(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    spider = make_spider("ADDONS", ListLogic)
    spider.custom_settings = {"ADDONS": {"consentcrawl.Addon": 0, f"{__name__}.OtherAddon": 500}}
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(spider, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/101"], follow_links=False)
    assert app.served == [], app.describe()
    assert result.stats.get("finish_reason") == "consentcrawl_config_error"


@deferred_f_from_coro_f
async def test_nofollow_in_meta_is_not_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``consentcrawl_nofollow`` is set in meta for the spider to read; copied onto another request
    (``meta=response.meta``) it must not make that page's links be dropped as nofollow."""
    app = LenientPeople().links_page("/links", ["/u/101"])
    start = scrapy.Request(f"{BASE}/links", meta={"consentcrawl_nofollow": True}, dont_filter=True)
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[start], follow_links=True)
    assert "101" in app.people_served(), app.describe()
    assert not [e for e in result.audit if e["reason"] == "response.nofollow"]


class OtherPlatformItemLogic(ListLogic):
    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"subject": "101", "platform": "elsewhere", "name": "someone"}


@deferred_f_from_coro_f
async def test_an_item_naming_another_platform_than_its_page_is_dropped(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", OtherPlatformItemLogic), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch, urls=[f"{BASE}/u/101"],
                             follow_links=False)
    assert "101" in app.people_served()
    assert result.items == []
    assert [e["reason"] for e in result.audit if e["phase"] == "item"] == ["subject.mismatch"]
