"""``ConsentLogFormatter``: the lines Scrapy writes about a request consentcrawl refused name no URL.

A refused request fails to its errback (``ConsentDenied``), as one a downloader middleware drops does. When the
errback raises (one written for ``HttpError`` reads ``failure.value.response``, which this failure has none of),
Scrapy logs ``Spider error processing <GET url>`` at ERROR: the URL of the page of a person who did not authorize
the crawl, in a log that is kept and shipped more widely than the audit log. The line keeps its level, and Scrapy
still adds the traceback; it names the reason code instead of the request, whose URL is in the audit log.

The add-on puts this class in ``LOG_FORMATTER`` and the formatter it replaces (the project's, or Scrapy's) in
``CONSENTCRAWL_LOG_FORMATTER``, as it wraps the download handlers: that one makes every line, this one only
takes the URL out of those about a refused request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy.logformatter import LogFormatter
from scrapy.utils.misc import build_from_crawler
from twisted.python.failure import Failure

from .errors import ConfigError
from .middlewares import ConsentDenied, ConsentMisconfigured
from .runtime import refuse_to_start
from .settings import read

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from typing_extensions import Self

#: Scrapy's ``SPIDERERRORMSG``, with the reason code where the request was
REFUSED_ERROR = "Spider error processing a request consentcrawl refused (%(reason)s; its URL is in the audit log)"


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

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        try:
            inner_cls = read(crawler.settings, "CONSENTCRAWL_LOG_FORMATTER") or LogFormatter
        except ConfigError as exc:  # the crawl does not start; Scrapy's formatter writes the lines until it stops
            refuse_to_start(crawler, exc)
            inner_cls = LogFormatter
        if isinstance(inner_cls, type) and issubclass(inner_cls, ConsentLogFormatter):
            inner_cls = LogFormatter  # named twice: one wrapper is enough
        return cls(build_from_crawler(inner_cls, crawler))

    def spider_error(self, failure: Failure, request: Request, response: Response | Failure,
                     spider: Spider) -> dict[str, Any]:
        line: dict[str, Any] = self.inner.spider_error(failure, request, response, spider)
        reason = refused_reason(response)  # an errback's error: Scrapy passes the download's failure as response
        if reason is None or not isinstance(line, dict):  # not about a refused request, or a line it does not write
            return line
        level = line.get("level", logging.ERROR)
        return {"level": level, "msg": REFUSED_ERROR, "args": {"reason": reason}}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
