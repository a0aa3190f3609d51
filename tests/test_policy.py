"""The pure policy core: stage order, reason codes, fail-closed errors."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.store import MemoryStore
from consentcrawl.decision import Stage
from consentcrawl.errors import StoreUnavailable
from consentcrawl.robots.fetch import from_response, unreachable
from consentcrawl.terms.platforms import Platform, PlatformAuthorization, PlatformRegistry, ProfileTemplate
from tests.deciding import Engine

UTC = timezone.utc
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ROBOTS = b"User-agent: *\nDisallow: /search\nDisallow: /private/\n"


def t(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


def make_platform(**grant: object) -> Platform:
    authorization = PlatformAuthorization(
        purposes=frozenset(grant.get("purposes", {"research"})),  # type: ignore[arg-type]
        reference="agreement 1",
        valid_from=grant.get("valid_from", t("2026-01-01")),  # type: ignore[arg-type]
        valid_until=grant.get("valid_until", t("2027-01-01")),  # type: ignore[arg-type]
        fields=frozenset({"name", "bio"}),
    )
    return Platform(
        name="microblog",
        domains=frozenset({"microblog.example"}),
        authorization=None if grant.get("none") else authorization,
        profiles=(ProfileTemplate.compile("/u/{subject}", "[0-9]+"), ProfileTemplate.compile("/profile/{subject}")),
        source="platforms.yaml:2",
    )


def record(subject: str, **kw: object) -> AuthorizationRecord:
    base: dict = dict(platform="microblog", subject=subject, purposes=frozenset({"research"}),
                      granted_at=t("2026-02-01"), evidence="form 1", source="auth.yaml:3")
    base.update(kw)
    return AuthorizationRecord(**base)


RECORDS = [
    record("1001"),
    record("1002", expires_at=t("2026-06-01")),
    record("1003", revoked_at=t("2026-10-01")),
    record("1004", purposes=frozenset({"ai-training"})),
    record("1005", granted_at=t("2027-01-01")),
    record("1006", fields=frozenset({"name"})),
    # withdrawn after the grant, then given again later: the newer grant counts
    record("1007", granted_at=t("2026-02-01"), revoked_at=t("2026-03-01"), record_id="a"),
    record("1007", granted_at=t("2026-04-01"), record_id="b"),
    # a live grant older than a withdrawal for the same purpose does not survive the withdrawal
    record("1008", granted_at=t("2026-02-01"), record_id="a"),
    record("1008", granted_at=t("2026-02-02"), revoked_at=t("2026-05-01"), record_id="b"),
]


def engine(platform: Platform | None = None, store: object = "default") -> Engine:
    registry = PlatformRegistry({"microblog": platform or make_platform()})
    return Engine(registry, MemoryStore(RECORDS) if store == "default" else store, "consentcrawl")  # type: ignore[arg-type]


def decide(url: str, eng: Engine | None = None, robots: bytes | None = ROBOTS, purpose: str = "research"):
    eng = eng or engine()
    facts = eng.facts(url, purpose, NOW)
    file = from_response(facts.canonical.origin + "/robots.txt", 200, robots, NOW) if robots is not None else None
    return eng.decide(facts, file)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://microblog.example/u/1001", "subject.authorized"),
        ("http://microblog.example/u/1002", "subject.expired"),
        ("http://microblog.example/u/1003", "subject.revoked"),
        ("http://microblog.example/u/1004", "subject.purpose"),
        ("http://microblog.example/u/1005", "subject.not-yet-valid"),
        ("http://microblog.example/u/1006", "subject.authorized"),
        ("http://microblog.example/u/1007", "subject.authorized"),
        ("http://microblog.example/u/1008", "subject.revoked"),
        ("http://microblog.example/u/9999", "subject.no-authorization"),
        ("http://microblog.example/profile/9999", "subject.no-authorization"),
        ("http://microblog.example/people?page=2", "subject.not-a-profile"),
        ("http://microblog.example/search?q=x", "robots.disallowed"),
        ("http://microblog.example/private/", "robots.disallowed"),
        ("http://other.example/u/9999", "terms.off-platform"),
    ],
)
def test_reasons(url: str, reason: str) -> None:
    decision = decide(url)
    assert decision.reason == reason
    assert decision.allowed == (reason in {"subject.authorized", "subject.not-a-profile", "terms.off-platform"})
    assert decision.stage.value == reason.split(".")[0]


def test_robots_runs_first_even_for_an_authorized_person() -> None:
    decision = decide("http://microblog.example/u/1001", robots=b"User-agent: *\nDisallow: /u/\n")
    assert (decision.reason, decision.stage) == ("robots.disallowed", Stage.ROBOTS)
    assert decision.evidence[0].detail["rule"] == "Disallow: /u/"


def test_robots_unreachable_denies_everything_and_4xx_allows() -> None:
    eng = engine()
    facts = eng.facts("http://microblog.example/u/1001", "research", NOW)
    down = unreachable("http://microblog.example/robots.txt", NOW, "HTTP 503", http_status=503)
    assert eng.decide(facts, down).reason == "robots.unreachable"
    gone = from_response("http://microblog.example/robots.txt", 404, b"User-agent: *\nDisallow: /\n", NOW)
    assert eng.decide(facts, gone).reason == "subject.authorized"


def test_missing_robots_is_an_error_deny() -> None:
    decision = decide("http://microblog.example/people", robots=None)
    assert (decision.stage, decision.reason) == (Stage.ERROR, "error.robots-missing")


@pytest.mark.parametrize(
    ("grant", "reason"),
    [
        ({"none": True}, "terms.not-authorized"),
        ({"purposes": {"ai-training"}}, "terms.purpose"),
        ({"valid_until": t("2026-06-01")}, "terms.expired"),
        ({"valid_from": t("2027-01-01")}, "terms.not-yet-valid"),
    ],
)
def test_terms_stage_denies_even_non_profile_pages(grant: dict, reason: str) -> None:
    eng = engine(make_platform(**grant))
    for url in ("http://microblog.example/people", "http://microblog.example/u/1001"):
        decision = decide(url, eng)
        assert (decision.stage, decision.reason) == (Stage.TERMS, reason)


def test_fields_are_the_intersection_of_both_grants() -> None:
    assert decide("http://microblog.example/u/1001").fields == {"name", "bio"}
    assert decide("http://microblog.example/u/1006").fields == {"name"}


def test_store_failure_is_a_deny_with_error_reason() -> None:
    class Broken:
        def lookup(self, platform: str, subject: str):
            raise StoreUnavailable("connection refused")

    decision = decide("http://microblog.example/u/1001", engine(store=Broken()))
    assert (decision.stage, decision.reason) == (Stage.ERROR, "error.store-unavailable")
    assert not decision.allowed


def test_any_exception_from_a_store_is_a_store_failure_with_its_cause() -> None:
    class Exploding:
        def lookup(self, platform: str, subject: str):
            raise RuntimeError("bug")

    decision = decide("http://microblog.example/u/1001", engine(store=Exploding()))
    assert (decision.stage, decision.reason) == (Stage.ERROR, "error.store-unavailable")
    assert decision.evidence[-1].detail["error"] == "StoreUnavailable"
    assert "RuntimeError: bug" in decision.evidence[-1].detail["message"]


def test_any_exception_while_deciding_is_a_deny() -> None:
    class Exploding:
        site = False

        def check(self, ctx: object):
            raise RuntimeError("bug")

    registry = PlatformRegistry({"microblog": make_platform()})
    decision = decide("http://microblog.example/u/1001", Engine(registry, MemoryStore(RECORDS), checks=[Exploding()]))
    assert (decision.stage, decision.reason) == (Stage.ERROR, "error.internal")
    assert decision.evidence[-1].detail["error"] == "RuntimeError"


def test_no_store_means_no_person_is_authorized() -> None:
    assert decide("http://microblog.example/u/1001", engine(store=None)).reason == "subject.no-authorization"


def test_bad_url_is_a_deny_not_an_exception() -> None:
    facts, decision = engine().decide_url("http://[::1/u/1", "research", NOW, None)
    assert facts is None and decision.reason == "error.bad-url" and not decision.allowed


def test_subject_named_by_the_request() -> None:
    eng = engine()
    facts = eng.facts("http://cdn.other.example/avatar.png", "research", NOW, subject="microblog:9999")
    assert (facts.platform and facts.platform.name, facts.subject) == ("microblog", "9999")
    file = from_response("http://cdn.other.example/robots.txt", 404, b"", NOW)
    assert eng.decide(facts, file).reason == "subject.no-authorization"
    orphan = eng.facts("http://cdn.other.example/a.png", "research", NOW, subject="42")
    assert eng.decide(orphan, file).reason == "subject.unknown-platform"


def test_item_decision_uses_terms_and_subject() -> None:
    eng = engine()
    assert eng.decide_subject("microblog", "1001", "research", NOW).allowed
    assert eng.decide_subject("microblog", "1003", "research", NOW).reason == "subject.revoked"
    assert eng.decide_subject(None, "1001", "research", NOW).reason == "subject.unknown-platform"
    assert eng.decide_subject("microblog", "1001", "ai-training", NOW).reason == "terms.purpose"


def test_decision_ids_are_unique_and_stat_keys_follow_reasons() -> None:
    a, b = decide("http://microblog.example/u/9999"), decide("http://microblog.example/u/9999")
    assert a.decision_id != b.decision_id
    assert a.stat_key == "denied/subject/no-authorization"
    assert decide("http://microblog.example/u/1001").stat_key == "allowed"


def test_every_reason_the_package_emits_is_published_in_consentcrawl_reasons() -> None:
    """A code written in the package but missing from ``consentcrawl.reasons`` (and its docs) is unpublished."""
    import re
    from pathlib import Path

    from consentcrawl import reasons

    package = Path(reasons.__file__).parent
    written = set()
    for path in package.rglob("*.py"):
        written |= set(re.findall(r'"((?:robots|terms|subject|response|error)\.[a-z-]+)"', path.read_text()))
    written.discard("robots.txt")  # a file name, not a code
    assert written <= reasons.ALL, written - reasons.ALL
    assert reasons.ALLOWS < reasons.ALL
    # the operator-signal codes are built from constants (consentcrawl.signals.combine): each one is published,
    # and documented in docs/reasons.md as emitted, not reserved (issue #13, phase 2)
    from consentcrawl.signals.combine import SIGNAL_REASONS

    signal_codes = {c for codes in SIGNAL_REASONS.values() for c in codes if c} | {reasons.TERMS_DEFAULT_DENY}
    assert signal_codes <= reasons.ALL - reasons.ALLOWS
    assert len(signal_codes) == 13
    doc = (package.parent / "docs" / "reasons.md").read_text()
    emitted, _, reserved = doc.partition("## Reserved, not yet emitted")
    reserved = reserved.partition("## Evidence entries")[0]
    for code in signal_codes:
        family = code.rsplit(".", 1)[0] + ".<name>" if code != reasons.TERMS_DEFAULT_DENY else code
        assert f"`{family}`" in emitted and f"`{family}`" not in reserved, code
