"""What the site-level operator signals add to a full decision, on cached site signals (issue #13: at most 5 µs per
request over none).

``python benchmarks/signals_cost.py [--n 5000]`` decides ``n`` distinct URLs of one origin off any platform (the
case where the signals decide) twice each, as a crawl does (the request phase, then send time), with the origin's
robots.txt and signal files fetched already, and compares the median per request with and without the signals
check in the list. Two sites: one that publishes only robots.txt lines every page shares (``Content-Signal``: one
memo entry serves the origin), one with a path-scoped tdmrep.json (a memo entry per URL: the first decision of a
URL pays for evaluating it, the second is a lookup).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args(argv)
    sites = {
        "Content-Signal in robots.txt": SiteFiles(from_response(
            ORIGIN + "/robots.txt", 200, b"User-agent: *\nContent-Signal: search=yes, ai-train=no\nAllow: /\n",
            NOW), file_response("tdmrep", ORIGIN + "/.well-known/tdmrep.json", 404, b"", NOW)),
        "path-scoped tdmrep.json": SiteFiles(from_response(ORIGIN + "/robots.txt", 200, b"User-agent: *\nAllow: /\n",
                                                           NOW),
                                             file_response("tdmrep", ORIGIN + "/.well-known/tdmrep.json", 200,
                                                           b'[{"location": "/private/*", "tdm-reservation": 1},'
                                                           b' {"location": "/", "tdm-reservation": 0}]', NOW)),
    }
    gc.disable()
    print(f"{'site':<32} {'without':>9} {'with':>9} {'added':>9}   (µs per request, two full decisions each)")
    for name, files in sites.items():
        without = PolicyEngine(PlatformRegistry({}), "consentcrawl",
                               checks=[c for c in default_checks() if not isinstance(c, SiteSignalsCheck)])
        with_signals = PolicyEngine(PlatformRegistry({}), "consentcrawl")
        for engine in (without, with_signals):  # warm up
            per_request(engine, files, [f"{ORIGIN}/warm/{i}" for i in range(200)])
        a = per_request(without, files, [f"{ORIGIN}/a/{i}" for i in range(args.n)])
        b = per_request(with_signals, files, [f"{ORIGIN}/b/{i}" for i in range(args.n)])
        print(f"{name:<32} {a:>9.2f} {b:>9.2f} {b - a:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
