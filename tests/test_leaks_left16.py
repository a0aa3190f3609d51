"""What the hunt16 review left (left16).

- a line written after the engine stopped: asyncio's ``Task exception was never retrieved`` and Twisted's
  ``Unhandled error in Deferred`` are written when the task or the Deferred is garbage-collected, after the crawl's
  line filter came off; a spider that keeps its tasks in a list, whose exception names a denied person's URL;
- an ``ItemLoader`` item (no ``TakeFirst``: each field is a list) named its person ``"['101']"``: denied, whoever
  it was;
- a downloader middleware that downloads by itself (returns a ``Response`` from ``process_request``) numbered before
  consentcrawl's request phase fetched a denied person's page.

Real crawls against the lenient people site; judged by the server's log, the items, the log records at INFO and
above and the audit log.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.http import HtmlResponse
from scrapy.loader import ItemLoader
from scrapy.utils.defer import deferred_f_from_coro_f
from twisted.internet import defer
from twisted.python import log as twisted_log

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, Robots, crawl, make_spider, people_settings, record_yaml
from tests.test_purge import purge

BASE = f"http://{HOST}"
#: 107 (no authorization) named anywhere in a line
DENIED = re.compile(r"(?<!\d)107(?!\d)")


def _fails(url: str) -> None:
    raise ValueError(f"could not store {url}")


class KeepsTasks:
    """Asks for 101 and 107 (refused); the callback and the errback each start a task and make a Deferred, failing
    with the URL in its message, and keep them (never awaited): their errors are written when they are collected."""

    seen: list[str]
    kept: list[Any]

    async def start(self) -> Any:
        self.kept = []
        for person in ("101", "107"):
            yield scrapy.Request(f"{BASE}/u/{person}", callback=self.profile, errback=self.failed)

    def profile(self, response: Any) -> None:
        self.seen.append(response.url)
        self.keep(response.url)  # an allowed person's URL: kept in the line

    def failed(self, failure: Any) -> None:
        self.keep(failure.request.url)

    def keep(self, url: str) -> None:
        async def store() -> None:
            _fails(url)

        self.kept.append(asyncio.ensure_future(store()))
        self.kept.append(defer.maybeDeferred(_fails, url))



def collect_kept(kept: list[Any], caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Let the spider's kept tasks and Deferreds go after the crawl (as a spider collected later does) and
    collect them, with Twisted's lines routed to logging as ``scrapy crawl`` routes them: the records at ERROR+."""
    caplog.clear()
    observer = twisted_log.PythonLoggingObserver("twisted")
    observer.start()
    try:
        with caplog.at_level(logging.DEBUG):
            kept.clear()
            gc.collect()
    finally:
        observer.stop()
    return [r for r in caplog.records if r.levelno >= logging.ERROR]

@pytest.mark.parametrize("kind", ["ConsentSpider", "ADDONS"])
@deferred_f_from_coro_f
async def test_a_task_or_deferred_collected_after_the_crawl_names_no_denied_person(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, KeepsTasks), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    await asyncio.sleep(0)  # the tasks ran
    assert app.people_served() == ["101"], app.describe()
    assert result.stats.get("finish_reason") == "finished"
    kept = result.crawler.spider.kept
    assert len(kept) == 4
    errors = collect_kept(kept, caplog)
    written = [f"{r.name}: {r.getMessage()} {r.exc_text or ''}" for r in errors]
    # both were written (asyncio's and Twisted's), at ERROR, and name no one
    assert any("never retrieved" in line for line in written), written
    assert any("Unhandled error" in line for line in written), written
    assert not [line for line in written if DENIED.search(line)], written
    assert not [r for r in errors if r.exc_info and DENIED.search(str(r.exc_info[1]))], written
    # an allowed person's URL is kept (asyncio's line and Twisted's traceback)
    assert len([line for line in written if f"{BASE}/u/101" in line]) >= 2, written
    # the lines as written are at DEBUG
    assert [r for r in caplog.records if r.levelno == logging.DEBUG and DENIED.search(r.getMessage() + str(
        r.exc_info and r.exc_info[1]))]


# -- ItemLoader: every field a list ---------------------------------------------------------------------------------


class Loads:
    """Profiles of 101 and 102 (authorized), each item made with an ``ItemLoader`` and its default output processor
    (every field a list): 101's page names its person (``['101']``), ``[101]`` as a number too, and 107 (denied);
    102's names 102 and 107 at once (which is it?), and 102 alone with the platform twice."""

    seen: list[str]

    async def start(self) -> Any:
        for person in ("101", "102"):
            yield scrapy.Request(f"{BASE}/u/{person}", callback=self.profile)

    def load(self, response: Any, *subjects: Any, platforms: tuple[str, ...] = ("people",)) -> Any:
        loader = ItemLoader(item={}, selector=response)
        for subject in subjects:
            loader.add_value("subject", subject)
        for platform in platforms:
            loader.add_value("platform", platform)
        loader.add_css("name", ".name::text")
        loader.add_value("url", response.url)
        return loader.load_item()

    def profile(self, response: Any) -> Any:
        self.seen.append(response.url)
        if response.url.endswith("/101"):
            yield self.load(response, "101")
            yield self.load(response, 101)
            yield self.load(response, "107")
        else:
            yield self.load(response, "102", "107")
            yield self.load(response, "102", platforms=("people", "people"))


