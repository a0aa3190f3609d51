"""The site's robots.txt (a site check: it needs the origin's file, fetched by the adapters).

Reasons: ``robots.disallowed``, ``robots.unreachable``, ``robots.crawl-delay``, and ``error.robots-missing`` when
no file was fetched. Evidence: one ``robots.txt`` entry with the file's status, the path, the rule and group that
matched, and the crawl delay.
"""

from __future__ import annotations

from typing import Any

from ..cache import ObjectMemo
from ..decision import Evidence
from ..robots.fetch import RobotsFile, RobotsStatus
from ..robots.rules import RobotsMatch
from .base import CheckContext, Outcome

__all__ = ["RobotsCheck", "crawl_delay"]


class RobotsCheck:
    """The origin's robots.txt, matched RFC 9309-exactly for the product token."""

    site = True
    cacheable = True

    def __init__(self) -> None:
        # a fetched file never changes: its evidence, crawl delay and the paths matched so far, once per file
        self._files: ObjectMemo[RobotsFile, tuple[dict[str, Any], float | None, dict[str, RobotsMatch]]] = \
            ObjectMemo(4096)

    def check(self, ctx: CheckContext) -> Outcome | None:
        facts, robots = ctx.facts, ctx.robots
        assert facts is not None  # site checks only run on URLs
        if robots is None:
            ctx.cite(Evidence("robots.txt", facts.canonical.origin, {"cause": "robots.txt not fetched"}))
            return Outcome.deny("error.robots-missing")
        token = ctx.token
        base, delay, matches = self._files.get(robots, lambda r: (r.evidence(), crawl_delay(r, token), {}), token)
        if robots.status is RobotsStatus.UNREACHABLE:
            ctx.cite(Evidence("robots.txt", robots.url, dict(base)))
            return Outcome.deny("robots.unreachable")
        if robots.status is RobotsStatus.UNAVAILABLE:
            ctx.cite(Evidence("robots.txt", robots.url, dict(base)))
            return None
        match: RobotsMatch | None = None
        for path in facts.robots_paths:
            match = matches.get(path)
            if match is None:
                if len(matches) >= 16384:
                    matches.clear()
                match = matches[path] = robots.rules.match(path, token)
            if not match.allowed:
                detail: dict[str, Any] = {**base, "path": path, "rule": match.rule, "line": match.line,
                                          "group": match.group, "group_line": match.group_line}
                ctx.cite(Evidence("robots.txt", robots.url, detail))
                return Outcome.deny("robots.disallowed")
        assert match is not None  # robots_paths is never empty
        ctx.robots_allowed = facts.robots_paths
        detail = {**base, "path": facts.robots_paths[0], "rule": match.rule, "line": match.line,
                  "group": match.group, "group_line": match.group_line}
        if delay:
            detail["crawl_delay"] = delay
        ctx.cite(Evidence("robots.txt", robots.url, detail))
        if delay and ctx.max_crawl_delay is not None and delay > ctx.max_crawl_delay:
            detail["max_crawl_delay"] = ctx.max_crawl_delay
            return Outcome.deny("robots.crawl-delay")
        ctx.crawl_delay = delay
        return None


def crawl_delay(robots: RobotsFile, token: str) -> float | None:
    """Seconds between requests the origin asks of us: the larger of Crawl-delay and Request-rate."""
    if robots.status is not RobotsStatus.OK:
        return None
    delay = robots.rules.crawl_delay(token) or 0.0
    rate = robots.rules.request_rate(token)
    if rate and rate[0] > 0:
        delay = max(delay, rate[1] / rate[0])
    return delay or None
