"""A page the send-time handler downloaded and the response phase refused: its refusal reaches the request's
errback past every other downloader middleware's ``process_exception``.

The handler decides a page's response phase before handing it on (Scrapy's ``response_downloaded`` must never see
a refused page), so a refusal there can only be raised, and Scrapy hands a download handler's exception to each
downloader middleware's ``process_exception``. One that answers any failed download with a request (a proxy
rotator, a middleware that tries every error again) would have the refused page fetched again, each time decided
and refused after the server had sent it. A refusal made in a middleware's ``process_response`` goes straight to
the errback instead. So :class:`~consentcrawl.middlewares.ConsentResponseMiddleware`, the outermost downloader
middleware and so the first whose ``process_exception`` Scrapy calls, answers a :class:`PageDenied` with a
:class:`RefusedPage`: an empty stand-in (no body, no header, not the page's URL) that goes first to its own
``process_response``, which raises the refusal there, before any other middleware sees either.
"""

from __future__ import annotations

from scrapy.http import Response

from .middlewares import ConsentDenied


class PageDenied(ConsentDenied):
    """The response phase's refusal of a page the send-time handler downloaded (:mod:`consentcrawl.pagedenied`)."""


class RefusedPage(Response):
    """The stand-in for a refused page, carrying its refusal; nothing of the page is in it."""

    def __init__(self, denied: PageDenied) -> None:
        super().__init__("about:blank", status=403)
        self.denied = denied


def stand_in(exception: BaseException) -> RefusedPage | None:
    """The stand-in that carries ``exception`` to the response phase's ``process_response``, if it is a refused
    page's (every other exception goes on through the other middlewares' ``process_exception``)."""
    return RefusedPage(exception) if isinstance(exception, PageDenied) else None
