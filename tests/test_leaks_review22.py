"""review22: what the previous reviewers' fixes left.

- the purge on close waited on the event loop for a big file store's read (minutes for a file of millions of
  records): the process stood still meanwhile;
- a crawl after another library put Python's record factory back (consentcrawl's was wrapped by it as an earlier
  crawl ended) did not put its own in place again: a handler added late wrote a denied person's URL;
- a line made in a thread as the crawl closed put the crawl's filter on its handler after the close took it off:
  it stayed there;
- a crawl whose start fails (a project's component raises as the engine is built): no ``spider_closed`` comes, and
  the log record factory the crawl put in place stayed, with the dead crawl's filter and its crawler, for the rest
  of the process (and its filter on the root logger's handlers, holding the crawler).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import scrapy
import yaml
from scrapy import signals
from scrapy.utils.asyncio import call_later
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.test import get_crawler

from consentcrawl import loghandlers
from consentcrawl.consent.load import FileStore
from consentcrawl.personlines import PersonLines
from consentcrawl_demo.server import LocalServer
from spiders.microblog import MicroblogSpider
from tests.conftest import AUTHORIZATIONS, consent_settings, run_crawl
from tests.lenient import LenientPeople, crawl, make_spider, people_settings
from tests.test_leaks_review21 import BASE, DENIED, ECHOED, Late


class Broken:
    """A project's downloader middleware that cannot be built (its own configuration is wrong)."""

    @classmethod
    def from_crawler(cls, crawler: Any) -> Broken:
        raise RuntimeError("this middleware's own setting is wrong")


@deferred_f_from_coro_f
async def test_a_crawl_whose_start_fails_leaves_no_record_factory_and_no_filter_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = logging.getLogRecordFactory()
    settings = consent_settings(tmp_path)
    settings["DOWNLOADER_MIDDLEWARES"] = {**settings.get("DOWNLOADER_MIDDLEWARES", {}), f"{__name__}.Broken": 543}
    crawler = get_crawler(MicroblogSpider, settings)
    with pytest.raises(RuntimeError, match="own setting is wrong"):
        await crawler.crawl_async()
    assert logging.getLogRecordFactory() is before
    assert loghandlers._LIVE == []
    lines = PersonLines.install(crawler)  # the failed crawl's own
    assert not [h for h in logging.root.handlers if lines.on_handlers in h.filters]


# -- purge on close: a big file store read again as the spider closes ----------------------------------------------

#: people beyond the microblog's own in the big file (its re-read takes about a second)
FILLER = 150_000


class BigStoreCloses(MicroblogSpider):
    """Writes its big authorization file again as the spider closes: the first person collected withdrew, and the
    first filler line is gone (not an append: the file is read again, in a thread of its own). Counts how late the event
    loop ran a callback asked for every 20 ms from the spider's opening (the store is read before) to the end."""

    name = "bigstorecloses"
    authorizations: Path = Path()
    late: list[float] = []
    collected: list[str] = []

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Any:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(spider.start_ticking, signal=signals.spider_opened)
        crawler.signals.connect(spider.stop_ticking, signal=signals.engine_stopped)
        return spider

    def start_ticking(self) -> None:
        self.ticking = True
        self.tick(time.monotonic())

    def tick(self, asked: float) -> None:
        type(self).late.append(time.monotonic() - asked - 0.02)
        if self.ticking:
            call_later(0.02, self.tick, time.monotonic())

    def stop_ticking(self) -> None:
        self.ticking = False

    def item_scraped(self, item: Any) -> None:
        type(self).collected.append(str(item["subject"]))


