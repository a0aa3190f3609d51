"""The purge of a person reaches the URLs that may be theirs: ambiguous ones, which the guard withholds as
``subject.ambiguous-url`` in enforce mode but a crawl in report mode (or an older one) let into its outputs.

``?id=101&id=104`` (PHP reads the last value, another server the first), ``/u/0104`` (104 to a server that reads
ids as numbers), ``/u/%20104`` (104 to one that trims ids) and ``?id[]=104`` (a list to PHP, Rails and Express's
``qs``, whose one element an application may read) may each be 104's page. A purge of 104 takes them out of the
records it keeps, and removes the records made from such a page. Judged by the bytes of the feeds and the database
after the purge, its exit code and its receipt.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from consentcrawl.audit.log import read_audit_log
from consentcrawl.cli import main
from tests.lenient import HOST, people_settings

BASE = f"http://{HOST}"
#: every spelling below may be 104's page
AMBIGUOUS = [f"{BASE}/profile.php?id=101&id=104", f"{BASE}/u/0104", f"{BASE}/u/%20104",
             f"{BASE}/profile.php?id[]=104", "/u/0104"]
LEFT = (b"0104", b"id=101&id=104", b"%20104", b"id[]=104", b"id%5B%5D=104")


def _records() -> list[dict[str, object]]:
    kept = {"consentcrawl": {"platform": "people", "subject": "101", "url": f"{BASE}/u/101"},
            "friends": [*AMBIGUOUS, f"{BASE}/u/103"], "bio": f"see {AMBIGUOUS[1]} and /u/102"}
    made_from = [{"consentcrawl": {"platform": "people", "subject": None, "url": url}, "name": "SECRET"}
                 for url in AMBIGUOUS[:4]]
    return [kept, *made_from, {"consentcrawl": {"platform": "people", "subject": "102", "url": f"{BASE}/u/102"}}]


def test_a_purge_takes_the_urls_that_may_be_the_persons_and_the_records_made_from_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = people_settings(tmp_path)
    records = _records()
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    table = tmp_path / "items.csv"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["consentcrawl", "friends", "bio", "name"])
    for r in records:
        writer.writerow([str(r["consentcrawl"]), ",".join(r.get("friends", [])), r.get("bio", ""),  # type: ignore[arg-type]
                         r.get("name", "")])
    table.write_text(out.getvalue())
    db = tmp_path / "items.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (friends TEXT, bio TEXT, name TEXT, consentcrawl TEXT)")
        conn.executemany("INSERT INTO items VALUES (?,?,?,?)",
                         [(json.dumps(r.get("friends")), r.get("bio"), r.get("name"), json.dumps(r["consentcrawl"]))
                          for r in records])
    conn.close()
    last = jsonl.read_bytes().splitlines(keepends=True)[-1]
    log = tmp_path / "audit.jsonl"

    code = main(["purge", "--platforms", settings["CONSENTCRAWL_PLATFORMS"], "--subject", "people:104",
                 "--audit-log", str(log), str(jsonl), str(table), str(db)])
    assert code == 0, capsys.readouterr()

    for path in (jsonl, table, db):
        data = path.read_bytes()
        assert not any(spelling in data for spelling in LEFT), (path, data)
        assert b"SECRET" not in data, path
    kept = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["consentcrawl"]["subject"] for r in kept] == ["101", "102"]
    assert kept[0]["friends"] == [f"{BASE}/u/103"] and kept[0]["bio"] == "see [consentcrawl: withheld] and /u/102"
    assert jsonl.read_bytes().endswith(last), "a record of no one erased keeps its bytes"
    rows = sqlite3.connect(db).execute("SELECT friends FROM items ORDER BY rowid").fetchall()
    assert [json.loads(r[0]) if r[0] != "null" else None for r in rows] == [[f"{BASE}/u/103"], None]
    (receipt,) = [e for e in read_audit_log(log) if e.get("event") == "purge-receipt"]
    assert receipt["removed"] == 12 and receipt["mentions_withheld"] == 3, receipt


def test_a_subject_written_with_white_space_is_the_trimmed_persons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """An older crawl wrote the subject as the page gave it (``" alice"``, ``"alice\\t"``): an application that
    trims ids serves alice's page for it, and the guard now denies such an id as ambiguous. The purge of alice takes
    those records (subject field or provenance) from a feed, a CSV and a database; ``" bob"`` stays."""
    settings = people_settings(tmp_path)
    records = [{"subject": " alice", "platform": "people", "name": "SECRET"},
               {"subject": "Alice\t", "platform": "people", "name": "SECRET"},
               {"subject": "\u00a0alice", "name": "SECRET"},  # no platform: an id on any platform
               {"consentcrawl": {"platform": "people", "subject": "alice ", "url": None}, "name": "SECRET"},
               {"subject": " bob", "platform": "people", "name": "kept"}]
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    table = tmp_path / "items.csv"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["subject", "platform", "name", "consentcrawl"])
    for r in records:
        writer.writerow([r.get("subject", ""), r.get("platform", ""), r["name"], str(r.get("consentcrawl", ""))])
    table.write_text(out.getvalue())
    db = tmp_path / "items.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (subject TEXT, platform TEXT, name TEXT, consentcrawl TEXT)")
        conn.executemany("INSERT INTO items VALUES (?,?,?,?)",
                         [(r.get("subject"), r.get("platform"), r["name"], json.dumps(r.get("consentcrawl")))
                          for r in records])
    conn.close()
    log = tmp_path / "audit.jsonl"
    code = main(["purge", "--platforms", settings["CONSENTCRAWL_PLATFORMS"], "--subject", "people:alice",
                 "--audit-log", str(log), str(jsonl), str(table), str(db)])
    assert code == 0, capsys.readouterr()
    for path in (jsonl, table, db):
        data = path.read_bytes()
        assert b"SECRET" not in data and b"kept" in data, (path, data)
    (receipt,) = [e for e in read_audit_log(log) if e.get("event") == "purge-receipt"]
    assert receipt["removed"] == 12, receipt
