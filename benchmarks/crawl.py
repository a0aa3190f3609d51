"""What does consent cost a crawl? The same crawl with plain Scrapy, Scrapy's robots middleware, and consentcrawl.

Usage: ``python benchmarks/crawl.py [--pages 5000] [--rounds 5] [--concurrent-items 16,100] [--mode report]``

It starts ``platform_server.py`` (a separate process on loopback; its capacity is measured first), builds an
SQLite authorization store of 1,000,000 synthetic records covering half of the crawled profiles, then crawls the
N profiles in these configurations, interleaved round by round (a b c a b c ...), each crawl in its own process
(so CPU and peak RSS are its own), through ``http_proxy`` like any crawler reaching real host names:

- (a) plain Scrapy, ``ROBOTSTXT_OBEY=False``;
- (b) Scrapy with ``ROBOTSTXT_OBEY=True``;
- (c) consentcrawl (``ADDONS``): robots, platform terms, the SQLite store and the audit log, all on;
- (f), only when asked for (``--configs a,c,f``): the floor of ``_floor.py`` as a configuration of its own.

Same spider, ``CONCURRENT_REQUESTS=16`` (per domain too), no HTTP cache, ``LOG_LEVEL=INFO`` to a file. Each
configuration is run with every ``CONCURRENT_ITEMS`` value given (Scrapy's default 100 starts that many tasks
per callback output; 16 is the tuned crawl, which leaves less room for us).

(c) runs in ``--mode report`` by default: every decision is made, recorded and counted but nothing is dropped,
so (c) fetches exactly what (a) and (b) fetch and the throughput ratio compares equal work. In ``enforce`` mode
it would skip the unauthorized half of the profiles, which is faster but not comparable.

Reported per configuration: items/s, CPU µs per response and peak RSS (medians of the rounds), the ratios
(c)/(a) and (b)/(a) (median of the per-round ratios), and, inside (c), the CPU of consentcrawl's own code per
request, measured by instrumentation and by sampling (see ``_crawl_one.py``). One extra (c) crawl with a
calibration middleware burning a known number of µs of CPU per request checks both measurements. One more, the
*floor*, puts stand-ins that do one dict lookup in each of the add-on's places (``_floor.py``) and accounts for
them the same way: what a consent layer costs there before it does any work. It also times the same call of our
code twice in a row inside the crawl, to show what running after Scrapy's work (cold CPU caches) costs.

The last two lines are ``consentcrawl/plain throughput ratio: X.XX (median of N rounds)`` (for the first
``--concurrent-items`` value) and ``consentcrawl CPU per request: N us`` (sampled, median of the (c) crawls).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import platform_server  # noqa: E402
from synthetic import PLATFORMS_YAML, row_at  # noqa: E402

STORE_RECORDS = 1_000_000
CONFIGS = {"a": "plain Scrapy", "b": "Scrapy + ROBOTSTXT_OBEY", "c": "consentcrawl",
           "f": "floor: stand-ins doing nothing in (c)'s places"}


def crawl_once(config: str, args: argparse.Namespace, workdir: Path, port: int, server_pid: int,
               concurrent_items: int, calibrate_us: float = 0.0) -> dict[str, Any]:
    """One crawl in a fresh process; returns its JSON plus the server's CPU for it."""
    env = dict(os.environ, http_proxy=f"http://127.0.0.1:{port}")
    for name in ("https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(name, None)
    floor = config == "f"  # (c)'s crawl with the stand-ins of _floor.py
    command = [sys.executable, str(HERE / "_crawl_one.py"), "c" if floor else config, "--pages", str(args.pages),
               "--workdir", str(workdir), "--concurrent-items", str(concurrent_items), "--mode", args.mode]
    if calibrate_us:
        command += ["--calibrate-us", str(calibrate_us)]
    if floor:
        command += ["--floor"]
    server_cpu = platform_server.process_cpu(server_pid)
    out = subprocess.run(command, env=env, check=True, text=True, stdout=subprocess.PIPE)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["config"] = config
    result["server_cpu_us_per_response"] = ((platform_server.process_cpu(server_pid) - server_cpu) * 1e6
                                            / max(1, result["responses"]))
    if result["finish_reason"] != "finished" or result["items"] < args.pages:
        raise RuntimeError(f"crawl {config} did not crawl everything: {result}")
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(runs: list[dict[str, Any]], concurrent_items: int, rounds: int) -> dict[str, Any]:
    """Medians per configuration and the per-round ratios to (a)."""
    mine = [r for r in runs if r["concurrent_items"] == concurrent_items and not r.get("calibration")]
    by_config = {c: [r for r in mine if r["config"] == c] for c in CONFIGS}
    table: dict[str, Any] = {}
    for config, results in by_config.items():
        if not results:
            continue
        table[config] = {
            "items_per_s": median([r["items_per_s"] for r in results]),
            "cpu_us_per_response": median([r["cpu_us_per_response"] for r in results]),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in results]),
            "server_cpu_us_per_response": median([r["server_cpu_us_per_response"] for r in results]),
            "gc_us_per_response": median([r["gc"]["us_per_response"] for r in results]),
            "runs": len(results),
        }
    ratios: dict[str, list[float]] = {"b": [], "c": [], "f": []}
    for round_ in range(rounds):
        plain = [r for r in by_config["a"] if r["round"] == round_]
        for config in ("b", "c", "f"):
            other = [r for r in by_config.get(config, []) if r["round"] == round_]
            if plain and other:
                ratios[config].append(other[0]["items_per_s"] / plain[0]["items_per_s"])
    for config, values in ratios.items():
        if config in table and values:
            table[config]["ratio_to_a"] = median(values)
            table[config]["ratio_to_a_rounds"] = values
            table[config]["cpu_ratio_to_a"] = table[config]["cpu_us_per_response"] / table["a"]["cpu_us_per_response"]
    for config in ("c", "f"):  # the floor's stand-ins are accounted under the same owner name
        consent = [r["consentcrawl"] for r in by_config.get(config, []) if "consentcrawl" in r]
        if not consent:
            continue
        row = table[config]
        row["consent_sampled_us"] = median([c["sampled_us_per_request"] for c in consent])
        row["consent_instrumented_us"] = median([c["instrumented_us_per_request"] for c in consent])
        row["consent_share"] = median([c["share_of_cpu"] for c in consent])
        row["gc_landed_in_consent_us"] = median([r["gc"]["landed_us_per_response"].get("consentcrawl", 0.0)
                                                 for r in by_config[config]])
        points = sorted({k for c in consent for k in c["by_entry_point_us_per_request"]})
        row["consent_by_entry_point_us"] = {
            k: median([c["by_entry_point_us_per_request"].get(k, 0.0) for c in consent]) for k in points}
    return table


