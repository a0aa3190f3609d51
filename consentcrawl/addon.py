"""``consentcrawl.Addon``: one line in ``ADDONS`` makes an existing crawler consent-aware."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.settings import SETTINGS_PRIORITIES
from scrapy.utils.asyncio import call_later
from scrapy.utils.misc import load_object

from ._scrapy_internals import (
    ConsentCloseSpider,
    fail_crawl,
    guard_open_in_browser,
    on_failed_engine,
    start_failed,
)
from .browser import configure_playwright
from .distributed.seeds import RedisSeeds
from .errors import ConfigError
from .handler import FALLBACK_SETTINGS, ConsentHTTPDownloadHandler, ConsentHTTPSDownloadHandler
from .heldlocks import crawl_alive
from .leaving import ConsentLeavingPipeline
from .logformat import ConsentLogFormatter
from .logstats import ConsentLogStats
from .middlewares import (
    ConsentDownloaderMiddleware,
    ConsentResponseMiddleware,
    ConsentScheduleGuard,
    ConsentSpiderMiddleware,
)
from .personlines import PersonLines
from .pipelines import ConsentGuardPipeline
from .purge.joblock import JobdirLock, can_lock
from .purge.onclose import PurgeOnClose
from .runtime import CONFIG_ERROR_REASON, config_error, refuse_to_start, release_failed_start
from .settings import copied_from
from .viewing import refuse_to_open

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from typing_extensions import Self

logger = logging.getLogger("consentcrawl")

#: request phase: before every built-in downloader middleware, so before the HTTP cache (900) can answer
REQUEST_PRIORITY = 10
#: response phase: process_response runs in decreasing order, so above HttpCacheMiddleware (900) and
#: HttpCompression (590), i.e. before the cache stores anything
RESPONSE_PRIORITY = 950
#: spider middleware nearest the spider (Scrapy's built-ins go up to 1000): a callback's output meets it first, so
#: a denied link or the output of a denied page is gone before another middleware sees it or logs it
#: (MetaCopyDetectionMiddleware logs the target request at WARNING, UrlLengthMiddleware at INFO)
SPIDER_PRIORITY = 10_000
#: guard pipeline first
PIPELINE_PRIORITY = -1000
#: the leaving check last (leaving.py): the person asked again as the item leaves the pipelines
LEAVING_PRIORITY = 1_000_000_000

ROBOTSTXT_MIDDLEWARE = "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware"
CLOSESPIDER = "scrapy.extensions.closespider.CloseSpider"
REMOTE_CONTROL = "scrapy.extensions.remote_control.RemoteControl"
#: every request gets the referring page's origin only, never the profile URL a link was on (and nothing after a
#: downgrade to http); not browsers' ``strict-origin-when-cross-origin``, which Scrapy implements by parsing both
#: URLs again for every link a page yields
REFERRER_POLICY = "strict-origin"
STRICT_REFERRER_POLICY = "scrapy.spidermiddlewares.referer.StrictOriginPolicy"
#: the policies that send a page's full URL to another origin ("" is a header with no value; Scrapy reads it so)
LOOSE_REFERRER_POLICIES = ("unsafe-url", "no-referrer-when-downgrade", "scrapy-default", "")
_HANDLERS = {"http": ConsentHTTPDownloadHandler, "https": ConsentHTTPSDownloadHandler}


def _path(obj: object) -> Any:
    """A component's import path; a value that is neither a path nor a class (``LOG_FORMATTER = 5``) as it is, for
    the setting it is handed to to refuse in one line, naming the user's setting (``LOG_FORMATTER: 5 is not an import
    path``, :func:`~consentcrawl.settings.set_as`)."""
    if isinstance(obj, str):
        return obj
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}.{name}" if isinstance(module, str) and isinstance(name, str) else obj


def _is(key: object, component: type) -> bool:
    """Whether a component dict's ``key`` names ``component``: by its path, or by any other path it is imported
    under (``myproject.middlewares.ConsentDownloaderMiddleware`` after ``from consentcrawl.middlewares import *``),
    as Scrapy's ``setdefault_in_component_priority_dict`` tells it (an entry found so is not added again)."""
    if _path(key) == _path(component):
        return True
    try:
        return bool(load_object(key) is component)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - a key that does not load is not ours (Scrapy fails on it at start)
        return False


