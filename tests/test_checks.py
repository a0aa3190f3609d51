"""Checks as plug-ins: a check of your own, named in CONSENTCRAWL_CHECKS, decides a real crawl."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.checks import DEFAULT_CHECKS, CheckContext, Outcome, default_checks
from consentcrawl.config import ConsentConfig, build_engine
from consentcrawl.consent.store import MemoryStore
from consentcrawl.decision import Evidence, Stage, Verdict
from consentcrawl.errors import ConfigError
from consentcrawl.robots.fetch import from_response
from consentcrawl.terms.platforms import PlatformRegistry
from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer
from spiders.microblog import MicroblogSpider
from tests.conftest import PLATFORMS, ROOT, consent_settings, run_crawl
from tests.deciding import Engine
from tests.example_check import OptOutCheck
from tests.test_crawl_e2e import live_research_subjects, requested_subjects
from tests.test_policy import NOW, RECORDS, ROBOTS, make_platform

EXAMPLE = "tests.example_check.OptOutCheck"
#: the built-ins with the example inserted before the person's records: docs/checks.md says to write it so
WITH_EXAMPLE = [*DEFAULT_CHECKS[:-1], EXAMPLE, DEFAULT_CHECKS[-1]]


def test_the_worked_example_in_the_docs_is_the_check_these_tests_run() -> None:
    text = (ROOT / "docs" / "checks.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert (ROOT / "tests" / "example_check.py").read_text(encoding="utf-8") in blocks
    assert any(EXAMPLE in block or ("OptOutCheck" in block and "CONSENTCRAWL_CHECKS" in block) for block in blocks)


@deferred_f_from_coro_f
async def test_a_check_plugged_in_by_the_setting_denies_a_real_crawls_requests(
        server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    allowed = live_research_subjects()
    opted_out = sorted(allowed)[:3]
    settings = consent_settings(tmp_path, CONSENTCRAWL_CHECKS=WITH_EXAMPLE,
                                OPT_OUT_SUBJECTS=[f"microblog:{s}" for s in opted_out])
    result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)

    # the server never saw the opted-out people; everyone else authorized was fetched as before
    assert requested_subjects(server) == allowed - set(opted_out)
    refused = set(MicroblogSite().nobot_subjects)  # #nobot in their bio: fetched, refused on the page, not collected
    assert {item["subject"] for item in result.items} == allowed - set(opted_out) - refused
    # the check's reason and evidence are in the audit log, and counted
    denies = [e for e in result.audit if e["reason"] == "subject.opted-out"]
    assert {e["subject"] for e in denies} == set(opted_out)
    for entry in denies:
        assert entry["verdict"] == "deny" and entry["stage"] == "subject"
        assert {"kind": "opt-out-list", "source": "OPT_OUT_SUBJECTS",
                "subject": f"microblog:{entry['subject']}"} in entry["evidence"]
    assert result.stats["consentcrawl/denied/subject/opted-out"] == len(denies)


def _check_in(project: Path, server: LocalServer, *people: str) -> dict[str, tuple[int, str]]:
    """``consentcrawl check --settings mysettings --json`` of each person's profile, run as a user runs it: the
    installed console script (no ``-m``, so no working directory on ``sys.path``) from the project's directory."""
    command = Path(sys.executable).parent / "consentcrawl"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k != "PYTHONPATH"}
    env["http_proxy"] = server.proxy
    outcomes = {}
    for person in people:
        proc = subprocess.run([str(command), "check", f"http://microblog.example/u/{person}", "--purpose", "research",
                               "--settings", "mysettings", "--json"], cwd=project, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode in (0, 1), proc.stderr
        outcomes[person] = (proc.returncode, json.loads(proc.stdout)["reason"])
    return outcomes


def test_consentcrawl_check_builds_a_projects_own_check_as_the_crawl_does(server: LocalServer, tmp_path: Path) -> None:
    """``consentcrawl check``, run as a user runs it (the installed command, from the project's directory, whose
    modules are not on any path of ours), imports the project's check and builds it with ``from_crawler``: it
    reads its own setting and decides as the crawl above does, not with an empty list."""
    (tmp_path / "mychecks.py").write_text((ROOT / "tests" / "example_check.py").read_text(encoding="utf-8"))
    (tmp_path / "mysettings.py").write_text(
        "from consentcrawl.checks import DEFAULT_CHECKS\n"
        "CONSENTCRAWL_CHECKS = [*DEFAULT_CHECKS[:-1], 'mychecks.OptOutCheck', DEFAULT_CHECKS[-1]]\n"
        "OPT_OUT_SUBJECTS = ['microblog:1001']\n"
        f"CONSENTCRAWL_PLATFORMS = {str(PLATFORMS)!r}\n"
        f"CONSENTCRAWL_AUTHORIZATIONS = {str(ROOT / 'settings' / 'authorizations.yaml')!r}\n")
    assert _check_in(tmp_path, server, "1001", "1005") == {"1001": (1, "subject.opted-out"),
                                                             "1005": (0, "subject.authorized")}
    assert "1001" not in requested_subjects(server)  # check fetches no page without --fetch: robots.txt only


SETTING_STORE = """
from datetime import datetime, timezone

from consentcrawl import AuthorizationRecord


class SettingStore:
    \"\"\"Grants research to the people its own setting lists; it cannot be built without the crawler.\"\"\"

    source = "mystore.SettingStore"
    version = 1

    def __init__(self, people):
        self._people = set(people)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.settings.getlist("MY_CONSENTING_PEOPLE"))

    def lookup(self, platform, subject):
        granted = datetime(2026, 1, 1, tzinfo=timezone.utc)
        return (AuthorizationRecord(platform, subject, frozenset({"research"}), granted, evidence="mine"),) \\
            if subject in self._people else ()
"""


def test_consentcrawl_check_builds_a_projects_store_with_from_crawler_as_the_crawl_does(
        server: LocalServer, tmp_path: Path) -> None:
    """A store named by import path whose ``from_crawler`` reads the project's settings (and that has no other way
    to be built) answers ``consentcrawl check`` as it answers the crawl: it was built with no arguments and failed."""
    (tmp_path / "mystore.py").write_text(SETTING_STORE)
    (tmp_path / "mysettings.py").write_text(
        "CONSENTCRAWL_AUTHORIZATIONS = 'mystore.SettingStore'\n"
        "MY_CONSENTING_PEOPLE = ['1005']\n"
        f"CONSENTCRAWL_PLATFORMS = {str(PLATFORMS)!r}\n")
    assert _check_in(tmp_path, server, "1001", "1005") == {"1001": (1, "subject.no-authorization"),
                                                             "1005": (0, "subject.authorized")}


def _engine(checks: list[Any]) -> Engine:
    return Engine(PlatformRegistry({"microblog": make_platform()}), MemoryStore(RECORDS), "consentcrawl",
                        checks=checks)


class Counting:
    """A check that passes and counts how often it ran; cacheable as the test says."""

    def __init__(self, cacheable: bool | None) -> None:
        self.calls = 0
        if cacheable is not None:
            self.cacheable = cacheable

    def check(self, ctx: CheckContext) -> Outcome | None:
        self.calls += 1
        return None


# cacheable: the link's decision is reused for the URL; the item is decided on its own (a check that is not built in
# may decide a URL and its person differently), then remembered too
@pytest.mark.parametrize(("cacheable", "runs"), [(None, 4), (False, 4), (True, 2)])
def test_a_check_that_is_not_cacheable_is_run_for_every_decision(cacheable: bool | None, runs: int) -> None:
    counting = Counting(cacheable)
    builtins = default_checks()
    engine = _engine([*builtins[:-1], counting, builtins[-1]])
    url = "http://microblog.example/u/1001"
    engine.decide_link(url, "research", NOW)
    engine.decide_consent(engine.facts(url, "research", NOW))
    for _ in range(2):
        assert engine.decide_subject("microblog", "1001", "research", NOW).reason == "subject.authorized"
    assert counting.calls == runs


def test_a_check_can_deny_items_and_urls_alike() -> None:
    builtins = default_checks()
    engine = _engine([*builtins[:-1], OptOutCheck(["microblog:1001"]), builtins[-1]])
    item = engine.decide_subject("microblog", "1001", "research", NOW)
    link, _, _ = engine.decide_link("http://microblog.example/u/1001", "research", NOW)
    for decision in (item, link):
        assert (decision.verdict, decision.stage, decision.reason, decision.subject) == (
            Verdict.DENY, Stage.SUBJECT, "subject.opted-out", "1001")
    assert engine.decide_subject("microblog", "1003", "research", NOW).reason == "subject.revoked"


@pytest.mark.parametrize("value", ["consentcrawl.checks.nowhere.Check", "tests.example_check.NoSuchCheck",
                                   "OptOutCheck", "tests.example_check.Evidence", []])
def test_a_bad_import_path_is_a_config_error_naming_the_setting(value: Any) -> None:
    settings = {"CONSENTCRAWL_PURPOSE": "research", "CONSENTCRAWL_PLATFORMS": str(PLATFORMS),
                "CONSENTCRAWL_CHECKS": value}
    with pytest.raises(ConfigError) as error:
        ConsentConfig.from_settings(settings)
    assert error.value.source == "CONSENTCRAWL_CHECKS"


def test_the_setting_takes_a_comma_separated_string_and_without_a_crawler_checks_are_built_plainly() -> None:
    settings = {"CONSENTCRAWL_PURPOSE": "research", "CONSENTCRAWL_PLATFORMS": str(PLATFORMS),
                "CONSENTCRAWL_CHECKS": ",".join(WITH_EXAMPLE)}
    config = ConsentConfig.from_settings(settings)
    engine = build_engine(config)  # no crawler: each class called with no arguments
    assert [type(c).__name__ for c in engine.checks][-2:] == ["OptOutCheck", "SubjectRecordsCheck"]
    assert engine.checks[-2].opted_out == frozenset()


class SiteDeny:
    """A site check that denies every URL on the platform: placed amid the consent checks, it runs in the full
    decision at its place in the list, and not at all in consent decisions."""

    site = True
    cacheable = True

    def check(self, ctx: CheckContext) -> Outcome | None:
        if ctx.platform is None:
            return None
        ctx.cite(Evidence("site-test", "test", {}))
        return Outcome.deny("terms.site-test")


def test_a_site_check_runs_in_list_order_and_only_in_full_decisions() -> None:
    builtins = default_checks()
    engine = _engine([*builtins[:5], SiteDeny(), *builtins[5:]])  # after the platform's terms
    robots = from_response("http://microblog.example/robots.txt", 200, ROBOTS, NOW)
    facts = engine.facts("http://microblog.example/u/1001", "research", NOW)
    assert engine.decide_consent(facts).reason == "subject.authorized"
    for _ in range(2):  # the second time the consent part is remembered
        full = engine.decide(facts, robots)
        assert (full.stage, full.reason, full.subject) == (Stage.TERMS, "terms.site-test", "1001")
        assert [e.kind for e in full.evidence] == ["robots.txt", "platform-authorization", "site-test"]
    off = engine.decide(engine.facts("http://other.example/", "research", NOW),
                        from_response("http://other.example/robots.txt", 404, b"", NOW))
    assert off.reason == "terms.off-platform"  # concluded before the site check's place


def test_a_list_where_no_check_concludes_denies() -> None:
    engine = _engine([Counting(True)])
    decision = engine.decide_subject("microblog", "1001", "research", NOW)
    assert (decision.verdict, decision.reason) == (Verdict.DENY, "error.internal")
    assert decision.evidence[-1].detail["error"] == "NoConclusion"


class GuardianCheck:
    """A check that also reads another person's records: 1001's page needs 1003 (say, a guardian) to be live."""

    cacheable = True

    def __init__(self, others: Any = ("1003",)) -> None:
        self.others = others

    def check(self, ctx: CheckContext) -> Outcome | None:
        if ctx.subject != "1001":
            return None
        found = [ctx.records("microblog", other) for other in self.others]
        return None if all(found) else Outcome.deny("subject.no-guardian")


def test_a_check_that_reads_another_persons_records_gets_them_looked_up() -> None:
    calls: list[str] = []

    class Counting(MemoryStore):
        def lookup(self, platform: str, subject: str) -> Any:
            calls.append(subject)
            return super().lookup(platform, subject)

    builtins = default_checks()
    engine = Engine(PlatformRegistry({"microblog": make_platform()}), Counting(RECORDS), "consentcrawl",
                    checks=[*builtins[:-1], GuardianCheck(), builtins[-1]])
    assert engine.decide_subject("microblog", "1001", "research", NOW).reason == "subject.authorized"
    assert calls == ["1001", "1003"]
    assert engine.decide_subject("microblog", "1001", "research", NOW).reason == "subject.authorized"
    assert calls == ["1001", "1003"]  # remembered at the store's version, with both people's records


def test_a_decision_may_look_up_only_so_many_people() -> None:
    from consentcrawl.deciding import MAX_PEOPLE

    builtins = default_checks()
    everyone = GuardianCheck(others=[str(2000 + i) for i in range(MAX_PEOPLE + 5)])
    engine = Engine(PlatformRegistry({"microblog": make_platform()}), MemoryStore(RECORDS), "consentcrawl",
                    checks=[*builtins[:-1], everyone, builtins[-1]])
    decision = engine.decide_subject("microblog", "1001", "research", NOW)
    assert decision.reason == "error.store-unavailable"
    assert "more people than one decision may look up" in decision.evidence[-1].detail["message"]
