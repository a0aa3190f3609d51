"""Start-up checks of the crawl's settings: what another add-on or setting applied after consentcrawl's add-on
could have undone. Each refuses to start with one :class:`~consentcrawl.errors.ConfigError` naming the setting."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import CloseSpider
from scrapy.settings import SETTINGS_PRIORITIES
from scrapy.utils.misc import build_from_crawler

from ._scrapy_internals import itemproc_runs_async, wrap_engine_close, wrap_scraper
from .errors import ConfigError
from .settings import set_as

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

__all__ = ["GuardProbe", "ProbeSeen", "build_wrapped", "built_wrong", "check_built", "check_handlers",
           "check_item_processor_runs_guard", "check_log_formatter", "check_outermost", "check_pipelines",
           "check_spider_purpose", "guard_sees_item", "hook_engine_close", "hook_scraper"]

logger = logging.getLogger("consentcrawl")

#: per crawler, the first project component consentcrawl wraps (download handler, log formatter) that failed to build
_BUILD_ERRORS: weakref.WeakKeyDictionary[Crawler, ConfigError] = weakref.WeakKeyDictionary()


def build_wrapped(crawler: Crawler, cls: type, setting: str, method: str, kind: str) -> Any:
    """The project's component that consentcrawl wraps (``setting`` names it: a download handler, the log
    formatter), built as Scrapy builds it; None when it cannot be built or has no ``method``. Then the crawl does not
    start, with one line naming the setting, not Scrapy's traceback and a crawl going on without it. The component
    may be built after the runtime (which then cannot refuse to start any more): :func:`check_built` stops the
    crawl as the spider opens, before its first request."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    setting = set_as(crawler.settings, setting)  # the user's LOG_FORMATTER, where the add-on took it from there
    try:
        built = build_from_crawler(cls, crawler)
    except Exception as exc:  # noqa: BLE001 - the project's code: any failure to build it stops the crawl
        error = ConfigError(f"cannot build {name!r}: {type(exc).__name__}: {exc}", source=setting)
    else:
        if callable(getattr(built, method, None)):
            return built
        error = ConfigError(f"{name!r} is not {kind}: it has no {method} method", source=setting)
    built_wrong(crawler, error)
    return None


def built_wrong(crawler: Crawler, error: ConfigError) -> None:
    """Record a configuration error of a component built by itself: logged now if no runtime was built yet, and
    raised by :func:`check_built` as the spider opens."""
    from .runtime import refuse_to_start

    refuse_to_start(crawler, error)
    _BUILD_ERRORS.setdefault(crawler, error)


def check_built(crawler: Crawler) -> None:
    error = _BUILD_ERRORS.get(crawler)
    if error is not None:
        raise error


def check_spider_purpose(spider: Any, purpose: str, settings: Any) -> None:
    """The crawl decides for the purpose its user asked for, or does not start. A crawler whose components were
    built before its spider (Scrapy's ``get_crawler``, or code that reads ``crawler.settings`` early) took the
    purpose from the spider class or ``CONSENTCRAWL_PURPOSE``, so a ``purpose`` given to ``crawler.crawl(purpose=...)``
    came too late; and a ``-s CONSENTCRAWL_PURPOSE=...`` typed for this run loses to the spider's attribute. Either
    would decide, audit and stamp items for another purpose than the one asked for, without a word."""
    asked = getattr(spider, "purpose", None)
    if asked and asked != purpose:
        raise ConfigError(f"the spider asks for purpose {asked!r}, but the crawl was set up for {purpose!r} before "
                          "the spider was made (a spider argument given to a crawler built before its spider); "
                          "give the purpose as the spider's class attribute or in CONSENTCRAWL_PURPOSE",
                          source="the spider's purpose attribute")
    given = settings.get("CONSENTCRAWL_PURPOSE")
    if given and given != purpose and (settings.getpriority("CONSENTCRAWL_PURPOSE") or 0) >= CMDLINE:
        raise ConfigError(f"{given!r} was given for this run, but the spider's purpose is {purpose!r}, which wins; "
                          f"to crawl for {given!r}, give it to the spider (-a purpose={given}), or leave the "
                          "setting out", source="CONSENTCRAWL_PURPOSE")


#: the priority of ``scrapy crawl -s NAME=VALUE``: a value typed for this run, not a project's default
CMDLINE = SETTINGS_PRIORITIES["cmdline"]


