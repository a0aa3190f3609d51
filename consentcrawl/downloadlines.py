"""``DownloadLines``: the lines Scrapy's download handlers write about a page, written once the page is decided.

While a page downloads, Scrapy's HTTP handlers log a WARNING naming its request: the page is larger than
``DOWNLOAD_WARNSIZE`` (or ``DOWNLOAD_MAXSIZE``: the download is then cancelled), or its connection lost data
(``Got data loss in <url>``, when ``DOWNLOAD_FAIL_ON_DATALOSS`` fails the download). Such a line is written before
the response phase reads the page, so before a person who refuses on their own page (``indexable: false``,
``#nobot``, ``X-Robots-Tag``) is known: the send-time decision knows whose page it is, not what the page says. In
report mode a request consentcrawl would deny is downloaded as well.

So the line of a checked request that the send-time handler sent is held (a filter on the handlers' loggers) until
its page is decided: by the response phase, or, when the download fails (the page is then never read), by the
send-time decision. An allowed page's line is then written as Scrapy wrote it; any other's at DEBUG as written,
and at the level Scrapy chose with ``a request consentcrawl refused (<reason>)`` in place of the request. A line
still held when the spider closes (its page never reached the response phase) is written as refused
(``undecided``). Held lines are written a moment later than Scrapy logged them, after the page's own lines.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy import signals

from ._scrapy_internals import DOWNLOAD_HANDLER_LOGGERS, download_line_request
from .decision import not_allowed_reason

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from .decision import Decision

#: what stands in a held line for the request of a page consentcrawl did not allow
REFUSED_REQUEST = "a request consentcrawl refused ({reason}; its URL is in the audit log)"
#: marks a record this filter has let through (written again through its logger, it meets the filter again)
_RELEASED = "_consentcrawl_released"


class DownloadLines(logging.Filter):
    """Holds the download handlers' lines about the pages being sent until each page is decided (module doc)."""

    def __init__(self) -> None:
        super().__init__()
        #: per URL being downloaded: how many requests for it are in flight, and the lines held for it
        self._held: dict[str, tuple[int, list[logging.LogRecord]]] = {}

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
        for url in list(self._held):
            self._write(self._held.pop(url)[1], "undecided")

    def sending(self, url: str) -> None:
        """A checked request for ``url`` goes to the download handler: its lines wait for :meth:`decided`."""
        count, held = self._held.get(url, (0, []))
        self._held[url] = (count + 1, held)

    def decided(self, url: str, decision: Decision | None) -> None:
        """The page at ``url`` (the URL it was sent for) is decided: its held lines are written accordingly."""
        entry = self._held.pop(url, None)
        if entry is None:
            return
        count, held = entry
        if count > 1:  # another request for the URL is still being downloaded
            self._held[url] = (count - 1, [])
        self._write(held, not_allowed_reason(decision))

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _RELEASED, False) or not self._held:
            return True
        named = download_line_request(record)
        if named is None or named[0] not in self._held:
            return True
        self._held[named[0]][1].append(record)
        return False

    @staticmethod
    def _write(held: list[logging.LogRecord], reason: str | None) -> None:
        for record in held:
            logger = logging.getLogger(record.name)
            named = download_line_request(record) if reason is not None else None
            if named is not None:
                message = record.getMessage()
                start, end = named[1]
                clean = logging.makeLogRecord({**record.__dict__, "args": None, "exc_info": None, "exc_text": None,
                                               "msg": message[:start] + REFUSED_REQUEST.format(reason=reason)
                                               + message[end:], _RELEASED: True})
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
                setattr(record, _RELEASED, True)
                logger.handle(record)
                logger.handle(clean)
                continue
            setattr(record, _RELEASED, True)
            logger.handle(record)
