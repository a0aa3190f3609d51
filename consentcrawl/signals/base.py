"""What every signal module returns: a verdict per purpose, and the evidence for it.

Pure: no Scrapy, no I/O, no clock (the fetch time is passed in). A signal module turns what a site published into
a :class:`SignalResult`; :mod:`consentcrawl.signals.combine` combines the results of all signals for a purpose.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..decision import Evidence

__all__ = ["RAW_MAX", "Finding", "Level", "SignalResult", "SignalVerdict", "Statement", "worst"]

RAW_MAX = 300  #: characters of a raw value kept in evidence


class SignalVerdict(str, enum.Enum):
    """What one signal says about one purpose."""

    ALLOW = "allow"
    DENY = "deny"
    UNKNOWN = "unknown"


class Level(str, enum.Enum):
    """Where a statement was read: decided before the fetch (``site``) or on the response (``response``)."""

    SITE = "site"  #: robots.txt lines, /.well-known/tdmrep.json, /ai.txt, an RSL licence found in robots.txt
    RESPONSE = "response"  #: headers, HTML meta and link tags of the fetched page


#: the names used in reason codes and evidence (``terms.signal.<name>``)
SIGNAL_NAMES = ("tdmrep", "content-usage", "content-signal", "rsl", "ai-txt")


@dataclass(frozen=True)
class Statement:
    """One thing a site published: where, what, when it was read."""

    signal: str  #: "tdmrep", "content-usage", "content-signal", "rsl", "ai-txt"
    level: Level
    url: str  #: the file or page it was read from
    where: str  #: "line 4", "header Content-Usage", "meta tdm-reservation", "tdmrep.json[2]", "<content url=...>"
    raw: str  #: the value as published (cut to RAW_MAX characters)
    fetched_at: datetime | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.raw) > RAW_MAX:
            object.__setattr__(self, "raw", self.raw[:RAW_MAX])


@dataclass(frozen=True)
class Finding:
    """A statement read as a verdict for one of our purposes."""

    purpose: str
    verdict: SignalVerdict
    statement: Statement
    note: str | None = None  #: e.g. "legacy label, denied in conservative mode"

    def evidence(self) -> Evidence:
        st = self.statement
        detail: dict[str, Any] = {
            "signal": st.signal, "level": st.level.value, "purpose": self.purpose, "verdict": self.verdict.value,
            "where": st.where, "raw": st.raw,
            "fetched_at": st.fetched_at.isoformat() if st.fetched_at is not None else None,
        }
        if self.note:
            detail["note"] = self.note
        detail.update(st.detail)
        return Evidence(f"signal.{st.signal}", st.url, detail)


def worst(verdicts: Iterable[SignalVerdict]) -> SignalVerdict:
    """Any deny, else any allow, else unknown (the combination rule, AIPREF vocab §7.1)."""
    seen = set(verdicts)
    if SignalVerdict.DENY in seen:
        return SignalVerdict.DENY
    if SignalVerdict.ALLOW in seen:
        return SignalVerdict.ALLOW
    return SignalVerdict.UNKNOWN


@dataclass(frozen=True)
class SignalResult:
    """What one signal says, for every purpose it speaks about.

    ``findings`` hold every statement that counts (a purpose with none is unknown); within a signal they combine
    deny > allow > unknown. ``unavailable`` is set when the file that carries the signal could not be read
    (unreachable, 5xx, unreadable): every purpose in ``covers`` is then denied with
    ``terms.signal-unavailable.<signal>``. ``notes`` are warnings about what was ignored and why.
    """

    signal: str
    level: Level
    findings: tuple[Finding, ...] = ()
    unavailable: str | None = None  #: why the signal's file could not be read
    covers: frozenset[str] = frozenset()  #: the purposes the signal family speaks about
    source: str = ""  #: the file or page read
    fetched_at: datetime | None = None
    notes: tuple[str, ...] = ()
    #: a response-level result that already folds in the site-level file by the signal's own precedence (TDMRep:
    #: file < header < meta): combining drops the site-level result of the same signal
    replaces_site: bool = False

    def verdict(self, purpose: str) -> SignalVerdict:
        if self.unavailable is not None and purpose in self.covers:
            return SignalVerdict.DENY
        return worst(f.verdict for f in self.findings if f.purpose == purpose)

    def for_purpose(self, purpose: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.purpose == purpose)

    def unavailable_evidence(self) -> Evidence:
        return Evidence(f"signal.{self.signal}", self.source, {
            "signal": self.signal, "level": self.level.value, "verdict": "unavailable", "cause": self.unavailable,
            "fetched_at": self.fetched_at.isoformat() if self.fetched_at is not None else None,
        })

    @property
    def purposes(self) -> frozenset[str]:
        return frozenset(f.purpose for f in self.findings)


def empty(signal: str, level: Level, source: str = "", fetched_at: datetime | None = None,
          notes: Iterable[str] = ()) -> SignalResult:
    """No statement at all: every purpose unknown."""
    return SignalResult(signal, level, source=source, fetched_at=fetched_at, notes=tuple(notes))
