"""Leg 3, the person: which person a request concerns, and whether they authorized this purpose now.

Four checks, in this order in the default list (after the platform's terms):

- :class:`MismatchCheck` denies ``subject.mismatch``: the request's meta names another person or platform than
  its URL, its own ``Host`` header another host, or a header a front end routes by (``X-Original-URL``, ...)
  another page.
- :class:`AmbiguousUrlCheck` denies ``subject.ambiguous-url``: a lenient server could read the URL as another
  person, or as no one person.
- :class:`NotAProfileCheck` concludes ``subject.not-a-profile`` (allow) for a platform URL that names no person.
- :class:`SubjectRecordsCheck` concludes from the person's records: ``subject.authorized`` (allow), or
  ``subject.revoked``, ``subject.expired``, ``subject.not-yet-valid``, ``subject.purpose``,
  ``subject.no-authorization``; and ``subject.unknown-platform`` for a person named on no platform.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from ..cache import ObjectMemo
from ..consent.records import AuthorizationRecord, RecordStatus
from ..decision import Evidence
from ..recent import Recent
from .base import CheckContext, Outcome

__all__ = ["AmbiguousUrlCheck", "MismatchCheck", "NotAProfileCheck", "SubjectRecordsCheck", "judge_records"]


class MismatchCheck:
    """The person or platform a request's ``consentcrawl_subject`` names is not its URL's."""

    cacheable = True

    def check(self, ctx: CheckContext) -> Outcome | None:
        if ctx.facts is None or ctx.facts.mismatch is None:
            return None
        mismatch = ctx.facts.mismatch  # a header, meta["proxy"] or the meta subject: what said so is cited
        ctx.cite(Evidence(mismatch.kind, mismatch.name, {"cause": mismatch.cause}))
        return Outcome.deny("subject.mismatch")


class AmbiguousUrlCheck:
    """A URL whose readings (by every server behaviour we know of) name different people, or none."""

    cacheable = True

    def check(self, ctx: CheckContext) -> Outcome | None:
        facts = ctx.facts
        if facts is None or facts.ambiguous is None:
            return None
        ctx.cite(Evidence("url-readings", facts.canonical.url, {
            "readings": [list(r) for r in facts.ambiguous.readings],
            "cause": "a lenient server could read this URL as another person, or as no one person"}))
        return Outcome.deny("subject.ambiguous-url")


class NotAProfileCheck:
    """A platform URL that names no person: the platform's grant suffices."""

    cacheable = True

    def check(self, ctx: CheckContext) -> Outcome | None:
        if ctx.subject is not None:
            return None
        grant = ctx.platform.authorization if ctx.platform is not None else None
        return Outcome.allow("subject.not-a-profile", fields=grant.fields if grant else None)


class SubjectRecordsCheck:
    """The person's authorization records in the store, judged at the decision time for the purpose."""

    cacheable = True

    def __init__(self) -> None:
        #: bounded, not kept on the record: an in-memory store holds every record for the whole crawl
        self._records: ObjectMemo[AuthorizationRecord, Evidence] = ObjectMemo(8192)
        self._none: Recent[tuple[str, str, str], Evidence] = Recent(8192)

    def check(self, ctx: CheckContext) -> Outcome | None:
        platform, subject = ctx.platform, ctx.subject
        if subject is None:
            return None
        if platform is None:
            return Outcome.deny("subject.unknown-platform")
        if not ctx.answers.configured:
            ctx.cite(Evidence("subject-authorization", "none", {"cause": "no authorization store"}))
            return Outcome.deny("subject.no-authorization")
        records = ctx.records(platform.name, subject)
        conflicts = {id(r): why for r in records
                     if not r.subject.isascii() and (why := platform.subject_conflict(r.subject))}
        grants = (lambda record: id(record) not in conflicts) if conflicts else None
        lives, reason = judge_all(records, ctx.base_purposes(), ctx.now, grants)
        if lives:
            grant = platform.authorization
            fields = grant.fields if grant else None
            for i, live in enumerate(lives):
                if all(live is not other for other in lives[:i]):  # one record may cover several purposes
                    ctx.cite(self._records.get(live, record_evidence))
                fields = _intersect(fields, live.fields)
            return Outcome.allow("subject.authorized", fields=fields)
        for record in records:
            ctx.cite(self._records.get(record, record_evidence))
            if id(record) in conflicts:  # a grant written as straße is no grant for the account strasse
                ctx.cite(Evidence("subject-authorization", record.source, {
                    "platform": platform.name, "subject": record.subject, "grants": False,
                    "cause": f"the record's subject may be another account than {subject!r}: {conflicts[id(record)]}"}))
        if not records:
            source = ctx.answers.source or "store"
            key = (source, platform.name, subject)
            none = self._none.get(key)
            if none is None:  # the same object for the link, the fetch and the item: its JSON is written once
                none = Evidence("subject-authorization", source, {"platform": platform.name, "subject": subject,
                                                                  "records": 0})
                self._none.put(key, none)
            ctx.cite(none)
        return Outcome.deny(reason)


