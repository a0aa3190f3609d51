"""URLs with a trailing slash on cached site signals: the site check with its shortcuts (a spelling no pattern of
the files can tell from the canonical path is not matched) against the same check selecting every spelling
(``PathKey._blind`` off), side by side in one process (issue #13).

``python benchmarks/signals_cost_slash.py [--n 3000] [--runs 5]``: the sites of ``signals_cost.py``, ``n``
distinct URLs ending in ``/`` each decided twice (the request phase, then send time), for three engines in turn
each run (without the signals check, with it, with it but the shortcut off); GC frozen and disabled; medians.

``--instructions``: counted by valgrind's callgrind instead of timed. Each variant runs in one child process per
tree that decides, for every site and URL shape, a warm-up of 100 URLs and then ``--count`` URLs (twice each);
callgrind dumps its counts at each ``time.sleep(0)`` the child calls around the measured loop
(``--dump-before=time_sleep``), so a part holds exactly that loop, without start-up, imports or the files'
parsing. ``--against TREE`` (repeatable) counts another tree beside this one in the same run, e.g. main's
(``git archive main | tar -x -C /tmp/main``): the child imports ``consentcrawl`` and ``benchmarks/signals_cost.py``
from the tree it measures. ``--shapes``: ``plain`` (``/b/0/1``), ``slash`` (``/b/0/1/``: the path as requested
and the canonical one), ``lenient`` (``/b/0%2F1``: the path as sent and a server's reading ``/b/0/1``); and on a
platform whose ids are case-insensitive (``case_sensitive: false``, the default in ``platforms.yaml``), where each
spelling's lower case is one too, ``case`` (``/b/User1`` and ``/b/user1``) and ``case-lenient`` (``/b/0%2F1``,
``/b/0/1`` and ``/b/0%2f1``). About two minutes per child (variants x trees; ``--jobs 2`` runs two at once).
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import signals_cost as base  # noqa: E402

from consentcrawl.checks import default_checks  # noqa: E402
from consentcrawl.checks.signals import SiteSignalsCheck  # noqa: E402
from consentcrawl.engine import PolicyEngine  # noqa: E402
from consentcrawl.signals import pathkey  # noqa: E402
from consentcrawl.terms.platforms import PlatformRegistry  # noqa: E402

VARIANTS = ("without", "shortcut", "every spelling")
SHORTCUT = pathkey.PathKey._blind


def engine(variant: str) -> PolicyEngine:
    """An engine for ``variant``; "every spelling" switches the shortcut off (for every key maker, until the next
    call: the variants are measured one after the other)."""
    pathkey.PathKey._blind = (lambda self, *args: False) if variant == "every spelling" else SHORTCUT
    checks = [c for c in default_checks() if variant != "without" or not isinstance(c, SiteSignalsCheck)]
    return PolicyEngine(PlatformRegistry({}), "consentcrawl", checks=checks)


#: the child of ``--instructions``: runs against any tree that has ``benchmarks/signals_cost.py``
CHILD = r"""
import gc, sys, time
tree, variant, sites, shapes, count = sys.argv[1], sys.argv[2], sys.argv[3].split("|"), sys.argv[4].split(","), \
    int(sys.argv[5])
sys.path[:0] = [tree, tree + "/benchmarks"]
import signals_cost as base
from consentcrawl.checks import default_checks
from consentcrawl.checks.signals import SiteSignalsCheck
from consentcrawl.consent.answers import NO_STORE
from consentcrawl.engine import PolicyEngine
from consentcrawl.signals import evaluate
from consentcrawl.terms.platforms import Platform, PlatformAuthorization, PlatformRegistry
assert evaluate.__file__.startswith(tree), evaluate.__file__
if variant == "every spelling":  # the class is evaluate's, wherever it is defined; older trees: the slash alone
    setattr(evaluate.PathKey, "_blind" if hasattr(evaluate.PathKey, "_blind") else "_slash_blind",
            lambda self, *args: False)
