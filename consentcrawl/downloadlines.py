"""``DownloadLines``: the lines Scrapy's download handlers write about a page, written once the page is decided.

The same holds for the clients those handlers send with when they log a page's URL before it is read (httpx's
``HTTP Request: GET url`` at INFO, scrapy-playwright's failed-request WARNING): the loggers are listed, with why, in
:data:`~consentcrawl.scrapylines.DOWNLOAD_HANDLER_LOGGERS`.

While a page downloads, Scrapy's HTTP handlers log a WARNING naming its request: the page is larger than
``DOWNLOAD_WARNSIZE`` (or ``DOWNLOAD_MAXSIZE``: the download is then cancelled), or its connection lost data
(``Got data loss in <url>``, when ``DOWNLOAD_FAIL_ON_DATALOSS`` fails the download). Such a line is written before
the response phase reads the page, so before a person who refuses on their own page (``indexable: false``,
``#nobot``, ``X-Robots-Tag``) is known: the send-time decision knows whose page it is, not what the page says. In
report mode a request consentcrawl would deny is downloaded as well.

So a line of these handlers that names the URL of a checked request the send-time handler is sending is held (a
filter on the handlers' loggers) until every request for that URL that was in flight when it was logged is decided:
the line cannot say which of them it is about (it names the URL; its request's method is any text), so it waits for
all of them, and any one that is not allowed decides it. A request is decided by the response phase, or, when its
download fails, by :meth:`DownloadLines.failed`: its page was then never read, so for a person's page the send-time
allow cannot stand for what the page says (the person may refuse on that very page), and the line is written as
for an unread page. An allowed page's line is written as Scrapy wrote it; any other at DEBUG as written, and at the
level Scrapy chose with the request (``<METHOD url>``, whatever the method) or the URL replaced by what consentcrawl
may say of it. A line still held when the spider closes (a page that never reached the response phase) is written
as refused (``undecided``). Held lines are written a moment later than Scrapy logged them, after the page's own
lines.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scrapy import signals

from .decision import not_allowed_reason
from .linecheck import UNCHECKED, CheckedLines
from .scrapylines import DOWNLOAD_HANDLER_LOGGERS

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

    from .decision import Decision

#: what stands in a held line for the request of a page consentcrawl did not allow
REFUSED_REQUEST = "a request consentcrawl refused ({reason}; its URL is in the audit log)"
#: what stands in it for a person's page that was allowed when sent but never read (its download failed)
UNREAD_PAGE = "a person's page consentcrawl did not read ({reason}; its URL is in the audit log)"
#: the reason an unread person's page is given: their refusal on that page, if any, is not known
UNREAD = "page-unread"
#: marks a record this filter has let through (written again through its logger, it meets the filter again)
_RELEASED = "_consentcrawl_released"


def stand_in(reason: str) -> str:
    """What a line says in place of a request or URL it may not name, for ``reason``."""
    return (UNREAD_PAGE if reason == UNREAD else REFUSED_REQUEST).format(reason=reason)


def unread_reason(decision: Decision | None) -> str | None:
    """What a line about a request whose page was never read may say of it: the reason code of a decision that is
    not an allow, :data:`UNREAD` for an allowed person's page (what the page says is not known), None for an
    allowed page that is no one's."""
    reason = not_allowed_reason(decision)
    if reason is None and decision is not None and decision.subject is not None:
        return UNREAD
    return reason


def named_in(message: str, url: str) -> re.Pattern[str] | None:
    """A pattern for where ``message`` names ``url``: as a request's text (``<METHOD url>``, any method) or alone;
    None when it does not. The URL ends where the text cannot go on as that URL (a longer URL that starts with it
    is another page)."""
    if url not in message:
        return None
    quoted = re.escape(url)
    pattern = re.compile(rf"<[^<>]*? {quoted}>|{quoted}(?=[\s>)\]\"']|\.(?:\s|$)|$)", re.DOTALL)
    return pattern if pattern.search(message) else None


