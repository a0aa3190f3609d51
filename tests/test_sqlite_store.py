"""``sqlite:///`` authorization stores: import, lookups, the CLI verb, crawls, and failing closed.

Real SQLite files in tmp_path throughout; the store must answer exactly like the file loaders' MemoryStore.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl.config import ConsentConfig
from consentcrawl.consent import sqlite_format, sqlite_write
from consentcrawl.consent.load import FileStore, load_authorizations, read_authorizations
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.sqlite import SLOTS, SQLiteStore, base_id, bulk_build, import_records, key_hashes
from consentcrawl.consent.store import MemoryStore
from consentcrawl.errors import ConfigError, StoreUnavailable
from consentcrawl.robots.fetch import from_response
from consentcrawl.terms.load import load_platforms
from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer
from spiders.microblog import MicroblogSpider
from tests.conftest import AUTHORIZATIONS, PLATFORMS, consent_settings, run_crawl
from tests.deciding import Engine
from tests.test_crawl_e2e import live_research_subjects, requested_subjects
from tests.test_policy import NOW

COLUMNS = ("platform", "subject", "purposes", "granted_at", "expires_at", "revoked_at", "evidence", "fields",
           "record_id", "jurisdiction")
#: records beyond the demo file's: several per person, a withdrawal, fields, ids, jurisdictions, odd characters
EXTRA = [
    {"platform": "microblog", "subject": "1001", "purposes": ["ai-training", "archiving"],
     "granted_at": "2026-03-01T10:00:00+02:00", "evidence": "second form, \"quoted\", é", "fields": ["name"],
     "record_id": "extra-1", "jurisdiction": "EU"},
    {"platform": "microblog", "subject": "1001", "purposes": ["research"], "granted_at": "2026-02-01T00:00:00Z",
     "revoked_at": "2026-12-24T00:00:00Z", "evidence": "withdrawal to come", "record_id": "extra-2"},
    {"platform": "microblog", "subject": "1299", "purposes": ["research"], "granted_at": "2026-01-01",
     "evidence": "no expiry", "fields": []},
]


def platforms() -> Any:
    return load_platforms([str(PLATFORMS)])


def demo_rows() -> list[dict[str, Any]]:
    rows = yaml.safe_load(AUTHORIZATIONS.read_text())["authorizations"]
    for row in rows:
        for key in ("granted_at", "expires_at", "revoked_at"):
            if row.get(key) is not None:
                row[key] = row[key].isoformat()
    return [*rows, *EXTRA]


def write_source(tmp_path: Path, kind: str) -> Path:
    rows = demo_rows()
    path = tmp_path / f"authorizations.{kind}"
    if kind == "yaml":
        path.write_text(yaml.safe_dump({"authorizations": rows}, allow_unicode=True), encoding="utf-8")
    elif kind == "jsonl":
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n" for r in rows),
                        encoding="utf-8")
    else:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            for r in rows:
                writer.writerow([";".join(r[c]) if isinstance(r.get(c), list) else (r.get(c) or "")
                                 for c in COLUMNS])
    return path


def comparable(record: AuthorizationRecord) -> dict[str, Any]:
    values = dict(vars(record))
    values.pop("source")
    return values


def url(path: Path) -> str:
    return f"sqlite:///{path}"


# -- import and lookups ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["yaml", "csv", "jsonl"])
def test_lookups_equal_the_memory_stores(tmp_path: Path, kind: str) -> None:
    source = write_source(tmp_path, kind)
    memory = load_authorizations(source, platforms())
    result = import_records(url(tmp_path / "store.db"), memory, platforms=["microblog"])
    assert (result.imported, result.records) == (len(memory), len(memory))
    store = SQLiteStore(url(tmp_path / "store.db"), ["microblog"])
    assert len(store) == len(memory) and store.keys == len({(r.platform, r.subject) for r in memory})
    conn = sqlite3.connect(tmp_path / "store.db")
    for subject in [str(n) for n in range(990, 1310)] + ["", "x", "1001 ", "٣"]:
        mine, theirs = store.lookup("microblog", subject), memory.lookup("microblog", subject)
        assert [comparable(r) for r in mine] == [comparable(r) for r in theirs]
        for record, original in zip(mine, theirs, strict=True):
            prefix, _, rowid = record.source.partition("#")
            assert prefix == url(tmp_path / "store.db")
            row = conn.execute("SELECT subject, evidence, origin FROM records WHERE id = ?", (int(rowid),)).fetchone()
            assert row == (subject, original.evidence, original.source)  # the row, and where it was imported from
    assert store.lookup("other", "1001") == ()
    conn.close()


def test_the_same_decisions_as_the_memory_store(tmp_path: Path) -> None:
    registry = platforms()
    memory = load_authorizations(write_source(tmp_path, "yaml"), registry)
    import_records(url(tmp_path / "store.db"), memory, platforms=["microblog"])
    robots = from_response("http://microblog.example/robots.txt", 200, b"User-agent: *\nAllow: /\n", NOW)
    engines = [Engine(registry, s, "consentcrawl") for s in (memory, SQLiteStore(url(tmp_path / "store.db")))]
    for n in range(995, 1305):
        for purpose in ("research", "ai-training"):
            a, b = (e.decide(e.facts(f"http://microblog.example/u/{n}", purpose, NOW), robots) for e in engines)
            assert (a.verdict, a.reason, a.fields) == (b.verdict, b.reason, b.fields)
            assert [ev.detail for ev in a.evidence[:-1]] == [ev.detail for ev in b.evidence[:-1]]


def test_a_duplicate_of_a_stored_record_is_refused_naming_both(tmp_path: Path) -> None:
    memory = load_authorizations(write_source(tmp_path, "jsonl"), platforms())
    import_records(url(tmp_path / "store.db"), memory)
    with pytest.raises(ConfigError) as error:
        import_records(url(tmp_path / "store.db"), list(memory)[5:7])
    assert error.value.line == 6 and "duplicate" in str(error.value) and "#" in str(error.value)
    assert len(SQLiteStore(url(tmp_path / "store.db"))) == len(memory)  # all or nothing


def test_the_import_verb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = url(tmp_path / "store.db")
    source = write_source(tmp_path, "csv")
    assert main(["authorizations", "import", str(source), dest, "--platforms", str(PLATFORMS)]) == 0
    out = capsys.readouterr().out
    assert f"imported {len(demo_rows())} record(s)" in out and dest in out
    assert main(["authorizations", "import", str(source), dest, "--platforms", str(PLATFORMS)]) == 2
    assert "authorizations.csv, line 2: duplicate" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(AUTHORIZATIONS.read_text().replace("purposes: [research]", "purposes: [reserch]", 1))
    assert main(["authorizations", "import", str(bad), dest, "--platforms", str(PLATFORMS)]) == 2
    err = capsys.readouterr().err  # the line and what is wrong; the record's values are left out
    assert "bad.yaml, line 7: unknown purpose '…' in 'purposes' (did you mean 'research'?)" in err
    assert "reserch" not in err
    assert main(["authorizations", "import", str(source), str(tmp_path / "x.db"), "--platforms", str(PLATFORMS)]) == 2
    assert "sqlite:///" in capsys.readouterr().err
    assert len(SQLiteStore(dest)) == len(demo_rows())


def test_importing_into_a_file_that_is_not_a_store_is_one_line_naming_it(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Random bytes, or another program's SQLite database: a configuration error naming the destination, no
    traceback, and the file's own content left as it was; a destination that is no store URL names DEST."""
    source = write_source(tmp_path, "jsonl")
    junk = tmp_path / "junk.db"
    junk.write_bytes(bytes(range(256)) * 20)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE meta (a, b)")
        conn.execute("CREATE TABLE records (x)")
        conn.execute("INSERT INTO records VALUES (1)")
    conn.close()
    for path in (junk, other):
        before = path.read_bytes() if path is junk else None
        assert main(["authorizations", "import", str(source), url(path), "--platforms", str(PLATFORMS)]) == 2
        err = capsys.readouterr().err
        why = "cannot write into it" if path is junk else "not a consentcrawl authorization store: its tables"
        assert err.startswith(f"consentcrawl: configuration error: {url(path)}: {why}"), err
        assert "nothing was imported" in err and "Traceback" not in err and err.count("\n") == 1, err
        if before is not None:
            assert path.read_bytes() == before
    with sqlite3.connect(other) as conn:
        assert conn.execute("SELECT x FROM records").fetchall() == [(1,)]
    conn.close()
    assert main(["authorizations", "import", str(source), str(tmp_path / "x.db"), "--platforms", str(PLATFORMS)]) == 2
    err = capsys.readouterr().err
    assert "configuration error: DEST: " in err and "sqlite:///" in err and "redis://" in err, err
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert main(["authorizations", "import", str(empty), url(tmp_path / "e.db"), "--platforms", str(PLATFORMS)]) == 2
    assert "empty.yaml, line 1: file is empty: expected a mapping with the top key 'authorizations:'" in \
        capsys.readouterr().err  # the format's own word, not a record's value: not hidden


