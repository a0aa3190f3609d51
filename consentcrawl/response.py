"""Response-time signals: X-Robots-Tag, Robots-Tag and meta robots, judged for the crawl's purpose.

Pure: the response middleware hands over the directives it parsed; this says whether the response may be used.
A deny here means the callback never runs and the HTTP cache never stores the response.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from .decision import Decision, Stage, Verdict
from .robots.tags import RobotsDirective, denials, nofollow


def judge_response(prior: Decision, directives: Sequence[RobotsDirective], purpose: str, now: datetime,
                   url: str, *, rules: frozenset[str] | None = None) -> Decision:
    """The decision for a response whose request was allowed as ``prior``.

    A directive that denies the purpose turns it into a ``response.robots-tag`` (header) or
    ``response.meta-robots`` (HTML) deny; otherwise the directives are added to the allow's evidence. ``rules``:
    the rules that deny the purpose when not only :data:`~consentcrawl.robots.tags.PURPOSE_DENIALS`' (a custom
    purpose, opt-in rules: :meth:`~consentcrawl.signals.policy.SignalPolicy.tag_rules`).
    """
    evidence = tuple(d.to_evidence(url) for d in directives)
    denied = denials(directives, purpose, now, rules=rules)
    if denied:
        reason = "response.meta-robots" if denied[0].source == "meta" else "response.robots-tag"
        return Decision(Verdict.DENY, Stage.RESPONSE, reason, subject=prior.subject, platform=prior.platform,
                        evidence=prior.evidence + tuple(d.to_evidence(url) for d in denied))
    return replace(prior, evidence=prior.evidence + evidence, decision_id=prior.decision_id)


def wants_nofollow(directives: Sequence[RobotsDirective]) -> bool:
    """``nofollow`` / ``none``: the links on this response are not to be followed."""
    return nofollow(directives)
