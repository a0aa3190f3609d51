"""Operator signals, phase 2: platforms.yaml's overrides_signals, the site check's memo and its validity rule,
SignalsNeeded, and ``consentcrawl signals URL``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from consentcrawl.cache import SignalMemo
from consentcrawl.checks.signals import SiteSignalsCheck, path_free
from consentcrawl.cli import main
from consentcrawl.consent.answers import NO_STORE
from consentcrawl.engine import PolicyEngine
from consentcrawl.errors import ConfigError
from consentcrawl.robots.fetch import from_response
from consentcrawl.signals.evaluate import SiteFiles
from consentcrawl.signals.fetch import from_response as file_response
from consentcrawl.signals.policy import SignalsNeeded
from consentcrawl.terms.load import load_platforms
from consentcrawl.terms.platforms import PlatformRegistry
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
ORIGIN = "http://site.example"
TDM = b'[{"location": "/private/*", "tdm-reservation": 1}, {"location": "/", "tdm-reservation": 0}]'


def _files(robots: bytes = b"User-agent: *\nAllow: /\n", tdmrep: bytes | None = TDM) -> SiteFiles:
    tdm = file_response("tdmrep", ORIGIN + "/.well-known/tdmrep.json", 200 if tdmrep else 404, tdmrep or b"", NOW)
    return SiteFiles(from_response(ORIGIN + "/robots.txt", 200, robots, NOW), tdm)


def test_overrides_signals_is_read_and_a_bad_value_names_file_and_line(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text("platforms:\n  ex:\n    domains: [site.example]\n    authorization:\n      purposes: [research]\n"
                    "      reference: contract 7\n      overrides_signals: true\n")
    assert load_platforms(good).get("ex").authorization.overrides_signals is True  # type: ignore[union-attr]
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("overrides_signals: true", "overrides_signals: 'yes'"))
    with pytest.raises(ConfigError) as info:
        load_platforms(bad)
    assert "overrides_signals" in str(info.value) and "bad.yaml" in str(info.value) and "line 7" in str(info.value)


def test_a_decision_without_the_signal_files_asks_for_them() -> None:
    engine = PolicyEngine(PlatformRegistry({}), "consentcrawl")
    files = _files()
    facts = engine.facts(ORIGIN + "/private/a", "research", NOW)
    with pytest.raises(SignalsNeeded) as need:
        engine.decide(facts, files.robots, NO_STORE)
    assert need.value.origin == ORIGIN
    assert engine.decide(facts, files.robots, NO_STORE, files).reason == "terms.signal.tdmrep"
    # a URL robots.txt disallows never needs them
    closed = from_response(ORIGIN + "/robots.txt", 200, b"User-agent: *\nDisallow: /\n", NOW)
    assert engine.decide(facts, closed, NO_STORE).reason == "robots.disallowed"


def test_the_memo_is_valid_for_the_very_same_objects_only() -> None:
    memo: SignalMemo[int] = SignalMemo(16)
    calls: list[int] = []
    a, b = _files(), _files()

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert memo.get(a, a.robots, None, "p", ("u",), compute) == 1
    assert memo.get(a, a.robots, None, "p", ("u",), compute) == 1  # a hit
    assert memo.get(b, b.robots, None, "p", ("u",), compute) == 2  # equal files, another object: a miss
    assert memo.get(a, b.robots, None, "p", ("u",), compute) == 3  # another robots.txt: a miss
    assert memo.get(a, a.robots, None, "p", ("v",), compute) == 4  # another URL


def test_the_check_keys_by_url_only_when_a_file_is_path_dependent() -> None:
    assert path_free(_files(tdmrep=None, robots=b"User-agent: *\nContent-Signal: ai-train=no\n"))
    assert not path_free(_files())
    assert not path_free(_files(tdmrep=None, robots=b"User-agent: *\nContent-Usage: /x train-ai=n\n"))
    check = SiteSignalsCheck()
    engine = PolicyEngine(PlatformRegistry({}), "consentcrawl", checks=[check])
    files = _files()
    for path, reason in (("/private/a", "terms.signal.tdmrep"), ("/public", None), ("/private/b",
                                                                                   "terms.signal.tdmrep")):
        decision = engine.decide(engine.facts(ORIGIN + path, "research", NOW), files.robots, NO_STORE, files)
        assert decision.reason == (reason or "error.internal")  # no other check: an allow concludes nothing


def test_signals_command_prints_every_purpose(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def app(request: LoggedRequest, headers: dict[str, str]) -> Response:
        if request.path == "/robots.txt":
            return Response(200, {"Content-Type": "text/plain"},
                            "User-agent: *\nContent-Signal: search=yes, ai-train=no\nAllow: /\n")
        if request.path == "/.well-known/tdmrep.json":
            return Response(200, {"Content-Type": "application/json"}, TDM.decode())
        if request.path == "/private/a":
            return Response(200, [("Content-Type", "text/html"), ("Content-Usage", "search=n")], "<p>x</p>")
        return Response(404, {}, "")

    monkeypatch.chdir(tmp_path)
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        assert main(["signals", ORIGIN + "/private/a", "--json", "--fetch"]) == 0
        paths = [r.path for r in server.requests]
    table = json.loads(capsys.readouterr().out)
    purposes = table["purposes"]
    assert purposes["ai-training"]["reason"] == "terms.signal.tdmrep"  # the file before Content-Signal
    assert purposes["search-indexing"]["reason"] == "response.signal.content-usage"
    assert purposes["archiving"]["verdict"] == "allow"  # nothing said: its default
    assert {s["signal"] for s in table["signals"]} >= {"tdmrep", "content-signal", "content-usage"}
    assert "/private/a" in paths
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        assert main(["signals", ORIGIN + "/private/a"]) == 0
        assert "/private/a" not in [r.path for r in server.requests]  # without --fetch the page is not fetched
    out = capsys.readouterr().out
    assert "ai-training" in out and "tdmrep.json[0]" in out


def test_the_signals_table_reads_the_pages_robots_tags_as_check_and_the_crawl_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``signals --fetch`` decides each purpose the way ``check --fetch`` (and the crawl's response phase) does:
    the page's robots tags (a header, a meta tag) before the response-level signals and the defaults, and lists
    them with where each was read. Without the page, no tag is known and none is listed."""
    def app(request: LoggedRequest, headers: dict[str, str]) -> Response:
        if request.path == "/robots.txt":
            return Response(200, {"Content-Type": "text/plain"}, "User-agent: *\nAllow: /\n")
        if request.path == "/page":
            return Response(200, [("Content-Type", "text/html"), ("X-Robots-Tag", "noindex")],
                            '<html><head><meta name="robots" content="noai"></head><body>x</body></html>')
        return Response(404, {}, "")

    platforms = tmp_path / "platforms.yaml"
    platforms.write_text("platforms:\n  other:\n    domains: [other.example]\n")
    (tmp_path / "tagsettings.py").write_text("CONSENTCRAWL_CUSTOM_PURPOSES = {'site-search': ['search-indexing']}\n")
    monkeypatch.chdir(tmp_path)
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        assert main(["signals", ORIGIN + "/page", "--json", "--fetch", "--settings", "tagsettings"]) == 0
        table = json.loads(capsys.readouterr().out)
        checked = {}
        for purpose in table["purposes"]:
            main(["check", ORIGIN + "/page", "--purpose", purpose, "--json", "--fetch", "--platforms", str(platforms),
                  "--settings", "tagsettings"])
            decision = json.loads(capsys.readouterr().out)
            checked[purpose] = (decision["verdict"], decision["reason"] if decision["verdict"] == "deny" else None)
            # the site's signals were consulted before the fetch, whatever the page's tags then said
            assert {(s["signal"], s["level"]) for s in decision["signals"]} >= {("tdmrep", "site"),
                                                                              ("content-signal", "site")}, purpose
        assert main(["signals", ORIGIN + "/page", "--json"]) == 0
        before = json.loads(capsys.readouterr().out)
    rows = {p: (row["verdict"], row["reason"] if row["verdict"] == "deny" else None)
            for p, row in table["purposes"].items()}
    assert rows == checked
    assert rows["search-indexing"] == ("deny", "response.robots-tag")
    assert rows["ai-training"] == ("deny", "response.meta-robots")
    assert rows["research"] == ("allow", None)
    assert rows["site-search"] == ("deny", "response.robots-tag")  # a declared purpose, by what it counts as
    tags = [s for s in table["signals"] if s["signal"] == "robots-tags"]
    assert len(tags) == 1 and tags[0]["level"] == "response" and tags[0]["verdicts"]["search-indexing"] == "deny"
    assert all(entry["verdicts"].keys() == tags[0]["verdicts"].keys() for entry in table["signals"])
    assert {(s["purpose"], s["where"]) for s in tags[0]["statements"]} >= {("search-indexing", "X-Robots-Tag"),
                                                                          ("ai-training", "meta")}
    assert not [s for s in before["signals"] if s["signal"] == "robots-tags"]
    assert before["purposes"]["search-indexing"]["verdict"] != "deny"


