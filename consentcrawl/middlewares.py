"""The Scrapy side of a decision: drop before the fetch, check the response, drop what a denied page produced.

- :class:`ConsentDownloaderMiddleware` (request phase, before the HTTP cache and every other middleware that
  could answer or send a request) awaits the full decision and raises ``IgnoreRequest`` on a deny. Requests made
  by redirects come back through it, so they are decided again before they are sent.
- :class:`ConsentResponseMiddleware` sits above ``HttpCacheMiddleware`` (its ``process_response`` runs before
  the cache stores anything): a response whose request was never decided is decided now, and a denied one never
  reaches the cache or a callback. Later issues add response-level evidence here.
- :class:`ConsentSpiderMiddleware` drops everything produced from a denied response, stamps provenance, and
  makes the scheduling check (terms and authorizations) for each link a callback yields.
- :class:`ConsentScheduleGuard` makes that check, at scheduling time, for every other request (start requests,
  redirects, requests from extensions), so a denied request never reaches the scheduler or a shared queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter, is_item
from scrapy import Request, signals
from scrapy.exceptions import CloseSpider, IgnoreRequest
from scrapy.http import Response

from .decision import Decision
from .runtime import (
    CONFIG_ERROR_REASON,
    META_DECISION,
    META_LINK_CHECKED,
    META_NOFOLLOW,
    META_ROBOTS,
    RuntimeComponent,
    apply_crawl_delay,
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


def _skip(request: Request) -> bool:
    return bool(request.meta.get(META_ROBOTS)) or not is_checked_url(request.url)


class ConsentDownloaderMiddleware(RuntimeComponent):
    """Request phase: nothing leaves without an allow decision."""

    async def process_request(self, request: Request) -> None:
        if _skip(request):
            return
        if self.runtime is None:
            raise ConsentMisconfigured
        decision = await self.runtime.decide_request(request)
        request.meta[META_DECISION] = decision
        if not decision.allowed and self.runtime.enforce:
            raise ConsentDenied(decision)
        if decision.crawl_delay:
            apply_crawl_delay(self.runtime.crawler, request, decision.crawl_delay)


class ConsentResponseMiddleware(RuntimeComponent):
    """Response phase, above HttpCacheMiddleware: a response without an allow decision goes no further."""

    async def process_response(self, request: Request, response: Response) -> Response:
        if _skip(request):
            return response
        if self.runtime is None:
            raise ConsentMisconfigured
        decision = request.meta.get(META_DECISION)
        if not isinstance(decision, Decision):
            # sent without passing our request phase (e.g. made by a middleware placed after it)
            decision = await self.runtime.decide_request(request, phase="response")
            request.meta[META_DECISION] = decision
        if decision.allowed:
            decision = self.runtime.check_response(request, response, decision)
            request.meta[META_DECISION] = decision
        if not decision.allowed and self.runtime.enforce:
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
        decision = response.meta.get(META_DECISION) if response.request is not None else None
        checked = is_checked_url(response.url)
        denied = checked and (not isinstance(decision, Decision) or not decision.allowed)
        nofollow = bool(response.meta.get(META_NOFOLLOW)) if response.request is not None else False
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
                if not _skip(obj):
                    # the scheduling check, made here where it is cheapest: a link dropped now never costs a
                    # signal dispatch, and the request_scheduled guard skips a request already checked at this URL
                    if runtime.decide_scheduled(obj) is not None and enforce:
                        continue
                    obj.meta[META_LINK_CHECKED] = obj.url
            elif checked and (type(obj) is dict or is_item(obj)):
                self._stamp(obj, response, decision)
            yield obj

    def _stamp(self, item: Any, response: Response, decision: Decision | None) -> None:
        field = self.runtime.config.provenance_field
        if not field or decision is None:
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
        if _skip(request) or request.meta.get(META_LINK_CHECKED) == request.url:
            return
        if self.runtime is None:
            raise ConsentMisconfigured
        decision = self.runtime.decide_scheduled(request)
        if decision is not None and self.runtime.enforce:
            raise ConsentDenied(decision)
