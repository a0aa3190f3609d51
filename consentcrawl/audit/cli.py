"""``consentcrawl audit ...``: check an audit log's hash chain, and merge the chains of several crawls.

``verify`` exits 0 when every line verifies (notes, such as a segment whose crawl did not close, are printed but
are not errors), 1 at the first line that does not (a torn last line after a crash included: it says up to which
line the log verifies), 2 when it cannot read a file. ``merge`` verifies every source first and refuses (1) when
one does not verify.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from .chain import FORMAT, Problem, Source, line_hash, merge, read_source, verify

EXIT_OK, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2

_HASH = re.compile(r"[0-9a-f]{64}")


def add_audit_commands(sub: Any) -> Any:
    """Add ``audit`` to the CLI's subcommands; returns its own subparsers, for more ``audit`` commands.

    Each command sets ``func`` (``args -> exit code``) with ``set_defaults``, as the top-level ones do.
    """
    audit = sub.add_parser("audit", help="audit logs: verify and merge hash chains, report, explain a decision")
    actions = audit.add_subparsers(dest="action", required=True)

    check = actions.add_parser("verify", help="check audit logs' hash chains: exit 0 when intact, 1 with the "
                                              "first line that is not (docs/audit-log.md)")
    check.add_argument("logs", nargs="+", metavar="LOG")
    check.add_argument("--end", metavar="HASH", help="the end hash published for the log (its anchor): the log "
                                                     "must contain the line with that hash (one LOG only)")
    check.set_defaults(func=cmd_verify)

    join = actions.add_parser("merge", help="verify the chains of several logs and merge them into one "
                                            "time-ordered chain that lists every chain's end hash")
    join.add_argument("logs", nargs="+", metavar="LOG")
    join.add_argument("-o", "--output", metavar="OUT", help="write the merged log here (a new file; default: "
                                                            "standard output)")
    join.set_defaults(func=cmd_merge)
    return actions


def cmd_verify(args: argparse.Namespace) -> int:
    end = args.end.strip().lower() if args.end else None
    if end is not None and (not _HASH.fullmatch(end) or len(args.logs) != 1):
        return _usage("--end takes one SHA-256 hash (64 hex digits), and one LOG")
    worst = EXIT_OK
    for log in args.logs:
        try:
            result = verify(log, end=end)
        except OSError as exc:
            print(f"consentcrawl audit verify: {log}: {exc.strerror or exc}", file=sys.stderr)
            worst = EXIT_USAGE
            continue
        if result.problem is None:
            chains = result.chains
            print(f"{log}: intact: {result.lines} line{'s' if result.lines != 1 else ''}, "
                  f"{len(result.segments)} segment{'s' if len(result.segments) != 1 else ''} of chain "
                  f"{', '.join(chains) or '(none)'}; end hash {result.end}")
        else:
            problem = result.problem
            print(f"{log}: line {problem.line}: {problem.kind}: {problem.message}")
            if problem.kind != "torn":
                print(f"{log}: lines 1-{result.lines} verify (end hash {result.end})" if result.lines
                      else f"{log}: no line verifies")
            worst = max(worst, EXIT_BROKEN)
        for note in result.notes:
            print(f"{log}: note: {note}")
    return worst


def cmd_merge(args: argparse.Namespace) -> int:
    out = Path(args.output) if args.output else None
    if out is not None and out.exists():
        return _usage(f"{out} exists: merge writes a new file")
    sources: list[Source] = []
    from .report import log_paths

    args.logs = log_paths(args.logs)
    for log in args.logs:
        try:
            source = read_source(log)
        except OSError as exc:
            return _usage(f"{log}: {exc.strerror or exc}")
        if isinstance(source, Problem):
            print(f"consentcrawl audit merge: {log}: line {source.line}: {source.kind}: {source.message}; "
                  "nothing merged", file=sys.stderr)
            return EXIT_BROKEN
        twin = next((s for s in sources if s.chain == source.chain), None)
        if twin is not None:
            print(f"consentcrawl audit merge: {twin.file} and {log} hold the same chain {source.chain} (one is a "
                  "copy, or a part, of the other); nothing merged", file=sys.stderr)
            return EXIT_BROKEN
        sources.append(source)
    chain = uuid.uuid4().hex
    now = datetime.now(timezone.utc).isoformat()
    lines = merge(sources, chain=chain, closing={"time": now},
                  header={"time": now, "format": FORMAT, "host": socket.gethostname(), "pid": os.getpid()})
    try:
        if out is None:
            end, count = _write(lines, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            where = "standard output"
        else:
            end, count = _write_new(out, lines)
            where = str(out)
    except OSError as exc:
        return _usage(f"cannot write {out or 'standard output'}: {exc.strerror or exc}")
    except ValueError as exc:  # a source changed between its check and its merge
        print(f"consentcrawl audit merge: {exc}; {'nothing merged' if out else 'the output is incomplete'}",
              file=sys.stderr)
        return EXIT_BROKEN
    print(f"consentcrawl audit merge: {count} lines of {len(sources)} chain{'s' if len(sources) != 1 else ''} "
          f"merged into {where}: chain {chain}, end hash {end}", file=sys.stderr)
    return EXIT_OK


def _write(lines: Iterable[bytes], f: IO[bytes]) -> tuple[str, int]:
    end, count = "", 0
    for line in lines:
        f.write(line)
        end, count = line_hash(line), count + 1
    return end, count


def _write_new(out: Path, lines: Iterable[bytes]) -> tuple[str, int]:
    """Write to a temporary file beside ``out``, sync it, and link it into place (never over an existing file)."""
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            end, count = _write(lines, f)
            f.flush()
            os.fsync(f.fileno())
        os.link(name, out)  # fails if ``out`` appeared meanwhile
    finally:
        os.unlink(name)
    return end, count


def _usage(message: str) -> int:
    print(f"consentcrawl audit: {message}", file=sys.stderr)
    return EXIT_USAGE
