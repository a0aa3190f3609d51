"""The ODRL document a TDMRep ``tdm-policy`` names (issue #13): read for the evidence, never for a verdict.

- Hypothesis: arbitrary bytes, and JSON shaped like a policy, never raise; every field kept is short text.
- A policy never changes the reservation's verdict, whatever it says, whether it was read or not.
- The crawl fetches each policy once per crawl, through its side requests: a policy redirecting to a person's
  profile is decided and denied like any request (the server never sees the profile).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.signals import SignalVerdict
from consentcrawl.signals.fetch import from_response, unavailable
from consentcrawl.signals.odrl import MAX_ACTIONS, MAX_TEXT, parse_odrl_policy, policy_evidence
from consentcrawl.signals.purposes import BASE_PURPOSES
from consentcrawl.signals.tdmrep import site_tdmrep
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.conftest import consent_settings, run_crawl
from tests.test_robots_crawl import HOST, ConsentListSpider

from .signals_conformance import POLICY

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TDMREP = "https://site.example/.well-known/tdmrep.json"
POLICY_URL = "https://site.example/policy.json"

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                         st.sampled_from(["assigner", "permission", "prohibition", "action", "uid", "@id", "@value",
                                          "vcard:fn", "vcard:hasEmail", "vcard:hasURL", "vcard:hasTelephone",
                                          "odrl:action", "x", "constraint", "duty", "obligation", "remedy",
                                          "refinement", "leftOperand", "operator", "rightOperand", "unit", "and",
                                          "or", "@list"]) | st.text(max_size=10), inner, max_size=5),
                     max_leaves=30)
policy_bodies = st.one_of(st.binary(max_size=600), _json.map(lambda v: json.dumps(v).encode()),
                          st.just(b"[" * 5000 + b"]" * 5000), st.just(b'{"a":' * 3000 + b"1" + b"}" * 3000))


def _short(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_TEXT


@FUZZ
@given(policy_bodies)
def test_any_policy_body_is_read_without_raising_into_short_text(body: bytes) -> None:
    policy = parse_odrl_policy(body)
    if policy.error is not None:
        assert (policy.assigner, policy.permission, policy.prohibition, policy.constraint, policy.duty) == \
            (None, (), (), (), ())
        return
    assert policy.assigner is None or all(_short(v) for v in policy.assigner.values())
    assert len(policy.permission) <= MAX_ACTIONS and all(_short(a) for a in policy.permission)
    assert len(policy.prohibition) <= MAX_ACTIONS and all(_short(a) for a in policy.prohibition)
    for listed in (policy.constraint, policy.duty):  # the conditions and duties too: short, and few
        assert len(listed) <= MAX_ACTIONS and all(_short(a) for a in listed)
    json.dumps(policy_evidence(POLICY_URL, {POLICY_URL: from_response("tdm-policy", POLICY_URL, 200, body, NOW)}))


@FUZZ
@given(policy_bodies, st.sampled_from([0, 1]), st.sampled_from([200, 404, 503]))
def test_a_policy_never_changes_the_reservations_verdict(body: bytes, reservation: int, status: int) -> None:
    tdmrep = from_response("tdmrep", TDMREP, 200, json.dumps(
        [{"location": "/", "tdm-reservation": reservation, "tdm-policy": POLICY_URL}]).encode(), NOW)
    without = site_tdmrep(tdmrep, "https://site.example/a", policies={})
    with_it = site_tdmrep(tdmrep, "https://site.example/a",
                          policies={POLICY_URL: from_response("tdm-policy", POLICY_URL, status, body, NOW)})
    assert {p: with_it.verdict(p) for p in BASE_PURPOSES} == {p: without.verdict(p) for p in BASE_PURPOSES}
    if reservation == 1:
        assert with_it.verdict("ai-training") is SignalVerdict.DENY
    assert with_it.unavailable is None  # a policy that cannot be read is no unavailable signal either


def test_the_policy_profile_example_is_read() -> None:
    policy = parse_odrl_policy(POLICY.encode())
    assert policy.error is None and policy.uid == POLICY_URL
    assert policy.assigner == {"uid": "https://site.example", "name": "Site Press", "email": "tdm@site.example",
                               "url": "https://site.example/contact", "phone": "+33-1-23-45-67-89"}
    assert (policy.permission, policy.prohibition) == (("tdm:mine",), ("tdm:mine", "odrl:distribute"))


@pytest.mark.parametrize(("assigner", "expect"), [
    ("https://press.example", {"uid": "https://press.example"}),  # an IRI only
    ({"http://www.w3.org/2006/vcard/ns#fn": "Press", "vcard:hasEmail": {"@id": "mailto:a@press.example"}},
     {"name": "Press", "email": "a@press.example"}),  # full IRIs, an @id value
    ({"vcard:organization-name": "Org", "vcard:hasTelephone": ["tel:+1", "tel:+2"]}, {"name": "Org", "phone": "+1"}),
    ([{"vcard:fn": "First"}, {"vcard:fn": "Second"}], {"name": "First"}),
    ({"vcard:fn": 12}, {"name": "12"}), ({"vcard:fn": True}, None), ({}, None), (None, None),
])
def test_assigner_forms(assigner: Any, expect: dict[str, str] | None) -> None:
    assert parse_odrl_policy(json.dumps({"assigner": assigner}).encode()).assigner == expect


@pytest.mark.parametrize(("status", "body", "expect"), [
    (404, b"", "not found"), (503, b"", "unavailable"), (200, b"\xff\xfe<", "unreadable"),
    (200, b"[1, 2]", "unreadable"), (200, b"{}", "read"),
])
def test_policy_evidence_says_what_the_fetch_gave(status: int, body: bytes, expect: str) -> None:
    file = from_response("tdm-policy", POLICY_URL, status, body, NOW)
    evidence = policy_evidence(POLICY_URL, {POLICY_URL: file})
    assert evidence["tdm_policy_status"] == expect and evidence["tdm_policy_fetched_at"] == NOW.isoformat()
    assert policy_evidence(POLICY_URL, {})["tdm_policy_status"] == "not fetched"
    assert policy_evidence(None, {})["tdm_policy_status"] == "not fetched"
    refused = unavailable("tdm-policy", POLICY_URL, NOW, "a redirect to a URL we may not fetch (subject.x)")
    assert policy_evidence(POLICY_URL, {POLICY_URL: refused})["tdm_policy_cause"].startswith("a redirect")


# -- in a crawl ---------------------------------------------------------------------------------------------------

class PolicySite:
    """A site whose tdmrep.json reserves everything and names a policy; the policy redirects to ``/u/7`` when
    ``redirect``."""

    def __init__(self, redirect: bool = False) -> None:
        self.redirect = redirect

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response:
        if request.path == "/robots.txt":
            return Response(200, {"Content-Type": "text/plain"}, "User-agent: *\nAllow: /\n")
        if request.path == "/.well-known/tdmrep.json":
            return Response(200, {"Content-Type": "application/json"}, json.dumps(
                [{"location": "/", "tdm-reservation": 1, "tdm-policy": f"http://{HOST}/policy.json"}]))
        if request.path == "/policy.json":
            if self.redirect:
                return Response(302, {"Location": f"http://{HOST}/u/7"}, "")
            return Response(200, {"Content-Type": "application/ld+json"}, POLICY)
        if request.path == "/ai.txt":
            return Response(404, {"Content-Type": "text/plain"}, "no")
        return Response.html(f"<html><body>{request.path}</body></html>")


@pytest.mark.parametrize("redirect", [False, True])
@deferred_f_from_coro_f
async def test_a_crawl_fetches_the_policy_once_and_cites_it(redirect: bool, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    platforms = tmp_path / "platforms.yaml"
    platforms.write_text(json.dumps({"platforms": {"site": {
        "domains": [HOST], "profiles": ["/u/{subject}"],
        "authorization": {"purposes": ["ai-training"], "reference": "SITE-1"}}}}))
    settings_ = consent_settings(tmp_path, CONSENTCRAWL_PURPOSE="ai-training", CONSENTCRAWL_PLATFORMS=[str(platforms)],
                                 CONSENTCRAWL_AUTHORIZATIONS=None)
    ConsentListSpider.urls = [f"http://{HOST}/a", f"http://{HOST}/b", f"http://{HOST}/c"]
    with LocalServer(PolicySite(redirect)) as server:
        result = await run_crawl(ConsentListSpider, settings_, proxy=server.proxy, monkeypatch=monkeypatch)
        paths = [r.path for r in server.requests]
    assert paths.count("/policy.json") == 1, paths  # once per crawl, for every page it is cited on
    assert "/u/7" not in paths and not {"/a", "/b", "/c"} & set(paths), paths  # nothing else was fetched
    denies = [e for e in result.audit if e["verdict"] == "deny" and e["url"].endswith(("/a", "/b", "/c"))]
    assert len(denies) == 3 and {e["reason"] for e in denies} == {"terms.signal.tdmrep"}
    for entry in denies:
        cited = [ev for ev in entry["evidence"] if ev["kind"] == "signal.tdmrep"]
        assert cited, entry
        if redirect:
            assert all(ev["tdm_policy_status"] == "unavailable" and "may not fetch" in ev["tdm_policy_cause"]
                       for ev in cited), cited
        else:
            assert all(ev["tdm_policy_status"] == "read" and ev["tdm_policy_assigner"]["email"] == "tdm@site.example"
                       for ev in cited), cited
    if redirect:  # the refused hop is itself in the audit log, as any side request's
        assert any(e["url"].endswith("/u/7") and e["verdict"] == "deny" for e in result.audit), result.audit


#: the TDMRep policy profile's shape of a conditional offer: a permission to mine for research only, until a date,
#: against payment (a duty whose constraint is the amount), attribution asked of the whole offer, and a remedy
CONDITIONAL = {
    "@context": ["http://www.w3.org/ns/odrl.jsonld", {"tdm": "http://www.w3.org/ns/tdmrep#"}],
    "@type": "Offer", "profile": "http://www.w3.org/ns/tdmrep", "uid": POLICY_URL,
    "assigner": {"uid": "https://site.example", "vcard:fn": "Site Press"},
    "permission": [{
        "target": "https://site.example/catalog", "action": "tdm:mine",
        "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "tdm:research"},
                       {"and": [{"leftOperand": "dateTime", "operator": "lt",
                                 "rightOperand": {"@value": "2027-01-01", "@type": "xsd:date"}},
                                {"leftOperand": "spatial", "operator": "isPartOf", "rightOperand": {"@id": "ex:EU"}}]}],
        "duty": [{"action": "compensate", "constraint": [{"leftOperand": "payAmount", "operator": "eq",
                                                         "rightOperand": "100.00", "unit": "ex:EUR"}]}],
    }],
    "prohibition": [{"action": "odrl:distribute", "remedy": [{"action": {"rdf:value": {"@id": "odrl:delete"},
                                                                      "refinement": [{"leftOperand": "elapsedTime",
                                                                                      "operator": "lteq",
                                                                                      "rightOperand": "P30D"}]}}]}],
    "obligation": [{"action": "attribute"}],
}


def test_a_policys_constraints_and_duties_are_cited() -> None:
    """What an offer is conditional on and what it asks in return are in the evidence (each naming the rule it
    belongs to), in ``check``/``signals`` JSON (``policies``), and on the line ``consentcrawl signals`` prints."""
    from consentcrawl.cli import policy_text
    from consentcrawl.signaltable import signal_report

    policy = parse_odrl_policy(json.dumps(CONDITIONAL).encode())
    assert policy.constraint == (
        "permission tdm:mine: purpose eq tdm:research",
        "permission tdm:mine: and(dateTime lt 2027-01-01; spatial isPartOf ex:EU)")
    assert policy.duty == ("permission tdm:mine: duty compensate (payAmount eq 100.00, unit ex:EUR)",
                           "prohibition odrl:distribute: remedy odrl:delete (elapsedTime lteq P30D)",
                           "obligation attribute")
    evidence = policy_evidence(POLICY_URL, {POLICY_URL: from_response("tdm-policy", POLICY_URL, 200,
                                                                      json.dumps(CONDITIONAL).encode(), NOW)})
    assert evidence["tdm_policy_constraint"] == list(policy.constraint)
    assert evidence["tdm_policy_duty"] == list(policy.duty)
    tdmrep = from_response("tdmrep", TDMREP, 200, json.dumps(
        [{"location": "/", "tdm-reservation": 1, "tdm-policy": POLICY_URL}]).encode(), NOW)
    result = site_tdmrep(tdmrep, "https://site.example/a", policies={POLICY_URL: from_response(
        "tdm-policy", POLICY_URL, 200, json.dumps(CONDITIONAL).encode(), NOW)})
    [listed] = signal_report([result], ["ai-training"])[0]["policies"]
    assert (listed["constraint"], listed["duty"]) == (list(policy.constraint), list(policy.duty))
    line = policy_text(listed)
    assert "constraint: permission tdm:mine: purpose eq tdm:research | " in line
    assert "duty: permission tdm:mine: duty compensate (payAmount eq 100.00, unit ex:EUR)" in line
    assert "obligation attribute" in line
    # a policy without conditions says so by saying nothing more than before
    assert "constraint" not in policy_evidence(POLICY_URL, {POLICY_URL: from_response(
        "tdm-policy", POLICY_URL, 200, POLICY.encode(), NOW)})


def test_constraints_and_duties_are_bounded() -> None:
    """Thousands of rules, constraints nested thousands deep, huge operands: at most MAX_ACTIONS of each, each at
    most MAX_TEXT characters, read without raising; the line printed names how many more there are."""
    from consentcrawl.cli import policy_text

    leaf = json.dumps({"leftOperand": "purpose", "operator": "eq", "rightOperand": "x" * 10_000})
    nested = '{"and": [' + leaf + ", " + '{"or": [' * 300 + leaf + "]}" * 300 + "]}"  # 300 deep: JSON reads it
    body = ('{"permission": [' + ", ".join(
        f'{{"action": "a{i}", "constraint": [{nested}, {{"leftOperand": "l{i}", "operator": "eq", '
        f'"rightOperand": "{i}"}}], "duty": [{{"action": "d{i}", "constraint": [{nested}]}}]}}' for i in range(200))
        + '], "obligation": ' + json.dumps([{"action": "attribute"}] * 5000) + "}").encode()
    policy = parse_odrl_policy(body)
    assert policy.error is None and policy.permission and policy.constraint[0].startswith("permission a0: and(")
    for listed in (policy.constraint, policy.duty):
        assert len(listed) <= MAX_ACTIONS and all(_short(text) for text in listed)
    many = parse_odrl_policy(json.dumps({"permission": [
        {"action": "tdm:mine", "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": str(i)}
                                              for i in range(100)]}]}).encode())
    assert len(many.constraint) == MAX_ACTIONS
    line = policy_text({"status": "read", "constraint": list(many.constraint)})
    assert line.count("purpose eq") == 3 and f"(and {MAX_ACTIONS - 3} more)" in line