class RewriteOnClose:
    """:class:`BigStoreCloses`'s rewrite, as the spider closes: an extension built before the purge's, so that its
    ``spider_closed`` handler runs first. The new file (the old one without its first filler line) is written before
    the crawl (:func:`_prepare_rewrite`): what the close adds is the withdrawal's line and the rename, so that the
    event loop's pauses measured are the close's own, not this test's copying of a big file."""

    @classmethod
    def from_crawler(cls, crawler: Any) -> RewriteOnClose:
        ext = cls()
        crawler.signals.connect(ext.closing, signal=signals.spider_closed)
        return ext

    def closing(self, spider: Any = None, reason: str = "") -> None:
        withdrawn = json.dumps({"platform": "microblog", "subject": BigStoreCloses.collected[0],
                                "purposes": ["research"], "granted_at": "2026-01-02T00:00:00Z",
                                "revoked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)),
                                "evidence": "withdrawn by e-mail"})
        fresh = BigStoreCloses.authorizations.with_suffix(".new")
        with fresh.open("a", encoding="utf-8") as out:
            out.write(withdrawn + "\n")
        os.replace(fresh, BigStoreCloses.authorizations)


def _prepare_rewrite(big: Path) -> None:
    """The file :class:`RewriteOnClose` renames over ``big`` as the spider closes, less its withdrawal's line: a
    filler line gone (not an append: the whole file is read again, in a thread of its own)."""
    old = big.read_text(encoding="utf-8")
    big.with_suffix(".new").write_text(old[old.index("\n") + 1:], encoding="utf-8")


@deferred_f_from_coro_f
async def test_purge_on_close_reads_a_big_file_store_again_without_stopping_the_event_loop(
        server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The close looks at the file store again (``refresh_now``), and a big file that changed is read again in a
    thread of its own. The close waited for that thread on the event loop: nothing else in the process (another
    crawl, Scrapy's own timers) ran for the whole read. It is waited for in a thread now, and the look itself (which
    hashes the changed file whole) is made there too; the withdrawal the read brings is still purged."""
    filler = [json.dumps({"platform": "microblog", "subject": str(900_000 + n), "purposes": ["research"],
                          "granted_at": "2026-01-02T00:00:00Z", "evidence": "form"}) for n in range(FILLER)]
    records = filler + [json.dumps({k: v.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(v, "strftime") else v
                           for k, v in r.items() if v is not None})
               for r in yaml.safe_load(AUTHORIZATIONS.read_text(encoding="utf-8"))["authorizations"]]
    big = tmp_path / "authorizations.jsonl"
    big.write_text("\n".join(records) + "\n", encoding="utf-8")
    _prepare_rewrite(big)
    monkeypatch.setattr(BigStoreCloses, "authorizations", big)
    monkeypatch.setattr(BigStoreCloses, "late", [])
    monkeypatch.setattr(BigStoreCloses, "collected", [])
    looked_in: list[int] = []  # the threads the close looked at the store again in (it hashes the changed file whole)
    refresh_now = FileStore.refresh_now

    def spied(store: FileStore) -> None:
        looked_in.append(threading.get_ident())
        refresh_now(store)

    monkeypatch.setattr(FileStore, "refresh_now", spied)
    feed = tmp_path / "out" / "items.jsonl"
    settings = consent_settings(tmp_path, FEEDS={str(feed): {"format": "jsonlines"}}, CLOSESPIDER_ITEMCOUNT=3,
                                CONSENTCRAWL_AUTHORIZATIONS=str(big), CONSENTCRAWL_PURGE_ON_CLOSE=True,
                                EXTENSIONS={f"{__name__}.RewriteOnClose": -1})
    # what is judged is the close's wait, not a full collection of everything a long-lived test worker holds
    # (the read's 150,000 records set one off: 1.4-1.6 s pauses in whole-suite runs)
    gc.freeze()
    try:
        result = await run_crawl(BigStoreCloses, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    finally:
        gc.unfreeze()
    first = BigStoreCloses.collected[0]
    exported = [json.loads(line)["subject"] for line in feed.read_text().splitlines() if line.strip()]
    assert exported and first not in exported, (first, exported, result.stats)
    assert max(BigStoreCloses.late) < 0.5, f"the event loop stood still {max(BigStoreCloses.late):.2f} s"
    assert looked_in and threading.get_ident() not in looked_in, "the close looked at the store on the event loop"


# -- the log record factory after another library's ----------------------------------------------------------------


@deferred_f_from_coro_f
async def test_a_crawl_after_another_library_put_the_default_record_factory_back_still_covers_late_handlers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """An earlier crawl in the process ended while a library's record factory wrapped consentcrawl's (a log context
    library, on for a block); the library then put Python's default factory back. The next crawl found consentcrawl's
    factory marked as installed and did not put it in place again: a handler added while it ran (a library's echo
    turned on late) wrote a denied person's URL."""
    original = logging.getLogRecordFactory()
    earlier = PersonLines.install(get_crawler(MicroblogSpider, consent_settings(tmp_path / "earlier")))
    ours = logging.getLogRecordFactory()
    logging.setLogRecordFactory(lambda *args, **kwargs: ours(*args, **kwargs))  # the library's, on a while
    earlier.close()
    logging.setLogRecordFactory(logging.LogRecord)  # the library's teardown: Python's default back
    try:
        ECHOED.clear()
        app = LenientPeople()
        try:
            with LocalServer(app) as server:
                await crawl(make_spider("ADDONS", Late), people_settings(tmp_path), proxy=server.proxy,
                            monkeypatch=monkeypatch)
        finally:
            for name in ("alonedb.engine", "echodb.engine", "stubborndb.engine"):
                logging.getLogger(name).handlers.clear()
                logging.getLogger(name).propagate = True
                logging.getLogger(name).setLevel(logging.NOTSET)
    finally:
        logging.setLogRecordFactory(original)
    assert app.people_served() == ["101"], app.describe()
    assert ECHOED and not [line for line in ECHOED if DENIED.search(line)], ECHOED


# -- a thread's line as the crawl closes ---------------------------------------------------------------------------

#: set once the crawl's spider_closed handlers ran (the filter taken off)
CLOSED = threading.Event()


class Gate(logging.Handler):
    """A library's handler made in a thread of its own, whose ``addFilter`` is slow (a lock of its own): the filter
    goes on it only after the crawl's close ran."""

    def emit(self, record: logging.LogRecord) -> None:
        pass

    def addFilter(self, filter: Any) -> None:
        CLOSED.wait(3)
        super().addFilter(filter)


class ThreadLogs:
    """Asks for 101; its callback starts a thread that logs through a logger with a :class:`Gate` handler."""

    seen: list[str]
    thread: threading.Thread | None = None

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.profile)

    def profile(self, response: Any) -> None:
        self.seen.append(response.url)
        logger = logging.getLogger("gatedb.engine")
        logger.addHandler(Gate())
        logger.setLevel(logging.INFO)
        type(self).thread = threading.Thread(target=logger.info, args=("a pool opened",))
        type(self).thread.start()


