"""The operator's choices about signals (issue #13): custom purposes and what they count as, the research
exception per platform in ``platforms.yaml``, and the opt-in robots tag rules ``nosnippet`` / ``nocache``.

Through ``consentcrawl check --json --fetch`` against a loopback server, and a crawl judged by the server's log.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl.config import ConsentConfig
from consentcrawl.errors import ConfigError
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.conftest import consent_settings, run_crawl
from tests.test_robots_crawl import HOST, ConsentListSpider

NOW = "2026-06-01T12:00:00Z"
SIDE = {"/robots.txt", "/.well-known/tdmrep.json", "/ai.txt"}
RESERVED = '[{"location": "/", "tdm-reservation": 1}]'
PRICE = {"price-monitoring": ["search-indexing", "archiving"]}
_names = itertools.count()


class Site:
    """robots.txt, tdmrep.json and pages with their headers; 404 for anything else."""

    def __init__(self, robots: str = "User-agent: *\nAllow: /\n", tdmrep: str | None = None,
                 pages: dict[str, list[tuple[str, str]]] | None = None) -> None:
        self.robots, self.tdmrep, self.pages = robots, tdmrep, pages or {}
        self.bodies: dict[str, str] = {}  #: path -> HTML other than the default

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response:
        if request.path == "/robots.txt":
            return Response(200, {"Content-Type": "text/plain"}, self.robots)
        if request.path == "/.well-known/tdmrep.json" and self.tdmrep is not None:
            return Response(200, {"Content-Type": "application/json"}, self.tdmrep)
        if request.path in self.pages:
            return Response(200, [("Content-Type", "text/html; charset=utf-8"), *self.pages[request.path]],
                            self.bodies.get(request.path, f"<html><body>{request.path}</body></html>"))
        return Response(404, {"Content-Type": "text/plain"}, "not found")


def _check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], site: Site,
           path: str, purpose: str, settings: dict[str, Any], platforms: dict[str, Any] | None = None,
           ) -> tuple[int, dict[str, Any] | None, str, list[str]]:
    """``check URL --purpose P --json --fetch``: exit code, the decision (None on an error), stderr, the pages the
    server was asked for."""
    monkeypatch.chdir(tmp_path)
    name = f"optsettings_{next(_names)}"  # one module per call: Python keeps an imported one
    (tmp_path / f"{name}.py").write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items()))
    plat = tmp_path / "platforms.yaml"
    plat.write_text(yaml.safe_dump({"platforms": platforms or {"elsewhere": {"domains": ["elsewhere.example"]}}}))
    with LocalServer(site) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        code = main(["check", f"http://{HOST}{path}", "--purpose", purpose, "--json", "--fetch", "--now", NOW,
                     "--platforms", str(plat), "--settings", name])
        pages = [r.path for r in server.requests if r.path not in SIDE]
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code in (0, 1) else None), err, pages


def _notes(decision: dict[str, Any]) -> list[str]:
    return [e.get("note", "") for e in decision["evidence"] if e["kind"] == "signal.tdmrep"]


# -- custom purposes --------------------------------------------------------------------------------------------

def test_an_undeclared_custom_purpose_does_not_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err, pages = _check(tmp_path, monkeypatch, capsys, Site(), "/a", "price-monitoring", {})
    assert code == 2 and pages == []
    # named as the option it was given with (`check --purpose`), and the setting that declares one
    assert "--purpose: unknown purpose 'price-monitoring'" in err and "CONSENTCRAWL_CUSTOM_PURPOSES" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("value", "says"), [
    ({"research": ["search-indexing"]}, "built-in purpose"),
    ({"price-monitoring": []}, "at least one"),
    ({"price-monitoring": ["search", "archiving"]}, "unknown purposes: search"),
    ({"price-monitoring": 3}, "not a list of purposes"),
    ('{"price-monitoring": ', "mapping"),
])
def test_a_bad_custom_purpose_declaration_names_the_setting(tmp_path: Path, value: Any, says: str) -> None:
    settings = consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=[], CONSENTCRAWL_AUTHORIZATIONS=None,
                                CONSENTCRAWL_PURPOSE="research", CONSENTCRAWL_CUSTOM_PURPOSES=value)
    with pytest.raises(ConfigError) as raised:
        ConsentConfig.from_settings(settings)
    assert raised.value.source == "CONSENTCRAWL_CUSTOM_PURPOSES" and says in str(raised.value)


def test_a_custom_purpose_from_comma_separated_text(tmp_path: Path) -> None:
    settings = consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=[], CONSENTCRAWL_AUTHORIZATIONS=None,
                                CONSENTCRAWL_PURPOSE="price-monitoring",
                                CONSENTCRAWL_CUSTOM_PURPOSES='{"price-monitoring": "search-indexing, archiving"}')
    config = ConsentConfig.from_settings(settings)
    assert config.purpose == "price-monitoring"
    assert config.signal_policy.bases("price-monitoring") == {"search-indexing", "archiving"}


def test_a_custom_purpose_is_denied_by_the_robots_tags_of_what_it_counts_as(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    site = Site(pages={"/a": [("X-Robots-Tag", "noarchive")], "/b": []})
    settings = {"CONSENTCRAWL_CUSTOM_PURPOSES": PRICE}
    code, decision, err, pages = _check(tmp_path, monkeypatch, capsys, site, "/a", "price-monitoring", settings)
    assert code == 1 and decision is not None, err
    assert decision["reason"] == "response.robots-tag" and pages == ["/a"]  # archiving: noarchive denies
    code, decision, err, _ = _check(tmp_path, monkeypatch, capsys, site, "/b", "price-monitoring", settings)
    assert code == 0 and decision is not None and decision["verdict"] == "allow", err
    # the same page for search-indexing alone: noarchive says nothing about it
    code, decision, err, _ = _check(tmp_path, monkeypatch, capsys, site, "/a", "search-indexing", {})
    assert code == 0, err


# -- the research exception in platforms.yaml -------------------------------------------------------------------

def _platform(research: dict[str, str] | None, domain: str = "site.example") -> dict[str, Any]:
    entry: dict[str, Any] = {"domains": [domain], "authorization": {"purposes": ["research"], "reference": "MB-1"}}
    if research is not None:
        entry["research_exception"] = research
    return {"example": entry}


EXCEPTION = {"statement": "DSM Directive art. 3, university research", "reference": "ETHICS-2026-4"}


def test_the_research_exception_of_the_platform_applies_on_it_and_is_cited(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    site = Site(tdmrep=RESERVED, pages={"/a": []})
    code, decision, err, pages = _check(tmp_path, monkeypatch, capsys, site, "/a", "research", {},
                                        _platform(EXCEPTION))
    assert code == 0 and decision is not None, err
    assert pages == ["/a"]
    note = next(n for n in _notes(decision) if "research exception" in n)
    assert "ETHICS-2026-4" in note and "platforms.yaml:" in note  # the reference, and where it was recorded
    # the platform's exception wins over the setting's, and cites its own reference
    code, decision, err, _ = _check(tmp_path, monkeypatch, capsys, site, "/a", "research", {
        "CONSENTCRAWL_RESEARCH_EXCEPTION": {"statement": "other", "reference": "SETTING-REF"}}, _platform(EXCEPTION))
    assert code == 0 and decision is not None, err
    assert any("ETHICS-2026-4" in n for n in _notes(decision))
    assert not any("SETTING-REF" in n for n in _notes(decision))


def test_the_research_exception_of_another_platform_does_not_apply(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    site = Site(tdmrep=RESERVED, pages={"/a": []})
    platforms = {**_platform(None), "other": {"domains": ["other.example"], "research_exception": EXCEPTION}}
    code, decision, err, pages = _check(tmp_path, monkeypatch, capsys, site, "/a", "research", {}, platforms)
    assert code == 1 and decision is not None, err
    assert decision["reason"] == "terms.signal.tdmrep" and pages == []


def test_the_research_exception_in_settings_applies_and_is_cited(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    site = Site(tdmrep=RESERVED, pages={"/a": []})
    code, decision, err, _ = _check(tmp_path, monkeypatch, capsys, site, "/a", "research",
                                    {"CONSENTCRAWL_RESEARCH_EXCEPTION": EXCEPTION})
    assert code == 0 and decision is not None, err
    assert any("ETHICS-2026-4" in n and "CONSENTCRAWL_RESEARCH_EXCEPTION" in n for n in _notes(decision))


@pytest.mark.parametrize(("value", "says"), [
    ({"statement": "we research"}, "'reference'"),
    ({"statement": "we research", "reference": " "}, "must not be empty"),
    ({"statement": "x", "reference": "y", "until": "2027"}, "until"),
    (None, "is empty"),
])
def test_a_bad_research_exception_in_platforms_yaml_names_file_and_line(tmp_path: Path, value: Any,
                                                                         says: str) -> None:
    path = tmp_path / "platforms.yaml"
    path.write_text(yaml.safe_dump({"platforms": {"example": {"domains": ["site.example"],
                                                              "research_exception": value}}}))
    settings = consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=str(path), CONSENTCRAWL_AUTHORIZATIONS=None)
    with pytest.raises(ConfigError) as raised:
        ConsentConfig.from_settings(settings)
    assert says in str(raised.value) and "platforms.yaml" in str(raised.value), raised.value
    assert raised.value.line is not None


# -- nosnippet / nocache as options -----------------------------------------------------------------------------

@pytest.mark.parametrize(("rule", "purpose"), [("nosnippet", "ai-input"), ("nocache", "archiving"),
                                               ("nocache", "ai-input")])
def test_nosnippet_and_nocache_deny_only_when_opted_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str], rule: str,
                                                       purpose: str) -> None:
    site = Site(pages={"/a": [("X-Robots-Tag", rule)]})
    base = {"CONSENTCRAWL_PURPOSE_DEFAULTS": {purpose: "allow"}}
    code, decision, err, _ = _check(tmp_path, monkeypatch, capsys, site, "/a", purpose, base)
    assert code == 0 and decision is not None, err  # not opted in: the rule says nothing about use
    code, decision, err, pages = _check(tmp_path, monkeypatch, capsys, site, "/a", purpose,
                                        {**base, "CONSENTCRAWL_ROBOTS_TAG_OPTIONS": ["nosnippet", "nocache"]})
    assert code == 1 and decision is not None, err
    assert decision["reason"] == "response.robots-tag" and pages == ["/a"]
    assert any(e.get("directive") == rule for e in decision["evidence"])


def test_nosnippet_says_nothing_about_search_even_when_opted_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    site = Site(pages={"/a": [("X-Robots-Tag", "nosnippet, nocache")]})
    code, decision, err, _ = _check(tmp_path, monkeypatch, capsys, site, "/a", "search-indexing",
                                    {"CONSENTCRAWL_ROBOTS_TAG_OPTIONS": "nosnippet,nocache"})
    assert code == 0 and decision is not None, err


def test_an_unknown_robots_tag_option_names_the_setting(tmp_path: Path) -> None:
    settings = consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=[], CONSENTCRAWL_AUTHORIZATIONS=None,
                                CONSENTCRAWL_ROBOTS_TAG_OPTIONS=["nosnippet", "noindex"])
    with pytest.raises(ConfigError) as raised:
        ConsentConfig.from_settings(settings)
    assert raised.value.source == "CONSENTCRAWL_ROBOTS_TAG_OPTIONS" and "noindex" in str(raised.value)


# -- a crawl with a custom purpose ------------------------------------------------------------------------------

@deferred_f_from_coro_f
async def test_a_crawl_with_a_custom_purpose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Site-level denials of what it counts as before the fetch (server log); response-level ones before the HTTP
    cache and the callback."""
    cache = tmp_path / "httpcache"
    site = Site(robots="User-agent: *\nAllow: /\nContent-Usage: /nosearch/ search=n\n",
                pages={"/nosearch/a": [], "/tagged": [("X-Robots-Tag", "noarchive")], "/ok": []})
    ConsentListSpider.urls = [f"http://{HOST}/nosearch/a", f"http://{HOST}/tagged", f"http://{HOST}/ok"]
    settings = consent_settings(tmp_path, CONSENTCRAWL_PURPOSE="price-monitoring", CONSENTCRAWL_PLATFORMS=[],
                                CONSENTCRAWL_AUTHORIZATIONS=None, CONSENTCRAWL_CUSTOM_PURPOSES=PRICE,
                                HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(cache))
    with LocalServer(site) as server:
        result = await run_crawl(ConsentListSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        fetched = sorted(r.path for r in server.requests if r.path not in SIDE)
    assert fetched == ["/ok", "/tagged"]  # /nosearch/a was never requested
    assert [i["url"] for i in result.items] == [f"http://{HOST}/ok"]  # no callback for /tagged
    denied = {e["url"].split(HOST, 1)[1]: e["reason"] for e in result.audit if e["verdict"] == "deny"}
    assert denied == {"/nosearch/a": "terms.signal.content-usage", "/tagged": "response.robots-tag"}
    cached = [p.read_bytes() for p in cache.rglob("meta") if p.is_file()] if cache.exists() else []
    assert not any(b"/tagged" in c or b"/nosearch" in c for c in cached) and any(b"/ok" in c for c in cached)


# -- a custom purpose on a platform: the grant and each person's authorization ------------------------------------

def _people(tmp_path: Path, grant: list[str]) -> tuple[Path, Path]:
    platforms = tmp_path / "people.yaml"
    platforms.write_text(yaml.safe_dump({"platforms": {"people": {
        "domains": ["people.example"], "profiles": ["/u/{subject}"], "subject": "[0-9]+",
        "authorization": {"purposes": grant, "reference": "PEOPLE-1"}}}}))
    records = [("1", ["research", "archiving"]), ("2", ["research"]), ("3", ["research"]), ("3", ["archiving"])]
    authorizations = tmp_path / "people-authorizations.yaml"
    authorizations.write_text(yaml.safe_dump({"authorizations": [
        {"platform": "people", "subject": subject, "purposes": purposes, "granted_at": "2026-02-01T00:00:00Z",
         "evidence": f"consent form {subject}-{i}"} for i, (subject, purposes) in enumerate(records)]}))
    return platforms, authorizations


@pytest.mark.parametrize(("grant", "path", "verdict", "reason", "records"), [
    (["research", "archiving"], "/u/1", "allow", "subject.authorized", 1),  # one record for both
    (["research", "archiving"], "/u/3", "allow", "subject.authorized", 2),  # a record for each
    (["research", "archiving"], "/u/2", "deny", "subject.purpose", 0),  # archiving not authorized
    (["research"], "/u/1", "deny", "terms.purpose", 0),  # the platform granted research only
])
def test_a_custom_purpose_needs_the_grant_and_the_person_for_every_purpose_it_counts_as(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], grant: list[str],
        path: str, verdict: str, reason: str, records: int) -> None:
    monkeypatch.chdir(tmp_path)
    platforms, authorizations = _people(tmp_path, grant)
    name = f"optsettings_{next(_names)}"
    declared = {"study-archive": ["research", "archiving"]}
    (tmp_path / f"{name}.py").write_text(f"CONSENTCRAWL_CUSTOM_PURPOSES = {declared!r}\n")
    with LocalServer(Site()) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        code = main(["check", f"http://people.example{path}", "--purpose", "study-archive", "--json", "--now", NOW,
                     "--platforms", str(platforms), "--authorizations", str(authorizations), "--settings", name])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    decision = json.loads(out)
    assert (decision["verdict"], decision["reason"]) == (verdict, reason), decision["evidence"]
    cited = [e for e in decision["evidence"] if e["kind"] == "subject-authorization" and e.get("purposes")]
    if verdict == "allow":
        assert len(cited) == records and {p for e in cited for p in e["purposes"]} >= {"research", "archiving"}