def _top(settings: BaseSettings, name: str) -> int:
    """A priority that wins over whatever set ``name`` so far (the project's own value included)."""
    return max(settings.getpriority(name) or 0, SETTINGS_PRIORITIES["addon"])


def _outermost(settings: BaseSettings, name: str, component: type, what: str, *, lowest: bool = False) -> None:
    """Number ``component`` above every other entry of ``name`` (``lowest``: below), whatever number the project
    gave it: the spider middleware must meet a callback's output (a denied link, a denied page's output) before any
    other spider middleware, and the response phase (it has only ``process_response``, run in decreasing order) must
    meet a response before any other downloader middleware, as the guard pipeline comes before every pipeline. A
    project component numbered above it (one that logs every link, archives every response) would otherwise see what
    consentcrawl drops. The request phase (``process_request``, run in increasing order) is the lowest: a project's
    downloader middleware that downloads by itself (Selenium or Splash style: it returns a response from
    ``process_request``) numbered below it fetched a page before anything was decided."""
    merged = settings.getwithbase(name)
    ours = _path(component)
    others = [n for k, n in merged.items() if _path(k) != ours and n is not None]
    if not others:
        return
    last = min(others) if lowest else max(others)
    entries = settings[name]
    for key in [k for k in merged if _path(k) == ours] or [ours]:
        number = merged.get(key)
        if number is not None and (number < last if lowest else number > last):
            continue
        moved = last - 1 if lowest else last + 1
        logger.warning("consentcrawl: %s gave %s %s, not %s every other entry (%s: %s); it runs at %s so "
                       "it %s first", name, component.__name__, number, "below" if lowest else "above",
                       "first" if lowest else "last", last, moved, what)
        entries.set(key, moved, max(entries.getpriority(key) or 0, SETTINGS_PRIORITIES["addon"]))


def _install(settings: BaseSettings, name: str, component: type, number: int) -> None:
    """Add ``component`` to ``name`` at ``number``; an entry the project's or a spider's settings took out
    (``None``) is put back, with a WARNING. Without the request phase no robots.txt is fetched (everything
    denies), without the schedule guard denied requests reach a shared queue, and without PurgeOnClose
    ``CONSENTCRAWL_PURGE_ON_CLOSE`` leaves a withdrawn person's items in the outputs while the crawl says it purges.
    (The response phase, the spider middleware and the guard pipeline are put back by their own placing below.)"""
    settings.setdefault_in_component_priority_dict(name, component, number)
    merged = settings.getwithbase(name)
    entries = settings[name]
    for key in [k for k in merged if _is(k, component) and merged[k] is None]:
        logger.warning("consentcrawl: %s took out %s; it is put back at %s (consentcrawl does not run without it)",
                       name, component.__name__, number)
        entries.set(key, number, max(entries.getpriority(key) or 0, SETTINGS_PRIORITIES["addon"]))


