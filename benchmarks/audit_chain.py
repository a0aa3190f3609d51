"""What the audit log's hash chain costs per decision: chain on vs off, side by side in one run.

Usage: ``python benchmarks/audit_chain.py [--lines 20000] [--runs 7] [--groups 1,16] [--no-callgrind]``

Each decision line is a realistic allow (robots.txt, platform and subject evidence, ~1.1 KB of JSON), queued and
written by :class:`consentcrawl.audit.log.AuditLog` in groups of G lines (``queue`` G times, one ``flush``, as
the crawl's group commit does per event-loop turn), to a file in a temporary directory on the disk the
benchmark is run from. ``chained=False`` is the log without a chain (plain lines), for comparison.

Two measurements:

- **Instructions per line** (valgrind's callgrind, as ``instructions.py``): a fresh ``python`` writes N and 2N
  lines, chain on and off; ``(Ir(2N) - Ir(N)) / N`` is one more line's cost, start-up cancelled out. Without the
  fsync (its kernel side is not in ``Ir`` anyway).
- **Time per line**, in this process with the garbage collector frozen and off, median of ``--runs`` runs
  (interleaved on/off): CPU time (``process_time``: building the line, sealing it, the system calls' CPU) with
  ``fdatasync`` off, and wall time with it on (what a decision waits for: its group's write and sync).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from consentcrawl.audit.log import AuditLog  # noqa: E402
from consentcrawl.decision import Decision, Evidence, Stage, Verdict  # noqa: E402

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def decision() -> Decision:
    """An allow with the evidence a crawl's allow carries (docs/audit-log.md's example line)."""
    return Decision(Verdict.ALLOW, Stage.SUBJECT, "subject.authorized", subject="1022", platform="microblog",
                    evidence=(
        Evidence("robots.txt", "http://microblog.example/robots.txt", {
            "robots_url": "http://microblog.example/robots.txt", "robots_status": "ok", "http_status": 200,
            "fetched_at": "2026-11-30T23:20:02.923474+00:00", "size": 200, "path": "/u/1022/", "rule": "Allow: /",
            "line": 6, "group": "*", "group_line": 2}),
        Evidence("platform-authorization", "settings/platforms.yaml:4", {
            "platform": "microblog", "reference": "Demo data access agreement MB-DEMO-1", "purposes": ["research"],
            "valid_from": "2026-01-01T00:00:00+00:00", "valid_until": "2028-01-01T00:00:00+00:00"}),
        Evidence("subject-authorization", "settings/authorizations.yaml:61", {
            "platform": "microblog", "subject": "1022", "record_id": None, "purposes": ["research"],
            "granted_at": "2026-07-27T12:00:00+00:00", "expires_at": "2028-07-26T12:00:00+00:00",
            "revoked_at": None, "evidence": "consent form MB-CF-0009"}),
    ))


def write(path: Path, lines: int, group: int, *, chained: bool, sync: bool) -> None:
    made = decision()
    log = AuditLog(path, sync=sync, chained=chained)
    url = "http://microblog.example/u/1022/"
    for start in range(0, lines, group):
        tickets = [log.queue(made, time=NOW, phase="request", url=url, canonical_url=url, purpose="research")
                   for _ in range(min(group, lines - start))]
        log.flush()
        assert all(log.written(t) for t in tickets)
    log.close()


def timed(directory: Path, lines: int, group: int, *, chained: bool, sync: bool) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per line of one run."""
    path = directory / f"audit-{chained}-{sync}-{group}.jsonl"
    path.unlink(missing_ok=True)
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        write(path, lines, group, chained=chained, sync=sync)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        gc.enable()
        gc.unfreeze()
    path.unlink()
    return cpu / lines, wall / lines


def instructions(directory: Path, lines: int, group: int, chained: bool) -> int:
    out = directory / f"callgrind.{chained}.{lines}.{group}.out"
    log = directory / f"cg-{chained}-{lines}-{group}.jsonl"
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
                    "--child", str(log), str(lines), str(group), "on" if chained else "off"],
                   check=True, capture_output=True, env=env)
    with out.open(errors="replace") as f:
        total = next(int(line.split()[1]) for line in f if line.startswith(("totals:", "summary:")))
    out.unlink()
    log.unlink()
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20000, help="lines per timed run (default 20000)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per configuration (default 7)")
    parser.add_argument("--groups", default="1,16", help="lines per group write (default 1,16)")
    parser.add_argument("--callgrind-lines", type=int, default=5000, help="N for callgrind (default 5000)")
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--child", nargs=4, metavar=("LOG", "LINES", "GROUP", "CHAIN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, lines, group, chain = args.child
        write(Path(path), int(lines), int(group), chained=chain == "on", sync=False)
        return 0
    groups = [int(g) for g in args.groups.split(",")]
    directory = Path(tempfile.mkdtemp(prefix="audit-chain-", dir=Path.cwd()))
    try:
        sample = directory / "sample.jsonl"
        write(sample, 1, 1, chained=True, sync=False)
        size = len(sample.read_bytes().splitlines()[1])
        sample.unlink()
        print(f"python {sys.version.split()[0]}, {os.uname().machine}, {os.cpu_count()} CPUs; a line is {size} "
              f"bytes; {args.lines} lines per run, median of {args.runs}")
        if not args.no_callgrind and shutil.which("valgrind"):
            n = args.callgrind_lines
            for group in groups:
                per = {}
                for chained in (False, True):
                    per[chained] = (instructions(directory, 2 * n, group, chained)
                                    - instructions(directory, n, group, chained)) / n
                print(f"instructions per line, groups of {group}: chain off {per[False]:,.0f}, chain on "
                      f"{per[True]:,.0f} (+{per[True] - per[False]:,.0f}, "
                      f"+{100 * (per[True] - per[False]) / per[False]:.1f}%)")
        print("| group | fdatasync | measure | chain off | chain on | chain's cost |")
        print("|---:|---|---|---:|---:|---:|")
        for group in groups:
            for sync in (False, True):
                lines = args.lines if not sync else max(group * 50, args.lines // (20 if group == 1 else 4))
                results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
                for _ in range(args.runs):
                    for chained in (False, True):
                        results[chained].append(timed(directory, lines, group, chained=chained, sync=sync))
                which = 1 if sync else 0
                off = statistics.median(r[which] for r in results[False]) * 1e6
                on = statistics.median(r[which] for r in results[True]) * 1e6
                measure = "wall µs/line" if sync else "CPU µs/line"
                print(f"| {group} | {'on' if sync else 'off'} | {measure} | {off:.2f} | {on:.2f} | "
                      f"{on - off:+.2f} ({100 * (on - off) / off:+.1f}%) |")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
