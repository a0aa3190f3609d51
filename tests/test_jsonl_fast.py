"""The JSONL and CSV readers' fast path (a common line read with less ceremony, a plainly valid record checked without
the node-by-node validator, and, for the bulk importer, staged as a row without building the record) gives
exactly what the slow path gives: the same records, rows and subject keys, and the same errors with file and
line, on generated lines valid and invalid."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentcrawl.consent import filerows, formats
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.sqlite_bulk import _Rows
from consentcrawl.errors import ConfigError
from consentcrawl.terms.load import load_platforms

PLATFORMS = """platforms:
  people:
    domains: [people.example]
    authorization: {purposes: [research], reference: T-1}
    profiles: ["/u/{subject}"]
    subject: "[A-Za-z0-9]+"
  exact:
    domains: [exact.example]
    authorization: {purposes: [research], reference: T-2}
    profiles: ["/p/{subject}"]
    case_sensitive: true
"""
SOURCE = "consents.jsonl"
EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("platforms") / "platforms.yaml"
    path.write_text(PLATFORMS, encoding="utf-8")
    return load_platforms([str(path)])


odd = st.sampled_from([None, 5, 2.5, True, "", "   ", [], {}, {"a": 1}, ["x"], [2**70], 2**70])
times = st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01", "2026-01-01T00:00:00+02:00", "2027-06-01T12:00:00Z",
                         "2025-12-31T23:59:59Z", "2026-13-01T00:00:00Z", "yesterday", " 2026-01-01T00:00:00Z "])
words = st.sampled_from(["research", "search-indexing", "ai-training", "archiving", "bogus", "", " research ", 3])
#: for each key, values valid and not
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "platform": st.one_of(st.sampled_from(["people", "exact", "nowhere", "People"]), odd),
    "subject": st.one_of(st.sampled_from(["42", " 42 ", "Alice", "alice", "\uff21LICE", "a/b", "x y", "é", "1"]),
                         st.integers(0, 99), odd),
    "purposes": st.one_of(st.lists(words, max_size=3), odd, words),
    "granted_at": st.one_of(times, odd),
    "expires_at": st.one_of(times, odd),
    "revoked_at": st.one_of(times, odd),
    "evidence": st.one_of(st.sampled_from(["form 1", " form ", "fórm"]), odd),
    "fields": st.one_of(st.lists(st.sampled_from(["bio", "name", "", "bio ", 4]), max_size=3), odd),
    "record_id": st.one_of(st.sampled_from(["r1", " r1 ", "r2", "007"]), st.integers(-3, 3), odd,
                           st.sampled_from([2**64, -(2**63) - 1, 2**70, 2**64 - 1, -(2**63)])),  # where orjson differs
    "jurisdiction": st.one_of(st.sampled_from(["EU", " EU", "CN"]), odd),
    "bogus": st.just(1),
}
record = st.fixed_dictionaries({}, optional=VALUES)
#: the usual records, most of them valid, so that duplicates and people with several records come up
usual = st.builds(
    lambda subject, purposes, granted, revoked, record_id: {
        "platform": "people", "subject": subject, "purposes": purposes, "granted_at": granted,
        "evidence": "form", **({"revoked_at": revoked} if revoked else {}), **({"record_id": record_id} if record_id
                                                                             else {})},
    st.sampled_from(["1", "2", "Bob", "bob"]), st.sampled_from([["research"], ["research", "archiving"]]),
    st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", "2026-02-01T00:00:00Z"]),
    st.sampled_from([None, "2026-03-01T00:00:00Z"]), st.sampled_from([None, "r1", "r2"]),
)


#: a usual record with one field changed to a value chosen for that field (or removed): one thing wrong at a time
changed = st.builds(
    lambda base, change, remove: ({k: v for k, v in base.items() if k != change[0]} if remove
                                  else {**base, change[0]: change[1]}),
    usual, st.sampled_from(sorted(VALUES)).flatmap(lambda name: st.tuples(st.just(name), VALUES[name])),
    st.booleans(),
)


def _render(value: dict[str, Any], style: int) -> str:
    text = json.dumps(value, separators=(",", ":") if style == 1 else (", ", ": "), ensure_ascii=style == 2)
    if style == 3 and value:  # a key given twice
        key = next(iter(value))
        text = text[:-1] + f', {json.dumps(key)}: {json.dumps(value[key])}}}'
    if style == 4:  # spaces around, and before the colons
        text = "  " + text.replace('":', '" :') + "  "
    return text


line = st.one_of(
    st.builds(_render, st.one_of(record, usual), st.integers(0, 4)),
    st.builds(_render, usual, st.just(0)),
    st.builds(_render, changed, st.integers(0, 4)),
    st.sampled_from(["", "   ", "[1, 2]", '"text"', "{", '{"platform": "people"} trailing', "null", "{}",
                     '{"subject": "1", "subject": "2"}', '{"evidence": "a\\": b"}', "\ufeff{}"]),
    # what orjson reads otherwise than json (or not at all): each must end as the slow path ends
    st.builds(lambda base, tail, odd_value: _render({**base, "record_id": odd_value} if odd_value else base, 0) + tail,
              usual, st.sampled_from(["", "\x0b", "\u00a0", "\u3000", " \t"]),
              st.sampled_from([None, float("nan"), float("inf"), "\ud800", 123456789012345678901234567890])),
    st.text(max_size=20),
)


def _read(platforms: Any, data: bytes, *, staged: bool, fast: bool, collect: bool,
          source: str = SOURCE) -> tuple[list[Any], list[str]]:
    """What the reader gives for ``data``: (subject key, row) for each record, and the errors (file and line)."""
    validator = formats.open_validator(source, platforms, dedup=not staged)
    if staged:
        validator.stage()
    if not fast:
        validator._plain = lambda line, value: None  # type: ignore[method-assign]
    rows, keys = _Rows(), {name: p.subject_key for name, p in platforms.platforms.items()}
    errors: list[ConfigError] = []
    out: list[Any] = []
    try:
        for item in validator.records(io.BytesIO(data), errors if collect else None):
            if isinstance(item, AuthorizationRecord):
                item = (keys[item.platform](item.subject), rows.row(item))
            out.append(item)
    except ConfigError as exc:
        errors.append(exc)
    return out, [f"{e.source}:{e.line}: {e.message}" for e in errors]


@EXAMPLES
@given(st.lists(line, min_size=1, max_size=12), st.booleans(), st.booleans())
def test_the_fast_path_reads_what_the_slow_path_reads(platforms: Any, lines: list[str], staged: bool,
                                                      collect: bool) -> None:
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    slow = _read(platforms, data, staged=staged, fast=False, collect=collect)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(filerows, "_common_object", lambda raw: None)
        assert _read(platforms, data, staged=staged, fast=False, collect=collect) == slow  # the line reader
    assert _read(platforms, data, staged=staged, fast=True, collect=collect) == slow


def test_the_fast_path_takes_the_usual_line(platforms: Any) -> None:
    """Not a test that cannot fail: the usual record does take the fast path (and a nested object does not)."""
    validator = formats.open_validator(SOURCE, platforms, dedup=False)
    validator.stage()
    usual = {"platform": "people", "subject": "Alice", "purposes": ["research"], "granted_at": "2026-01-01T00:00:00Z",
             "evidence": "form"}
    raw = json.dumps(usual).encode()
    assert filerows._common_object(raw) == usual
    assert filerows._common_object(json.dumps({**usual, "fields": {"a": 1}}).encode()) is None
    assert validator.fast_row(7, usual) == ("alice", ("people", "Alice", "research", "2026-01-01T00:00:00+00:00",
                                                      None, None, "form", None, "", "", f"{SOURCE}:7"))


def test_errors_name_file_and_line_in_both_paths(platforms: Any, tmp_path: Path) -> None:
    lines = [json.dumps({"platform": "people", "subject": "1", "purposes": ["research"],
                         "granted_at": "2026-01-01T00:00:00Z", "evidence": "form"}),
             json.dumps({"platform": "people", "subject": "a/b", "purposes": ["research"],
                         "granted_at": "2026-01-01T00:00:00Z", "evidence": "form"})]
    for staged in (False, True):
        for fast in (False, True):
            _, errors = _read(platforms, "\n".join(lines).encode(), staged=staged, fast=fast, collect=False)
            assert len(errors) == 1 and errors[0].startswith(f"{SOURCE}:2: subject 'a/b' does not look like")


@EXAMPLES
@given(st.lists(st.builds(_render, changed, st.integers(0, 4)), min_size=1, max_size=6), st.booleans())
def test_one_thing_wrong_at_a_time(platforms: Any, lines: list[str], staged: bool) -> None:
    """Usual records with one field changed: each error is found where the slow path finds it."""
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    slow = _read(platforms, data, staged=staged, fast=False, collect=True)
    assert _read(platforms, data, staged=staged, fast=True, collect=True) == slow


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _csv(rows: list[dict[str, Any]], extra: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    header = sorted(({key for row in rows for key in row} | set(extra)) - {"bogus"})  # that one fails the header
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in header])
    return out.getvalue().encode("utf-8", "surrogatepass")


@EXAMPLES
@given(st.lists(st.one_of(changed, usual, record), min_size=1, max_size=8),
       st.lists(st.sampled_from(["expires_at", "fields", "record_id", "jurisdiction"])), st.booleans(),
       st.booleans())
def test_the_csv_fast_path_reads_what_the_slow_path_reads(platforms: Any, rows: list[dict[str, Any]],
                                                          extra: list[str], staged: bool, collect: bool) -> None:
    data = _csv(rows, extra)
    slow = _read(platforms, data, staged=staged, fast=False, collect=collect, source="consents.csv")
    assert _read(platforms, data, staged=staged, fast=True, collect=collect, source="consents.csv") == slow