@pytest.mark.parametrize("kind", ["yaml", "csv", "jsonl"])
def test_the_bulk_import_writes_the_rows_the_one_by_one_import_writes(tmp_path: Path, kind: str) -> None:
    """The bulk importer (a new store) and ``import_records`` (records added one by one) store the same rows,
    NULLs included (the bulk importer binds "" for an absent time or field list), and the same people."""
    source = write_source(tmp_path, kind)
    assert main(["authorizations", "import", str(source), url(tmp_path / "bulk.db"), "--platforms",
                 str(PLATFORMS)]) == 0
    import_records(url(tmp_path / "one.db"), load_authorizations(source, platforms()), platforms=["microblog"])
    everything = "SELECT *, typeof(expires_at), typeof(revoked_at), typeof(fields) FROM records ORDER BY id"
    bulk, one = (sqlite3.connect(tmp_path / name) for name in ("bulk.db", "one.db"))
    rows = bulk.execute(everything).fetchall()
    assert rows == one.execute(everything).fetchall() and len(rows) == len(demo_rows())
    assert {r[-3:] for r in rows} >= {("null", "null", "null"), ("text", "null", "null"), ("null", "text", "null"),
                                      ("null", "null", "text")}  # every kind of absence and presence was compared
    stores = [SQLiteStore(url(tmp_path / name), ["microblog"]) for name in ("bulk.db", "one.db")]
    assert stores[0].keys == stores[1].keys
    for subject in [str(n) for n in range(990, 1310)]:
        assert stores[0].lookup("microblog", subject) != () or stores[1].lookup("microblog", subject) == ()
    bulk.close()
    one.close()


