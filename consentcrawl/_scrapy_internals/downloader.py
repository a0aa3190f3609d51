"""Scrapy internals of the downloader and the engine's schedule: a slot's delay, a request sent past the slots,
an errback run for a request dropped before the downloader, the engine woken, a handler's silent resend off, the
cached page ``HttpCacheMiddleware`` hands on instead (see the package doc)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler


def apply_crawl_delay(crawler: Crawler, request: Request, delay: float) -> None:
    """Make Scrapy's download slot for this request wait ``delay`` seconds between requests.

    The slot's delay only ever grows, its jitter is switched off (a random delay could fall short of what the
    site asked), and AutoThrottle is told not to lower it for this request.
    """
    engine = crawler.engine
    downloader = getattr(engine, "downloader", None)
    if downloader is None:
        return
    key = downloader.get_slot_key(request)
    slot = downloader.slots.get(key)
    if slot is None:
        settings = downloader.per_slot_settings.setdefault(key, {})
        settings["delay"] = max(float(settings.get("delay", 0)), delay)
        settings["jitter"] = 0
    else:
        if slot.delay < delay:
            slot.delay = delay
        slot.jitter = 0
    request.meta["autothrottle_dont_adjust_delay"] = True


def fail_request(crawler: Crawler, request: Request, error: Exception) -> bool:
    """Call the errback of a request dropped before the downloader with ``error``, as Scrapy would have.

    Scrapy calls an errback for an ``IgnoreRequest`` raised by a downloader middleware (the engine hands the failure
    to ``Scraper.enqueue_scrape``), not for a request dropped at ``request_scheduled`` or by a spider middleware. The
    failure goes the same way here, so the errback runs as for any download error and its output is handled as
    any errback's: its requests are scheduled (and checked at ``request_scheduled``), its items go through the item
    pipelines (the guard first). The scraper's queue keeps the spider open until the errback has run.

    Returns whether the errback was handed the failure (False: the request has none, or the spider is closed).
    """
    scraper = getattr(crawler.engine, "scraper", None)
    if request.errback is None or scraper is None or getattr(scraper, "slot", None) is None:
        return False
    done = scraper.enqueue_scrape(Failure(error), request)
    # the engine looks for its next request (or notices it is idle) when a download ends, not when an errback
    # run from here does: without a nudge, a crawl whose last requests were denied ends at the next heartbeat
    done.addBoth(_wake_then, crawler)
    return True


def _wake_then(result: Any, crawler: Crawler) -> Any:
    wake_engine(crawler)
    return result


def awaited_by_caller(request: Request) -> bool:
    """Whether code outside the spider waits on this request: ``scrapy shell``'s ``fetch`` (and anything else built
    on ``scrapy.shell._request_deferred``) replaces the callbacks with a ``Deferred``'s."""
    return isinstance(getattr(request.errback, "__self__", None), Deferred)


def wake_engine(crawler: Crawler) -> None:
    """Ask the engine for its next requests now, rather than at its next 5-second heartbeat: a distributed worker
    whose shared queue was filled by another worker (or whose seed key got a URL) starts on it at once, and a crawl
    whose last requests were denied (their errbacks run by :func:`fail_request`) closes at once. Scrapy has no
    public call for it (``ExecutionEngine._slot.nextcall``)."""
    engine = crawler.engine
    slot = getattr(engine, "_slot", None)
    nextcall = getattr(slot, "nextcall", None)
    if nextcall is not None:
        nextcall.schedule()


async def download_past_slots(crawler: Crawler, download: Callable[[Request], Any], request: Request) -> Any:
    """``request`` through the crawl's downloader middlewares to ``download`` (a download handler's
    ``download_request``), past the download slots: what the middlewares answer (a response or a request)."""
    assert crawler.engine is not None
    return await crawler.engine.downloader.middleware.download_async(download, request)


def reserve_slot_delay(crawler: Crawler, request: Request) -> float:
    """Seconds ``request`` (sent past the queues) waits for its slot's delay since the slot's last send; the slot's
    next send waits the delay after it (Scrapy's queue reads ``Slot.lastseen`` again when its timer fires)."""
    get_slot = getattr(getattr(crawler.engine, "downloader", None), "_get_slot", None)
    slot = get_slot(request)[1] if get_slot is not None else None  # made if new as Scrapy makes it (DOWNLOAD_SLOTS)
    if slot is None or not slot.delay:
        return 0.0
    now = time.monotonic()  # Scrapy's clock for ``lastseen``
    slot.lastseen = at = max(now, slot.lastseen + slot.download_delay())
    return at - now


def cached_instead(request: Request, response: Any) -> Any:
    """The cached page ``HttpCacheMiddleware`` may hand the spider in place of ``response``, or None.

    While it revalidates a stale cached page (``RFC2616Policy``) it keeps that page in ``meta["cached_response"]``
    and returns it instead of the network's answer when its policy says the page is still good: a ``304 Not
    Modified``, or a server error (``5xx``) without ``must-revalidate``; a custom policy may say so for others."""
    from scrapy.http import Response

    cached = request.meta.get("cached_response")
    return cached if isinstance(cached, Response) and cached is not response else None


def no_silent_resend(handler: Any) -> None:
    """Stop the connection pool of Scrapy's HTTP/1.1 handler from resending a request on its own.

    Twisted's ``HTTPConnectionPool`` resends an idempotent request once, on a new connection, when a kept-alive
    connection it reused fails before an answer. That second send happens after the send-time decision, at a later
    time, with no decision and no audit line of its own (a withdrawal in between would not stop it). Without it the
    failure reaches Scrapy's ``RetryMiddleware`` (``ResponseNeverReceived`` is among the errors it retries), whose
    retry goes through the scheduler and is decided again like any request. Scrapy builds the pool in the
    handler's constructor (``_pool``) and offers no setting for this; a handler with no such pool is left as it is.

    Scrapy's aiohttp handler (``_session``) has the same resend: aiohttp's ``ClientSession`` sends an idempotent
    request again when a reused connection fails before an answer (RFC 9112 section 9.3.1.1), unless its
    ``_retry_connection`` is off, which aiohttp has no public argument for (it is one of the session's declared
    attributes, set without a warning). Its failure then reaches ``RetryMiddleware`` as the Twisted one does.
    """
    from twisted.web.client import HTTPConnectionPool

    if isinstance(pool := getattr(handler, "_pool", None), HTTPConnectionPool):
        pool.retryAutomatically = False
    session = getattr(handler, "_session", None)
    if session is not None and hasattr(session, "_retry_connection"):
        session._retry_connection = False
