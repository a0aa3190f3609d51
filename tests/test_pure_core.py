"""The core stays pure: the checks, the cache, the engine and URL facts import no Scrapy, do no I/O and read no
clock (the adapters pass in robots.txt, the store and the time)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "consentcrawl"
CORE = sorted([*PACKAGE.joinpath("checks").glob("*.py"), PACKAGE / "cache.py", PACKAGE / "engine.py",
               PACKAGE / "facts.py", PACKAGE / "policy.py"])
FORBIDDEN_MODULES = {"scrapy", "twisted", "httpx", "socket", "time", "os", "io", "pathlib", "sqlite3", "random",
                     "asyncio", "threading", "subprocess", "urllib.request"}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "open", "time", "monotonic", "perf_counter"}


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
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            assert called not in FORBIDDEN_CALLS, (path, node.lineno, called)
