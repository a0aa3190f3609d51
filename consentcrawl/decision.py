"""Decisions and the evidence behind them.

A :class:`Decision` is the core's only output. Reasons are stable dotted codes ``<stage>.<code>`` that users
put in dashboards and lawyers put in reports, so they never change meaning once published.
"""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    #: its JSON, once the audit log has written it: decisions share evidence objects (the same robots.txt, platform
    #: grant or authorization record), and encoding is most of the cost of a line. Kept on the object, so it lives
    #: exactly as long as the evidence does.
    encoded: str | None = field(default=None, init=False, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, **self.detail}


#: a random UUID made version 4 (RFC 4122): clear the version nibble and the variant bits, then set them
_UUID4_MASK = 0xFFFFFFFF_FFFF_0FFF_3FFF_FFFFFFFFFFFF
_UUID4_BITS = 0x00000000_0000_4000_8000_000000000000
_ids = threading.local()


def _id_stream() -> Iterator[str]:
    """``uuid.uuid4().hex`` strings, 256 from each ``os.urandom`` call (one system call per id costs ~2 µs)."""
    while True:
        block = os.urandom(4096)
        for i in range(0, 4096, 16):
            yield "%032x" % (int.from_bytes(block[i:i + 16], "big") & _UUID4_MASK | _UUID4_BITS)


def new_decision_id() -> str:
    """A new random (version 4) UUID as 32 hex digits, like ``uuid.uuid4().hex``."""
    try:
        return _ids.next()  # type: ignore[no-any-return]
    except AttributeError:  # first id in this thread (or since a fork)
        _ids.next = _id_stream().__next__
        return _ids.next()  # type: ignore[no-any-return]


def _forget_ids() -> None:
    """A forked child must not hand out the ids its parent has buffered."""
    global _ids
    _ids = threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_ids)


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


def deny(stage: Stage, reason: str, *, subject: str | None = None, platform: str | None = None,
         evidence: tuple[Evidence, ...] = ()) -> Decision:
    return Decision(Verdict.DENY, stage, reason, subject=subject, platform=platform, evidence=evidence)
