"""Scrapy's log lines read as text: the loggers that write the lines consentcrawl rewrites, and their templates.

Scrapy offers no hook on a log line but a filter on its logger, and no contract for either its loggers' names (module
names, some of private modules) or its messages' templates: both are gathered here, so that a Scrapy release that
moves them is one module to read again, and ``tests/test_scrapy_internals.py`` checks them on the installed Scrapy.
:mod:`consentcrawl.downloadlines`, :mod:`consentcrawl.requestlines` and :mod:`consentcrawl.personlines` use them.
"""

from __future__ import annotations

import logging
import re
from typing import Any

#: the loggers of Scrapy's HTTP download handlers (HTTP/1.1, the httpx and aiohttp ones' shared base, HTTP/2's
#: streams), of the httpx client Scrapy's httpx handler sends with (it writes ``HTTP Request: GET url "HTTP/1.1 200
#: OK"`` at INFO for every request, as the response's head arrives, before the page is read), and of
#: scrapy-playwright's handler, whose ``Closing page due to failed request: <GET url> exc_type=... exc_msg=...``
#: (WARNING) comes as a browser download fails (a navigation error, a page method's timeout): the page never reaches
#: the response phase, so a person who may refuse on it is not known to have
DOWNLOAD_HANDLER_LOGGERS = ("scrapy.core.downloader.handlers.http11",
                            "scrapy.core.downloader.handlers._base_streaming", "scrapy.core._http2.stream", "httpx",
                            "scrapy-playwright")


#: the loggers of the middlewares whose lines name a request or its response at INFO or above: HttpErrorMiddleware's
#: ``Ignoring response <404 url>: ...`` (INFO), RetryMiddleware's ``Gave up retrying <GET url> (failed N times):
#: <reason>`` (ERROR; ``get_retry_request``'s default logger) and the files and images pipelines' ``File (code:
#: 404): Error downloading file from <GET url> referred in <referer>`` (WARNING; :data:`MEDIA_LINE_LOGGER`)
MEDIA_LINE_LOGGER = "scrapy.pipelines.files"
#: HttpCompressionMiddleware's WARNINGs (``cannot decode the response for <url>``, ``<200 url> body size after
#: decompression``, ``Ignored response <200 url>``), written as text after consentcrawl's response phase
COMPRESSION_LINE_LOGGER = "scrapy.downloadermiddlewares.httpcompression"
REQUEST_LINE_LOGGERS = ("scrapy.spidermiddlewares.httperror", "scrapy.downloadermiddlewares.retry", MEDIA_LINE_LOGGER,
                        COMPRESSION_LINE_LOGGER)
#: the loggers that write the crawl's stats as text at INFO (StatsCollector's ``Dumping Scrapy stats``, after
#: ``spider_closed``; PeriodicLog's lines): a spider or component that keys or fills a stat with a URL
#: (``stats.inc_value(f"links/{url}")``) names people there
STATS_LINE_LOGGERS = ("scrapy.statscollectors", "scrapy.extensions.periodic_log")
#: HttpCacheMiddleware's ``Could not read the cache entry for <GET url>`` (WARNING), written as text: report mode
#: reaches it with a request it would refuse
CACHE_LINE_LOGGER = "scrapy.downloadermiddlewares.httpcache"
#: the loggers whose lines name a person as text (:mod:`consentcrawl.personlines`): the scraper's item lines
#: (``Dropped``, ``Error processing``; the formatter chooses their text, but Scrapy adds the pipeline's traceback), a
#: media pipeline's ``found errors processing <item>``, a signal handler's exception, UrlLengthMiddleware's
#: ``Ignoring link`` and MetaCopyDetectionMiddleware's ``target request: <GET url>`` (both meet a request a project's
#: spider middleware adds below consentcrawl's link check before it is decided), SitemapSpider's ``Ignoring invalid
#: sitemap``, the files pipeline's referer, CookiesMiddleware's ``Invalid cookie found in request <GET url>`` (on
#: ``scrapy.utils.request``) and the scheduler's ``Unable to serialize request: <GET url>`` (``SCHEDULER_DEBUG`` with
#: a ``JOBDIR``), both of which report mode reaches, and the engine's ``Error while reading start items and
#: requests: <exception>`` (the spider's ``start`` raising), and the event loops' errors (asyncio's ``Task exception
#: was never retrieved``, Twisted's ``Unhandled error in Deferred``, each with the exception a project's task or
#: Deferred failed with), the stats' lines and the HTTP cache's
PERSON_LINE_LOGGERS = ("scrapy.core.scraper", "scrapy.pipelines.media", "scrapy.utils.signal",
                       "scrapy.spidermiddlewares.urllength", "scrapy.spidermiddlewares.metacopy",
                       "scrapy.spiders.sitemap", MEDIA_LINE_LOGGER, "scrapy.utils.request", "scrapy.core.scheduler",
                       "scrapy.core.engine", "asyncio", "twisted", CACHE_LINE_LOGGER, *STATS_LINE_LOGGERS)
#: ``get_retry_request``'s line when it gives up, on whatever logger the caller passed it
_RETRY_GAVE_UP = "Gave up retrying %(request)s (failed %(retry_times)d times): %(reason)s"


def is_retry_line(record: logging.LogRecord) -> bool:
    """Whether ``record`` is ``get_retry_request``'s ``Gave up retrying <request>`` line, on any logger (a project
    may pass its own); its ``Retrying`` line is at DEBUG."""
    return record.msg == _RETRY_GAVE_UP and isinstance(record.args, dict)


#: how the media pipelines' lines written as text (``media_failed``'s ``File (unknown-error): Error downloading
#: file from {request} referred in <{referer}>: {failure}``) name their request: Scrapy's ``<METHOD url>``
MEDIA_LINE_REQUEST = re.compile(r"<.+? (\S+)> referred in <")
#: a URL in a line written as text (Scrapy writes request URLs escaped: no space, ``<`` or ``>`` in them)
LINE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s<>]+")


def request_line_subject(record: logging.LogRecord) -> tuple[Any, str, str, Any] | None:
    """The request a line of those middlewares is about, the URL it names, the text that names it (Scrapy's
    ``str(request)`` or ``repr(response)``) and the line's ``reason`` argument (a retry's: an exception or text);
    None for any other line. They log with a mapping of arguments (``{"response": response}``, ``{"request":
    request, ...}``): Scrapy's message templates, read here because the message itself is already text."""
    from scrapy import Request
    from scrapy.http import Response

    if (record.name not in REQUEST_LINE_LOGGERS and not is_retry_line(record)) or not isinstance(record.args, dict):
        return None
    named = record.args.get("response", record.args.get("request"))
    if isinstance(named, Response):
        return named.request, named.url, repr(named), None
    if isinstance(named, Request):
        return named, named.url, str(named), record.args.get("reason")
    return None
