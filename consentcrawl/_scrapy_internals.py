"""Every place consentcrawl reaches into Scrapy internals, because Scrapy offers no public way; one module, tested.

- :func:`apply_crawl_delay`: a robots.txt ``Crawl-delay`` spaces requests through the download slot. Scrapy has
  no public API to set one slot's delay from a middleware (``DOWNLOAD_SLOTS`` is read once at start).
- :func:`fail_crawl`: ``scrapy crawl`` exits non-zero after a crawl that refused to start for its configuration.
- :func:`fail_request`: a request dropped before the downloader (the link check, ``request_scheduled``) reaches its
  errback the way Scrapy hands it an ``IgnoreRequest`` raised by a downloader middleware: through the scraper.
- :func:`awaited_by_caller`: ``scrapy shell``'s ``fetch`` waits on a request through its callbacks.
- :func:`wake_engine`: the engine asks for its next requests now, not at its next 5-second heartbeat.
- :func:`download_past_slots`: a side request or a person's linked actor through the downloader middlewares to a
  download handler, past the slots (``Downloader.middleware``; the engine's public download goes into them);
  :func:`reserve_slot_delay`: its place in its slot's delay all the same (``_get_slot``, ``Slot.lastseen``).
- :func:`cached_instead`: the cached page ``HttpCacheMiddleware`` may hand on in place of a response (a
  ``304 Not Modified``, a server error).
- :func:`no_silent_resend`: the HTTP/1.1 handler's connection pool (and the aiohttp handler's session) does not
  send a request again by itself.
- :func:`guard_parse_command`: what ``scrapy parse`` prints of a callback's output has been through the guard;
  :func:`parse_command_url` reads its ``No response downloaded for: <url>`` line.
- :func:`wrap_scraper`: what a project's errback or callback raised for a refused request reaches
  ``spider_error`` handlers sanitized (Scrapy builds the failure it sends in ``Scraper``, with no hook before the
  signal); the guard learns which response an item handed to the pipelines came from (Scrapy passes it to the
  item signals, not to the pipelines).
- :func:`wrap_engine_close`: a crawl's close reason names no URL it did not allow, however given (Scrapy logs,
  signals and keeps it as ``finish_reason`` inside ``close_spider_async``).
- :func:`itemproc_runs_async`: which of its processor's methods the scraper hands items to (a private choice).
- :func:`item_pipelines`: the crawl's own item pipeline instances (the guard decides a media pipeline's request
  before it looks in its store, mediaurls.py; the purge asks an ``ImagesPipeline`` how it named thumbnails).
- :func:`guard_command_crawl`: ``scrapy fetch``, ``view`` and ``shell`` crawl with a spider class chosen inside
  Scrapy's command; :class:`ShownPage`: the page ``view`` opens goes to the command's ``show`` (Scrapy hands it to
  the command's private ``_print_response``).
- :func:`guard_open_in_browser`: Scrapy's ``open_in_browser``, called from a spider's callback, opens nothing
  (its private ``_openfunc`` default is the one place every caller passes through).
- :func:`on_failed_engine`: a crawl whose engine cannot be built (a project component raising as Scrapy builds
  it) lets its locks and stores go at once (Scrapy closes nothing then, and keeps the crawler reachable).
- :func:`start_failed`: whether a crawler's start raised before it had an engine (its private ``_started``).
- :func:`media_refused`: a media file consentcrawl refuses fails as Scrapy fails a media request it filtered out
  (logged at DEBUG, left out of the ERROR line that prints the item).
- :class:`ConsentCloseSpider`: ``CLOSESPIDER_PAGECOUNT`` counts the spider's pages, not consentcrawl's side requests
  (CloseSpider counts every ``response_received``, and offers no way to leave one out).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from scrapy.extensions.closespider import CloseSpider
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger("consentcrawl")


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


def fail_crawl(crawler: Crawler) -> None:
    """Make ``scrapy crawl`` exit non-zero for a crawl that refused to start (a configuration error).

    The crawl is closed cleanly (one CRITICAL line, no traceback), which Scrapy counts as a success. Its crawl
    command exits 1 when the crawler has no spider after the crawl (``CrawlerProcess.bootstrap_failed``), so the
    spider reference is dropped once the engine has stopped and nothing needs it any more.
    """
    crawler.spider = None  # type: ignore[assignment]


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


#: the attribute that marks a ``scrapy parse`` command whose callbacks' output is guarded already
_PARSE_GUARDED = "_consentcrawl_guarded"


def guard_parse_command(request: Request, guard: Callable[[Response, list[Any]], Awaitable[list[Any]]]) -> bool:
    """If ``request`` is the one ``scrapy parse`` starts with, pass what its callbacks yield through ``guard``;
    whether it is (and was not guarded yet).

    ``scrapy parse`` calls the spider's callback itself, inside a wrapper it sets as the request's callback, and
    keeps the callback's items and requests to print them (``# Scraped Items``, ``# Requests``): the spider
    middlewares see only what the wrapper hands back, and the item pipelines never see the items it prints
    (``--pipelines`` runs them, then prints every item all the same). Its command object keeps the wrapper's
    state; its ``run_callback`` is the one place every callback's output passes, so it is wrapped there, once.
    Scrapy has no public hook for it: the command is found in the wrapper's closure (``self``).
    """
    callback = request.callback
    code = getattr(callback, "__code__", None)
    # by the module the function was written in: functools.update_wrapper gives it the spider method's names
    if code is None or code.co_name != "callback" or getattr(callback, "__globals__", {}).get("__name__") != \
            PARSE_LOGGER:
        return False
    cells = dict(zip(code.co_freevars, getattr(callback, "__closure__", None) or (), strict=False))
    command = cells["self"].cell_contents if "self" in cells else None
    if command is None or getattr(command, _PARSE_GUARDED, False) or not hasattr(command, "run_callback"):
        return False
    run_callback = command.run_callback

    def guarded(response: Response, callback: Any, cb_kwargs: dict[str, Any] | None = None) -> Deferred[Any]:
        from scrapy.utils.defer import deferred_from_coro

        output = run_callback(response, callback, cb_kwargs)
        return output.addCallback(lambda result: deferred_from_coro(guard(response, list(result or ()))))

    command.run_callback = guarded
    setattr(command, _PARSE_GUARDED, True)
    return True


#: the module of Scrapy's parse command, and its logger
PARSE_LOGGER = "scrapy.commands.parse"
#: what it logs at ERROR, after the crawl, when the URL it was given downloaded nothing
_PARSE_NO_RESPONSE = "No response downloaded for: %(url)s"


def parse_command_url(record: logging.LogRecord) -> str | None:
    """The URL of ``scrapy parse``'s ``No response downloaded for: <url>`` line; None for any other line."""
    if record.name != PARSE_LOGGER or record.msg != _PARSE_NO_RESPONSE or not isinstance(record.args, dict):
        return None
    url = record.args.get("url")
    return url if isinstance(url, str) else None