def test_a_signal_file_whose_own_url_is_refused_says_so_not_a_redirect(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """An IP host is no one's site we may read (``terms.ip-host``): its signal files are not fetched (the server's
    log has none of them), and the cause names the file's own URL, not a redirect that never happened. robots.txt
    is that file: refused, it is unreachable, which denies the URL before any other file would be fetched (as in a
    crawl, ``tests/test_signals_cli_robots.py``), so the signal files are not even tried."""
    def app(request: LoggedRequest, headers: dict[str, str]) -> Response:
        return Response(200, {"Content-Type": "text/plain"}, "User-agent: *\nAllow: /\n")

    monkeypatch.chdir(tmp_path)
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with LocalServer(app) as server:
        origin = server.proxy.rstrip("/")  # the server itself, asked by its address
        assert main(["signals", origin + "/page", "--json"]) == 0
        asked = [r.path for r in server.requests]
    out = json.loads(capsys.readouterr().out)
    assert out["robots"]["cause"] == "a URL we may not fetch (terms.ip-host)", out["robots"]
    assert {row["reason"] for row in out["purposes"].values()} == {"robots.unreachable"}, out["purposes"]
    assert {e["source"] for e in out["signals"] if e["signal"] in ("tdmrep", "ai-txt")} == {None}, out["signals"]
    assert asked == [], asked
