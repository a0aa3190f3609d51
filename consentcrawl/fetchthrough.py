"""A fetch-through request fetches the page it embeds: that page's robots.txt and site signals count too.

``api.example/fetch?url=http://people.example/u/101`` (a scraping API, an archive's "save page now", a
headless-browser service) is decided as the embedded page's person (:mod:`consentcrawl.resolve`); the service then
fetches the page from its own site, which may disallow it in its robots.txt. So each page the request is a
fetch-through for (:attr:`~consentcrawl.facts.RequestFacts.via`) is decided as a request of its own as well, with
its origin's robots.txt and signal files: fetched when the request phase needs them, the copies in force at send
time (none there denies, ``error.robots-missing``), and fetched by ``consentcrawl check``. The first such deny is
the request's decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .signalphase import decide_full

if TYPE_CHECKING:
    from datetime import datetime

    from .config import ConsentConfig
    from .deciding import Decider
    from .decision import Decision
    from .facts import RequestFacts
    from .runtime import ConsentRuntime


async def through(runtime: ConsentRuntime, facts: RequestFacts, decision: Decision, *, fetch: bool) -> Decision:
    """``decision`` (the request's own), or the first deny of a page it fetches through a service; ``fetch``: get
    the page's robots.txt and signal files if need be (the request phase), else only the copies held (send time)."""
    if not decision.allowed or not facts.via:
        return decision
    for url in facts.via:
        page, denied = runtime.facts_for(None, url, facts.now)
        if page is None:
            assert denied is not None
            return denied
        if fetch:
            inner = await decide_full(runtime, page, await runtime.robots_for(page))
        else:
            origin = page.canonical.origin
            robots = runtime.robots.cached(origin)
            inner = await runtime.decider.decide(page, robots, runtime.site_signals.cached(origin, robots))
        if not inner.allowed:
            return inner
    return decision


async def checked_through(config: ConsentConfig, decider: Decider, facts: RequestFacts, decision: Decision,
                          now: datetime) -> Decision:
    """:func:`through` for ``consentcrawl check``: each page fetched through the service decided too, its origin's
    robots.txt and signal files fetched as ``check`` fetches them; the page itself never (``--fetch`` reads the
    request's own answer only)."""
    import argparse

    from .checkcli import check_signals, robots_for_check

    if not decision.allowed:
        return decision
    for url in facts.via:
        page = decider.engine.facts(url, config.purpose, now)
        robots = await robots_for_check(config, decider, page.canonical.origin, now)
        inner = await check_signals(argparse.Namespace(fetch=False), config, decider, page, robots, now, [])
        if not inner.allowed:
            return inner
    return decision
