"""An audit line's bytes are ``json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)`` in UTF-8,
for any values an entry holds (docs/audit-log.md, "A line"), and the log's lines verify with the chain's verifier;
a lone surrogate is written escaped instead of failing its group's write. (The contract any faster encoder must
keep: benchmarks/RESULTS.md, "Audit line encoding", tried orjson against it.)"""

from __future__ import annotations

import enum
import json
import tempfile
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentcrawl.audit.chain import unseal, verify
from consentcrawl.audit.log import AuditLog, audit_entry, read_audit_log
from consentcrawl.decision import Decision, Evidence, Stage, Verdict

NOW = datetime(2026, 12, 1, 12, 0, 0, 5, tzinfo=timezone.utc)


class Colour(enum.Enum):
    RED = 1


class Mode(str, enum.Enum):
    REPORT = "report"


class Level(enum.IntEnum):
    HIGH = 3


class Weight(float, enum.Enum):
    HEAVY = 2.5


def json_line(entry: dict[str, Any]) -> bytes:
    """The contract. A lone surrogate is escaped (json's line for it is not UTF-8)."""
    text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
    return text.encode("utf-8", "backslashreplace")


floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e-5, 1e-4, 9.99e-5, 1e15, 1e16, 1e22])
integers = st.integers(-(2**70), 2**70) | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1])
texts = st.text() | st.text(st.characters(codec="utf-8")) | st.sampled_from(["\udc80", "x\ud800", "é\u2028"])
others = st.sampled_from([Colour.RED, Mode.REPORT, Level.HIGH, Weight.HEAVY, NOW, uuid.UUID(int=1), Decimal("2")])
scalars = st.none() | st.booleans() | integers | floats | texts | others
keys = texts | st.integers(-5, 5) | st.sampled_from([None, True, 1.5])
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                      | st.dictionaries(keys, inner, max_size=4), max_leaves=12)
#: an evidence detail as checks write it (mostly plain), or anything at all
details = (st.dictionaries(st.text(max_size=8), st.none() | st.booleans() | st.integers(0, 10**6) | st.text()
                           | st.lists(st.text(max_size=8), max_size=3), max_size=8)
           | st.dictionaries(st.text(max_size=8), values, max_size=6))
evidence = st.builds(Evidence, st.sampled_from(["robots.txt", "platform-authorization", "subject-authorization"]),
                     st.text(max_size=30), details)
decisions = st.builds(Decision, st.sampled_from(list(Verdict)), st.sampled_from(list(Stage)), st.sampled_from(
    ["subject.authorized", "robots.disallowed"]), subject=st.none() | st.text(max_size=10),
    platform=st.none() | st.just("microblog"), evidence=st.lists(evidence, max_size=4).map(tuple))
lines = st.tuples(decisions, st.sampled_from(["request", "response", "item"]), st.none() | texts,
                  st.none() | st.dictionaries(st.text(max_size=12), values, max_size=3))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, min_size=1, max_size=5))
def test_every_line_the_log_writes_is_json_dumps_of_its_entry_and_verifies(batch: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "audit.jsonl"
        log = AuditLog(path, sync=False)
        entries = []
        for n, (decision, phase, url, extra) in enumerate(batch):
            log.record(decision, time=NOW, phase=phase, url=url, purpose="research", extra=extra, durable=n % 2 == 0)
            entries.append(audit_entry(decision, time=NOW, phase=phase, url=url, purpose="research", extra=extra))
        log.event("withdrawal-seen", {"detail": batch[0][3]}, time=NOW)
        entries.append({"event": "withdrawal-seen", "time": NOW.isoformat(), "detail": batch[0][3]})
        log.close()
        written = path.read_bytes().splitlines(keepends=True)
        assert len(written) == len(entries) + 2  # with the chain-start and chain-end lines
        for line, entry in zip(written[1:-1], entries, strict=True):
            parts = unseal(line)
            assert parts is not None
            assert parts[0] + b"}\n" == json_line(entry)
        result = verify(path)
        assert result.ok and result.lines == len(written), result.problem


def test_a_lone_surrogate_is_written_escaped_and_reads_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    cited = Evidence("robots.txt", "http://a.example/robots.txt", {"rule": "Disallow: /\udc80"})
    decision = Decision(Verdict.DENY, Stage.ROBOTS, "robots.disallowed", evidence=(cited,))
    log.record(decision, time=NOW, phase="request", url="http://a.example/\udcff")
    log.record(decision, time=NOW, phase="request", url="http://a.example/", durable=False)
    log.close()
    assert verify(path).ok
    entries = read_audit_log(path)
    assert entries[1]["url"] == "http://a.example/\udcff"
    assert entries[1]["evidence"][0]["rule"] == entries[2]["evidence"][0]["rule"] == "Disallow: /\udc80"
    assert len(entries) == 4
