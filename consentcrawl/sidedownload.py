"""consentcrawl's side requests (robots.txt, a site's signal files, a licence or policy a page names) go past
Scrapy's download slot queues, and keep each slot's ``DOWNLOAD_DELAY`` all the same.

Past the queues, because a page waits on them while it holds its slot: the send-time handler decides a page it
downloaded (its response phase) while the page still holds its slot, a browser handler's redirect hop is decided
while its page does, and a person's first page holds the gate at which their other pages wait in the slots they
hold. A side request queued in a slot such a page holds (``CONCURRENT_REQUESTS_PER_DOMAIN = 1``: the same host
name on another port, a page's ``download_slot``) would wait for the page, which waits for it. Being fetched once
per URL (single flight), a side request one request phase started is also the one every other caller waits on:
had it gone into a slot, any page's response phase could end up waiting behind itself. So none does.

Keeping the delay: each side request takes its place in the schedule of the slot Scrapy would have put it in
(``_scrapy_internals.reserve_slot_delay``): it waits ``DOWNLOAD_DELAY`` (the slot's, a ``Crawl-delay`` applied
to it included) after the slot's last send, and the slot's next page waits the delay after it. That wait is on
the clock only, never on another request, so it cannot close a cycle. What a side request does not count against
is the slot's concurrency (``CONCURRENT_REQUESTS_PER_DOMAIN``): that is a wait on other requests, the cycle above.
Past the queues, a side request still goes through the downloader middlewares and the send-time handler, which
decides it and keeps the origin's ``Crawl-delay`` (:class:`~consentcrawl.originspacing.OriginSpacing`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response

from ._scrapy_internals import download_past_slots

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler


async def download_side(crawler: Crawler, request: Request) -> Response:
    """One of our side requests, through the downloader middlewares and the send-time handler, past the download
    slot queues (the handler keeps the slot's delay for it); through ``engine.download_async`` in a crawl whose
    add-on's handler was taken off (a crawl that refuses to start)."""
    from .handler import handler_for  # the handler imports the runtime, which imports the side fetchers

    engine = crawler.engine
    assert engine is not None
    handler = handler_for(crawler, urlsplit(request.url).scheme)
    if handler is None:
        return await engine.download_async(request)
    answer = await download_past_slots(crawler, handler.download_request, request)
    if not isinstance(answer, Response):
        raise IgnoreRequest("consentcrawl: a downloader middleware answered a side request with another request")
    return answer
