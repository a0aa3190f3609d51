"""Ids that servers comparing case-insensitively in different ways read as different accounts.

The key of an id on a case-insensitive platform is its full case folding (``straße`` is ``strasse``), but a real
server usually compares with ``str.lower`` (``straße`` stays ``straße``: another account than ``strasse``) or
lowers ASCII letters only. Such an id is ambiguous wherever it is read (a URL, ``consentcrawl_subject``, an item's
subject) and a grant written with it grants no other spelling; the stores' key format is unchanged.
The crawls that prove it against a server that compares by ``lower()`` are in ``tests/test_leaks_casefold.py``.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentcrawl.cli import main
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.store import MemoryStore
from consentcrawl.terms.platforms import Platform, PlatformAuthorization, PlatformRegistry, ProfileTemplate
from consentcrawl.terms.readings import case_conflict, caseless
from consentcrawl.urls import canonicalize
from tests.deciding import Engine

NOW = datetime(2026, 12, 2, tzinfo=timezone.utc)
GRANTED = datetime(2026, 1, 1, tzinfo=timezone.utc)
WORD = r"\w+"


def platform(case_sensitive: bool = False) -> Platform:
    return Platform(
        name="people", domains=frozenset({"people.example"}),
        authorization=PlatformAuthorization(frozenset({"research"}), "test agreement"),
        profiles=(ProfileTemplate.compile("/@{subject}", WORD), ProfileTemplate.compile("/p?user={subject}", WORD)),
        subject_regex=WORD, case_sensitive=case_sensitive)


PEOPLE = platform()
PEOPLE_CS = platform(case_sensitive=True)


def grant(subject: str, revoked_at: datetime | None = None, source: str = "test.yaml:1") -> AuthorizationRecord:
    return AuthorizationRecord("people", subject, frozenset({"research"}), GRANTED, revoked_at=revoked_at,
                               evidence="consent form", source=source)


def engine(*records: AuthorizationRecord, p: Platform = PEOPLE) -> Engine:
    registry = PlatformRegistry({"people": p})
    return Engine(registry, MemoryStore(records, platforms=registry))


def consent(e: Engine, url: str, subject: str | None = None) -> tuple[str, str]:
    decision = e.decide_consent(e.facts(url, "research", NOW, subject))
    return decision.reason, json.dumps([ev.to_dict() for ev in decision.evidence], ensure_ascii=False, default=str)


# -- the readings of one id ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ident", [
    "stra\u00dfe", "STRA\u00dfE", "\u1e9e",  # sharp s: folds to ss, lower() keeps it
    "\u03bf\u03b4\u03bf\u03c2", "\u039f\u0394\u039f\u03a3",  # final sigma: folded to plain sigma, not lowered
    "\u00c9mile",  # É: é to lower() and folding, É to a server lowering ASCII only
    "\u0130stanbul",  # İ: i + combining dot to lower() and folding, İ to ASCII lowering
    "\u13a0", "\uab70",  # Cherokee: folding gives the capital, lower() the small letter
    "\u1fb3",  # alpha with ypogegrammeni: folds to alpha iota
])
def test_ids_read_differently_by_lower_and_casefold_conflict(ident: str) -> None:
    why = case_conflict(ident)
    assert why and repr(caseless(ident)) in why, why


@pytest.mark.parametrize("ident", [
    "strasse", "Alice", "ALICE", "\uff21\uff2c\uff29\uff23\uff25",  # fullwidth: NFKC makes it ASCII
    "\u00e9mile", "m\u00fcller", "\u65e5\u672c", "\ufb01x",  # ﬁ is fi under NFKC, before any comparison
    "\u017ft",  # long s is s under NFKC
    "\u212a", "\u210c",  # Kelvin sign, black-letter H: ASCII letters under NFKC
])
def test_ids_every_comparison_reads_alike_do_not(ident: str) -> None:
    assert case_conflict(ident) == ""


def test_a_conflicting_id_keeps_its_key() -> None:
    """The stores' key format is unchanged: the key of straße is still strasse."""
    assert PEOPLE.subject_key("Stra\u00dfe") == "strasse" == PEOPLE.subject_key("STRASSE")
    assert PEOPLE.subject_conflict("stra\u00dfe") and not PEOPLE.subject_conflict("strasse")
    assert PEOPLE_CS.subject_conflict("stra\u00dfe") == ""  # compared as written (NFKC): no conflict


# -- every server, every spelling: a property ------------------------------------------------------------------------

#: spellings full case folding reads as one (each group folds alike), which other comparisons may not
_GROUPS = (("ss", "SS", "Ss", "\u00df", "\u1e9e", "\u017fs"), ("s", "S", "\u017f"), ("k", "K", "\u212a"),
           ("\u03c3", "\u03c2", "\u03a3"), ("\u00e9", "\u00c9"), ("i", "I"), ("fi", "FI", "\ufb01"),
           ("\u13a0", "\uab70"), ("\u00b5", "\u03bc", "\u039c"), ("\u1fb3", "\u03b1\u03b9"), ("a", "A"))


