"""A request consentcrawl refused in the downloader (the request phase, at send time, or the page the send-time
handler downloaded and the response phase refused): its refusal reaches the request's errback past every other
downloader middleware's ``process_exception``.

A refusal there can only be raised, and Scrapy hands an exception raised by a downloader middleware's
``process_request`` or by a download handler to each downloader middleware's ``process_exception``. A project's
middleware may answer it: with a request (a proxy rotator, a middleware that tries every error again, Scrapy's
``RetryMiddleware`` told to retry ``IgnoreRequest``), which would be decided and refused again (a refused page
fetched again, before its response phase refused it once more), or with a response of its own (a "fallback page"
from a mirror or an archive, at the refused URL), which would reach the callback as if it were the refused page. A
refusal made in a middleware's ``process_response`` goes straight to the errback instead. So
:class:`~consentcrawl.middlewares.ConsentResponseMiddleware`, the outermost downloader middleware and so the first
whose ``process_exception`` Scrapy calls, answers every refusal (:func:`stand_in`) with a :class:`RefusedPage`: an
empty stand-in (no body, no header, not the page's URL) that goes first to its own ``process_response``, which
raises the refusal there, before any other middleware sees either. (The other middlewares see no consentcrawl
refusal at all: their ``process_exception`` is for download errors.)

A browser page a refused response was read from (scrapy-playwright's ``playwright_include_page``, handed on in
``meta["playwright_page"]``) still shows it: the errback would get it, where scrapy-playwright's own examples read,
screenshot and close it. It is closed as the page is refused (:func:`close_browser_page`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy.http import Response

from .middlewares import REFUSALS, ConsentDenied, ConsentMisconfigured

if TYPE_CHECKING:
    from scrapy import Request

logger = logging.getLogger("consentcrawl")

#: where scrapy-playwright hands the browser page on (``playwright_include_page``)
BROWSER_PAGE = "playwright_page"


class RefusedPage(Response):
    """The stand-in for a refused request, carrying its refusal; nothing of the page is in it."""

    def __init__(self, denied: ConsentDenied | ConsentMisconfigured) -> None:
        super().__init__("about:blank", status=403)
        self.denied = denied


def stand_in(exception: BaseException) -> RefusedPage | None:
    """The stand-in that carries ``exception`` to the response phase's ``process_response``, if it is a refusal
    (every other exception goes on through the other middlewares' ``process_exception``)."""
    return RefusedPage(exception) if isinstance(exception, REFUSALS) else None


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
