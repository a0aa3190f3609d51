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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..cache import SignalMemo
from ..decision import Decision, Evidence, Stage, Verdict
from ..robots.tags import denying_rules
from ._common import url_path
from .base import SignalResult
from .combine import PlatformGrant, SignalDecision, combine
from .evaluate import (
    PathKeys,
    SignalOptions,
    SiteFiles,
    response_results,
    response_silent,
    site_results,
)
from .purposes import CONSERVATIVE_DEFAULTS, CustomPurpose, base_purposes
from .tdmrep import ResearchException

if TYPE_CHECKING:
    from ..terms.platforms import Platform

__all__ = ["ResponseSignals", "SignalPolicy", "SignalsNeeded", "grant_of", "response_decision", "site_decision",
           "spelled_response_decision", "spelled_site_decision"]


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
    #: ``CONSENTCRAWL_ROBOTS_TAG_OPTIONS``: robots tag rules that deny only when opted in (``nosnippet``, ``nocache``)
    robots_tag_options: frozenset[str] = frozenset()

    def bases(self, purpose: str) -> frozenset[str]:
        """The built-in purposes ``purpose`` is judged as (a custom purpose: those it counts as); ValueError for a
        purpose neither built in nor declared."""
        return base_purposes(purpose, self.custom)

    def tag_rules(self, purpose: str) -> frozenset[str]:
        """The robots tag rules that deny ``purpose``: those of every built-in purpose it counts as, and the
        opted-in ones (:func:`~consentcrawl.robots.tags.denying_rules`)."""
        return denying_rules(self.bases(purpose), self.robots_tag_options)

    def research_for(self, platform: Platform | None) -> ResearchException | None:
        """The research exception for a URL on ``platform``: the platform's own (``platforms.yaml``) before the
        setting's."""
        if platform is not None and platform.research_exception is not None:
            statement, reference = platform.research_exception
            return ResearchException(statement, reference, platform.source)
        return self.research_exception

    def licence_for(self, host: str, platform: Platform | None = None) -> tuple[str | None, str]:
        """The RSL licence recorded for ``host`` and where it was recorded: the platform's own
        (``signal_licence`` in ``platforms.yaml``) before the setting's (a host covers its subdomains)."""
        if platform is not None and platform.signal_licence is not None:
            return platform.signal_licence
        host = host.lower().rstrip(".")
        while host:
            ref = self.licences.get(host)
            if ref:
                return ref, "CONSENTCRAWL_SIGNAL_LICENCES"
            host = host.partition(".")[2]
        return None, ""

    def options(self, token: str, host: str, platform: Platform | None = None) -> SignalOptions:
        licence, source = self.licence_for(host, platform)
        return SignalOptions(token, self.conservative, self.stores_items, self.research_for(platform), licence,
                             source)


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
    results = site_results(url, files, policy.options(token, host, platform))
    return combine(purpose, results, platform=grant_of(platform), defaults=policy.defaults, custom=policy.custom,
                   before_fetch=True), results


def spelled_site_decision(urls: Sequence[tuple[str, str]], host: str, files: SiteFiles, policy: SignalPolicy,
                          token: str, purpose: str, platform: Platform | None
                          ) -> tuple[SignalDecision, list[SignalResult], int | None]:
    """:func:`site_decision` for each spelling of the page (``(path, url)``, the canonical one first:
    :func:`~consentcrawl.signals.evaluate.spelled_urls`): the first spelling whose signals deny the purpose
    decides, with its index; when none does, the canonical one decides (index None)."""
    options = policy.options(token, host, platform)
    grant = grant_of(platform)
    first: tuple[SignalDecision, list[SignalResult], int | None] | None = None
    for at, (_path, url) in enumerate(urls):
        results = site_results(url, files, options)
        decided = combine(purpose, results, platform=grant, defaults=policy.defaults, custom=policy.custom,
                          before_fetch=True)
        if not decided.allowed and decided.basis == "signals":
            return decided, results, at
        if first is None:
            first = (decided, results, None)
    assert first is not None  # there is always the canonical URL
    return first


def response_decision(prior: Decision, url: str, host: str, headers: Any, body: bytes | str | None,
                      encoding: str, files: SiteFiles, policy: SignalPolicy, token: str, purpose: str,
                      platform: Platform | None, fetched_at: datetime,
                      spellings: Sequence[tuple[str, str]] = ()) -> tuple[Decision, list[SignalResult]]:
    """The response phase: site- and response-level signals combined, with the defaults.

    ``prior`` is the allow the request was sent with. A deny is a new decision (stage ``response`` for
    ``response.signal.*``, ``terms`` for ``terms.default-deny`` and an unreadable licence the page names) citing
    the prior's evidence and the signals'; an allow is ``prior`` with the signal evidence added (the same id).
    ``spellings``: the page's spellings the request phase decided (:func:`response_spellings`; default: ``url``
    alone), each decided with the response's own signals, the first one denied deciding."""
    decided, results, _at = spelled_response_decision(spellings or ((url_path(url), url),), url, host, headers,
                                                      body, encoding, files, policy, token, purpose, platform,
                                                      fetched_at)
    return _applied(prior, _outcome(decided)), results


