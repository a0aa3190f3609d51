"""``consentcrawl check`` and ``consentcrawl demo`` as a user runs them."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl_demo.server import LocalServer, Response
from spiders.microblog import MicroblogSpider
from tests.conftest import AUTHORIZATIONS, PLATFORMS, ROOT, consent_settings, run_crawl
from tests.routing import Router

NOW = "2026-11-27T12:00:00Z"


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def config_args() -> list[str]:
    return ["--platforms", str(PLATFORMS), "--authorizations", str(AUTHORIZATIONS), "--now", NOW]


@pytest.mark.parametrize(
    ("url", "code", "reason"),
    [
        ("http://microblog.example/u/1001", 0, "subject.authorized"),
        ("http://M.Microblog.Example:80/./u//1001/#x", 0, "subject.authorized"),
        ("http://microblog.example/u/1002", 1, "subject.revoked"),
        ("http://microblog.example/profile/1003", 1, "subject.no-authorization"),
        ("http://microblog.example/search?q=1", 1, "robots.disallowed"),
        ("http://microblog.example/people?page=2", 0, "subject.not-a-profile"),
    ],
)
def test_check_exit_codes_and_json(server: LocalServer, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch, url: str, code: int, reason: str) -> None:
    monkeypatch.setenv("http_proxy", server.proxy)
    got, out, _ = check(capsys, url, "--purpose", "research", *config_args(), "--json")
    decision = json.loads(out)
    assert (got, decision["reason"]) == (code, reason)
    assert decision["purpose"] == "research" and decision["time"].startswith("2026-11-27T12:00")
    got, out, _ = check(capsys, url, "--purpose", "research", *config_args())
    assert got == code
    assert ("ALLOWED" if code == 0 else "DENIED") in out and reason in out
    # the account of a replay says so first: pasted elsewhere, it is not read as a decision of today
    assert out.splitlines()[0] == "as of:      2026-11-27T12:00:00+00:00 (a fixed time, --now or CONSENTCRAWL_NOW: " \
                                  "not the clock)", out


def test_check_fetches_robots_through_the_proxy_and_fails_closed(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    app = Router.static("microblog.example", "/robots.txt", 503, "down")
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        code, out, _ = check(capsys, "http://microblog.example/u/1001", "--purpose", "research", *config_args(),
                             "--json")
        assert [r.target for r in server.requests] == ["http://microblog.example/robots.txt"]
    assert code == 1 and json.loads(out)["reason"] == "robots.unreachable"


def test_check_network_error_is_unreachable(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalServer(Router().drop(None, None, prefix=True)) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        code, out, _ = check(capsys, "http://microblog.example/people", "--purpose", "research",
                             *config_args(), "--json")
    decision = json.loads(out)
    assert code == 1 and decision["reason"] == "robots.unreachable"
    assert "Error" in decision["evidence"][0]["cause"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # named as the option it was given with, not as CONSENTCRAWL_PURPOSE (which the user did not set)
        (["--purpose", "reserch"], "configuration error: --purpose: unknown purpose 'reserch'"),
        ([], "configuration error: --purpose: no purpose: give --purpose"),  # not "the spider's purpose attribute"
        (["--purpose", "research", "--platforms", "/nonexistent/platforms.yaml"], "/nonexistent/platforms.yaml"),
    ],
)
def test_check_usage_errors_exit_2_without_traceback(capsys: pytest.CaptureFixture[str], args: list[str],
                                                     message: str) -> None:
    code, out, err = check(capsys, "http://microblog.example/u/1001", *args)
    assert code == 2
    assert message in err and "Traceback" not in err + out


def test_check_names_file_and_line_of_a_broken_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "platforms.yaml"
    bad.write_text("platforms:\n  microblog:\n    domains: [microblog.example]\n    profiles: ['/u/{subject']\n")
    code, _, err = check(capsys, "http://microblog.example/u/1", "--purpose", "research", "--platforms", str(bad))
    assert code == 2 and "platforms.yaml, line 4" in err


@deferred_f_from_coro_f
async def test_check_and_crawl_reach_the_same_decisions(server: LocalServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    settings = consent_settings(tmp_path, CONSENTCRAWL_NOW=NOW)
    result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    entries = [e for e in result.audit if e["phase"] in ("request", "schedule")]
    by_reason: dict[str, dict] = {}
    for entry in entries:
        # a refusal read on a page is known to the crawl that read it, and to `check` only through the refusal log
        # (CONSENTCRAWL_REFUSALS_LOG, not kept here: tests/test_refusals_units.py decides with it)
        if entry["reason"] != "subject.refused-on-page":
            by_reason.setdefault(entry["reason"], entry)
    assert len(by_reason) >= 6
    for reason, entry in by_reason.items():
        code, out, _ = check(capsys, entry["url"], "--purpose", "research", *config_args(), "--json")
        decision = json.loads(out)
        assert (decision["reason"], decision["subject"], decision["platform"]) == (
            reason, entry["subject"], entry["platform"]), entry["url"]
        assert code == (0 if entry["verdict"] == "allow" else 1)


def test_scrapy_crawl_from_the_repository_root(tmp_path: Path) -> None:
    """`scrapy crawl microblog` with the platform served: the project wiring (scrapy.cfg, settings/, spiders/)."""
    from consentcrawl_demo.microblog import MicroblogSite

    with LocalServer(MicroblogSite(n_profiles=40)) as server:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(http_proxy=server.proxy, PYTHONWARNINGS="ignore")
        items = tmp_path / "items.jsonl"
        proc = subprocess.run(
            [sys.executable, "-m", "scrapy", "crawl", "microblog", "-O", str(items), "-s", "LOG_LEVEL=INFO",
             "-s", f"CONSENTCRAWL_AUDIT_LOG={tmp_path / 'audit.jsonl'}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "consentcrawl: purpose 'research'" in proc.stderr
    assert "consentcrawl: closing (finished): consent: " in proc.stderr  # the closing consent summary
    assert (f"the report: consentcrawl audit report {tmp_path / 'audit.jsonl'} --html "
            f"{tmp_path / 'audit-report.html'}") in proc.stderr
    subjects = {json.loads(line)["subject"] for line in items.read_text().splitlines()}
    assert subjects and subjects < {str(i) for i in range(1001, 1041)}
    assert (tmp_path / "audit.jsonl").exists()


def test_demo_runs_end_to_end_and_leaves_nothing_running(tmp_path: Path) -> None:
    from consentcrawl_demo.microblog import MicroblogSite

    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.run([sys.executable, "-m", "consentcrawl.cli", "demo", "--output", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "crawl finished" in out and "subject.no-authorization" in out and "robots.disallowed" in out
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert items and all(set(i) <= {"subject", "name", "bio", "followers", "consentcrawl"} for i in items)
    audit = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(audit) > len(items)
    assert "Traceback" not in proc.stderr
    column = {line.index(str(tmp_path)) for line in out.splitlines()
              if line.startswith(("  items written to:", "  audit log ("))}
    assert len(column) == 1, out  # the summary's paths line up, whatever the number of decisions
    # the two commands the summary suggests work as printed: the report, and why the first item was collected
    report = re.search(r"its report, with charts: +consentcrawl (audit report .*)$", out, re.MULTILINE)
    explain = re.search(r"why an item was collected: +consentcrawl (audit explain .*)$", out, re.MULTILINE)
    assert report and explain, out
    assert f"explain {items[0]['consentcrawl']['decision_id']} --log" in explain.group(1)
    for command in (report, explain):
        run = subprocess.run([sys.executable, "-m", "consentcrawl.cli", *shlex.split(command.group(1))],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
    assert (tmp_path / "audit-report.html").is_file()
    assert "ALLOWED, subject.authorized" in run.stdout
    # and the check it suggests, against the demo platform served as `consentcrawl demo --serve` serves it
    check_line = re.search(r"^ +http_proxy=\S+ consentcrawl (check .*)$", out, re.MULTILINE)
    assert check_line and "from the repository root" in out, out
    with LocalServer(MicroblogSite()) as server:
        run = subprocess.run([sys.executable, "-m", "consentcrawl.cli", *shlex.split(check_line.group(1))],
                             cwd=ROOT, env={**env, "http_proxy": server.proxy}, capture_output=True, text=True,
                             timeout=120)
    assert run.returncode == 1 and "DENIED: subject.revoked" in run.stdout, run.stdout + run.stderr
    # the two #nobot people who hold a live record: their refusal is found on their page, and they are not collected
    refused = [json.loads(line) for line in audit if '"refusal-found"' in line]
    assert {e["subject"] for e in refused} == set(MicroblogSite().nobot_subjects[:2])
    assert not {i["subject"] for i in items} & set(MicroblogSite().nobot_subjects)
    assert "people who refused on their page: 2" in out


def test_check_shows_which_robots_file_decided(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    robots = "# our rules\nUser-agent: consentcrawl\nAllow: /public\nDisallow: /\n"
    app = Router()
    app.add("microblog.example", "/robots.txt", lambda r, h: Response.redirect("http://cdn.example/robots.txt", 301))
    app.static("cdn.example", "/robots.txt", 200, robots)
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        code, out, _ = check(capsys, "http://microblog.example/people", "--purpose", "research", *config_args())
        assert not server.errors, server.errors
    assert code == 1
    assert "robots.txt http://microblog.example/robots.txt -> http://cdn.example/robots.txt" in out
    assert "(HTTP 200, fetched " in out and f"{len(robots)} bytes" in out
    assert "group 'User-agent: consentcrawl' (line 2)" in out and "rule 'Disallow: /' (line 4)" in out
    assert "DENIED: robots.disallowed" in out


def test_check_does_not_follow_a_robots_txt_redirect_to_a_person_it_may_not_fetch(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Like a crawl, ``check`` asks before each robots.txt hop: a redirect to a denied profile is not fetched."""
    app = Router.static("microblog.example", "/robots.txt", 301, "", {"Location": "/u/1003"})
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        code, out, _ = check(capsys, "http://microblog.example/u/1001", "--purpose", "research", *config_args(),
                             "--json")
        assert [r.path for r in server.requests] == ["/robots.txt"]
    decision = json.loads(out)
    assert code == 1 and decision["reason"] == "robots.unreachable"
    assert "subject.no-authorization" in decision["evidence"][0]["cause"]


def test_output_into_a_closed_pipe_ends_without_a_traceback(tmp_path: Path) -> None:
    """``consentcrawl audit report LOG | head -1``: the reader closes the pipe; the command stops quietly."""
    empty = tmp_path / "audit.jsonl"
    empty.write_text("")
    proc = subprocess.Popen([sys.executable, "-m", "consentcrawl.cli", "audit", "verify", str(empty)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command has written anything: its first write meets a closed pipe
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(60) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err, err
