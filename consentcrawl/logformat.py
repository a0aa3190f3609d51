"""``ConsentLogFormatter``: the lines Scrapy writes about a request consentcrawl refused name no URL.

A refused request fails to its errback (``ConsentDenied``), as one a downloader middleware drops does. When the
errback raises (one written for ``HttpError`` reads ``failure.value.response``, which this failure has none of),
Scrapy logs ``Spider error processing <GET url>`` at ERROR: the URL of the page of a person who did not authorize
the crawl, in a log that is kept and shipped more widely than the audit log. The same holds for a callback that
raises on a page whose decision is not an allow (report mode hands such pages to their callbacks).

Such an error reaches Scrapy already sanitized (:mod:`consentcrawl.spidererrors`, which this formatter puts in
place as the spider opens): the project's exception, its message and traceback were logged at DEBUG, and what
Scrapy logs, signals and counts is a :class:`~consentcrawl.spidererrors.RefusedRequestError` with the type's name
and the reason code. This formatter writes, at the level the wrapped formatter chose, a line of its own on
Scrapy's logger that names the type and the reason code (the URL is in the audit log), and turns Scrapy's own line
down to DEBUG.

Scrapy's middlewares write their own lines about a request (``Ignoring response <404 url>``, ``Gave up retrying
<GET url>``); :class:`~consentcrawl.requestlines.RequestLines`, put on their loggers here, rewrites those.

``scrapy parse <url>`` ends with ``No response downloaded for: <url>`` at ERROR when nothing was downloaded;
:class:`ParseCommandLine` says instead, when the request was refused, that it was and why.

The add-on puts this class in ``LOG_FORMATTER`` and the formatter it replaces (the project's, or Scrapy's) in
``CONSENTCRAWL_LOG_FORMATTER``, as it wraps the download handlers: that one makes every line, this one only
takes the URL out of those about a refused request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.logformatter import LogFormatter
from scrapy.utils.misc import build_from_crawler

from ._scrapy_internals import PARSE_LOGGER, parse_command_url
from .downloadlines import UNREAD
from .errors import ConfigError
from .linecheck import CheckedLines, to_debug
from .personlines import PersonLines
from .requestlines import RequestLines
from .runtime import config_error, refuse_to_start
from .settings import read
from .spidererrors import SCRAPER_LOGGER, CloseReasons, RefusedRequestError, SpiderErrors, not_allowed, not_read
from .startup import build_wrapped, hook_engine_close, hook_scraper

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from twisted.python.failure import Failure
    from typing_extensions import Self

#: Scrapy's ``SPIDERERRORMSG``, with the exception's type and the reason code where the request was
REFUSED_ERROR = ("Spider error processing a request consentcrawl refused (%(reason)s; its URL is in the audit "
                 "log): %(error)s, its message and traceback at DEBUG")
#: Scrapy's ``DOWNLOADERRORMSG`` for a request without an allow (report mode sends it) whose download failed
REFUSED_DOWNLOAD = ("Error downloading a request consentcrawl did not allow (%(reason)s; its URL is in the audit "
                    "log): %(error)s, its message and traceback at DEBUG")
#: the same for an allowed person's page, which the failed download left unread (``page-unread``)
UNREAD_DOWNLOAD = ("Error downloading a person's page consentcrawl did not read (%(reason)s; its URL is in the audit "
                   "log): %(error)s, its message and traceback at DEBUG")
#: ``scrapy parse``'s last line for a URL consentcrawl refused (the URL typed is at DEBUG and in the audit log)
PARSE_REFUSED = "No response downloaded: the request was refused (%(reason)s; its URL is in the audit log)"
#: the same for a crawl whose configuration is invalid: it did not start, no audit log holds the URL
PARSE_NOT_STARTED = "No response downloaded: the crawl did not start (%(reason)s; the URL is at DEBUG)"
#: Scrapy's own line for it, with the sanitized failure, at DEBUG: the original is the DEBUG line before it
REFUSED_SANITIZED = ("Spider error processing a request consentcrawl refused (%(reason)s): sent to spider_error "
                     "handlers as %(error)s without its message or values")


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
        inner = build_wrapped(crawler, inner_cls, "CONSENTCRAWL_LOG_FORMATTER", "crawled", "a log formatter")
        # one that cannot be built stops the crawl; Scrapy's own formatter makes the lines until it stops
        formatter = cls(inner if inner is not None else build_from_crawler(LogFormatter, crawler), crawler)
        RequestLines.install(crawler)  # the middlewares' lines about such a request, which it does not write
        crawler.signals.connect(formatter.spider_opened, signal=signals.spider_opened)
        return formatter

    def spider_opened(self, spider: Any = None) -> None:
        """Spider errors about refused requests reach Scrapy sanitized from here on (before the first request)."""
        if self.crawler is None:
            return
        reasons = CloseReasons(self.crawler)
        hook_scraper(self.crawler, "handle_spider_error",
                     lambda crawler, handle: SpiderErrors(crawler, handle, reasons),
                     "a refused person's data would reach spider_error handlers")
        hook_engine_close(self.crawler, reasons)
        if config_error(self.crawler) is not None:  # nothing starts: scrapy parse's URL was not allowed either
            ParseCommandLine.install(self.crawler, None)
        PersonLines.install(self.crawler).opened()  # the lines that name a person as text (project's, signal errors...)

    def spider_error(self, failure: Failure, request: Request, response: Response | Failure,
                     spider: Spider) -> dict[str, Any]:
        line: dict[str, Any] = self.inner.spider_error(failure, request, response, spider)
        error = failure.value
        if not isinstance(error, RefusedRequestError) or not isinstance(line, dict):
            return line  # not about a refused request, or a line it does not write
        args = {"reason": error.reason, "error": type(error).__name__}
        level = line.get("level", logging.ERROR)
        if level > logging.DEBUG:
            SCRAPER_LOGGER.log(level, REFUSED_ERROR, args, extra={"spider": spider})
        return {"level": logging.DEBUG, "msg": REFUSED_SANITIZED, "args": args}

    def download_error(self, failure: Failure, request: Request, spider: Spider,
                       errmsg: str | None = None) -> dict[str, Any]:
        """Scrapy's ``Error downloading <GET url>`` (with the error's message and traceback, which can hold the URL
        too: a timeout's does), for a request whose errback raised or that has none. For a request without an
        allow (report mode sends what it would deny) the URL goes to DEBUG, as for a spider error; for an allowed
        person's page too, which the failed download left unread (``page-unread``: a refusal on it is not known)."""
        line: dict[str, Any] = self.inner.download_error(failure, request, spider, errmsg)
        reason = not_read(self.crawler, request)
        if reason is None or not isinstance(line, dict):
            return line
        level = line.get("level", logging.ERROR)
        if level > logging.DEBUG:
            SCRAPER_LOGGER.log(level, UNREAD_DOWNLOAD if reason == UNREAD else REFUSED_DOWNLOAD,
                               {"reason": reason, "error": type(failure.value).__name__}, extra={"spider": spider})
        return {**line, "level": logging.DEBUG}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ParseCommandLine(CheckedLines):
    """On ``scrapy parse``'s logger: its ``No response downloaded for: <url>`` line for the request it started with,
    when that request was refused (or never decided), names the reason code, not the URL; the line as Scrapy wrote
    it goes to DEBUG. The line is logged after the crawl, so the filter stays on the logger for the command's run.
    With no request (a crawl whose configuration is invalid, whose start requests are never read): the line of
    any URL, which nothing decided."""

    def __init__(self, crawler: Crawler, request: Request | None) -> None:
        super().__init__()
        self.crawler = crawler
        self.request = request

    @classmethod
    def install(cls, crawler: Crawler, request: Request | None) -> None:
        logging.getLogger(PARSE_LOGGER).addFilter(cls(crawler, request))

    def check(self, record: logging.LogRecord) -> bool:
        url = parse_command_url(record)
        if url is None or (self.request is not None and url != self.request.url):
            return True
        reason = not_allowed(self.crawler, self.request, url)
        if reason is None:
            return True
        to_debug(record)
        record.msg, record.args = PARSE_REFUSED if self.request is not None else PARSE_NOT_STARTED, {"reason": reason}
        return True
