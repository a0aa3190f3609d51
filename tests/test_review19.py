"""Attacker's review of the morning's changes (review19): raw HTTP/1 answers a crawl must read as the whole, or
deny, judged by the site's own log of targets, what reached a callback, the items and the audit log."""

from __future__ import annotations

import asyncio
import json
import logging
import socketserver
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.http import HtmlResponse
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, ListLogic, crawl, make_spider, people_settings, secret_name
from tests.test_leaks_hunt19 import HANDLERS, DownloadsLinksInLine, ProfileItemsLogic
from tests.test_nofollow_engine_crawl import FOLLOW, NOFOLLOW
from tests.threadserver import serving

BASE = f"http://{HOST}"
PROFILE = (f'<html><body><div class="h-card profile" data-subject="101"><h1 class="name p-name">'
           f'{secret_name("101")}</h1><p>a bio.</p></div></body></html>')
ROBOTS = "User-agent: *\nAllow: /\n"


def whole(body: str, content_type: str = "text/html", status: bytes = b"200 OK") -> bytes:
    data = body.encode()
    return (b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, content_type.encode(), len(data), data))


class _RawSite(socketserver.ThreadingTCPServer):
    """A loopback origin-and-proxy answering each path with the raw bytes ``answers`` gives, then closing the
    connection; it logs the targets it was asked for."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answers: dict[str, Callable[[str], bytes]]) -> None:
        super().__init__(("127.0.0.1", 0), _Raw)
        self.answers = answers
        self.targets: list[str] = []


class _Raw(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(65537).decode("latin-1")
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass
        parts = line.split(" ")
        target = parts[1] if len(parts) >= 3 else ""
        self.server.targets.append(f"{parts[0]} {target}")  # type: ignore[attr-defined]
        path = "/" + target.split("/", 3)[3] if target.startswith("http://") else target
        answer = self.server.answers.get(path)  # type: ignore[attr-defined]
        self.wfile.write(answer(parts[0]) if answer is not None
                         else b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@contextmanager
def raw_site(answers: dict[str, Callable[[str], bytes]]) -> Iterator[_RawSite]:
    with serving(_RawSite(answers)) as server:
        yield server


def _chunked(body: str) -> bytes:
    data = body.encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 40]), data[i:i + 40]) for i in range(0, len(data), 40))
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            + chunks + b"0\r\n\r\n")


@pytest.mark.parametrize("handler", sorted(HANDLERS))
@deferred_f_from_coro_f
async def test_a_chunked_profile_sent_whole_reaches_the_spider(
        handler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"/robots.txt": lambda m: whole(ROBOTS, "text/plain"), "/u/101": lambda m: _chunked(PROFILE)}
    with raw_site(answers) as server:
        settings = people_settings(tmp_path, CONSENTCRAWL_HTTP_HANDLER=HANDLERS[handler])
        result = await crawl(make_spider("ADDONS", ListLogic), settings, monkeypatch=monkeypatch,
                             proxy=f"http://127.0.0.1:{server.server_address[1]}", urls=[f"{BASE}/u/101"],
                             follow_links=False)
    assert f"{BASE}/u/101" in result.seen, (server.targets, result.denies())


@pytest.mark.parametrize("handler", sorted(HANDLERS))
@deferred_f_from_coro_f
async def test_a_profiles_redirect_sent_with_no_length_is_followed(
        handler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    redirect = (b"HTTP/1.1 301 Moved Permanently\r\nLocation: " + f"{BASE}/u/101/about".encode()
                + b"\r\nConnection: close\r\n\r\n")
    answers = {"/robots.txt": lambda m: whole(ROBOTS, "text/plain"), "/u/101": lambda m: redirect,
               "/u/101/about": lambda m: whole(PROFILE)}
    with raw_site(answers) as server:
        settings = people_settings(tmp_path, CONSENTCRAWL_HTTP_HANDLER=HANDLERS[handler])
        result = await crawl(make_spider("ADDONS", ListLogic), settings, monkeypatch=monkeypatch,
                             proxy=f"http://127.0.0.1:{server.server_address[1]}", urls=[f"{BASE}/u/101"],
                             follow_links=False)
    assert f"{BASE}/u/101/about" in result.seen, (server.targets, result.denies())


def test_an_empty_answer_with_no_length_is_a_part_only_where_a_page_would_be_read() -> None:
    """An empty redirect or error sent with no length holds nothing to read; an empty 2xx may be a page cut at its
    first byte, and a body of any status with bytes in it may be cut: parts, as a ``dataloss`` or a ``206`` is."""
    from consentcrawl.robots.partial import is_partial

    assert not is_partial(301, ["partial"], 0) and not is_partial(404, ["partial"], 0)
    assert is_partial(200, ["partial"], 0) and is_partial(203, ["partial"], 0)
    assert is_partial(301, ["partial"], 12) and is_partial(404, ["partial"], 3)
    assert is_partial(302, ["dataloss"], 0) and is_partial(206, [], 0)


@pytest.mark.parametrize("handler", sorted(HANDLERS))
@deferred_f_from_coro_f
async def test_a_site_sending_whole_pages_with_no_length_has_them_denied_and_the_log_says_why(
        handler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """An HTTP/1.0 server sends 101's whole profile with no length: it cannot be told from a cut one, so it is
    denied (fail closed, docs/refusals.md#limits). The log at WARNING says so, naming the origin, not the page;
    the deny's evidence says what made it a part. Before: the only INFO+ line was ``error/internal 1``, and the
    evidence said "only part of the person's page came back" of a page that came back whole."""
    page = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n" + PROFILE.encode()
    answers = {"/robots.txt": lambda m: whole(ROBOTS, "text/plain"), "/u/101": lambda m: page,
               "/u/102": lambda m: page}
    caplog.set_level(logging.INFO)
    with raw_site(answers) as server:
        settings = people_settings(tmp_path, CONSENTCRAWL_HTTP_HANDLER=HANDLERS[handler])
        result = await crawl(make_spider("ADDONS", ListLogic), settings, monkeypatch=monkeypatch,
                             proxy=f"http://127.0.0.1:{server.server_address[1]}",
                             urls=[f"{BASE}/u/101", f"{BASE}/u/102"], follow_links=False)
    assert f"GET {BASE}/u/101" in server.targets, server.targets
    assert not result.seen and not result.items
    denies = [e for e in result.audit_for("/u/101") if e["verdict"] == "deny"]
    assert [e["reason"] for e in denies] == ["error.internal"], result.denies()
    assert "sent with no length" in json.dumps(denies[0]["evidence"]), denies[0]["evidence"]
    # httpx's own INFO line for each request it sends (``HTTP Request: GET <url>``) is written before the page is
    # read, while 101 is still allowed: not this change's (see the review's report)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and r.name != "httpx"]
    told = [line for line in lines if "with no length" in line]
    assert told == [f"consentcrawl: http://{HOST} sends people's pages with no length (no Content-Length nor "
                    "chunks, as HTTP/1.0 servers do): a page cut by a dropped connection cannot be told from a "
                    "whole one, so each is denied as a part (error.internal, PartialPage; docs/refusals.md#limits)"]
    assert not [line for line in lines if secret_name("101") in line or "/u/10" in line], lines


# -- a nofollow page's callback that downloads its links in line from tasks it gathers ----------------------------


class GathersLinks(DownloadsLinksInLine):
    """The callback downloads each link in line at once, ``asyncio.gather(engine.download_async(...), ...)``:
    asyncio runs each download in a task of its own, started by the callback."""

    async def _gathered(self, response: scrapy.http.Response) -> list[dict[str, Any]]:
        self.seen.append(response.url)
        requests = [response.follow(href) for href in response.css("a.link::attr(href)").getall()]
        pages = await asyncio.gather(*(self.crawler.engine.download_async(r) for r in requests),  # type: ignore
                                     return_exceptions=True)
        return [{"url": p.url, "name": p.css(".name::text").get()} for p in pages if isinstance(p, HtmlResponse)]

    async def parse_gather_coroutine(self, response: scrapy.http.Response) -> Any:
        return await self._gathered(response)

    async def parse_gather_generator(self, response: scrapy.http.Response) -> Any:
        for item in await self._gathered(response):
            yield item


@pytest.mark.parametrize("how", ["gather_coroutine", "gather_generator"])
@deferred_f_from_coro_f
async def test_links_a_nofollow_pages_callback_gathers_downloads_of_are_not_fetched(
        how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A nofollow page's link (102's profile) downloaded in line from a task the callback gathers was fetched and
    its name collected: the in-line download guard knew the page by the task running its callback alone. The other
    page's link downloaded the same way is the control."""
    app = LenientPeople().page("/nf", NOFOLLOW).page("/f", FOLLOW)
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", GathersLinks), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch, how=how)
    assert "103" in app.people_served(), f"control: the other page's link was downloaded\n{app.describe()}"
    assert "102" not in app.people_served(), app.describe()
    assert not [item for item in result.items if item.get("name") == secret_name("102")], result.items
    assert [(p, u, r) for p, u, r in result.denies()] == [("output", f"{BASE}/u/102", "response.nofollow")]


NOFOLLOW_WITH_FILE = ('<html><head><meta name="robots" content="nofollow"></head><body>'
                      '<a class="link" href="/u/102">x</a></body></html>')


class FileItems:
    """A nofollow page's callback (a list, a coroutine, an async generator) yields an item with a file to fetch."""

    seen: list[str]
    how = "list"

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/nf", callback=getattr(self, f"parse_{self.how}"), dont_filter=True)

    def parse_list(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        return [{"file_urls": [response.urljoin("/notes.txt")]}]

    async def parse_coroutine(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        await asyncio.sleep(0.01)
        return [{"file_urls": [response.urljoin("/notes.txt")]}]

    async def parse_generator(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"file_urls": [response.urljoin("/notes.txt")]}
        await asyncio.sleep(0.3)  # still running as the item's file is fetched


@pytest.mark.parametrize("how", ["list", "coroutine", "generator"])
@deferred_f_from_coro_f
async def test_the_file_of_an_item_from_a_nofollow_page_is_still_fetched(
        how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control for the above: a media pipeline's download of an item's file (no link of the page's) runs in the
    task processing the callback's output, not in one the callback started: it is fetched as before."""
    app = LenientPeople().page("/nf", NOFOLLOW_WITH_FILE).page("/notes.txt", "<html>notes</html>")
    settings = people_settings(tmp_path, ITEM_PIPELINES={"scrapy.pipelines.files.FilesPipeline": 1},
                               FILES_STORE=str(tmp_path / "files"))
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", FileItems), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, how=how)
    assert f"{BASE}/notes.txt" in app.describe(), app.describe()
    assert not result.denies(), result.denies()


# -- a pipeline between the guard and the leaving check hands on no item ------------------------------------------


class _Stringify:
    """A project's pipeline after the guard that hands on a line of text instead of the item (a bug, or an export
    step written for another processor)."""

    async def process_item(self, item: Any) -> Any:
        return f"{item['name']} / {item['subject']}"


@deferred_f_from_coro_f
async def test_a_pipeline_that_hands_on_no_item_has_it_dropped_without_a_traceback_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The leaving check read the value a pipeline between handed on through ``ItemAdapter``, which raised
    ``TypeError`` for a ``str``: Scrapy wrote ``Error processing {...}`` at ERROR with the whole item, 101's name in
    it, and a traceback; had 101 withdrawn while the pipeline worked, the check never got to ask. It is now refused
    as a value yielded that is no item is (``error.internal``, ``not an item: str``), its value written nowhere."""
    feed = tmp_path / "items.jsonl"
    settings = people_settings(tmp_path, ITEM_PIPELINES={f"{__name__}._Stringify": 500},
                               FEEDS={str(feed): {"format": "jsonlines"}})
    caplog.set_level(logging.DEBUG)
    with LocalServer(LenientPeople()) as server:
        result = await crawl(make_spider("ADDONS", ProfileItemsLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/u/101"], follow_links=False)
    assert not result.items and not (feed.read_text() if feed.exists() else "")
    loud = [r for r in caplog.records if r.levelno >= logging.INFO and r.name != "httpx"]
    assert not [r.getMessage() for r in loud if secret_name("101") in r.getMessage() or r.exc_info], loud
    assert [r.getMessage() for r in loud if r.levelno == logging.WARNING] == [
        "consentcrawl: an item pipeline handed on a str in place of the item (process_item must return the item): "
        "refused (error.internal)"], loud
    [deny] = [e for e in result.audit if e.get("phase") == "item" and e.get("verdict") == "deny"]
    assert deny["reason"] == "error.internal" and deny["evidence"][-1]["cause"] == "not an item: str", deny
