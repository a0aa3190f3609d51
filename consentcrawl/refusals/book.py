"""The refusals known to a crawl, by person, and what they deny. Pure: the adapters add to it (from the refusal
log at start, from pages as they are read) and the engine reads it with every decision.

A refusal is kept for the rest of the crawl and, through the operator's refusal log, for later crawls: a person's
say on their own page is not taken back by a record, whatever the record says. Lifting one is the operator's act
(removing its line from the log), after the person has taken the refusal off their page.

It also keeps the people whose say could not be read where their profile said it is (the ActivityPub actor it
links to: an error, a redirect, another person's actor, garbage): not knowing what they said denies, for this crawl
only (:class:`Unread`), as every failure does; it is not a refusal and is written to no refusal log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..decision import Decision, Evidence, Stage, deny

__all__ = ["REASON", "ClusterSay", "Refusal", "RefusalBook", "Unread", "unread_deny"]

REASON = "subject.refused-on-page"
#: the reason of a deny for a person whose say could not be read (a failure, like every ``error.*``)
UNREAD_REASON = "error.internal"


@dataclass(frozen=True)
class Refusal:
    """A refusal a person published, as found: whose, where, in which field, the raw text, when, for what."""

    platform: str
    subject: str  #: the subject key (the platform's ``subject_key``)
    url: str
    form: str
    field: str
    raw: str
    purposes: frozenset[str]
    seen_at: datetime
    #: the ``refusal-found`` audit event that recorded it (None: read by ``consentcrawl check``, which keeps no log)
    event_id: str | None = None

    def to_evidence(self) -> Evidence:
        return Evidence("refusal-on-page", self.url, {
            "form": self.form, "field": self.field, "raw": self.raw, "purposes": sorted(self.purposes),
            "seen_at": self.seen_at.isoformat(), "event": self.event_id})

    def to_json(self) -> dict[str, Any]:
        """One line of the refusal log."""
        return {"platform": self.platform, "subject": self.subject, "url": self.url, "form": self.form,
                "field": self.field, "raw": self.raw, "purposes": sorted(self.purposes),
                "seen_at": self.seen_at.isoformat(), "event": self.event_id}


@dataclass(frozen=True)
class Unread:
    """A document that holds a person's say (the actor their profile links to) and could not be read: why, where.

    What it would have said is not known, and it can refuse every purpose (``suspended``, ``movedTo``), so it
    denies them all, as a failure (``error.internal``), not as a refusal."""

    platform: str
    subject: str
    url: str
    cause: str
    seen_at: datetime

    def to_evidence(self) -> Evidence:
        return Evidence("error", self.url, {
            "error": "ActorUnread", "while": "reading the ActivityPub actor the person's profile links to",
            "message": self.cause, "seen_at": self.seen_at.isoformat()})


@dataclass(frozen=True)
class ClusterSay:
    """What the workers of a distributed crawl published about a person: a refusal, or a say that could not be
    read (``unread``), with the evidence the publishing worker kept (its ``event_id`` and ``form``; the purge on
    close names them in its receipt)."""

    unread: bool
    evidence: Mapping[str, Any] = field(default_factory=dict)


def unread_deny(decision: Decision, unread: Unread) -> Decision:
    """The deny of a person whose say could not be read: what ``decision`` consulted, and why."""
    return deny(Stage.ERROR, UNREAD_REASON, subject=decision.subject, platform=decision.platform,
                evidence=(*decision.evidence, unread.to_evidence()))


class RefusalBook:
    """Refusals by (platform, subject key), and the people whose say could not be read (:class:`Unread`).
    ``version`` changes with every one added."""

    def __init__(self, refusals: Iterable[Refusal] = ()) -> None:
        self._by_person: dict[tuple[str, str], tuple[Refusal, ...]] = {}
        self._unread: dict[tuple[str, str], Unread] = {}
        self.version = 0
        for refusal in refusals:
            self.add(refusal)

    def __len__(self) -> int:
        return len(self._by_person) + len(self._unread)

    def __bool__(self) -> bool:
        return bool(self._by_person) or bool(self._unread)

    @property
    def people(self) -> Mapping[tuple[str, str], tuple[Refusal, ...]]:
        return self._by_person

    def add(self, refusal: Refusal) -> None:
        key = (refusal.platform, refusal.subject)
        self._by_person[key] = (*self._by_person.get(key, ()), refusal)
        self.version += 1

    def add_unread(self, unread: Unread) -> None:
        """A person whose say could not be read: denied from now on (the first cause is kept)."""
        self._unread.setdefault((unread.platform, unread.subject), unread)
        self.version += 1

    def unread(self, platform: str, subject: str) -> Unread | None:
        return self._unread.get((platform, subject))

    @property
    def unread_people(self) -> Mapping[tuple[str, str], Unread]:
        return self._unread

    def refusal(self, platform: str, subject: str, purposes: frozenset[str]) -> Refusal | None:
        """The first refusal of this person that refuses any of ``purposes`` (the crawl's purpose, or what a
        custom purpose counts as), or None."""
        for refusal in self._by_person.get((platform, subject), ()):
            if refusal.purposes & purposes:
                return refusal
        return None

    def overrule(self, decision: Decision, purposes: frozenset[str]) -> Decision:
        """``decision`` if it denies or names nobody; a ``subject.refused-on-page`` deny if it would let the data
        of a person who refused one of ``purposes`` be collected; an ``error.internal`` deny for a person whose say
        could not be read."""
        if not decision.allowed or decision.subject is None or decision.platform is None or not self:
            return decision
        refusal = self.refusal(decision.platform, decision.subject, purposes)
        if refusal is not None:
            return deny(Stage.SUBJECT, REASON, subject=decision.subject, platform=decision.platform,
                        evidence=(*decision.evidence, refusal.to_evidence()))
        unread = self._unread.get((decision.platform, decision.subject))
        return decision if unread is None else unread_deny(decision, unread)