class Addon:
    """Installs the consent components, the send-time download handler, and takes out what would undercut them:
    Scrapy's own robots.txt middleware (it fails open) and, unless the project asked for it, RemoteControl."""

    def __init__(self, crawler: Crawler | None = None) -> None:
        self.crawler = crawler
        self.jobdir_lock: JobdirLock | None = None  #: held while the crawl runs (purge/joblock.py)
        self._running = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        addon = cls(crawler)
        PersonLines.install(crawler)  # the lines of the components built from here on (a spider's are before it)
        guard_open_in_browser(refuse_to_open)  # a callback's open_in_browser: viewing.py
        crawler.signals.connect(addon._spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(addon._engine_started, signal=signals.engine_started)
        return addon

    def update_settings(self, settings: BaseSettings) -> None:
        _install(settings, "DOWNLOADER_MIDDLEWARES", ConsentDownloaderMiddleware, REQUEST_PRIORITY)
        settings.setdefault_in_component_priority_dict(
            "DOWNLOADER_MIDDLEWARES", ConsentResponseMiddleware, RESPONSE_PRIORITY)
        settings.setdefault_in_component_priority_dict("SPIDER_MIDDLEWARES", ConsentSpiderMiddleware, SPIDER_PRIORITY)
        settings.setdefault_in_component_priority_dict("ITEM_PIPELINES", ConsentGuardPipeline, PIPELINE_PRIORITY)
        settings.setdefault_in_component_priority_dict("ITEM_PIPELINES", ConsentLeavingPipeline, LEAVING_PRIORITY)
        _install(settings, "EXTENSIONS", ConsentScheduleGuard, 0)
        settings.setdefault_in_component_priority_dict("EXTENSIONS", ConsentLogStats, 0)
        # CONSENTCRAWL_PURGE_ON_CLOSE (off by default: the extension then only watches)
        _install(settings, "EXTENSIONS", PurgeOnClose, 0)
        if settings.get("CONSENTCRAWL_REDIS_START_KEY") or getattr(
                getattr(self.crawler, "spidercls", None), "redis_key", None):
            settings.setdefault_in_component_priority_dict("EXTENSIONS", RedisSeeds, 0)  # seeds from Redis
        self._wrap_download_handlers(settings)
        self._wrap_log_formatter(settings)
        self._guard_first(settings)
        self._leaving_last(settings)
        _outermost(settings, "SPIDER_MIDDLEWARES", ConsentSpiderMiddleware, "meets a callback's output")
        _outermost(settings, "DOWNLOADER_MIDDLEWARES", ConsentResponseMiddleware, "meets a response")
        _outermost(settings, "DOWNLOADER_MIDDLEWARES", ConsentDownloaderMiddleware, "meets a request", lowest=True)
        self._remove_robotstxt_middleware(settings)
        self._count_spider_pages(settings)
        self._remote_control_off(settings)
        # another origin is not told whose profile a link was found on (a project's own policy stands)
        settings.set("REFERRER_POLICY", REFERRER_POLICY, "addon")
        self._no_looser_referrer_policy(settings)
        if self.crawler is not None:
            self._lock_jobdir(settings)
            self._released_on_failed_start(self.crawler)
            try:  # a browser that navigates by itself: each of its requests waits for a decision
                configure_playwright(settings, self.crawler)
            except ConfigError as exc:  # it cannot be guarded: the crawl does not start, with one line
                refuse_to_start(self.crawler, exc)

    def _wrap_download_handlers(self, settings: BaseSettings) -> None:
        """Every http(s) download goes through the send-time decision; the handler it replaces does the download."""
        current = settings.getwithbase("DOWNLOAD_HANDLERS")
        for scheme, ours in _HANDLERS.items():
            existing = current.get(scheme)
            if existing is not None and _path(existing) not in (_path(h) for h in _HANDLERS.values()):
                if settings.get(FALLBACK_SETTINGS[scheme]) is None:
                    settings.set(FALLBACK_SETTINGS[scheme], _path(existing), "addon")
                    copied_from(settings, FALLBACK_SETTINGS[scheme], f"DOWNLOAD_HANDLERS[{scheme!r}]", "addon")
            handlers = settings["DOWNLOAD_HANDLERS"]
            handlers.set(scheme, _path(ours), max(handlers.getpriority(scheme) or 0, SETTINGS_PRIORITIES["addon"]))

    @staticmethod
    def _no_looser_referrer_policy(settings: BaseSettings) -> None:
        """While the add-on's policy is in force, a page's ``Referrer-Policy`` header (which Scrapy's
        RefererMiddleware obeys over the setting) cannot ask for the full URL to go to another origin: the names
        that do are read as the add-on's policy (``REFERRER_POLICIES``; a project's own mapping of a name stands)."""
        if settings.get("REFERRER_POLICY") != REFERRER_POLICY:
            return  # the project's own policy, and Scrapy's reading of pages' headers with it
        policies = dict(settings.getdict("REFERRER_POLICIES"))
        for name in LOOSE_REFERRER_POLICIES:
            policies.setdefault(name, STRICT_REFERRER_POLICY)
        settings.set("REFERRER_POLICIES", policies, _top(settings, "REFERRER_POLICIES"))

    def _wrap_log_formatter(self, settings: BaseSettings) -> None:
        """Scrapy's lines about a request consentcrawl refused name no URL (:mod:`consentcrawl.logformat`); the
        formatter it replaces makes every line."""
        ours = _path(ConsentLogFormatter)
        existing = settings.get("LOG_FORMATTER")
        if existing is not None and _path(existing) != ours and settings.get("CONSENTCRAWL_LOG_FORMATTER") is None:
            settings.set("CONSENTCRAWL_LOG_FORMATTER", _path(existing), "addon")
            copied_from(settings, "CONSENTCRAWL_LOG_FORMATTER", "LOG_FORMATTER", "addon")
        settings.set("LOG_FORMATTER", ours, _top(settings, "LOG_FORMATTER"))

    def _guard_first(self, settings: BaseSettings) -> None:
        """The guard pipeline runs before every other pipeline, whatever number the project gave it (Scrapy's docs
        number pipelines 300, 800, ...; a guard at 300 behind a database writer at 100 comes too late): a pipeline
        that stores items must never see a denied person's. Taken out (``None``) is put back, for the same reason.
        """
        merged = settings.getwithbase("ITEM_PIPELINES")
        guard = _path(ConsentGuardPipeline)
        others = [n for k, n in merged.items() if _path(k) != guard and n is not None]
        if not others:
            return
        first = min(others)
        pipelines = settings["ITEM_PIPELINES"]
        for key in [k for k in merged if _path(k) == guard] or [guard]:
            number = merged.get(key)
            if number is not None and number < first:
                continue
            moved = min(first - 1, PIPELINE_PRIORITY)
            logger.warning("consentcrawl: ITEM_PIPELINES gave the guard pipeline %s, not before every other "
                           "pipeline (first: %s); it runs at %s so no pipeline sees an item it drops",
                           number, first, moved)
            pipelines.set(key, moved, max(pipelines.getpriority(key) or 0, SETTINGS_PRIORITIES["addon"]))

    def _leaving_last(self, settings: BaseSettings) -> None:
        """The leaving check runs after every other pipeline, whatever number the project gave it (or ``None``):
        the item it lets on goes to ``item_scraped`` and the feeds."""
        merged = settings.getwithbase("ITEM_PIPELINES")
        leaving = _path(ConsentLeavingPipeline)
        others = [n for k, n in merged.items() if _path(k) != leaving and n is not None]
        last = max(others, default=LEAVING_PRIORITY - 1)
        pipelines = settings["ITEM_PIPELINES"]
        for key in [k for k in merged if _path(k) == leaving] or [leaving]:
            number = merged.get(key)
            if number is not None and number > last:
                continue
            moved = max(last + 1, LEAVING_PRIORITY)
            logger.warning("consentcrawl: ITEM_PIPELINES gave the leaving check %s, not after every other pipeline "
                           "(last: %s); it runs at %s so no item leaves the pipelines unchecked", number, last, moved)
            pipelines.set(key, moved, max(pipelines.getpriority(key) or 0, SETTINGS_PRIORITIES["addon"]))

    def _remove_robotstxt_middleware(self, settings: BaseSettings) -> None:
        """Scrapy's RobotsTxtMiddleware fails open (an unreachable robots.txt allows everything): out, whatever the
        priority the project set ``ROBOTSTXT_OBEY`` at, by setting its entry to None (as scrapy-poet replaces
        built-ins). consentcrawl's robots stage replaces it."""
        was_on = settings.getbool("ROBOTSTXT_OBEY")
        middlewares = settings["DOWNLOADER_MIDDLEWARES"]
        for key in list(middlewares):
            if _path(key) == ROBOTSTXT_MIDDLEWARE:
                middlewares.set(key, None, max(middlewares.getpriority(key) or 0, SETTINGS_PRIORITIES["addon"]))
        middlewares.set(ROBOTSTXT_MIDDLEWARE, None, max(middlewares.getpriority(ROBOTSTXT_MIDDLEWARE) or 0,
                                                        SETTINGS_PRIORITIES["addon"]))
        settings.set("ROBOTSTXT_OBEY", False, _top(settings, "ROBOTSTXT_OBEY"))
        if was_on:
            logger.info("consentcrawl: Scrapy's RobotsTxtMiddleware removed and ROBOTSTXT_OBEY set to False; "
                        "consentcrawl's robots stage (which fails closed) replaces it")

    @staticmethod
    def _count_spider_pages(settings: BaseSettings) -> None:
        """``CLOSESPIDER_PAGECOUNT`` counts the spider's pages, not consentcrawl's side requests: CloseSpider is
        replaced by :class:`~consentcrawl._scrapy_internals.ConsentCloseSpider` at its number (its entry set to
        None, as for RobotsTxtMiddleware). A project that took CloseSpider out keeps it out."""
        merged = settings.getwithbase("EXTENSIONS")
        keys = [k for k in merged if _path(k) == CLOSESPIDER]
        numbers = [merged[k] for k in keys if merged[k] is not None]
        if not numbers:
            return
        extensions = settings["EXTENSIONS"]
        for key in keys:
            extensions.set(key, None, max(extensions.getpriority(key) or 0, SETTINGS_PRIORITIES["addon"]))
        settings.setdefault_in_component_priority_dict("EXTENSIONS", ConsentCloseSpider, min(numbers))

    def _remote_control_off(self, settings: BaseSettings) -> None:
        """Scrapy 2.19's RemoteControl and the Telnet console run code sent to a local port inside the crawl,
        outside every check: off unless the project asked for them."""
        consoles = (("REMOTE_CONTROL_ENABLED", "RemoteControl"), ("TELNETCONSOLE_ENABLED", "the Telnet console"))
        for name, what in consoles:
            if (settings.getpriority(name) or 0) > SETTINGS_PRIORITIES["default"]:
                if settings.getbool(name):
                    logger.warning("consentcrawl: %s stays on because the project enabled it; code sent to its "
                                   "port runs inside the crawl, outside consentcrawl's checks", what)
                continue
            settings.set(name, False, "addon")

    def _lock_jobdir(self, settings: BaseSettings) -> None:
        """Hold ``JOBDIR``'s lock while the crawl runs, taken before Scrapy's scheduler and dupefilter open
        anything there, so that ``consentcrawl purge --jobdir`` refuses it. Held by someone else (another crawl, a
        purge): the crawl does not start, and runs without ``JOBDIR`` so that nothing of it touches the directory."""
        directory = settings.get("JOBDIR")
        if not directory or self.crawler is None:
            return
        if not can_lock():
            logger.warning("consentcrawl: this system cannot lock JOBDIR: a purge --jobdir run while the crawl runs "
                           "is not refused")
            return
        try:
            self.jobdir_lock = JobdirLock.take(Path(directory), "JOBDIR", alive=crawl_alive(self.crawler))
        except ConfigError as exc:
            refuse_to_start(self.crawler, exc)
            settings.set("JOBDIR", None, _top(settings, "JOBDIR"))

    def _released_on_failed_start(self, crawler: Crawler) -> None:
        """What this crawl holds (JOBDIR's lock here; the audit log's lock and the store in its runtime) is let go
        as soon as its start fails, not when the process ends.

        A ``Crawler.crawl`` that raises before it has an engine (a project's extension, pipeline or middleware
        raising as Scrapy builds it) closes nothing: no ``spider_closed``, no ``engine_stopped``, and Scrapy keeps
        the failed crawler reachable (the failure's traceback holds it). Another process (a purge, the same crawl
        started again) would find the locks held until this one ends. The engine is built last, so a failure
        while building it is caught there (``_scrapy_internals.on_failed_engine``); one earlier in Scrapy's start
        (an extension) is seen on the event loop's next turn, when the crawl is found not crawling and without an
        engine (``_scrapy_internals.start_failed``). Both release once."""
        def release() -> None:
            self._release_jobdir()
            release_failed_start(crawler)
            PersonLines.release(crawler)

        def if_failed() -> None:
            if start_failed(crawler):
                release()

        on_failed_engine(crawler, release)
        # no event loop or reactor yet (``scrapy crawl`` installs its reactor after the add-ons): that process ends
        # with its failed start, and the kernel lets its locks go
        with contextlib.suppress(RuntimeError):
            call_later(0, if_failed)

    def _engine_started(self) -> None:
        self._running = True
        if self.crawler is not None and self.jobdir_lock is not None:
            # connected now, after every extension's handler: the purge on close runs before the lock goes
            self.crawler.signals.connect(self._release_jobdir, signal=signals.engine_stopped)

    def _release_jobdir(self) -> None:
        if self.jobdir_lock is not None:
            self.jobdir_lock.release()

    def _spider_closed(self, spider: object = None, reason: str = "") -> None:
        if not self._running:  # closed before its engine ran: no engine_stopped comes
            self._release_jobdir()
        if self.crawler is not None and (config_error(self.crawler) is not None or reason == CONFIG_ERROR_REASON):
            crawler = self.crawler
            call_later(0, fail_crawl, crawler)  # after the other spider_closed handlers, before Scrapy's exit code