def hook_scraper(crawler: Crawler, name: str, wrap: Callable[[Crawler, Callable[..., Any]], Callable[..., Any]],
                 unguarded: str) -> None:
    """Put ``wrap`` in place of the scraper's method ``name`` as the spider opens (``_scrapy_internals.wrap_scraper``).
    A Scrapy whose scraper has no such method would leave ``unguarded`` unguarded: the crawl stops before its first
    request instead, with one CRITICAL line (raised from a ``spider_opened`` handler, ``CloseSpider`` closes it)."""
    from .runtime import CONFIG_ERROR_REASON

    if not wrap_scraper(crawler, name, wrap):
        logger.critical("consentcrawl: the crawl does not start: this Scrapy's scraper has no %s, and %s",
                        name, unguarded)
        raise CloseSpider(CONFIG_ERROR_REASON)


def hook_engine_close(crawler: Crawler, clean: Callable[[Any], Any]) -> None:
    """Every reason the crawl closes with passes through ``clean`` (``_scrapy_internals.wrap_engine_close``); a
    Scrapy whose engine has no ``close_spider_async`` stops the crawl as :func:`hook_scraper` does."""
    from .runtime import CONFIG_ERROR_REASON

    if not wrap_engine_close(crawler, clean):
        logger.critical("consentcrawl: the crawl does not start: this Scrapy's engine has no close_spider_async, and "
                        "a close reason naming a refused URL would reach the log and finish_reason")
        raise CloseSpider(CONFIG_ERROR_REASON)


def check_handlers(crawler: Crawler) -> None:
    """The send-time decision is a download handler: an add-on or setting applied after ours that replaced it
    for http(s) would send requests with only the pre-filters' say. Refuse to start instead."""
    from .handler import ConsentHTTPDownloadHandler, ConsentHTTPSDownloadHandler

    handlers = crawler.settings.getwithbase("DOWNLOAD_HANDLERS")
    for scheme, ours in (("http", ConsentHTTPDownloadHandler), ("https", ConsentHTTPSDownloadHandler)):
        current = handlers.get(scheme)
        path = current if isinstance(current, str) else f"{current.__module__}.{current.__qualname__}"
        if path != f"{ours.__module__}.{ours.__qualname__}":
            raise ConfigError(f"the {scheme} download handler is {path}, not consentcrawl's send-time decision: "
                              "another add-on or setting replaced it after consentcrawl's add-on; give "
                              "consentcrawl.Addon a higher number in ADDONS than the add-on that sets "
                              "DOWNLOAD_HANDLERS", source="DOWNLOAD_HANDLERS")


def check_log_formatter(crawler: Crawler) -> None:
    """Scrapy's line about an errback's error must not name a refused request's URL
    (:mod:`consentcrawl.logformat`): an add-on or setting applied after ours that replaced LOG_FORMATTER would
    bring it back. Refuse to start instead (the project's own formatter is kept in CONSENTCRAWL_LOG_FORMATTER)."""
    from .logformat import ConsentLogFormatter

    current = crawler.settings.get("LOG_FORMATTER")
    path = current if isinstance(current, str) else f"{current.__module__}.{current.__qualname__}"
    if path != f"{ConsentLogFormatter.__module__}.{ConsentLogFormatter.__qualname__}":
        raise ConfigError(f"the log formatter is {path}, not consentcrawl's: another add-on or setting replaced it "
                          "after consentcrawl's add-on, and Scrapy's lines about a refused request would name its "
                          "URL; give consentcrawl.Addon a higher number in ADDONS than the add-on that sets "
                          "LOG_FORMATTER, or name that formatter in CONSENTCRAWL_LOG_FORMATTER",
                          source="LOG_FORMATTER")


