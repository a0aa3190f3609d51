"""URLs with a trailing slash on cached site signals: the site check with its slash shortcut against the same
check selecting every spelling (``PathKey._slash_blind`` off), side by side in one process (issue #13).

``python benchmarks/signals_cost_slash.py [--n 3000] [--runs 5]``: the sites of ``signals_cost.py``, ``n``
distinct URLs ending in ``/`` each decided twice (the request phase, then send time), for three engines in turn
each run (without the signals check, with it, with it but the shortcut off); GC frozen and disabled; medians.

``--instructions``: the same three, counted by valgrind's callgrind instead of timed: each variant runs in a
child process for 200 and then 1,200 URLs, and the difference over 1,000 URLs is the instructions per request
(start-up, imports and the files' parsing cancel out). Slow (a minute or two per child on a loaded machine).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import signals_cost as base  # noqa: E402

from consentcrawl.checks import default_checks  # noqa: E402
from consentcrawl.checks.signals import SiteSignalsCheck  # noqa: E402
from consentcrawl.consent.answers import NO_STORE  # noqa: E402
from consentcrawl.engine import PolicyEngine  # noqa: E402
from consentcrawl.signals import evaluate  # noqa: E402
from consentcrawl.terms.platforms import PlatformRegistry  # noqa: E402

VARIANTS = ("without", "shortcut", "every spelling")
SHORTCUT = evaluate.PathKey


class EverySpelling(SHORTCUT):  # type: ignore[misc,valid-type]
    """The key of every spelling selected, as before the shortcut."""

    def _slash_blind(self, *args: object) -> bool:
        return False


def engine(variant: str) -> PolicyEngine:
    evaluate.PathKey = EverySpelling if variant == "every spelling" else SHORTCUT  # type: ignore[misc]
    checks = [c for c in default_checks() if variant != "without" or not isinstance(c, SiteSignalsCheck)]
    return PolicyEngine(PlatformRegistry({}), "consentcrawl", checks=checks)


def child(variant: str, site: str, n: int) -> None:
    """One variant deciding ``n`` slashed URLs twice each (what ``--instructions`` counts)."""
    files = base.site_files()[site]
    decider = engine(variant)
    facts = [decider.facts(f"{base.ORIGIN}/b/0/{i}/", "search-indexing", base.NOW) for i in range(n)]
    gc.collect()
    gc.freeze()
    gc.disable()
    for f in facts:
        decider.decide(f, files.robots, NO_STORE, files)
        decider.decide(f, files.robots, NO_STORE, files)


def instructions(variant: str, site: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                              __file__, "--child", variant, site, str(n)], capture_output=True, text=True,
                             check=True)
    found = re.search(r"Collected : (\d+)", run.stderr)
    assert found is not None, run.stderr[-2000:]
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sites", default="", help="a comma-separated part of the site names (default: all)")
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    sites = {name: files for name, files in base.site_files().items()
             if not args.sites or any(part in name for part in args.sites.split(","))}
    if args.instructions:
        print(f"{'site':<32} {'without':>10} {'shortcut':>10} {'every':>10}   (instructions per request, two full "
              "decisions each, marginal over 1,000 URLs; signals check's own: shortcut / every spelling)")
        for name in sites:
            per = {v: (instructions(v, name, 1200) - instructions(v, name, 200)) / 1000 for v in VARIANTS}
            print(f"{name:<32} {per['without']:>10.0f} {per['shortcut']:>10.0f} {per['every spelling']:>10.0f}   "
                  f"(+{per['shortcut'] - per['without']:.0f} / +{per['every spelling'] - per['without']:.0f})")
        return 0
    gc.collect()
    gc.freeze()
    gc.disable()
    print(f"{'site':<32} {'without':>9} {'shortcut':>9} {'every':>9}   (µs per request, two full decisions each; "
          f"median of {args.runs} runs; the signals check's cost: shortcut / every spelling)")
    for name, files in sites.items():
        runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for run in range(args.runs):
            for variant in VARIANTS:  # in turn, so a change of load hits all three alike
                decider = engine(variant)
                base.per_request(decider, files, [f"{base.ORIGIN}/warm/{run}/{i}/" for i in range(200)])
                runs[variant].append(base.per_request(
                    decider, files, [f"{base.ORIGIN}/{variant[0]}/{run}/{i}/" for i in range(args.n)]))
        med = {v: statistics.median(x) for v, x in runs.items()}
        print(f"{name:<32} {med['without']:>9.2f} {med['shortcut']:>9.2f} {med['every spelling']:>9.2f}   "
              f"(+{med['shortcut'] - med['without']:.2f} / +{med['every spelling'] - med['without']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
