"""Fresh-eyes leak hunt (hunt19).

Tests marked "Fixed" failed on main (3c2eed0) and pass since their fix. Judged by the site's own log of the
targets it was asked for, what reached a callback, the items and the audit log.
"""

from __future__ import annotations

import asyncio
import json
import socketserver
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl_demo.server import LocalServer
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
from tests.test_item_mentions import _events
from tests.test_nofollow_engine_crawl import FOLLOW, NOFOLLOW, SendsLinksThroughTheEngine
from tests.threadserver import serving

BASE = f"http://{HOST}"
#: Scrapy's download handlers a crawl may download with (``CONSENTCRAWL_HTTP_HANDLER``): Twisted flags a body with
#: no length ``partial``, aiohttp and httpx read it to the end without a word
HANDLERS = {
    "twisted": "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler",
    "aiohttp": "scrapy.core.downloader.handlers._aiohttp.AiohttpDownloadHandler",
    "httpx": "scrapy.core.downloader.handlers._httpx.HttpxDownloadHandler",
}
#: robots.txt that keeps every crawler off the profiles
NO_PROFILES = "User-agent: *\nDisallow: /u/\n"
#: an authorized person's profile: their name first, their refusal (``#nobot`` in their card) after it
REFUSING_PROFILE = (f'<html><body><div class="h-card profile" data-subject="101"><h1 class="name p-name">'
                    f'{secret_name("101")}</h1>' + "<p>a long bio.</p>" * 50
                    + '<p class="p-note">Please do not scrape me. #nobot</p></div></body></html>')
#: a JSON document that is no one's page: all of it, or a part, still reaches the spider
NOTES = '{"notes": "the site\'s notes, nobody\'s page"}'


class _CloseDelimitedSite(socketserver.ThreadingTCPServer):
    """A loopback origin-and-proxy that answers without ``Content-Length`` (nor chunks): the body ends where the
    connection does, as HTTP/1.0 servers, CGI scripts and many small servers send it (RFC 9112, 6.3, item 8).
    Then the client cannot tell a whole body from a cut one: here each body stops after ``cut`` bytes (a
    connection reset mid-page), and the site logs the targets it was asked for."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, pages: dict[str, tuple[str, str, int | None]], status: int = 200,
                 status_of: tuple[str, ...] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _CloseDelimited)
        self.status = status  #: the status of the pages found in ``status_of`` (of every page found: None)
        self.status_of = status_of
        #: path -> (Content-Type, body, bytes sent with no length before the connection drops; None: whole, with
        #: its Content-Length)
        self.pages = pages
        self.targets: list[str] = []


class _CloseDelimited(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(65537).decode("latin-1")
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass
        target = line.split(" ")[1] if line.count(" ") >= 2 else ""
        self.server.targets.append(target)  # type: ignore[attr-defined]
        path = "/" + target.split("/", 3)[3] if target.startswith("http://") else target
        found = self.server.pages.get(path)  # type: ignore[attr-defined]
        if found is None:
            self.wfile.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        content_type, body, cut = found
        if cut is None:  # sent whole, with its length
            length = b"Content-Length: %d\r\n" % len(body.encode())
            cut = len(body.encode())
        else:
            length = b""
        status_of = self.server.status_of  # type: ignore[attr-defined]
        status = self.server.status if status_of is None or path in status_of else 200  # type: ignore[attr-defined]
        self.wfile.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nConnection: close\r\n%s\r\n%s"
                         % (status, b"OK" if status == 200 else b"Partial Content", content_type.encode(), length,
                            body.encode()[:cut]))


@contextmanager
def close_delimited(pages: dict[str, tuple[str, str, int | None]], status: int = 200,
                    status_of: tuple[str, ...] | None = None) -> Iterator[_CloseDelimitedSite]:
    with serving(_CloseDelimitedSite(pages, status, status_of)) as server:
        yield server


@pytest.mark.parametrize("handler", sorted(HANDLERS))
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_robots_txt_without_a_length_cut_short_is_not_read_as_the_rules_it_kept(
        kind: str, handler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. robots.txt sent without a length, its connection dropped after ``User-agent: *``: Scrapy cannot
    tell the part from the whole and flags it ``partial`` (Twisted's ``PotentialDataLoss``), not ``dataloss``,
    and the fetcher read it as the whole file: the ``Disallow: /u/`` it never got was lost and 101's profile
    fetched. A body whose end is not known is now read as a part (unreachable, the origin denied)."""
    pages = {"/robots.txt": ("text/plain", NO_PROFILES, NO_PROFILES.index("\n") + 1),
             "/u/101": ("text/html", REFUSING_PROFILE, len(REFUSING_PROFILE))}
    with close_delimited(pages) as server:
        settings = people_settings(tmp_path, CONSENTCRAWL_HTTP_HANDLER=HANDLERS[handler])
        result = await crawl(make_spider(kind, ListLogic), settings, monkeypatch=monkeypatch,
                             proxy=f"http://127.0.0.1:{server.server_address[1]}", urls=[f"{BASE}/u/101"],
                             follow_links=False)
    assert f"{BASE}/robots.txt" in server.targets, server.targets
    assert f"{BASE}/u/101" not in server.targets, f"a page robots.txt disallows was fetched: {server.targets}"
    assert not result.items and not result.seen
    assert {e.get("reason") for e in result.audit_for("/u/101")} == {"robots.unreachable"}, result.denies()


