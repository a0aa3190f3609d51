"""An RSL licence recorded for a platform in ``platforms.yaml`` (``signal_licence``), like the per-host setting
``CONSENTCRAWL_SIGNAL_LICENCES`` (issue #13): it lifts an RSL ``server`` / ``<payment>`` on the platform's sites
(never a prohibition), before the setting's; the evidence cites it with the file and line it was recorded at; a
bad value stops the crawl with an error naming the file and the line. And ``consentcrawl signals`` shows it, and
the tdm-policy a site names, with what the policy says.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from consentcrawl.cli import main
from consentcrawl.config import ConsentConfig
from consentcrawl.errors import ConfigError
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.conftest import consent_settings

from .signals_conformance import POLICY

NOW = "2026-06-01T12:00:00Z"
_names = itertools.count()
NS = 'xmlns="https://rslstandard.org/rsl"'
SERVER_LICENCE = (f'<rsl {NS}><content url="/" server="https://lic.example/"><license>'
                  '<permits type="usage">all</permits></license></content></rsl>')


def _app(licence: str = SERVER_LICENCE, policy: str | None = None) -> Any:
    def app(request: LoggedRequest, headers: dict[str, str]) -> Response:
        if request.path == "/robots.txt":
            return Response(200, {"Content-Type": "text/plain"},
                            "User-agent: *\nAllow: /\nLicense: http://site.example/license.xml\n")
        if request.path == "/license.xml":
            return Response(200, {"Content-Type": "application/rsl+xml"}, licence)
        if request.path == "/.well-known/tdmrep.json" and policy is not None:
            return Response(200, {"Content-Type": "application/json"}, json.dumps(
                [{"location": "/", "tdm-reservation": 1, "tdm-policy": "http://site.example/policy.json"}]))
        if request.path == "/policy.json" and policy is not None:
            return Response(200, {"Content-Type": "application/ld+json"}, policy)
        if request.path == "/a":
            return Response.html("<html><body>a</body></html>")
        return Response(404, {"Content-Type": "text/plain"}, "not found")

    return app


def _platforms(tmp_path: Path, licence: Any = "RSL-PLATFORM-9", domain: str = "site.example") -> Path:
    path = tmp_path / "platforms.yaml"
    entry: dict[str, Any] = {"domains": [domain], "authorization": {"purposes": ["search-indexing"],
                                                                    "reference": "MB-1"}}
    if licence is not None:
        entry["signal_licence"] = licence
    path.write_text(yaml.safe_dump({"platforms": {"example": entry}}, sort_keys=False))
    return path


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], app: Any,
         argv: list[str], settings: dict[str, Any] | None = None) -> tuple[int, str, str, list[str]]:
    monkeypatch.chdir(tmp_path)
    name = f"licsettings_{next(_names)}"  # one module per call: Python keeps an imported one
    (tmp_path / f"{name}.py").write_text("".join(f"{k} = {v!r}\n" for k, v in (settings or {}).items()))
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        code = main([*argv, "--settings", name])
        paths = [r.path for r in server.requests]
    out, err = capsys.readouterr()
    return code, out, err, paths


def _check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], platforms: Path,
           settings: dict[str, Any] | None = None) -> tuple[int, dict[str, Any], list[str]]:
    code, out, err, paths = _run(tmp_path, monkeypatch, capsys, _app(), [
        "check", "http://site.example/a", "--purpose", "search-indexing", "--json", "--fetch", "--now", NOW,
        "--platforms", str(platforms)], settings)
    assert code in (0, 1), err
    return code, json.loads(out), paths


def _held(decision: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["licence_held"], e.get("licence_held_in", "")) for e in decision["evidence"]
            if e["kind"] == "signal.rsl" and "licence_held" in e}


def test_the_platforms_licence_lifts_server_and_is_cited_with_file_and_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    platforms = _platforms(tmp_path)
    line = next(n for n, text in enumerate(platforms.read_text().splitlines(), 1) if "signal_licence" in text)
    code, decision, paths = _check(tmp_path, monkeypatch, capsys, platforms)
    assert code == 0 and "/a" in paths, decision
    assert _held(decision) == {("RSL-PLATFORM-9", f"{platforms}:{line}")}
    listed = [lic for s in decision["signals"] if s["signal"] == "rsl" for lic in s.get("licences_held", ())]
    assert listed == [{"reference": "RSL-PLATFORM-9", "in": f"{platforms}:{line}"}]


def test_without_a_recorded_licence_server_denies_before_the_fetch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, decision, paths = _check(tmp_path, monkeypatch, capsys, _platforms(tmp_path, None))
    assert code == 1 and decision["reason"] == "terms.signal.rsl" and "/a" not in paths
    # another platform's licence does not count here
    code, decision, paths = _check(tmp_path, monkeypatch, capsys, _platforms(tmp_path, domain="elsewhere.example"))
    assert code == 1 and decision["reason"] == "terms.signal.rsl" and "/a" not in paths


def test_the_platforms_licence_before_the_settings_and_the_setting_cited_when_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    setting = {"CONSENTCRAWL_SIGNAL_LICENCES": {"site.example": "RSL-SETTING-1"}}
    platforms = _platforms(tmp_path)
    code, decision, _ = _check(tmp_path, monkeypatch, capsys, platforms, setting)
    assert code == 0 and {ref for ref, _ in _held(decision)} == {"RSL-PLATFORM-9"}
    code, decision, _ = _check(tmp_path, monkeypatch, capsys, _platforms(tmp_path, None), setting)
    assert code == 0 and _held(decision) == {("RSL-SETTING-1", "CONSENTCRAWL_SIGNAL_LICENCES")}


@pytest.mark.parametrize(("value", "says"), [
    ("", "must not be empty"), ("  ", "must not be empty"), (None, "is empty"), (7, "must be a string"),
    (["L1"], "must be a string"), ({"reference": "L1"}, "must be a string"),
])
def test_a_bad_signal_licence_in_platforms_yaml_names_file_and_line(tmp_path: Path, value: Any, says: str) -> None:
    path = tmp_path / "platforms.yaml"
    path.write_text(f"platforms:\n  example:\n    domains: [site.example]\n    signal_licence: {json.dumps(value)}\n")
    settings = consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=str(path), CONSENTCRAWL_AUTHORIZATIONS=None)
    with pytest.raises(ConfigError) as raised:
        ConsentConfig.from_settings(settings)
    assert says in str(raised.value) and "platforms.yaml" in str(raised.value), raised.value
    assert raised.value.line == 4, raised.value


def test_a_misspelt_key_is_an_error_too(tmp_path: Path) -> None:
    path = tmp_path / "platforms.yaml"
    path.write_text("platforms:\n  example:\n    domains: [site.example]\n    signal_licences: L1\n")
    settings = consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=str(path), CONSENTCRAWL_AUTHORIZATIONS=None)
    with pytest.raises(ConfigError) as raised:
        ConsentConfig.from_settings(settings)
    assert "signal_licences" in str(raised.value) and raised.value.line == 4, raised.value


def test_consentcrawl_signals_shows_the_policy_and_the_licence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    platforms = _platforms(tmp_path)
    argv = ["signals", "http://site.example/a", "--platforms", str(platforms)]
    code, out, err, paths = _run(tmp_path, monkeypatch, capsys, _app(policy=POLICY), [*argv, "--json"])
    assert code == 0, err
    assert paths.count("/policy.json") == 1 and "/a" not in paths
    report = json.loads(out)
    tdmrep = next(s for s in report["signals"] if s["signal"] == "tdmrep")
    assert [(p["url"], p["status"], p["assigner"]["email"], p["permission"]) for p in tdmrep["policies"]] == [
        ("http://site.example/policy.json", "read", "tdm@site.example", ["tdm:mine"])]
    rsl = next(s for s in report["signals"] if s["signal"] == "rsl")
    assert [lic["reference"] for lic in rsl["licences_held"]] == ["RSL-PLATFORM-9"]
    code, out, err, _ = _run(tmp_path, monkeypatch, capsys, _app(policy="<html>not a policy"), argv)
    assert code == 0, err
    assert "tdm-policy http://site.example/policy.json: unreadable (not JSON" in out, out
    assert "licence held: RSL-PLATFORM-9 (recorded in " in out, out
