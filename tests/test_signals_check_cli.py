"""Every row of the operator-signal conformance table through ``consentcrawl check --json --fetch``, against a
loopback server that serves the row's files, headers and HTML (issue #13, phase 2).

The server's log is the judge of *when*: a row denied before the fetch (robots.txt, a site-level signal) has no
request for the page; a response-level deny fetched it (and only then was it denied).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from consentcrawl import reasons
from consentcrawl.cli import main
from consentcrawl.signals.purposes import BASE_PURPOSES
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response

from .signals_conformance import CASES, Case

HTTP_SITE = "http://site.example"  #: the rows' https origin, served over the plain-http loopback proxy
NOW = "2026-06-01T12:00:00Z"
SIDE = {"/robots.txt", "/.well-known/tdmrep.json", "/ai.txt"}


def _http(text: str) -> str:
    """The rows' https origin as the proxy serves it, keeping the case a row spells its scheme in."""
    return re.sub(r"(?i)(http)s(://site\.example)", r"\1\2", text)


def _app(case: Case) -> Any:
    files = {path: (status, _http(body)) for path, (status, body) in case.files.items()}

    def app(request: LoggedRequest, headers: dict[str, str]) -> Response:
        target = request.path + (f"?{request.query}" if request.query else "")
        if request.host == "site.example" and target == case.path:
            return Response(200, [("Content-Type", "text/html; charset=utf-8"),
                                  *((k, _http(v)) for k, v in case.headers)], _http(case.html or "<p>text</p>"))
        if request.host == "site.example" and request.path in files:
            status, body = files[request.path]
            if 300 <= status < 400:  # a redirect: the row's body is where to
                return Response(status, {"Location": body}, "")
            return Response(status, {"Content-Type": "text/plain"}, body)
        if request.host == "people.example" and request.path.startswith("/u/"):
            return Response.html(f"<html><body>the profile of {request.path[3:]}</body></html>")
        return Response(404, {"Content-Type": "text/plain"}, "not found")

    return app


def _platforms(case: Case, tmp_path: Path) -> Path:
    platforms: dict[str, Any] = {"elsewhere": {"domains": ["elsewhere.example"]},
                                 # people who never authorized anything: no side request may fetch their pages
                                 "people": {"domains": ["people.example"], "profiles": ["/u/{subject}"],
                                            "authorization": {"purposes": list(BASE_PURPOSES),
                                                              "reference": "PEOPLE-1"}}}
    if case.platform is not None:
        entry: dict[str, Any] = {"domains": ["site.example"]}
        if case.platform.get("purposes"):
            entry["authorization"] = {"purposes": list(case.platform["purposes"]),
                                      "reference": case.platform.get("reference") or "terms page",
                                      "overrides_signals": bool(case.platform.get("overrides_signals"))}
            if not case.platform.get("reference"):
                entry["authorization"]["overrides_signals"] = False
        if case.platform.get("research_exception"):
            entry["research_exception"] = dict(zip(("statement", "reference"), case.platform["research_exception"],
                                                   strict=True))
        if case.platform.get("signal_licence"):
            entry["signal_licence"] = case.platform["signal_licence"]
        platforms["example"] = entry
    path = tmp_path / "platforms.yaml"
    path.write_text(yaml.safe_dump({"platforms": platforms}))
    return path


