"""``RequestLines``: Scrapy's middleware lines about a request consentcrawl did not allow name its reason code.

Report mode sends what it would deny, so such a request meets Scrapy's middlewares as any other does: a 404 page
of a person who did not authorize the crawl is ``Ignoring response <404 url>: HTTP status code is not handled or
not allowed`` at INFO (``HttpErrorMiddleware``), a download that failed every retry ``Gave up retrying <GET url>
(failed 3 times): <reason>`` at ERROR (``RetryMiddleware``, ``get_retry_request``), a media file that failed
``File (code: 404): Error downloading file from <GET url> referred in <referer>`` at WARNING (``FilesPipeline``,
``ImagesPipeline``), a page's compressed size or encoding (``HttpCompressionMiddleware``, after the response
phase), in a log kept and shipped more widely than the audit log. Lines written as text, with no request among
their arguments (``File (unknown-error)``, the compression lines), are judged by every live decision at the URL
they name. A retry's reason is an exception whose message can name the URL too (a timeout's does).

A filter on those middlewares' loggers rewrites such a line, at the level Scrapy chose, when its request's decision
is not an allow (or none was made: ``undecided``), as :mod:`consentcrawl.downloadlines` does for the download
handlers' lines: the request (or response) is replaced by ``a request consentcrawl did not allow (<reason>; its URL
is in the audit log)``, a response keeps its status, and a retry's reason is kept only when it is a status line
(``503 Service Unavailable``); an exception gives its type's name, any other text is left out. The line as Scrapy
wrote it goes to DEBUG. Either line is about a page not read as its person's (an error status, or retries that ran
out): for an allowed person's page the reason is ``page-unread`` (what their page says, a refusal included, is not
known), as for a failed download's lines.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from scrapy import signals

from .decision import not_allowed_reason
from .downloadlines import UNREAD, UNREAD_PAGE, named_in, unread_reason
from .heldlocks import crawl_alive
from .linecheck import CheckedLines, rewrite
from .runtime import get_runtime, is_checked_url
from .scrapylines import (
    COMPRESSION_LINE_LOGGER,
    LINE_URL,
    MEDIA_LINE_LOGGER,
    MEDIA_LINE_REQUEST,
    REQUEST_LINE_LOGGERS,
    is_retry_line,
    request_line_subject,
)
from .spidererrors import not_read

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

#: what stands in a line for a request consentcrawl did not allow
NOT_ALLOWED = "a request consentcrawl did not allow ({reason}; its URL is in the audit log)"
#: the loggers whose lines may be written as text, with no request among their arguments
TEXT_LINE_LOGGERS = (MEDIA_LINE_LOGGER, COMPRESSION_LINE_LOGGER)
#: a retry's reason that says nothing of the page: Scrapy's ``response_status_message`` (``503 Service Unavailable``)
_STATUS = re.compile(r"\d{3}(?: [A-Za-z' -]{0,60})?")


def reason_text(reason: Any) -> str:
    """What a rewritten retry line may say of its reason (module doc)."""
    if isinstance(reason, BaseException) or (isinstance(reason, type) and issubclass(reason, BaseException)):
        name = reason.__name__ if isinstance(reason, type) else type(reason).__name__
        return f"{name}, its message at DEBUG"
    if isinstance(reason, str) and _STATUS.fullmatch(reason):
        return reason
    return "its reason at DEBUG"


class RequestLines(CheckedLines):
    """On the middlewares' loggers for one crawl: their lines about a request without an allow name no URL."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__()
        self.crawler = crawler
        #: a crawl that raised before it had an engine gets no ``spider_closed``, so its filter stays on the loggers:
        #: it writes no line of its own, and must leave the lines of the process's later crawls to their filters
        self.alive = crawl_alive(crawler)

    @classmethod
    def install(cls, crawler: Crawler) -> RequestLines:
        """The filter on the loggers, taken off as the spider closes."""
        lines = cls(crawler)
        for name in REQUEST_LINE_LOGGERS:
            logging.getLogger(name).addFilter(lines)
        crawler.signals.connect(lines.close, signal=signals.spider_closed)
        return lines

    def close(self, spider: Any = None) -> None:
        for name in REQUEST_LINE_LOGGERS:
            logging.getLogger(name).removeFilter(self)

    def check(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or not self.alive():
            return True
        spider = getattr(record, "spider", None)
        if spider is not None and spider is not self.crawler.spider:
            return True  # another crawl's line, in the same process
        named = request_line_subject(record)
        if named is None:
            return self._text_line(record) if record.name in TEXT_LINE_LOGGERS else True
        request, url, text, reason = named
        because = not_read(self.crawler, request, url)
        if because is None:
            return True
        instead = _instead(because)
        if is_retry_line(record):  # Scrapy's template, with what may be said in place of the request and
            args = record.args if isinstance(record.args, dict) else {}  # the reason
            message = str(record.msg) % {**args, "request": instead, "reason": reason_text(reason)}
        elif text[1:4].isdigit():  # a response: its status stays, it says nothing of the person
            message = record.getMessage().replace(text, f"<{text[1:].split(' ', 1)[0]}> to {instead}", 1)
        else:
            message = record.getMessage().replace(text, instead, 1)
        self._rewrite(record, message, url)
        return True

    def _text_line(self, record: logging.LogRecord) -> bool:
        """A line written as text (no request among its arguments): each checked URL it names (a media line: its
        request's, not the referer's) is taken out unless every live request decided at that URL was allowed (a
        media file: and is no one's, or it is ``page-unread``); a URL no live request explains is ``undecided``."""
        message = record.getMessage()
        if record.name == MEDIA_LINE_LOGGER:  # a file that failed was not read: an allowed person's is unread
            found = MEDIA_LINE_REQUEST.search(message)
            urls, judge = ([found[1]] if found is not None else []), unread_reason
        else:  # a page the response phase has read and decided
            urls = list(dict.fromkeys(url.rstrip(".,;:)'\"") for url in LINE_URL.findall(message)))
            judge = not_allowed_reason
        runtime = get_runtime(self.crawler)
        said, taken = message, []
        for url in (url for url in urls if is_checked_url(url)):
            reasons = [judge(d) for d in runtime.decisions_at(url)] if runtime is not None else []
            because = next((r for r in reasons if r), None) if reasons else judge(None)
            named = named_in(said, url)
            if because is not None and named is not None:
                stand = _instead(because)
                said = named.sub(lambda _: stand, said)  # noqa: B023 - used at once, in this turn of the loop
                taken.append(url)
        if taken:
            self._rewrite(record, said, *taken)
        return True

    def _rewrite(self, record: logging.LogRecord, message: str, *urls: str) -> None:
        """``record`` says ``message`` (``urls`` left out); the line as Scrapy wrote it goes to DEBUG first."""
        for url in urls:
            message = message.replace(url, "<its URL>")
        rewrite(record, message)


def _instead(because: str) -> str:
    return (UNREAD_PAGE if because == UNREAD else NOT_ALLOWED).format(reason=because)
