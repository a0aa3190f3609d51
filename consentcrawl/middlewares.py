"""The Scrapy side of a decision: drop before the fetch, check the response, drop what a denied page produced.

- :class:`ConsentSpiderMiddleware` makes the link check (terms and authorizations) for each link a callback
  yields, drops everything produced from a denied response, and stamps items with provenance.
- :class:`ConsentScheduleGuard` makes that check, at scheduling time, for every other request (start requests,
  redirects, requests from extensions), so a denied request never reaches the scheduler or a shared queue.
- :class:`ConsentDownloaderMiddleware` (request phase, before the HTTP cache) adds robots.txt and drops what it
  denies before the request waits in its download slot.
- :class:`~consentcrawl.handler.ConsentDownloadHandler` makes the authoritative decision at send time.
- :class:`ConsentResponseMiddleware` sits above ``HttpCacheMiddleware`` (its ``process_response`` runs before
  the cache stores anything): a response without an allow for its own URL never reaches the cache or a callback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter, is_item
from scrapy import Request, signals
from scrapy.exceptions import CloseSpider, IgnoreRequest
from scrapy.http import Response

from ._scrapy_internals import apply_crawl_delay
from .decision import Decision
from .runtime import (
    CONFIG_ERROR_REASON,
    ConsentRuntime,
    RuntimeComponent,
    config_error,
    get_runtime,
    is_checked_url,
)

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from typing_extensions import Self


class ConsentDenied(IgnoreRequest):
    """A request dropped by consentcrawl; the message is the reason code, never the person's data."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(f"consentcrawl: {decision.reason}")


class ConsentMisconfigured(IgnoreRequest):
    """Everything is refused while the configuration is invalid (the crawl is being closed)."""

    def __init__(self) -> None:
        super().__init__("consentcrawl: configuration error")


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
        if _skip(self.runtime, request):
            return
        if self.runtime is None:
            raise ConsentMisconfigured
        decision = await self.runtime.prefilter(request)
        if self.runtime.drops(decision):
            raise ConsentDenied(decision)
        if decision.crawl_delay:
            apply_crawl_delay(self.runtime.crawler, request, decision.crawl_delay)


class ConsentResponseMiddleware(RuntimeComponent):
    """Response phase, above HttpCacheMiddleware: a response without an allow decision for its URL goes no further.

    A response answered by the HTTP cache was never sent, so it is decided here; so is a response whose URL is not
    the URL decided (a download handler that followed a redirect or navigated by itself).
    """

    async def process_response(self, request: Request, response: Response) -> Response:
        if _skip(self.runtime, request):
            return response
        if self.runtime is None:
            raise ConsentMisconfigured
        decision = await self.runtime.decide_response(request, response)
        if self.runtime.drops(decision):
            request.meta["dont_cache"] = True
            raise ConsentDenied(decision)
        return response


class ConsentSpiderMiddleware(RuntimeComponent):
    """Nothing derived from a denied (or undecided) response reaches the engine; items carry provenance."""

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
        async for obj in result:
            if denied and enforce:
                runtime.count("consentcrawl/output_dropped")
                continue
            if isinstance(obj, Request):
                if nofollow:
                    runtime.record_nofollow(obj, response)
                    if enforce:
                        continue
                if not _skip(runtime, obj):
                    # the scheduling check, made here where it is cheapest: a link dropped now never costs a
                    # signal dispatch, and the request_scheduled guard skips this request object at this URL
                    if runtime.decide_scheduled(obj) is not None and enforce:
                        continue
                    runtime.mark_link_checked(obj)
            elif checked and (type(obj) is dict or is_item(obj)):
                self._stamp(obj, response, decision)
            yield obj

    def _stamp(self, item: Any, response: Response, decision: Decision | None) -> None:
        if self.runtime is None or decision is None:
            return
        field = self.runtime.config.provenance_field
        if not field:
            return
        adapter = item if type(item) is dict else ItemAdapter(item)
        try:
            adapter[field] = {
                "decision_id": decision.decision_id,
                "url": response.url,
                "platform": decision.platform,
                "subject": decision.subject,
                "purpose": self.runtime.config.purpose,
                "reason": decision.reason,
            }
        except KeyError:  # an Item class without that field: provenance is in the audit log only
            pass


class ConsentScheduleGuard(RuntimeComponent):
    """``request_scheduled`` handler: drop before the scheduler what consent already denies."""

    crawler: Crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        guard = cls(get_runtime(crawler))
        guard.crawler = crawler
        crawler.signals.connect(guard.request_scheduled, signal=signals.request_scheduled)
        crawler.signals.connect(guard.spider_opened, signal=signals.spider_opened)
        return guard

    def spider_opened(self, spider: Any = None) -> None:
        """An invalid configuration closes the spider before its first request."""
        if self.runtime is None:
            error = config_error(self.crawler)
            raise CloseSpider(CONFIG_ERROR_REASON if error else "consentcrawl_not_configured")

    def request_scheduled(self, request: Request, **kwargs: Any) -> None:
        """(``**kwargs``: Scrapy's dispatcher then passes its arguments through without filtering them.)"""
        if _skip(self.runtime, request):
            return
        if self.runtime is None:
            raise ConsentMisconfigured
        if self.runtime.link_checked(request):
            return
        decision = self.runtime.decide_scheduled(request)
        if decision is not None and self.runtime.enforce:
            raise ConsentDenied(decision)