def test_the_signals_table_has_a_row_for_each_declared_custom_purpose(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    name = f"optsettings_{next(_names)}"
    declared = {"price-monitoring": ["search-indexing", "archiving"], "site-search": ["search-indexing"]}
    (tmp_path / f"{name}.py").write_text(f"CONSENTCRAWL_CUSTOM_PURPOSES = {declared!r}\n")
    site = Site(robots="User-agent: *\nAllow: /\n", pages={"/a": [("X-Robots-Tag", "noarchive")]})
    site.robots += "Content-Usage: /private/ search=n\n"
    with LocalServer(site) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        assert main(["signals", f"http://{HOST}/private/a", "--json", "--settings", name]) == 0
        table = json.loads(capsys.readouterr().out)["purposes"]
        assert main(["signals", f"http://{HOST}/private/a", "--settings", name]) == 0
        text = capsys.readouterr().out
    assert table["price-monitoring"] == {**table["price-monitoring"], "verdict": "deny",
                                         "reason": "terms.signal.content-usage",
                                         "counts_as": ["archiving", "search-indexing"]}
    assert table["site-search"]["reason"] == "terms.signal.content-usage"
    assert table["archiving"]["reason"] is None
    assert "price-monitoring" in text and "counts as archiving, search-indexing" in text


def test_a_licence_recorded_for_an_international_host_covers_its_requests(tmp_path: Path) -> None:
    """Requests reach a host by its IDNA spelling; a licence written with the host's letters, its capitals or a
    trailing dot is recorded under that same spelling, not kept under one no request can match."""
    settings = consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=[], CONSENTCRAWL_AUTHORIZATIONS=None,
                                CONSENTCRAWL_PURPOSE="research",
                                CONSENTCRAWL_SIGNAL_LICENCES={"Bücher.Example.": "L-7"})
    policy = ConsentConfig.from_settings(settings).signal_policy
    assert policy.licence_for("xn--bcher-kva.example") == ("L-7", "CONSENTCRAWL_SIGNAL_LICENCES")
    assert policy.licence_for("shop.xn--bcher-kva.example") == ("L-7", "CONSENTCRAWL_SIGNAL_LICENCES")
    assert policy.licence_for("other.example") == (None, "")
