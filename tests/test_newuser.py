"""What a new user meets walking the README's three ways of use: a ``ConsentSpider`` in a project of their own, a
crawl run in-process with a spider argument, and the add-on plugged into an existing project. Each test is a
case that, before its fix, did something else than the docs say (a crawl for another purpose than asked for, a
plain spider running unguarded without a word, an error naming the wrong place)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from spiders.microblog import MicroblogSpider
from tests.conftest import AUTHORIZATIONS, PLATFORMS, append_withdrawal, consent_settings, run_crawl


@deferred_f_from_coro_f
async def test_a_purpose_given_to_a_crawler_built_before_its_spider_is_not_silently_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, site: object,
) -> None:
    """``get_crawler(MicroblogSpider, ...)`` builds the crawl's components (and the runtime with its purpose) before
    the spider exists; ``crawler.crawl(purpose="archiving")`` then made a spider that says archiving while every
    decision, the audit log and the items' provenance said research (the class attribute). It must refuse to start,
    with one line naming both, before anything is fetched."""
    settings = consent_settings(tmp_path)
    with caplog.at_level(logging.INFO), LocalServer(site) as server:  # type: ignore[arg-type]
        result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch,
                                 purpose="archiving")
        served = [r.path for r in server.requests]
    assert served == [], served
    assert result.items == []
    assert result.stats["finish_reason"] == "consentcrawl_config_error"
    assert not [e for e in result.audit if e.get("verdict") == "allow"]
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1, critical
    assert "the spider's purpose attribute: the spider asks for purpose 'archiving'" in critical[0]
    assert "set up for 'research'" in critical[0]


@deferred_f_from_coro_f
async def test_the_same_purpose_given_as_a_spider_argument_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site: object,
) -> None:
    """Control: the argument that agrees with the crawl's purpose does not stop it."""
    with LocalServer(site) as server:  # type: ignore[arg-type]
        result = await run_crawl(MicroblogSpider, consent_settings(tmp_path), proxy=server.proxy,
                                 monkeypatch=monkeypatch, purpose="research")
    assert result.stats["finish_reason"] == "finished"
    assert result.items and {e["purpose"] for e in result.audit} == {"research"}


def _project(tmp_path: Path, settings: str, spiders: str) -> Path:
    """A new user's Scrapy project: ``scrapy.cfg``, a settings module and one spider module."""
    (tmp_path / "scrapy.cfg").write_text("[settings]\ndefault = proj.settings\n")
    package = tmp_path / "proj"
    (package / "spiders").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "spiders" / "__init__.py").write_text("")
    (package / "settings.py").write_text('SPIDER_MODULES = ["proj.spiders"]\nLOG_LEVEL = "INFO"\n'
                                         'TELNETCONSOLE_ENABLED = False\n' + settings)
    (package / "spiders" / "people.py").write_text(spiders)
    return tmp_path


_SPIDERS = '''
import scrapy
from consentcrawl import ConsentSpider


class PlainSpider(scrapy.Spider):
    name = "plain"
    start_urls = ["http://microblog.example/u/1001"]

    def parse(self, response):
        yield {"subject": "1001", "name": response.css(".name::text").get()}


class GuardedSpider(ConsentSpider):
    name = "guarded"
    purpose = "research"
    start_urls = ["http://microblog.example/u/1001"]

    def parse(self, response):
        yield {"subject": "1001", "name": response.css(".name::text").get()}
'''