@pytest.mark.parametrize("kind", ["ConsentSpider", "ADDONS"])
@deferred_f_from_coro_f
async def test_itemloader_items_are_decided_by_the_one_person_they_name(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ``ItemLoader`` without ``TakeFirst`` gives ``{"subject": ["101"], "platform": ["people"]}``: the guard
    decided the person ``"['101']"`` (no one's records) and a platform that is not the page's, and denied every
    authorized person's item. A list of one value is that value; two people in one item still deny, as whose it
    is cannot be told (``subject.ambiguous-url``)."""
    app = LenientPeople()
    feed = tmp_path / "items.jsonl"
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, Loads), people_settings(tmp_path, FEEDS={
            str(feed): {"format": "jsonlines"}}), proxy=server.proxy, monkeypatch=monkeypatch)
    assert sorted(app.people_served()) == ["101", "102"], app.describe()
    kept = sorted(((item["subject"], item["platform"]) for item in result.items), key=str)
    assert kept == [(["101"], ["people"]), (["102"], ["people", "people"]), ([101], ["people"])], result.items
    exported = [json.loads(line) for line in feed.read_text().splitlines() if line.strip()]
    assert sorted(str(item["subject"]) for item in exported) == ["['101']", "['102']", "[101]"], exported
    # the value "107" as JSON writes it (quoted): a bare 107 can turn up in the random hex of a decision id
    assert not [item for item in exported if '"107"' in json.dumps(item)], exported
    items = [(e.get("subject"), e.get("verdict"), e.get("reason")) for e in result.audit if e.get("phase") == "item"]
    assert sorted(items, key=str) == sorted([
        ("101", "allow", "subject.authorized"), ("101", "allow", "subject.authorized"),
        ("102", "allow", "subject.authorized"), ("107", "deny", "subject.no-authorization"),
        (None, "deny", "subject.ambiguous-url")], key=str), items
    ambiguous = next(e for e in result.audit if e.get("phase") == "item" and e.get("reason") == "subject.ambiguous-url")
    assert "several" in json.dumps(ambiguous["evidence"]), ambiguous


class NamesInMeta:
    """``consentcrawl_subject`` as an ``ItemLoader`` gives it (``loader.get_output_value("subject")``): a list."""

    seen: list[str]

    async def start(self) -> Any:
        for path, named in (("/u/101", ["101"]), ("/u/102", ("102",)), ("/u/103", ["103", "107"]),
                            ("/u/107", ["107"]), ("/people", ["102", "107"])):
            yield scrapy.Request(f"{BASE}{path}", callback=self.page, meta={"consentcrawl_subject": named},
                                 dont_filter=True)

    def page(self, response: Any) -> None:
        self.seen.append(response.url)


@deferred_f_from_coro_f
async def test_a_list_of_one_in_consentcrawl_subject_is_that_person(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``["101"]`` in meta was read as the person ``"['101']"``: not the URL's (``subject.mismatch``), and 101's
    page was never fetched. One value is that person; several are denied (whose page it is cannot be told)."""
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", NamesInMeta), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert sorted(app.people_served()) == ["101", "102"], app.describe()
    assert not [s for s in app.served if s.kind == "listing"], app.describe()
    denies = sorted((url.rsplit("/", 1)[-1], reason) for phase, url, reason in result.denies())
    assert denies == [("103", "subject.mismatch"), ("107", "subject.no-authorization"),
                      ("people", "subject.ambiguous-url")], denies


def test_a_purge_finds_a_person_an_itemloader_feed_names_in_a_list(tmp_path: Path) -> None:
    """A feed an ``ItemLoader`` crawl wrote without provenance (``CONSENTCRAWL_PROVENANCE_FIELD`` empty): the purge
    read ``["1022"]`` as no one and kept the withdrawn person's item. One value is that person; of several, the item
    goes when any of them is selected."""
    feed = tmp_path / "a.jsonl"
    lines = [{"subject": ["1022"], "platform": ["microblog"], "name": ["Ada"]},
             {"subject": ["1023", "1022"], "name": ["Ada and Bob"]},
             {"subject": [1022], "name": ["Ada again"]},
             {"subject": ["1023"], "name": ["Bob"]}]
    feed.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    assert purge("--subject", "microblog:1022", "--audit-log", str(tmp_path / "audit.jsonl"), str(feed)) == 0
    assert [json.loads(line) for line in feed.read_text().splitlines()] == [lines[3]]


# -- a downloader middleware that downloads by itself ---------------------------------------------------------------


class FetchesItself:
    """A project's downloader middleware that downloads every page itself, as Selenium or Splash middlewares do:
    ``urllib`` through the crawl's proxy, and the page handed back from ``process_request``."""

    fetched: list[str] = []

    async def process_request(self, request: scrapy.Request) -> Any:
        if not request.url.startswith(BASE) or request.url.endswith("/robots.txt"):
            return None
        type(self).fetched.append(request.url)
        status, body = await asyncio.to_thread(_fetch, request.url)
        return HtmlResponse(request.url, status=status, body=body, request=request, encoding="utf-8")


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler())  # this test's proxy (http_proxy)
        with opener.open(url, timeout=5) as page:
            return page.status, page.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class AsksFor:
    """Asks for 101 (authorized), 102 (authorized, but the site's robots.txt disallows the page: the link check lets
    it on, the request phase denies it) and 107 (no authorization), each once."""

    seen: list[str]

    async def start(self) -> Any:
        for person in ("101", "102", "107"):
            yield scrapy.Request(f"{BASE}/u/{person}", callback=self.profile)

    def profile(self, response: Any) -> Any:
        self.seen.append(response.url)
        yield {"subject": response.url.rsplit("/", 1)[-1], "name": response.css(".name::text").get()}


@pytest.mark.parametrize("number", [543, 5, -100])
@deferred_f_from_coro_f
async def test_a_middleware_that_downloads_by_itself_meets_no_denied_request(
        number: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """After consentcrawl's request phase (543), such a middleware only meets what the request phase allowed. Numbered
    before it (5, or below zero), it fetched 107's page before anything was decided: the request phase is now put
    before every other downloader middleware, with a WARNING naming the number it was given."""
    monkeypatch.setattr(FetchesItself, "fetched", [])
    app = LenientPeople(default_robots=Robots("User-agent: *\nDisallow: /u/102\n"))
    settings = people_settings(tmp_path, DOWNLOADER_MIDDLEWARES={f"{__name__}.FetchesItself": number})
    with LocalServer(app) as server, caplog.at_level(logging.WARNING):
        result = await crawl(make_spider("ADDONS", AsksFor), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.people_served() == ["101"], app.describe()
    assert [url for url in FetchesItself.fetched if "/u/" in url] == [f"{BASE}/u/101"]
    assert [item["subject"] for item in result.items] == ["101"], (result.denies(), result.components)
    assert result.audit_for("/u/102", phase="request", verdict="deny", reason="robots.disallowed"), result.denies()
    moved = [r.getMessage() for r in caplog.records if "ConsentDownloaderMiddleware" in r.getMessage()]
    assert bool(moved) == (number < 10), moved


class LaterFetchingAddon:
    """An add-on applied after consentcrawl's that puts :class:`FetchesItself` below the request phase."""

    def update_settings(self, settings: Any) -> None:
        settings["DOWNLOADER_MIDDLEWARES"].set(f"{__name__}.FetchesItself", 1, "addon")


@deferred_f_from_coro_f
async def test_a_later_add_on_numbering_a_middleware_below_the_request_phase_stops_the_crawl(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """consentcrawl's add-on cannot renumber what an add-on applied after it adds: the crawl refuses to start, with
    one CRITICAL line naming the setting, and nothing is fetched."""
    monkeypatch.setattr(FetchesItself, "fetched", [])
    spider = make_spider("ADDONS", AsksFor)
    spider.custom_settings = {"ADDONS": {"consentcrawl.Addon": 0, f"{__name__}.LaterFetchingAddon": 500}}
    app = LenientPeople()
    with caplog.at_level(logging.INFO), LocalServer(app) as server:
        result = await crawl(spider, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.served == [], app.describe()
    assert FetchesItself.fetched == []
    assert result.stats.get("finish_reason") == "consentcrawl_config_error", result.stats.get("finish_reason")
    critical = [r.getMessage() for r in caplog.records if r.levelno >= logging.CRITICAL]
    assert len(critical) == 1 and "DOWNLOADER_MIDDLEWARES" in critical[0] and "FetchesItself (1)" in critical[0], \
        critical


@deferred_f_from_coro_f
async def test_the_next_crawl_reads_the_lines_as_it_decides(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """An ended crawl's people stay hidden until the next crawl starts: that crawl's filter reads the lines from
    then on. A crawl that denied 101 (no record then) does not hide 101 from the next one, which allows them."""
    app = LenientPeople()
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with LocalServer(app) as server:
        await crawl(make_spider("ConsentSpider", KeepsTasks), people_settings(tmp_path / "first", [record_yaml("102")]),
                    proxy=server.proxy, monkeypatch=monkeypatch)
        result = await crawl(make_spider("ConsentSpider", KeepsTasks), people_settings(tmp_path / "second"),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.people_served() == ["101"], app.describe()  # the second crawl's
    kept = result.crawler.spider.kept
    written = [f"{r.getMessage()} {r.exc_text or ''}" for r in collect_kept(kept, caplog)]
    assert [line for line in written if f"{BASE}/u/101" in line], written
    assert not [line for line in written if DENIED.search(line)], written
