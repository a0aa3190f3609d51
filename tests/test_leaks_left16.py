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
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f
from twisted.internet import defer
from twisted.python import log as twisted_log

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, crawl, make_spider, people_settings

BASE = f"http://{HOST}"
#: 107 (no authorization) named anywhere in a line
DENIED = re.compile(r"(?<!\d)107(?!\d)")


def _fails(url: str) -> None:
    raise ValueError(f"could not store {url}")


class KeepsTasks:
    """Asks for 101 and 107 (refused); the errback starts a task and makes a Deferred, each failing with the URL in
    its message, and keeps them (never awaited): their errors are written when they are collected."""

    seen: list[str]
    kept: list[Any]

    async def start(self) -> Any:
        self.kept = []
        for person in ("101", "107"):
            yield scrapy.Request(f"{BASE}/u/{person}", callback=self.profile, errback=self.failed)

    def profile(self, response: Any) -> None:
        self.seen.append(response.url)

    def failed(self, failure: Any) -> None:
        url = failure.request.url

        async def store() -> None:
            _fails(url)

        self.kept.append(asyncio.ensure_future(store()))
        self.kept.append(defer.maybeDeferred(_fails, url))


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
    assert len(kept) == 2
    caplog.clear()
    observer = twisted_log.PythonLoggingObserver("twisted")  # as ``scrapy crawl`` routes Twisted's lines
    observer.start()
    try:
        with caplog.at_level(logging.DEBUG):
            kept.clear()  # the spider lets them go (or is itself collected) after the crawl
            gc.collect()
    finally:
        observer.stop()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    written = [f"{r.name}: {r.getMessage()} {r.exc_text or ''}" for r in errors]
    # both were written (asyncio's and Twisted's), at ERROR, and name no one
    assert any("never retrieved" in line for line in written), written
    assert any("Unhandled error" in line for line in written), written
    assert not [line for line in written if DENIED.search(line)], written
    assert not [r for r in errors if r.exc_info], written
    # the lines as written are at DEBUG
    assert [r for r in caplog.records if r.levelno == logging.DEBUG and DENIED.search(r.getMessage() + str(
        r.exc_info and r.exc_info[1]))]
