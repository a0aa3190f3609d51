"""Stand-ins for the add-on's entry points that do almost nothing: the floor under consentcrawl's cost.

``_crawl_one.py c --floor`` installs these in the places and with the shapes of consentcrawl's components (an
async downloader middleware at both ends of the chain, an async-generator spider middleware, an async pipeline, a
``request_scheduled`` handler) and accounts for them exactly as it accounts for consentcrawl. Each does one dict
lookup where consentcrawl decides, so what they cost is what any consent layer in those places pays for being
called at all, before it does any work.

The crawl also runs a probe: at the start of each response's spider output, the same two calls of consentcrawl
code are timed twice in a row. The first call finds the CPU's caches full of Scrapy's work, as every entry point
of ours does; the second finds them warm, as a loop benchmark does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response

from consentcrawl import addon
from consentcrawl.consent.sqlite import key_hashes
from consentcrawl.urls import canonicalize

_DECIDED: dict[str, bool] = {}  #: stays empty: every lookup misses, every request goes on
_DECISION = "floor_decision"
_CHECKED = "floor_link_checked"
#: nanoseconds of the probe's first (cold) and second (warm) call, per response
PROBE: dict[str, list[int]] = {"cold": [], "warm": []}


def _no_accounting(owner: str) -> str:
    return owner


#: the crawl's accounting switch (``_crawl_one.Accounting.switch``), set before the crawl starts
switch: Callable[[str], str] = _no_accounting


class Addon:
    """The floor's components at consentcrawl's priorities (see ``consentcrawl.addon``)."""

    def update_settings(self, settings: Any) -> None:
        set_priority = settings.setdefault_in_component_priority_dict
        set_priority("DOWNLOADER_MIDDLEWARES", ConsentDownloaderMiddleware, addon.REQUEST_PRIORITY)
        set_priority("DOWNLOADER_MIDDLEWARES", ConsentResponseMiddleware, addon.RESPONSE_PRIORITY)
        set_priority("SPIDER_MIDDLEWARES", ConsentSpiderMiddleware, addon.SPIDER_PRIORITY)
        set_priority("ITEM_PIPELINES", ConsentGuardPipeline, addon.PIPELINE_PRIORITY)
        set_priority("EXTENSIONS", ConsentScheduleGuard, 0)


class ConsentDownloaderMiddleware:
    async def process_request(self, request: Request) -> None:
        request.meta[_DECISION] = _DECIDED.get(request.url, True)


class ConsentResponseMiddleware:
    async def process_response(self, request: Request, response: Response) -> Response:
        if request.meta.get(_DECISION) is None:
            raise IgnoreRequest
        return response


class ConsentSpiderMiddleware:
    async def process_spider_output(self, response: Response, result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        _probe(response.url)
        async for obj in result:
            if isinstance(obj, Request):
                if _DECIDED.get(obj.url) is False:
                    continue
                obj.meta[_CHECKED] = obj.url
            yield obj


class ConsentGuardPipeline:
    async def process_item(self, item: Any) -> Any:
        if _DECIDED.get(item.get("subject")) is False:
            return None
        return item


class ConsentScheduleGuard:
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ConsentScheduleGuard:
        guard = cls()
        crawler.signals.connect(guard.request_scheduled, signal=signals.request_scheduled)
        return guard

    def request_scheduled(self, request: Request, **kwargs: Any) -> None:
        if request.meta.get(_CHECKED) == request.url:
            return
        if _DECIDED.get(request.url) is False:
            raise IgnoreRequest


def _probe(url: str) -> None:
    """Time the same work twice in a row: canonicalize a URL never seen and hash a person's key."""
    previous = switch("probe")
    clock = time.perf_counter_ns
    n = len(PROBE["cold"])
    start = clock()
    key_hashes("example", canonicalize(f"{url}?probe={n}").url)
    middle = clock()
    key_hashes("example", canonicalize(f"{url}?probe={n}x").url)
    end = clock()
    PROBE["cold"].append(middle - start)
    PROBE["warm"].append(end - middle)
    switch(previous)