def check_pipelines(crawler: Crawler) -> None:
    """The guard pipeline must run before every other item pipeline (a pipeline that stores items must never see
    one the guard drops). The add-on moves it first (``Addon._guard_first``), but an add-on or setting applied
    after ours can add a pipeline before it, or take it out. Refuse to start instead."""
    from .pipelines import ConsentGuardPipeline

    def path(obj: Any) -> str:
        return obj if isinstance(obj, str) else f"{obj.__module__}.{obj.__qualname__}"

    guard = path(ConsentGuardPipeline)
    numbers: dict[str, Any] = {}
    for key, number in crawler.settings.getwithbase("ITEM_PIPELINES").items():
        numbers[path(key)] = number  # as Scrapy builds the list: of two keys naming one class, the last counts
    number = numbers.get(guard)
    if number is None:
        raise ConfigError(f"{guard} is not in it (another add-on or setting took it out after consentcrawl's "
                          "add-on): items would reach the other pipelines unchecked", source="ITEM_PIPELINES")
    before = sorted(f"{k} ({n})" for k, n in numbers.items() if k != guard and n is not None and n <= number)
    if before:
        raise ConfigError(f"{guard} ({number}) is not the first item pipeline: {', '.join(before)} would see "
                          "items before it; another add-on or setting added it after consentcrawl's add-on; give "
                          "consentcrawl.Addon a higher number in ADDONS than that add-on, or give the pipeline a "
                          "number above the guard's", source="ITEM_PIPELINES")
    leaving = "consentcrawl.leaving.ConsentLeavingPipeline"
    last = numbers.get(leaving)
    after = sorted(f"{k} ({n})" for k, n in numbers.items() if k != leaving and n is not None
                   and (last is None or n >= last))
    if after:
        raise ConfigError(f"{leaving} ({last}) is not the last item pipeline: {', '.join(after)} would hand items "
                          "to item_scraped and the feeds after it; another add-on or setting changed ITEM_PIPELINES "
                          "after consentcrawl's add-on; give consentcrawl.Addon a higher number in ADDONS than that "
                          "add-on", source="ITEM_PIPELINES")


class GuardProbe(dict):  # type: ignore[type-arg]
    """The empty item :func:`check_item_processor_runs_guard` hands the item processor once, as the spider opens: the
    guard pipeline knows it by its class and stops it (:class:`ProbeSeen`) before any other pipeline sees it."""


class ProbeSeen(Exception):
    """Raised by the guard pipeline for a :class:`GuardProbe`: the processor ran the guard."""


async def check_item_processor_runs_guard(crawler: Crawler) -> None:
    """The guard is an item pipeline: it runs only if the scraper's item processor (Scrapy's ``ITEM_PROCESSOR``)
    runs it, first, on every item. Checked by what the processor does once it is opened, not by its class's
    shape (a subclass may build itself and run items its own way through ``super()``; one may also take the guard
    out of its list as it opens): its first ``process_item`` method must be the guard's, and an item handed to it
    the way Scrapy's scraper hands one must reach the guard (a probe the guard stops before any other pipeline).
    Raises ConfigError naming ``ITEM_PROCESSOR`` otherwise."""
    from scrapy.utils.defer import maybe_deferred_to_future

    from .pipelines import ConsentGuardPipeline

    current = crawler.settings.get("ITEM_PROCESSOR")
    name = current if isinstance(current, str) else f"{current.__module__}.{current.__qualname__}"
    itemproc = getattr(getattr(crawler.engine, "scraper", None), "itemproc", None)
    methods = getattr(itemproc, "methods", None)
    chain = list(methods.get("process_item", ())) if isinstance(methods, Mapping) else []
    if not chain or not isinstance(getattr(chain[0], "__self__", None), ConsentGuardPipeline):
        raise ConfigError(f"the item processor {name}, once opened, does not run consentcrawl's guard pipeline "
                          "first among ITEM_PIPELINES: items would reach the other pipelines, item_scraped and the "
                          "feeds unchecked; leave ITEM_PROCESSOR unset, or let a subclass of "
                          "scrapy.pipelines.ItemPipelineManager keep the list Scrapy builds", source="ITEM_PROCESSOR")
    try:
        if itemproc_runs_async(crawler):  # the way the scraper will hand items on
            await itemproc.process_item_async(GuardProbe())  # type: ignore[union-attr]
        else:
            await maybe_deferred_to_future(itemproc.process_item(GuardProbe(), crawler.spider))  # type: ignore[union-attr]
    except ProbeSeen:
        each_item_reaches_guard(crawler, itemproc)
        return
    except Exception as exc:  # noqa: BLE001 - whatever it raised, the guard did not see the item
        raise ConfigError(f"the item processor {name} failed an item before consentcrawl's guard pipeline saw it "
                          f"({type(exc).__name__})", source="ITEM_PROCESSOR") from None
    raise ConfigError(f"the item processor {name} hands an item on without consentcrawl's guard pipeline seeing it: "
                      "items would reach item_scraped and the feeds unchecked; leave how it runs ITEM_PIPELINES "
                      "to Scrapy (call super())", source="ITEM_PROCESSOR")


#: whether the guard saw the item the processor is running now (a list per item, seen by the tasks it starts)
_GUARD_SAW: ContextVar[list[bool] | None] = ContextVar("consentcrawl_guard_saw", default=None)
_WATCHED = "_consentcrawl_watched"


def guard_sees_item() -> None:
    """The guard pipeline has the item the processor is running (:func:`each_item_reaches_guard`)."""
    saw = _GUARD_SAW.get()
    if saw is not None:
        saw[0] = True