def wrap_scraper(crawler: Crawler, name: str,
                 wrap: Callable[[Crawler, Callable[..., Any]], Callable[..., Any]]) -> bool:
    """Put ``wrap(crawler, method)`` in place of the crawl's ``Scraper.<name>`` (``method``): ``handle_spider_error``,
    through which Scrapy logs every error a callback or errback raises, sends ``spider_error`` and counts it;
    ``start_itemproc_async``, through which it hands each item to the item pipelines with the response it came
    from. Scrapy looks each up on the scraper every time, so an attribute of the instance replaces it. Once per
    scraper and name; returns whether it is in place (False: not crawling, or no such method)."""
    try:
        scraper = getattr(crawler.engine, "scraper", None)
    except RuntimeError:  # no engine yet: not crawling
        return False
    method = getattr(scraper, name, None)
    if method is None:
        return False
    if not getattr(method, _WRAPPED, False):
        wrapped = wrap(crawler, method)
        setattr(wrapped, _WRAPPED, True)
        setattr(scraper, name, wrapped)
    return True


_WRAPPED = "_consentcrawl_wrapped"


def wrap_engine_close(crawler: Crawler, clean: Callable[[Any], Any]) -> bool:
    """Pass every reason the crawl closes with through ``clean`` first. ``ExecutionEngine.close_spider_async`` is
    where each way of closing gives its reason (a ``CloseSpider`` raised by a callback, by a ``spider_idle`` or
    ``spider_opened`` handler, by ``start()``; an extension's own call), and Scrapy then logs it at INFO, sends it to
    ``spider_closed`` handlers and keeps it as the ``finish_reason`` stat, with no hook in between. The engine looks
    the method up on itself each time (as the scraper and the crawler do), so an attribute of the instance replaces
    it. Once per engine; returns whether it is in place (False: not crawling, or no such method)."""
    try:
        engine = crawler.engine
    except RuntimeError:  # no engine yet: not crawling
        return False
    close = getattr(engine, "close_spider_async", None)
    if close is None:
        return False
    if not getattr(close, _WRAPPED, False):
        async def close_spider_async(*, reason: Any = "cancelled") -> None:
            await close(reason=clean(reason))

        setattr(close_spider_async, _WRAPPED, True)
        engine.close_spider_async = close_spider_async  # type: ignore[method-assign]
    return True


def item_pipelines(crawler: Crawler) -> list[Any]:
    """The crawl's item pipeline instances, in their order; empty when there is no engine (not crawling)."""
    try:
        itemproc = getattr(getattr(crawler.engine, "scraper", None), "itemproc", None)
    except RuntimeError:  # no engine yet
        return []
    return list(getattr(itemproc, "middlewares", ()) or ())


def itemproc_runs_async(crawler: Crawler) -> bool:
    """Whether the scraper hands items to its processor's ``process_item_async`` (else its ``process_item``): Scrapy
    chooses once, by which of the two a subclass overrides (``Scraper._itemproc_has_async``); the start-up probe
    must go the way items go."""
    scraper = getattr(crawler.engine, "scraper", None)
    chosen = getattr(scraper, "_itemproc_has_async", None)
    if isinstance(chosen, dict) and "process_item" in chosen:
        return bool(chosen["process_item"])
    return hasattr(getattr(scraper, "itemproc", None), "process_item_async")


