"""The side requests consentcrawl makes itself (robots.txt, and the site's signal files: tdmrep.json, ai.txt, a
licence), and when each may be fetched. Part of :class:`~consentcrawl.runtime.ConsentRuntime`.

A side request is evidence for the decisions it feeds, not collection, so it is not decided like a spider's
request; but each hop of one (a redirect) must not reach a page consentcrawl would not fetch for the crawl: a hop
that names a person the crawl may not collect is refused and recorded (:mod:`consentcrawl.robots.hops` says which
hops may go). Side requests are recognised by identity (:meth:`SideFetching.is_own`), never by a meta flag a
spider could copy.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from scrapy import Request

from .robots.hops import hop_decision, hop_refusal
from .robots.scrapyfetch import ScrapyRobotsFetcher
from .robots.signalfetch import ScrapySignalFetcher
from .signals.fetch import SignalFileCache

if TYPE_CHECKING:
    from .config import ConsentConfig
    from .deciding import Decider
    from .decision import Decision

__all__ = ["SideFetching", "signal_fetcher"]


class SideFetching:
    """The side requests of :class:`~consentcrawl.runtime.ConsentRuntime` (which sets these attributes)."""

    config: ConsentConfig
    decider: Decider
    robots: ScrapyRobotsFetcher

    if TYPE_CHECKING:  # the runtime's recording half's
        def record(self, decision: Decision, url: str | None, canonical_url: str | None, phase: str,
                   count: bool = True, *, time: datetime | None = None) -> Decision: ...

        async def record_grouped(self, decision: Decision, url: str | None, canonical_url: str | None,
                                 phase: str, *, time: datetime | None = None) -> Decision: ...

    def is_own(self, request: Request) -> bool:
        """A side request consentcrawl made itself (robots.txt): recognised by identity, not by a meta flag."""
        return request in self.robots.own

    async def may_fetch_robots(self, url: str) -> str | None:
        """A robots.txt hop is fetched only if we would fetch that URL: it must not name a person we may not
        collect. A terms-stage deny does not stop the first hop, ``/robots.txt`` itself: reading a site's terms
        is not collecting its data."""
        now = self.config.now()
        decision = await hop_refusal(self.decider, url, self.config.purpose, now)
        if decision is None:
            return None
        self.record(decision, url, None, "robots", time=now)
        return decision.reason

    async def may_send_own(self, url: str) -> str | None:
        """Send time for one of our own side requests (a robots.txt or signal file hop), decided again as
        :meth:`may_fetch_robots` does. A hop to a person's page is refused (robots/hops.py), with its line; an
        allow that names a person (none today) would have its line on disk before it is sent."""
        now = self.config.now()
        decision, fetch = await hop_decision(self.decider, url, self.config.purpose, now)
        if fetch and (not decision.allowed or decision.subject is None):
            return None  # no one's page: robots.txt and signal files are evidence of the decisions they feed
        decision = await self.record_grouped(decision, url, None, "robots", time=now)
        return None if fetch and decision.allowed else decision.reason

    async def may_fetch_signal(self, url: str, own_url: bool) -> str | None:
        """A signal file's hop (tdmrep.json, ai.txt, an RSL licence) is fetched only if we would fetch that URL;
        a terms-stage deny does not stop the file itself (reading a site's terms is not collecting its data). A
        document a site names (a licence, a policy) is asked of its own origin's robots.txt too."""
        now = self.config.now()
        decision = await hop_refusal(self.decider, url, self.config.purpose, now, terms_file=own_url,
                                     robots_for=self.robots.get)  # a document a site names: its origin's rules
        if decision is None:
            return None
        self.record(decision, url, None, "signals", time=now)
        return decision.reason


def signal_fetcher(robots: ScrapyRobotsFetcher, config: ConsentConfig, may_fetch: Any) -> ScrapySignalFetcher:
    """The site's signal files, fetched with robots.txt's machinery and its TTL and retry settings."""
    cache = SignalFileCache(config.robots_ttl, config.robots_retry, config.robots_retry_max)
    return ScrapySignalFetcher(robots, cache, config.now, may_fetch, config.signal_policy.conservative)