def each_item_reaches_guard(crawler: Crawler, itemproc: Any) -> None:
    """The probe shows that the processor ran the guard on one empty item; a processor of the project's own can
    still hand others on without it (a fast path for some items). Each item it hands on that the guard did not see
    is dropped instead (``error.internal``, recorded and counted), before ``item_scraped`` and the feeds."""
    from twisted.internet.defer import Deferred

    def unseen(item: Any, output: Any, saw: list[bool]) -> Any:
        if saw[0]:
            return output
        from .decision import Evidence, Stage, deny
        from .pipelines import drop
        from .runtime import get_runtime

        runtime = get_runtime(crawler)
        if runtime is not None:
            runtime.record(deny(Stage.ERROR, "error.internal", evidence=(Evidence("item", "item", {
                "cause": "the item processor handed the item on without consentcrawl's guard pipeline"}),)),
                None, None, "item")
            runtime.count("consentcrawl/items/dropped")
        raise drop(output if output is not None else item, "error.internal")

    run_async, run = getattr(itemproc, "process_item_async", None), getattr(itemproc, "process_item", None)
    if run_async is not None and not getattr(run_async, _WATCHED, False):
        async def process_item_async(item: Any) -> Any:
            if _GUARD_SAW.get() is not None:  # called by the processor's own process_item: watched there
                return await run_async(item)
            saw = [False]
            token = _GUARD_SAW.set(saw)
            try:
                output = await run_async(item)
            finally:
                _GUARD_SAW.reset(token)
            return unseen(item, output, saw)

        setattr(process_item_async, _WATCHED, True)
        itemproc.process_item_async = process_item_async
    if run is not None and not getattr(run, _WATCHED, False):
        def process_item(item: Any, spider: Any = None) -> Any:
            if _GUARD_SAW.get() is not None:
                return run(item, spider)
            saw = [False]
            token = _GUARD_SAW.set(saw)
            try:
                result = run(item, spider)
            finally:
                _GUARD_SAW.reset(token)
            if isinstance(result, Deferred):
                return result.addCallback(lambda output: unseen(item, output, saw))
            return unseen(item, result, saw)

        setattr(process_item, _WATCHED, True)
        itemproc.process_item = process_item


def check_outermost(crawler: Crawler) -> None:
    """consentcrawl's spider middleware meets a callback's output, its response phase a response, and its request
    phase a request, before any other component of their kind: the add-on numbers them above (the request phase:
    below) every other (``addon._outermost``), but an add-on or setting applied after ours can add one past them (a
    downloader middleware that downloads by itself, numbered below the request phase, fetches undecided pages).
    Refuse to start instead."""
    from .middlewares import ConsentDownloaderMiddleware, ConsentResponseMiddleware, ConsentSpiderMiddleware

    def path(obj: Any) -> str:
        return obj if isinstance(obj, str) else f"{obj.__module__}.{obj.__qualname__}"

    for name, component in (("SPIDER_MIDDLEWARES", ConsentSpiderMiddleware),
                            ("DOWNLOADER_MIDDLEWARES", ConsentResponseMiddleware),
                            ("DOWNLOADER_MIDDLEWARES", ConsentDownloaderMiddleware)):
        numbers = {path(k): n for k, n in crawler.settings.getwithbase(name).items()}
        ours = path(component)
        number = numbers.get(ours)
        if number is None:
            raise ConfigError(f"{ours} is not in it (another add-on or setting took it out after consentcrawl's "
                              "add-on)", source=name)
        if component is ConsentDownloaderMiddleware:
            below = sorted(f"{k} ({n})" for k, n in numbers.items() if k != ours and n is not None and n <= number)
            if below:
                raise ConfigError(f"{ours} ({number}) is not the first entry: {', '.join(below)} would meet a request "
                                  "before it is decided; another add-on or setting added it after consentcrawl's "
                                  "add-on; give consentcrawl.Addon a higher number in ADDONS than that add-on, or "
                                  "give the entry a number above consentcrawl's", source=name)
            continue
        above = sorted(f"{k} ({n})" for k, n in numbers.items() if k != ours and n is not None and n >= number)
        if above:
            raise ConfigError(f"{ours} ({number}) is not the last entry: {', '.join(above)} would see what it "
                              "drops first; another add-on or setting added it after consentcrawl's add-on; give "
                              "consentcrawl.Addon a higher number in ADDONS than that add-on, or give the entry a "
                              "number below consentcrawl's", source=name)
