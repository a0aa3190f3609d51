"""Consent for what a browser fetches by itself: scrapy-playwright with Chromium.

A download handler that drives a browser (scrapy-playwright) makes requests consentcrawl never saw as Scrapy
requests: the hops of a redirect, the page's images, frames, scripts, ``fetch()`` calls, workers and popups. Each of
them is decided here, immediately before Chromium sends it, with the crawl's own runtime (robots, terms, the person),
recorded in the audit log with phase ``browser``; a denied one is failed with ``net::ERR_BLOCKED_BY_CLIENT`` and never
reaches the network. An error while deciding is a deny. Non-http(s) URLs (``data:``, ``blob:``, ``about:``) are not
fetches of a person and pass.

Why not ``PLAYWRIGHT_ABORT_REQUEST``: scrapy-playwright's predicate runs in a Playwright page route, and Playwright
never calls a route for the hops of a redirect (they are continued inside Playwright, by design:
microsoft/playwright#3993, #33882), nor for the first request of a popup. Measured with Playwright 1.65 and
scrapy-playwright 0.0.48: for ``/redirect?to=/u/107`` the predicate sees only ``/redirect?...`` and the browser fetches
``/u/107``. Fetching in the route instead (``route.fetch(max_redirects=0)``) moves every download out of Chromium into
Playwright's own HTTP client, and a 3xx handed back to the browser is followed, unrouted, however many hops it has.

What is used instead: a browser-wide DevTools session (``Browser.new_browser_cdp_session``) with ``Fetch.enable`` at
the request stage, opened by a scrapy-playwright browser provider (``PLAYWRIGHT_BROWSER_PROVIDER``) as soon as the
browser is launched or connected, before any page exists. Chromium pauses every request of every target there,
redirect hops included, until it is continued or failed. Pages, cross-site frames, dedicated and service workers,
popups, form posts and refreshes are all covered; scrapy-playwright's own routing keeps working beside it.

Enabling it
-----------
The consentcrawl add-on calls :func:`configure_playwright` when the crawl downloads with scrapy-playwright's handler.
By hand, add this module's add-on next to consentcrawl's::

    ADDONS = {"consentcrawl.Addon": 0, "consentcrawl.browser.PlaywrightAddon": 10}
    DOWNLOAD_HANDLERS = {"http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
                         "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"}
    PLAYWRIGHT_LAUNCH_OPTIONS = {"executable_path": "/usr/bin/chromium"}   # any Chromium; proxy as you need

(or call ``configure_playwright(settings, crawler)`` from your own add-on's ``update_settings``). A provider you set in
``PLAYWRIGHT_BROWSER_PROVIDER`` is kept and wrapped: it still launches the browser.

Limits (each fails closed, i.e. the browser does not run, unless noted)
-----------------------------------------------------------------------
* Chromium only (``PLAYWRIGHT_BROWSER_TYPE = "chromium"``, the default): Firefox and WebKit have no such interface.
* No persistent contexts (``user_data_dir``): Playwright gives no browser-wide session for them.
* Not with scrapy-playwright's threaded event loop (Windows): the decisions must run on the crawl's loop.
* Not covered: WebSocket handshakes (DevTools cannot pause them) and Chromium's own background traffic (updates,
  account checks), which belong to no page. Requests a spider makes with Playwright's ``APIRequestContext``
  (``page.request``) do not go through Chromium either.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import platform
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotSupported
from scrapy.settings import SETTINGS_PRIORITIES
from scrapy.utils.misc import load_object

from .errors import ConfigError
from .handler import FALLBACK_SETTINGS
from .runtime import get_runtime, is_checked_url

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from typing_extensions import Self

__all__ = ["ConsentBrowserProvider", "PlaywrightAddon", "configure_playwright", "uses_playwright"]

logger = logging.getLogger("consentcrawl")

PROVIDER_SETTING = "PLAYWRIGHT_BROWSER_PROVIDER"
DEFAULT_PROVIDER = "scrapy_playwright.provider.PlaywrightBrowserProvider"
PLAYWRIGHT_HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
#: the audit log's phase for a request the browser is about to send
PHASE = "browser"
#: pause every request of every target before it is sent (a redirect hop is a new request at this stage)
_FETCH_PATTERNS = [{"urlPattern": "*", "requestStage": "Request"}]
_BLOCKED = "BlockedByClient"


def uses_playwright(settings: BaseSettings) -> bool:
    """Whether http(s) downloads go through scrapy-playwright's handler, directly or behind consentcrawl's."""
    handlers = settings.getwithbase("DOWNLOAD_HANDLERS")
    candidates = [handlers.get("http"), handlers.get("https")]
    candidates += [settings.get(name) for name in FALLBACK_SETTINGS.values()]  # where the add-on moved them
    return any(_is_playwright_handler(c) for c in candidates if c is not None)


def _is_playwright_handler(handler: Any) -> bool:
    if isinstance(handler, str):
        if handler.startswith("scrapy_playwright."):
            return True
        try:
            handler = load_object(handler)
        except Exception:  # noqa: BLE001 - not ours to report: Scrapy fails on it when it builds the handler
            return False
    try:
        playwright_handler = importlib.import_module("scrapy_playwright.handler").ScrapyPlaywrightDownloadHandler
    except ImportError:
        return False
    return isinstance(handler, type) and issubclass(handler, playwright_handler)


def configure_playwright(settings: BaseSettings, crawler: Crawler) -> bool:
    """Make every request of scrapy-playwright's browser wait for a consent decision; for an add-on's
    ``update_settings``.

    Returns False, changing nothing, when the crawl does not use scrapy-playwright. Otherwise sets
    ``PLAYWRIGHT_BROWSER_PROVIDER`` (at add-on priority or above, wrapping the provider the project set) and returns
    True; calling it again changes nothing. Raises :class:`~consentcrawl.errors.ConfigError` when the browser could
    not be guarded (see the module's limits), so that it never runs unguarded.
    """
    if not uses_playwright(settings):
        return False
    _check_supported(settings)
    current = settings.get(PROVIDER_SETTING)
    if isinstance(current, _GuardedProviderFactory):
        return True
    priority = max(settings.getpriority(PROVIDER_SETTING) or 0, SETTINGS_PRIORITIES["addon"])
    settings.set(PROVIDER_SETTING, _GuardedProviderFactory(crawler, current or DEFAULT_PROVIDER), priority)
    return True


def _check_supported(settings: BaseSettings) -> None:
    try:
        importlib.import_module("scrapy_playwright.provider")  # PLAYWRIGHT_BROWSER_PROVIDER: scrapy-playwright 0.0.48
    except ImportError as exc:
        raise ConfigError(f"scrapy-playwright 0.0.48 or newer is needed to guard its browser ({exc}); "
                          "pip install 'consentcrawl[browser]'", "DOWNLOAD_HANDLERS") from exc
    browser_type = settings.get("PLAYWRIGHT_BROWSER_TYPE") or "chromium"
    if browser_type != "chromium":
        raise ConfigError(f"{browser_type!r}: consentcrawl can decide each request of a Chromium browser only",
                          "PLAYWRIGHT_BROWSER_TYPE")
    if platform.system() == "Windows" or settings.getbool("_PLAYWRIGHT_THREADED_LOOP"):
        raise ConfigError("scrapy-playwright's threaded event loop (Windows) is not supported: the browser's "
                          "requests must be decided on the crawl's event loop", "_PLAYWRIGHT_THREADED_LOOP")
    for name, kwargs in (settings.getdict("PLAYWRIGHT_CONTEXTS") or {}).items():
        if isinstance(kwargs, dict) and kwargs.get("user_data_dir"):
            raise ConfigError(f"context {name!r}: persistent contexts (user_data_dir) cannot be guarded",
                              "PLAYWRIGHT_CONTEXTS")


class PlaywrightAddon:
    """``ADDONS = {"consentcrawl.browser.PlaywrightAddon": 10}``: :func:`configure_playwright` as an add-on."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def update_settings(self, settings: BaseSettings) -> None:
        if not configure_playwright(settings, self.crawler):
            logger.warning("consentcrawl: PlaywrightAddon is enabled but DOWNLOAD_HANDLERS does not use "
                           "scrapy-playwright; there is no browser to guard")


class _GuardedProviderFactory:
    """The value of ``PLAYWRIGHT_BROWSER_PROVIDER``: builds the provider with the crawler it decides for.

    scrapy-playwright builds its provider from its configuration alone, so the crawler travels in this callable.
    Settings copies share it rather than copying the crawler.
    """

    def __init__(self, crawler: Crawler, inner: Any) -> None:
        self.crawler = crawler
        self.inner = inner

    def __call__(self, config: Any) -> ConsentBrowserProvider:
        return ConsentBrowserProvider(config, self.crawler, self.inner)

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self

    def __repr__(self) -> str:
        return f"<consentcrawl.browser.ConsentBrowserProvider around {self.inner!r}>"


class ConsentBrowserProvider:
    """A scrapy-playwright browser provider that hands out only browsers whose every request is decided.

    ``inner`` (an import path or class) is the provider that really launches or connects the browser.
    """

    def __init__(self, config: Any, crawler: Crawler, inner: Any = DEFAULT_PROVIDER) -> None:
        self.config = config
        self.crawler = crawler
        self.inner = load_object(inner)(config)

    async def start(self) -> None:
        await self.inner.start()

    async def launch_browser(self) -> Any:
        if getattr(self.config, "browser_type_name", "chromium") != "chromium":
            raise NotSupported("consentcrawl: only a Chromium browser's requests can be decided one by one")
        if getattr(self.config, "use_threaded_loop", False):
            raise NotSupported("consentcrawl: scrapy-playwright's threaded event loop is not supported")
        browser = await self.inner.launch_browser()
        try:
            session = await browser.new_browser_cdp_session()
            gate = _RequestGate(self.crawler, session)
            session.on("Fetch.requestPaused", gate.paused)
            await session.send("Fetch.enable", {"patterns": _FETCH_PATTERNS})
        except BaseException:
            logger.critical("consentcrawl: could not intercept the browser's requests; closing it", exc_info=True)
            with suppress(Exception):
                await browser.close()
            raise
        logger.info("consentcrawl: every request of the browser is decided before it is sent")
        return browser

    async def launch_persistent_context(self, context_kwargs: dict[str, Any]) -> Any:
        raise NotSupported("consentcrawl: a persistent browser context (user_data_dir) cannot be guarded")

    async def close(self) -> None:
        await self.inner.close()


class _RequestGate:
    """Answers Chromium's paused requests: continue what the crawl's runtime allows, fail everything else."""

    def __init__(self, crawler: Crawler, session: Any) -> None:
        self.crawler = crawler
        self.session = session
        self._tasks: set[asyncio.Task[None]] = set()

    def paused(self, event: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self.answer(event))
        self._tasks.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._tasks.discard)

    async def answer(self, event: dict[str, Any]) -> None:
        request_id = event["requestId"]
        url = str(event.get("request", {}).get("url", ""))
        try:
            allowed = await self.allowed(url, redirect=event.get("redirectedRequestId") is not None)
        except Exception as exc:  # blocked; the URL (it may name a person) only at DEBUG
            logger.error("consentcrawl: deciding a request of the browser failed (%s); blocking it",
                         type(exc).__name__)
            logger.debug("consentcrawl: deciding the browser's request for %s failed", url, exc_info=True)
            self._count("consentcrawl/browser/error")
            allowed = False
        if allowed:
            command, params = "Fetch.continueRequest", {"requestId": request_id}
        else:
            command, params = "Fetch.failRequest", {"requestId": request_id, "errorReason": _BLOCKED}
        try:
            await self.session.send(command, params)
        except Exception as exc:  # noqa: BLE001 - the page or browser went away: nothing was sent
            logger.debug("consentcrawl: %s for %s not delivered: %s", command, url, exc)

    async def allowed(self, url: str, *, redirect: bool = False) -> bool:
        if not is_checked_url(url):
            return True
        self._count("consentcrawl/browser/request_count")
        if redirect:
            self._count("consentcrawl/browser/redirect_count")
        runtime = get_runtime(self.crawler)
        if runtime is None:  # configuration error: nothing is fetched
            self._count("consentcrawl/browser/blocked")
            return False
        decision = await runtime.decide_url_now(url, phase=PHASE)
        if runtime.drops(decision):
            self._count("consentcrawl/browser/blocked")
            logger.debug("consentcrawl: blocked the browser's request for %s (%s)", url, decision.reason)
            return False
        return True

    def _count(self, key: str) -> None:
        stats = self.crawler.stats
        if stats is not None:
            stats.inc_value(key)
