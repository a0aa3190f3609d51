"""A damaged SQLite store never answers with part of a person's records: a lost row denies, recorded with its cause.

The store is built by the real importer (``consentcrawl authorizations import``), then damaged on disk below SQLite
(:mod:`tests.sqlite_damage`: a withdrawal's row lost from its leaf page, which SQLite reads as valid). The truth
is what the local server was asked for and what the audit log recorded.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl.consent import sqlite_format
from consentcrawl.consent.load import load_authorizations
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.sqlite import SQLiteStore, bulk_build, import_records
from consentcrawl.errors import StoreDamaged, StoreUnavailable
from consentcrawl.terms.load import load_platforms
from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer
from spiders.microblog import MicroblogSpider
from tests.conftest import AUTHORIZATIONS, PLATFORMS, consent_settings, run_crawl
from tests.sqlite_damage import drop_row
from tests.test_crawl_e2e import live_research_subjects, requested_subjects
from tests.test_sqlite_store import corrupt_records

WITHDRAWN = "1005"  #: live for research in the demo file, until the withdrawal below


def demo_with_a_withdrawal(tmp_path: Path) -> Path:
    """The demo records as JSON Lines, and a withdrawal of their own for WITHDRAWN (a row beside the grant)."""
    rows = yaml.safe_load(AUTHORIZATIONS.read_text())["authorizations"]
    rows.append({"platform": "microblog", "subject": WITHDRAWN, "purposes": ["research"],
                 "granted_at": "2026-03-05T20:00:00Z", "revoked_at": "2026-06-01T00:00:00Z",
                 "evidence": "withdrawn by e-mail", "record_id": "withdrawal-1005"})
    path = tmp_path / "authorizations.jsonl"
    path.write_text("".join(json.dumps({k: v for k, v in row.items() if v is not None}, default=str) + "\n"
                            for row in rows), encoding="utf-8")
    return path


def imported_store(tmp_path: Path) -> Path:
    dest = tmp_path / "store.db"
    assert main(["authorizations", "import", str(demo_with_a_withdrawal(tmp_path)), f"sqlite:///{dest}",
                 "--platforms", str(PLATFORMS)]) == 0
    assert not Path(f"{dest}-wal").exists()  # the damage below is to the file SQLite reads
    return dest


def withdrawal_row(dest: Path) -> int:
    conn = sqlite3.connect(dest)
    try:
        rows = conn.execute("SELECT id, revoked_at FROM records WHERE subject = ?", (WITHDRAWN,)).fetchall()
    finally:
        conn.close()
    assert len(rows) == 2 and sum(1 for _, revoked in rows if revoked) == 1
    return next(rowid for rowid, revoked in rows if revoked)


@deferred_f_from_coro_f
async def test_a_lost_withdrawal_row_denies_and_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    dest = imported_store(tmp_path)
    drop_row(dest, withdrawal_row(dest))
    settings = consent_settings(tmp_path, CONSENTCRAWL_AUTHORIZATIONS=f"sqlite:///{dest}", LOG_LEVEL="INFO")
    with caplog.at_level(logging.ERROR), LocalServer(MicroblogSite(n_profiles=12)) as server:
        result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        fetched = requested_subjects(server)
    assert WITHDRAWN not in fetched  # the server was never asked for the withdrawn person's profile
    assert fetched <= live_research_subjects() - {WITHDRAWN}
    assert not any(item.get("subject") == WITHDRAWN for item in result.items)
    damaged = [e for e in result.audit if e["reason"] == "error.store-unavailable"]
    assert damaged and all(e["verdict"] == "deny" for e in damaged)
    assert any("is damaged" in e["evidence"][-1]["message"] for e in damaged), damaged[0]["evidence"]
    assert result.stats["consentcrawl/authorizations/damaged"] == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"sqlite:///{dest}" in m and "is damaged" in m for m in errors), errors


def test_a_lost_row_fails_the_store_until_the_file_changes(tmp_path: Path) -> None:
    dest = imported_store(tmp_path)
    drop_row(dest, withdrawal_row(dest))
    store = SQLiteStore(f"sqlite:///{dest}")
    with pytest.raises(StoreUnavailable, match="is damaged: 1 record of a person where the store wrote 2"):
        store.lookup("microblog", WITHDRAWN)
    with pytest.raises(StoreUnavailable, match="is damaged"):
        store.lookup("microblog", "1001")  # every answer of a damaged file is suspect


def test_an_intact_store_answers_every_record(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{imported_store(tmp_path)}")
    records: Any = store.lookup("microblog", WITHDRAWN)
    assert sorted(r.revoked_at is not None for r in records) == [False, True]


def damaged_on_lookup(dest: Path, subject: str = WITHDRAWN) -> str:
    store = SQLiteStore(f"sqlite:///{dest}")
    try:
        with pytest.raises(StoreDamaged) as caught:
            store.lookup("microblog", subject)
    finally:
        store.close()
    return str(caught.value)


def test_a_withdrawal_imported_into_a_store_counts_the_grant_beside_it(tmp_path: Path) -> None:
    """The one-by-one import (a withdrawal added to a store that holds the grant) counts the grant's row again."""
    dest = tmp_path / "store.db"
    import_records(f"sqlite:///{dest}", load_authorizations(AUTHORIZATIONS, load_platforms([str(PLATFORMS)])))
    import_records(f"sqlite:///{dest}", [AuthorizationRecord(
        "microblog", WITHDRAWN, frozenset({"research"}), datetime(2026, 3, 5, 20, tzinfo=timezone.utc), None,
        datetime(2026, 6, 1, tzinfo=timezone.utc), "withdrawn by e-mail", None, "withdrawal-1005", "", "w.yaml:1")])
    drop_row(dest, withdrawal_row(dest))
    assert "1 record of a person where the store wrote 2" in damaged_on_lookup(dest)


