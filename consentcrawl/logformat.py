"""``ConsentLogFormatter``: the lines Scrapy writes about a request consentcrawl refused name no URL.

A refused request fails to its errback (``ConsentDenied``), as one a downloader middleware drops does. When the
errback raises (one written for ``HttpError`` reads ``failure.value.response``, which this failure has none of),
Scrapy logs ``Spider error processing <GET url>`` at ERROR: the URL of the page of a person who did not authorize
the crawl, in a log that is kept and shipped more widely than the audit log. The same holds for a callback that
raises on a page whose decision is not an allow (report mode hands such pages to their callbacks).

The formatter only makes the line; Scrapy logs it with the exception as ``exc_info``, and the exception's text
and traceback are the project's (``raise ValueError(f"failed {failure.request.url}")``), out of any formatter's
reach. So for such a request Scrapy's own line is turned down to DEBUG, where the message and traceback are kept
for debugging, and this formatter writes, at the level the wrapped formatter chose, a line of its own on Scrapy's
logger that names the exception's type and the reason code: the URL is in the audit log.

The add-on puts this class in ``LOG_FORMATTER`` and the formatter it replaces (the project's, or Scrapy's) in
``CONSENTCRAWL_LOG_FORMATTER``, as it wraps the download handlers: that one makes every line, this one only
takes the URL out of those about a refused request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy.http import Response
from scrapy.logformatter import LogFormatter
from scrapy.utils.misc import build_from_crawler
from twisted.python.failure import Failure

from .errors import ConfigError
from .middlewares import ConsentDenied, ConsentMisconfigured
from .runtime import get_runtime, is_checked_url, refuse_to_start
from .settings import read

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from typing_extensions import Self

#: Scrapy's ``SPIDERERRORMSG``, with the exception's type and the reason code where the request was
REFUSED_ERROR = ("Spider error processing a request consentcrawl refused (%(reason)s; its URL is in the audit "
                 "log): %(error)s, its message and traceback at DEBUG")
#: Scrapy's own line for it, with the traceback, at DEBUG
REFUSED_TRACEBACK = "Spider error processing a request consentcrawl refused (%(reason)s): <%(method)s %(url)s>"
#: the logger Scrapy writes spider errors on: a project's handlers and filters for them see this line too
_SCRAPER = logging.getLogger("scrapy.core.scraper")


def refused_reason(failure: Any) -> str | None:
    """The reason code when ``failure`` is consentcrawl's refusal of a request, else None."""
    if not isinstance(failure, Failure):
        return None
    error = failure.value
    if isinstance(error, ConsentDenied):
        return str(error.decision.reason)
    if isinstance(error, ConsentMisconfigured):
        return "configuration error"
    return None


class ConsentLogFormatter:
    """Delegates every line to the formatter it wraps; a spider error about a refused request loses its URL."""

    def __init__(self, inner: Any, crawler: Crawler | None = None) -> None:
        self.inner = inner
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        try:
            inner_cls = read(crawler.settings, "CONSENTCRAWL_LOG_FORMATTER") or LogFormatter
        except ConfigError as exc:  # the crawl does not start; Scrapy's formatter writes the lines until it stops
            refuse_to_start(crawler, exc)
            inner_cls = LogFormatter
        if isinstance(inner_cls, type) and issubclass(inner_cls, ConsentLogFormatter):
            inner_cls = LogFormatter  # named twice: one wrapper is enough
        return cls(build_from_crawler(inner_cls, crawler), crawler)

    def spider_error(self, failure: Failure, request: Request, response: Response | Failure,
                     spider: Spider) -> dict[str, Any]:
        line: dict[str, Any] = self.inner.spider_error(failure, request, response, spider)
        # an errback's error: Scrapy passes the download's failure as response; a callback's: the response
        reason = refused_reason(response) or self._not_allowed(response)
        if reason is None or not isinstance(line, dict):  # not about a refused request, or a line it does not write
            return line
        level = line.get("level", logging.ERROR)
        if level > logging.DEBUG:
            _SCRAPER.log(level, REFUSED_ERROR, {"reason": reason, "error": type(failure.value).__name__},
                         extra={"spider": spider})
        return {"level": logging.DEBUG, "msg": REFUSED_TRACEBACK,
                "args": {"reason": reason, "method": request.method, "url": request.url}}

    def _not_allowed(self, response: Any) -> str | None:
        """The reason code when ``response`` is a page whose decision is not an allow (report mode hands it to its
        callback), or one no decision was made for; None for an allowed page or a URL that is not checked."""
        if self.crawler is None or not isinstance(response, Response) or not is_checked_url(response.url):
            return None
        runtime = get_runtime(self.crawler)
        if runtime is None:
            return "configuration error"
        decision = runtime.decision_for(response.request, response.url)
        if decision is None:
            return "undecided"
        return None if decision.allowed else str(decision.reason)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
