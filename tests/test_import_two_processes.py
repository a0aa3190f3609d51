"""``consentcrawl authorizations import`` of a large JSON Lines file on two processes
(:mod:`consentcrawl.consent.sqlite_parallel`): the same store, the same errors, naming the same lines, as the
one-process import. The size above which two processes are used is lowered so that small files take that path."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from consentcrawl.cli import main
from consentcrawl.consent import sqlite_parallel
from consentcrawl.consent.sqlite import SQLiteStore

PEOPLE = 300
PLATFORMS = """platforms:
  people:
    domains: [people.example]
    authorization: {purposes: [research], reference: TEST-1}
    profiles: ["/u/{subject}"]
"""


def record(subject: str, n: int, **extra: Any) -> str:
    return json.dumps({"platform": "people", "subject": subject, "purposes": ["research"],
                       "granted_at": "2026-02-01T00:00:00Z", "evidence": f"form {n}", **extra})


def varied_lines() -> list[str]:
    """Grants; in the second half, withdrawals of first-half people (one written in another case), records with
    ids, fields, expiries and jurisdictions; lines the fast reader leaves to the full validator (an escaped quote,
    an integer id); blank lines in both halves."""
    lines = ["\ufeff" + record("Alice", 0)]
    for n in range(1, PEOPLE):
        extra: dict[str, Any] = {}
        if n % 7 == 0:
            extra["expires_at"] = "2027-02-01T00:00:00+01:00"
        if n % 11 == 0:
            extra["fields"] = ["name", "bio"]
        if n % 13 == 0:
            extra["record_id"] = n if n % 2 else f"id-{n}"
        if n % 17 == 0:
            extra["jurisdiction"] = "EU"
        lines.append(record(f"p{n}", n, **extra))
        if n % 50 == 0:
            lines.append("")
    lines.append(record("ALICE", 1000, revoked_at="2026-06-01T00:00:00Z"))
    lines += [record(f"p{n}", 2000 + n, revoked_at="2026-07-01T00:00:00Z") for n in range(1, 40)]
    lines.append(record("q\"uoted", 3000))
    lines.append("   " + record("spaced", 3001))
    return lines


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_import(source: Path, dest: Path, monkeypatch: pytest.MonkeyPatch, *, two: bool) -> int:
    """The CLI import, on two processes or one; asserts that the path asked for was taken."""
    taken: list[bool] = []
    real = sqlite_parallel.import_jsonl

    def spy(*args: Any, **kwargs: Any) -> Any:
        taken.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(sqlite_parallel, "TWO_PROCESSES_BYTES", 0 if two else 1 << 62)
    monkeypatch.setattr(sqlite_parallel, "import_jsonl", spy)
    platforms = source.with_name("platforms.yaml")
    platforms.write_text(PLATFORMS, encoding="utf-8")
    code = main(["authorizations", "import", str(source), f"sqlite:///{dest}", "--platforms", str(platforms)])
    assert taken == ([True] if two else [])
    return code


def contents(path: Path) -> tuple[Any, ...]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT *, typeof(expires_at), typeof(revoked_at), typeof(fields) FROM records "
                            "ORDER BY id").fetchall()
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        bloom = conn.execute("SELECT probes, keys, bits FROM bloom").fetchone()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    return rows, meta, bloom[:2], hashlib.sha256(bloom[2]).hexdigest(), mode


def test_two_processes_write_the_store_one_process_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write(tmp_path / "records.jsonl", varied_lines())
    assert run_import(source, tmp_path / "one.db", monkeypatch, two=False) == 0
    assert run_import(source, tmp_path / "two.db", monkeypatch, two=True) == 0
    one, two = contents(tmp_path / "one.db"), contents(tmp_path / "two.db")
    assert two == one
    assert len(one[0]) == PEOPLE + 1 + 39 + 2 and {r[-3:] for r in one[0]} >= {
        ("null", "null", "null"), ("text", "null", "null"), ("null", "text", "null"), ("null", "null", "text")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.db", "platforms.yaml", "records.jsonl", "two.db"]
    store = SQLiteStore(f"sqlite:///{tmp_path / 'two.db'}", ["people"])
    assert [r.subject for r in store.lookup("people", "alice")] == ["Alice", "ALICE"]
    assert len(store.lookup("people", "p5")) == 2 and store.lookup("people", "nobody") == ()
    store.close()


def errors_of(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The error each way of importing ``source`` into a new store prints; neither leaves a file behind."""
    run_import(source, tmp_path / "probe.db", monkeypatch, two=False)  # writes platforms.yaml
    capsys.readouterr()
    before = sorted(p.name for p in tmp_path.iterdir())
    printed = []
    for two in (False, True):
        assert run_import(source, tmp_path / "new.db", monkeypatch, two=two) == 2
        printed.append(capsys.readouterr().err)
        assert sorted(p.name for p in tmp_path.iterdir()) == before
    return printed


def test_an_error_in_the_second_half_names_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    lines = varied_lines()
    bad = len(lines) * 3 // 4
    lines[bad - 1] = record("p1000", 1000).replace('"research"', '"reserch"')
    one, two = errors_of(write(tmp_path / "records.jsonl", lines), tmp_path, monkeypatch, capsys)
    assert two == one and f"records.jsonl, line {bad}: unknown purpose" in two


def test_the_first_halfs_error_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    lines = varied_lines()
    lines[len(lines) - 3] = "{not json"
    lines[9] = record("p1000", 1000, expires_at="2025-01-01T00:00:00Z")  # expires before it was granted
    one, two = errors_of(write(tmp_path / "records.jsonl", lines), tmp_path, monkeypatch, capsys)
    assert two == one and "records.jsonl, line 10: 'expires_at'" in two


def test_duplicates_across_the_halves_name_both_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    lines = varied_lines()
    lines.append(record("P3", 3))  # the grant on line 4, written in another case
    lines[len(lines) // 2 + 5] = record("p100", 100)  # a copy of line 102 in the second half: read first of the two
    one, two = errors_of(write(tmp_path / "records.jsonl", lines), tmp_path, monkeypatch, capsys)
    assert two == one and "duplicate authorization record" in two
    assert f"(lines 102 and {len(lines) // 2 + 6})" in two


def test_a_file_with_no_line_break_past_its_middle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second process then reads nothing: the first reads the whole file."""
    lines = [record(f"p{n}", n) for n in range(3)]
    lines.append(record("long", 4, evidence="x" * 5000))
    source = tmp_path / "records.jsonl"
    source.write_text("\n".join(lines), encoding="utf-8")  # no line break at the end
    assert run_import(source, tmp_path / "one.db", monkeypatch, two=False) == 0
    assert run_import(source, tmp_path / "two.db", monkeypatch, two=True) == 0
    assert contents(tmp_path / "two.db") == contents(tmp_path / "one.db")


def test_bytes_that_are_not_utf8_in_the_second_half(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The byte offset in the message counts from the file's start, as in one process."""
    lines = varied_lines()
    bad = len(lines) * 2 // 3
    source = tmp_path / "records.jsonl"
    data = "\n".join(lines).encode("utf-8").split(b"\n")
    data[bad - 1] = data[bad - 1].replace(b"form", b"f\xffrm")
    source.write_bytes(b"\n".join(data) + b"\n")
    one, two = errors_of(source, tmp_path, monkeypatch, capsys)
    assert two == one and f"records.jsonl, line {bad}: file is not valid UTF-8 (byte " in two
