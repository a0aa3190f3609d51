"""The refusals known to a crawl, by person, and what they deny. Pure: the adapters add to it (from the refusal
log at start, from pages as they are read) and the engine reads it with every decision.

A refusal is kept for the rest of the crawl and, through the operator's refusal log, for later crawls: a person's
say on their own page is not taken back by a record, whatever the record says. Lifting one is the operator's act
(removing its line from the log), after the person has taken the refusal off their page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..decision import Decision, Evidence, Stage, deny

__all__ = ["REASON", "Refusal", "RefusalBook"]

REASON = "subject.refused-on-page"


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


class RefusalBook:
    """Refusals by (platform, subject key). ``version`` changes with every refusal added."""

    def __init__(self, refusals: Iterable[Refusal] = ()) -> None:
        self._by_person: dict[tuple[str, str], tuple[Refusal, ...]] = {}
        self.version = 0
        for refusal in refusals:
            self.add(refusal)

    def __len__(self) -> int:
        return len(self._by_person)

    def __bool__(self) -> bool:
        return bool(self._by_person)

    @property
    def people(self) -> Mapping[tuple[str, str], tuple[Refusal, ...]]:
        return self._by_person

    def add(self, refusal: Refusal) -> None:
        key = (refusal.platform, refusal.subject)
        self._by_person[key] = (*self._by_person.get(key, ()), refusal)
        self.version += 1

    def refusal(self, platform: str, subject: str, purposes: frozenset[str]) -> Refusal | None:
        """The first refusal of this person that refuses any of ``purposes`` (the crawl's purpose, or what a
        custom purpose counts as), or None."""
        for refusal in self._by_person.get((platform, subject), ()):
            if refusal.purposes & purposes:
                return refusal
        return None

    def overrule(self, decision: Decision, purposes: frozenset[str]) -> Decision:
        """``decision`` if it denies or names nobody; a ``subject.refused-on-page`` deny if it would let the data
        of a person who refused one of ``purposes`` be collected."""
        if not decision.allowed or decision.subject is None or decision.platform is None or not self._by_person:
            return decision
        refusal = self.refusal(decision.platform, decision.subject, purposes)
        if refusal is None:
            return decision
        return deny(Stage.SUBJECT, REASON, subject=decision.subject, platform=decision.platform,
                    evidence=(*decision.evidence, refusal.to_evidence()))