def test_a_store_of_format_2_is_read_unchecked_and_counted_by_the_next_import(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dest = imported_store(tmp_path)
    conn = sqlite3.connect(dest)
    conn.execute("ALTER TABLE records DROP COLUMN person_rows")  # as format 2 wrote it
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'version'")
    conn.commit()
    conn.close()
    with caplog.at_level(logging.WARNING):
        store = SQLiteStore(f"sqlite:///{dest}")
    assert any("holds no count of each person's rows" in r.getMessage() for r in caplog.records)
    assert len(store.lookup("microblog", WITHDRAWN)) == 2
    store.close()
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"platform": "microblog", "subject": "1299", "purposes": ["research"], '
                     '"granted_at": "2026-01-01T00:00:00Z", "evidence": "x"}\n')
    assert main(["authorizations", "import", str(empty), f"sqlite:///{dest}", "--platforms", str(PLATFORMS)]) == 0
    drop_row(dest, withdrawal_row(dest))
    assert "is damaged" in damaged_on_lookup(dest)


def test_a_bulk_built_store_is_counted(tmp_path: Path) -> None:
    rows = [("microblog", "1005", "research", "2026-01-01T00:00:00+00:00", None, None, "grant", None, "", "", ""),
            ("microblog", "1005", "research", "2026-01-01T00:00:00+00:00", None, "2026-02-01T00:00:00+00:00",
             "withdrawal", None, "w", "", ""),
            ("microblog", "1001", "research", "2026-01-01T00:00:00+00:00", None, None, "grant", None, "", "", "")]
    dest = tmp_path / "store.db"
    bulk_build(str(dest), len(rows), rows.__getitem__)
    assert len(SQLiteStore(f"sqlite:///{dest}").lookup("microblog", "1005")) == 2
    drop_row(dest, withdrawal_row(dest))
    assert "is damaged" in damaged_on_lookup(dest)


def test_a_row_that_does_not_parse_and_a_malformed_page_are_damage(tmp_path: Path) -> None:
    dest = imported_store(tmp_path)
    conn = sqlite3.connect(dest)
    conn.execute("UPDATE records SET revoked_at = 'the 1st of June' WHERE id = ?", (withdrawal_row(dest),))
    conn.commit()
    conn.close()
    assert "cannot be read: ValueError" in damaged_on_lookup(dest)
    dest.unlink()
    dest = imported_store(tmp_path)
    corrupt_records(dest)
    assert "is damaged: DatabaseError: database disk image is malformed" in damaged_on_lookup(dest)


# -- smaller: what the importer takes for a store of ours ----------------------------------------------------------


