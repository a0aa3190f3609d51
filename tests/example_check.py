"""A check of your own: people on the crawl's do-not-collect list are never fetched (docs/checks.md)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from consentcrawl.checks import CheckContext, Outcome
from consentcrawl.decision import Evidence


class OptOutCheck:
    """Deny every request and item about a person on ``OPT_OUT_SUBJECTS`` ("platform:id" strings)."""

    #: the result depends only on the person, who is part of the consent cache's key: it may be remembered
    cacheable = True

    def __init__(self, opted_out: Iterable[str] = ()) -> None:
        self.opted_out = frozenset(opted_out)

    @classmethod
    def from_crawler(cls, crawler: Any) -> OptOutCheck:
        return cls(crawler.settings.getlist("OPT_OUT_SUBJECTS"))

    def check(self, ctx: CheckContext) -> Outcome | None:
        if ctx.platform is None or ctx.subject is None:
            return None  # not about a person on a platform: nothing to say
        who = f"{ctx.platform.name}:{ctx.subject}"
        if who not in self.opted_out:
            return None  # pass: the next check decides
        ctx.cite(Evidence("opt-out-list", "OPT_OUT_SUBJECTS", {"subject": who}))
        return Outcome.deny("subject.opted-out")
