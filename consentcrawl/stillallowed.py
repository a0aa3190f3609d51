"""The person's say when their page is handed on, not only when it was sent for.

The send-time decision counts for the moment the request goes out. A page takes time to come back (a slow server,
a large page: ``DOWNLOAD_TIMEOUT`` is 180 s by default), and the person may withdraw, their grant or the platform's
expire, in between. The response phase hands the page to the HTTP cache and the callback; a page whose person is
denied by then must reach neither. So an allow made at send time is asked again, for the same facts at the time
the page is handed on: the consent checks only (robots.txt and the site's files govern fetching, which is done).
Nothing changed (the store's version, the validity spans) makes it a remembered answer, with no lookup.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .decision import Decision
    from .facts import RequestFacts
    from .runtime import ConsentRuntime

__all__ = ["still_allowed"]


async def still_allowed(runtime: ConsentRuntime, facts: RequestFacts | None, decision: Decision) -> Decision:
    """``decision`` (a send-time allow made for ``facts``) if the page's person and platform still allow it now,
    else the deny that stands now, recorded in the response phase."""
    if facts is None or (facts.platform is None and facts.subject is None):
        return decision  # off every platform, no one's: no records or grant to ask again
    now = runtime.config.now()
    again = await runtime.decider.decide_consent(dataclasses.replace(facts, now=now))
    if again.allowed:
        return decision
    return runtime.record(again, facts.url, facts.canonical.url, "response", time=now)
