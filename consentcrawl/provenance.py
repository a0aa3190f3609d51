"""An item's provenance: the decision that let its page be fetched and the grants that decision rests on.

Pure: built from a :class:`~consentcrawl.decision.Decision`'s evidence, no Scrapy, no I/O, no clock. The spider
middleware stamps it on every item from a decided response (:func:`page_provenance`); the guard pipeline adds the
person's grant it judged the item on (:func:`with_item_decision`), since an item on a listing page is about a
person whose record the page's own decision never looked at. ``docs/provenance.md`` documents the fields.

The dict only adds keys to the ones consentcrawl 0.1 wrote (``decision_id``, ``url``, ``platform``, ``subject``,
``purpose``, ``reason``): readers of those keep working.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .decision import Decision, Evidence

__all__ = ["page_provenance", "record_ref", "with_item_decision"]


def record_ref(platform: str, subject: str, granted_at: str, evidence: str, record_id: str | None = None) -> str:
    """A record's stable id: its own ``record_id`` when it has one, else one derived from what identifies it.

    The derived id is ``"sha256:"`` and the first 32 hex digits of SHA-256 over platform, subject, ``granted_at``
    (ISO 8601 as the audit log writes it) and evidence, joined by U+001F. The same record read again from any
    store (YAML, CSV, SQLite) gets the same id, so an item, its audit line and the store can be matched up.
    """
    if record_id:
        return record_id
    text = "\x1f".join((platform, subject, granted_at, evidence))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _agreement(evidence: Iterable[Evidence]) -> dict[str, Any] | None:
    for ev in evidence:
        if ev.kind == "platform-authorization" and ev.detail.get("reference") is not None:
            return {"reference": ev.detail.get("reference"), "source": ev.source,
                    "valid_until": ev.detail.get("valid_until")}
    return None


def _authorization(evidence: Iterable[Evidence]) -> dict[str, Any] | None:
    """The person's record an allow rests on: the one ``subject-authorization`` it cites (an allow cites one)."""
    for ev in evidence:
        d = ev.detail
        if ev.kind == "subject-authorization" and d.get("granted_at"):
            return {
                "record_id": record_ref(str(d.get("platform")), str(d.get("subject")), str(d["granted_at"]),
                                        str(d.get("evidence") or ""), d.get("record_id")),
                "evidence": d.get("evidence"),
                "source": ev.source,
                "expires_at": d.get("expires_at"),
                "revoked_at": d.get("revoked_at"),
            }
    return None


def _earliest(*times: str | None) -> str | None:
    """The earliest of ISO 8601 times (compared as times, not as text); None when there is none."""
    known = [t for t in times if t]
    if not known:
        return None
    return min(known, key=lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")))  # Python 3.10 reads no Z


def _expires(agreement: dict[str, Any] | None, authorization: dict[str, Any] | None) -> str | None:
    ends = [agreement.get("valid_until") if agreement else None]
    if authorization:
        ends += [authorization.get("expires_at"), authorization.get("revoked_at")]
    return _earliest(*ends)


def page_provenance(decision: Decision, url: str, purpose: str | None) -> dict[str, Any]:
    """The provenance of an item from the response ``decision`` let in."""
    agreement = _agreement(decision.evidence)
    authorization = _authorization(decision.evidence) if decision.subject is not None else None
    return {
        "decision_id": decision.decision_id,
        "url": url,
        "platform": decision.platform,
        "subject": decision.subject,
        "purpose": purpose,
        "reason": decision.reason,
        "platform_agreement": agreement,
        "authorization": authorization,
        "expires_at": _expires(agreement, authorization),
    }


def with_item_decision(provenance: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """``provenance`` with the guard pipeline's allow for the item's person: that person's record (when the page
    cited none, or another person's) and the earliest end of every grant the item now rests on."""
    agreement = provenance.get("platform_agreement") or _agreement(decision.evidence)
    authorization = _authorization(decision.evidence)
    page_authorization = provenance.get("authorization")
    if authorization is None:
        authorization = page_authorization
    ends = [_expires(agreement, authorization), provenance.get("expires_at")]
    provenance.update({
        "item_decision_id": decision.decision_id,
        "platform_agreement": agreement,
        "authorization": authorization,
        "expires_at": _earliest(*ends),
    })
    return provenance
