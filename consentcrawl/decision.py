"""Decisions and the evidence behind them.

A :class:`Decision` is the core's only output. Reasons are stable dotted codes ``<stage>.<code>`` that users
put in dashboards and lawyers put in reports, so they never change meaning once published.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field, replace
from typing import Any


class Verdict(str, enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


class Stage(str, enum.Enum):
    ROBOTS = "robots"
    TERMS = "terms"
    SUBJECT = "subject"
    RESPONSE = "response"
    ERROR = "error"


@dataclass(frozen=True)
class Evidence:
    """One fact a decision rests on: where it came from and what it said."""

    kind: str  #: e.g. "robots.txt", "platform-authorization", "subject-authorization"
    source: str  #: file, URL or store the fact was read from
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, **self.detail}


def new_decision_id() -> str:
    """A new random (version 4, RFC 4122 variant) UUID as 32 hex digits: ``uuid.uuid4().hex`` without the ``UUID``
    object it builds only to be read back (made for every decision)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # variant RFC 4122
    return raw.hex()




@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    stage: Stage
    reason: str
    subject: str | None = None
    platform: str | None = None
    evidence: tuple[Evidence, ...] = ()
    decision_id: str = field(default_factory=new_decision_id)
    #: fields the data may be kept for (``None`` = no restriction from any authorization)
    fields: frozenset[str] | None = None
    #: seconds the origin asks between requests (robots.txt Crawl-delay / Request-rate), for the adapters
    crawl_delay: float | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW

    @property
    def stat_key(self) -> str:
        """``allowed`` or ``denied/<stage>/<code>``, the suffix of the ``consentcrawl/`` stats."""
        if self.allowed:
            return "allowed"
        stage, _, code = self.reason.partition(".")
        return f"denied/{stage}/{code or 'unknown'}"

    def for_spider(self) -> Decision:
        """This decision as spider code sees it (``response.meta``, an errback's ``failure.value.decision``): the
        same but for the evidence fields that quote a page (:data:`PAGE_QUOTES`) and, on a deny, the text of the
        person's authorization records (:data:`DENIED_PERSON_TEXT`). A deny for a person who refused on their page
        or withdrew must not hand the spider what their page said or how they withdrew; the audit line, found by
        ``decision_id``, keeps it. The copy shares no mutable ``detail`` with this decision: the engine reuses its
        evidence for later decisions and the audit log writes it, so what spider code writes into its copy must
        stay there."""
        if not self.evidence:
            return self
        hidden = PAGE_QUOTES if self.allowed else DENIED_PERSON_TEXT
        none: frozenset[str] = frozenset()
        evidence = tuple(Evidence(e.kind, e.source, {
            k: _copied(v) for k, v in e.detail.items() if k not in hidden.get(e.kind, none)}) for e in self.evidence)
        return replace(self, evidence=evidence)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "verdict": self.verdict.value,
            "stage": self.stage.value,
            "reason": self.reason,
            "platform": self.platform,
            "subject": self.subject,
            "fields": sorted(self.fields) if self.fields is not None else None,
            "evidence": [e.to_dict() for e in self.evidence],
        }


#: evidence fields that quote a page, in a person's own words (the text around a refusal hashtag) or name another
#: person (the owner of an actor document): kept in the audit log, which is where evidence is kept, and left out of
#: the copy a spider is handed (:meth:`Decision.for_spider`), so that nothing of a denied person reaches its code
PAGE_QUOTES: dict[str, frozenset[str]] = {"refusal-on-page": frozenset({"raw"}), "page-owner": frozenset({"owner"})}

#: on a deny, also the free text of the person's authorization records (``evidence``: "withdrawn by e-mail of ...",
#: a ticket, a name): what they asked for is theirs, and a denied person's data stays out of spider code
DENIED_PERSON_TEXT: dict[str, frozenset[str]] = {**PAGE_QUOTES, "subject-authorization": frozenset({"evidence"})}


def _copied(value: Any) -> Any:
    """``value`` with every dict and list in it copied (evidence details hold JSON values only)."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value


def deny(stage: Stage, reason: str, *, subject: str | None = None, platform: str | None = None,
         evidence: tuple[Evidence, ...] = ()) -> Decision:
    return Decision(Verdict.DENY, stage, reason, subject=subject, platform=platform, evidence=evidence)


def not_allowed_reason(decision: Decision | None) -> str | None:
    """What a log line or an error report may say of a request instead of its URL: None for an allow, the reason
    code of any other decision, ``undecided`` when none was made (whose page it is was never checked)."""
    if decision is None:
        return "undecided"
    return None if decision.allowed else str(decision.reason)