@pytest.mark.parametrize("handler", sorted(HANDLERS))
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_profile_without_a_length_cut_before_its_refusal_is_not_handed_to_the_spider(
        kind: str, handler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. 101 (authorized) refuses in their own card (``#nobot``), after their name; the site sends the
    profile without a length and the connection drops before the refusal. Scrapy flags the part ``partial``, and
    it was read as the whole page: the name went to the callback and into an item. A page whose end is not known
    is now read as a part, as a ``dataloss`` one is: a person's page is denied."""
    cut = REFUSING_PROFILE.index("#nobot") - 40
    pages = {"/robots.txt": ("text/plain", "User-agent: *\nAllow: /\n", None),
             "/u/101": ("text/html", REFUSING_PROFILE, cut),
             "/notes.json": ("application/json", NOTES, 10_000)}
    with close_delimited(pages) as server:
        settings = people_settings(tmp_path, CONSENTCRAWL_HTTP_HANDLER=HANDLERS[handler])
        result = await crawl(make_spider(kind, ListLogic), settings, monkeypatch=monkeypatch,
                             proxy=f"http://127.0.0.1:{server.server_address[1]}",
                             urls=[f"{BASE}/notes.json", f"{BASE}/u/101"], follow_links=False)
    assert f"{BASE}/u/101" in server.targets, server.targets  # sent: 101 is allowed until their page says no
    assert f"{BASE}/notes.json" in result.seen, f"control: no one's document did not reach the spider: {result.seen}"
    assert f"{BASE}/u/101" not in result.seen, "the refuser's page was handed to the callback"
    assert not any(secret_name("101") in str(item) for item in result.items), result.items
    assert result.audit_for("/u/101", verdict="deny", phase="response"), result.denies()


@pytest.mark.parametrize("how", ["no length, cut", "206"])
def test_check_reads_a_robots_txt_part_as_the_crawl_does(
        how: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. ``consentcrawl check`` (httpx) read a part of robots.txt as the whole file, where the crawl reads it
    as unreachable: a ``206`` with its first line, or a body with no length cut after it (httpx, as Twisted,
    cannot tell it from the whole). It said ``allow`` for 101's profile, which robots.txt disallows and the
    crawl denies ``robots.unreachable``."""
    first = NO_PROFILES.index("\n") + 1
    pages: dict[str, tuple[str, str, int | None]] = {"/robots.txt": ("text/plain", NO_PROFILES, first)}
    if how == "206":
        pages = {"/robots.txt": ("text/plain", NO_PROFILES[:first], None)}
    settings = people_settings(tmp_path)
    monkeypatch.chdir(tmp_path)
    with close_delimited(pages, status=206 if how == "206" else 200) as server:
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.server_address[1]}")
        code = main(["check", f"{BASE}/u/101", "--json", "--purpose", "research",
                     "--platforms", settings["CONSENTCRAWL_PLATFORMS"],
                     "--authorizations", settings["CONSENTCRAWL_AUTHORIZATIONS"]])
    out, err = capsys.readouterr()
    assert f"{BASE}/robots.txt" in server.targets, server.targets
    assert code == 1, out + err
    assert json.loads(out)["reason"] == "robots.unreachable", out


@pytest.mark.parametrize("how", ["no length, cut", "206"])
def test_check_fetch_reads_a_part_of_a_persons_page_as_the_crawl_does(
        how: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. ``consentcrawl check --fetch`` read a part of 101's profile (a ``206``, or a body with no length
    cut before their ``#nobot``) as the whole page and said ``allow``; the crawl denies such a part
    (``error.internal``, ``PartialPage``): a refusal may be in the rest."""
    cut = REFUSING_PROFILE.index("#nobot") - 40
    page: tuple[str, str, int | None] = ("text/html", REFUSING_PROFILE, cut)
    if how == "206":
        page = ("text/html", REFUSING_PROFILE[:cut], None)
    pages = {"/robots.txt": ("text/plain", "User-agent: *\nAllow: /\n", None), "/u/101": page}
    settings = people_settings(tmp_path)
    monkeypatch.chdir(tmp_path)
    with close_delimited(pages, status=206 if how == "206" else 200, status_of=("/u/101",)) as server:
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.server_address[1]}")
        code = main(["check", f"{BASE}/u/101", "--json", "--fetch", "--purpose", "research",
                     "--platforms", settings["CONSENTCRAWL_PLATFORMS"],
                     "--authorizations", settings["CONSENTCRAWL_AUTHORIZATIONS"]])
    out, err = capsys.readouterr()
    assert f"{BASE}/u/101" in server.targets, server.targets
    assert code == 1, out + err
    decision = json.loads(out)
    assert decision["reason"] == "error.internal", out
    assert any(e.get("error") == "PartialPage" for e in decision["evidence"]), out


def test_check_fetch_reads_a_part_of_an_html_page_as_the_crawl_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. ``consentcrawl check --fetch`` read a part of an HTML page that is no one's (sent with no length,
    the connection dropped before its ``<meta name="robots" content="noai">``) as the whole page and said
    ``allow``; the crawl's response phase denies any HTML page of which only a part came back: its meta tags may
    be in the rest."""
    about = ("<html><head><title>about</title>" + "<!-- a long head -->" * 20
             + '<meta name="robots" content="noindex, noai"></head><body>about us</body></html>')
    pages = {"/robots.txt": ("text/plain", "User-agent: *\nAllow: /\n", None),
             "/about": ("text/html", about, about.index("<meta"))}
    settings = people_settings(tmp_path)
    monkeypatch.chdir(tmp_path)
    with close_delimited(pages) as server:
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.server_address[1]}")
        code = main(["check", f"{BASE}/about", "--json", "--fetch", "--purpose", "research",
                     "--platforms", settings["CONSENTCRAWL_PLATFORMS"],
                     "--authorizations", settings["CONSENTCRAWL_AUTHORIZATIONS"]])
    out, err = capsys.readouterr()
    assert f"{BASE}/about" in server.targets, server.targets
    assert code == 1, out + err
    decision = json.loads(out)
    assert decision["reason"] == "error.internal", out
    assert any("only part of the page" in (e.get("message") or "") for e in decision["evidence"]), out


# -- an item a later pipeline reshapes, its person withdrawn meanwhile ---------------------------------------------


class ProfileItemsLogic(ListLogic):
    """Each profile gives an item naming its person (the subject field) and their name."""

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"subject": response.url.rsplit("/", 1)[-1], "platform": "people",
               "name": response.css(".name::text").get()}


class ExportShapePipeline:
    """A project's pipeline after the guard: it looks the person up in a slow service (here 3 s for 101, who
    withdraws meanwhile), then hands on the item in the shape the export wants, a new dict with the name alone (no
    subject, no provenance: fields the feed has no use for)."""

    authorizations: Path | None = None

    async def process_item(self, item: Any) -> Any:
        if item.get("subject") == "101":
            assert self.authorizations is not None
            with self.authorizations.open("a") as f:  # another process appending the withdrawal
                f.write(record_yaml("101", revoked_at=iso(time.time()), evidence="withdrawn while a pipeline works"))
            await asyncio.sleep(3.0)
        return {"name": item["name"]}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_withdrawal_while_a_pipeline_reshapes_the_item_keeps_it_from_the_feed(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. The leaving check read whose an item is from the item as it leaves (its subject field, else its
    provenance): a pipeline after the guard that hands on a new dict in the export's shape (no subject, no
    provenance) took both away, and the check let it go unasked. 101 withdrew while that pipeline worked, and their
    name was written to the feed. The check now asks again for the person the guard kept the item on."""
    feed = tmp_path / "items.jsonl"
    settings = people_settings(tmp_path, ITEM_PIPELINES={f"{__name__}.ExportShapePipeline": 500},
                               FEEDS={str(feed): {"format": "jsonlines"}})
    ExportShapePipeline.authorizations = Path(settings["CONSENTCRAWL_AUTHORIZATIONS"])
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ProfileItemsLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/u/101", f"{BASE}/u/102"], follow_links=False)
    assert {"101", "102"} <= set(app.people_served()), app.describe()
    written = feed.read_text() if feed.exists() else ""
    assert secret_name("102") in written, f"control: 102's item is not in the feed: {written!r}"
    assert secret_name("101") not in written, "the withdrawn person's item was written to the feed"
    assert not [item for item in result.items if item.get("name") == secret_name("101")], result.items
    [deny] = [e for e in result.audit if e.get("phase") == "item" and e.get("verdict") == "deny"]
    assert deny["reason"] == "subject.revoked" and deny["subject"] == "101", deny


