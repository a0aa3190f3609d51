"""A crawl with a shared Redis closes, and its process can exit, whatever moment its Redis-following loops are
cancelled at (issue #16's intermittent hang).

The loops that follow Redis (the refusals feed, the seed reader, the Redis authorization store's change feed) are
cancelled at close. On Python 3.11 a cancellation that arrives after a Redis command has gone out, but before the
task that sent it resumed, is dropped by ``asyncio.wait_for`` (CPython gh-86296), and the loop goes on: a crawl
stuck after "Closing spider" (or, for the authorization store, after "Spider closed"). On a loaded machine that
window was hit about once in five demo crawls. :class:`HeldSends` makes it certain: each loop's Redis command sent
once the crawl is idle is held, after it has gone out, and completes in the turn before the close cancels the loop.
Before the fix this crawl failed after 90 s, stuck in ``Distributed.close > RefusalFeed.stop`` (and, with only the
store left unfixed, in the ``engine_stopped`` handler's ``FeedStore.aclose``).
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.connection import Connection
from scrapy import signals
from scrapy.exceptions import DontCloseSpider
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.test import get_crawler

from consentcrawl.audit.log import read_audit_log
from consentcrawl.consent.load import load_authorizations
from consentcrawl.consent.redisimport import import_records
from consentcrawl.terms.load import load_platforms
from consentcrawl_demo.server import LocalServer
from tests.conftest import AUTHORIZATIONS, PLATFORMS, consent_settings, crawl_within_limit
from tests.redis_server import RedisServer

#: the task that is sending a Redis command (the one a close cancels)
_sender: contextvars.ContextVar[asyncio.Task[Any] | None] = contextvars.ContextVar("sender", default=None)

#: the loops a crawl with a shared Redis, seeds from Redis and a Redis authorization store runs
LOOPS = {"RefusalFeed._run", "RedisSeeds._run", "FeedStore._run"}


class HeldSends:
    """Once armed, each command a loop sends to Redis is held, after it has gone out, until :meth:`release` names
    the loop. Released in the turn before the close cancels the loop, the cancellation lands in the window Python
    3.11 drops it in (the command done, its sender not yet resumed): the window, made certain. Commands are not
    changed or answered here: the real server answers them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = False
        self.held: dict[str, asyncio.Event] = {}  #: the loops held, by their coroutine's name
        self.released: set[str] = set()
        send_packed, send_raw = Connection.send_packed_command, Connection._send_packed_command
        hook = self

        async def send_packed_command(self: Connection, command: Any, check_health: bool = True) -> None:
            token = _sender.set(asyncio.current_task())
            try:
                await send_packed(self, command, check_health)
            finally:
                _sender.reset(token)

        async def _send_packed_command(self: Connection, command: Any) -> None:
            await send_raw(self, command)  # gone out
            sender = _sender.get()
            name = sender.get_coro().__qualname__ if sender is not None else ""
            if hook.armed and name in LOOPS and name not in hook.released:
                await hook.held.setdefault(name, asyncio.Event()).wait()

        monkeypatch.setattr(Connection, "send_packed_command", send_packed_command)
        monkeypatch.setattr(Connection, "_send_packed_command", _send_packed_command)

    def release(self, *names: str) -> None:
        """Let the named loops' held commands complete (in the next turn of the event loop)."""
        for name in names:
            self.released.add(name)
            self.held.setdefault(name, asyncio.Event()).set()


def _import_demo_authorizations(url: str) -> None:
    platforms = load_platforms(PLATFORMS)
    import_records(url, load_authorizations(AUTHORIZATIONS, platforms), platforms=platforms.platforms)


@deferred_f_from_coro_f
async def test_a_crawl_closes_when_its_redis_loops_drop_a_cancellation(
        redis_server: RedisServer, server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = redis_server.url + "?prefix=auth"
    _import_demo_authorizations(store)
    from spiders.microblog import MicroblogSpider

    settings = consent_settings(
        tmp_path, REQUEST_FINGERPRINTER_CLASS="consentcrawl.distributed.fingerprint.CanonicalRequestFingerprinter",
        SCHEDULER="consentcrawl.distributed.scheduler.ConsentRedisScheduler",
        DUPEFILTER_CLASS="consentcrawl.distributed.scheduler.ConsentRedisDupeFilter", REDIS_URL=redis_server.url,
        CONSENTCRAWL_AUTHORIZATIONS=store, CONSENTCRAWL_REDIS_START_KEY="%(name)s:start_urls",
        CONSENTCRAWL_REDIS_IDLE_CLOSE=1)
    monkeypatch.setenv("http_proxy", server.proxy)
    hold = HeldSends(monkeypatch)
    crawler = get_crawler(MicroblogSpider, settings)
    items: list[dict[str, Any]] = []

    def idle(spider: Any) -> None:
        """The crawl is done: from now on each loop's next command is held; close once every loop is held."""
        hold.armed = True
        if set(hold.held) < LOOPS:
            raise DontCloseSpider

    crawler.signals.connect(lambda item: items.append(dict(item)), signal=signals.item_scraped, weak=False)
    crawler.signals.connect(idle, signal=signals.spider_idle, weak=False)
    send = crawler.signals.send_catch_log_async

    async def send_releasing(signal: Any, **kwargs: Any) -> Any:
        """The loops a signal's handlers stop are released as the handlers start: they cancel them in the turn
        the held commands complete in."""
        if signal is signals.spider_closed:
            hold.release("RefusalFeed._run", "RedisSeeds._run")
        elif signal is signals.engine_stopped:
            hold.release("FeedStore._run")
        return await send(signal, **kwargs)

    monkeypatch.setattr(crawler.signals, "send_catch_log_async", send_releasing)
    await crawl_within_limit(crawler)

    assert set(hold.held) == LOOPS == hold.released, (hold.held, hold.released)
    assert crawler.stats is not None and crawler.stats.get_value("finish_reason") == "finished"
    left = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ in LOOPS and not t.done()]
    assert not left, left
    # the crawl itself: each profile fetched once (the server's log); nothing kept of a person who refused (a
    # page may also be denied when the store's feed lags on a loaded machine: fail closed)
    pages: dict[str, int] = {}
    for request in server.requests:
        match = re.fullmatch(r"/u/([0-9]+)/?", request.decoded_path)
        if match:
            pages[match.group(1)] = pages.get(match.group(1), 0) + 1
    assert pages and set(pages.values()) == {1}, pages
    refused = {e["subject"] for e in read_audit_log(tmp_path / "audit.jsonl") if e.get("event") == "refusal-found"}
    kept = {item["subject"] for item in items}
    assert refused and kept and kept <= set(pages) - refused
