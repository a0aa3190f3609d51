"""Run Google's robots.txt conformance cases through our matcher, Protego and (when installed) robotspy.

Usage: ``python benchmarks/robots_conformance.py [CASES_JSON] [--failures]``. The cases default to
``../shared/conformance/google_robots_cases.json`` next to the repository; when the file is absent the script says
so and exits 0, because the project must work without ``../shared``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from consentcrawl.robots.rules import RobotsRules  # noqa: E402 - after the path set-up above

DEFAULT_CASES = ROOT.parent / "shared" / "conformance" / "google_robots_cases.json"

#: a parser under test: (robots_txt, user_agent, url) -> allowed
Checker = Callable[[str, str, str], bool]


def path_of(url: str) -> str:
    """Path and query of ``url`` as the reference parser takes them (no fragment; ``/`` when empty)."""
    parts = urlsplit(url)
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def consentcrawl_check(robots_txt: str, user_agent: str, url: str) -> bool:
    return RobotsRules.parse(robots_txt.encode("utf-8")).allowed(path_of(url), user_agent)


def protego_check(robots_txt: str, user_agent: str, url: str) -> bool:
    from protego import Protego

    return bool(Protego.parse(robots_txt).can_fetch(url, user_agent))


def robotspy_check(robots_txt: str, user_agent: str, url: str) -> bool:
    import robots

    parser = robots.RobotsParser.from_string(robots_txt)
    return bool(parser.can_fetch(user_agent, url))


def parsers() -> list[tuple[str, Checker]]:
    """The parsers to compare; robotspy only when it can be imported (it is optional)."""
    found: list[tuple[str, Checker]] = [("consentcrawl", consentcrawl_check)]
    try:
        import protego  # noqa: F401
    except ImportError:
        pass
    else:
        found.append(("protego", protego_check))
    try:
        import robots  # noqa: F401
    except ImportError:
        pass
    else:
        found.append(("robotspy", robotspy_check))
    return found


def run(cases: list[dict], check: Checker) -> tuple[int, int, list[str]]:
    """(passed, passed among the RFC 9309 cases, names of failing cases). A parser that raises fails the case."""
    passed = rfc_passed = 0
    failures: list[str] = []
    for case in cases:
        try:
            ok = check(case["robots_txt"], case["user_agent"], case["url"]) == case["expected_allowed"]
        except Exception:  # noqa: BLE001 - a crash is a failed case, not a failed benchmark
            ok = False
        if ok:
            passed += 1
            rfc_passed += not case["google_only"]
        else:
            failures.append(case["name"])
    return passed, rfc_passed, failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="?", type=Path, default=DEFAULT_CASES, help="google_robots_cases.json")
    ap.add_argument("--failures", action="store_true", help="list the failing case names per parser")
    args = ap.parse_args(argv)
    if not args.cases.is_file():
        print(f"skipped: {args.cases} not found")
        return 0
    cases = json.loads(args.cases.read_text(encoding="utf-8"))
    rfc_total = sum(not c["google_only"] for c in cases)
    for name, check in parsers():
        passed, rfc_passed, failures = run(cases, check)
        print(f"{name}: {passed}/{len(cases)} (rfc {rfc_passed}/{rfc_total})")
        if args.failures:
            for failure in failures:
                print(f"  {failure}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # piped into head: not an error
        sys.stderr.close()
        sys.exit(0)