# -- links a nofollow page's coroutine callback sends through the engine -----------------------------------------


class SendsLinksFromACoroutine(SendsLinksThroughTheEngine):
    """The callback is a coroutine (``async def`` that returns its items): Scrapy runs it in a task of its own."""

    async def parse_coroutine(self, response: scrapy.http.Response) -> Any:
        await asyncio.sleep(0.05)
        self._send(response)
        return [{"url": response.url}]

    async def parse_coroutine_at_once(self, response: scrapy.http.Response) -> Any:
        self._send(response)
        return [{"url": response.url}]


@pytest.mark.parametrize("how", ["coroutine", "coroutine_at_once"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_links_a_nofollow_pages_coroutine_callback_sends_through_the_engine_are_not_followed(
        kind: str, how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. A nofollow page's links sent with ``engine.crawl`` were refused from a callback that returns or
    yields, not from a coroutine callback (``async def parse(...): ...; return items``), which Scrapy runs in a task
    of its own: the page's link (102's profile) was fetched. The other page's link sent the same way is the
    control."""
    app = LenientPeople().page("/nf", NOFOLLOW).page("/f", FOLLOW)
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, SendsLinksFromACoroutine), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch, how=how)
    assert "103" in app.people_served(), f"control: the other page's link was followed\n{app.describe()}"
    assert "102" not in app.people_served(), app.describe()
    assert [(p, u, r) for p, u, r in result.denies()] == [("output", f"{BASE}/u/102", "response.nofollow")]
    assert sorted(result.seen) == [f"{BASE}/f", f"{BASE}/nf", f"{BASE}/u/103"], result.seen


class DownloadsLinksInLine(SendsLinksThroughTheEngine):
    """The callback downloads each link in line (``await engine.download_async(...)``, past the scheduler), from an
    async generator or a coroutine, and yields or returns an item of each page it got."""

    async def _download(self, response: scrapy.http.Response) -> list[dict[str, Any]]:
        self.seen.append(response.url)
        got = []
        for href in response.css("a.link::attr(href)").getall():
            try:
                page = await self.crawler.engine.download_async(response.follow(href))  # type: ignore[attr-defined]
            except scrapy.exceptions.IgnoreRequest:
                continue
            got.append({"url": page.url, "name": page.css(".name::text").get()})
        return got

    async def parse_inline_generator(self, response: scrapy.http.Response) -> Any:
        for item in await self._download(response):
            yield item

    async def parse_inline_coroutine(self, response: scrapy.http.Response) -> Any:
        return await self._download(response)


@pytest.mark.parametrize("how", ["inline_generator", "inline_coroutine"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_links_a_nofollow_pages_callback_downloads_in_line_are_not_fetched(
        kind: str, how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. A callback may download a page in line with ``await self.crawler.engine.download_async(request)``
    (past the scheduler: no ``request_scheduled``, no spider middleware): a nofollow page's link (102's profile)
    was fetched and its name collected. It is now refused as the same link yielded is; the other page's link
    downloaded the same way is the control."""
    app = LenientPeople().page("/nf", NOFOLLOW).page("/f", FOLLOW)
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, DownloadsLinksInLine), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch, how=how)
    assert "103" in app.people_served(), f"control: the other page's link was downloaded\n{app.describe()}"
    assert "102" not in app.people_served(), app.describe()
    assert not [item for item in result.items if item.get("name") == secret_name("102")], result.items
    assert [(p, u, r) for p, u, r in result.denies()] == [("output", f"{BASE}/u/102", "response.nofollow")]