@st.composite
def two_spellings(draw: st.DrawFn) -> tuple[str, str]:
    """Two spellings of one case-folded handle: each part drawn twice from a group of spellings folded alike."""
    groups = draw(st.lists(st.sampled_from(_GROUPS), min_size=1, max_size=4))
    return "".join(draw(st.sampled_from(g)) for g in groups), "".join(draw(st.sampled_from(g)) for g in groups)


def _stable(text: str, fold: Callable[[str], str]) -> str:
    """The handle as a server comparing by ``fold`` keys it (an independent model of the rule under test)."""
    out = unicodedata.normalize("NFKC", text)
    for _ in range(6):
        again = unicodedata.normalize("NFKC", fold(out))
        if again == out:
            break
        out = again
    return out


#: how real servers compare case-insensitive handles (NFKC first, as the platform's key does)
SERVERS: dict[str, Callable[[str], str]] = {"casefold": str.casefold, "lower": str.lower,
           "ascii": lambda t: t.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"))}


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(two_spellings())
def test_a_grant_lets_through_only_urls_every_server_reads_as_its_account(spellings: tuple[str, str]) -> None:
    """Whatever way the server compares handles, a URL for ``handle`` is let through by a grant written
    ``granted`` (the same key) only when that server reads both as one account."""
    handle, granted = spellings
    assert PEOPLE.subject_key(handle) == PEOPLE.subject_key(granted)
    url = f"http://people.example/@{handle}"
    reading = PEOPLE.read_subject(url, canonicalize(url))
    if reading.ambiguous or reading.subject is None:
        return
    grants = PEOPLE.subject_key(granted) == reading.subject and not PEOPLE.subject_conflict(granted)
    if grants:
        for name, fold in SERVERS.items():
            assert _stable(handle, fold) == _stable(granted, fold), (name, handle, granted)


# -- URLs -----------------------------------------------------------------------------------------------------------


def read(p: Platform, path: str) -> object:
    url = f"http://people.example{path}"
    return p.read_subject(url, canonicalize(url))


@pytest.mark.parametrize("path", ["/@stra%C3%9Fe", "/@STRA%C3%9FE", "/@stra%C3%9Fe/posts", "/@stra\u00dfe",
                                  "/p?user=stra%C3%9Fe", "/@%CE%BF%CE%B4%CE%BF%CF%82", "/@%C3%89mile"])
def test_a_url_naming_a_conflicting_id_is_ambiguous_with_the_reason(path: str) -> None:
    reading = read(PEOPLE, path)
    assert reading.ambiguous and reading.subject is None, reading  # type: ignore[attr-defined]
    whys = [text for text, key in reading.readings if "lower-cased" in text]  # type: ignore[attr-defined]
    assert len(whys) == 1 and "case-folded" in whys[0], reading


def test_urls_whose_ids_read_alike_still_name_their_person() -> None:
    assert read(PEOPLE, "/@STRASSE").subject == "strasse"  # type: ignore[attr-defined]
    assert read(PEOPLE, "/@%C3%A9mile").subject == "\u00e9mile"  # type: ignore[attr-defined]
    assert read(PEOPLE_CS, "/@stra%C3%9Fe").subject == "stra\u00dfe"  # type: ignore[attr-defined]


# -- the decision: both directions, withdrawals, meta, the item guard --------------------------------------------------


def test_a_grant_for_strasse_does_not_let_through_a_url_for_strasse_with_sharp_s() -> None:
    e = engine(grant("strasse"))
    assert consent(e, "http://people.example/@strasse")[0] == "subject.authorized"  # control
    for url in ("http://people.example/@stra%C3%9Fe", "http://people.example/@STRA%C3%9FE/posts"):
        reason, evidence = consent(e, url)
        assert reason == "subject.ambiguous-url", (url, evidence)
        assert "lower-cased" in evidence


def test_a_grant_for_strasse_with_sharp_s_grants_no_spelling() -> None:
    """Grant ``straße``: ``/@strasse`` (the same key) is another account to a server comparing by ``lower()``, so
    the grant does not cover it, and ``/@straße`` itself is ambiguous. The record is cited, with why it grants
    nothing."""
    e = engine(grant("stra\u00dfe"))
    for url in ("http://people.example/@strasse", "http://people.example/@STRASSE",
                "http://people.example/p?user=strasse"):
        reason, evidence = consent(e, url)
        assert reason == "subject.no-authorization", (url, evidence)
        assert '"grants": false' in evidence and "test.yaml:1" in evidence and "lower-cased" in evidence, evidence
    assert consent(e, "http://people.example/@stra%C3%9Fe")[0] == "subject.ambiguous-url"


def test_a_record_that_grants_nothing_does_not_hide_a_grant_of_the_right_spelling() -> None:
    e = engine(grant("stra\u00dfe", source="a:1"), grant("strasse", source="a:2"))
    reason, evidence = consent(e, "http://people.example/@strasse")
    assert reason == "subject.authorized" and "a:2" in evidence and "a:1" not in evidence, evidence


def test_a_withdrawal_written_with_sharp_s_still_withdraws() -> None:
    """A withdrawal errs the safe way: one written ``straße`` still withdraws the grant of ``strasse``."""
    e = engine(grant("strasse"), grant("stra\u00dfe", revoked_at=datetime(2026, 6, 1, tzinfo=timezone.utc)))
    assert consent(e, "http://people.example/@strasse")[0] == "subject.revoked"


def test_meta_naming_a_conflicting_id_is_ambiguous() -> None:
    e = engine(grant("strasse"))
    assert consent(e, "http://cdn.people.example/a.jpg", "people:strasse")[0] == "subject.authorized"  # control
    for url in ("http://cdn.people.example/a.jpg", "http://people.example/@strasse"):
        reason, evidence = consent(e, url, "people:stra\u00dfe")
        assert reason == "subject.ambiguous-url", (url, evidence)
        assert "consentcrawl_subject" in evidence and "lower-cased" in evidence


def test_the_item_guard_denies_an_item_naming_a_conflicting_id() -> None:
    e = engine(grant("strasse"))
    assert e.decide_subject("people", "STRASSE", "research", NOW).reason == "subject.authorized"  # control
    decision = e.decide_subject("people", "Stra\u00dfe", "research", NOW)
    assert decision.reason == "subject.ambiguous-url" and not decision.allowed
    assert decision.evidence[-1].kind == "item" and "lower-cased" in decision.evidence[-1].detail["cause"]
    e = engine(grant("stra\u00dfe"))
    assert e.decide_subject("people", "strasse", "research", NOW).reason == "subject.no-authorization"


def test_a_case_sensitive_platform_compares_as_written() -> None:
    """``case_sensitive: true`` is how an operator collects an id such as ``straße``: exact spelling only."""
    e = engine(grant("stra\u00dfe"), p=PEOPLE_CS)
    assert consent(e, "http://people.example/@stra%C3%9Fe")[0] == "subject.authorized"
    assert consent(e, "http://people.example/@strasse")[0] == "subject.no-authorization"
    assert e.decide_subject("people", "stra\u00dfe", "research", NOW).reason == "subject.authorized"


# -- the command line goes through the same rule ----------------------------------------------------------------------


PLATFORMS_YAML = """\
platforms:
  people:
    domains: [people.example]
    authorization: {purposes: [research], reference: "test agreement", valid_from: 2026-01-01,
                    valid_until: 2030-01-01}
    profiles: ["/@{subject}"]
    subject: '\\w+'
"""


def _files(tmp_path: Path, subject: str) -> list[str]:
    (tmp_path / "platforms.yaml").write_text(PLATFORMS_YAML, encoding="utf-8")
    (tmp_path / "auth.yaml").write_text(
        "authorizations:\n  - platform: people\n"
        f'    subject: "{subject}"\n    purposes: [research]\n    granted_at: 2026-01-01T00:00:00Z\n'
        '    evidence: "consent form"\n', encoding="utf-8")
    return ["--platforms", str(tmp_path / "platforms.yaml"), "--authorizations", str(tmp_path / "auth.yaml"),
            "--now", "2026-12-02T00:00:00Z"]


def test_authorizations_show_follows_the_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _files(tmp_path, "stra\u00dfe")
    assert main(["authorizations", "show", "people:strasse", "--json", *files]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["purposes"]["research"] == {"allowed": False, "reason": "subject.no-authorization", "record": None}
    assert main(["authorizations", "show", "people:stra\u00dfe", "--json", *files]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["purposes"]["research"]["reason"] == "subject.ambiguous-url" and shown["ambiguous"]
    files = _files(tmp_path, "strasse")
    assert main(["authorizations", "show", "people:STRASSE", "--json", *files]) == 0  # control
    assert json.loads(capsys.readouterr().out)["purposes"]["research"]["allowed"] is True


def test_authorizations_validate_warns_of_a_grant_that_grants_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The file is valid (a withdrawal written so still withdraws), but the operator is told, by file and line and
    without the id, that the grant grants nothing."""
    files = _files(tmp_path, "stra\u00dfe")
    source = str(tmp_path / "auth.yaml")
    assert main(["authorizations", "validate", source, *files[:2]]) == 0
    out, err = capsys.readouterr()
    assert f"{source}:2: warning:" in out and "grants nothing" in out and "stra\u00dfe" not in out + err, out
    assert "1 grant(s) that grant nothing" in err
    _files(tmp_path, "strasse")
    assert main(["authorizations", "validate", source, *files[:2]]) == 0  # control
    out, err = capsys.readouterr()
    assert "warning" not in out and "grant nothing" not in err, out + err