def report(summaries: dict[int, dict[str, Any]], capacity: dict[str, Any], calibration: dict[str, Any] | None,
           args: argparse.Namespace, store: dict[str, Any], floor: dict[str, Any] | None = None,
           probe: dict[str, Any] | None = None) -> str:
    lines = [f"{args.pages:,} profiles per crawl, {args.rounds} rounds, (c) in {args.mode} mode; store of "
             f"{STORE_RECORDS:,} records built in {store['build_s']:.1f} s ({store['bytes'] / 1e6:.0f} MB)", "",
             f"platform server capacity: {capacity['requests_per_s']:,.0f} requests/s from {capacity['connections']} "
             f"keep-alive connections ({capacity['server_cpu_us_per_request']:.0f} µs of server CPU per request; "
             "the load generator is Python too, so this is a lower bound)", "",
             "| CONCURRENT_ITEMS | config | items/s | ratio to (a) | CPU µs/response | CPU ratio | peak RSS MB | "
             "server CPU µs/response | GC µs/response |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for ci, table in summaries.items():
        for config, name in CONFIGS.items():
            row = table.get(config)
            if row is None:
                continue
            ratio = f"{row['ratio_to_a']:.3f}" if "ratio_to_a" in row else "1"
            cpu_ratio = f"{row['cpu_ratio_to_a']:.3f}" if "cpu_ratio_to_a" in row else "1"
            lines.append(f"| {ci} | ({config}) {name} | {row['items_per_s']:.1f} | {ratio} | "
                         f"{row['cpu_us_per_response']:,.0f} | {cpu_ratio} | {row['peak_rss_mb']:.0f} | "
                         f"{row['server_cpu_us_per_response']:.0f} | {row['gc_us_per_response']:.0f} |")
    lines += ["", "consentcrawl's own CPU per request inside (c) (and the floor's stand-ins inside (f)), medians of "
                  "the rounds (garbage collections that happened to start inside that code are charged to GC, in the "
                  "last column):", "",
              "| CONCURRENT_ITEMS | config | sampled µs | instrumented µs | share of the crawl's CPU | "
              "by entry point (instrumented µs) | GC that landed in that code, µs |",
              "|---:|---|---:|---:|---:|---|---:|"]
    for ci, table in summaries.items():
        for config in ("c", "f"):
            c = table.get(config, {})
            if "consent_sampled_us" in c:
                points = ", ".join(f"{k} {v:.0f}" for k, v in c["consent_by_entry_point_us"].items())
                lines.append(f"| {ci} | ({config}) | {c['consent_sampled_us']:.0f} | "
                             f"{c['consent_instrumented_us']:.0f} | {c['consent_share']:.1%} | {points} | "
                             f"{c['gc_landed_in_consent_us']:.0f} |")
    if calibration is not None:
        cal = calibration["calibration"]
        lines += ["", f"calibration: a middleware burning {calibration['burn_us']:.0f} µs of thread CPU per request "
                      f"was measured at {cal['instrumented_us_per_request']:.1f} µs (instrumented) and "
                      f"{cal['sampled_us_per_request']:.1f} µs (sampled, {cal['samples']} samples); consentcrawl in "
                      f"the same crawl: {calibration['consentcrawl']['instrumented_us_per_request']:.0f} µs "
                      f"(instrumented), {calibration['consentcrawl']['sampled_us_per_request']:.0f} µs (sampled); "
                      f"whole-process CPU per response {calibration['cpu_us_per_response']:,.0f} µs against "
                      f"{calibration['baseline_cpu_us_per_response']:,.0f} µs for (c) without it (expected "
                      f"+{calibration['burn_us'] * calibration['requests'] / calibration['responses']:.0f})"]
    if floor is not None:
        mine, probe = floor["consentcrawl"], floor["probe"]
        points = ", ".join(f"{k} {v:.0f}" for k, v in mine["by_entry_point_us_per_request"].items())
        lines += ["", f"floor: stand-ins doing one dict lookup in each of the add-on's places (_floor.py), accounted "
                      f"the same way: {mine['instrumented_us_per_request']:.1f} µs per request instrumented "
                      f"({points}), "
                      f"{mine['sampled_us_per_request']:.1f} µs sampled ({mine['samples']} samples); whole-process "
                      f"CPU per response {floor['cpu_us_per_response']:,.0f} µs, {floor['items_per_s']:.1f} items/s"]
    if probe is not None:
        lines += [""] * (floor is None) + [
                  f"probe (consentcrawl's canonicalize + key hash, timed twice in a row at the start of each "
                  f"response's spider output, {probe['count']:,} times{probe.get('runs', '')}): first call "
                  f"{probe['cold']:.1f} µs, second call {probe['warm']:.1f} µs (median): code of ours that runs "
                  f"after Scrapy's costs {probe['cold'] / probe['warm']:.1f}x what it costs in a loop"]
    return "\n".join(lines)


def floor_probe(runs: list[dict[str, Any]], concurrent_items: int) -> dict[str, Any] | None:
    """The probe of the (f) crawls in the rounds (``--configs`` with f): medians over the rounds."""
    probes = [r["probe"] for r in runs if r["config"] == "f" and r["concurrent_items"] == concurrent_items]
    if not probes:
        return None
    return {"count": sum(p["count"] for p in probes), "cold": median([p["cold"] for p in probes]),
            "warm": median([p["warm"] for p in probes]), "runs": f", medians of {len(probes)} (f) crawls"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=5000, help="profiles to crawl (default 5000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of a b c (default 5)")
    parser.add_argument("--configs", default="a,b,c",
                        help="configurations to run: a, b, c and f (the floor, _floor.py); default a,b,c")
    parser.add_argument("--concurrent-items", default="16,100",
                        help="CONCURRENT_ITEMS values, comma-separated; the ratio line uses the first (default 16,100)")
    parser.add_argument("--mode", choices=["report", "enforce"], default="report",
                        help="consentcrawl's mode in (c) (default report: same fetches as (a))")
    parser.add_argument("--calibrate-us", type=float, default=200.0,
                        help="µs of CPU the calibration middleware burns per request (0: no calibration run)")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="skip the floor crawl (stand-ins that do nothing in the add-on's places, _floor.py)")
    parser.add_argument("--selftest-seconds", type=float, default=3.0, help="server capacity test length")
    parser.add_argument("--workdir", help="keep the store, audit logs and crawl logs here (default: a temp dir)")
    parser.add_argument("--json", metavar="FILE", help="also write every run's measurements to FILE")
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    variants = [int(v) for v in args.concurrent_items.split(",") if v.strip()]
    if not configs or set(configs) - set(CONFIGS) or not variants or args.rounds < 1:
        parser.error("--configs takes a, b, c and f; --concurrent-items and --rounds at least one")

    tmp = None if args.workdir else tempfile.TemporaryDirectory(prefix="consentcrawl-crawl-")
    workdir = Path(args.workdir or tmp.name)  # type: ignore[union-attr]
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        (workdir / "platforms.yaml").write_text(PLATFORMS_YAML)
        store: dict[str, Any] = {"build_s": 0.0, "bytes": 0}
        if "c" in configs:
            from consentcrawl.consent.sqlite import bulk_build

            print(f"building an SQLite store of {STORE_RECORDS:,} records ...", flush=True)
            start = time.perf_counter()
            bulk_build(str(workdir / "store.db"), STORE_RECORDS, row_at)
            store = {"build_s": time.perf_counter() - start, "bytes": (workdir / "store.db").stat().st_size}
        print("measuring the platform server's capacity ...", flush=True)
        capacity = platform_server.selftest(args.pages, args.selftest_seconds, 16)
        print(f"  {capacity['requests_per_s']:,.0f} requests/s", flush=True)
        server, port = platform_server.start_server(args.pages)
        runs: list[dict[str, Any]] = []
        calibration = None
        floor = None
        try:
            print("warming up ...", flush=True)
            for config in configs:
                crawl_once(config, argparse.Namespace(**{**vars(args), "pages": min(args.pages, 200)}), workdir,
                           port, server.pid, variants[0])
            for round_ in range(args.rounds):
                for ci in variants:
                    for config in configs:
                        result = crawl_once(config, args, workdir, port, server.pid, ci)
                        result["round"] = round_
                        runs.append(result)
                        extra = ""
                        if "consentcrawl" in result:
                            extra = f", consentcrawl {result['consentcrawl']['sampled_us_per_request']:.0f} µs/request"
                        print(f"round {round_ + 1}/{args.rounds} CONCURRENT_ITEMS={ci} ({config}): "
                              f"{result['items_per_s']:.1f} items/s, {result['cpu_us_per_response']:,.0f} µs CPU/"
                              f"response, {result['peak_rss_mb']:.0f} MB{extra}", flush=True)
            if args.calibrate_us and "c" in configs:
                print(f"calibration: (c) with a middleware burning {args.calibrate_us:.0f} µs per request ...",
                      flush=True)
                calibration = crawl_once("c", args, workdir, port, server.pid, variants[0], args.calibrate_us)
                calibration.update(calibration=calibration["calibration"], burn_us=args.calibrate_us)
                baseline = [r["cpu_us_per_response"] for r in runs
                            if r["config"] == "c" and r["concurrent_items"] == variants[0]]
                calibration["baseline_cpu_us_per_response"] = median(baseline)
            if args.floor and "c" in configs and "f" not in configs:
                print("floor: (c) with stand-ins doing nothing in the add-on's places ...", flush=True)
                floor = crawl_once("f", args, workdir, port, server.pid, variants[0])
        finally:
            platform_server.stop_server(server)
        summaries = {ci: summarize(runs, ci, args.rounds) for ci in variants}
        if args.json:
            Path(args.json).write_text(json.dumps({"runs": runs, "summaries": summaries, "capacity": capacity,
                                                   "calibration": calibration, "floor": floor, "store": store,
                                                   "args": vars(args)}, indent=2) + "\n")
        print()
        probe = floor["probe"] if floor is not None else floor_probe(runs, variants[0])
        print(report(summaries, capacity, calibration, args, store, floor, probe))
        main_table = summaries[variants[0]]
        if "c" in main_table and "a" in main_table:
            print(f"consentcrawl/plain throughput ratio: {main_table['c']['ratio_to_a']:.2f} "
                  f"(median of {len(main_table['c']['ratio_to_a_rounds'])} rounds)")
            consent = [r["consentcrawl"]["sampled_us_per_request"] for r in runs
                       if r["config"] == "c" and "consentcrawl" in r]
            print(f"consentcrawl CPU per request: {median(consent):.0f} us")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
