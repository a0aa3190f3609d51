"""The Scrapy side of a decision: drop before the fetch, check the response, drop what a denied page produced.

- :class:`ConsentSpiderMiddleware` makes the link check (terms and authorizations) for each link a callback
  yields, drops everything produced from a denied response, and stamps items with provenance.
- :class:`ConsentScheduleGuard` makes that check, at scheduling time, for every other request (start requests,
  redirects, requests from extensions), so a denied request never reaches the scheduler or a shared queue. The
  ``request_scheduled`` signal cannot wait: a request whose decision needs a store lookup is held back, decided
  asynchronously, and scheduled again once allowed.
- :class:`ConsentDownloaderMiddleware` (request phase, the first downloader middleware) adds robots.txt and drops
  what it denies before any other middleware (one that downloads by itself) or the request's download slot.
- :class:`~consentcrawl.handler.ConsentDownloadHandler` makes the authoritative decision at send time.
- :class:`ConsentResponseMiddleware` sits above ``HttpCacheMiddleware`` (its ``process_response`` runs before
  the cache stores anything): a response without an allow for its own URL never reaches the cache or a callback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter, is_item
from scrapy import Request, signals
from scrapy.exceptions import CloseSpider, DontCloseSpider, DropItem, IgnoreRequest
from scrapy.http import Response
from scrapy.utils.asyncio import call_later
from scrapy.utils.httpobj import urlparse_cached

from ._scrapy_internals import (
    apply_crawl_delay,
    awaited_by_caller,
    cached_instead,
    fail_request,
    guard_parse_command,
    wake_engine,
)
from .deciding import Undecided
from .decision import Decision
from .errbacks import guard_errback, unguard
from .errors import ConfigError
from .nofollowpage import read_steps, reading, sent_by_nofollow_page
from .provenance import page_provenance
from .runtime import (
    CONFIG_ERROR_REASON,
    ConsentRuntime,
    RuntimeComponent,
    config_error,
    get_runtime,
    is_checked_url,
)
from .startup import check_built, check_item_processor_runs_guard, check_spider_purpose

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from typing_extensions import Self

logger = logging.getLogger("consentcrawl")


class ConsentDenied(IgnoreRequest):
    """A request dropped by consentcrawl; the message is the reason code, never the person's data, and
    ``.decision`` is the deny as the spider may see it (:meth:`~consentcrawl.decision.Decision.for_spider`)."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision.for_spider()  # an errback reads it: no page quotes (Decision.for_spider)
        super().__init__(f"consentcrawl: {decision.reason}")


class ConsentMisconfigured(IgnoreRequest):
    """Everything is refused while the configuration is invalid (the crawl is being closed)."""

    def __init__(self) -> None:
        super().__init__("consentcrawl: configuration error")


class ConsentDeferred(IgnoreRequest):
    """Not scheduled yet: its decision needs a store lookup, and is made before it is scheduled again."""

    def __init__(self) -> None:
        super().__init__("consentcrawl: decided before it is scheduled")


#: the failures a refused request reaches its errback with: the errback's items for them are dropped (errbacks.py)
REFUSALS = (ConsentDenied, ConsentMisconfigured)


def guard_refused_errback(runtime: ConsentRuntime | None, request: Request) -> None:
    """The refused request's errback loses the items that name no person (errbacks.py)."""
    if runtime is None:  # a configuration error: every item of it is dropped
        guard_errback(request, REFUSALS, None, None)
    else:
        guard_errback(request, REFUSALS, runtime.crawler.stats, runtime.config.subject_field)


def _fail(crawler: Crawler, request: Request, error: IgnoreRequest, *, scheduling: bool = False) -> None:
    """A request consentcrawl drops before the downloader fails with ``error`` to its errback, as one dropped by a
    downloader middleware does (docs/meta.md); code that waits on it is told why (:func:`tell_caller`).
    ``scheduling``: dropped inside ``request_scheduled``, that is inside the caller's ``engine.crawl()``."""
    runtime = get_runtime(crawler)
    guard_refused_errback(runtime, request)
    if runtime is not None and isinstance(error, ConsentDenied):
        runtime.remember_refusal(request, error.decision)
    if scheduling and request.errback is None:
        # ``scrapy shell`` sets its callbacks only after ``engine.crawl()`` returns (``_request_deferred``): a deny
        # made during that call (at ``request_scheduled``, from what the engine remembers) reaches them next turn
        call_later(0, _fail_now, crawler, request, error)
    else:
        _fail_now(crawler, request, error)


