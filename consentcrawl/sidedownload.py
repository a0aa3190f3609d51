"""The response phase's side requests (a licence or policy a page or its linked actor names, robots.txt where a
download handler was redirected to) go past Scrapy's download slots.

The response phase reads a page while other pages wait on it from their download slots: the send-time handler
decides a page it downloaded while the page still holds its own slot, and a person's first page (sent or answered
by the HTTP cache) holds the gate at which the person's other pages wait in the slots they hold. A side request
made then that went into a slot would wait for a page there (``CONCURRENT_REQUESTS_PER_DOMAIN = 1``), which waits
for it: the crawl would never end. So would a page's response phase that waits for the same side request (one
fetch per URL at a time) another response phase started into a slot. Past the slots, a side request still goes
through the downloader middlewares and the send-time handler, which decides it and keeps the origin's
``Crawl-delay``.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response

from ._scrapy_internals import download_past_slots

if TYPE_CHECKING:
    from collections.abc import Iterator

    from scrapy import Request
    from scrapy.crawler import Crawler

#: set while the response phase reads a page (:func:`past_slots`)
_response_phase: ContextVar[bool] = ContextVar("consentcrawl_response_phase", default=False)


@contextmanager
def past_slots() -> Iterator[None]:
    """The side requests made in this block (and in the tasks it starts) go past the download slots."""
    token = _response_phase.set(True)
    try:
        yield
    finally:
        _response_phase.reset(token)


async def download_side(crawler: Crawler, request: Request) -> Response:
    """One of our side requests, through the downloader middlewares and the send-time handler: past the download
    slots in the response phase (:func:`past_slots`), else as ``engine.download_async`` downloads it."""
    from .handler import handler_for  # the handler imports the runtime, which imports the side fetchers

    engine = crawler.engine
    assert engine is not None
    handler = handler_for(crawler, urlsplit(request.url).scheme)
    if not _response_phase.get() or handler is None:
        return await engine.download_async(request)
    answer = await download_past_slots(crawler, handler.download_request, request)
    if not isinstance(answer, Response):
        raise IgnoreRequest("consentcrawl: a downloader middleware answered a side request with another request")
    return answer
