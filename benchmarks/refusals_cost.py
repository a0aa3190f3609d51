"""What reading a person's page for refusals costs, per response (issue #14), and what the refusal book adds to a
decision. Latency with the garbage collector frozen, median of several runs of many calls each.

    python benchmarks/refusals_cost.py [--runs 7] [--calls 2000]
    python benchmarks/refusals_cost.py --instructions     # instructions per read, by callgrind (load-proof)

Pages: the demo microblog's profile (an h-card, ``#nobot`` in the bio), the fediverse demo's profile HTML and actor
JSON, and a page of a person with neither an h-card nor ``og:type`` (the byte search decides, nothing is parsed).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consentcrawl.consent.answers import StoreAnswers
from consentcrawl.engine import PolicyEngine
from consentcrawl.refusals.book import Refusal, RefusalBook
from consentcrawl.refusals.page import read_page
from consentcrawl.refusals.purposes import ALL_PURPOSES
from consentcrawl.robots.meta import parse_meta_robots
from consentcrawl.terms.load import load_platforms
from consentcrawl_demo.fediverse import FediverseSite
from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LoggedRequest

ROOT = Path(__file__).resolve().parent.parent


def page(app: Any, host: str, path: str, accept: str = "text/html") -> tuple[bytes, str]:
    request = LoggedRequest("GET", host, path, path, "", 0.0, headers=(("Accept", accept),))
    response = app(request, {"accept": accept})
    return response.body_bytes(), dict(response.header_pairs())["Content-Type"]


def read_once(url: str, body: bytes, content_type: str) -> Any:
    """What the response phase does with a person's page: its meta robots, then the refusal reader."""
    directives = parse_meta_robots(body, "consentcrawl") if "html" in content_type else []
    return read_page(url, 200, content_type, body, "consentcrawl", meta_directives=directives)


def callgrind(name: str, reads: int) -> int:
    """Total instructions of a run that reads page ``name`` ``reads`` times, under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
                        "--only", name, "--calls", str(reads)], check=True, capture_output=True)
        for line in out.read_text().splitlines():
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError("no instruction count in callgrind's output")


def per_call(fn: Callable[[], Any], runs: int, calls: int) -> float:
    """Median over ``runs`` of the mean seconds per call of ``calls`` calls, GC frozen."""
    fn()
    gc.collect()
    gc.freeze()
    try:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times.append((time.perf_counter() - start) / calls)
    finally:
        gc.unfreeze()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per read with valgrind's callgrind (marginal: 40 reads vs 10)")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # one page, --calls reads, untimed (under callgrind)
    args = parser.parse_args()
    site = MicroblogSite()
    nobot = site.nobot_subjects[0]
    fedi = FediverseSite()
    pages = {
        "microblog profile, h-card, #nobot": (site.url(nobot), *page(site, "microblog.example", f"/u/{nobot}")),
        "microblog listing page (no h-card)": ("http://microblog.example/people?page=1",
                                               *page(site, "microblog.example", "/people")),
        "fediverse profile HTML": ("http://fedi.example/@bob", *page(fedi, "fedi.example", "/@bob")),
        "fediverse actor JSON": ("http://fedi.example/users/bob",
                                 *page(fedi, "fedi.example", "/users/bob", "application/activity+json")),
    }
    if args.only is not None:
        url, body, content_type = pages[args.only]
        for _ in range(args.calls):
            read_once(url, body, content_type)
        return
    if args.instructions:
        for name in pages:
            counts = [callgrind(name, n) for n in (10, 40)]
            print(f"{name:<40} {(counts[1] - counts[0]) / 30 / 1e3:>8.0f}k instructions per read")
        return
    print(f"{'page':<40} {'bytes':>6} {'µs per read':>12}  found")
    for name, (url, body, content_type) in pages.items():
        def read(url: str = url, body: bytes = body, content_type: str = content_type) -> Any:
            return read_once(url, body, content_type)
        reading = read()
        seconds = per_call(read, args.runs, args.calls)
        print(f"{name:<40} {len(body):>6} {seconds * 1e6:>12.1f}  {[f.form for f in reading.found]}")

    platforms = load_platforms([str(ROOT / "settings" / "fediverse.yaml")])
    answers = StoreAnswers(1, "given", {("fediverse", "alice"): ()})
    for size in (0, 1, 10_000):
        book = RefusalBook(Refusal("fediverse", f"p{i}", "u", "hashtag.nobot", "f", "r", ALL_PURPOSES,
                                   datetime(2026, 1, 1), "e") for i in range(size))
        engine = PolicyEngine(platforms, "consentcrawl", refusals=book)
        facts = engine.facts("http://fedi.example/@alice", "research", datetime(2026, 6, 1))
        seconds = per_call(lambda engine=engine, facts=facts: engine.decide_consent(facts, answers),
                           args.runs, args.calls)
        print(f"decide_consent (remembered), refusal book of {size:>6} people: {seconds * 1e6:.2f} µs")


if __name__ == "__main__":
    main()
