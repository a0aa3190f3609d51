"""The core stays pure: the checks, the cache, the engine and URL facts import no Scrapy, do no I/O and read no
clock (the adapters pass in robots.txt, the store's answers and the time), and never call a store."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from consentcrawl.errors import StoreUnavailable
from consentcrawl.terms.platforms import PlatformRegistry

PACKAGE = Path(__file__).resolve().parent.parent / "consentcrawl"
CORE = sorted([*PACKAGE.joinpath("checks").glob("*.py"), *PACKAGE.joinpath("refusals").glob("*.py"),
               PACKAGE / "cache.py", PACKAGE / "engine.py",
               PACKAGE / "facts.py", PACKAGE / "policy.py", PACKAGE / "consent" / "answers.py",
               PACKAGE / "provenance.py", PACKAGE / "purge" / "denied.py", PACKAGE / "purge" / "media_names.py"])
FORBIDDEN_MODULES = {"scrapy", "twisted", "httpx", "socket", "time", "os", "io", "pathlib", "sqlite3", "random",
                     "asyncio", "threading", "subprocess", "urllib.request"}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "open", "time", "monotonic", "perf_counter", "lookup"}


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_a_core_module_imports_no_adapter_and_reads_no_clock(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_MODULES and name not in FORBIDDEN_MODULES, (path, name)
        assert not isinstance(node, (ast.AsyncFunctionDef, ast.Await)), (path, node.lineno, "waits for something")
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            assert called not in FORBIDDEN_CALLS, (path, node.lineno, called)


def test_the_engine_and_its_checks_hold_no_store() -> None:
    """No store object reaches the core: not in the engine, not in a check's context."""
    from consentcrawl.checks.base import CheckContext
    from consentcrawl.engine import PolicyEngine

    assert "store" not in CheckContext.__slots__ and "answers" in CheckContext.__slots__
    assert "store" not in inspect.signature(PolicyEngine).parameters
    assert "store" not in vars(PolicyEngine(PlatformRegistry({}), "consentcrawl"))


def test_the_engine_decides_on_the_records_it_is_given() -> None:
    """Given the records, the engine decides; not given them, it says whose it needs instead of fetching them."""
    from consentcrawl.consent.answers import NO_STORE, RecordsNeeded, StoreAnswers
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.robots.fetch import from_response
    from consentcrawl.signals.evaluate import SiteFiles
    from tests.test_policy import NOW, RECORDS, ROBOTS, make_platform

    engine = PolicyEngine(PlatformRegistry({"microblog": make_platform()}), "consentcrawl")
    facts = engine.facts("http://microblog.example/u/1001", "research", NOW)
    robots = from_response("http://microblog.example/robots.txt", 200, ROBOTS, NOW)
    files = SiteFiles(robots)
    def decide(f, r, fs, a):  # type: ignore[no-untyped-def]
        return engine.decide(f, r, a, fs)

    with pytest.raises(RecordsNeeded) as need:
        decide(facts, robots, files, StoreAnswers(1, "given"))
    assert (need.value.platform, need.value.subject) == ("microblog", "1001")
    records = tuple(r for r in RECORDS if r.subject == "1001")
    decision = decide(facts, robots, files, StoreAnswers(1, "given", {("microblog", "1001"): records}))
    assert decision.reason == "subject.authorized"
    assert decide(facts, robots, files, StoreAnswers(1, "given", {("microblog", "1001"): ()})).reason == \
        "subject.authorized"  # remembered at version 1: equal versions promise equal answers
    assert decide(facts, robots, files, StoreAnswers(2, "given", {("microblog", "1001"): ()})).reason == \
        "subject.no-authorization"
    failed = StoreAnswers(3, "given", {("microblog", "1001"): StoreUnavailable("down")})
    assert decide(facts, robots, files, failed).reason == "error.store-unavailable"
    assert decide(facts, robots, files, NO_STORE).reason == "subject.no-authorization"
    terms = engine.facts("http://microblog.example/people", "research", NOW)
    assert decide(terms, robots, files, StoreAnswers(4, "given")).reason == "subject.not-a-profile"
