"""Every place consentcrawl reaches into Scrapy internals, because Scrapy offers no public way; one package, tested.

A module by job (``downloader``, ``crawl``, ``commands``); import from the package.

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
- :func:`guard_engine_download`: a callback's in-line ``engine.download_async`` passes a check first (a nofollow
  page's links, nofollowpage.py): it goes past the scheduler and ``request_scheduled``, with no hook of its own;
  :func:`spider_default_callback`: the callback Scrapy calls for a request with none (the spider's private
  ``_parse``).
- :class:`ConsentCloseSpider`: ``CLOSESPIDER_PAGECOUNT`` counts the spider's pages, not consentcrawl's side requests
  (CloseSpider counts every ``response_received``, and offers no way to leave one out).
"""

from __future__ import annotations

from .commands import (
    PARSE_LOGGER,
    ShownPage,
    guard_command_crawl,
    guard_open_in_browser,
    guard_parse_command,
    parse_command_url,
)
from .crawl import (
    ConsentCloseSpider,
    fail_crawl,
    guard_engine_download,
    item_pipelines,
    itemproc_runs_async,
    media_refused,
    on_failed_engine,
    spider_default_callback,
    start_failed,
    wrap_engine_close,
    wrap_scraper,
)
from .downloader import (
    apply_crawl_delay,
    awaited_by_caller,
    cached_instead,
    download_past_slots,
    fail_request,
    no_silent_resend,
    reserve_slot_delay,
    wake_engine,
)

__all__ = ["PARSE_LOGGER", "ConsentCloseSpider", "ShownPage", "apply_crawl_delay", "awaited_by_caller",
           "cached_instead", "download_past_slots", "fail_crawl", "fail_request", "guard_command_crawl",
           "guard_engine_download", "guard_open_in_browser", "guard_parse_command", "item_pipelines",
           "itemproc_runs_async", "media_refused", "no_silent_resend", "on_failed_engine", "parse_command_url",
           "reserve_slot_delay", "spider_default_callback", "start_failed", "wake_engine", "wrap_engine_close",
           "wrap_scraper"]
