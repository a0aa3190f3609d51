"""Authorization stores at scale: import, open, RSS and lookup latency at 1 M and 10 M records (issue 14, "Scale").

For each size a JSONL file of that many records is generated into a temporary directory (never kept), then:

- **import**: ``consentcrawl authorizations import FILE sqlite:///DB`` in a child process, the real validating
  importer: wall time, CPU time and peak RSS of the child;
- **open**: a fresh child process opens the store (``SQLiteStore``), timing the open and the RSS it adds
  (``/proc/self/status`` VmRSS before and after, and VmHWM);
- **lookups**, in the same child, with the GC frozen, one ``perf_counter_ns`` pair per call, median over ``--runs``
  runs of ``--lookups`` people each (half of them holding a record, half not):
  - ``sqlite raw``: one indexed ``SELECT`` on the same file, as the store's own query (the side-by-side baseline);
  - ``sqlite store, new person``: ``SQLiteStore.lookup`` of people not looked up before (Bloom filter, then SQLite);
  - ``sqlite store, warm``: the same people again (the store's LRU);
  - ``http store, new person`` and ``http store, warm``: the consent API store (``HTTPConsentStore``, with its
    cache) against ``consentcrawl serve-authorizations sqlite:///DB`` on loopback, the first ``--api-lookups``
    of the same people (each new person is a round trip to the server).

Usage::

    python benchmarks/stores_scale.py                       # 1 M and 10 M records
    python benchmarks/stores_scale.py --records 1000000     # one size
    python benchmarks/stores_scale.py --workdir /tmp/scale  # keep the files there (default: a temporary dir)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PLATFORMS = """platforms:
  people:
    domains: [people.example]
    authorization: {purposes: [research], reference: BENCH-1}
    profiles: ["/u/{subject}"]
    subject: "[0-9]+"
