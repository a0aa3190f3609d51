"""``ConsentDownloadHandler``: the authoritative decision, made at send time, around whichever handler downloads.

A decision counts for the moment it is made. The request phase decides before a request waits in its download
slot (behind a ``Crawl-delay``, say); a grant can expire and a person can withdraw during that wait. A download
handler is called after the wait, immediately before the network, so the decision here reads the clock then and
its audit line is on disk before a byte is sent.

The add-on installs it for ``http`` and ``https`` and keeps the handler it replaces (Scrapy's, scrapy-playwright's,
scrapy-zyte-api's) as the fallback that does the download, in ``CONSENTCRAWL_HTTP_HANDLER`` and
``CONSENTCRAWL_HTTPS_HANDLER`` (as scrapy-zyte-api wraps ``DOWNLOAD_HANDLERS``).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.utils.misc import build_from_crawler, load_object

from .errors import ConfigError
from .middlewares import ConsentDenied, ConsentMisconfigured
from .runtime import get_runtime, is_checked_url, refuse_to_start
from .settings import read

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from typing_extensions import Self

#: the handlers Scrapy uses when the project sets none
DEFAULT_FALLBACK = "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler"
FALLBACK_SETTINGS = {"http": "CONSENTCRAWL_HTTP_HANDLER", "https": "CONSENTCRAWL_HTTPS_HANDLER"}


class ConsentDownloadHandler:
    """Decides each request as it is sent, then hands it to the fallback handler; a deny is never downloaded."""

    lazy = False
    scheme: ClassVar[str] = "http"

    def __init__(self, crawler: Crawler, fallback: Any) -> None:
        self.crawler = crawler
        self.fallback = fallback

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        setting = FALLBACK_SETTINGS[cls.scheme]
        try:
            fallback_cls = read(crawler.settings, setting) or load_object(DEFAULT_FALLBACK)
        except ConfigError as exc:  # built before any other component: the one line naming it is logged here
            refuse_to_start(crawler, exc)
            raise NotConfigured(str(exc)) from None
        if isinstance(fallback_cls, type) and issubclass(fallback_cls, ConsentDownloadHandler):
            raise NotConfigured(f"{setting} names a consentcrawl handler, not one that downloads")
        return cls(crawler, build_from_crawler(fallback_cls, crawler))

    async def download_request(self, request: Request) -> Response:
        runtime = get_runtime(self.crawler)
        if runtime is None:
            raise ConsentMisconfigured
        if runtime.is_own(request):
            refused = await runtime.may_fetch_robots(request.url)  # each robots.txt hop, again at send time
            if refused is not None:
                raise IgnoreRequest(f"consentcrawl: {refused}")
        elif is_checked_url(request.url):
            decision = await runtime.decide_send(request)
            if runtime.drops(decision):
                raise ConsentDenied(decision)
        response: Response = await self.fallback.download_request(request)
        return response

    async def close(self) -> None:
        close = getattr(self.fallback, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result


class ConsentHTTPDownloadHandler(ConsentDownloadHandler):
    scheme = "http"


class ConsentHTTPSDownloadHandler(ConsentDownloadHandler):
    scheme = "https"