# -- a person an item mentions withdraws while a later pipeline works ---------------------------------------------


class FriendItemsLogic(ListLogic):
    """103's profile gives an item naming 103, with their friend's (102's) profile URL."""

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"subject": "103", "platform": "people", "name": response.css(".name::text").get(),
               "friend": f"{BASE}/u/102", "bio": f"best friend of {BASE}/u/102, since 2020"}


class SlowEnrichPipeline:
    """A project's pipeline after the guard: it enriches the item from a slow service (3 s), while the friend the
    item mentions (102) withdraws."""

    authorizations: Path | None = None

    async def process_item(self, item: Any) -> Any:
        assert self.authorizations is not None
        with self.authorizations.open("a") as f:  # another process appending the withdrawal
            f.write(record_yaml("102", revoked_at=iso(time.time()), evidence="withdrawn while a pipeline works"))
        await asyncio.sleep(3.0)
        return item


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_mentioned_person_who_withdraws_while_a_pipeline_works_is_withheld_from_the_feed(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. The guard decides the people an item mentions as it passes (102, a friend, allowed then); 102 withdrew
    while a later pipeline worked, and their profile URL was written to the feed with 103's item. The leaving check
    now asks again for each person the guard let the item mention, and withholds those no longer allowed."""
    feed = tmp_path / "items.jsonl"
    settings = people_settings(tmp_path, ITEM_PIPELINES={f"{__name__}.SlowEnrichPipeline": 500},
                               FEEDS={str(feed): {"format": "jsonlines"}})
    SlowEnrichPipeline.authorizations = Path(settings["CONSENTCRAWL_AUTHORIZATIONS"])
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, FriendItemsLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/u/103"], follow_links=False)
    written = feed.read_text() if feed.exists() else ""
    assert secret_name("103") in written, f"control: 103's item is not in the feed: {written!r}"
    assert "/u/102" not in written, f"the withdrawn friend's profile URL was written to the feed: {written!r}"
    [item] = result.items
    assert item["friend"] is None and item["bio"] == "best friend of [consentcrawl: withheld], since 2020", item
    [event] = _events(settings["CONSENTCRAWL_AUDIT_LOG"], "mentions-withheld")
    assert [(p["subject"], p["reason"]) for p in event["people"]] == [("102", "subject.revoked")], event