def test_a_bulk_import_that_fails_leaves_no_store_and_no_scratch(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A new store is built beside its name and renamed into place only when complete: a bad last line leaves
    nothing a crawl could open, and no scratch file."""
    source = write_source(tmp_path, "jsonl")
    with source.open("a", encoding="utf-8") as f:
        f.write('{"platform": "microblog", "subject": "1001", "purposes": ["reserch"]}\n')
    lines = len(source.read_text(encoding="utf-8").splitlines())
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["authorizations", "import", str(source), url(tmp_path / "new.db"), "--platforms",
                 str(PLATFORMS)]) == 2
    assert f"authorizations.jsonl, line {lines}:" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_bulk_build_and_its_bloom_filter(tmp_path: Path) -> None:
    def row(i: int) -> tuple[Any, ...]:
        revoked = "2026-06-01T00:00:00+00:00" if i % 3 == 2 else None
        return ("microblog", str(1000 + i // 3 * 2), "research", "2026-02-01T00:00:00+00:00", None, revoked,
                f"form {i}", '["name"]' if i % 5 == 0 else None, f"id-{i}", "", "")

    result = bulk_build(str(tmp_path / "bulk.db"), 3000, row)
    assert (result.records, result.keys) == (3000, 1000)
    store = SQLiteStore(url(tmp_path / "bulk.db"), ["microblog"])
    for k in range(1000):
        records = store.lookup("microblog", str(1000 + 2 * k))
        assert [r.evidence for r in records] == [f"form {3 * k + j}" for j in range(3)]
        assert records[2].revoked_at is not None and records[0].revoked_at is None
        assert [r.fields for r in records] == [frozenset({"name"}) if (3 * k + j) % 5 == 0 else None for j in range(3)]
        assert store.lookup("microblog", str(1001 + 2 * k)) == ()
    assert store.queries >= 1000 and store.bloom_rejects > 900  # about 1% false positives go to SQLite
    assert store.cache_info().currsize > 0


def test_ids_of_one_person_share_a_range(tmp_path: Path) -> None:
    first = base_id(key_hashes("microblog", "1001")[0])
    assert first % SLOTS == 0 and first >= 0
    memory = load_authorizations(write_source(tmp_path, "yaml"), platforms())
    import_records(url(tmp_path / "store.db"), memory)
    ids = [int(r.source.rpartition("#")[2]) for r in SQLiteStore(url(tmp_path / "store.db")).lookup("microblog",
                                                                                                      "1001")]
    assert ids == [first, first + 1, first + 2]


# -- opening -----------------------------------------------------------------------------------------------------


def test_what_cannot_be_opened_stops_the_crawl_naming_the_store(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        SQLiteStore(url(tmp_path / "missing.db"))
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ConfigError, match="not a consentcrawl authorization store"):
        SQLiteStore(url(tmp_path / "other.db"))
    (tmp_path / "text.db").write_text("hello")
    with pytest.raises(ConfigError, match="cannot be read"):
        SQLiteStore(url(tmp_path / "text.db"))
    import_records(url(tmp_path / "store.db"), load_authorizations(AUTHORIZATIONS, platforms()))
    with pytest.raises(ConfigError, match=r"platform.*microblog.*not configured"):
        SQLiteStore(url(tmp_path / "store.db"), ["other"])
    with pytest.raises(ConfigError, match="unknown option"):
        SQLiteStore(url(tmp_path / "store.db") + "?cahce=1")
    settings = {"CONSENTCRAWL_PURPOSE": "research", "CONSENTCRAWL_PLATFORMS": str(PLATFORMS),
                "CONSENTCRAWL_AUTHORIZATIONS": url(tmp_path / "store.db") + "?cache=10&refresh=0.5"}
    store = ConsentConfig.from_settings(settings).store
    assert isinstance(store, SQLiteStore) and store.url.cache == 10 and len(store) == 100


# -- while a crawl runs ----------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_withdrawal_imported_while_the_store_is_open_applies_within_the_refresh(tmp_path: Path) -> None:
    registry = platforms()
    dest = url(tmp_path / "store.db")
    import_records(dest, load_authorizations(AUTHORIZATIONS, registry))
    clock = Clock()
    store = SQLiteStore(dest, ["microblog"], clock=clock)
    engine = Engine(registry, store, "consentcrawl")
    robots = from_response("http://microblog.example/robots.txt", 200, b"", NOW)

    def reason() -> str:
        return engine.decide(engine.facts("http://microblog.example/u/1001", "research", NOW), robots).reason

    assert reason() == "subject.authorized"
    withdrawal = AuthorizationRecord("microblog", "1001", frozenset({"research"}), NOW.replace(month=2, day=1),
                                     revoked_at=NOW.replace(month=10), evidence="withdrawn by mail", source="w:1")
    import_records(dest, [withdrawal])
    assert reason() == "subject.authorized"  # the open snapshot, for at most `refresh` seconds
    clock.now += 1.0
    assert reason() == "subject.revoked"
    assert len(store) == 101


def test_a_removed_store_denies_with_store_unavailable(tmp_path: Path) -> None:
    registry = platforms()
    import_records(url(tmp_path / "store.db"), load_authorizations(AUTHORIZATIONS, registry))
    clock = Clock()
    store = SQLiteStore(url(tmp_path / "store.db"), ["microblog"], clock=clock)
    engine = Engine(registry, store, "consentcrawl")
    robots = from_response("http://microblog.example/robots.txt", 200, b"", NOW)
    assert store.lookup("microblog", "1001")
    (tmp_path / "store.db").unlink()
    clock.now += 1.0
    with pytest.raises(StoreUnavailable, match="is gone"):
        store.lookup("microblog", "1001")
    decision = engine.decide(engine.facts("http://microblog.example/u/1001", "research", NOW), robots)
    assert decision.reason == "error.store-unavailable" and not decision.allowed
    assert engine.decide_subject("microblog", "1001", "research", NOW).reason == "error.store-unavailable"
    import_records(url(tmp_path / "store.db"), load_authorizations(AUTHORIZATIONS, registry))
    assert store.lookup("microblog", "1001")  # a store put back in place is used again


def corrupt_records(path: Path) -> None:
    """Overwrite the root page of the records table: opening still works, every lookup fails."""
    conn = sqlite3.connect(path)
    root, page_size = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'records'").fetchone()[0], \
        conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with path.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\x0d" + b"\xff" * (page_size - 1))


def test_a_corrupt_store_fails_every_lookup(tmp_path: Path) -> None:
    import_records(url(tmp_path / "store.db"), load_authorizations(AUTHORIZATIONS, platforms()))
    store = SQLiteStore(url(tmp_path / "store.db"))
    corrupt_records(tmp_path / "store.db")
    with pytest.raises(StoreUnavailable, match="DatabaseError"):
        store.lookup("microblog", "1001")
    with pytest.raises(StoreUnavailable):
        store.lookup("microblog", "1005")  # broken until the file changes


# -- real crawls ---------------------------------------------------------------------------------------------------


@deferred_f_from_coro_f
async def test_a_crawl_with_the_sqlite_store_collects_what_the_yaml_store_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    dest = url(tmp_path / "store.db")
    import_records(dest, load_authorizations(AUTHORIZATIONS, platforms()), platforms=["microblog"])
    site = MicroblogSite(n_profiles=100)
    results = {}
    for name, source in (("yaml", str(AUTHORIZATIONS)), ("sqlite", dest)):
        settings = consent_settings(tmp_path / name, CONSENTCRAWL_AUTHORIZATIONS=source, LOG_LEVEL="INFO")
        with LocalServer(site) as server:
            results[name] = (await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch),
                             requested_subjects(server))
    (yaml_result, yaml_fetched), (sqlite_result, sqlite_fetched) = results["yaml"], results["sqlite"]
    assert sqlite_fetched == yaml_fetched == live_research_subjects() & set(site.subject_ids)

    def items(result: Any) -> list[dict[str, Any]]:
        return sorted(({k: v for k, v in i.items() if k != "consentcrawl"} for i in result.items),
                      key=lambda i: i["subject"])

    assert items(sqlite_result) == items(yaml_result) and items(sqlite_result)
    counts = [{k: v for k, v in r.consent_stats().items() if k != "consentcrawl/audit_chain_end"}  # its own log's
              for r in (sqlite_result, yaml_result)]
    assert counts[0] == counts[1]
    sources = {e["source"] for entry in sqlite_result.audit for e in entry["evidence"]
               if e["kind"] == "subject-authorization" and e.get("records") != 0}
    assert sources and all(s.startswith(dest + "#") for s in sources)


@deferred_f_from_coro_f
async def test_a_crawl_with_an_unreadable_store_denies_with_store_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    dest = tmp_path / "store.db"
    import_records(url(dest), load_authorizations(AUTHORIZATIONS, platforms()), platforms=["microblog"])
    corrupt_records(dest)
    settings = consent_settings(tmp_path, CONSENTCRAWL_AUTHORIZATIONS=url(dest), LOG_LEVEL="INFO")
    with LocalServer(MicroblogSite(n_profiles=40)) as server:
        result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        assert requested_subjects(server) == set()  # not one profile was fetched
        assert any(r.path == "/people" for r in server.requests)  # pages about nobody still were
    assert result.items == []
    unavailable = [e for e in result.audit if e["reason"] == "error.store-unavailable"]
    assert unavailable and all(e["verdict"] == "deny" and e["stage"] == "error" for e in unavailable)
    assert "DatabaseError" in unavailable[0]["evidence"][-1]["message"]
    assert result.stats["consentcrawl/denied/error/store-unavailable"] == len(
        [e for e in unavailable if e["phase"] != "item"])


def test_memory_and_file_stores_iterate_in_file_order() -> None:
    memory = read_authorizations(AUTHORIZATIONS, platforms())
    assert isinstance(memory, MemoryStore)
    assert [r.source for r in memory][:3] == [f"{AUTHORIZATIONS}:{n}" for n in (5, 12, 19)]
    assert len(list(memory)) == len(memory)
    live = load_authorizations(AUTHORIZATIONS, platforms())  # what a crawl and `authorizations import` use
    assert isinstance(live, FileStore) and list(live) == list(memory) and len(live) == len(memory)


# -- subject keys ------------------------------------------------------------------------------------------------


FULL_WIDTH_ALICE = "\uff21\uff2c\uff29\uff23\uff25"  #: "ALICE" in full-width letters: "alice" after NFKC and casefold


def grant(subject: str, *, revoked: bool = False, evidence: str = "form", line: int = 1) -> AuthorizationRecord:
    return AuthorizationRecord("microblog", subject, frozenset({"research"}), NOW.replace(month=2, day=1),
                               revoked_at=NOW.replace(month=3, day=1) if revoked else None, evidence=evidence,
                               source=f"records.jsonl:{line}")


def test_people_are_placed_by_subject_key(tmp_path: Path) -> None:
    dest = url(tmp_path / "store.db")
    import_records(dest, [grant("Alice"), grant(FULL_WIDTH_ALICE, revoked=True, line=2), grant("bob", line=3)],
                   platforms=platforms().platforms)
    store = SQLiteStore(dest, platforms().platforms)
    assert [r.subject for r in store.lookup("microblog", "alice")] == ["Alice", FULL_WIDTH_ALICE]  # as written
    assert store.lookup("microblog", "ALICE") == store.lookup("microblog", "alice")
    assert store.keys == 2 and len(store) == 3
    with pytest.raises(ConfigError, match="duplicate"):  # the same grant of the same person, written otherwise
        import_records(dest, [grant("aLiCe", line=4)])
    conn = sqlite3.connect(tmp_path / "store.db")
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    conn.close()
    assert meta["version"] == sqlite_format.VERSION == "3"
    assert json.loads(meta["subject_keys"]) == {"microblog": "nfkc-casefold"}
    store.close()


def legacy_store(path: Path, records: list[AuthorizationRecord]) -> None:
    """A store as format version 1 wrote it: people placed by the subject as written."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(sqlite_format.SCHEMA + ";" + sqlite_format.RECORDS_TABLE.format(name="records"))
    bloom, used = sqlite_format.Bloom.sized(len(records)), set()
    for record in records:
        hashes = key_hashes(record.platform, record.subject)
        slot = base_id(hashes[0])
        while slot in used:
            slot += 1
        used.add(slot)
        bloom.add(*hashes)
        conn.execute(sqlite_format.INSERT, (slot, *sqlite_write._record_row(record), None))
    conn.execute("INSERT INTO bloom VALUES (1, ?, ?, ?)", (bloom.probes, len(records), bytes(bloom.bits)))
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [
        ("format", sqlite_format.FORMAT), ("version", "1"), ("records", str(len(records))),
        ("keys", str(len({(r.platform, r.subject) for r in records}))), ("platforms", '["microblog"]')])
    conn.commit()
    conn.close()


