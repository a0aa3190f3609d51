"""How fast ``consentcrawl audit report`` reads a big log, and with how much memory.

A real crawl's audit log (``--log``, e.g. the demo's ``output/audit.jsonl``) is repeated, each copy a day later
so the log spans months, up to ``--lines`` lines, and streamed through a named pipe (the log is never on disk whole)
into ``consentcrawl audit report --html`` in a child process; its wall time and peak resident memory are printed.

    python benchmarks/audit_report.py --log output/audit.jsonl --lines 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path


def feed(fifo: Path, lines: list[str], total: int) -> None:
    """The log again and again, each copy a day later (so the report's time slices widen), ``total`` lines."""
    day = str(json.loads(lines[0])["time"])[:11]  # "2026-12-01T"
    first = datetime.fromisoformat(day[:10])
    with fifo.open("w", encoding="utf-8") as out:
        written, copy = 0, 0
        while written < total:
            chunk = lines[:total - written]
            later = (first + timedelta(days=copy)).date().isoformat() + "T"
            out.write("".join(chunk).replace(day, later))
            written += len(chunk)
            copy += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, required=True, help="a real crawl's audit log to repeat")
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    lines = [line + "\n" for line in args.log.read_text(encoding="utf-8").splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        fifo = Path(tmp) / "audit.jsonl"
        os.mkfifo(fifo)
        writer = threading.Thread(target=feed, args=(fifo, lines, args.lines))
        writer.start()
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "consentcrawl.cli", "audit", "report", str(fifo), "--html",
                        str(Path(tmp) / "report.html")], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        writer.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    print(f"{args.lines} lines (from {len(lines)} of {args.log}): {seconds:.1f} s wall, {cpu:.1f} s CPU "
          f"({args.lines / cpu:,.0f} lines per CPU second), peak RSS of the report process "
          f"{usage.ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