@pytest.mark.parametrize("tables", [
    ["CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)", "CREATE TABLE users (name TEXT)",
     "INSERT INTO users VALUES ('alice')"],
    ["CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)", "INSERT INTO meta VALUES ('format', 'wiki-settings')"],
    ["CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)", "CREATE TABLE records (id INTEGER PRIMARY KEY, x)",
     "INSERT INTO records VALUES (1, 'theirs')"],
], ids=["other-tables", "other-format", "records-without-format"])
def test_another_programs_database_with_a_meta_table_is_refused_untouched(
        tmp_path: Path, tables: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    for statement in tables:
        conn.execute(statement)
    conn.commit()
    conn.close()
    before = other.read_bytes()
    source = demo_with_a_withdrawal(tmp_path)
    assert main(["authorizations", "import", str(source), f"sqlite:///{other}", "--platforms", str(PLATFORMS)]) == 2
    err = capsys.readouterr().err
    assert f"sqlite:///{other}" in err and "not a consentcrawl authorization store" in err, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert other.read_bytes() == before and not Path(f"{other}-wal").exists()


def test_tables_left_by_an_import_that_failed_are_ours(tmp_path: Path) -> None:
    dest = tmp_path / "store.db"
    conn = sqlite3.connect(dest)
    conn.executescript(sqlite_format.SCHEMA + ";" + sqlite_format.RECORDS_TABLE.format(name="records"))
    conn.close()
    assert main(["authorizations", "import", str(demo_with_a_withdrawal(tmp_path)), f"sqlite:///{dest}",
                 "--platforms", str(PLATFORMS)]) == 0
    assert len(SQLiteStore(f"sqlite:///{dest}").lookup("microblog", WITHDRAWN)) == 2


def test_the_purge_of_the_withdrawn_stops_on_a_lost_row_rather_than_purge_too_few(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = imported_store(tmp_path)
    feed = tmp_path / "items.jsonl"
    both = f'{{"subject": "1001", "platform": "microblog"}}\n{{"subject": "{WITHDRAWN}", "platform": "microblog"}}\n'

    def purge() -> int:
        feed.write_text(both)
        return main(["purge", "--platforms", str(PLATFORMS), "--withdrawn", "--authorizations", f"sqlite:///{dest}",
                     "--audit-log", str(tmp_path / "audit.jsonl"), str(feed)])

    assert purge() == 0 and WITHDRAWN not in feed.read_text()  # intact: the withdrawn person's item goes
    drop_row(dest, withdrawal_row(dest))
    capsys.readouterr()
    assert purge() == 2
    err = capsys.readouterr().err
    assert f"sqlite:///{dest}" in err and "is damaged: 1 record(s) of a person where the store wrote 2" in err, err
    assert feed.read_text() == both  # nothing purged on a partial list


@pytest.mark.parametrize("version", ["2", None], ids=["empty-format-2-store", "tables-of-an-older-failed-import"])
def test_an_empty_store_of_an_older_format_takes_records_counted(tmp_path: Path, version: str | None) -> None:
    dest = tmp_path / "store.db"
    conn = sqlite3.connect(dest)
    conn.executescript(sqlite_format.SCHEMA + ";" + sqlite_format.RECORDS_TABLE.format(name="records"))
    conn.execute("ALTER TABLE records DROP COLUMN person_rows")
    if version is not None:
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [("format", sqlite_format.FORMAT), ("version", version),
                                                            ("records", "0"), ("keys", "0"), ("platforms", "[]")])
    conn.commit()
    conn.close()
    import_records(f"sqlite:///{dest}", load_authorizations(demo_with_a_withdrawal(tmp_path),
                                                            load_platforms([str(PLATFORMS)])))
    assert len(SQLiteStore(f"sqlite:///{dest}").lookup("microblog", WITHDRAWN)) == 2
    drop_row(dest, withdrawal_row(dest))
    assert "is damaged" in damaged_on_lookup(dest)


def test_validate_checks_every_persons_count_beyond_quick_check(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A row removed through SQLite (another tool's DELETE: a b-tree quick_check finds consistent) is found by the
    counts; a row lost below SQLite is found by quick_check already."""
    dest = imported_store(tmp_path)

    def validate() -> tuple[int, str]:
        code = main(["authorizations", "validate", f"sqlite:///{dest}", "--platforms", str(PLATFORMS)])
        return code, capsys.readouterr().out

    assert validate()[0] == 0
    conn = sqlite3.connect(dest)
    conn.execute("DELETE FROM records WHERE id = ?", (withdrawal_row(dest),))
    conn.commit()
    conn.close()
    code, out = validate()
    assert code == 1 and f"sqlite:///{dest}: damaged: 1 record(s) of a person where the store wrote 2" in out, out


def test_validate_reads_the_store_it_is_named_not_a_file_its_name_begins_with(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A damaged copy kept as ``store.db#2`` beside an intact ``store.db``: an unquoted ``file:`` URI ends the path at
    ``#``, so validating the copy would read the intact store and call the damaged one intact."""
    intact = imported_store(tmp_path)
    copy = tmp_path / "store.db#2"
    copy.write_bytes(intact.read_bytes())
    conn = sqlite3.connect(copy)
    conn.execute("DELETE FROM records WHERE id = ?", (withdrawal_row(copy),))
    conn.commit()
    conn.close()
    code = main(["authorizations", "validate", f"sqlite:///{copy}", "--platforms", str(PLATFORMS)])
    out = capsys.readouterr().out
    assert code != 0, out
    assert main(["authorizations", "validate", f"sqlite:///{intact}", "--platforms", str(PLATFORMS)]) == 0