every = base.site_files()
SHAPES = {"plain": "/b/{i}", "slash": "/b/{i}/", "lenient": "/b/0%2F{i}", "case": "/b/User{i}",
          "case-lenient": "/b/0%2F{i}"}
#: the site as a platform whose ids are case-insensitive (the default): a request has its lower-case spelling too
PLATFORM = PlatformRegistry({"bench": Platform("bench", frozenset({"site.example"}), PlatformAuthorization(
    frozenset({"search-indexing"}), "bench agreement"))})
gc.collect()
gc.freeze()
gc.disable()
for site in sites:
    files = every[site]
    for shape in shapes:
        checks = [c for c in default_checks() if variant != "without" or not isinstance(c, SiteSignalsCheck)]
        platforms = PLATFORM if shape.startswith("case") else PlatformRegistry({})
        engine = PolicyEngine(platforms, "consentcrawl", checks=checks)
        urls = [base.ORIGIN + SHAPES[shape].format(i=i) for i in range(100 + count)]
        facts = [engine.facts(u, "search-indexing", base.NOW) for u in urls]
        for f in facts[:100]:
            engine.decide(f, files.robots, NO_STORE, files)
            engine.decide(f, files.robots, NO_STORE, files)
        time.sleep(0)
        for f in facts[100:]:
            engine.decide(f, files.robots, NO_STORE, files)
            engine.decide(f, files.robots, NO_STORE, files)
        time.sleep(0)
"""


def instructions(tree: str, variant: str, sites: list[str], shapes: list[str], count: int) -> list[float]:
    """Instructions per request (two full decisions) of ``variant`` in ``tree``, for each site and shape in turn."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        run = subprocess.run(["nice", "valgrind", "--tool=callgrind", "--dump-before=time_sleep",
                              f"--callgrind-out-file={out}", sys.executable, "-c", CHILD, tree, variant,
                              "|".join(sites), ",".join(shapes), str(count)], capture_output=True, text=True,
                             env={**os.environ, "PYTHONHASHSEED": "0"})  # every child the same set layout
        assert run.returncode == 0, run.stderr[-3000:]
        parts = []
        for i in range(1, 2 * len(sites) * len(shapes) + 1):
            found = re.search(r"^totals: (\d+)", Path(f"{out}.{i}").read_text(), re.M)
            assert found is not None, i
            parts.append(int(found.group(1)))
    return [parts[i] / count for i in range(1, len(parts), 2)]  # each dump before a sleep: the measured loops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sites", default="", help="a comma-separated part of the site names (default: all)")
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind")
    parser.add_argument("--against", action="append", default=[], help="another tree to count beside this one")
    parser.add_argument("--shapes", default="plain,slash,lenient", help="URL shapes for --instructions")
    parser.add_argument("--variants", default="without,shortcut", help="variants for --instructions")
    parser.add_argument("--count", type=int, default=1000, help="URLs per measured loop of --instructions")
    parser.add_argument("--jobs", type=int, default=1, help="children of --instructions run at once")
    args = parser.parse_args(argv)
    sites = {name: files for name, files in base.site_files().items()
             if not args.sites or any(part in name for part in args.sites.split(","))}
    if args.instructions:
        trees = [str(HERE.parent), *(str(Path(t).resolve()) for t in args.against)]
        shapes, variants = args.shapes.split(","), args.variants.split(",")
        runs = [(tree, variant) for tree in trees for variant in variants]
        with ThreadPoolExecutor(args.jobs) as pool:
            counted = dict(zip(runs, pool.map(lambda r: instructions(*r, list(sites), shapes, args.count), runs),
                               strict=True))
        print("instructions per request (two full decisions), the measured loop alone; the signals check's own "
              "cost is a variant minus `without` of the same tree")
        print(f"{'site':<30} {'shape':<8} " + " ".join(f"{Path(t).name[:10] + ':' + v[:8]:>20}" for t, v in runs))
        for i, (name, shape) in enumerate((n, s) for n in sites for s in shapes):
            print(f"{name:<30} {shape:<8} " + " ".join(f"{counted[r][i]:>20.0f}" for r in runs))
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
