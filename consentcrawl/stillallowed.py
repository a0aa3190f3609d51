"""The person's say when their page is handed on, not only when it was sent for.

The send-time decision counts for the moment the request goes out. A page takes time to come back (a slow server,
a large page: ``DOWNLOAD_TIMEOUT`` is 180 s by default), the response phase may wait too (a licence its page names,
fetched behind the origin's ``Crawl-delay``), and the person may withdraw, their grant or the platform's expire,
meanwhile. The response phase then hands the page to the HTTP cache and the callback; a page whose person is
denied by then must reach neither. So the response phase's allow is asked again, as its last step, of the consent
checks for the request's facts at that time (robots.txt and the site's files govern fetching, which is done). While
nothing changed (the store's version, the validity spans) that is a remembered answer, with no lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy import Request

    from .decision import Decision
    from .runtime import ConsentRuntime

__all__ = ["still_allowed"]


async def still_allowed(runtime: ConsentRuntime, request: Request, url: str, decision: Decision) -> Decision:
    """``decision`` (the response phase's allow for ``request``'s page at ``url``) if the page's person and
    platform still allow it now, else the deny that stands now, recorded in the response phase."""
    now = runtime.config.now()
    facts, unread = runtime.facts_for(request, url, now)
    if facts is None:  # it was read a moment ago: a request changed since into one that cannot be read
        assert unread is not None
        return runtime.record(unread, url, None, "response", time=now)
    if facts.platform is None and facts.subject is None:
        return decision  # off every platform, no one's: no records or grant to ask again
    again = await runtime.decider.decide_consent(facts)
    if again.allowed:
        return decision
    return runtime.record(again, url, facts.canonical.url, "response", time=now)