def test_a_format_1_store_is_read_by_key_and_upgraded_by_the_next_import(tmp_path: Path) -> None:
    legacy_store(tmp_path / "store.db", [grant("Alice"), grant("alice", revoked=True), grant("bob")])
    store = SQLiteStore(url(tmp_path / "store.db"), ["microblog"])
    assert sorted(r.subject for r in store.lookup("microblog", "ALICE")) == ["Alice", "alice"]
    assert len(store.lookup("microblog", "bob")) == 1 and store.lookup("microblog", "carol") == ()
    import_records(url(tmp_path / "store.db"), [grant("carol")])  # upgrades it: every record moved to its key
    after = SQLiteStore(url(tmp_path / "store.db"), ["microblog"])
    assert sorted(r.subject for r in after.lookup("microblog", "alice")) == ["Alice", "alice"]
    ids = [int(r.source.rpartition("#")[2]) for r in after.lookup("microblog", "alice")]
    assert ids == [base_id(key_hashes("microblog", "alice")[0]) + n for n in range(2)]
    assert after.keys == 3 and len(after) == 4 and after.lookup("microblog", "carol")
    with pytest.raises(ConfigError, match="duplicate"):
        import_records(url(tmp_path / "store.db"), [grant("ALICE")])
    deadline = time.monotonic() + 2.0  # the store opened on version 1 follows the upgrade
    while not store.lookup("microblog", "carol") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.lookup("microblog", "carol") and len(store.lookup("microblog", "alice")) == 2
    store.close()
    after.close()


def test_a_store_indexed_under_another_key_rule_is_refused_until_indexed_again(tmp_path: Path) -> None:
    dest = url(tmp_path / "store.db")
    import_records(dest, [grant("Alice"), grant("alice", revoked=True)], platforms=["microblog"])
    case_sensitive = {"microblog": SimpleNamespace(name="microblog", case_sensitive=True)}
    with pytest.raises(ConfigError, match=r"case-insensitively.*case-sensitively"):
        SQLiteStore(dest, case_sensitive)
    import_records(dest, [], platforms=case_sensitive)
    store = SQLiteStore(dest, case_sensitive)
    assert [r.subject for r in store.lookup("microblog", "Alice")] == ["Alice"]
    assert [r.subject for r in store.lookup("microblog", "alice")] == ["alice"]
    store.close()


def test_refresh_is_bounded_by_the_live_store_bound(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="within 2 seconds"):
        SQLiteStore(url(tmp_path / "store.db") + "?refresh=5")