def _fail_now(crawler: Crawler, request: Request, error: IgnoreRequest) -> None:
    if fail_request(crawler, request, error):
        tell_caller(request, error)


def tell_caller(request: Request, error: Exception) -> None:
    """Code that waits on the request itself (``scrapy shell``, its ``fetch()`` too) is told why nothing came back,
    whatever phase refused it: the reason code, never the URL or the person's data."""
    if awaited_by_caller(request):
        logger.warning("%s: the request was not fetched (its URL and the evidence are in the audit log)", error)


async def _passes_scheduling(runtime: ConsentRuntime, request: Request) -> bool:
    """The scheduling check for a request met outside a callback's output (a start request, ``request_scheduled``):
    False when it is refused, or when deciding raised (never scheduled, the crawl's other requests go on); either
    way its errback (``scrapy shell``'s too) gets the answer."""
    try:
        denial = await runtime.decide_scheduled(request)
    except Exception as exc:  # noqa: BLE001 - a failure to decide never schedules the request
        _fail(runtime.crawler, request, ConsentDenied(runtime.scheduling_failed(request, exc)))
        return False
    if denial is not None and runtime.enforce:
        _fail(runtime.crawler, request, ConsentDenied(denial))
        return False
    runtime.mark_link_checked(request)
    return True


def _skip(runtime: ConsentRuntime | None, request: Request) -> bool:
    """Not ours to decide: consentcrawl's own side requests (by identity) and URLs that cannot fetch a person."""
    return not is_checked_url(request.url) or (runtime is not None and runtime.is_own(request))


class ConsentDownloaderMiddleware(RuntimeComponent):
    """Request phase, before the HTTP cache and the download slot: a pre-filter with robots.txt.

    What it denies never waits in a slot; what it allows is decided again at send time by
    :class:`~consentcrawl.handler.ConsentDownloadHandler`. It also spaces the origin's requests by its
    ``Crawl-delay`` before the request joins the slot.
    """

    async def process_request(self, request: Request) -> None:
        # Scrapy picks the download handler by this parse, cached for the request object: read now, it is the http(s)
        # send-time handler's, whatever scheme a later middleware sets in place (``_set_url("ftp://…")``)
        urlparse_cached(request)
        if _skip(self.runtime, request):
            return
        if self.runtime is None:
            raise ConsentMisconfigured
        decision = await self.runtime.prefilter(request)
        if self.runtime.drops(decision):
            guard_refused_errback(self.runtime, request)  # its items are dropped in the errback (errbacks.py)
            raise ConsentDenied(decision)  # to its errback past every other middleware (pagedenied.py)
        if decision.crawl_delay:
            apply_crawl_delay(self.runtime.crawler, request, decision.crawl_delay)


class ConsentResponseMiddleware(RuntimeComponent):
    """Response phase, above HttpCacheMiddleware: a response without an allow decision for its URL goes no further.

    A response answered by the HTTP cache was never sent, so it is decided here, its person's first page read and
    their linked actor sent for as the send-time handler does; so is the cached page the cache may hand the spider
    in place of the network's answer (a ``304 Not Modified``, a server error); so is a response whose URL is not
    the URL decided (a download handler that followed a redirect or navigated by itself).
    """

    async def process_response(self, request: Request, response: Response) -> Response:
        from .handler import send_time_handler  # the handler imports this module
        from .pagedenied import RefusedPage, close_browser_page

        if isinstance(response, RefusedPage):  # refused in the downloader (process_exception, below)
            guard_refused_errback(self.runtime, request)  # its items are dropped in the errback (errbacks.py)
            tell_caller(request, response.denied)
            raise response.denied
        if _skip(self.runtime, request):
            return response
        if self.runtime is None:
            raise ConsentMisconfigured

        handler = send_time_handler(self.runtime.crawler)
        if handler is None:
            raise ConsentMisconfigured
        cached = cached_instead(request, response)  # what the HTTP cache may hand the spider instead
        for page in (response,) if cached is None else (response, cached):
            if handler.decided(request, page):  # downloaded and decided for it by the send-time handler
                continue
            # its side requests go past the slot queues, where pages waiting on it hold slots (sidedownload.py)
            if handler.unsent(request, page):  # from the HTTP cache: its person's first page read, actor sent
                await handler.read_unsent(self.runtime, request, page)
            decision = await self.runtime.decide_response(request, page)
            if self.runtime.drops(decision):
                request.meta["dont_cache"] = True
                guard_refused_errback(self.runtime, request)
                await close_browser_page(request)
                denied = ConsentDenied(decision)
                tell_caller(request, denied)
                raise denied
        return response

    async def process_exception(self, request: Request, exception: Exception) -> Response | None:
        """A request refused in the downloader (the request phase, at send time, its page's response phase in the
        send-time handler) goes to the errback from :meth:`process_response`, where no other middleware's
        ``process_exception`` sends for it again or answers it with a page of its own (pagedenied.py)."""
        from .pagedenied import stand_in  # it imports this module

        return stand_in(exception)


