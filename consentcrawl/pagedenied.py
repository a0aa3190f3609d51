"""A page the send-time handler downloaded and the response phase refused: its refusal reaches the request's
errback past every other downloader middleware's ``process_exception``.

The handler decides a page's response phase before handing it on (Scrapy's ``response_downloaded`` must never see
a refused page), so a refusal there can only be raised, and Scrapy hands a download handler's exception to each
downloader middleware's ``process_exception``. One that answers any failed download with a request (a proxy
rotator, a middleware that tries every error again) would have the refused page fetched again, each time decided
and refused after the server had sent it. A refusal made in a middleware's ``process_response`` goes straight to
the errback instead. So :class:`~consentcrawl.middlewares.ConsentResponseMiddleware`, the outermost downloader
middleware and so the first whose ``process_exception`` Scrapy calls, answers that refusal (:func:`page_denied`)
with a :class:`RefusedPage`: an empty stand-in (no body, no header, not the page's URL) that goes first to its own
``process_response``, which raises the refusal there, before any other middleware sees either.

A browser page a refused response was read from (scrapy-playwright's ``playwright_include_page``, handed on in
``meta["playwright_page"]``) still shows it: the errback would get it, where scrapy-playwright's own examples read,
screenshot and close it. It is closed as the page is refused (:func:`close_browser_page`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy.http import Response

from .middlewares import ConsentDenied

if TYPE_CHECKING:
    from scrapy import Request

    from .decision import Decision

logger = logging.getLogger("consentcrawl")

#: where scrapy-playwright hands the browser page on (``playwright_include_page``)
BROWSER_PAGE = "playwright_page"


#: marks the :class:`ConsentDenied` the send-time handler raises for a page it refused (the errback sees the class
#: every refusal has)
_PAGE = "_consentcrawl_refused_page"


def page_denied(decision: Decision) -> ConsentDenied:
    """The response phase's refusal of a page the send-time handler downloaded, to raise there."""
    denied = ConsentDenied(decision)
    setattr(denied, _PAGE, True)
    return denied


class RefusedPage(Response):
    """The stand-in for a refused page, carrying its refusal; nothing of the page is in it."""

    def __init__(self, denied: ConsentDenied) -> None:
        super().__init__("about:blank", status=403)
        self.denied = denied


def stand_in(exception: BaseException) -> RefusedPage | None:
    """The stand-in that carries ``exception`` to the response phase's ``process_response``, if it is a refused
    page's (:func:`page_denied`; every other exception goes on through the other middlewares'
    ``process_exception``)."""
    if isinstance(exception, ConsentDenied) and getattr(exception, _PAGE, False) is True:
        return RefusedPage(exception)
    return None


async def close_browser_page(request: Request) -> None:
    """Close the browser page a refused response of ``request`` was read from, if the spider asked for it: an
    errback's ``page.close()`` is then a no-op, ``page.content()`` or a screenshot an error. A page that does not
    close is taken out of the request (the errback gets none)."""
    page = request.meta.get(BROWSER_PAGE)
    if page is None:
        return
    try:
        await page.close()
    except Exception as exc:  # noqa: BLE001 - one that cannot be closed is not handed on
        logger.warning("consentcrawl: the browser page of a refused response did not close (%s); it is taken out of "
                       "the request", type(exc).__name__)
        request.meta.pop(BROWSER_PAGE, None)