"""


def generate(path: Path, count: int) -> None:
    """``count`` records of people 1..count (one in ten with an expiry, one in fifty withdrawn), written as JSONL."""
    granted = "2026-01-01T00:00:00Z"
    with path.open("w", encoding="utf-8") as f:
        lines = []
        for i in range(1, count + 1):
            record: dict[str, Any] = {"platform": "people", "subject": str(i), "purposes": ["research"],
                                      "granted_at": granted, "evidence": f"consent form {i}"}
            if i % 10 == 0:
                record["expires_at"] = "2028-01-01T00:00:00Z"
            if i % 50 == 0:
                record["revoked_at"] = "2026-06-01T00:00:00Z"
            lines.append(json.dumps(record))
            if len(lines) == 100_000:
                f.write("\n".join(lines) + "\n")
                lines.clear()
        if lines:
            f.write("\n".join(lines) + "\n")


def status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def percentiles(samples: list[int]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] / 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000


# -- the child process that opens and asks the stores -----------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    from consentcrawl.consent.sqlite import SQLiteStore
    from consentcrawl.consent.sqlite_format import SELECT, SLOTS, base_id, key_hashes
    from consentcrawl.terms.load import load_platforms

    platforms = load_platforms([args.platforms])
    gc.collect()
    rss_before, hwm_before = status_kb("VmRSS"), status_kb("VmHWM")
    start = time.perf_counter()
    store = SQLiteStore(f"sqlite:///{args.db}", platforms.platforms)
    opened = time.perf_counter() - start
    rss_open = status_kb("VmRSS")
    rng = random.Random(7)
    n = args.count
    runs: list[list[str]] = [[str(rng.randrange(1, 2 * n)) for _ in range(args.lookups)] for _ in range(args.runs)]
    gc.collect()
    gc.freeze()
    gc.disable()
    results: dict[str, list[tuple[float, float]]] = {}

    def timed(name: str, call: Any, people: list[str]) -> None:
        samples = []
        clock = time.perf_counter_ns
        for person in people:
            t0 = clock()
            call(person)
            samples.append(clock() - t0)
        results.setdefault(name, []).append(percentiles(samples))

    conn = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA mmap_size=0")
    conn.execute("BEGIN")

    def raw(person: str) -> Any:
        first = base_id(key_hashes("people", person)[0])
        return conn.execute(SELECT, (first, first + SLOTS)).fetchall()

    for people in runs:
        timed("sqlite raw", raw, people)
        timed("sqlite store, new person", lambda p: store.lookup("people", p), people)
        timed("sqlite store, warm", lambda p: store.lookup("people", p), people)
        store._cached.cache_clear()  # the next run's people are new to the LRU (the Bloom filter stays)
    rss_lookups = status_kb("VmRSS")
    hwm = status_kb("VmHWM")
    if args.api:
        asyncio.run(_http(args, platforms, runs, results))
    print(json.dumps({
        "open_s": opened, "rss_before_mb": rss_before / 1024, "rss_added_open_mb": (rss_open - rss_before) / 1024,
        "rss_added_after_lookups_mb": (rss_lookups - rss_before) / 1024,
        "hwm_added_mb": (max(hwm, hwm_before) - rss_before) / 1024,
        "latency": {name: {"p50_us": statistics.median(p[0] for p in runs_),
                           "p99_us": statistics.median(p[1] for p in runs_)} for name, runs_ in results.items()},
    }))


async def _http(args: argparse.Namespace, platforms: Any, runs: list[list[str]],
                results: dict[str, list[tuple[float, float]]]) -> None:
    from consentcrawl.consent.httpapi import HTTPConsentStore

    for people in (run[:args.api_lookups] for run in runs):
        store = HTTPConsentStore(args.api, platforms, poll=0.25, timeout=2.0)
        try:
            await store.lookup("people", "1")  # the client and its connection are up
            for name in ("http store, new person", "http store, warm"):
                samples = []
                clock = time.perf_counter_ns
                for person in people:
                    t0 = clock()
                    await store.lookup("people", person)
                    samples.append(clock() - t0)
                results.setdefault(name, []).append(percentiles(samples))
        finally:
            await store.aclose()


# -- the parent: build, import, serve, measure ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(count: int, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    platforms = workdir / "platforms.yaml"
    platforms.write_text(PLATFORMS, encoding="utf-8")
    source = workdir / f"records-{count}.jsonl"
    db = workdir / f"store-{count}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    t = time.perf_counter()
    if not source.exists():
        generate(source, count)
    print(f"  generated {source.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "consentcrawl.cli", "authorizations", "import", str(source),
                    f"sqlite:///{db}", "--platforms", str(platforms)], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"  imported in {wall:.0f} s (CPU {cpu:.0f} s)", file=sys.stderr)
    port = free_port()
    env = {**os.environ, "CONSENTCRAWL_API_TOKEN": ""}
    server = subprocess.Popen([sys.executable, "-m", "consentcrawl.cli", "serve-authorizations", f"sqlite:///{db}",
                               "--platforms", str(platforms), "--port", str(port)], stdout=subprocess.PIPE, env=env)
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "serving ..."
        out = subprocess.run([sys.executable, __file__, "--child", "--db", str(db), "--platforms", str(platforms),
                              "--count", str(count), "--lookups", str(args.lookups), "--runs", str(args.runs),
                              "--api-lookups", str(args.api_lookups),
                              "--api", f"http://127.0.0.1:{port}"], check=True, capture_output=True, text=True)
    finally:
        server.terminate()
        server.wait()
    report = json.loads(out.stdout.strip().splitlines()[-1])
    report.update(records=count, import_s=wall, import_cpu_s=cpu, import_maxrss_mb=after.ru_maxrss / 1024,
                  file_mb=source.stat().st_size / 1e6, db_mb=db.stat().st_size / 1e6)
    return report


def table(reports: list[dict[str, Any]]) -> str:
    lines = ["| records | JSONL MB | store MB | import s (CPU s) | import peak RSS MB | open s | RSS added by open MB "
             "| after lookups MB |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in reports:
        lines.append(f"| {r['records']:,} | {r['file_mb']:,.0f} | {r['db_mb']:,.0f} | {r['import_s']:.0f} "
                     f"({r['import_cpu_s']:.0f}) | {r['import_maxrss_mb']:.0f} | {r['open_s']:.3f} | "
                     f"{r['rss_added_open_mb']:.1f} | {r['rss_added_after_lookups_mb']:.1f} |")
    lines += ["", "| records | lookup | p50 µs | p99 µs |", "|---:|---|---:|---:|"]
    for r in reports:
        for name, value in r["latency"].items():
            lines.append(f"| {r['records']:,} | {name} | {value['p50_us']:.1f} | {value['p99_us']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--lookups", type=int, default=20_000, help="people per run")
    parser.add_argument("--api-lookups", type=int, default=1_000, help="people per run for the consent API store")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--platforms", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--api", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="consentcrawl-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    reports = []
    try:
        for count in args.records:
            print(f"{count:,} records in {workdir}", file=sys.stderr)
            reports.append(measure(count, workdir, args))
            print(json.dumps(reports[-1]), file=sys.stderr)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
