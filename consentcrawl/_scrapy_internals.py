"""Every place consentcrawl reaches into Scrapy internals, because Scrapy offers no public way; one module, tested.

- :func:`apply_crawl_delay`: a robots.txt ``Crawl-delay`` spaces requests through the download slot. Scrapy has
  no public API to set one slot's delay from a middleware (``DOWNLOAD_SLOTS`` is read once at start).
- :func:`fail_crawl`: ``scrapy crawl`` exits non-zero after a crawl that refused to start for its configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


def fail_crawl(crawler: Crawler) -> None:
    """Make ``scrapy crawl`` exit non-zero for a crawl that refused to start (a configuration error).

    The crawl is closed cleanly (one CRITICAL line, no traceback), which Scrapy counts as a success. Its crawl
    command exits 1 when the crawler has no spider after the crawl (``CrawlerProcess.bootstrap_failed``), so the
    spider reference is dropped once the engine has stopped and nothing needs it any more.
    """
    crawler.spider = None  # type: ignore[assignment]