def _settings(case: Case, tmp_path: Path) -> str:
    values: dict[str, Any] = {"CONSENTCRAWL_CONSERVATIVE": case.conservative,
                              "CONSENTCRAWL_STORES_ITEMS": case.stores_items}
    if case.research_exception:
        values["CONSENTCRAWL_RESEARCH_EXCEPTION"] = dict(zip(("statement", "reference"), case.research_exception,
                                                             strict=True))
    if case.licence_held:
        values["CONSENTCRAWL_SIGNAL_LICENCES"] = {"site.example": case.licence_held}
    if case.custom:
        values["CONSENTCRAWL_CUSTOM_PURPOSES"] = {name: list(counts) for name, counts in case.custom.items()}
    name = "rowsettings_" + case.id.replace("-", "_")  # one module per row: Python keeps an imported one
    (tmp_path / f"{name}.py").write_text("".join(f"{k} = {v!r}\n" for k, v in values.items()))
    return name


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conformance_row_through_check(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with LocalServer(_app(case)) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        code = main(["check", HTTP_SITE + case.path, "--purpose", case.purpose, "--json", "--fetch", "--now", NOW,
                     "--platforms", str(_platforms(case, tmp_path)), "--settings", _settings(case, tmp_path),
                     "--user-agent", case.token])
        paths = [r.path + (f"?{r.query}" if r.query else "") for r in server.requests if r.host == "site.example"]
        asked = {f"http://{r.host}{r.path}" for r in server.requests}
    out, err = capsys.readouterr()
    if case.research_exception and not all(part.strip() for part in case.research_exception):
        # in settings, a research exception without its reference is a configuration error, not a quiet deny
        assert code == 2 and "CONSENTCRAWL_RESEARCH_EXCEPTION" in err
        return
    assert code in (0, 1), err
    assert not asked & set(case.never_fetched), asked  # decided like any request, and denied: never sent
    decision = json.loads(out)
    assert (decision["verdict"], decision["reason"] if decision["verdict"] == "deny" else None) == \
        (case.expect, case.reason), (case.source, decision["evidence"])
    assert code == (0 if case.expect == "allow" else 1)
    for key, value in case.evidence.items():  # what the row says the evidence shows (its URLs served over http)
        value = json.loads(_http(json.dumps(value)))
        assert any(entry.get(key) == value for entry in decision["evidence"]), (key, value, decision["evidence"])
    status = case.evidence.get("tdm_policy_status")
    if status is not None:  # the signals list shows the policy too, with what it says
        listed = [p for s in decision["signals"] if s["signal"] == "tdmrep" for p in s.get("policies", ())]
        assert [p["status"] for p in listed] == [status], decision["signals"]
        if status == "read":
            assert listed[0]["assigner"]["email"] == "tdm@site.example", listed
            assert listed[0]["duty"] == ["permission tdm:mine: duty compensate"], listed  # what the offer asks
    if case.never_fetched:  # the policy's fetch was refused at the hop, and the evidence says so
        policies = [e for e in decision["evidence"] if e["kind"] == "signal.tdmrep" and "tdm_policy" in e]
        assert policies and all(e["tdm_policy_status"] == "unavailable" and "may not fetch" in e["tdm_policy_cause"]
                                for e in policies), policies
    page_fetched = case.path in paths
    reason = decision["reason"]
    if reason.startswith(("robots.", "terms.signal.", "terms.signal-unavailable.")) and case.expect == "deny":
        assert not page_fetched, paths  # decided before the fetch: the server never saw the page
    elif reason.startswith("response.") or reason == reasons.TERMS_DEFAULT_DENY or case.expect == "allow":
        assert page_fetched, paths
    assert set(paths) - {case.path} <= SIDE | {p for p in case.files}, paths
    # every signal consulted is listed with its verdict for the purpose (none when robots.txt denied first)
    assert bool(decision["signals"]) != reason.startswith("robots.")
    # (a custom purpose: for each built-in purpose it counts as)
    purposes = set(case.custom.get(case.purpose, (case.purpose,)))
    assert all(purposes <= s["verdicts"].keys() for s in decision["signals"]), decision["signals"]
    if reason.startswith("terms.signal.") and case.expect == "deny":
        # the spelling of the page that is denied is named: the path as requested (its trailing slash too)
        assert any(e["kind"] == "site-signals" and e.get("path") == case.path for e in decision["evidence"]), \
            decision["evidence"]
    if reason.startswith(("terms.signal.", "response.signal.")) and case.expect == "deny":
        name = reason.rsplit(".", 1)[1]
        assert any(s["signal"] == name and "deny" in s["verdicts"].values() for s in decision["signals"])
