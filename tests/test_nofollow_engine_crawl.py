"""Links of a ``nofollow`` page that the callback sends through ``crawler.engine.crawl(...)`` rather than yielding
them: they skip the spider middlewares, where the page's links are dropped, and reach the engine's
``request_scheduled`` while the page's callback (or its output) is being processed.

Judged by the lenient site's served log and the audit log.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, crawl, make_spider, people_settings

BASE = f"http://{HOST}"
NOFOLLOW = ('<html><head><meta name="robots" content="nofollow"></head><body><a class="link" href="/u/102">x</a>'
            "</body></html>")
FOLLOW = '<html><body><a class="link" href="/u/103">x</a></body></html>'


class SendsLinksThroughTheEngine:
    """The callback sends each link with ``engine.crawl`` (``how``: from a generator, a plain function returning a
    list, or an async generator after an ``await``)."""

    seen: list[str]
    how = "generator"

    async def start(self) -> Any:
        for path in ("/nf", "/f"):
            yield scrapy.Request(BASE + path, callback=getattr(self, f"parse_{self.how}"), dont_filter=True)

    def _send(self, response: scrapy.http.Response) -> None:
        self.seen.append(response.url)
        for href in response.css("a.link::attr(href)").getall():
            self.crawler.engine.crawl(response.follow(href, callback=self.parse_generator))  # type: ignore[attr-defined]

    def parse_generator(self, response: scrapy.http.Response) -> Any:
        self._send(response)
        yield {"url": response.url}

    def parse_list(self, response: scrapy.http.Response) -> Any:
        self._send(response)
        return [{"url": response.url}]

    async def parse_async(self, response: scrapy.http.Response) -> Any:
        await asyncio.sleep(0.05)
        self._send(response)
        yield {"url": response.url}


@pytest.mark.parametrize("how", ["generator", "list", "async"])
@deferred_f_from_coro_f
async def test_links_a_nofollow_page_sends_through_the_engine_are_not_followed(
        how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. The nofollow page's link was fetched; the other page's link sent the same way is the control."""
    app = LenientPeople().page("/nf", NOFOLLOW).page("/f", FOLLOW)
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", SendsLinksThroughTheEngine), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch, how=how)
    assert "103" in app.people_served(), f"control: the other page's link was followed\n{app.describe()}"
    assert "102" not in app.people_served(), app.describe()
    assert [(p, u, r) for p, u, r in result.denies()] == [("output", f"{BASE}/u/102", "response.nofollow")]


class RedirectWhileANofollowPageWaits(SendsLinksThroughTheEngine):
    """The nofollow page's async callback waits while another request is redirected (its redirect scheduled by the
    engine, from a download started while the page's callback ran)."""

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/nf", callback=self.parse_slow, dont_filter=True)
        await asyncio.sleep(0.1)
        yield scrapy.Request(f"{BASE}/redirect?to=/u/103", callback=self.parse_generator, dont_filter=True)

    async def parse_slow(self, response: scrapy.http.Response) -> Any:
        self.crawler.engine.crawl(scrapy.Request(f"{BASE}/nf?again=1", callback=self.parse_generator))  # type: ignore[attr-defined]
        await asyncio.sleep(1.0)
        self._send(response)
        yield {"url": response.url}


@deferred_f_from_coro_f
async def test_a_redirect_scheduled_while_a_nofollow_pages_callback_waits_is_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the page's own callback is the page's: a redirect of another request, scheduled meanwhile, is not."""
    app = LenientPeople().page("/nf", NOFOLLOW)
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", RedirectWhileANofollowPageWaits), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert "103" in app.people_served(), app.describe()
    assert "102" not in app.people_served(), app.describe()
    assert sorted(u for p, u, r in result.denies()) == [f"{BASE}/nf?again=1", f"{BASE}/u/102"], result.denies()
