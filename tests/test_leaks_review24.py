"""Review of hunt15's send-time response phase (review24): what a project's downloader middleware does with a
page the send-time handler refused.

Tests marked "Fixed" failed on c396074 and pass since their fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.middlewares import ConsentDenied
from consentcrawl_demo.server import LocalServer, Response
from tests.lenient import HOST, LenientPeople, ListLogic, crawl, make_spider, people_settings, secret_name

SITE = "http://site.example"
BASE = f"http://{HOST}"
NOINDEX = '<html><head><meta name="robots" content="noindex"></head><body>a page</body></html>'


class RetriesAnyError:
    """A project's downloader middleware that sends a request again on any download error, twice at most (as proxy
    rotators and catch-all retry middlewares do)."""

    def process_exception(self, request: scrapy.Request, exception: Exception) -> Any:
        tries = request.meta.get("tries", 0)
        if tries < 2:
            return request.replace(dont_filter=True, meta={**request.meta, "tries": tries + 1})
        return None


class Failures(ListLogic):
    """Keeps what each failed request's errback was called with."""

    failures: list[Any]

    async def start(self) -> Any:
        for url in self.urls:
            yield scrapy.Request(url, callback=self.parse, errback=self.failed, dont_filter=True)

    def failed(self, failure: Any) -> None:
        self.failures.append(failure.value)


@deferred_f_from_coro_f
async def test_a_page_the_send_time_handler_refused_is_not_fetched_again_by_a_middleware_that_retries_errors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. A page says ``noindex`` and the crawl's purpose is search indexing: the response phase refuses it
    after the fetch (``response.meta-robots``). Since hunt15 that decision is made in the send-time download
    handler, which can only raise, and Scrapy hands a handler's exception to every downloader middleware's
    ``process_exception``: a project's middleware that sends any failed request again had the server send the
    refused page three times, each refused again. Refused in the response phase's ``process_response`` (as
    before hunt15), it goes to the errback once, the page fetched once."""
    settings = people_settings(tmp_path, DOWNLOADER_MIDDLEWARES={f"{__name__}.RetriesAnyError": 500},
                               CONSENTCRAWL_PURPOSE="search-indexing")
    app = LenientPeople(any_host=True).page("/doc", NOINDEX)
    failures: list[Any] = []
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", Failures), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{SITE}/doc"], failures=failures)
    assert [s.path for s in app.served].count("/doc") == 1, app.describe()
    assert result.denies() == [("response", f"{SITE}/doc", "response.meta-robots")]
    assert len(failures) == 1 and type(failures[0]) is ConsentDenied, failures  # the class every refusal has
    assert failures[0].decision.reason == "response.meta-robots" and result.seen == []


class KeepsResponses:
    """A project's in-memory HTTP cache storage: it keeps the response objects themselves, and hands the same
    object back for each later request to the URL."""

    def __init__(self, settings: Any) -> None:
        self.kept: dict[str, Any] = {}

    def open_spider(self, spider: Any) -> None:
        pass

    def close_spider(self, spider: Any) -> None:
        pass

    def retrieve_response(self, spider: Any, request: scrapy.Request) -> Any:
        return self.kept.get(request.url)

    def store_response(self, spider: Any, request: scrapy.Request, response: Any) -> None:
        self.kept[request.url] = response


@pytest.mark.parametrize("mode", ["enforce", "report"])
@deferred_f_from_coro_f
async def test_a_page_the_send_time_handler_decided_is_decided_again_when_the_cache_hands_it_to_another_request(
        mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. The response middleware skipped every response object the send-time handler had decided, whatever
    request it came back for. A cache storage that keeps response objects in memory hands the very object it
    stored to the next request for the URL: that request's page reached the callback with no response-phase
    decision of its own (no audit line; its output dropped as undecided in enforce mode, kept in report mode
    with nothing recorded). The handler's decision now counts only for the request it was made for."""
    settings = people_settings(tmp_path, HTTPCACHE_ENABLED=True, HTTPCACHE_STORAGE=f"{__name__}.KeepsResponses",
                               HTTPCACHE_DIR=str(tmp_path / "cache"), CONSENTCRAWL_MODE=mode)
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/u/101", 0.5, f"{BASE}/u/101"],
                             follow_links=False)
    assert app.people_served() == ["101"], app.describe()  # the second from the cache
    assert result.stats.get("httpcache/hit") == 1, result.stats
    assert len(result.items) == 2 and result.stats.get("consentcrawl/output_dropped", 0) == 0, result.items
    assert [e["verdict"] for e in result.audit_for("/u/101", phase="response")] == ["allow"], result.audit


class KeepsBrowserPage(ListLogic):
    """Asks scrapy-playwright for the browser page (``playwright_include_page``); its errback reads the failed
    request's page and closes it, as scrapy-playwright's examples do (a screenshot on failure is as common)."""

    shown: list[Any]

    async def start(self) -> Any:
        for url in self.urls:
            yield scrapy.Request(url, callback=self.parse, errback=self.failed, dont_filter=True,
                                 meta={"playwright": True, "playwright_include_page": True})

    async def parse(self, response: Any) -> Any:
        await response.meta["playwright_page"].close()
        self.seen.append(response.url)

    async def failed(self, failure: Any) -> None:
        self.shown.append(repr(failure.value))
        page = failure.request.meta.get("playwright_page")
        if page is not None:
            try:
                self.shown.append(await page.content())
            except Exception as exc:  # noqa: BLE001 - what the errback could read, or why not
                self.shown.append(f"cannot read: {type(exc).__name__}")
            await page.close()


