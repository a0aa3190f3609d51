"""consentcrawl's log record factory in a chain with other libraries' (:mod:`consentcrawl.loghandlers`).

A log context library (as OpenTelemetry's logging instrumentation does) wraps the factory in place when it is turned
on and puts that one back when it is turned off. Turned on while a crawl runs, it wraps consentcrawl's, which then
cannot be taken out as the crawl ends. The factory that was in place before consentcrawl's (another library's,
adding a field every line of the process carries) must stay in the chain for the next crawl and after it, the next
crawl must still cover handlers added while it runs, and once nothing wraps consentcrawl's it leaves the chain.

Real crawls against the lenient people site; judged by the records the chain makes and what a late handler wrote.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.test import get_crawler

from consentcrawl.personlines import PersonLines
from consentcrawl_demo.server import LocalServer
from spiders.microblog import MicroblogSpider
from tests.conftest import consent_settings
from tests.lenient import LenientPeople, crawl, make_spider, people_settings
from tests.test_leaks_review21 import BASE, DENIED, ECHOED, Late


class ContextFields:
    """A library that adds a field to every log record while it is on: it wraps the factory in place and puts
    that one back when turned off."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.wrapped: Any = None

    def on(self) -> None:
        self.wrapped = logging.getLogRecordFactory()
        logging.setLogRecordFactory(self.make)

    def make(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.wrapped(*args, **kwargs)
        setattr(record, self.field, "set")
        return record

    def off(self) -> None:
        logging.setLogRecordFactory(self.wrapped)


#: on before any crawl, for the whole process
TENANT = ContextFields("tenant")
#: turned on by the first crawl's callback, off after the second crawl
TRACE = ContextFields("trace_id")


class TurnsTracingOn:
    """Reads 101's profile, and turns the tracing library on there: it wraps consentcrawl's factory mid-crawl."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.profile)

    def profile(self, response: Any) -> None:
        self.seen.append(response.url)
        TRACE.on()


def fields() -> set[str]:
    """The library fields a record made now carries."""
    record = logging.getLogger("somelib").makeRecord("somelib", logging.INFO, __file__, 1, "a line", (), None)
    return {field for field in ("tenant", "trace_id") if getattr(record, field, None) == "set"}


@deferred_f_from_coro_f
async def test_a_library_factory_wrapping_ours_mid_crawl_keeps_the_chain_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("first", "second", "third"):
        (tmp_path / name).mkdir()
    original = logging.getLogRecordFactory()
    TENANT.on()
    ECHOED.clear()
    try:
        app = LenientPeople()
        with LocalServer(app) as server:
            await crawl(make_spider("ADDONS", TurnsTracingOn), people_settings(tmp_path / "first"),
                        proxy=server.proxy, monkeypatch=monkeypatch)
            assert logging.getLogRecordFactory() == TRACE.make  # the first crawl ended while tracing wraps ours
            assert fields() == {"tenant", "trace_id"}
            await crawl(make_spider("ADDONS", Late), people_settings(tmp_path / "second"), proxy=server.proxy,
                        monkeypatch=monkeypatch)
        assert fields() == {"tenant", "trace_id"}  # the factory beneath ours is still called
        assert ECHOED and not [line for line in ECHOED if DENIED.search(line)], ECHOED  # the late handler covered
        assert app.people_served() == ["101", "101"], app.describe()
        forget_late_handlers()
        TRACE.off()  # puts the first crawl's factory back: on top, ours passes through, and leaves at the next end
        assert fields() == {"tenant"}
        PersonLines.install(get_crawler(MicroblogSpider, consent_settings(tmp_path / "third"))).close()
        assert logging.getLogRecordFactory() == TENANT.make, logging.getLogRecordFactory()
        TENANT.off()
        assert logging.getLogRecordFactory() is original
    finally:
        logging.setLogRecordFactory(original)
        forget_late_handlers()


def forget_late_handlers() -> None:
    for name in ("alonedb.engine", "echodb.engine", "stubborndb.engine"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
        logging.getLogger(name).setLevel(logging.NOTSET)
