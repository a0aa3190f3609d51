"""What the site-level operator signals add to a full decision, on cached site signals (issue #13: at most 5 µs per
request over none).

``python benchmarks/signals_cost.py [--n 5000]`` decides ``n`` distinct URLs of one origin off any platform (the
case where the signals decide) twice each, as a crawl does (the request phase, then send time), with the origin's
robots.txt and signal files fetched already, and compares the median per request with and without the signals
check in the list. Sites: one that publishes only robots.txt lines every page shares (``Content-Signal``: one
memo entry serves the origin), and one for each path-scoped statement: a tdmrep.json, robots.txt ``Content-Usage``
rules, an RSL licence named by robots.txt ``License:`` with ``<content url>`` scopes, ai.txt rules. Where the memo
is keyed by what a path selects (the entry, the rule, the ``<content>``), a new URL is a lookup; where it is keyed
by the URL, a URL's first decision evaluates every signal. ``--slash``: every URL ends in ``/`` (``/b/0/1/``), so
each request has two spellings, the path as requested and the canonical one, and the signals read both.
``--lenient``: every URL holds an escaped slash (``/b/0%2F1``), so each request has two spellings, the path as sent
and the reading of a server that decodes it (``/b/0/1``), and the signals read both.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

from consentcrawl.checks import default_checks  # noqa: E402
from consentcrawl.checks.signals import SiteSignalsCheck  # noqa: E402
from consentcrawl.consent.answers import NO_STORE  # noqa: E402
from consentcrawl.engine import PolicyEngine  # noqa: E402
from consentcrawl.robots.fetch import from_response  # noqa: E402
from consentcrawl.signals.evaluate import SiteFiles  # noqa: E402
from consentcrawl.signals.fetch import from_response as file_response  # noqa: E402
from consentcrawl.terms.platforms import PlatformRegistry  # noqa: E402

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
ORIGIN = "http://site.example"


def per_request(engine: PolicyEngine, files: SiteFiles, urls: list[str]) -> float:
    """Median µs of one request's two full decisions."""
    clock = time.perf_counter_ns
    samples = []
    for url in urls:
        facts = engine.facts(url, "search-indexing", NOW)
        t0 = clock()
        engine.decide(facts, files.robots, NO_STORE, files)
        engine.decide(facts, files.robots, NO_STORE, files)
        samples.append(clock() - t0)
    return statistics.median(samples) / 1000


def robots(group: bytes, before: bytes = b"") -> Any:
    """A fetched robots.txt: ``before`` any group, then one group for every crawler."""
    return from_response(ORIGIN + "/robots.txt", 200, before + b"User-agent: *\n" + group, NOW)


def site_files() -> dict[str, SiteFiles]:
    """The benchmark's sites: one whose statements every page shares, and one per path-scoped statement."""
    no_tdmrep = file_response("tdmrep", ORIGIN + "/.well-known/tdmrep.json", 404, b"", NOW)
    licence = (b'<rsl xmlns="https://rslstandard.org/rsl"><content url="/private/*"><license><prohibits type="usage">'
               b'search</prohibits></license></content><content url="/"><license><permits type="usage">search'
               b'</permits></license></content></rsl>')
    return {
        "Content-Signal in robots.txt": SiteFiles(robots(b"Content-Signal: search=yes, ai-train=no\nAllow: /\n"),
                                                  no_tdmrep),
        "path-scoped tdmrep.json": SiteFiles(robots(b"Allow: /\n"),
                                             file_response("tdmrep", ORIGIN + "/.well-known/tdmrep.json", 200,
                                                           b'[{"location": "/private/*", "tdm-reservation": 1},'
                                                           b' {"location": "/", "tdm-reservation": 0}]', NOW)),
        "Content-Usage rules": SiteFiles(robots(b"Allow: /\nContent-Usage: / search=y\n"
                                                b"Content-Usage: /private/ search=n\n"), no_tdmrep),
        "RSL licence (License:)": SiteFiles(
            robots(b"Allow: /\n", f"License: {ORIGIN}/license.xml\n".encode()), no_tdmrep,
            licences={ORIGIN + "/license.xml": file_response("rsl", ORIGIN + "/license.xml", 200, licence, NOW)}),
        "ai.txt rules": SiteFiles(robots(b"Allow: /\n"), no_tdmrep, file_response(
            "ai-txt", ORIGIN + "/ai.txt", 200, b"User-agent: *\nDisallow: /private/\nDisallow: *.jpg\n", NOW)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--slash", action="store_true", help="every URL ends in a slash")
    parser.add_argument("--lenient", action="store_true", help="every URL holds an escaped slash")
    args = parser.parse_args(argv)
    sites = site_files()
    end = "/" if args.slash else ""
    mid = "%2F" if args.lenient else "/"
    gc.collect()
    gc.freeze()  # everything built so far is never scanned again
    gc.disable()
    print(f"{'site':<32} {'without':>9} {'with':>9} {'added':>9}   (µs per request, two full decisions each; median "
          f"of {args.runs} runs, each run's added in brackets)")
    for name, files in sites.items():
        runs = []
        for run in range(args.runs):  # new engines each run: every memo starts empty
            without = PolicyEngine(PlatformRegistry({}), "consentcrawl",
                                   checks=[c for c in default_checks() if not isinstance(c, SiteSignalsCheck)])
            with_signals = PolicyEngine(PlatformRegistry({}), "consentcrawl")
            for engine in (without, with_signals):  # warm up
                per_request(engine, files, [f"{ORIGIN}/warm/{run}/{i}" for i in range(200)])
            a = per_request(without, files, [f"{ORIGIN}/a/{run}{mid}{i}{end}" for i in range(args.n)])
            b = per_request(with_signals, files, [f"{ORIGIN}/b/{run}{mid}{i}{end}" for i in range(args.n)])
            runs.append((a, b))
        a, b = (statistics.median(x) for x in zip(*runs, strict=True))
        added = statistics.median(y - x for x, y in runs)
        print(f"{name:<32} {a:>9.2f} {b:>9.2f} {added:>9.2f}   ({', '.join(f'{y - x:.1f}' for x, y in runs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
