"""What a crawl imports holds no demo and no HTTP server: the demo platform is a package of its own
(``consentcrawl_demo``), which only the CLI's ``demo`` command imports, when it runs."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer
from tests import import_probe
from tests.conftest import AUTHORIZATIONS, PLATFORMS, ROOT

PACKAGE = ROOT / "consentcrawl"
#: the one place the runtime package may import the demo: inside the CLI's ``demo`` command
ALLOWED = {("cli.py", "cmd_demo")}


def demo_imports(path: Path) -> list[tuple[str, str]]:
    """(enclosing function, module) of every import of ``consentcrawl_demo`` in a file."""
    found = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name)
                continue
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                names = [child.module or ""]
            found.extend((function, n) for n in names if n.split(".")[0] == "consentcrawl_demo")
            visit(child, function)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


def test_the_package_imports_the_demo_only_in_the_demo_command() -> None:
    seen = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for function, module in demo_imports(path):
            where = (path.relative_to(PACKAGE).as_posix(), function)
            assert where in ALLOWED, f"{where[0]} imports {module} (in {function or 'the module body'})"
            seen.add(where)
    assert seen == ALLOWED  # the demo command still reaches the demo
    assert not (PACKAGE / "demo").exists()


def probe(*args: str, proxy: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(http_proxy=proxy, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "import_probe.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    return json.loads(line.removeprefix("PROBE "))  # type: ignore[no-any-return]


def test_a_crawl_and_a_check_load_no_demo_module_and_no_http_server(tmp_path: Path) -> None:
    settings = {
        "CONSENTCRAWL_PLATFORMS": str(PLATFORMS),
        "CONSENTCRAWL_AUTHORIZATIONS": str(AUTHORIZATIONS),
        "CONSENTCRAWL_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "CONSENTCRAWL_LOGSTATS_INTERVAL": 0,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "WARNING",
    }
    with LocalServer(MicroblogSite(n_profiles=30)) as server:
        crawled = probe("crawl", json.dumps(settings), proxy=server.proxy)
        checked = probe("check", "http://microblog.example/u/1001", "--purpose", "research", "--platforms",
                        str(PLATFORMS), "--authorizations", str(AUTHORIZATIONS), proxy=server.proxy)
        served = len(server.requests)
    assert crawled["allowed"] > 5 and served > 5  # a real crawl ran
    assert checked["exit"] in (0, 1)
    for result in (crawled, checked):
        assert result["demo_modules"] == []
        assert result["server_classes"] == []


def test_the_probe_sees_a_server_when_there_is_one() -> None:
    """This process imported the demo server (for the test above): the probe must report it."""
    assert "consentcrawl_demo.server" in import_probe.demo_modules()
    assert "consentcrawl_demo.wire.ServerSocket" in import_probe.server_classes()


#: "about 400 lines" (issue 12): past this a module has usually taken on a second job; split it by job
MODULE_LINES = 410


def test_no_runtime_module_is_longer_than_about_400_lines() -> None:
    long = {str(path.relative_to(PACKAGE)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_LINES}
    assert long == {}, f"split these by job: {long}"


def test_the_public_api_is_one_screen_and_names_what_a_user_needs() -> None:
    """Issue #12: the add-on, the spider base, the decision and the reason codes, the store protocol and every
    built-in store (the one per URL scheme, and in memory), the record type, the errors, the meta-key constants,
    the version; the package's ``__init__`` fits on one screen, and each name it exports is there."""
    import consentcrawl
    from consentcrawl.consent.opening import open_store
    from consentcrawl.terms.platforms import PlatformRegistry

    assert len((PACKAGE / "__init__.py").read_text(encoding="utf-8").splitlines()) <= 60
    needed = {"Addon", "ConsentSpider", "Decision", "Verdict", "Stage", "Evidence", "reasons",
              "AuthorizationStore", "SyncAuthorizationStore", "as_async_store", "AuthorizationRecord",
              "MemoryStore", "FileStore", "SQLiteStore", "HTTPConsentStore", "RedisStore",
              "ConsentError", "ConfigError", "StoreUnavailable", "AuditUnavailable", "ConsentDenied", "ConsentDropItem",
              "META_SUBJECT", "META_DECISION", "META_NOFOLLOW", "__version__"}
    assert needed <= set(consentcrawl.__all__)
    assert all(hasattr(consentcrawl, name) for name in consentcrawl.__all__)
    assert consentcrawl.reasons.SUBJECT_REFUSED_ON_PAGE == "subject.refused-on-page"
    # each built-in store the setting selects by scheme is the class the API names
    registry = PlatformRegistry({})
    assert type(open_store("http://127.0.0.1:9/", registry)) is consentcrawl.HTTPConsentStore
    assert type(open_store("redis://127.0.0.1:9/0", registry)) is consentcrawl.RedisStore


def test_every_stat_the_package_writes_is_in_docs_stats() -> None:
    """docs/stats.md is the reference: each ``consentcrawl/...`` stat name written in the package is listed there
    (a name built at run time by its fixed part and ``<...>`` for the rest)."""
    import re

    documented = set(re.findall(r"`(consentcrawl/[^`]*)`", (ROOT / "docs" / "stats.md").read_text(encoding="utf-8")))
    written: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for name in re.findall(r"""f?["'](consentcrawl/[^"']*)["']""", path.read_text(encoding="utf-8")):
            if name.endswith("/") or name.startswith("consentcrawl/{"):
                continue  # a prefix joined to a documented stage/reason, or the robots/signals fetcher's own names
            written.add(re.sub(r"\{[^}]*\}", "<>", name))
    for kind in ("robots", "signals"):  # scrapyfetch.py's f"consentcrawl/{stat}/...", stat being one of these
        written |= {f"consentcrawl/{kind}/request_count", f"consentcrawl/{kind}/response_status_count/<>"}
    patterns = {name: re.escape(name).replace("<>", "(?:<[^>]+>|[a-z_]+)") for name in written}
    undocumented = {name for name, pattern in patterns.items() if not any(re.fullmatch(pattern, d) for d in documented)}
    assert undocumented == set(), undocumented


def test_every_evidence_kind_the_package_cites_is_in_the_reference() -> None:
    """docs/reasons.md's evidence table (and docs/signals.md for the signals' own) names each kind of evidence a
    decision can cite."""
    import re

    docs = "".join((ROOT / "docs" / name).read_text(encoding="utf-8") for name in ("reasons.md", "signals.md"))
    documented = set(re.findall(r"`([a-zA-Z.<>_-]+)`", docs))
    cited = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        cited |= set(re.findall(r"""Evidence\(\s*(?:kind=)?["']([a-zA-Z._-]+)["']""", text))
        cited |= {f"{prefix}<name>" for prefix in re.findall(r"""Evidence\(\s*(?:kind=)?f["']([a-z]+\.)\{""", text)}
    assert cited >= {"robots.txt", "signal.<name>", "refusal-on-page"}  # the scan finds what it looks for
    assert cited - documented == set()
