"""Scrapy internals of a crawl's engine, scraper and crawler: methods of the instance replaced (the scraper's,
the engine's close and download, the crawler's engine building), the item pipelines read, a crawl made to fail,
``CloseSpider``'s page count, a media request refused as Scrapy refuses one (see the package doc)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scrapy.extensions.closespider import CloseSpider

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response


def fail_crawl(crawler: Crawler) -> None:
    """Make ``scrapy crawl`` exit non-zero for a crawl that refused to start (a configuration error).

    The crawl is closed cleanly (one CRITICAL line, no traceback), which Scrapy counts as a success. Its crawl
    command exits 1 when the crawler has no spider after the crawl (``CrawlerProcess.bootstrap_failed``), so the
    spider reference is dropped once the engine has stopped and nothing needs it any more.
    """
    crawler.spider = None  # type: ignore[assignment]


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


def guard_engine_download(crawler: Crawler, check: Callable[[Request], None]) -> None:
    """Call ``check(request)`` (which raises to refuse it) before the engine's ``download_async`` downloads
    ``request``: public, a callback awaits it to download a page in line, past the scheduler and so past
    ``request_scheduled``. The check runs in the awaiting task, before the download starts its own. The engine looks
    the method up on itself, so an attribute of the instance replaces it; once per engine."""
    engine = getattr(crawler, "engine", None)
    download = getattr(engine, "download_async", None)
    if engine is None or download is None or getattr(download, _WRAPPED, False):
        return

    async def download_async(request: Request) -> Any:
        check(request)
        return await download(request)

    setattr(download_async, _WRAPPED, True)
    engine.download_async = download_async  # type: ignore[method-assign]


def spider_default_callback(crawler: Crawler) -> Callable[..., Any] | None:
    """The callback Scrapy calls for a request that names none: the spider's ``_parse`` (private; it calls
    ``parse``), None when there is no spider or no such method."""
    called = getattr(crawler.spider, "_parse", None)
    return called if callable(called) else None


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
        from ..runtime import get_runtime

        runtime = get_runtime(self.crawler)
        if runtime is not None and runtime.is_own(request):
            return
        super().page_count(response, request, spider)


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
