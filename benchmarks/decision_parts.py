"""What the parts of one decision cost on this machine, with the garbage collector off: the floor under
``decisions.py``'s latencies.

``python benchmarks/decision_parts.py [--records 1000000] [--store-dir DIR] [--n 20000]`` builds (or reuses, with
``--store-dir``, the same files ``decisions.py`` keeps) an SQLite store and times each step a full decision about
a URL never seen before has to take, one ``perf_counter_ns`` pair per call, on URLs of people the store does and
does not cover. Reported: median and 10th percentile per part, and what a full decision costs end to end the way
a crawl asks for it (the link checked first, then the fetch decided).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from platform_server import FIRST_ID, HOST, ROBOTS_TXT  # noqa: E402
from synthetic import NOW, PLATFORMS_YAML, row_at  # noqa: E402

from consentcrawl.consent.sqlite import SQLiteStore, bulk_build  # noqa: E402
from consentcrawl.decision import Decision, Stage, Verdict  # noqa: E402
from consentcrawl.robots.fetch import from_response  # noqa: E402
from consentcrawl.terms.load import load_platforms  # noqa: E402
from consentcrawl.urls import canonicalize, registered_domain  # noqa: E402
from tests.deciding import Engine  # noqa: E402


def timed(values: list[Any], call: Callable[[Any], Any]) -> tuple[float, float]:
    """Median and 10th percentile in µs of ``call(v)`` over ``values``, each value once."""
    clock = time.perf_counter_ns
    samples = []
    for value in values:
        t0 = clock()
        call(value)
        samples.append(clock() - t0)
    samples.sort()
    return statistics.median(samples) / 1000, samples[len(samples) // 10] / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--store-dir", help="reuse (or keep) the store built here, as decisions.py does")
    parser.add_argument("--n", type=int, default=20_000, help="URLs per part (default 20,000)")
    args = parser.parse_args(argv)

    tmp = None if args.store_dir else tempfile.TemporaryDirectory(prefix="consentcrawl-parts-")
    folder = Path(args.store_dir or tmp.name)  # type: ignore[union-attr]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"authorizations-{args.records}.db"
    if not path.exists():
        print(f"building a store of {args.records:,} records ...", flush=True)
        bulk_build(str(path), args.records, row_at)
    (folder / "platforms.yaml").write_text(PLATFORMS_YAML)
    platforms = load_platforms([str(folder / "platforms.yaml")])
    from datetime import datetime

    now = datetime.fromisoformat(NOW.replace("Z", "+00:00"))
    robots = from_response(f"http://{HOST}/robots.txt", 200, ROBOTS_TXT.encode(), now)
    store = SQLiteStore(f"sqlite:///{path}", platforms.platforms)
    engine = Engine(platforms, store, "consentcrawl")  # asked as the adapters ask: through a Decider
    platform = platforms.get("chirp")
    assert platform is not None
    registered_domain(HOST)  # per host, cached: not a per-URL cost

    n = args.n
    people = [FIRST_ID + 2 * args.records + 7 * i for i in range(4 * n)]  # never looked up before, in four sets
    batches = [people[k * n:(k + 1) * n] for k in range(4)]
    gc.collect()
    gc.disable()
    rows: list[tuple[str, float, float]] = []
    rows.append(("canonicalize a new URL", *timed([f"http://{HOST}/u/{p}" for p in batches[0]], canonicalize)))
    rows.append(("profile template: subject of a path", *timed([f"/u/{p}" for p in batches[0]],
                                                                platform.subject_of)))
    rows.append(("robots.txt: match a new path (30 rules)",
                 *timed([f"/u/{p}" for p in batches[0]], lambda path: robots.rules.match(path, "consentcrawl"))))
    step = max(3, args.records // n)
    # people with records, in three sets never looked up before their part
    covered, fresh_links, fresh_full = ([FIRST_ID + 2 * (i + k) for i in range(0, args.records - 3, step)][:n]
                                        for k in range(3))
    rows.append(("store: a person looked up the first time", *timed(covered, lambda p: store.lookup("chirp", str(p)))))
    rows.append(("store: the same person again (LRU)", *timed(covered, lambda p: store.lookup("chirp", str(p)))))
    rows.append(("a Decision with a new id",
                 *timed(range(n), lambda _: Decision(Verdict.ALLOW, Stage.SUBJECT, "subject.authorized"))))
    rows.append(("facts of a new URL (all of the URL work)",
                 *timed([f"http://{HOST}/u/{p}" for p in batches[1]], lambda u: engine.facts(u, "research", now))))
    # crawl order: each URL's link check, then at once its full decision (as when it is fetched soon after)
    clock = time.perf_counter_ns
    links, fulls = [], []
    for p in fresh_links:
        url = f"http://{HOST}/u/{p}"
        t0 = clock()
        engine.decide_link(url, "research", now)
        t1 = clock()
        engine.decide(engine.facts(url, "research", now), robots)
        fulls.append(clock() - t1)
        links.append(t1 - t0)
    for name, samples in (("link check of a new URL (terms, subject)", links),
                          ("full decision right after its link check (crawl order)", fulls)):
        samples.sort()
        rows.append((name, statistics.median(samples) / 1000, samples[len(samples) // 10] / 1000))
    rows.append(("full decision of a never-seen URL",
                 *timed([f"http://{HOST}/u/{p}" for p in fresh_full],
                        lambda u: engine.decide(engine.facts(u, "research", now), robots))))
    gc.enable()
    print(f"{n:,} calls per part, garbage collector off, store of {args.records:,} records\n")
    print("| part | p50 µs | p10 µs |\n|---|---:|---:|")
    for name, p50, p10 in rows:
        print(f"| {name} | {p50:.1f} | {p10:.1f} |")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