class ConsentSpiderMiddleware(RuntimeComponent):
    """Nothing derived from a denied (or undecided) response reaches the engine; items carry provenance."""

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """Start requests meet the link check here, as a callback's links do, before any other spider middleware:
        Scrapy's UrlLengthMiddleware logs each request it drops at INFO with its URL, and a project's middleware
        may log or store what it sees. A denied one is refused and recorded here (the scheduling guard would only
        do so after them)."""
        runtime = self.runtime
        if runtime is None:  # a configuration error: nothing starts (the guard closes the spider)
            async for _ in start:
                pass
            return
        async for obj in start:
            if isinstance(obj, Request):
                if guard_parse_command(obj, self._shown_by_parse):
                    from .logformat import ParseCommandLine  # it imports this module

                    ParseCommandLine.install(runtime.crawler, obj)
                if not _skip(runtime, obj) and not await _passes_scheduling(runtime, obj):
                    continue
            yield obj

    async def _shown_by_parse(self, response: Response, output: list[Any]) -> list[Any]:
        """What ``scrapy parse`` may keep (and print) of a callback's ``output``: what this middleware lets
        through, then the items the guard pipeline keeps, as trimmed by it (``_scrapy_internals``)."""
        from .pipelines import ConsentGuardPipeline  # the pipeline imports the runtime, as this module does

        async def each() -> AsyncIterator[Any]:
            for obj in output:
                yield obj

        guard, kept = ConsentGuardPipeline(self.runtime), []
        async for obj in self.process_spider_output(response, each()):
            if not isinstance(obj, Request):
                try:
                    obj = await guard.process_item(obj)
                except DropItem:
                    continue
            kept.append(obj)
        return kept

    def process_spider_input(self, response: Response) -> None:
        if self.runtime is not None:  # its links sent through engine.crawl are not followed either (nofollowpage.py)
            reading(self.runtime, response)

    async def process_spider_output(self, response: Response, result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        if self.runtime is None:
            async for _ in result:
                pass
            return
        decision = self.runtime.decision_for(response.request, response.url)
        checked = is_checked_url(response.url)
        denied = checked and (decision is None or not decision.allowed)
        nofollow = self.runtime.nofollow(response.request)
        runtime = self.runtime
        enforce = runtime.enforce
        async for obj in read_steps(response, result) if nofollow else result:
            if denied and enforce:
                runtime.count("consentcrawl/output_dropped")
                continue
            if isinstance(obj, Request):
                if nofollow:
                    refused = runtime.record_nofollow(obj, response)
                    if enforce:
                        _fail(runtime.crawler, obj, ConsentDenied(refused))
                        continue
                if not _skip(runtime, obj):
                    # the scheduling check, made here where it is cheapest: a link dropped now never costs a
                    # signal dispatch, and the request_scheduled guard skips this request object at this URL
                    denial = await runtime.decide_scheduled(obj)
                    if denial is not None and enforce:
                        _fail(runtime.crawler, obj, ConsentDenied(denial))
                        continue
                    runtime.mark_link_checked(obj)
            elif checked and (type(obj) is dict or is_item(obj)):
                self._stamp(obj, response, decision)
            yield obj

    def _stamp(self, item: Any, response: Response, decision: Decision | None) -> None:
        if self.runtime is None or decision is None:
            return
        provenance = page_provenance(decision, response.url, self.runtime.config.purpose)
        field = self.runtime.config.provenance_field
        if field:
            adapter = item if type(item) is dict else ItemAdapter(item)
            try:  # the same object yielded from another page keeps the stricter page (itempages.py)
                adapter[field] = self.runtime.item_pages.stamp(adapter.get(field), provenance)
                return
            except KeyError:  # an Item class without that field
                pass
        # not in the item: kept for the guard, which applies the page's person's grant to it (itempages.py)
        self.runtime.item_pages.put(item, provenance)


class ConsentScheduleGuard(RuntimeComponent):
    """``request_scheduled`` handler: drop before the scheduler what consent already denies.

    The signal is synchronous, so the check here does no I/O: it decides what the engine can decide from what it
    remembers at the store's current version. A request whose decision needs a person's records is dropped from
    this scheduling (:class:`ConsentDeferred`), decided asynchronously with the lookup, and handed back to the
    engine only when allowed; the spider is kept open while such decisions are pending.

    A denied request's errback is called with :class:`ConsentDenied` (Scrapy itself calls none for a request
    dropped here): code that waits for the request, ``scrapy shell`` for one, gets an answer.
    """

    crawler: Crawler

    def __init__(self, runtime: ConsentRuntime | None) -> None:
        super().__init__(runtime)
        self._pending: set[asyncio.Future[None]] = set()  #: decisions of held-back requests, not made yet

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        guard = cls(get_runtime(crawler))
        guard.crawler = crawler
        crawler.signals.connect(guard.request_scheduled, signal=signals.request_scheduled)
        crawler.signals.connect(guard.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(guard.spider_idle, signal=signals.spider_idle)
        return guard

    async def spider_opened(self, spider: Any = None) -> None:
        """An invalid configuration closes the spider before its first request, and so does an item processor
        that does not run the guard pipeline first (startup.py: checked once it is opened)."""
        if self.runtime is None:
            error = config_error(self.crawler)
            raise CloseSpider(CONFIG_ERROR_REASON if error else "consentcrawl_not_configured")
        try:
            check_built(self.crawler)  # a download handler or log formatter of the project's that failed to build
            check_spider_purpose(spider if spider is not None else self.crawler.spider, self.runtime.config.purpose,
                                 self.crawler.settings)
            await check_item_processor_runs_guard(self.crawler)
        except ConfigError as exc:
            logger.critical("consentcrawl: configuration error, the crawl does not start: %s", exc.logged())
            raise CloseSpider(CONFIG_ERROR_REASON) from None

    def spider_idle(self, spider: Any = None) -> None:
        """A request held back for its decision may still be scheduled: the crawl is not over yet."""
        if self._pending:
            raise DontCloseSpider

    def request_scheduled(self, request: Request, **kwargs: Any) -> None:
        """(``**kwargs``: Scrapy's dispatcher then passes its arguments through without filtering them.)"""
        unguard(request)  # a queue stores the spider's errback, not the wrapper of a refused request's
        if _skip(self.runtime, request):
            return
        if self.runtime is None:
            misconfigured = ConsentMisconfigured()
            _fail(self.crawler, request, misconfigured, scheduling=True)
            raise misconfigured
        if self.runtime.link_checked(request):
            return
        if (refused := sent_by_nofollow_page(self.runtime, request)) is not None and self.runtime.enforce:
            _fail(self.crawler, request, denied := ConsentDenied(refused), scheduling=True)
            raise denied
        decision = self.runtime.decide_scheduled_now(request)
        if isinstance(decision, Undecided):
            task = asyncio.ensure_future(self._decide_then_schedule(request))
            self._pending.add(task)
            task.add_done_callback(self._decided)
            raise ConsentDeferred
        if decision is not None and self.runtime.enforce:
            denied = ConsentDenied(decision)
            _fail(self.crawler, request, denied, scheduling=True)
            raise denied

    def _decided(self, task: asyncio.Future[None]) -> None:
        """A held-back request is decided: the engine looks again now (a denied one schedules nothing, and the
        engine would otherwise notice it is idle only at its next 5-second heartbeat)."""
        self._pending.discard(task)
        wake_engine(self.crawler)

    async def _decide_then_schedule(self, request: Request) -> None:
        runtime = self.runtime
        assert runtime is not None
        if not await _passes_scheduling(runtime, request):
            return
        engine = self.crawler.engine
        if engine is None or engine.spider is None:
            return  # the spider closed meanwhile
        try:
            engine.crawl(request)
        except Exception:  # the spider is closing: the request is not fetched, which is safe
            logger.debug("consentcrawl: a request decided at scheduling was not scheduled (the spider is closing)",
                         exc_info=True)
