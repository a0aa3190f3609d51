"""The audit log's hash chain: how a line is sealed, and how a log is checked (docs/audit-log.md, "Hash chain").

Every line ends with its sequence number and the SHA-256 of the line before it, exactly as the file holds it
(newline included)::

    {...the entry...,"seq":7,"prev":"<64 hex digits>"}\\n

so a line edited, removed, moved or repeated breaks the chain at the next line. The first line of a chain is a
``chain-start`` event (``prev`` is 64 zeros); a crawl that appends to an existing log starts a new segment with
its own ``chain-start`` line, whose ``prev`` is the hash of the file's last line. A clean close writes a
``chain-end`` event: the hash of the last line (the *end hash*) is what an operator publishes to anchor the log.

A merged log (:func:`merge`) is a chain of its own whose lines each carry the line of a source chain, with that
line's chain id, ``seq`` and ``prev`` under ``origin``: the source lines can be rebuilt byte for byte from it, so
a merged log proves its sources too.

No I/O here besides reading the files named; no clock.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

#: ``prev`` of a chain's first line
GENESIS = "0" * 64
#: the ``event`` of a segment's first line, and of a clean close's last line
CHAIN_START, CHAIN_END = "chain-start", "chain-end"
#: the version of the chain's format, in every ``chain-start`` line
FORMAT = "consentcrawl-audit-chain/1"

#: how a sealed line ends: ``,"seq":N,"prev":"HEX"}`` and the newline
_SEAL = re.compile(rb',"seq":(0|[1-9][0-9]*),"prev":"([0-9a-f]{64})"\}\n\Z')
_ORIGIN = b',"origin":{"chain":"'
#: a chain id: written into merged lines as it is
_CHAIN_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def line_hash(line: bytes) -> str:
    """The hash the next line's ``prev`` holds: SHA-256 over the line's exact bytes, newline included."""
    return hashlib.sha256(line).hexdigest()


def seal(body: bytes, seq: int, prev: str) -> bytes:
    """``body`` (an entry's JSON object without its closing brace) with its ``seq`` and ``prev``, as a line."""
    return b'%s,"seq":%d,"prev":"%s"}\n' % (body, seq, prev.encode())


def unseal(line: bytes) -> tuple[bytes, int, str] | None:
    """A sealed line's body, ``seq`` and ``prev``; None when the line does not end the way :func:`seal` writes."""
    match = _SEAL.search(line)
    if match is None:
        return None
    return line[:match.start()], int(match.group(1)), match.group(2).decode()


def canonical_json(value: Any) -> bytes:
    """The bytes ``config_sha256`` is taken over: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- verifying ----------------------------------------------------------------------------------------------------


@dataclass
class Problem:
    """The first thing wrong with a log: the line (1-based) and what."""

    line: int
    kind: str  #: edited, removed, reordered, duplicated, torn, not-chained, malformed, source
    message: str


@dataclass
class Segment:
    """One ``chain-start`` and the lines after it, up to the next ``chain-start``."""

    first: int  #: its chain-start's line number
    chain: str
    last: int = 0
    closed: bool = False  #: ends with a ``chain-end`` line
    sources: list[dict[str, Any]] = field(default_factory=list)  #: a merged chain's sources


@dataclass
class Verification:
    """What :func:`verify` found: the lines that verify, their end hash, and the first problem (if any)."""

    path: str
    lines: int = 0  #: complete lines that verify, from the first
    end: str = GENESIS  #: hash of the last of them
    segments: list[Segment] = field(default_factory=list)
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)  #: things that are not errors (a segment not closed)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def chains(self) -> list[str]:
        return list(dict.fromkeys(s.chain for s in self.segments))


class _Carried:
    """A merged log's source chains, rebuilt from the ``origin`` of its lines and checked."""

    def __init__(self) -> None:
        self.state: dict[str, tuple[int, str, int]] = {}  #: chain -> (seq, hash of that line, its line here)

    def add(self, number: int, body: bytes, origin: Any) -> Problem | None:
        cut = body.rfind(_ORIGIN)
        if (cut < 0 or not isinstance(origin, dict) or not isinstance(origin.get("chain"), str)
                or type(origin.get("seq")) is not int or not isinstance(origin.get("prev"), str)):
            return Problem(number, "malformed", f"line {number}: its origin is not a source line's "
                                                '{"chain","seq","prev"}')
        chain, seq, prev = origin["chain"], origin["seq"], origin["prev"]
        last_seq, last_hash, where = self.state.get(chain, (0, GENESIS, 0))
        if seq != last_seq + 1:
            return Problem(number, "source", f"line {number} carries seq {seq} of chain {chain}, whose line before "
                                             f"it here has seq {last_seq}: lines of that chain removed or moved")
        if prev != last_hash:
            return Problem(where or number, "source",
                           f"line {where} (seq {last_seq} of chain {chain}) was altered: its source line's hash is not "
                           f"the prev that line {number} carries" if where else
                           f"line {number} (seq 1 of chain {chain}) does not start that chain")
        self.state[chain] = (seq, line_hash(seal(body[:cut], seq, prev)), number)
        return None

    def check(self, sources: list[dict[str, Any]], lines: int) -> Problem | None:
        for source in sources:
            chain = source.get("chain")
            seq, end, where = self.state.get(str(chain), (0, GENESIS, 0))
            if seq != source.get("lines") or end != source.get("end"):
                return Problem(where or lines, "source", f"chain {chain} ({source.get('file')}): the merged log holds "
                                                f"{seq} of its lines ending with {end}, not the {source.get('lines')}"
                                                f" lines ending with {source.get('end')} its header lists")
        extra = set(self.state) - {str(s.get("chain")) for s in sources}
        if extra:
            return Problem(lines, "source", f"lines of chain(s) {', '.join(sorted(extra))}, which the merged "
                                            "log's header does not list")
        return None


def verify(path: str | Path, *, end: str | None = None) -> Verification:
    """Check a log's chain from its first line; stops at the first problem.

    ``end``: an end hash published earlier (anchor). The log must contain a line with that hash; lines after it
    are later additions, and fine. Raises OSError when the file cannot be read.
    """
    result = Verification(str(path))
    with Path(path).open("rb") as f:
        result.problem = _verify_lines(f, result)
        if result.problem is None and end is not None and result.end != end:
            result.problem = _anchor_problem(Path(path), end, result)
    for segment in result.segments:
        if not segment.closed and result.problem is None:
            result.notes.append(f"the segment of lines {segment.first}-{segment.last} has no chain-end line: its "
                                "crawl did not close (killed?), or lines were cut from its end")
    return result


def _verify_lines(f: BinaryIO, result: Verification) -> Problem | None:
    expected, prev, before = 1, GENESIS, GENESIS
    segment: Segment | None = None
    carried: _Carried | None = None
    for number, line in enumerate(f, 1):
        if not line.endswith(b"\n"):
            return Problem(number, "torn", f"line {number} is torn ({len(line)} bytes without an end of line: a "
                                           f"crash while it was written?); the chain verifies up to line "
                                           f"{number - 1}, its last complete line, ending with {prev}")
        parts = unseal(line)
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            entry = None
        if not isinstance(entry, dict):
            return Problem(number, "malformed", f"line {number} is not a JSON object: edited or damaged")
        if parts is None or entry.get("seq") != parts[1] or entry.get("prev") != parts[2]:
            kind = "not-chained" if "seq" not in entry and "prev" not in entry else "malformed"
            return Problem(number, kind, f"line {number} does not end with its seq and prev "
                                         + ("(a log written before the hash chain?)" if kind == "not-chained"
                                            else "as the chain writes them: edited"))
        body, seq, line_prev = parts
        if seq != expected:
            return _out_of_place(f, number, seq, expected)
        if line_prev != prev:
            if number == 1:
                return Problem(1, "removed", "line 1's prev is not the start of a chain: lines were removed "
                                             "from the start")
            result.lines, result.end = number - 2, before  # the edited line does not verify
            return Problem(number - 1, "edited", f"line {number - 1} was edited (or lines after it removed): its "
                                                 f"hash is not the prev that line {number} holds")
        event = entry.get("event") if "origin" not in entry else None
        if number == 1 and event != CHAIN_START:
            return Problem(1, "malformed", "line 1 is not a chain-start line")
        if event == CHAIN_START:
            if carried is not None:
                return _merged_cut(number - 1)
            if segment is not None:
                segment.last = number - 1
            segment = Segment(number, str(entry.get("chain")))
            result.segments.append(segment)
            sources = entry.get("merged")
            if isinstance(sources, list):
                segment.sources = [s for s in sources if isinstance(s, dict)]
                carried = _Carried()
        elif segment is not None and segment.closed:
            return Problem(number, "malformed", f"line {number} follows the chain-end line of its segment "
                                                "without a chain-start line")
        if event == CHAIN_END and segment is not None:
            segment.closed = True
            if carried is not None:
                problem = carried.check(segment.sources, number)
                if problem:
                    return problem
                carried = None
        elif carried is not None and event is None:
            problem = carried.add(number, body, entry.get("origin"))
            if problem:
                return problem
        before, prev = prev, line_hash(line)
        expected += 1
        result.lines, result.end = number, prev
        if segment is not None:
            segment.last = number
    if segment is None:
        return Problem(1, "removed", "the file is empty: not even a chain-start line")
    return _merged_cut(result.lines) if carried is not None else None


def _merged_cut(last: int) -> Problem:
    """A merged chain is written whole, ``chain-end`` included: without it, it was cut and cannot prove its sources."""
    return Problem(last, "source", f"the merged chain stops at line {last} without its chain-end line: cut short "
                                   "(its sources cannot be checked against the header's end hashes)")


def _out_of_place(f: BinaryIO, number: int, seq: int, expected: int) -> Problem:
    if seq < expected:
        return Problem(number, "duplicated" if seq == expected - 1 else "reordered",
                       f"line {number} holds seq {seq}, which line {seq} already had: a line repeated or moved "
                       "back")
    # seq ahead: lines removed, or the expected one comes later (moved)
    for later, line in enumerate(f, number + 1):
        parts = unseal(line)
        if parts is not None and parts[1] == expected:
            return Problem(number, "reordered", f"line {number} holds seq {seq} where seq {expected} was "
                                                f"expected, and seq {expected} is at line {later}: lines moved")
    missing = seq - expected
    return Problem(number, "removed", f"line {number} holds seq {seq} where seq {expected} was expected: "
                                      f"{missing} line{'s' if missing > 1 else ''} removed before it")


def _anchor_problem(path: Path, end: str, result: Verification) -> Problem | None:
    """The anchor is fine when it is the hash of some line (what comes after was appended later)."""
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if number > result.lines:
                break
            if line_hash(line) == end:
                result.notes.append(f"the anchored end hash is line {number}'s; lines {number + 1}-{result.lines}"
                                    " were added after it")
                return None
    return Problem(result.lines, "anchor", f"no line of the log has the anchored end hash {end}: the log was cut "
                                           f"short or edited (it verifies by itself up to line {result.lines}, "
                                           f"ending with {result.end})")


# -- merging ------------------------------------------------------------------------------------------------------


@dataclass
class Source:
    """A verified log to merge: its file, chain, number of lines and end hash (its lines are read as merged)."""

    file: str
    chain: str
    lines: int
    end: str


def read_source(path: str | Path) -> Source | Problem:
    """A log to merge, if it verifies: the problem otherwise (its line number is the file's)."""
    result = verify(path)
    if result.problem is not None:
        return result.problem
    if len(result.chains) != 1 or not _CHAIN_ID.fullmatch(result.chains[0]):
        # one file is one chain: appended segments keep the chain id of the first (AuditLog reads it back)
        return Problem(1, "malformed", f"the file holds chain ids {', '.join(map(repr, result.chains))}, not one "
                                       "chain id of letters, digits, '-' and '_'")
    return Source(str(path), result.chains[0], result.lines, result.end)


def merge(sources: list[Source], *, chain: str, header: dict[str, Any], closing: dict[str, Any]) -> Iterator[bytes]:
    """The lines of one chain that carries every source line, ordered by time.

    Lines of one source keep their order (a k-way merge by time, ties broken by source and seq); each keeps its
    bytes but for the seal, which moves under ``origin``. ``header`` and ``closing`` are the first and last lines'
    entries (their ``chain`` and, for the header, ``merged`` are filled in here).
    """
    header = {**header, "event": CHAIN_START, "chain": chain,
              "merged": [{"chain": s.chain, "file": s.file, "lines": s.lines, "end": s.end} for s in sources]}
    seq, prev = 0, GENESIS

    def sealed(body: bytes) -> bytes:
        nonlocal seq, prev
        seq += 1
        line = seal(body, seq, prev)
        prev = line_hash(line)
        return line

    yield sealed(canonical_json(header)[:-1])
    for _, _, _, body in heapq.merge(*(_keyed(i, s) for i, s in enumerate(sources))):
        yield sealed(body)
    yield sealed(canonical_json({**closing, "event": CHAIN_END, "chain": chain})[:-1])


def _keyed(index: int, source: Source) -> Iterator[tuple[datetime, int, int, bytes]]:
    last = _EARLIEST
    with Path(source.file).open("rb") as f:
        for _, line in zip(range(source.lines), f, strict=False):  # the lines verified, read again one at a time
            parts = unseal(line)
            if parts is None:
                raise ValueError(f"{source.file} changed while it was merged")
            body, seq, prev = parts
            time = json.loads(line).get("time")
            try:
                key = datetime.fromisoformat(time) if isinstance(time, str) else last
            except ValueError:
                key = last
            if key.tzinfo is None or key < last:
                key = last  # no time, a naive one, or one before its predecessor's: the line stays where it is
            last = key
            yield key, index, seq, body + b'%s%s","seq":%d,"prev":"%s"}' % (_ORIGIN, source.chain.encode(), seq,
                                                                            prev.encode())


_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
