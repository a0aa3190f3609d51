"""What a check is: the protocol every check implements, the context it reads, and the outcome it returns.

A check has one job (robots.txt, the platform's terms, the person's records, ...), its own reasons and its own
evidence. The engine (:mod:`consentcrawl.engine`) runs an ordered list of them; each one either passes (returns
``None``, perhaps after citing evidence) or concludes (returns an :class:`Outcome`): the first deny wins, and so does
a concluding allow such as ``terms.off-platform``. Pure: a check does no I/O, reads no clock and imports no Scrapy;
what it needs is in the :class:`CheckContext` the adapters filled in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..decision import Evidence, Stage, Verdict
from ..purposes import KNOWN_PURPOSES

if TYPE_CHECKING:
    from ..consent.answers import StoreAnswers
    from ..consent.records import AuthorizationRecord
    from ..facts import RequestFacts
    from ..robots.fetch import RobotsFile
    from ..signals.evaluate import SiteFiles
    from ..signals.policy import SignalPolicy
    from ..terms.platforms import Platform

__all__ = ["Check", "CheckContext", "Outcome"]


@runtime_checkable
class Check(Protocol):
    """One check. Attributes the engine reads (with these defaults when a check does not declare them):

    - ``site`` (False): the check needs per-origin inputs the adapters fetch (robots.txt). Site checks run only in
      full decisions (:meth:`~consentcrawl.engine.PolicyEngine.decide`); the others ("consent checks") also run
      in the link check, at scheduling and for items.
    - ``cacheable`` (False): the check's result depends only on what the consent cache keys and validates
      (:mod:`consentcrawl.cache`): the URL and the person, the purpose, the platform object, the time thresholds of
      the platform's grant and of the records it read through :meth:`CheckContext.records` (and the store's
      version, when it read any). A decision that ran a check that is not cacheable is made anew every time.
    """

    def check(self, ctx: CheckContext) -> Outcome | None:
        """Pass (``None``) or conclude (an :class:`Outcome`); cite evidence with :meth:`CheckContext.cite`.

        An exception is a deny with ``error.internal`` (``error.store-unavailable`` for
        :class:`~consentcrawl.errors.StoreUnavailable`): a check that crashes never lets a request through.
        :meth:`CheckContext.records` may also raise :class:`~consentcrawl.consent.answers.RecordsNeeded` (a
        ``BaseException``): let it through, the adapter looks the person up and runs the checks again.
        """
        ...


@dataclass(frozen=True)
class Outcome:
    """How a check concludes. The engine makes the :class:`~consentcrawl.decision.Decision` from it, with the
    evidence cited so far, the person and the platform of the context."""

    verdict: Verdict
    stage: Stage
    reason: str
    fields: frozenset[str] | None = None  #: for an allow: the fields the data may be kept for

    @classmethod
    def deny(cls, reason: str, stage: Stage | None = None) -> Outcome:
        """A deny; the stage is the reason's first part (``terms.purpose`` -> terms) unless given."""
        return cls(Verdict.DENY, stage or _stage(reason), reason)

    @classmethod
    def allow(cls, reason: str, stage: Stage | None = None, fields: frozenset[str] | None = None) -> Outcome:
        """A concluding allow: no later check runs."""
        return cls(Verdict.ALLOW, stage or _stage(reason), reason, fields)


def _stage(reason: str) -> Stage:
    try:
        return Stage(reason.partition(".")[0])
    except ValueError:
        raise ValueError(f"reason {reason!r} does not start with a stage "
                         f"({', '.join(s.value for s in Stage)}): pass the stage") from None


class CheckContext:
    """What one decision is about, and what its checks have found so far.

    ``facts`` is None when the decision is about a person rather than a URL (the item guard); ``robots`` is only
    set in a full decision (site checks). ``platform`` and ``subject`` are what the decision names. ``answers`` is
    what the adapters looked up in the store (there is no store object here: the core never calls one).
    """

    __slots__ = ("answers", "crawl_delay", "evidence", "facts", "lookups", "max_crawl_delay", "now", "platform",
                 "purpose", "robots", "robots_allowed", "signal_policy", "signals", "subject", "token")

    def __init__(self, facts: RequestFacts | None, platform: Platform | None, subject: str | None, purpose: str,
                 now: datetime, token: str, answers: StoreAnswers, robots: RobotsFile | None = None,
                 max_crawl_delay: float | None = None, signals: SiteFiles | None = None,
                 signal_policy: SignalPolicy | None = None) -> None:
        self.facts = facts
        self.platform = platform
        self.subject = subject
        self.purpose = purpose
        self.now = now
        self.token = token
        self.answers = answers
        self.robots = robots
        #: the origin's site-level signal files (tdmrep.json, RSL licences, ai.txt) as the adapters fetched them:
        #: only set in a full decision, like ``robots``; None makes the signals check ask for them (SignalsNeeded)
        self.signals = signals
        #: how the crawl reads signals (settings): the engine's
        self.signal_policy = signal_policy
        #: a Crawl-delay above this denies the origin (``robots.crawl-delay``)
        self.max_crawl_delay = max_crawl_delay
        self.evidence: list[Evidence] = []
        #: every person's records a check read, by (platform, subject): what the consent cache keeps with a decision
        self.lookups: list[tuple[tuple[str, str], Sequence[AuthorizationRecord]]] = []
        #: set by a site check: seconds the origin asks between requests, carried by an allowing decision
        self.crawl_delay: float | None = None
        #: set by the robots check: the paths ``robots`` allows for ``token`` (all of ``facts.robots_paths``), so a
        #: later check need not match them again
        self.robots_allowed: tuple[str, ...] = ()

    def cite(self, evidence: Evidence) -> None:
        """Add one fact to the decision's evidence."""
        self.evidence.append(evidence)

    def records(self, platform: str, subject: str) -> Sequence[AuthorizationRecord]:
        """A person's records, as the adapters looked them up; what a check reads them through, so a remembered
        decision is tied to the store's version. Raises StoreUnavailable when the store could not answer, and
        RecordsNeeded when the person was not looked up yet; empty without a store."""
        answers = self.answers
        if answers.source is None:
            return ()
        records = answers.records(platform, subject)
        self.lookups.append(((platform, subject), records))
        return records

    def base_purposes(self) -> frozenset[str]:
        """The built-in purposes this decision's purpose is judged as: itself, or those a custom purpose counts as
        (``CONSENTCRAWL_CUSTOM_PURPOSES``). Empty for a purpose neither built in nor declared: a check then denies.
        A grant or an authorization names built-in purposes only, so a custom purpose is covered only where every
        one of its built-in purposes is."""
        purpose = self.purpose
        if purpose in KNOWN_PURPOSES:
            return frozenset((purpose,))
        try:
            return self.signal_policy.bases(purpose) if self.signal_policy is not None else frozenset()
        except ValueError:
            return frozenset()

    @property
    def platform_name(self) -> str | None:
        return self.platform.name if self.platform is not None else None