class ConsentCloseSpider(CloseSpider):
    """Scrapy's CloseSpider, whose page counts (``CLOSESPIDER_PAGECOUNT``, ``CLOSESPIDER_PAGECOUNT_NO_ITEM``) are the
    spider's pages. consentcrawl's own side requests (robots.txt, a site's tdmrep.json, ai.txt, a licence) go past
    the engine (sidedownload.py) and send no ``response_received``, save where the add-on's handler was taken off:
    the spider never asked for them, and counted they stopped a crawl set to 3 pages after its first.

    Internals: ``page_count`` is the handler ``CloseSpider.__init__`` connects to ``response_received`` (a bound
    method, so this override is what gets connected). The add-on puts this class in CloseSpider's place in
    ``EXTENSIONS``. Side requests are told by identity (``ConsentRuntime.is_own``), never by a meta flag."""

    def page_count(self, response: Response, request: Request, spider: Any) -> None:
        from .runtime import get_runtime

        runtime = get_runtime(self.crawler)
        if runtime is not None and runtime.is_own(request):
            return
        super().page_count(response, request, spider)


class ShownPage:
    """A mixin for Scrapy's ``view`` command: the downloaded page goes to the command's :meth:`show`, which opens it.
    Scrapy's ``fetch``/``view`` commands hand the response to their private ``_print_response``, with no public
    hook between the download and the browser."""

    def show(self, response: Response, opts: Any) -> None:
        super()._print_response(response, opts)  # type: ignore[misc]

    def _print_response(self, response: Response, opts: Any) -> None:
        self.show(response, opts)


def guard_open_in_browser(opener: Callable[[str], Any]) -> None:
    """Scrapy's ``open_in_browser`` (``scrapy.utils.response``), called without an opener, opens the file it wrote
    through ``opener`` instead of ``webbrowser.open``. A spider's module holds the function itself (imported before
    any add-on runs), so its default argument is the one thing every caller shares: the private ``_openfunc``'s
    default is replaced, for the whole process (the function offers no other hook). Once set, it stays set."""
    from scrapy.utils import response as scrapy_response

    function = scrapy_response.open_in_browser
    if function.__defaults__ != (opener,):
        function.__defaults__ = (opener,)


def guard_command_crawl(process: Any, wrap: Callable[[type], type]) -> None:
    """Scrapy's ``fetch``, ``view`` and ``shell`` commands choose the spider class inside their ``run`` (the project
    spider that claims the URL's domain, ``--spider NAME``, else ``DefaultSpider``) and build its crawler with no
    hook in between (``fetch`` through ``crawler_process.crawl``, ``shell`` through the private
    ``_create_crawler``, which ``crawl`` calls too): this process's ``_create_crawler`` (this instance only) builds
    the crawler of ``wrap(spidercls)`` instead."""
    create = process._create_crawler

    def create_wrapped(spidercls: Any) -> Any:
        if isinstance(spidercls, str):
            spidercls = process.spider_loader.load(spidercls)
        return create(wrap(spidercls))

    process._create_crawler = create_wrapped


def media_refused(reason: str) -> Exception:
    """The error a media pipeline's request or result fails with when consentcrawl refuses it: Scrapy's own error
    for a media request filtered out instead of downloaded (``_MediaRequestFiltered``, as for an offsite one), which
    ``MediaPipeline`` logs at DEBUG without a traceback and leaves out of ``item_completed``'s ERROR line (that line
    prints the whole item). A Scrapy without it gets a ``FileException``, which is logged as an error."""
    from scrapy.pipelines import media

    error = getattr(media, "_MediaRequestFiltered", media.FileException)
    return error(f"consentcrawl: {reason}")


def on_failed_engine(crawler: Crawler, failed: Callable[[], Any]) -> None:
    """Call ``failed`` when building the crawl's engine raises (then re-raise). Scrapy builds the downloader, its
    middlewares and handlers, the scraper and the item pipelines inside ``Crawler._create_engine``, and a
    ``Crawler.crawl`` that raises there closes nothing (no signal, no engine to close). The crawler looks the
    method up on itself, so an attribute of the instance replaces it; a Scrapy without it leaves ``failed`` to
    the add-on's other check."""
    create = getattr(crawler, "_create_engine", None)
    if create is None or getattr(create, _WRAPPED, False):
        return

    def create_engine() -> Any:
        try:
            return create()
        except BaseException:
            failed()
            raise

    setattr(create_engine, _WRAPPED, True)
    crawler._create_engine = create_engine  # type: ignore[method-assign]


def start_failed(crawler: Crawler) -> bool:
    """Whether the crawler's start raised before it had an engine: applying its settings raised (they are frozen
    only once every add-on and extension is built), or ``crawl`` raised after that (Scrapy marks a crawler started,
    ``_started``, as ``crawl`` begins, and turns ``crawling`` off when it raises). A crawler whose settings were
    applied but that was not asked to crawl yet (a test's, a tool's) has not failed."""
    if crawler.crawling or getattr(crawler, "_engine", None) is not None:
        return False
    return not crawler.settings.frozen or bool(getattr(crawler, "_started", True))