@dataclass
class _Held:
    record: logging.LogRecord
    #: the URLs the line names, each with the pattern that finds it
    names: dict[str, re.Pattern[str]]
    #: the requests it may be about that are not decided yet (by identity)
    waiting: list[Any]
    #: the reasons of those decided that were not allowed
    reasons: list[str] = field(default_factory=list)


class DownloadLines(CheckedLines):
    """Holds the download handlers' lines about the pages being sent until each page is decided (module doc)."""

    def __init__(self) -> None:
        super().__init__()
        #: per URL, the requests for it being downloaded (each object once per send)
        self._sending: dict[str, list[Any]] = {}
        #: the lines held, in the order they were logged
        self._held: list[_Held] = []

    @classmethod
    def install(cls, crawler: Crawler) -> DownloadLines:
        """A filter on the handlers' loggers for this crawl, taken off (its lines written) as the spider closes."""
        lines = cls()
        for name in DOWNLOAD_HANDLER_LOGGERS:
            logging.getLogger(name).addFilter(lines)
        crawler.signals.connect(lines.close, signal=signals.spider_closed)
        return lines

    def close(self, spider: Any = None) -> None:
        for name in DOWNLOAD_HANDLER_LOGGERS:
            logging.getLogger(name).removeFilter(self)
        held, self._held, self._sending = self._held, [], {}
        for line in held:
            self._write(line, line.reasons[0] if line.reasons else "undecided")

    def sending(self, request: Request) -> None:
        """A checked request goes to the download handler: lines naming its URL wait for it to be decided."""
        self._sending.setdefault(request.url, []).append(request)

    def decided(self, request: Request, decision: Decision | None) -> None:
        """The page of ``request`` (sent by :meth:`sending`) is decided: the held lines that waited for it alone
        are written accordingly."""
        self._done(request, not_allowed_reason(decision))

    def failed(self, request: Request, decision: Decision | None) -> None:
        """The download of ``request`` failed: its page was never read, so the send-time ``decision`` stands for
        it, except that an allowed person's page counts as unread (:func:`unread_reason`)."""
        self._done(request, unread_reason(decision))

    def _done(self, request: Request, reason: str | None) -> None:
        sending = self._sending.get(request.url)
        if not sending or not any(r is request for r in sending):
            return
        sending.pop(next(i for i, r in enumerate(sending) if r is request))
        if not sending:
            del self._sending[request.url]
        ready = []
        for line in self._held:
            if any(r is request for r in line.waiting):
                line.waiting = [r for r in line.waiting if r is not request]
                if reason is not None:
                    line.reasons.append(reason)
                if not line.waiting:
                    ready.append(line)
        for line in ready:
            self._held.remove(line)
            self._write(line, line.reasons[0] if line.reasons else None)

    def check(self, record: logging.LogRecord) -> bool:
        if getattr(record, _RELEASED, False) or not self._sending or record.levelno <= logging.DEBUG:
            return True
        message = record.getMessage()
        names = {url: pattern for url in self._sending if (pattern := named_in(message, url)) is not None}
        if not names:
            return True
        self._held.append(_Held(record, names, [r for url in names for r in self._sending[url]]))
        return False

    @staticmethod
    def _write(line: _Held, reason: str | None) -> None:
        record = line.record
        logger = logging.getLogger(record.name)
        setattr(record, _RELEASED, True)
        if reason is None:
            logger.handle(record)
            return
        try:
            message = record.getMessage()
            for url in sorted(line.names, key=len, reverse=True):  # a longer URL first: a shorter one may start it
                message = line.names[url].sub(stand_in(reason).replace("\\", "\\\\"), message)
        except Exception:  # noqa: BLE001 - written as decided, in the response phase: it must not raise there
            message = UNCHECKED
        clean = logging.makeLogRecord({**record.__dict__, "args": None, "exc_info": None, "exc_text": None,
                                       "msg": message, _RELEASED: True})
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        with contextlib.suppress(Exception):  # a handler that cannot write the line as logged loses only that
            logger.handle(record)
        logger.handle(clean)
