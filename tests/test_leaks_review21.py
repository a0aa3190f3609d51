"""Log lines at INFO or above that still named a denied person (review21): a handler that came after the spider
opened, and a logger that does not propagate and has no handler (``logging.lastResort`` writes its line).

- a library's logger, made when the errback first uses it, given a handler of its own then (SQLAlchemy's
  ``echo=True`` on an engine a pipeline makes on its first item);
- a library's logger that does not propagate and has no handler: :data:`logging.lastResort` writes its warning to
  stderr;
- another crawl started in the same process while this one runs: its crawler replaces Scrapy's root handler (the
  log file's) with its own, on which this crawl's filter never was.

Real crawls against the lenient people site; judged by what each handler wrote, stderr and the log file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import scrapy
import scrapy.utils.log
from scrapy.settings import Settings
from scrapy.utils.defer import deferred_f_from_coro_f, deferred_to_future
from scrapy.utils.log import get_scrapy_root_handler, install_scrapy_root_handler
from scrapy.utils.test import get_crawler

from consentcrawl import loghandlers
from consentcrawl.linecheck import UNCHECKED
from consentcrawl.personlines import PersonLines
from consentcrawl_demo.server import LocalServer
from tests.conftest import consent_settings, run_crawl
from tests.lenient import HOST, LenientPeople, crawl, make_spider, people_settings
from tests.test_purge import WithdrawingSpider

BASE = f"http://{HOST}"
#: what a handler added as the errback runs wrote
ECHOED: list[str] = []
DENIED = re.compile(r"/u/107(?!\d)")


class Echo(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        ECHOED.append(f"{record.levelname} {record.name}: {record.getMessage()}")


class Stubborn(Echo):
    """A handler that takes no filter (a library's own class): the line cannot be covered on it."""

    def addFilter(self, filter: Any) -> None:
        raise TypeError("this handler takes no filter")


class Late:
    """Asks for 101 and 107 (refused); the errback logs 107's URL through loggers made then."""

    seen: list[str]

    async def start(self) -> Any:
        for person in ("101", "107"):
            yield scrapy.Request(f"{BASE}/u/{person}", callback=self.profile, errback=self.failed)

    def profile(self, response: Any) -> None:
        self.seen.append(response.url)

    def failed(self, failure: Any) -> None:
        url = failure.request.url
        alone = logging.getLogger("alonedb.engine")  # no handler, does not propagate: logging.lastResort
        alone.propagate = False
        alone.warning("gave up on %s", url)
        echo = logging.getLogger("echodb.engine")
        echo.addHandler(Echo())
        echo.setLevel(logging.INFO)  # as echo=True does
        echo.info("SELECT * FROM people WHERE url = %r", url)
        stubborn = logging.getLogger("stubborndb.engine")
        stubborn.addHandler(Stubborn())
        stubborn.setLevel(logging.INFO)
        stubborn.info("DELETE FROM people WHERE url = %r", url)
        stubborn.info("DELETE FROM posts WHERE url = %r", url)  # on every line, not the first only


@pytest.mark.parametrize("kind", ["ConsentSpider", "ADDONS"])
@deferred_f_from_coro_f
async def test_a_handler_added_later_and_logging_last_resort_write_no_denied_person(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ECHOED.clear()
    app = LenientPeople()
    try:
        with LocalServer(app) as server:
            await crawl(make_spider(kind, Late), people_settings(tmp_path), proxy=server.proxy,
                        monkeypatch=monkeypatch)
    finally:
        for name in ("alonedb.engine", "echodb.engine", "stubborndb.engine"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
            logging.getLogger(name).setLevel(logging.NOTSET)
    assert app.people_served() == ["101"], app.describe()
    stand = "<a URL consentcrawl did not allow (subject.no-authorization); at DEBUG>"
    assert ECHOED == [f"INFO echodb.engine: SELECT * FROM people WHERE url = '{stand}'",
                      # no filter on it: the line is not checked, at its level
                      f"INFO stubborndb.engine: {UNCHECKED}", f"INFO stubborndb.engine: {UNCHECKED}"], ECHOED
    stderr = [line for line in capsys.readouterr().err.splitlines() if "gave up on" in line]
    assert stderr == [f"gave up on {stand}"], stderr


class First:
    """Asks for 101; then, while it runs, another crawl starts in the same process (its crawler replaces Scrapy's
    root handler); then asks for 107 (refused), whose errback logs the URL through a library's logger made then."""

    seen: list[str]
    log_file: str

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.profile)
        await asyncio.sleep(0.2)
        other = get_crawler(Other, {"LOG_FILE": self.log_file, "LOG_LEVEL": "INFO"})  # replaces the root handler
        await deferred_to_future(other.crawl())
        yield scrapy.Request(f"{BASE}/u/107", callback=self.profile, errback=self.failed)

    def profile(self, response: Any) -> None:
        self.seen.append(response.url)

    def failed(self, failure: Any) -> None:
        logging.getLogger("seconddb.pool").warning("no row for %s", failure.request.url)


class Other(scrapy.Spider):
    """Another project's crawl, without consentcrawl: nothing to fetch."""

    name = "other"

    async def start(self) -> Any:
        return
        yield


@deferred_f_from_coro_f
async def test_another_crawl_started_in_the_same_process_does_not_take_the_filter_off_the_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "crawl.log"
    monkeypatch.setattr(scrapy.utils.log, "_scrapy_root_handler", None)  # Scrapy's, put back after the test
    monkeypatch.setattr(logging.root, "handlers", [])  # as in a script: pytest's own handlers are not there
    monkeypatch.setattr(logging.root, "level", logging.root.level)  # Scrapy's handler sets it to NOTSET
    install_scrapy_root_handler(Settings({"LOG_FILE": str(log), "LOG_LEVEL": "INFO"}))  # as CrawlerProcess does
    app = LenientPeople()
    try:
        with LocalServer(app) as server:
            result = await crawl(make_spider("ConsentSpider", First), people_settings(tmp_path, LOG_FILE=str(log),
                                                                             LOG_LEVEL="INFO"),
                        proxy=server.proxy, monkeypatch=monkeypatch, log_file=str(log))
    finally:
        handler = get_scrapy_root_handler()
        if handler is not None:
            logging.root.removeHandler(handler)
            handler.close()
    assert app.people_served() == ["101"], app.describe()
    written = log.read_text().splitlines()
    assert [line for line in written if DENIED.search(line)] == [], written
    assert [line for line in written if "[seconddb.pool] WARNING: no row for <a URL consentcrawl did not allow "
            "(subject.no-authorization); at DEBUG>" in line], written
    # the crawl's filter is off every handler it was put on, and no longer put on new ones
    lines = PersonLines.install(result.crawler)  # the crawl's own, once per crawler
    assert lines not in loghandlers._LIVE
    assert not [h for h in lines.handlers if lines.on_handlers in h.filters], lines.handlers


# -- a JSON body whose key is written twice ----------------------------------------------------------------------


class FirstKey:
    """The lenient site behind a JSON reader that takes the *first* of duplicate keys (Go's ``gjson`` and
    ``jsonparser`` do; Python's ``json`` takes the last): a JSON POST to the listing is answered for its first
    ``who`` (an API's own name for the id, which is not a parameter of the platform's profile URLs)."""

    def __init__(self, site: LenientPeople) -> None:
        self.site = site

    def __call__(self, request: Any, headers: dict[str, str]) -> Any:
        if request.method == "POST" and request.body.lstrip().startswith(b"{"):
            pairs = json.loads(request.body, object_pairs_hook=lambda pairs: pairs)
            first = next((value for key, value in pairs if key == "who"), None)
            if first is not None:
                request = dataclasses.replace(request, body=json.dumps({"id": first}).encode())
        return self.site(request, headers)


class Duplicated:
    """POSTs ``{"who": 107, "who": 101}`` to the listing: 107's id first, 101's (who allowed the crawl) last."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/people", method="POST", body=b'{"who": "107", "who": "101"}',
                             headers={"Content-Type": "application/json"}, callback=self.profile, dont_filter=True)
        yield scrapy.Request(f"{BASE}/people", method="POST", body=b'{"who": "101", "who": "101"}',
                             headers={"Content-Type": "application/json"}, callback=self.profile, dont_filter=True)

    def profile(self, response: Any) -> Any:
        self.seen.append(response.url)
        yield {"url": response.url, "name": response.css(".name::text").get()}


@deferred_f_from_coro_f
async def test_a_json_body_with_a_key_written_twice_is_read_by_each_of_its_values(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = LenientPeople()
    with LocalServer(FirstKey(app)) as server:
        result = await crawl(make_spider("ConsentSpider", Duplicated), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert app.people_served() == ["101"], app.describe()  # the control: 101 twice is 101's request
    assert not [item for item in result.items if "SECRET-NAME-107" in str(item)], result.items


# -- a body value read as JavaScript's parseInt reads it ------------------------------------------------------------

#: JavaScript's white space and line terminators, which ``parseInt`` skips before the digits (ECMA-262 §12.2, §12.3)
JS_SPACE = "\t\v\f \u00a0\ufeff\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f" \
           "\u205f\u3000\n\r\u2028\u2029"


class ParseInt:
    """The lenient site behind an API that reads a JSON body's ``who`` with ``parseInt`` (an Express handler's
    ``parseInt(req.body.who)``): a POST to the listing is answered for that id."""

    def __init__(self, site: LenientPeople) -> None:
        self.site = site

    def __call__(self, request: Any, headers: dict[str, str]) -> Any:
        if request.method == "POST" and request.body.lstrip().startswith(b"{"):
            who = json.loads(request.body).get("who")
            digits = re.match(r"[0-9]+", str(who).lstrip(JS_SPACE)) if isinstance(who, str) else None
            if digits is not None:
                request = dataclasses.replace(request, body=json.dumps({"id": digits[0]}).encode())
        return self.site(request, headers)


class ByteOrderMark:
    """POSTs ``{"who": "\\ufeff107"}`` (a byte order mark, white space to ``parseInt``) and 101's id so."""

    seen: list[str]

    async def start(self) -> Any:
        for who in ("\ufeff107", "\ufeff101"):
            yield scrapy.Request(f"{BASE}/people", method="POST", body=json.dumps({"who": who}),
                                 headers={"Content-Type": "application/json"}, callback=self.profile, dont_filter=True)

    def profile(self, response: Any) -> Any:
        self.seen.append(response.url)
        yield {"url": response.url, "name": response.css(".name::text").get()}


@deferred_f_from_coro_f
async def test_a_body_value_after_a_byte_order_mark_is_read_as_parseint_reads_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = LenientPeople()
    with LocalServer(ParseInt(app)) as server:
        result = await crawl(make_spider("ConsentSpider", ByteOrderMark), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.people_served() == ["101"], app.describe()  # the control: 101 so is 101's request
    assert not [item for item in result.items if "SECRET-NAME-107" in str(item)], result.items


# -- purge on close: the store as it is when the spider closes ----------------------------------------------------


class BreakingStore(WithdrawingSpider):
    """The authorization file is replaced by one that does not read right after the first item is exported."""

    name = "breakingstore"
    broken: list[str] = []

    def item_scraped(self, item: Any) -> None:
        if not self.broken:
            type(self).broken.append(str(item["subject"]))
            self.authorizations.write_text("records: [\n")


@deferred_f_from_coro_f
async def test_purge_on_close_that_cannot_ask_the_store_says_so(
        server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The store stopped reading during the crawl: whether the people collected withdrew cannot be told at the
    close. Asked of the store as it was at its last look, they were taken as authorized; now the close looks again,
    and each person it cannot ask about is an ERROR and ``consentcrawl/purge/failed``."""
    monkeypatch.setattr(BreakingStore, "authorizations", config_dir / "authorizations.yaml")
    monkeypatch.setattr(BreakingStore, "broken", [])
    feed = tmp_path / "out" / "items.jsonl"
    settings = consent_settings(tmp_path, FEEDS={str(feed): {"format": "jsonlines"}}, CLOSESPIDER_ITEMCOUNT=3,
                                CONSENTCRAWL_AUTHORIZATIONS=str(config_dir / "authorizations.yaml"),
                                CONSENTCRAWL_PURGE_ON_CLOSE=True)
    with caplog.at_level(logging.INFO):
        result = await run_crawl(BreakingStore, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert BreakingStore.broken and result.items, result.items
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and "purge on close" in
              r.getMessage()]
    assert [e for e in errors if "could not say whether a person withdrew" in e], errors
    assert result.stats.get("consentcrawl/purge/failed"), result.stats


class EarlyStubborn(Late):
    """:class:`Late`'s requests; the errback logs 107's URL through a library's logger whose handler, in place
    before the crawl started, takes no filter."""

    def failed(self, failure: Any) -> None:
        logging.getLogger("stubborndb.engine").info("DELETE FROM people WHERE url = %r", failure.request.url)


@pytest.mark.parametrize("kind", ["ConsentSpider", "ADDONS"])
@deferred_f_from_coro_f
async def test_a_handler_that_takes_no_filter_before_the_crawl_starts_does_not_stop_it(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A library's handler that refuses ``addFilter``, there before the crawl started: the crawl's start put the
    filter on every handler and died of the handler's ``TypeError``, a traceback instead of a crawl. Now the crawl
    runs, and each line that handler gets is written as not checked (as for a handler added mid-crawl)."""
    ECHOED.clear()
    stubborn = logging.getLogger("stubborndb.engine")
    stubborn.addHandler(Stubborn())
    stubborn.setLevel(logging.INFO)
    app = LenientPeople()
    try:
        with LocalServer(app) as server:
            await crawl(make_spider(kind, EarlyStubborn), people_settings(tmp_path), proxy=server.proxy,
                        monkeypatch=monkeypatch)
    finally:
        stubborn.handlers.clear()
        stubborn.setLevel(logging.NOTSET)
    assert app.people_served() == ["101"], app.describe()
    assert ECHOED == [f"INFO stubborndb.engine: {UNCHECKED}"], ECHOED