@deferred_f_from_coro_f
async def test_the_browser_page_of_a_refused_response_is_closed_before_the_errback_gets_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. 103 holds a grant but says ``#nobot`` on their profile; the spider crawls with scrapy-playwright and
    asks for the browser page (``playwright_include_page``). The response phase refused the response, but the
    page it was read from stayed open in the request's meta, and the errback read 103's name from it
    (``page.content()``). The page is now closed as the response is refused."""
    pytest.importorskip("scrapy_playwright", reason="scrapy-playwright is not installed")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is not installed (Debian: apt-get install chromium)")
    from consentcrawl.browser import PLAYWRIGHT_HANDLER

    app = LenientPeople(refusing={"103"})
    shown: list[Any] = []
    with LocalServer(app) as server:
        settings = people_settings(
            tmp_path, DOWNLOAD_HANDLERS={"http": PLAYWRIGHT_HANDLER, "https": PLAYWRIGHT_HANDLER},
            PLAYWRIGHT_LAUNCH_OPTIONS={"executable_path": "/usr/bin/chromium", "args": ["--no-sandbox"],
                                       "proxy": {"server": server.proxy}},
            ADDONS={"consentcrawl.Addon": 0, "consentcrawl.browser.PlaywrightAddon": 10})
        result = await crawl(make_spider("ConsentSpider", KeepsBrowserPage), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/u/103", f"{BASE}/u/101"], shown=shown)
    assert sorted(app.people_served()) == ["101", "103"], app.describe()  # 103's page had to be read
    assert result.denies() == [("response", f"{BASE}/u/103", "subject.refused-on-page")]
    assert secret_name("103") not in str(shown), shown
    assert shown == ["ConsentDenied('consentcrawl: subject.refused-on-page')", "cannot read: TargetClosedError"]
    assert result.seen == [f"{BASE}/u/101"]


LICENCE = (b'<rsl xmlns="https://rslstandard.org/rsl"><content url="/"><license>'
           b'<permits type="usage">all</permits></license></content></rsl>')


@deferred_f_from_coro_f
async def test_a_licence_a_page_names_is_fetched_with_one_request_per_domain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. A page names an RSL licence on its own host (``<link rel="license">``), fetched to decide the page's
    response phase; the crawl keeps one request per domain at a time (``CONCURRENT_REQUESTS_PER_DOMAIN = 1``).
    Since hunt15 that phase is decided in the send-time handler, while the page still holds its download slot, and
    the licence's request waited in that slot for the page, which waited for the licence: the crawl never ended.
    Side requests made then go past the slots, as the linked actor does."""
    settings = people_settings(tmp_path, CONCURRENT_REQUESTS_PER_DOMAIN=1)
    app = LenientPeople().page("/about", '<html><head><link rel="license" type="application/rsl+xml" '
                                         'href="/licence.xml"></head><body><h1 class="name">us</h1></body></html>')
    app.pages["/licence.xml"] = lambda request: Response(200, {"Content-Type": "application/rsl+xml"}, LICENCE)
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/about"], follow_links=False)
    assert [s.path for s in app.served].count("/licence.xml") == 1, app.describe()
    assert result.seen == [f"{BASE}/about"] and result.denies() == []


@deferred_f_from_coro_f
async def test_a_licence_a_linked_actor_names_is_fetched_with_one_request_per_domain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. The linked actor a person's profile names is fetched while the profile, on the same host, still holds
    its download slot; the actor's answer names an RSL licence (a ``Link`` header) there. With one request per
    domain (the fediverse example's setting) the licence's request waited in the slot the profile held, which
    waited for it: the crawl never ended. It goes past the slots, as the actor does."""
    from consentcrawl_demo.fediverse import FediverseSite
    from consentcrawl_demo.messages import merge_headers
    from spiders.fediverse import SETTINGS
    from tests.conftest import run_crawl
    from tests.test_refusals_actor import ProfilesOnly
    from tests.test_refusals_crawl import fedi_settings

    settings = fedi_settings(tmp_path, CONSENTCRAWL_PLATFORMS=[str(SETTINGS / "fediverse.yaml")])
    site = FediverseSite()
    served: list[str] = []

    def app(request: Any, headers: dict[str, str]) -> Any:
        served.append(request.decoded_path)
        if request.decoded_path == "/licence.xml":
            return Response(200, {"Content-Type": "application/rsl+xml"}, LICENCE)
        answer = site(request, headers)
        if request.decoded_path == "/users/alice" and answer is not None:
            answer.headers = merge_headers(answer.headers, {
                "Link": '</licence.xml>; rel="license"; type="application/rsl+xml"'})
        return answer

    with LocalServer(app) as server:
        result = await run_crawl(ProfilesOnly, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert served.count("/licence.xml") == 1 and "/users/alice" in served, served
    assert ("alice", "post") in {(i["subject"], i["kind"]) for i in result.items}, result.items
