"""How fast is one full consent decision, with a large SQLite authorization store behind it?

Usage: ``python benchmarks/decisions.py [--records 1000000,10000000] [--requests 1000000] [--streams crawl,uniform]
[--runs 5] [--instructions] [--source CHECKOUT]``

For each store size R (``--records``, comma-separated) it builds an SQLite store of R synthetic records
(``benchmarks/synthetic.py``: half of the platform's first 2 R people have a record) with the bulk builder, then,
for each request stream, in a fresh process: opens the store, and times ``PolicyEngine.facts`` +
``PolicyEngine.decide`` (canonicalise the URL, find the platform by registered domain, match the cached
robots.txt of the origin, check the platform's terms, look the person up in the store, build the decision with
its evidence) for every request, one ``perf_counter_ns`` pair per decision. Every decision is checked against
the reason the synthetic data says it must have.

Streams:

- ``crawl``: what a crawl asks, in crawl order (see :func:`crawl_stream`): links are checked when they are
  scheduled (``decide_link``, where a person is first looked up) and requests get the full decision when
  they are fetched; a person is decided about 7 times, and the store's LRU has something to work with.
- ``uniform``: every request is the profile of a uniformly random person of the platform's 2 R: no locality at
  all, every lookup of a covered person goes to SQLite. The worst case; it bounds what caching cannot fix.

Timed with the garbage collector frozen (``gc.freeze()`` after setup, so a collection walks only what the
decisions made): each collection's pause is timed by a ``gc.callbacks`` hook, taken out of the decision it fell
in, and reported on its own (pauses per run, total, median and longest). Each stream is measured ``--runs``
times (default 5), each in a fresh process; every figure reported is the median over the runs, and each run's
p50/p99 of a full decision is listed too.

Reported per store and stream: decisions/s, p50/p90/p99/p99.9/max latency, the store's LRU/Bloom/SQLite
counts; per store: build time and file size, open time, and RSS above the baseline (the process with everything
but the store loaded) after opening and at its peak after the run. The last line is
``decision p99: N us`` for the crawl stream (the first one given) on the largest store.

``--instructions`` counts instead of timing: the same stream, untimed, under valgrind's callgrind, once for the
full decisions and once for the link checks; each reported as instructions per decision (from the fifth
decision of the stream on). Counts agree from run to run and do not depend on the machine's load, so two
revisions can be compared on a shared machine: ``--source`` names the checkout whose ``consentcrawl`` (and
``tests/deciding.py``) is measured, e.g. a ``git worktree`` of ``main``.

Two measurements say what any implementation would get on the machine (``--no-floor`` skips both):

- the **floor**: the crawl stream again, its link checks real, but each full decision replaced by a stand-in that
  does the least a decision can: one dict lookup (the link's decision, by URL) and one new ``Decision`` with its
  own id. Its latencies are what the same places in the same stream cost before any deciding;
- **jitter**: a fixed piece of pure-Python work of several lengths, timed 20,000 times each: how often something
  outside the process (interrupts, the hypervisor, the other core's work) stretches a window of that length. It
  bounds the p99 of any decision whose median is that long.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from platform_server import FIRST_ID, HOST, ROBOTS_TXT  # noqa: E402
from synthetic import MOBILE_HOST, NOW, PLATFORMS_YAML, expected_reason, row_at  # noqa: E402

#: kind ("full": a request about to be fetched, or "consent": a link being scheduled), url, person k (None: not a
#: profile), the reason the decision must give (None: any)
Request = tuple[str, str, "int | None", "str | None"]


# -- request streams -------------------------------------------------------------------------------------------


def crawl_stream(records: int, requests: int, seed: int = 1) -> Iterator[Request]:
    """The ``requests`` decisions a crawl of a P-person site makes first, in crawl order.

    As in a Scrapy crawl with consentcrawl: a link is checked when it is scheduled (``decide_link``: terms and
    subject, no robots.txt yet), and the request gets the full decision when it is about to be fetched. A listing
    page names 50 people of the site, who are then fetched; each profile links to 5 random people of the site,
    mostly as ``/u/ID`` (a duplicate, which Scrapy's dupefilter drops after the check) and sometimes spelt
    ``m.chirp.example/u/ID/``, ``/profile/ID`` or ``/u/ID?ref=related`` (new URLs, so fetched too; robots.txt
    disallows the last). About one decision in eight is a full one. The site is P = ``requests / 7`` people
    sampled from the whole platform.
    """
    rng = random.Random(seed)
    people = 2 * records
    site_size = max(50, requests // 7)
    site = [rng.randrange(people) for _ in range(site_size)]
    made = 0
    page = 0
    while True:
        page += 1
        batch = site[(page - 1) * 50 % site_size:][:50]
        out: list[Request] = [("full", f"http://{HOST}/people?page={page}", None, "subject.not-a-profile")]
        out += [("consent", f"http://{HOST}/u/{FIRST_ID + k}", k, expected_reason(k, records)) for k in batch]
        for k in batch:
            if expected_reason(k, records) == "subject.authorized":  # the others were dropped when scheduled
                out.append(("full", f"http://{HOST}/u/{FIRST_ID + k}", k, "subject.authorized"))
            for _ in range(5):
                other = site[rng.randrange(site_size)]
                reason = expected_reason(other, records)
                style = rng.randrange(20)
                if style == 0:
                    url = f"http://{HOST}/u/{FIRST_ID + other}?ref=related"
                elif style == 1:
                    url = f"http://{MOBILE_HOST}/u/{FIRST_ID + other}/"
                elif style == 2:
                    url = f"http://{HOST}/profile/{FIRST_ID + other}"
                else:
                    out.append(("consent", f"http://{HOST}/u/{FIRST_ID + other}", other, reason))
                    continue
                out.append(("consent", url, other, reason))
                if reason == "subject.authorized":
                    out.append(("full", url, other, "robots.disallowed" if style == 0 else reason))
        for request in out:
            yield request
            made += 1
            if made >= requests:
                return


def uniform_stream(records: int, requests: int, seed: int = 2) -> Iterator[Request]:
    """Full decisions about uniformly random people of the platform: no locality at all."""
    rng = random.Random(seed)
    people = 2 * records
    for _ in range(requests):
        k = rng.randrange(people)
        yield "full", f"http://{HOST}/u/{FIRST_ID + k}", k, expected_reason(k, records)


STREAMS = {"crawl": crawl_stream, "uniform": uniform_stream}
FLOOR = "crawl, stand-in full decisions"  #: the floor's run: the crawl stream with stand-ins for its full decisions
HISTOGRAM_NS = 100  #: latency histogram resolution
HISTOGRAM_SIZE = 200_000  #: up to 20 ms; anything slower counts there (the maximum is kept apart)


class Latencies:
    """A latency histogram (0.1 µs buckets): percentiles of millions of decisions without keeping them."""

    def __init__(self) -> None:
        self.buckets = array("q", bytes(8 * HISTOGRAM_SIZE))
        self.count = 0
        self.total = 0
        self.max = 0

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {"count": self.count}
        if not self.count:
            return out
        targets = {"p50_us": 0.50, "p90_us": 0.90, "p99_us": 0.99, "p999_us": 0.999}
        seen, bucket = 0, 0
        for name, fraction in targets.items():
            need = fraction * self.count
            while seen + self.buckets[bucket] <= need and bucket < HISTOGRAM_SIZE - 1:
                seen += self.buckets[bucket]
                bucket += 1
            out[name] = (bucket + 0.5) * HISTOGRAM_NS / 1000
        out.update(mean_us=self.total / self.count / 1000, max_us=self.max / 1000,
                   decisions_per_s=self.count / (self.total / 1e9))
        return out


# -- measurements in a child process ---------------------------------------------------------------------------


def memory() -> dict[str, int]:
    """This process's VmRSS, VmHWM (peak), RssAnon and RssFile in KiB (Linux)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            name = line.split(":", 1)[0]
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[name] = int(line.split()[1])
    return out


def child_build(path: str, records: int) -> dict[str, Any]:
    from consentcrawl.consent.sqlite import bulk_build

    start = time.perf_counter()
    result = bulk_build(path, records, row_at)
    seconds = time.perf_counter() - start
    return {"build_s": seconds, "bytes": os.path.getsize(path), "records": result.records, "keys": result.keys}


def _engine() -> tuple[Any, dict[str, Any], Any]:
    """The benchmark platform's engine (no store yet), asked as the adapters ask: through a Decider
    (``tests/deciding.py``); the robots.txt of each host, and the decision time."""
    from datetime import datetime

    from consentcrawl.robots.fetch import from_response
    from consentcrawl.terms.load import load_platforms
    from tests.deciding import Engine

    now = datetime.fromisoformat(NOW.replace("Z", "+00:00"))
    with tempfile.TemporaryDirectory() as tmp:
        platforms_file = Path(tmp) / "platforms.yaml"
        platforms_file.write_text(PLATFORMS_YAML)
        platforms = load_platforms([str(platforms_file)])
    robots = {f"http://{host}": from_response(f"http://{host}/robots.txt", 200, ROBOTS_TXT.encode(), now)
              for host in (HOST, MOBILE_HOST)}
    engine = Engine(platforms, None, "consentcrawl")
    engine.decide(engine.facts(f"http://{HOST}/people?page=1", "research", now), robots[f"http://{HOST}"])
    return engine, robots, now


def child_measure(path: str, records: int, stream: str, requests: int, cache: int | None) -> dict[str, Any]:
    from consentcrawl.consent.sqlite import SQLiteStore
    from consentcrawl.deciding import Decider
    from consentcrawl.decision import Decision, Stage, Verdict

    engine, robots, now = _engine()
    platforms = engine.platforms
    timings = {"full": Latencies(), "consent": Latencies()}  # their memory is part of the baseline
    gc.collect()
    base = memory()

    url = f"sqlite:///{path}" + (f"?cache={cache}" if cache is not None else "")
    start = time.perf_counter()
    store = SQLiteStore(url, platforms.platforms)
    open_s = time.perf_counter() - start
    opened = memory()
    engine.decider = Decider(engine.engine, store)

    facts_of, decide, link, clock = engine.facts, engine.decide, engine.decide_link, time.perf_counter_ns
    reasons: Counter[str] = Counter()
    wrong: list[tuple[str, str, str, str]] = []
    limit = HISTOGRAM_SIZE - 1
    floor = stream == FLOOR
    linked: dict[str, Any] = {}  # the floor's link decisions by URL: what its stand-in looks up
    listing = Decision(Verdict.ALLOW, Stage.TERMS, "floor.listing")
    # the garbage collector frozen: everything built so far (the engine, the store, the stream's setup) is moved out
    # of its generations, so a collection walks only what the decisions made; each pause is timed on its own and
    # taken out of the decision it fell in, and reported separately
    gc.collect()
    gc.freeze()
    pauses: list[int] = []
    paused = [0, 0]  # start of the running collection, total paused so far

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            paused[0] = clock()
        else:
            pause = clock() - paused[0]
            pauses.append(pause)
            paused[1] += pause

    gc.callbacks.append(on_gc)
    wall = time.perf_counter()
    for kind, request_url, _k, expected in STREAMS["crawl" if floor else stream](records, requests):
        gc_before = paused[1]
        if floor and kind == "full":  # the stand-in: one dict lookup, one new decision
            t0 = clock()
            known = linked.get(request_url, listing)
            decision = Decision(known.verdict, known.stage, known.reason, known.subject, known.platform,
                                known.evidence)
            elapsed = clock() - t0
            expected = None
        elif floor:
            t0 = clock()
            decision = linked[request_url] = link(request_url, "research", now)[0]
            elapsed = clock() - t0
        elif kind == "full":
            t0 = clock()
            facts = facts_of(request_url, "research", now)
            decision = decide(facts, robots[facts.canonical.origin])
            elapsed = clock() - t0
        else:
            t0 = clock()
            decision = link(request_url, "research", now)[0]
            elapsed = clock() - t0
        elapsed -= paused[1] - gc_before
        timing = timings[kind]
        timing.buckets[min(elapsed // HISTOGRAM_NS, limit)] += 1
        timing.count += 1
        timing.total += elapsed
        if elapsed > timing.max:
            timing.max = elapsed
        reasons[f"{kind} {decision.reason}"] += 1
        if expected is not None and decision.reason != expected and len(wrong) < 10:
            wrong.append((kind, request_url, expected, decision.reason))
    wall = time.perf_counter() - wall
    gc.callbacks.remove(on_gc)
    gc.unfreeze()
    pauses.sort()
    after = memory()
    cache_info = store.cache_info()
    result: dict[str, Any] = {
        "records": records, "stream": stream, "wall_s": wall, "open_s": open_s,
        "rss_base_mb": base["VmRSS"] / 1024,
        "rss_open_mb": (opened["VmRSS"] - base["VmRSS"]) / 1024,
        "rss_peak_mb": (after["VmHWM"] - base["VmRSS"]) / 1024,
        "rss_after_mb": (after["VmRSS"] - base["VmRSS"]) / 1024,
        "rss_file_mb": after.get("RssFile", 0) / 1024,
        "lru_hits": cache_info.hits, "lru_misses": cache_info.misses, "lru_size": cache_info.currsize,
        "lru_max": cache_info.maxsize, "sqlite_queries": store.queries, "bloom_rejects": store.bloom_rejects,
        "reasons": dict(reasons.most_common()), "wrong": wrong, "loadavg": os.getloadavg(),
        "gc_pauses": len(pauses), "gc_total_ms": sum(pauses) / 1e6,
        "gc_p50_us": pauses[len(pauses) // 2] / 1000 if pauses else 0.0,
        "gc_max_us": pauses[-1] / 1000 if pauses else 0.0,
    }
    result.update({f"full_{k}": v for k, v in timings["full"].summary().items()})
    result.update({f"consent_{k}": v for k, v in timings["consent"].summary().items()})
    return result


def child_instructions(path: str, records: int, stream: str, requests: int, kind: str) -> dict[str, Any]:
    """The stream's decisions as :func:`child_measure` makes them, untimed; each decision of ``kind`` made through
    ``operator.call``, the one C function callgrind is told to count inside (``--toggle-collect``), from the
    fifth decision of the stream on (the first fifth warms the caches, the regexes and the store's pages). The store
    never renews its snapshot (a frozen clock), so nothing the process does depends on how fast it runs."""
    import operator

    from consentcrawl.consent.sqlite import SQLiteStore
    from consentcrawl.deciding import Decider

    engine, robots, now = _engine()
    # the store's clock stands still: it renews its snapshot once a second, and under valgrind's slowdown, on a
    # loaded machine, a second is a varying number of decisions; no renewal makes the count the machine's speed's
    store = SQLiteStore(f"sqlite:///{path}", engine.platforms.platforms, clock=lambda: 0.0)
    engine.decider = Decider(engine.engine, store)
    facts_of, decide, link = engine.facts, engine.decide, engine.decide_link

    def full(url: str) -> Any:
        facts = facts_of(url, "research", now)
        return decide(facts, robots[facts.canonical.origin])

    def consent(url: str) -> Any:
        return link(url, "research", now)[0]

    ways = {"full": full, "consent": consent}
    counted, warm = 0, requests // 5
    again = kind == "again"  # each full decision asked twice, as the request phase and then the send time ask it
    new = kind == "new"  # only the link checks of a person the stream has not named before: looked up in the store
    named: set[int] = set()
    gc.collect()
    gc.freeze()
    for i, (which, request_url, k, _expected) in enumerate(STREAMS[stream](records, requests)):
        if new:
            first = which == "consent" and k is not None and k not in named
            if k is not None:
                named.add(k)
            if i >= warm and first:
                operator.call(consent, request_url)
                counted += 1
            else:
                ways[which](request_url)
        elif again and which == "full":
            full(request_url)
            if i >= warm:
                operator.call(full, request_url)
                counted += 1
        elif i >= warm and which == kind:
            operator.call(ways[which], request_url)
            counted += 1
        else:
            ways[which](request_url)
    return {"kind": kind, "counted": counted}


def run_instructions(path: Path, records: int, stream: str, requests: int, source: str,
                     kinds: tuple[str, ...] = ("full", "consent")) -> dict[str, float]:
    """Instructions per decision of each kind (callgrind's ``Ir`` inside the counted decisions, divided by their
    number): one run under valgrind per kind. ``again`` is the second of two full decisions of the same request
    (the send time's, after the request phase's); ``new`` a link check of a person the stream names for the first
    time (the engine asked, the store looked up, the engine asked again)."""
    out: dict[str, float] = {}
    for kind in kinds:
        with tempfile.TemporaryDirectory() as tmp:
            command = ["valgrind", "--tool=callgrind", "--toggle-collect=_operator_call",
                       f"--callgrind-out-file={tmp}/callgrind.out", sys.executable, str(Path(__file__).resolve()),
                       "--_instructions", str(path), str(records), stream, str(requests), kind, "--source", source]
            done = subprocess.run(command, check=True, text=True, capture_output=True)
            counted = json.loads(done.stdout.strip().splitlines()[-1])["counted"]
            summary = next(line for line in done.stderr.splitlines() if "Collected :" in line)
            out[kind] = int(summary.rsplit(":", 1)[1].strip().replace(",", "")) / max(1, counted)
    return out


def child_jitter(samples: int = 20_000) -> dict[str, Any]:
    """Time a fixed loop of several lengths ``samples`` times each, with the GC off: the machine's own tail."""
    gc.disable()
    clock = time.perf_counter_ns

    def work(n: int) -> int:
        total = 0
        for i in range(n):
            total += i
        return total

    rows = []
    for n in (50, 100, 200, 400, 1000):
        times = []
        for _ in range(samples):
            t0 = clock()
            work(n)
            times.append(clock() - t0)
        times.sort()
        p50 = times[len(times) // 2]
        stretched = sum(1 for t in times if t > p50 + 15_000) / len(times)
        rows.append({"loop": n, "p50_us": p50 / 1000, "p99_us": times[int(0.99 * len(times))] / 1000,
                     "p999_us": times[int(0.999 * len(times))] / 1000, "stretched": stretched,
                     "per_ms": stretched / (p50 / 1e6)})
    return {"rows": rows}


# -- the driver ------------------------------------------------------------------------------------------------


def run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], check=True, text=True,
                         stdout=subprocess.PIPE)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", default="1000000,10000000",
                        help="store sizes, comma-separated (default 1000000,10000000)")
    parser.add_argument("--requests", type=int, default=1_000_000, help="decisions per run (default 1,000,000)")
    parser.add_argument("--streams", default="crawl,uniform", help="crawl, uniform or both (default both)")
    parser.add_argument("--cache", type=int, default=None, help="the store's LRU size (default: the store's)")
    parser.add_argument("--store-dir", help="keep the built stores here and reuse them (default: a temp dir)")
    parser.add_argument("--json", metavar="FILE", help="also write every result to FILE")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor and jitter measurements")
    parser.add_argument("--runs", type=int, default=5,
                        help="measure each stream this many times, each in a fresh process; the report gives the "
                             "median of each figure (default 5)")
    parser.add_argument("--source", default=str(ROOT),
                        help="the checkout whose consentcrawl (and tests/deciding.py) is measured, e.g. a worktree "
                             "of another revision, to compare two in one run (default: this one)")
    parser.add_argument("--_build", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_measure", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--_jitter", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_instructions", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per decision with valgrind's callgrind instead of timing them "
                             "(one run per kind of decision; robust to the machine's load)")
    parser.add_argument("--kinds", default="full,consent",
                        help="with --instructions: the kinds of decision counted, of full, consent, again (a full "
                             "decision asked a second time, as the send time asks it after the request phase) and "
                             "new (the link check of a person not named before in the stream: a store lookup)")
    args = parser.parse_args(argv)
    source = str(Path(args.source).resolve())
    sys.path[:] = [source] + [p for p in sys.path if p != source]
    if args._jitter:
        print(json.dumps(child_jitter()))
        return 0
    if args._build:
        print(json.dumps(child_build(args._build[0], int(args._build[1]))))
        return 0
    if args._instructions:
        path, records, stream, requests, kind = args._instructions
        print(json.dumps(child_instructions(path, int(records), stream, int(requests), kind)))
        return 0
    if args._measure:
        path, records, stream, requests = args._measure
        print(json.dumps(child_measure(path, int(records), stream, int(requests), args.cache)))
        return 0

    sizes = [int(x.replace("_", "")) for x in args.records.split(",") if x.strip()]
    streams = [s.strip() for s in args.streams.split(",") if s.strip()]
    unknown = set(streams) - set(STREAMS)
    if unknown or not streams or not sizes:
        parser.error(f"unknown stream(s) {', '.join(sorted(unknown))}" if unknown else "nothing to run")
    tmp = None if args.store_dir else tempfile.TemporaryDirectory(prefix="consentcrawl-decisions-")
    store_dir = Path(args.store_dir or tmp.name)  # type: ignore[union-attr]
    store_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    builds: dict[int, dict[str, Any]] = {}
    floor = not args.no_floor and "crawl" in streams and not args.instructions
    wobble = None
    if floor:
        print("jitter of pure-Python work on this machine ...", flush=True)
        wobble = run_child("--_jitter")
    try:
        for records in sizes:
            path = store_dir / f"authorizations-{records}.db"
            if args.store_dir and path.exists():
                builds[records] = {"build_s": None, "bytes": path.stat().st_size}
                print(f"store of {records:,} records: reusing {path}", flush=True)
            else:
                print(f"building a store of {records:,} records ...", flush=True)
                builds[records] = run_child("--_build", str(path), str(records))
                print(f"  built in {builds[records]['build_s']:.1f} s, {builds[records]['bytes'] / 1e6:.0f} MB",
                      flush=True)
            if args.instructions:
                for stream in streams:
                    print(f"  {args.requests:,} decisions, {stream} stream, under callgrind ...", flush=True)
                    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
                    counts = run_instructions(path, records, stream, args.requests, args.source, kinds)
                    print(f"instructions per decision, {records:,} records, {stream} stream: "
                          + ", ".join(f"{k} {v:,.0f}" for k, v in counts.items()), flush=True)
                continue
            for stream in streams + ([FLOOR] if floor else []):
                print(f"  {args.requests:,} decisions, {stream} stream, {args.runs} runs ...", flush=True)
                runs = [run_child("--_measure", str(path), str(records), stream, str(args.requests),
                                  "--source", args.source,
                                  *([f"--cache={args.cache}"] if args.cache is not None else []))
                        for _ in range(max(1, args.runs))]
                result = median_of(runs)
                result.update(builds[records])
                results.append(result)
                if result["wrong"]:
                    print(f"  WRONG DECISIONS: {result['wrong']}", flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if args.instructions:
        return 0
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(report(results))
    if wobble is not None:
        print()
        print(report_jitter(wobble))
    headline = next(r for r in results if r["records"] == max(sizes) and r["stream"] == streams[0])
    print(f"decision p99: {headline['full_p99_us']:.0f} us")
    return 1 if any(r["wrong"] for r in results) else 0


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result whose every number is the median over ``runs`` (the first run's reasons and mix), with each
    run's p50 and p99 of a full decision kept for the report."""
    result = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            result[key] = statistics.median(r[key] for r in runs)
    result["wrong"] = [w for r in runs for w in r["wrong"]][:10]
    result["runs"] = [{"full_p50_us": r.get("full_p50_us"), "full_p99_us": r.get("full_p99_us")} for r in runs]
    return result


def report_jitter(wobble: dict[str, Any]) -> str:
    """The jitter table, and the longest median whose p99 it leaves under 20 µs."""
    lines = ["Jitter: the same pure-Python loop timed 20,000 times, GC off", "",
             "| loop | p50 µs | p99 µs | p99.9 µs | stretched by > 15 µs | per ms of work |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in wobble["rows"]:
        lines.append(f"| {r['loop']} | {r['p50_us']:.1f} | {r['p99_us']:.1f} | {r['p999_us']:.1f} | "
                     f"{r['stretched']:.2%} | {r['per_ms']:.2f} |")
    rate = statistics.median(r["per_ms"] for r in wobble["rows"])
    lines += ["", f"At {rate:.2f} stretches per ms, more than 1% of windows longer than {10 / rate:.1f} µs are "
                  "stretched: a decision with a longer median cannot have a p99 under 20 µs here."]
    return "\n".join(lines)


def report(results: list[dict[str, Any]]) -> str:
    """The results as Markdown tables."""
    lines = ["| records | stream | decision | count | decisions/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for kind in ("full", "consent"):
            if not r.get(f"{kind}_count") or (kind == "consent" and r["stream"] == FLOOR):  # the same link checks
                continue
            lines.append(f"| {r['records']:,} | {r['stream']} | {kind} | {int(r[f'{kind}_count']):,} | "
                         f"{r[f'{kind}_decisions_per_s']:,.0f} | {r[f'{kind}_p50_us']:.1f} | "
                         f"{r[f'{kind}_p90_us']:.1f} | {r[f'{kind}_p99_us']:.1f} | {r[f'{kind}_p999_us']:.1f} | "
                         f"{r[f'{kind}_max_us']:,.0f} |")
    lines += ["", "| records | stream | build s | file MB | open s | RSS base MB | + after open MB | + peak MB | "
                  "+ after run MB | LRU hits | SQLite queries | Bloom says no | wrong | load avg |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        build = f"{r['build_s']:.1f}" if r.get("build_s") is not None else "(reused)"
        hits = r["lru_hits"] / max(1, r["lru_hits"] + r["lru_misses"])
        load = "/".join(f"{x:.1f}" for x in r["loadavg"])
        lines.append(f"| {r['records']:,} | {r['stream']} | {build} | {r['bytes'] / 1e6:,.0f} | {r['open_s']:.3f} | "
                     f"{r['rss_base_mb']:.0f} | {r['rss_open_mb']:.0f} | {r['rss_peak_mb']:.0f} | "
                     f"{r['rss_after_mb']:.0f} | {hits:.0%} | {int(r['sqlite_queries']):,} | "
                     f"{int(r['bloom_rejects']):,} | "
                     f"{len(r['wrong'])} | {load} |")
    lines += ["", "| records | stream | runs: full p50 / p99 µs | GC pauses per run | GC ms per run | GC pause p50 µs "
                  "| GC pause max µs |", "|---:|---|---|---:|---:|---:|---:|"]
    for r in results:
        each = ", ".join(f"{x['full_p50_us']:.1f}/{x['full_p99_us']:.1f}" for x in r.get("runs", [])
                         if x["full_p50_us"] is not None)
        lines.append(f"| {r['records']:,} | {r['stream']} | {each} | {r.get('gc_pauses', 0):,.0f} | "
                     f"{r.get('gc_total_ms', 0):.1f} | {r.get('gc_p50_us', 0):.0f} | {r.get('gc_max_us', 0):,.0f} |")
    lines += ["", "Decisions by reason:", ""]
    for r in results:
        mix = ", ".join(f"{k} {v:,}" for k, v in r["reasons"].items())
        lines.append(f"- {r['records']:,} records, {r['stream']} stream: {mix}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
