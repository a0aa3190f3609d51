"""``consentcrawl audit report``: what a crawl fetched, what consent denied and why, from its audit log(s).

The log is read one line at a time and folded into counters (:class:`Summary`), so a log of millions of lines
costs the memory of its distinct reasons, platforms, people and time buckets, never of its lines. Several logs
(one chain per worker process) add up into one summary.

Everything in a log is treated as untrusted text: URLs and subject ids come from the sites crawled. The terminal
summary shows them with control characters escaped (:func:`safe`), and the HTML report
(:mod:`consentcrawl.audit.html`) escapes them for HTML.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError

EXIT_OK, EXIT_USAGE = 0, 2

#: bucket widths (seconds) the decisions-over-time counts are kept at; the finest one that keeps at most
#: :data:`MAX_BUCKETS` buckets is used while reading, so the memory is bounded whatever the crawl's length
RESOLUTIONS = (0.01, 0.1, 1.0, 10.0, 60.0, 600.0, 3600.0, 21600.0, 86400.0, 7 * 86400.0)
MAX_BUCKETS = 4096
#: the number of bars the time chart aims at
TIME_BARS = 60
#: how many unreadable lines are named one by one (the rest are counted)
NAMED_BAD_LINES = 5

OFF_PLATFORM = "(off platform)"
#: the phases whose allow is a request sent: the downloader's send-time decision and scrapy-playwright's browser guard
SEND_PHASES = ("request", "browser")


def safe(value: Any, limit: int = 200) -> str:
    """``value`` as one line of printable text: control characters (terminal escapes, newlines) shown escaped."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


@dataclass(frozen=True)
class BadLine:
    path: str
    line: int
    why: str