def _crawl(project: Path, spider: str, proxy: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("SCRAPY_")}
    env.update(http_proxy=proxy, PYTHONPATH=str(project))
    return subprocess.run([sys.executable, "-m", "scrapy", "crawl", spider, "-s",
                           f"CONSENTCRAWL_AUDIT_LOG={project / 'audit.jsonl'}", *args],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("settings", [
    # only the ConsentSpiders are guarded: the project settings name no add-on
    f"CONSENTCRAWL_PLATFORMS = {str(PLATFORMS)!r}\nCONSENTCRAWL_AUTHORIZATIONS = {str(AUTHORIZATIONS)!r}\n",
    # the README's "existing crawler" lines, but the ADDONS one forgotten
    f"CONSENTCRAWL_PURPOSE = 'research'\nCONSENTCRAWL_PLATFORMS = {str(PLATFORMS)!r}\n",
])
def test_scrapy_crawl_warns_of_a_spider_that_runs_without_consentcrawl(
    tmp_path: Path, site: object, settings: str,
) -> None:
    """A plain spider in a project that uses consentcrawl ran unguarded without a word: it fetched a person's page
    the crawl would have refused, and the ``CONSENTCRAWL_*`` settings sat there looking in force. ``scrapy crawl``
    now says so in one WARNING naming the spider and the fix."""
    project = _project(tmp_path, settings, _SPIDERS)
    with LocalServer(site) as server:  # type: ignore[arg-type]
        proc = _crawl(project, "plain", server.proxy)
        served = [r.path for r in server.requests]
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "/u/1001" in served, "control: the plain spider is not guarded (a warning, not a refusal)"
    warned = [line for line in output.splitlines() if "WARNING" in line and "runs WITHOUT consentcrawl" in line]
    assert len(warned) == 1 and "spider 'plain'" in warned[0] and 'ADDONS = {"consentcrawl.Addon": 0}' in warned[0]


@pytest.mark.parametrize(("settings", "spider"), [
    ("", "guarded"),  # a ConsentSpider brings the add-on
    ("ADDONS = {'consentcrawl.Addon': 0}\nCONSENTCRAWL_PURPOSE = 'research'\n"
     f"CONSENTCRAWL_PLATFORMS = {str(PLATFORMS)!r}\nCONSENTCRAWL_AUTHORIZATIONS = {str(AUTHORIZATIONS)!r}\n",
     "plain"),  # the add-on in the project settings guards the plain spider
])
def test_scrapy_crawl_does_not_warn_of_a_guarded_spider(
    tmp_path: Path, site: object, settings: str, spider: str,
) -> None:
    settings += f"CONSENTCRAWL_PLATFORMS = {str(PLATFORMS)!r}\n" if "PLATFORMS" not in settings else ""
    project = _project(tmp_path, settings, _SPIDERS)
    with LocalServer(site) as server:  # type: ignore[arg-type]
        proc = _crawl(project, spider, server.proxy)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "consentcrawl: purpose 'research'" in output, output  # control: the add-on ran
    assert "runs WITHOUT consentcrawl" not in output, output


@deferred_f_from_coro_f
async def test_the_audit_report_of_a_crawl_decided_as_of_a_past_time_says_so_first(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, site: object,
) -> None:
    """``CONSENTCRAWL_NOW`` in a past time fetches a person who has withdrawn since (that is what it means, and the
    crawl says so at WARNING). Its audit log carried the fixed time on every line, and the report read from it said
    nothing else: a fetch of today looked like one made before the withdrawal, with no sign of the replay unless
    the crawl's own log was kept. The report (terminal and HTML) now says so first."""
    from consentcrawl.audit.html import render
    from consentcrawl.audit.report import summarize
    from consentcrawl.audit.terminal import terminal

    auth = config_dir / "authorizations.yaml"
    append_withdrawal(auth, "1001", revoked_at="2026-11-30T00:00:00Z")
    audits = {}
    for name, now in (("replay", "2026-06-01T00:00:00Z"), ("clock", None)):
        settings = consent_settings(config_dir, CONSENTCRAWL_AUTHORIZATIONS=str(auth),
                                    CONSENTCRAWL_AUDIT_LOG=str(config_dir / f"{name}.jsonl"),
                                    **({"CONSENTCRAWL_NOW": now} if now else {}))
        with caplog.at_level(logging.INFO), LocalServer(site) as server:  # type: ignore[arg-type]
            await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
            audits[name] = ({r.path for r in server.requests}, config_dir / f"{name}.jsonl")
    assert "/u/1001" in audits["replay"][0], "control: as of 2026-06-01, 1001 had not withdrawn, and was fetched"
    assert "/u/1001" not in audits["clock"][0], "control: by the clock, 1001 has withdrawn"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "CONSENTCRAWL_NOW" in
              r.getMessage()]
    assert len(warned) == 1, warned

    replay = summarize([str(audits["replay"][1])])
    text, page = terminal(replay), render(replay)
    line = "REPLAY: decided as of a fixed time (CONSENTCRAWL_NOW), not the clock: as of 2026-06-01T00:00:00+00:00"
    assert line in text.splitlines()[1], text
    assert line in page and "withdrawals and expiries after it were not honoured" in page
    clock = summarize([str(audits["clock"][1])])
    assert "REPLAY" not in terminal(clock) and "REPLAY" not in render(clock)


_ONE_PLATFORM = f"CONSENTCRAWL_PLATFORMS = {str(PLATFORMS)!r}\nCONSENTCRAWL_AUTHORIZATIONS = {str(AUTHORIZATIONS)!r}\n"


