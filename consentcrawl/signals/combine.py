"""Combining every signal's verdict for a purpose, and falling back when they say nothing.

Per built-in purpose:

1. Each signal has resolved its own statements by its own rules (:class:`~consentcrawl.signals.base.SignalResult`).
   A response-level result that folds in the site-level file (TDMRep) replaces the site-level one.
2. Across signals: any DENY > any ALLOW > UNKNOWN (AIPREF vocab §7.1). Conflicts (one signal allows what another
   denies, or one signal says both) are recorded in the evidence.
3. A DENY stands against the platform's grant, unless the grant records an agreement reference and says
   ``overrides_signals: true``: then the purpose is allowed on the agreement and the evidence shows both.
4. UNKNOWN falls back to the platform's grant on a configured platform, and off any platform to the per-purpose
   default (:data:`~consentcrawl.signals.purposes.CONSERVATIVE_DEFAULTS`: ``terms.default-deny`` where it is
   False).

A custom purpose (:class:`~consentcrawl.signals.purposes.CustomPurpose`) is decided for each built-in purpose it
counts as, and is allowed only where all of them are.

Reason codes of a deny: ``terms.signal.<name>`` (site level), ``response.signal.<name>`` (on the response),
``terms.signal-unavailable.<name>`` (the signal's file could not be read), ``terms.default-deny``, and on a
platform without a grant for the purpose ``terms.not-authorized`` / ``terms.purpose`` (the existing codes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import reasons
from ..decision import Evidence
from .base import SIGNAL_NAMES, Level, SignalResult, SignalVerdict, worst
from .purposes import CONSERVATIVE_DEFAULTS, CustomPurpose, base_purposes

__all__ = ["PlatformGrant", "SignalDecision", "combine", "deny_reason"]

#: every deny code combining can give, by signal: (site, response, unavailable); None where it cannot happen
#: (ai.txt is never on a response; robots.txt-embedded signals fail with robots.unreachable, not on their own)
SIGNAL_REASONS: Mapping[str, tuple[str, str | None, str | None]] = {
    "tdmrep": (reasons.TERMS_SIGNAL_TDMREP, reasons.RESPONSE_SIGNAL_TDMREP, reasons.TERMS_SIGNAL_UNAVAILABLE_TDMREP),
    "content-usage": (reasons.TERMS_SIGNAL_CONTENT_USAGE, reasons.RESPONSE_SIGNAL_CONTENT_USAGE, None),
    "content-signal": (reasons.TERMS_SIGNAL_CONTENT_SIGNAL, reasons.RESPONSE_SIGNAL_CONTENT_SIGNAL, None),
    "rsl": (reasons.TERMS_SIGNAL_RSL, reasons.RESPONSE_SIGNAL_RSL, reasons.TERMS_SIGNAL_UNAVAILABLE_RSL),
    "ai-txt": (reasons.TERMS_SIGNAL_AI_TXT, None, reasons.TERMS_SIGNAL_UNAVAILABLE_AI_TXT),
}


def deny_reason(signal: str, level: Level, *, unavailable: bool = False) -> str:
    """The published reason code for a deny by ``signal`` at ``level``; ValueError where none can arise."""
    site, response, missing = SIGNAL_REASONS[signal]
    code = missing if unavailable else site if level is Level.SITE else response
    if code is None:
        raise ValueError(f"signal {signal!r} cannot deny at {level.value} level"
                         f"{' as unavailable' if unavailable else ''}")
    return code


@dataclass(frozen=True)
class PlatformGrant:
    """The platform's grant to us (``platforms.yaml``), as combining needs it.

    ``purposes`` are those the grant covers at the decision time (its validity is the platform terms check's job);
    an empty set is a platform that has given us nothing. The grant overrides published signals only when it
    records an agreement ``reference`` and ``overrides_signals`` is true.
    """

    platform: str
    purposes: frozenset[str] = frozenset()
    reference: str | None = None
    overrides_signals: bool = False
    source: str = "platforms"

    @property
    def overrides(self) -> bool:
        return bool(self.overrides_signals and self.reference and str(self.reference).strip())

    def evidence(self) -> Evidence:
        return Evidence("platform-authorization", self.source, {
            "platform": self.platform, "reference": self.reference, "purposes": sorted(self.purposes),
            "overrides_signals": self.overrides_signals})


@dataclass(frozen=True)
class SignalDecision:
    """The outcome for one purpose: ALLOW (the check passes; later checks still run) or DENY with a reason."""

    purpose: str
    verdict: SignalVerdict  #: ALLOW or DENY, never UNKNOWN: unknown has fallen back
    reason: str | None  #: the deny code; None for an allow
    basis: str  #: "signals", "agreement" (a grant overriding signals), "platform", "default", "pending"
    evidence: tuple[Evidence, ...] = ()
    signals: Mapping[str, SignalVerdict] = field(default_factory=dict)  #: what each signal said (built-in purpose)
    conflicts: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.verdict is SignalVerdict.ALLOW


def _effective(results: Iterable[SignalResult]) -> list[SignalResult]:
    results = list(results)
    replaced = {r.signal for r in results if r.level is Level.RESPONSE and r.replaces_site}
    kept = [r for r in results if not (r.level is Level.SITE and r.signal in replaced)]
    order = {name: i for i, name in enumerate(SIGNAL_NAMES)}
    return sorted(kept, key=lambda r: (r.level is not Level.SITE, order.get(r.signal, len(order))))


def _decide_base(purpose: str, results: list[SignalResult], platform: PlatformGrant | None,
                 defaults: Mapping[str, bool]) -> SignalDecision:
    evidence: list[Evidence] = []
    said: dict[str, SignalVerdict] = {}
    denies: list[tuple[SignalResult, bool]] = []  # (result, because unavailable)
    allows: list[str] = []
    for result in results:
        verdict = result.verdict(purpose)
        key = f"{result.signal}@{result.level.value}"
        said[key] = worst((said[key], verdict)) if key in said else verdict  # several RSL licences: one entry
        if result.unavailable is not None and purpose in result.covers:
            evidence.append(result.unavailable_evidence())
            denies.append((result, True))
            continue
        findings = result.for_purpose(purpose)
        evidence += [f.evidence() for f in findings]
        if verdict is SignalVerdict.DENY:
            denies.append((result, False))
        if any(f.verdict is SignalVerdict.ALLOW for f in findings):
            allows.append(key)
    conflicts: list[str] = []
    denying = [f"{r.signal}@{r.level.value}" for r, _u in denies]
    if denying and allows:
        conflicts.append(f"{', '.join(sorted(set(allows)))} allow(s) {purpose}; {', '.join(denying)} deny(s) it")
        evidence.append(Evidence("signal-conflict", purpose, {"purpose": purpose, "allow": sorted(set(allows)),
                                                              "deny": denying}))
    if denies:
        stated = [d for d in denies if not d[1]]
        result, unavailable = (stated or denies)[0]
        reason = deny_reason(result.signal, result.level, unavailable=unavailable and not stated)
        if platform is not None and platform.overrides and purpose in platform.purposes:
            evidence.append(platform.evidence())
            return SignalDecision(purpose, SignalVerdict.ALLOW, None, "agreement", tuple(evidence), said,
                                  tuple(conflicts))
        if platform is not None:
            evidence.append(platform.evidence())
        return SignalDecision(purpose, SignalVerdict.DENY, reason, "signals", tuple(evidence), said, tuple(conflicts))
    if allows:
        if platform is not None:
            # signals never add to the platform's grant: the grant is still required on a platform (leg 2)
            return _platform(purpose, platform, evidence, said, "signals")
        return SignalDecision(purpose, SignalVerdict.ALLOW, None, "signals", tuple(evidence), said)
    if platform is not None:
        return _platform(purpose, platform, evidence, said, "platform")
    if defaults is _PENDING:
        # before the fetch: the response may still carry a signal, so the default waits for the response phase
        return SignalDecision(purpose, SignalVerdict.ALLOW, None, "pending", tuple(evidence), said)
    allowed = bool(defaults.get(purpose, False))
    evidence.append(Evidence("signal-default", "defaults", {"purpose": purpose,
                                                            "default": "allow" if allowed else "deny",
                                                            "cause": "no signal speaks about this purpose"}))
    if allowed:
        return SignalDecision(purpose, SignalVerdict.ALLOW, None, "default", tuple(evidence), said)
    return SignalDecision(purpose, SignalVerdict.DENY, reasons.TERMS_DEFAULT_DENY, "default", tuple(evidence), said)


def _platform(purpose: str, platform: PlatformGrant, evidence: list[Evidence], said: dict[str, SignalVerdict],
              basis: str) -> SignalDecision:
    evidence.append(platform.evidence())
    if purpose in platform.purposes:
        return SignalDecision(purpose, SignalVerdict.ALLOW, None, basis, tuple(evidence), said)
    reason = reasons.TERMS_PURPOSE if platform.purposes else reasons.TERMS_NOT_AUTHORIZED
    return SignalDecision(purpose, SignalVerdict.DENY, reason, "platform", tuple(evidence), said)


_PENDING: Mapping[str, bool] = {}


def combine(purpose: str, results: Iterable[SignalResult], *, platform: PlatformGrant | None = None,
            defaults: Mapping[str, bool] = CONSERVATIVE_DEFAULTS,
            custom: Iterable[CustomPurpose] | Mapping[str, CustomPurpose] = (),
            before_fetch: bool = False) -> SignalDecision:
    """Decide ``purpose`` from every signal's result.

    ``platform`` is the grant of the platform the URL belongs to (None: on no platform). ``defaults`` is the
    per-purpose fallback off any platform. ``before_fetch``: only site-level results are known yet, so when every
    signal is unknown off any platform the decision is an allow with basis ``pending`` and the default is applied
    in the response phase, after the response-level signals (design.md, "How signals combine"). Raises
    ``ValueError`` for a purpose neither built in nor in ``custom``.
    """
    effective = _effective(results)
    bases = sorted(base_purposes(purpose, custom))
    decisions = [_decide_base(b, effective, platform, _PENDING if before_fetch else defaults) for b in bases]
    if len(decisions) == 1 and bases[0] == purpose:
        return decisions[0]
    evidence: list[Evidence] = []
    said: dict[str, Any] = {}
    conflicts: list[str] = []
    for d in decisions:
        evidence += [e for e in d.evidence if e not in evidence]
        said.update({f"{d.purpose}:{k}": v for k, v in d.signals.items()})
        conflicts += d.conflicts
    denied = [d for d in decisions if not d.allowed]
    first = denied[0] if denied else decisions[0]
    return SignalDecision(purpose, first.verdict, first.reason, first.basis, tuple(evidence), said, tuple(conflicts))
