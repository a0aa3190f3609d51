"""Fresh-eyes leak hunt (hunt18): a download a spider stops, and a withdrawal written while a page downloads.

Tests marked "Fixed" failed on main (5fe5ffd) and pass since their fix. Judged by the lenient site's served log,
what the spider's callbacks and errbacks were handed, the items and the HTTP cache on disk.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy import signals
from scrapy.exceptions import StopDownload
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.lenient import (
    HOST,
    KINDS,
    LenientPeople,
    ListLogic,
    crawl,
    iso,
    make_spider,
    people_settings,
    record_yaml,
    secret_name,
)
from tests.test_hunt import ListingItemsLogic, RecordingPipeline, shown_lines

BASE = f"http://{HOST}"
#: an authorized person who refuses on their own page (``#nobot`` in their card's bio)
REFUSER = "101"


class _LongProfile(LenientPeople):
    """The lenient site, with the refuser's card long: their name first, their ``#nobot`` after ~300 kB of bio,
    past the first chunk a client reads (a real profile with a long bio, or a slow connection)."""

    def _answer(self, request: LoggedRequest, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        if kind == "profile" and person == REFUSER:
            padding = "<p>" + "a long bio. " * 25_000 + "</p>"
            return kind, Response.html(
                f'<html><body><div class="h-card profile" data-subject="{person}"><h1 class="name p-name">'
                f"{secret_name(person)}</h1>{padding}<p class=\"p-note\">Please do not scrape me. #nobot</p>"
                "</div></body></html>")
        return super()._answer(request, path, kind, person)


class StoppingLogic(ListLogic):
    """Stops each download at its first chunk of body (Scrapy's documented ``bytes_received`` use), with ``fail``
    as given: False hands the part to the callback, True to the errback (``failure.value.response``). Both yield
    what the page shows, with its person as the item's subject."""

    fail: bool = False
    stopping: tuple[str, ...] = ("/u/", "/notes.json")  #: the downloads stopped: those whose URL holds one of these
    handed: list[str]  #: the bodies a callback or errback was handed, as text

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Any:
        spider = super().from_crawler(crawler, *args, **kwargs)  # type: ignore[misc]
        crawler.signals.connect(spider.stop_at_first_chunk, signal=signals.bytes_received)
        return spider

    def stop_at_first_chunk(self, data: bytes, request: scrapy.Request, spider: Any) -> None:
        if any(part in request.url for part in self.stopping):
            raise StopDownload(fail=self.fail)

    async def start(self) -> Any:
        for url in self.urls:
            yield scrapy.Request(url, callback=self.parse, errback=self.failed, dont_filter=True)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.handed.append(response.text)
        yield from self._items(response)

    def failed(self, failure: Any) -> Any:
        response = getattr(failure.value, "response", None)
        if isinstance(response, scrapy.http.TextResponse):
            self.handed.append(response.text)
            yield from self._items(response)

    @staticmethod
    def _items(response: scrapy.http.TextResponse) -> Any:
        name = response.css(".name::text").get()
        if name:
            yield {"subject": response.url.rsplit("/", 1)[-1], "platform": "people", "url": response.url,
                   "name": name}


#: a JSON document of the site that is no one's page: the part of it a stopped download got still reaches the spider
#: (any other part is denied whole, even no one's: an HTML page's meta robots may be in the rest)
NOTES = '{"notes": "the site\'s notes, nobody\'s page"}'


@pytest.mark.parametrize("fail", [False, True], ids=["to-callback", "to-errback"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_download_the_spider_stops_is_not_read_as_the_whole_page(
        kind: str, fail: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. A ``bytes_received`` handler that raises ``StopDownload`` (Scrapy's way to read only the start of a
    page) hands the part received to the callback (``fail=False``, the response flagged ``download_stopped``) or
    to the errback (``fail=True``, as ``failure.value.response``). The part was read as the whole page: a person
    whose ``#nobot`` came after it had their name handed to the callback, cached, and their item collected; and the
    part handed to an errback was never read at all (a refusal in it included), and the errback's item kept. A
    part is now read as a part (a person's page of which only a part came back is denied, as a ``dataloss`` page
    is), and a stopped download's part goes to an errback only once the response phase allowed it."""
    settings = people_settings(tmp_path, HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(tmp_path / "httpcache"))
    app = _LongProfile()
    app.pages["/notes.json"] = lambda request: Response(200, {"Content-Type": "application/json"}, NOTES)
    handed: list[str] = []
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, StoppingLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/{REFUSER}", f"{BASE}/notes.json"], fail=fail, handed=handed)
    secret = secret_name(REFUSER)
    assert REFUSER in app.people_served(), app.describe()  # sent: the person was allowed until their page said no
    assert NOTES in handed, f"control: the stopped notes did not reach the spider: {handed}"
    assert not any(secret in text for text in handed), "the refuser's page was handed to the spider"
    assert not result.items, result.items
    cached = [p for p in (tmp_path / "httpcache").rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert not cached, cached
    [deny] = result.audit_for(f"/u/{REFUSER}", verdict="deny", phase="response")
    assert deny["reason"] == "error.internal", deny


class _LongRobots(LenientPeople):
    """The lenient site, whose robots.txt disallows 103's profile after ~100 kB of comments (within the 500 KiB
    RFC 9309 asks a crawler to read)."""

    def _answer(self, request: LoggedRequest, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        if kind == "robots":
            comments = "# the site's long list of crawler notes\n" * 2_500
            return kind, Response.text(f"User-agent: *\n{comments}Disallow: /u/103\n")
        return super()._answer(request, path, kind, person)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_robots_txt_download_the_spider_stops_is_not_read_as_the_whole_file(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. The spider's ``bytes_received`` handler stops every download, consentcrawl's own robots.txt
    included: the first chunk of robots.txt (flagged ``download_stopped``) was read as the whole file, so the
    ``Disallow`` after it was lost and 103's profile fetched. The part is now read as a part (robots.txt is
    unreachable, and the origin denied, as for a ``dataloss`` file)."""
    settings = people_settings(tmp_path)
    app = _LongRobots()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, StoppingLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/103"], stopping=("/robots.txt",), handed=[])
    assert app.robots_fetches(), app.describe()
    assert not app.people_served(), app.describe()
    assert result.audit_for("/u/103", verdict="deny"), result.denies()


#: how long the site takes to answer the withdrawing person's page: past the bound a store change has to apply
SLOW = 3.0


class _SlowProfile(LenientPeople):
    """The lenient site, answering 101's profile :data:`SLOW` seconds after it is asked for, and calling
    ``on_request`` as the request arrives (a withdrawal written while the page is being made and sent)."""

    on_request: Any = None

    def _answer(self, request: LoggedRequest, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        kind, response = super()._answer(request, path, kind, person)
        if kind == "profile" and person == REFUSER:
            if self.on_request is not None:
                self.on_request()
            response.delay = SLOW
        return kind, response


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_withdrawal_written_while_the_page_downloads_keeps_it_from_the_spider_and_the_cache(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. The response phase took the send-time allow as the person's say on the page: 101 withdrew as the
    page was being sent, the page came back 3 s later (a slow server, a large page; ``DOWNLOAD_TIMEOUT`` is
    180 s by default), and was handed to the callback and stored in the HTTP cache, the person denied by then. The
    response phase now asks the person's records again, at the time the page is handed on."""
    settings = people_settings(tmp_path, HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(tmp_path / "httpcache"))
    path = Path(settings["CONSENTCRAWL_AUTHORIZATIONS"])
    written: list[float] = []

    def withdraw() -> None:
        with path.open("a") as f:  # another process appending the withdrawal
            f.write(record_yaml(REFUSER, revoked_at=iso(time.time()), evidence="withdrawn while the page downloads"))
        written.append(time.time())

    app = _SlowProfile()
    app.on_request = withdraw
    seen: list[str] = []
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/{REFUSER}", f"{BASE}/u/102"], follow_links=False, seen=seen)
    assert written and app.times_served(REFUSER), app.describe()  # sent, allowed then: the withdrawal came after
    assert f"{BASE}/u/102" in seen, f"control: 102 did not reach the callback: {seen}"
    assert f"{BASE}/u/{REFUSER}" not in seen, "the withdrawn person's page reached the callback"
    secret = secret_name(REFUSER)
    cached = [p for p in (tmp_path / "httpcache").rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert not cached, cached
    assert not [item for item in result.items if item.get("name") == secret], result.items
    [deny] = result.audit_for(f"/u/{REFUSER}", verdict="deny", phase="response")
    assert deny["reason"] == "subject.revoked", deny


#: a licence (RSL) that allows the crawl's use: the page that names it is not denied for it
LICENCE = ('<rsl xmlns="https://rslstandard.org/rsl"><content url="/"><license>'
           '<permits type="usage">search</permits></license></content></rsl>')


class _LicensedProfile(LenientPeople):
    """The lenient site, whose 101 profile names a licence in its head (``<link rel="license">``); the licence
    comes :data:`SLOW` seconds after it is asked for, ``on_licence`` called as its request arrives."""

    on_licence: Any = None

    def _answer(self, request: LoggedRequest, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        kind, response = super()._answer(request, path, kind, person)
        if kind == "profile" and person == REFUSER:
            link = '<link rel="license" type="application/rsl+xml" href="/licence.xml">'
            response.body = str(response.body).replace("<html>", f"<html><head>{link}</head>", 1)
        elif path == "/licence.xml":
            if self.on_licence is not None:
                self.on_licence()
            kind, response = "page", Response(200, {"Content-Type": "application/rsl+xml"}, LICENCE, delay=SLOW)
        return kind, response


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_withdrawal_written_while_the_response_phase_waits_keeps_the_page_from_the_spider(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. The response phase may wait after the page is here: for the licence the page names (fetched behind
    the origin's turn, then downloaded). 101 withdrew during that wait, and their page was handed to the callback
    and the HTTP cache all the same. The person's say is asked again as the response phase's last step."""
    settings = people_settings(tmp_path, HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(tmp_path / "httpcache"))
    path = Path(settings["CONSENTCRAWL_AUTHORIZATIONS"])

    def withdraw() -> None:
        with path.open("a") as f:
            f.write(record_yaml(REFUSER, revoked_at=iso(time.time()), evidence="withdrawn while the licence came"))

    app = _LicensedProfile()
    app.on_licence = withdraw
    seen: list[str] = []
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/{REFUSER}"], follow_links=False, seen=seen)
    assert app.times_served(REFUSER) and "/licence.xml" in {s.path for s in app.served}, app.describe()
    assert f"{BASE}/u/{REFUSER}" not in seen, "the withdrawn person's page reached the callback"
    secret = secret_name(REFUSER)
    cached = [p for p in (tmp_path / "httpcache").rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert not cached, cached
    [deny] = result.audit_for(f"/u/{REFUSER}", verdict="deny", phase="response")
    assert deny["reason"] == "subject.revoked", deny


class AvatarLogic(ListLogic):
    """Each profile gives an item with its person as subject, and their avatar for ``FilesPipeline`` to fetch."""

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        person = response.url.rsplit("/", 1)[-1]
        yield {"subject": person, "platform": "people", "name": response.css(".name::text").get(),
               "file_urls": [f"{BASE}/files/avatar-{person}.png"]}


@pytest.mark.parametrize("files_at", [1, 2_000_000_000], ids=["files-pipeline-at-1", "files-pipeline-numbered-last"])
@deferred_f_from_coro_f
async def test_a_withdrawal_while_a_later_pipeline_works_keeps_the_item_from_the_feed(
        files_at: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. The guard pipeline decides an item first; ``FilesPipeline`` after it then fetches the item's files
    (here 3 s, a slow server) before the item goes to ``item_scraped`` and the feeds. 101 withdrew as their avatar
    was asked for, and their item was written to the feed 3 s later all the same. The person is now asked again as
    the item leaves the last pipeline (whatever number the project gave its pipelines)."""
    feed = tmp_path / "items.jsonl"
    settings = people_settings(tmp_path, ITEM_PIPELINES={"scrapy.pipelines.files.FilesPipeline": files_at},
                               FILES_STORE=str(tmp_path / "files"), FEEDS={str(feed): {"format": "jsonlines"}})
    path = Path(settings["CONSENTCRAWL_AUTHORIZATIONS"])

    def avatar(request: LoggedRequest) -> Response:
        if "avatar-101" in request.path:
            with path.open("a") as f:
                f.write(record_yaml(REFUSER, revoked_at=iso(time.time()), evidence="withdrawn as the avatar came"))
            return Response(200, {"Content-Type": "image/png"}, b"\x89PNG 101", delay=SLOW)
        return Response(200, {"Content-Type": "image/png"}, b"\x89PNG 102")

    app = LenientPeople()
    app.pages["/files/avatar-101.png"] = app.pages["/files/avatar-102.png"] = avatar
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", AvatarLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/{REFUSER}", f"{BASE}/u/102"], follow_links=False)
    served = {s.path for s in app.served}
    assert {"/files/avatar-101.png", "/files/avatar-102.png"} <= served, app.describe()
    written = feed.read_text()
    assert secret_name("102") in written, f"control: 102's item is not in the feed: {written!r}"
    assert secret_name(REFUSER) not in written, "the withdrawn person's item was written to the feed"
    assert not [item for item in result.items if item.get("subject") == REFUSER], result.items
    [deny] = [e for e in result.audit if e.get("phase") == "item" and e.get("verdict") == "deny"]
    assert deny["reason"] == "subject.revoked" and deny["subject"] == REFUSER, deny


class PipelineLastAddon:
    """An add-on applied after consentcrawl's that puts its own (storing) pipeline after every other one."""

    def update_settings(self, settings: Any) -> None:
        settings["ITEM_PIPELINES"].set("tests.test_hunt.RecordingPipeline", 2_000_000_000, "addon")


class LeavingOutAddon:
    """An add-on applied after consentcrawl's that takes the leaving check out."""

    def update_settings(self, settings: Any) -> None:
        settings["ITEM_PIPELINES"].set("consentcrawl.leaving.ConsentLeavingPipeline", None, "addon")


@pytest.mark.parametrize("addon", [PipelineLastAddon, LeavingOutAddon])
@deferred_f_from_coro_f
async def test_a_later_add_on_that_puts_a_pipeline_after_the_leaving_check_stops_the_crawl(
    addon: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """An add-on applied after consentcrawl's that adds a pipeline after the leaving check, or takes it out, would
    let items leave the pipelines with their person asked only at the start: the crawl refuses to start, with one
    CRITICAL line naming ``ITEM_PIPELINES``, and nothing is fetched or stored."""
    RecordingPipeline.stored = []
    spider = make_spider("ADDONS", ListingItemsLogic)
    spider.custom_settings = {"ADDONS": {"consentcrawl.Addon": 0, f"{__name__}.{addon.__name__}": 500}}
    app = LenientPeople()
    with caplog.at_level(logging.INFO), LocalServer(app) as server:
        result = await crawl(spider, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/people?page=1"], follow_links=False)
    assert app.served == [], app.describe()
    assert RecordingPipeline.stored == []
    assert result.stats.get("finish_reason") == "consentcrawl_config_error"
    critical = [line for line in shown_lines(caplog, logging.CRITICAL) if "consentcrawl" in line]
    assert len(critical) == 1 and "ITEM_PIPELINES" in critical[0] and "last item pipeline" in critical[0], critical
