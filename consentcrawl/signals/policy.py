"""How a crawl reads operator signals (its settings), and the decisions the site check and the response phase make
from them: the pure part that a crawl and ``consentcrawl check`` share (issue #13, phase 2).

- :class:`SignalPolicy`: conservative mode, the per-purpose defaults, custom purposes, the research exception, the
  licences recorded per site, whether the crawl stores items. Built once from the settings
  (:func:`consentcrawl.config.signal_policy`) and held by the engine.
- :class:`SignalsNeeded`: raised by the site check when a decision reaches it without the origin's signal files;
  the adapter fetches them (once per origin) and asks again, as it does for a person's records.
- :func:`site_decision` (before the fetch) and :func:`response_decision` (the response phase): ``site_results`` /
  ``response_results`` combined per the issue's rules.

Pure: no Scrapy, no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..decision import Decision, Stage, Verdict
from .base import SignalResult
from .combine import PlatformGrant, SignalDecision, combine
from .evaluate import SignalOptions, SiteFiles, response_results, site_results
from .purposes import CONSERVATIVE_DEFAULTS, CustomPurpose
from .tdmrep import ResearchException

if TYPE_CHECKING:
    from ..terms.platforms import Platform

__all__ = ["SignalPolicy", "SignalsNeeded", "grant_of", "response_decision", "site_decision"]


class SignalsNeeded(BaseException):
    """The origin's site-level signal files are needed for this decision: fetch them and ask again.

    A ``BaseException`` like :class:`~consentcrawl.consent.answers.RecordsNeeded`, so the engine's fail-closed
    ``except Exception`` lets it through to the adapter."""

    def __init__(self, origin: str) -> None:
        super().__init__(origin)
        self.origin = origin


@dataclass(frozen=True)
class SignalPolicy:
    """The operator's choices about signals (settings; ``overrides_signals`` is in ``platforms.yaml``)."""

    conservative: bool = True  #: ``CONSENTCRAWL_CONSERVATIVE``: legacy AIPREF labels and ai.txt deny
    stores_items: bool = True  #: ``CONSENTCRAWL_STORES_ITEMS``: Content-Signal ``use=immediate`` denies
    defaults: Mapping[str, bool] = field(default_factory=lambda: dict(CONSERVATIVE_DEFAULTS))
    custom: tuple[CustomPurpose, ...] = ()
    research_exception: ResearchException | None = None
    #: recorded RSL licences: host (or a domain covering it) -> the licence's reference
    licences: Mapping[str, str] = field(default_factory=dict)

    def licence_for(self, host: str) -> str | None:
        host = host.lower().rstrip(".")
        while host:
            ref = self.licences.get(host)
            if ref:
                return ref
            host = host.partition(".")[2]
        return None

    def options(self, token: str, host: str) -> SignalOptions:
        return SignalOptions(token, self.conservative, self.stores_items, self.research_exception,
                             self.licence_for(host))


DEFAULT_POLICY = SignalPolicy()


def grant_of(platform: Platform | None) -> PlatformGrant | None:
    """The platform's grant as combining needs it (None: the URL is on no platform)."""
    if platform is None:
        return None
    auth = platform.authorization
    if auth is None:
        return PlatformGrant(platform.name, source=platform.source)
    return PlatformGrant(platform.name, frozenset(auth.purposes), auth.reference,
                         bool(getattr(auth, "overrides_signals", False)), platform.source)


def site_decision(url: str, host: str, files: SiteFiles, policy: SignalPolicy, token: str, purpose: str,
                  platform: Platform | None) -> tuple[SignalDecision, list[SignalResult]]:
    """The site-level signals for ``url``, combined before the fetch (the default waits for the response)."""
    results = site_results(url, files, policy.options(token, host))
    return combine(purpose, results, platform=grant_of(platform), defaults=policy.defaults, custom=policy.custom,
                   before_fetch=True), results


def response_decision(prior: Decision, url: str, host: str, headers: Any, body: bytes | str | None,
                      encoding: str, files: SiteFiles, policy: SignalPolicy, token: str, purpose: str,
                      platform: Platform | None, fetched_at: datetime) -> tuple[Decision, list[SignalResult]]:
    """The response phase: site- and response-level signals combined, with the defaults.

    ``prior`` is the allow the request was sent with. A deny is a new decision (stage ``response`` for
    ``response.signal.*``, ``terms`` for ``terms.default-deny`` and an unreadable licence the page names) citing
    the prior's evidence and the signals'; an allow is ``prior`` with the signal evidence added (the same id)."""
    options = policy.options(token, host)
    site = site_results(url, files, options)
    results = [*site, *response_results(url, headers, body, files, options, fetched_at=fetched_at,
                                        encoding=encoding)]
    decided = combine(purpose, results, platform=grant_of(platform), defaults=policy.defaults,
                      custom=policy.custom)
    extra = tuple(e for e in decided.evidence if e.kind != "platform-authorization" or decided.basis == "agreement")
    if decided.allowed:
        from dataclasses import replace

        return replace(prior, evidence=prior.evidence + extra), results
    reason = decided.reason or "terms.default-deny"
    return Decision(Verdict.DENY, Stage(reason.partition(".")[0]), reason, subject=prior.subject,
                    platform=prior.platform, evidence=prior.evidence + extra), results
