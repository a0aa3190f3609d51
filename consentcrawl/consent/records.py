"""Leg 3: a person's authorization to us, and what it covers at a given time."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class RecordStatus(str, enum.Enum):
    LIVE = "live"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class AuthorizationRecord:
    """One authorization, keyed by (platform, subject). Times are timezone-aware UTC."""

    platform: str
    subject: str
    purposes: frozenset[str]
    granted_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    evidence: str = ""
    fields: frozenset[str] | None = None
    record_id: str = ""
    source: str = ""  #: file and line (or row) it was read from
    jurisdiction: str = ""  #: whose law the consent was given under (e.g. "CN", "EU"), when recorded

    def status(self, now: datetime) -> RecordStatus:
        """Status derived from the times: a withdrawal counts from its time on, never before it."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return RecordStatus.REVOKED
        if now < self.granted_at:
            return RecordStatus.NOT_YET_VALID
        if self.expires_at is not None and now >= self.expires_at:
            return RecordStatus.EXPIRED
        return RecordStatus.LIVE

    def covers(self, purpose: str, now: datetime) -> bool:
        return purpose in self.purposes and self.status(now) is RecordStatus.LIVE