def spelled_response_decision(spellings: Sequence[tuple[str, str]], url: str, host: str, headers: Any,
                              body: bytes | str | None, encoding: str, files: SiteFiles, policy: SignalPolicy,
                              token: str, purpose: str, platform: Platform | None, fetched_at: datetime | None
                              ) -> tuple[SignalDecision, list[SignalResult], int | None]:
    """The site-level signals of each spelling of the page with the response-level ones of the response (read
    from ``url``, the URL it was fetched as), combined with the defaults: the first spelling denied decides, with
    its index; else the first one. A page is used only if every spelling of it may be, as before the fetch (where
    any spelling's deny wins): a statement about ``/a/`` that the canonical ``/a`` lacks, or the reverse, can only
    take a use away, never grant one the other spelling's default refuses."""
    options = policy.options(token, host, platform)
    response = response_results(url, headers, body, files, options, fetched_at=fetched_at, encoding=encoding)
    grant = grant_of(platform)
    first: tuple[SignalDecision, list[SignalResult], int | None] | None = None
    for at, (_path, page) in enumerate(spellings):
        results = [*site_results(page, files, options), *response]
        decided = combine(purpose, results, platform=grant, defaults=policy.defaults, custom=policy.custom)
        if not decided.allowed:
            return decided, results, at
        if first is None:
            first = (decided, results, None)
    assert first is not None, "a page has at least one spelling"
    return first


#: what combining added to a prior decision: the evidence to cite after the prior's, and the deny reason (None: an
#: allow)
Added = tuple[tuple[Evidence, ...], "str | None"]


def _outcome(decided: SignalDecision) -> Added:
    extra = tuple(e for e in decided.evidence if e.kind != "platform-authorization" or decided.basis == "agreement")
    return extra, None if decided.allowed else decided.reason or "terms.default-deny"


def _applied(prior: Decision, added: Added) -> Decision:
    """``prior`` with what combining added: the same decision with the evidence cited after its own (an allow), or
    a new deny citing both."""
    extra, reason = added
    if reason is None:
        from dataclasses import replace

        return replace(prior, evidence=prior.evidence + extra)
    return Decision(Verdict.DENY, Stage(reason.partition(".")[0]), reason, subject=prior.subject,
                    platform=prior.platform, evidence=prior.evidence + extra)


class ResponseSignals:
    """:func:`response_decision` for a crawl's response phase, with the site-level part remembered per origin.

    Most responses carry no signal at all (:func:`~consentcrawl.signals.evaluate.response_silent`). For such a
    response the outcome is a function of the site-level files alone, so it is remembered by the identity of its
    inputs, with :class:`~consentcrawl.cache.SignalMemo`'s rule: the same :class:`SiteFiles` object (a refetched
    file is a new one, so the memo is as fresh as the files the adapter hands in), the same platform and policy
    objects, and equal host, purpose, token and what of the URL the files make the outcome depend on
    (:class:`~consentcrawl.signals.pathkey.PathKey`: nothing, or the parts of the files the URL selects). A
    response that says anything is decided in full.
    """

    __slots__ = ("_keys", "_memo")

    def __init__(self, size: int = 4096) -> None:
        self._memo: SignalMemo[Added] = SignalMemo(size)
        #: what of a URL each origin's files make the outcome depend on
        self._keys = PathKeys()

    def added(self, url: str, host: str, headers: Any, body: bytes | str | None, encoding: str, files: SiteFiles,
              policy: SignalPolicy, token: str, purpose: str, platform: Platform | None,
              fetched_at: datetime, *, silent: bool | None = None,
              spellings: Sequence[tuple[str, str]] = ()) -> Added:
        """What the signals add to the prior decision (see :func:`response_decision`, and its ``spellings``).
        ``silent``: what :func:`~consentcrawl.signals.evaluate.response_silent` says of this response, when
        already known."""
        if not spellings:
            spellings = ((url_path(url), url),)
        if silent is None:
            silent = response_silent(headers, body, encoding)
        if not silent:
            return _outcome(spelled_response_decision(spellings, url, host, headers, body, encoding, files, policy,
                                                      token, purpose, platform, fetched_at)[0])
        keyer = self._keys.of(files, token)
        key = (tuple([keyer.key(page) for _path, page in spellings]), host, purpose, token)
        # a silent response says nothing whatever its URL: decided as one without headers or body
        return self._memo.get(files, None, platform, policy, key, lambda: _outcome(spelled_response_decision(
            spellings, url, host, None, None, encoding, files, policy, token, purpose, platform, None)[0]))

    @staticmethod
    def apply(prior: Decision, added: Added) -> Decision:
        return _applied(prior, added)
