"""Every authorization store is live: a change shows in its answers and its version within 2 s, and a store that
cannot answer raises StoreUnavailable until it can (design doc, "Live stores").

Real files in tmp_path and real waiting (short polls, bounded by the 2-second bound), no mocked clocks or stats.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from consentcrawl.consent.load import FileStore, load_authorizations
from consentcrawl.consent.reading import COARSE_TICK_NS, FINE_TICK_NS, settles_at
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.sqlite import SQLiteStore, import_records
from consentcrawl.consent.store import MemoryStore
from consentcrawl.errors import ConfigError, StoreUnavailable
from consentcrawl.terms.load import load_platforms
from consentcrawl.terms.platforms import PlatformRegistry
from tests.deciding import Engine

BOUND = 2.0  #: seconds within which a change must show
FORMATS = ["yaml", "csv", "jsonl"]
CSV_COLUMNS = ("platform", "subject", "purposes", "granted_at", "revoked_at", "evidence")
PLATFORMS = """
platforms:
  forum:
    domains: [forum.example]
    authorization: {purposes: [research], reference: F-1}
    profiles: ["/people/{subject}"]
"""


@pytest.fixture
def platforms(tmp_path: Path) -> PlatformRegistry:
    path = tmp_path / "platforms.yaml"
    path.write_text(PLATFORMS, encoding="utf-8")
    return load_platforms([str(path)])


def record(subject: str, *, revoked: bool = False, evidence: str = "form 1") -> dict[str, Any]:
    fields: dict[str, Any] = {"platform": "forum", "subject": subject, "purposes": ["research"],
                              "granted_at": "2026-02-01T00:00:00Z", "evidence": evidence}
    if revoked:
        fields["revoked_at"] = "2026-03-01T00:00:00Z"
    return fields


def text_of(fmt: str, records: list[dict[str, Any]], *, header: bool = True) -> str:
    """``records`` as a file (or, with header=False, as lines to append to one) in the given format."""
    out: list[str] = []
    if fmt == "yaml":
        if header:
            out.append("authorizations:")
        for r in records:
            out += [f"  {'-' if i == 0 else ' '} {k}: {json.dumps(v)}" for i, (k, v) in enumerate(r.items())]
    elif fmt == "csv":
        if header:
            out.append(",".join(CSV_COLUMNS))
        out += [",".join(";".join(r[c]) if isinstance(r.get(c), list) else r.get(c, "") for c in CSV_COLUMNS)
                for r in records]
    else:
        out += [json.dumps(r) for r in records]
    return "".join(line + "\n" for line in out)


def write(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:  # in place: the same inode
        f.write(text)


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8", newline="") as f:
        f.write(text)


def replace_file(path: Path, text: str) -> None:
    """Write a new file next to ``path`` and rename it over ``path`` (how editors and deploy tools save)."""
    fresh = path.with_name(path.name + ".new" + path.suffix)
    fresh.write_text(text, encoding="utf-8")
    os.replace(fresh, path)


def outcome(lookup: Callable[[], Any]) -> Any:
    try:
        return lookup()
    except StoreUnavailable as exc:
        return exc


def wait_for(condition: Callable[[], bool], bound: float = BOUND) -> float:
    """Poll ``condition`` every 20 ms; return how long it took to hold. Fails if it did not within ``bound``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > bound:
            pytest.fail(f"not within {bound} s")
        time.sleep(0.02)
    return time.monotonic() - start


def unavailable(lookup: Callable[[], Any]) -> Callable[[], bool]:
    return lambda: isinstance(outcome(lookup), StoreUnavailable)


