"""Review of review24's send-time response phase (review25): the side requests the response phase makes while
other pages wait on it from their download slots.

Tests marked "Fixed" failed on 70d04b1 and pass since their fix.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.fediverse import FediverseSite
from consentcrawl_demo.messages import merge_headers
from consentcrawl_demo.server import LocalServer, Response
from tests.conftest import run_crawl
from tests.lenient import HOST, LenientPeople, ListLogic, crawl, make_spider, people_settings
from tests.test_leaks_review24 import LICENCE
from tests.test_refusals_actor import ProfilesOnly
from tests.test_refusals_crawl import fedi_settings

BASE = f"http://{HOST}"


class KeepsProfiles:
    """A project's in-memory HTTP cache storage, shared by the crawls of one process, that keeps profile pages only
    (a person's posts are always fetched)."""

    kept: ClassVar[dict[str, Any]] = {}

    def __init__(self, settings: Any) -> None:
        pass

    def open_spider(self, spider: Any) -> None:
        pass

    def close_spider(self, spider: Any) -> None:
        pass

    def retrieve_response(self, spider: Any, request: Any) -> Any:
        kept = self.kept.get(request.url)
        if kept is None:
            return None
        answer = kept.replace()
        answer.request = None  # this crawl's request, not the one it was stored for (another crawl's spider)
        return answer

    def store_response(self, spider: Any, request: Any, response: Any) -> None:
        if "/@" in request.url and not request.url.endswith("/posts"):
            self.kept[request.url] = response


@deferred_f_from_coro_f
async def test_a_licence_the_actor_of_a_cached_profile_names_is_fetched_with_one_request_per_domain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. Crawl 2 answers alice's profile from the HTTP cache: the response middleware reads it as her first
    page, holding her gate, and fetches her linked actor, whose answer names an RSL licence on the same host. Her
    posts page, meanwhile, holds the host's only download slot (``CONCURRENT_REQUESTS_PER_DOMAIN = 1``) while it
    waits at her gate in the send-time handler. The licence's request went into that slot (review24 let side
    requests past the slots only inside the handler's reading of a page it downloaded), behind the posts page,
    which waited for the gate, which waited for the licence: the crawl never ended."""
    KeepsProfiles.kept.clear()
    served: list[tuple[int, str]] = []

    def serving(crawl_no: int) -> Any:
        site = FediverseSite()

        def app(request: Any, headers: dict[str, str]) -> Any:
            served.append((crawl_no, request.decoded_path))
            if request.decoded_path == "/licence.xml":
                return Response(200, {"Content-Type": "application/rsl+xml"}, LICENCE)
            answer = site(request, headers)
            if request.decoded_path == "/users/alice" and crawl_no == 2:
                time.sleep(1.0)  # her posts page gets to the host's slot (and her gate) meanwhile
            if request.decoded_path == "/users/alice" and answer is not None:
                answer.headers = merge_headers(answer.headers, {
                    "Link": '</licence.xml>; rel="license"; type="application/rsl+xml"'})
            return answer
        return app

    cache = {"HTTPCACHE_ENABLED": True, "HTTPCACHE_STORAGE": f"{__name__}.KeepsProfiles"}
    for crawl_no in (1, 2):
        home = tmp_path / str(crawl_no)
        home.mkdir()
        with LocalServer(serving(crawl_no)) as server:
            result = await run_crawl(ProfilesOnly, fedi_settings(home, **cache), proxy=server.proxy,
                                     monkeypatch=monkeypatch)
    assert (2, "/@alice") not in served and (2, "/users/alice") in served, served  # control: from the cache
    assert (2, "/licence.xml") in served and (2, "/@alice/posts") in served, served
    assert ("alice", "post") in {(i["subject"], i["kind"]) for i in result.items}, result.items


class KeepsAbout(KeepsProfiles):
    """The same storage, keeping ``/about`` only."""

    kept: ClassVar[dict[str, Any]] = {}

    def store_response(self, spider: Any, request: Any, response: Any) -> None:
        if request.url.endswith("/about"):
            self.kept[request.url] = response


NAMES_LICENCE = ('<html><head><link rel="license" type="application/rsl+xml" href="/licence.xml"></head>'
                 '<body><h1 class="name">{}</h1></body></html>')


@deferred_f_from_coro_f
async def test_a_licence_a_cached_page_and_a_sent_page_name_is_fetched_with_one_request_per_domain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. Crawl 2 sends ``/other`` (slow to answer) and answers ``/about`` from the HTTP cache; both name the
    same RSL licence on their host, and the crawl keeps one request per domain. The response middleware decides the
    cached page and sends for the licence, which went into the host's slot, behind ``/other``. ``/other`` came
    back and the send-time handler, deciding it while it still held that slot, waited for the same licence fetch
    (one fetch per URL at a time), which waited for the slot: the crawl never ended. The response phase's side
    requests go past the download slots wherever it is decided."""
    KeepsAbout.kept.clear()
    app = LenientPeople().page("/about", NAMES_LICENCE.format("us"))
    app.pages["/licence.xml"] = lambda request: Response(200, {"Content-Type": "application/rsl+xml"}, LICENCE)

    def slow(request: Any) -> Any:
        time.sleep(1.0)  # the cached page is decided meanwhile
        return Response(200, {"Content-Type": "text/html"}, NAMES_LICENCE.format("them").encode())

    app.pages["/other"] = slow
    cache = {"HTTPCACHE_ENABLED": True, "HTTPCACHE_STORAGE": f"{__name__}.KeepsAbout",
             "CONCURRENT_REQUESTS_PER_DOMAIN": 1}
    for urls in ([f"{BASE}/about"], [f"{BASE}/other", 0.3, f"{BASE}/about"]):
        home = tmp_path / str(len(urls))
        home.mkdir()
        with LocalServer(app) as server:
            result = await crawl(make_spider("ConsentSpider", ListLogic), people_settings(home, **cache),
                                 proxy=server.proxy, monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert [s.path for s in app.served].count("/about") == 1, app.describe()  # control: crawl 2's from the cache
    assert sorted(result.seen) == [f"{BASE}/about", f"{BASE}/other"] and result.denies() == [], result.denies()