_STATUS_REASON = {
    RecordStatus.REVOKED: "subject.revoked",
    RecordStatus.EXPIRED: "subject.expired",
    RecordStatus.NOT_YET_VALID: "subject.not-yet-valid",
}
#: when no record is live, the reason names the most telling record: a withdrawal beats an expiry, etc.
_REASON_RANK = ["subject.revoked", "subject.expired", "subject.not-yet-valid", "subject.purpose",
                "subject.no-authorization"]


def judge_all(records: Sequence[AuthorizationRecord], purposes: frozenset[str],
              now: datetime, grants: Callable[[AuthorizationRecord], bool] | None = None
              ) -> tuple[list[AuthorizationRecord], str]:
    """A live record for each of ``purposes`` (the built-in purposes the crawl's purpose counts as), or the reason
    of the first one (in name order) without one; none at all is ``subject.purpose``. ``grants``: see
    :func:`judge_records`."""
    lives = []
    for purpose in sorted(purposes):
        live, reason = judge_records(records, purpose, now, grants)
        if live is None:
            return [], reason
        lives.append(live)
    return lives, "" if lives else "subject.purpose"


def judge_records(records: Sequence[AuthorizationRecord], purpose: str, now: datetime,
                  grants: Callable[[AuthorizationRecord], bool] | None = None
                  ) -> tuple[AuthorizationRecord | None, str]:
    """A live record for the purpose, or the reason none is.

    A withdrawal for the purpose overrides any grant for it that is older than the withdrawal. ``grants``: whether
    a record may grant (None: every one). A record that may not (its subject, as written, may be another account
    than the one asked about: :meth:`~consentcrawl.terms.platforms.Platform.subject_conflict`) is never the live
    one, and unless withdrawn counts as no record at all (``subject.no-authorization``); its withdrawal still
    counts, for withdrawing is never the wrong way to err.
    """
    revoked_at = [r.revoked_at for r in records if purpose in r.purposes and r.revoked_at and r.revoked_at <= now]
    last_revocation = max(revoked_at) if revoked_at else None
    best = "subject.no-authorization"
    for record in records:
        if purpose not in record.purposes:
            reason = "subject.purpose"
        else:
            status = record.status(now)
            if status is not RecordStatus.REVOKED and grants is not None and not grants(record):
                reason = "subject.no-authorization"
            elif status is RecordStatus.LIVE:
                if last_revocation is None or record.granted_at > last_revocation:
                    return record, ""
                reason = "subject.revoked"
            else:
                reason = _STATUS_REASON[status]
        if _REASON_RANK.index(reason) < _REASON_RANK.index(best):
            best = reason
    return None, best


def record_evidence(record: AuthorizationRecord) -> Evidence:
    return Evidence("subject-authorization", record.source, {
        "platform": record.platform,
        "subject": record.subject,
        "record_id": record.record_id or None,
        "purposes": tuple(sorted(record.purposes)),
        "granted_at": record.granted_at.isoformat(),
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
        "evidence": record.evidence,
    })


def _intersect(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b