# -- file stores -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_withdrawal_appended_to_the_file_applies_within_the_bound(
    tmp_path: Path, platforms: PlatformRegistry, fmt: str,
) -> None:
    path = tmp_path / f"authorizations.{fmt}"
    write(path, text_of(fmt, [record("Alice"), record("bob")]))
    store = load_authorizations(path, platforms)
    assert isinstance(store, FileStore) and store.source == str(path)
    (grant,) = first = store.lookup("forum", "alice")  # indexed by subject key; the record keeps "Alice"
    assert isinstance(first, tuple) and grant.subject == "Alice" and grant.revoked_at is None
    assert store.lookup("forum", "alice") is first  # the same tuple while nothing changed
    before = store.version
    # written with another case: the same person
    append(path, text_of(fmt, [record("ALICE", revoked=True, evidence="withdrawn")], header=False))
    took = wait_for(lambda: len(store.lookup("forum", "alice")) == 2)
    assert took < BOUND and store.version != before
    grant, withdrawal = store.lookup("forum", "alice")
    assert withdrawal.subject == "ALICE" and withdrawal.revoked_at is not None
    assert withdrawal.source == f"{path}:{ {'yaml': 12, 'csv': 4, 'jsonl': 3}[fmt] }"
    assert store.lookup("forum", "bob")[0].subject == "bob" and store.reloads == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_renamed_over_the_store_is_read(tmp_path: Path, platforms: PlatformRegistry, fmt: str) -> None:
    path = tmp_path / f"authorizations.{fmt}"
    write(path, text_of(fmt, [record("alice")]))
    store = load_authorizations(path, platforms)
    before = store.version
    replace_file(path, text_of(fmt, [record("carol", evidence="form 3")]))
    wait_for(lambda: store.lookup("forum", "carol") != ())
    assert store.lookup("forum", "alice") == () and store.version != before
    assert isinstance(store.lookup("forum", "carol"), tuple)