@dataclass
class Summary:
    """The counts of one or more audit logs (add entries with :meth:`add`)."""

    files: list[str] = field(default_factory=list)
    lines: int = 0
    decisions: int = 0
    events: Counter[str] = field(default_factory=Counter)  #: event lines by kind (``chain-start``, ...)
    bad: int = 0  #: lines that are not a JSON object
    bad_lines: list[BadLine] = field(default_factory=list)  #: the first few of them
    verdicts: Counter[str] = field(default_factory=Counter)
    phases: Counter[tuple[str, str]] = field(default_factory=Counter)  #: (phase, verdict)
    denied: Counter[tuple[str, str]] = field(default_factory=Counter)  #: (stage, reason) of requests not sent
    responses_denied: Counter[tuple[str, str]] = field(default_factory=Counter)  #: (stage, reason), after fetching
    items_denied: Counter[tuple[str, str]] = field(default_factory=Counter)  #: (stage, reason), item phase
    not_enforced: int = 0  #: report-mode denies that were recorded but not enforced
    platforms: Counter[tuple[str, str]] = field(default_factory=Counter)  #: (platform, sent / denied) of requests
    fetched_people: set[tuple[str, str]] = field(default_factory=set)  #: (platform, subject) sent at request time
    collected_people: set[tuple[str, str]] = field(default_factory=set)  #: (platform, subject) of items kept
    denied_people: Counter[tuple[str, str]] = field(default_factory=Counter)  #: denies per (platform, subject)
    withdrawals: set[tuple[str, str]] = field(default_factory=set)  #: ``withdrawal-seen`` events' people
    signals: Counter[tuple[str, str]] = field(default_factory=Counter)  #: (signal, verdict) per decision citing
    signal_sources: dict[str, set[str]] = field(default_factory=dict)  #: signal -> where it was read
    purposes: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    first: float | None = None  #: earliest decision time (POSIX seconds)
    last: float | None = None
    resolution: float = RESOLUTIONS[0]
    buckets: dict[tuple[int, str], int] = field(default_factory=dict)  #: (time // resolution, verdict) -> count
    untimed: int = 0  #: decisions whose time could not be read
    #: (the fixed time, when the crawl started) of each crawl that decided as of ``CONSENTCRAWL_NOW``, not the clock
    replays: list[tuple[str, str]] = field(default_factory=list)

    # -- reading -----------------------------------------------------------------------------------------------

    def add(self, entry: Any, where: tuple[str, int] = ("", 0)) -> None:
        """Fold one parsed line in."""
        self.lines += 1
        if not isinstance(entry, dict):
            self._bad(where, "not a JSON object")
            return
        kind = entry.get("event")
        if kind is not None:
            self._event(str(kind), entry)
            return
        verdict = entry.get("verdict")
        if verdict not in ("allow", "deny"):
            self._bad(where, "neither a decision (verdict allow or deny) nor an event")
            return
        self.decisions += 1
        self.verdicts[verdict] += 1
        phase = _text(entry.get("phase"))
        self.phases[(phase, verdict)] += 1
        platform = _text(entry.get("platform"), OFF_PLATFORM)
        subject = entry.get("subject")
        person = (platform, _text(subject)) if subject not in (None, "") else None
        self.purposes[_text(entry.get("purpose"))] += 1
        mode = _text(entry.get("mode"), "enforce")
        self.modes[mode] += 1
        reason = _text(entry.get("reason"))
        stage = _text(entry.get("stage"))
        if phase == "item":
            if verdict == "allow" and person:
                self.collected_people.add(person)
            elif verdict == "deny":
                self.items_denied[(stage, reason)] += 1
        elif phase == "response":  # about a request counted already (sent, or a cache hit): not a request
            if verdict == "deny":
                self.responses_denied[(stage, reason)] += 1
        else:
            if verdict == "deny":
                self.platforms[(platform, verdict)] += 1
                self.denied[(stage, reason)] += 1
                if person:
                    self.denied_people[person] += 1
                if mode == "report" and not reason.startswith("robots."):
                    self.not_enforced += 1
            elif phase in SEND_PHASES:
                self.platforms[(platform, verdict)] += 1
                if person:
                    self.fetched_people.add(person)
        self._signals(entry.get("evidence"))
        self._time(entry.get("time"), verdict)

    def _bad(self, where: tuple[str, int], why: str) -> None:
        self.bad += 1
        if len(self.bad_lines) < NAMED_BAD_LINES:
            self.bad_lines.append(BadLine(where[0], where[1], why))

    def _event(self, kind: str, entry: dict[str, Any]) -> None:
        self.events[kind] += 1
        if kind == "send-deferred":  # its allow (counted as sent) did not go: see :attr:`sent`
            self.platforms[(_text(entry.get("platform"), OFF_PLATFORM), "allow")] -= 1
        config = entry.get("config")
        if kind == "chain-start" and isinstance(config, dict) and config.get("now"):
            self.replays.append((_text(config["now"]), _text(entry.get("time"))))
        if kind == "withdrawal-seen":
            subject = entry.get("subject")
            if subject not in (None, ""):
                self.withdrawals.add((_text(entry.get("platform"), OFF_PLATFORM), _text(subject)))

    def _signals(self, evidence: Any) -> None:
        """Count each (signal, verdict) once per line, however many statements of it the line cites."""
        if not isinstance(evidence, list):
            return
        met: set[tuple[str, str]] = set()
        for ev in evidence:
            if not isinstance(ev, dict):
                continue
            kind = ev.get("kind")
            if isinstance(kind, str) and kind.startswith("signal."):
                name = kind[len("signal."):]
                met.add((name, _text(ev.get("verdict"))))
                sources = self.signal_sources.setdefault(name, set())
                if len(sources) < 100:
                    sources.add(_text(ev.get("source")))
            elif kind in ("X-Robots-Tag", "Robots-Tag", "meta-robots"):
                met.add((str(kind), _text(ev.get("directive"))))
        for key in met:
            self.signals[key] += 1

    def _time(self, value: Any, verdict: str) -> None:
        when = _timestamp(value)
        if when is None:
            self.untimed += 1
            return
        self.first = when if self.first is None else min(self.first, when)
        self.last = when if self.last is None else max(self.last, when)
        key = (math.floor(when / self.resolution), verdict)
        self.buckets[key] = self.buckets.get(key, 0) + 1
        if len(self.buckets) > MAX_BUCKETS:
            self._coarsen()

    def _coarsen(self) -> None:
        while len(self.buckets) > MAX_BUCKETS and self.resolution < RESOLUTIONS[-1]:
            finer, self.resolution = self.resolution, next(r for r in RESOLUTIONS if r > self.resolution)
            merged: dict[tuple[int, str], int] = {}
            for (index, verdict), count in self.buckets.items():
                key = (math.floor(index * finer / self.resolution + 1e-9), verdict)
                merged[key] = merged.get(key, 0) + count
            self.buckets = merged

    # -- what the report shows ---------------------------------------------------------------------------------

    def timeline(self, bars: int = TIME_BARS) -> tuple[float, list[tuple[float, int, int]]]:
        """(bucket width in seconds, [(bucket start, allows, denies)]) from the first to the last decision."""
        if self.first is None or self.last is None:
            return 0.0, []
        span = self.last - self.first
        width = next((r for r in RESOLUTIONS if r >= self.resolution and span / r < bars), None)
        if width is None:  # longer than the widest slice allows: whole multiples of it
            width = RESOLUTIONS[-1] * math.ceil((span / RESOLUTIONS[-1] + 1) / bars)
        start = math.floor(self.first / width)
        count = math.floor(self.last / width) - start + 1
        rows = [[0, 0] for _ in range(count)]
        for (index, verdict), n in self.buckets.items():
            slot = math.floor(index * self.resolution / width + 1e-9) - start
            rows[min(max(slot, 0), count - 1)][verdict == "deny"] += n
        return width, [((start + i) * width, a, d) for i, (a, d) in enumerate(rows)]

    def per_platform(self) -> list[tuple[str, int, int]]:
        """[(platform, allows, denies)], most decisions first."""
        names = {p for p, _ in self.platforms}
        rows = [(p, self.platforms[(p, "allow")], self.platforms[(p, "deny")]) for p in names]
        return sorted(rows, key=lambda r: (-(r[1] + r[2]), r[0]))

    def top_denied_people(self, n: int = 10) -> list[tuple[tuple[str, str], int]]:
        return sorted(self.denied_people.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def denials(self) -> list[tuple[tuple[str, str], int]]:
        """[((stage, reason), count)] outside the item phase, most first."""
        return sorted(self.denied.items(), key=lambda kv: (-kv[1], kv[0]))

    @property
    def sent(self) -> int:
        """Requests allowed at send time (the request phase) and by scrapy-playwright's browser guard, less the
        allows a ``send-deferred`` event says did not go (a distributed crawl's origin turn taken by another
        worker: the request was decided again, and that line is the one that went)."""
        return sum(self.phases[(phase, "allow")] for phase in SEND_PHASES) - self.events["send-deferred"]

    @property
    def denied_requests(self) -> int:
        """Requests denied before they were sent (dropped at scheduling or at send time, and the like)."""
        return sum(self.denied.values())


def _text(value: Any, default: str = "") -> str:
    if value is None:
        return default
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    if value.endswith(("Z", "z")):  # Python 3.10's fromisoformat does not read a "Z"
        value = value[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:  # times without a zone are UTC, as everywhere in consentcrawl
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def read_entries(paths: Iterable[str | Path]) -> Iterator[tuple[Any, tuple[str, int]]]:
    """(entry, (path, line number)) for each non-blank line of each log, one line in memory at a time.

    A line that is not JSON yields ``None`` (a torn last line after a crash, an edit): the caller counts it.
    Raises :class:`ConfigError` naming the file when it cannot be read.
    """
    for path in paths:
        name = str(path)
        try:
            with open(path, "rb") as f:
                for number, raw in enumerate(f, 1):
                    if not raw.strip():
                        continue
                    try:
                        yield json.loads(raw), (name, number)
                    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError; nested too deep
                        yield _Unreadable, (name, number)
        except OSError as exc:
            raise ConfigError(f"cannot read the audit log: {exc.strerror or exc}", source=name) from None


class _UnreadableType:
    """Stands for a line that is not JSON (distinct from a JSON ``null``)."""


_Unreadable = _UnreadableType()


def log_paths(given: Iterable[str]) -> list[str]:
    """The logs named on the command line, a pattern (``audit-*.jsonl``, as a distributed crawl's closing line
    prints it for every worker's log) expanded here when no file has that very name, so it works quoted too.
    Raises :class:`ConfigError` for a pattern that matches no file."""
    out: list[str] = []
    for name in given:
        if Path(name).exists() or not any(c in name for c in "*?["):
            out.append(name)
            continue
        found = sorted(glob.glob(name))
        if not found:
            raise ConfigError("no audit log matches this pattern", source=name)
        out.extend(found)
    return out


def summarize(paths: Iterable[str | Path]) -> Summary:
    summary = Summary(files=[str(p) for p in paths])
    for entry, where in read_entries(summary.files):
        if entry is _Unreadable:
            summary.lines += 1
            summary._bad(where, "not JSON (a torn or edited line)")
        else:
            summary.add(entry, where)
    return summary


# -- the terminal summary ------------------------------------------------------------------------------------


def replay_warning(summary: Summary) -> str | None:
    """What a report of crawls decided as of ``CONSENTCRAWL_NOW`` must say first: their lines carry that time, not
    the time of the fetch, and a withdrawal or expiry after it was not honoured (its pages were fetched)."""
    if not summary.replays:
        return None
    as_of, started = (safe(value, limit=64) for value in summary.replays[0])  # the log's text: one printable line
    more = f" (and {len(summary.replays) - 1} more crawl(s))" if len(summary.replays) > 1 else ""
    return (f"REPLAY: decided as of a fixed time (CONSENTCRAWL_NOW), not the clock: as of {as_of}, in a crawl started "
            f"{started}{more}. Decision times are that fixed time; withdrawals and expiries after it were not "
            "honoured.")


def format_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")
    except (ValueError, OverflowError, OSError):  # before year 1 once in UTC (an edited log)
        return f"{ts:.0f} s since 1970"


# -- the command -----------------------------------------------------------------------------------------------


def add_report_parser(audit_subparsers: Any) -> argparse.ArgumentParser:
    """Add ``report`` to the ``consentcrawl audit`` subcommands."""
    report = audit_subparsers.add_parser("report", help="summarize audit logs in the terminal, and optionally as a "
                                                        "self-contained HTML page with charts")
    report.add_argument("logs", nargs="+", metavar="LOG", help="audit log(s) or a pattern (quoted: audit-*.jsonl); "
                                                              "several (one per worker) add up")
    report.add_argument("--html", metavar="OUT", help="also write the HTML report to this file")
    report.set_defaults(func=cmd_report)
    return report


def cmd_report(args: argparse.Namespace) -> int:
    from .terminal import terminal

    summary = summarize(log_paths(args.logs))
    print(terminal(summary))
    if args.html:
        from .html import render

        out = Path(args.html)
        try:
            out.write_text(render(summary), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write the HTML report: {exc.strerror or exc}", source=str(out)) from None
        print(f"\nHTML report: {safe(out)}", file=sys.stdout)
    return EXIT_OK