class AfterClose:
    """Sets :data:`CLOSED` as the spider closes (after the crawl's filter came off), and waits for the thread."""

    @classmethod
    def from_crawler(cls, crawler: Any) -> AfterClose:
        ext = cls()
        crawler.signals.connect(ext.closed, signal=signals.spider_closed)
        return ext

    def closed(self, spider: Any = None, reason: str = "") -> None:
        CLOSED.set()
        if ThreadLogs.thread is not None:
            ThreadLogs.thread.join(3)


@deferred_f_from_coro_f
async def test_a_line_made_in_a_thread_as_the_crawl_closes_leaves_no_filter_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread's line put the crawl's filter on its handler while the crawl closed: the close had taken the filter
    off the handlers it knew, and the filter stayed on this one for the rest of the process (every later line
    through it judged by a crawl that had ended)."""
    CLOSED.clear()
    monkeypatch.setattr(ThreadLogs, "thread", None)
    app = LenientPeople()
    gated = logging.getLogger("gatedb.engine")
    try:
        with LocalServer(app) as server:
            await crawl(make_spider("ADDONS", ThreadLogs), people_settings(
                tmp_path, EXTENSIONS={f"{__name__}.AfterClose": 900}), proxy=server.proxy, monkeypatch=monkeypatch)
        assert app.people_served() == ["101"], app.describe()
        filters = [f for handler in gated.handlers for f in handler.filters]
    finally:
        gated.handlers.clear()
        gated.setLevel(logging.NOTSET)
    assert filters == [], filters
