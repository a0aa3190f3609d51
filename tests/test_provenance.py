"""Provenance from a decision's evidence (consentcrawl/provenance.py, pure): the grants and the earliest end."""

from __future__ import annotations

import hashlib

from consentcrawl.decision import Decision, Evidence, Stage, Verdict
from consentcrawl.provenance import page_provenance, record_ref, with_item_decision

GRANT = Evidence("platform-authorization", "platforms.yaml:4", {
    "platform": "microblog", "reference": "MB-1", "purposes": ("research",), "valid_from": None,
    "valid_until": "2028-01-01T00:00:00+00:00"})


def record(subject: str, expires: str | None, revoked: str | None = None, record_id: str | None = None) -> Evidence:
    return Evidence("subject-authorization", f"authorizations.yaml:{subject}", {
        "platform": "microblog", "subject": subject, "record_id": record_id, "purposes": ("research",),
        "granted_at": "2026-02-01T00:00:00+00:00", "expires_at": expires, "revoked_at": revoked,
        "evidence": f"form {subject}"})


def allow(subject: str | None, *evidence: Evidence, reason: str = "subject.authorized") -> Decision:
    return Decision(Verdict.ALLOW, Stage.SUBJECT, reason, subject=subject, platform="microblog", evidence=evidence)


def test_a_profile_items_provenance_names_both_grants_and_the_earliest_end() -> None:
    prov = page_provenance(allow("1022", GRANT, record("1022", "2027-06-01T00:00:00Z")), "http://x/u/1022", "research")
    assert prov["platform_agreement"] == {"reference": "MB-1", "source": "platforms.yaml:4",
                                          "valid_until": "2028-01-01T00:00:00+00:00"}
    assert prov["authorization"]["evidence"] == "form 1022"
    assert prov["expires_at"] == "2027-06-01T00:00:00Z"
    # a withdrawal already scheduled ends the grant earlier; a grant with no end leaves the agreement's
    scheduled = record("1022", "2027-06-01T00:00:00+00:00", revoked="2027-01-01T00:00:00+00:00")
    assert page_provenance(allow("1022", GRANT, scheduled), "u", "research")["expires_at"] == scheduled.detail[
        "revoked_at"]
    assert page_provenance(allow("1022", GRANT, record("1022", None)), "u", "research")["expires_at"] == (
        "2028-01-01T00:00:00+00:00")


def test_a_listing_item_gets_its_persons_record_from_the_guard() -> None:
    page = page_provenance(allow(None, GRANT, reason="subject.not-a-profile"), "http://x/people", "research")
    assert page["authorization"] is None and page["expires_at"] == "2028-01-01T00:00:00+00:00"
    item = with_item_decision(dict(page), allow("1030", GRANT, record("1030", "2026-12-31T00:00:00+00:00")))
    assert item["authorization"]["source"] == "authorizations.yaml:1030"
    assert item["expires_at"] == "2026-12-31T00:00:00+00:00" and item["decision_id"] == page["decision_id"]


def test_a_records_id_is_its_own_or_a_stable_hash_of_what_identifies_it() -> None:
    assert record_ref("microblog", "1022", "2026-02-01T00:00:00+00:00", "form", "crm-7") == "crm-7"
    derived = record_ref("microblog", "1022", "2026-02-01T00:00:00+00:00", "form")
    text = "microblog\x1f1022\x1f2026-02-01T00:00:00+00:00\x1fform"
    assert derived == "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]
    assert derived != record_ref("microblog", "1022", "2026-02-01T00:00:00+00:00", "form 2")
    prov = page_provenance(allow("1022", GRANT, record("1022", None)), "u", "research")
    assert prov["authorization"]["record_id"] == record_ref("microblog", "1022", "2026-02-01T00:00:00+00:00",
                                                            "form 1022")