@pytest.mark.parametrize(("args", "served", "critical"), [
    # typed for this run, and lost to the spider's class attribute: the crawl ran for research without a word
    (["-s", "CONSENTCRAWL_PURPOSE=archiving"], False, "CONSENTCRAWL_PURPOSE: 'archiving' was given for this run, but "
                                                   "the spider's purpose is 'research', which wins"),
    # controls: the same purpose, and a spider argument (which is the spider's own purpose)
    (["-s", "CONSENTCRAWL_PURPOSE=research"], True, None),
    (["-a", "purpose=archiving"], False, None),  # the platform grants research only: terms.purpose
])
def test_a_purpose_typed_for_the_run_that_the_spider_overrides_stops_the_crawl(
    tmp_path: Path, site: object, args: list[str], served: bool, critical: str | None,
) -> None:
    project = _project(tmp_path, _ONE_PLATFORM, _SPIDERS)
    with LocalServer(site) as server:  # type: ignore[arg-type]
        proc = _crawl(project, "guarded", server.proxy, *args)
        paths = [r.path for r in server.requests]
    output = proc.stdout + proc.stderr
    assert ("/u/1001" in paths) is served, output
    lines = [line for line in output.splitlines() if "] CRITICAL:" in line]
    if critical is None:
        assert proc.returncode == 0 and lines == [], output
    else:
        assert paths == [], "nothing is fetched, robots.txt included"
        assert proc.returncode == 1 and len(lines) == 1 and critical in lines[0], output


def test_crawler_process_crawl_with_a_purpose_argument_crawls_for_it(tmp_path: Path, site: object) -> None:
    """The README's in-process way, as a script: ``CrawlerProcess.crawl(Spider, purpose=...)`` makes the spider
    before the crawl's components, so the argument is the crawl's purpose (the audit log and the items say it)."""
    project = _project(tmp_path, _ONE_PLATFORM, _SPIDERS + '''

class NoPurposeSpider(GuardedSpider):
    name = "nopurpose"
    purpose = None
''')
    (project / "run.py").write_text(f'''
from scrapy.crawler import CrawlerProcess
from scrapy.utils.project import get_project_settings
from proj.spiders.people import NoPurposeSpider, GuardedSpider

settings = get_project_settings()
settings.set("CONSENTCRAWL_AUDIT_LOG", {str(project / "audit.jsonl")!r})
settings.set("FEEDS", {{{str(project / "items.jsonl")!r}: {{"format": "jsonl"}}}})
process = CrawlerProcess(settings)
process.crawl(NoPurposeSpider, purpose="research")
process.start()
''')
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("SCRAPY_")}
    with LocalServer(site) as server:  # type: ignore[arg-type]
        env.update(http_proxy=server.proxy, PYTHONPATH=str(project))
        proc = subprocess.run([sys.executable, "run.py"], cwd=project, env=env, capture_output=True, text=True,
                              timeout=120)
        paths = [r.path for r in server.requests]
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "/u/1001" in paths, output
    decisions = [json.loads(line) for line in (project / "audit.jsonl").read_text().splitlines()]
    assert {d["purpose"] for d in decisions if "verdict" in d} == {"research"}
    items = [json.loads(line) for line in (project / "items.jsonl").read_text().splitlines()]
    assert [item["consentcrawl"]["purpose"] for item in items] == ["research"]


@pytest.mark.parametrize("how", ["--now", "settings"])
def test_a_purge_with_a_past_time_still_erases_who_has_withdrawn_by_the_clock(
    how: str, config_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """``purge --withdrawn`` judged withdrawals as of ``--now``/``CONSENTCRAWL_NOW``: a replay setting left in the
    project (or a ``--now`` in the past) kept the items of a person who withdrew after it, and the purge said done.
    A purge never judges before the clock, and says so on stderr."""
    from consentcrawl.cli import main

    auth = config_dir / "authorizations.yaml"
    append_withdrawal(auth, "1001")  # a minute ago
    feed = config_dir / "items.jsonl"
    feed.write_text('{"subject": "1001", "platform": "microblog"}\n{"subject": "1003", "platform": "microblog"}\n')
    past = "2026-06-01T00:00:00Z"
    if how == "settings":
        (config_dir / "leftover_settings.py").write_text(
            f"CONSENTCRAWL_PLATFORMS = {str(PLATFORMS)!r}\nCONSENTCRAWL_AUTHORIZATIONS = {str(auth)!r}\n"
            f"CONSENTCRAWL_NOW = {past!r}\n")
        monkeypatch.chdir(config_dir)
        where = ["--settings", "leftover_settings"]
    else:
        where = ["--platforms", str(PLATFORMS), "--authorizations", str(auth), "--now", past]
    log = config_dir / "audit.jsonl"
    assert main(["purge", "--withdrawn", *where, "--audit-log", str(log), str(feed)]) == 0
    assert [json.loads(line)["subject"] for line in feed.read_text().splitlines()] == ["1003"]
    assert "microblog:1001" in {json.loads(line).get("subject") for line in log.read_text().splitlines()}
    err = capsys.readouterr().err
    assert "--now/CONSENTCRAWL_NOW 2026-06-01T00:00:00+00:00 is before the clock" in err, err