BROKEN = {  # a valid first record, then a record whose subject no platform id can be (a "/" in it) on line N
    "yaml": 8, "csv": 3, "jsonl": 2,
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_broken_file_fails_every_lookup_until_it_is_fixed(
    tmp_path: Path, platforms: PlatformRegistry, fmt: str, caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / f"authorizations.{fmt}"
    good = text_of(fmt, [record("alice")])
    write(path, good)
    store = load_authorizations(path, platforms)
    available = store.version
    with caplog.at_level(logging.ERROR, logger="consentcrawl.consent.load"):
        write(path, text_of(fmt, [record("alice"), record("Mallory/secret")]))
        wait_for(unavailable(lambda: store.lookup("forum", "alice")))
        for subject in ("alice", "never-asked", "mallory"):  # every subject, asked before or not
            with pytest.raises(StoreUnavailable) as error:
                store.lookup("forum", subject)
        message = str(error.value)
        assert str(path) in message and f"line {BROKEN[fmt]}" in message
        assert "Mallory" not in message and "secret" not in message  # evidence quotes no values
        broken = store.version
        assert broken != available
        time.sleep(0.3)
        assert unavailable(lambda: store.lookup("forum", "alice"))() and store.version == broken
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(path) in errors[0].getMessage()  # logged once, with the full error
    write(path, good)
    wait_for(lambda: not unavailable(lambda: store.lookup("forum", "alice"))())
    assert len(store.lookup("forum", "alice")) == 1 and store.version not in (available, broken)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_deleted_file_fails_every_lookup_until_it_is_back(
    tmp_path: Path, platforms: PlatformRegistry, fmt: str,
) -> None:
    path = tmp_path / f"authorizations.{fmt}"
    write(path, text_of(fmt, [record("alice")]))
    store = load_authorizations(path, platforms)
    path.unlink()
    wait_for(unavailable(lambda: store.lookup("forum", "alice")))
    with pytest.raises(StoreUnavailable, match="cannot be read"):
        store.lookup("forum", "someone-else")
    write(path, text_of(fmt, [record("alice"), record("bob")]))
    wait_for(lambda: not unavailable(lambda: store.lookup("forum", "bob"))())
    assert store.lookup("forum", "bob")[0].subject == "bob"


def test_a_half_written_line_fails_until_it_is_complete(tmp_path: Path, platforms: PlatformRegistry) -> None:
    path = tmp_path / "authorizations.jsonl"
    write(path, text_of("jsonl", [record("alice")]))
    store = load_authorizations(path, platforms)
    line = text_of("jsonl", [record("alice", revoked=True)], header=False)
    append(path, line[:25])
    wait_for(unavailable(lambda: store.lookup("forum", "alice")))
    with pytest.raises(StoreUnavailable, match="line 2"):
        store.lookup("forum", "alice")
    append(path, line[25:])
    wait_for(lambda: not unavailable(lambda: store.lookup("forum", "alice"))())
    assert len(store.lookup("forum", "alice")) == 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_same_size_rewrite_with_its_time_put_back_is_seen(tmp_path: Path, platforms: PlatformRegistry,
                                                            fmt: str) -> None:
    """Size and modification time alone are not trusted: a rewrite in place of the same length, its modification
    time put back, is seen (its change time moved)."""
    path = tmp_path / f"authorizations.{fmt}"
    write(path, text_of(fmt, [record("alice"), record("bob1")]))
    before = path.stat()
    store = load_authorizations(path, platforms, interval=0.05)
    write(path, text_of(fmt, [record("alice"), record("bob2")]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    wait_for(lambda: store.lookup("forum", "bob2") != ())
    assert store.lookup("forum", "bob1") == ()


def test_a_change_is_hashed_once_not_on_every_look(tmp_path: Path, platforms: PlatformRegistry) -> None:
    """A look reads the file's bytes when its signature changed, and once more when the clock has moved past the
    tick of the write it saw (a same-size write in that tick would not change the signature); not on every look
    while the file is recent (a big file takes seconds to hash, lookups waiting)."""
    path = tmp_path / "authorizations.jsonl"
    write(path, text_of("jsonl", [record("alice")]))
    store = load_authorizations(path, platforms, interval=0.02)
    assert store.digests == 0

    def look_for(seconds: float) -> None:  # a lookup looks at the file every 0.02 s
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            outcome(lambda: store.lookup("forum", "alice"))
            time.sleep(0.01)

    look_for(1.0)  # past the tick of the write read at opening: its bytes read once more, to be sure
    opened = store.digests
    assert opened <= 1  # (none when the store was opened after that tick already)
    append(path, text_of("jsonl", [record("alice", revoked=True)], header=False))
    wait_for(lambda: len(store.lookup("forum", "alice")) == 2)
    look_for(1.5)
    changed = store.digests - opened
    assert changed in (1, 2)  # the change, and once past its tick (unless it was seen after it already)
    look_for(0.5)
    assert store.digests - opened == changed and store.reloads == 1


def test_when_a_file_may_change_unseen() -> None:
    """The rule behind the test above, on its edges: after a write, a digest is good for as long as the signature
    holds only when its read began a tick after the write (half a second for sub-second times, 2 s for whole
    seconds); a change time later than the modification time counts."""
    second = 1_700_000_000 * 10**9

    def at(mtime: int, ctime: int | None = None) -> Any:
        return SimpleNamespace(st_mtime_ns=mtime, st_ctime_ns=mtime if ctime is None else ctime)

    fine = second + 123_456_789
    assert settles_at(at(fine), fine + 10**6) == fine + FINE_TICK_NS
    assert settles_at(at(fine), fine + FINE_TICK_NS - 1) == fine + FINE_TICK_NS
    assert settles_at(at(fine), fine + FINE_TICK_NS) is None
    assert settles_at(at(fine, fine + 10**9), fine + FINE_TICK_NS) == fine + 10**9 + FINE_TICK_NS
    assert settles_at(at(second), second + 10**9) == second + COARSE_TICK_NS
    assert settles_at(at(second), second + COARSE_TICK_NS) is None
    assert settles_at(at(fine), fine - 10**9) == fine + FINE_TICK_NS  # a file server's clock ahead of ours


def test_keys_are_case_insensitive_and_normalised(tmp_path: Path, platforms: PlatformRegistry) -> None:
    path = tmp_path / "authorizations.jsonl"
    write(path, text_of("jsonl", [record("Alice"), record("\uff21\uff2c\uff29\uff23\uff25", revoked=True)]))
    store = load_authorizations(path, platforms)
    for asked in ("alice", "ALICE", "Alice", "\uff41lice"):  # full-width letters are the same person after NFKC
        assert [r.subject for r in store.lookup("forum", asked)] == ["Alice", "\uff21\uff2c\uff29\uff23\uff25"]
    assert store.lookup("forum", "alice") is store.lookup("forum", "ALICE")
    assert store.lookup("forum", "alicia") == ()


def test_a_file_that_is_broken_at_startup_stops_the_crawl(tmp_path: Path, platforms: PlatformRegistry) -> None:
    path = tmp_path / "authorizations.jsonl"
    write(path, text_of("jsonl", [record("alice"), record("a/b")]))
    with pytest.raises(ConfigError) as error:  # the strict check, with the file, the line and the full message
        load_authorizations(path, platforms)
    assert error.value.source == str(path) and error.value.line == 2 and "'a/b'" in error.value.message


def test_the_engine_stops_fetching_a_person_once_the_withdrawal_is_in_the_file(
    tmp_path: Path, platforms: PlatformRegistry,
) -> None:
    path = tmp_path / "authorizations.yaml"
    write(path, text_of("yaml", [record("Alice")]))
    engine = Engine(platforms, load_authorizations(path, platforms), "consentcrawl")
    now = _when("2026-06-01")

    def link(subject: str) -> str:
        return engine.decide_link(f"http://forum.example/people/{subject}", "research", now)[0].reason

    assert link("alice") == link("ALICE") == "subject.authorized"  # and now remembered by the engine
    append(path, text_of("yaml", [record("alice", revoked=True)], header=False))
    took = wait_for(lambda: link("Alice") == "subject.revoked")
    assert took < BOUND and engine.decide_subject("forum", "ALICE", "research", now).reason == "subject.revoked"
    write(path, "authorizations:\n  - [")
    wait_for(lambda: link("alice") == "error.store-unavailable")
    assert engine.decide_subject("forum", "alice", "research", now).reason == "error.store-unavailable"


def test_memory_store_versions_and_tuples() -> None:
    grant = AuthorizationRecord("forum", "Alice", frozenset({"research"}), _when("2026-02-01"), evidence="f")
    store = MemoryStore([grant])
    first, version = store.lookup("forum", "alice"), store.version
    assert first == (grant,) and isinstance(first, tuple) and store.lookup("forum", "ALICE") is first
    withdrawal = AuthorizationRecord("forum", "alice", frozenset({"research"}), _when("2026-02-01"),
                                     revoked_at=_when("2026-03-01"), evidence="w")
    store.add(withdrawal)
    assert store.version != version and store.lookup("forum", "Alice") == (grant, withdrawal)
    assert first == (grant,)  # what was handed out before does not change
    assert list(store) == [grant, withdrawal] and len(store) == 2
    assert MemoryStore().version != MemoryStore().version  # versions are unique across stores


def _when(day: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(day + "T00:00:00+00:00")


# -- SQLite ----------------------------------------------------------------------------------------------------


def sqlite_store(tmp_path: Path, platforms: PlatformRegistry, records: list[dict[str, Any]],
                 name: str = "store.db") -> tuple[Path, str]:
    """An SQLite store holding ``records``, imported the way the CLI does it."""
    source = tmp_path / f"{name}.jsonl"
    write(source, text_of("jsonl", records))
    db = tmp_path / name
    import_records(f"sqlite:///{db}", load_authorizations(source, platforms), platforms=platforms.platforms)
    return db, f"sqlite:///{db}"


PEOPLE = [record(f"person{n}") for n in range(200)] + [record("Alice")]


@pytest.fixture
def db(tmp_path: Path, platforms: PlatformRegistry) -> Any:
    path, url = sqlite_store(tmp_path, platforms, PEOPLE)
    store = SQLiteStore(url, platforms.platforms)
    yield path, store
    store.close()


def test_sqlite_overwritten_in_place_with_garbage_fails_closed_for_everyone(db: Any) -> None:
    path, store = db
    original = path.read_bytes()
    assert store.lookup("forum", "alice")[0].subject == "Alice"  # now in the LRU and the page cache
    before = store.version
    with path.open("r+b") as f:  # in place: same inode, same size
        f.write(os.urandom(len(original)))
    # someone with no record, never looked up: the Bloom filter answers without SQLite, so only the store's own
    # look at the file can notice
    took = wait_for(unavailable(lambda: store.lookup("forum", "stranger")))
    assert took < BOUND and store.version != before
    for subject in ("alice", "person150", "nobody"):  # in the LRU, never looked up, not in the store
        with pytest.raises(StoreUnavailable, match="not an SQLite database"):
            store.lookup("forum", subject)
    broken = store.version
    with path.open("r+b") as f:
        f.write(original)
    wait_for(lambda: not unavailable(lambda: store.lookup("forum", "alice"))())
    assert store.lookup("forum", "person150")[0].subject == "person150"
    assert store.version not in (before, broken)


@pytest.mark.parametrize("size", ["half", "zero"])
def test_sqlite_truncated_fails_closed(db: Any, size: str) -> None:
    path, store = db
    assert store.lookup("forum", "person3")
    os.truncate(path, path.stat().st_size // 2 if size == "half" else 0)
    took = wait_for(unavailable(lambda: store.lookup("forum", "person199")))
    assert took < BOUND
    with pytest.raises(StoreUnavailable, match="truncated"):
        store.lookup("forum", "person3")


def test_sqlite_renamed_over_by_another_store_answers_from_it(
    tmp_path: Path, platforms: PlatformRegistry, db: Any,
) -> None:
    path, store = db
    assert store.lookup("forum", "alice")[0].revoked_at is None
    before = store.version
    other, _ = sqlite_store(tmp_path, platforms, [record("Alice"), record("alice", revoked=True), record("dave")],
                            name="other.db")
    os.replace(other, path)
    took = wait_for(lambda: len(store.lookup("forum", "alice")) == 2)
    assert took < BOUND and store.version != before
    assert store.lookup("forum", "dave") and store.lookup("forum", "person1") == ()


def test_sqlite_renamed_over_while_the_old_log_holds_pages_fails_closed_until_the_log_is_gone(
    tmp_path: Path, platforms: PlatformRegistry, db: Any,
) -> None:
    path, store = db
    source = tmp_path / "more.jsonl"
    write(source, text_of("jsonl", [record("erin")]))
    import_records(f"sqlite:///{path}", load_authorizations(source, platforms))  # into the WAL: the store is open
    wait_for(lambda: store.lookup("forum", "erin") != ())
    other, _ = sqlite_store(tmp_path, platforms, [record("dave")], name="other.db")
    os.replace(other, path)
    wait_for(unavailable(lambda: store.lookup("forum", "dave")))
    with pytest.raises(StoreUnavailable, match="write-ahead log"):
        store.lookup("forum", "erin")
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink()
    wait_for(lambda: not unavailable(lambda: store.lookup("forum", "dave"))())
    assert store.lookup("forum", "dave") and store.lookup("forum", "erin") == ()


def test_sqlite_a_commit_changes_the_version_and_drops_cached_answers(
    tmp_path: Path, platforms: PlatformRegistry, db: Any,
) -> None:
    path, store = db
    cached = store.lookup("forum", "alice")
    assert store.lookup("forum", "alice") is cached
    before = store.version
    source = tmp_path / "withdrawal.jsonl"
    write(source, text_of("jsonl", [record("ALICE", revoked=True)]))
    import_records(f"sqlite:///{path}", load_authorizations(source, platforms))
    took = wait_for(lambda: len(store.lookup("forum", "alice")) == 2)
    assert took < BOUND and store.version != before
    version = store.version
    assert store.lookup("forum", "alice") is store.lookup("forum", "alice") and store.version == version
    assert store.lookup("forum", "Alice") == store.lookup("forum", "alice")


def test_sqlite_a_deleted_store_fails_closed_until_one_is_back(
    tmp_path: Path, platforms: PlatformRegistry, db: Any,
) -> None:
    path, store = db
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    wait_for(unavailable(lambda: store.lookup("forum", "person9")))
    sqlite_store(tmp_path, platforms, [record("person9", revoked=True)])
    wait_for(lambda: not unavailable(lambda: store.lookup("forum", "person9"))())
    assert store.lookup("forum", "person9")[0].revoked_at is not None


def test_sqlite_a_store_whose_state_no_longer_reads_fails_closed(db: Any) -> None:
    path, store = db
    cached = store.lookup("forum", "alice")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = 'many' WHERE key = 'records'")  # committed like an import
    conn.commit()
    conn.close()
    wait_for(unavailable(lambda: store.lookup("forum", "alice")))  # not the LRU's answer any more
    with pytest.raises(StoreUnavailable, match="ValueError"):
        store.lookup("forum", "person1")
    assert cached[0].subject == "Alice"


def test_sqlite_store_files_are_closed(db: Any) -> None:
    path, store = db
    store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.lookup("forum", "alice")
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == len(PEOPLE)
    conn.close()
