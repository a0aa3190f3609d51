"""What an SQLite item database keeps of a purged person outside its tables: index samples (``sqlite_stat4``), a
full-text index's tokens, pages freed before the purge, a persistent journal. Judged by the raw bytes of every file
of the database after ``consentcrawl purge`` (and by the full-text indexes' own vocabulary: FTS5 stores a token
after the common prefix of the one before it, so its bytes are not the word), its exit code and what it says."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from consentcrawl.cli import main
from tests.lenient import HOST, people_settings

BASE = f"http://{HOST}"
SECRETS = (f"{BASE}/u/104".encode(), b"zzsecret104", b"zzfree104", b"zznote104")


def _database(db: Path) -> sqlite3.Connection:
    """A project's pipeline database as it is left: items with an index on the URL and ``ANALYZE`` samples, a
    full-text index of its own (contentful, with the subject) and one over ``items`` (external content, no
    triggers), an FTS4 one, pages a table dropped without ``secure_delete`` left free with its rows, and the
    pipeline's connection in ``journal_mode=PERSIST`` (its journal keeps the pages its last transaction changed)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA secure_delete = OFF")
    conn.execute("CREATE TABLE items (subject TEXT, platform TEXT, url TEXT, bio TEXT, consentcrawl TEXT)")
    conn.execute("CREATE INDEX items_url ON items(url)")
    conn.execute("CREATE VIRTUAL TABLE items_fts USING fts5(bio, content='items', content_rowid='rowid')")
    conn.execute("CREATE VIRTUAL TABLE notes USING fts5(subject, body)")
    conn.execute("CREATE VIRTUAL TABLE notes4 USING fts4(subject, body)")
    conn.execute("CREATE TABLE drafts (subject TEXT, body TEXT)")
    conn.execute("BEGIN")
    for n in range(100, 130):
        s = str(n)
        bio = f"bio of person{s} zzsecret{s}"
        conn.execute("INSERT INTO items VALUES (?,?,?,?,?)", (s, "people", f"{BASE}/u/{s}", bio,
                                                              json.dumps({"platform": "people", "subject": s})))
        conn.execute("INSERT INTO items_fts(rowid, bio) VALUES (last_insert_rowid(), ?)", (bio,))
        conn.execute("INSERT INTO notes VALUES (?, ?)", (s, f"note zznote{s}"))
        conn.execute("INSERT INTO notes4 VALUES (?, ?)", (s, f"note zznote{s}"))
    conn.execute("INSERT INTO drafts VALUES ('104', ?)", ("draft zzfree104 " * 400,))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    if "sqlite_stat4" not in {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}:
        # this SQLite has no STAT4: the samples a STAT4 build writes (index keys in a record), made by hand
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("CREATE TABLE sqlite_stat4(tbl,idx,neq,nlt,ndlt,sample)")
        conn.execute("PRAGMA writable_schema = OFF")
        conn.execute("INSERT INTO sqlite_stat4 VALUES ('items', 'items_url', '1 1', '4 4', '4 4', ?)",
                     (b"\x03\x57\x09" + f"{BASE}/u/104".encode() + b"\x05",))
    conn.execute("DROP TABLE drafts")  # its pages freed, not zeroed: an old copy in free pages
    conn.execute("PRAGMA journal_mode = PERSIST")
    conn.execute("UPDATE items SET bio = bio || '.' WHERE subject = '103'")  # its journal keeps the page: 104's row
    return conn


def _left(db: Path) -> dict[str, list[bytes]]:
    files = {p.name: p.read_bytes() for p in db.parent.glob(db.name + "*")}
    found = {name: [s for s in SECRETS if s in data] for name, data in files.items()}
    conn = sqlite3.connect(db)
    for table in ("items_fts", "notes"):
        conn.execute(f"CREATE VIRTUAL TABLE temp.v_{table} USING fts5vocab(main, {table}, 'row')")
        found[table] = [t.encode() for (t,) in conn.execute(f"SELECT term FROM temp.v_{table}") if "104" in t]
    conn.execute("CREATE VIRTUAL TABLE temp.v4 USING fts4aux(main, notes4)")
    found["notes4"] = [t.encode() for (t, *_) in conn.execute("SELECT * FROM temp.v4") if "104" in t]
    conn.close()
    return {name: hits for name, hits in found.items() if hits}


def test_no_byte_of_the_person_is_left_in_any_file_of_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = people_settings(tmp_path)
    db = tmp_path / "items.db"
    pipeline = _database(db)
    pipeline.close()
    before = _left(db)
    assert {"items.db", "items.db-journal", "items_fts", "notes", "notes4"} <= set(before), before

    code = main(["purge", "--platforms", settings["CONSENTCRAWL_PLATFORMS"], "--subject", "people:104",
                 "--audit-log", str(tmp_path / "audit.jsonl"), str(db)])
    assert code == 0, capsys.readouterr()
    assert _left(db) == {}
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM items").fetchone() == (29,)
    assert conn.execute("SELECT rowid FROM items_fts WHERE items_fts MATCH 'zzsecret105'").fetchall() == [(6,)]
    assert conn.execute("SELECT count(*) FROM notes WHERE notes MATCH 'zznote105'").fetchone() == (1,)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_contentless_full_text_index_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``content=''`` keeps tokens and no text: whether it holds the person's cannot be told, nor can it be
    rebuilt. The rows go; the index is named on stderr, exit 1."""
    settings = people_settings(tmp_path)
    db = tmp_path / "items.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (subject TEXT, platform TEXT, bio TEXT)")
        conn.execute("CREATE VIRTUAL TABLE bios USING fts5(bio, content='')")
        conn.execute("INSERT INTO items VALUES ('104', 'people', 'zzsecret104')")
        conn.execute("INSERT INTO bios(rowid, bio) VALUES (1, 'zzsecret104')")
    conn.close()
    code = main(["purge", "--platforms", settings["CONSENTCRAWL_PLATFORMS"], "--subject", "people:104",
                 "--audit-log", str(tmp_path / "audit.jsonl"), str(db)])
    printed = capsys.readouterr()
    assert code == 1, printed
    assert "full-text index 'bios' is contentless" in printed.err, printed.err
    assert "Traceback" not in printed.err
    assert sqlite3.connect(db).execute("SELECT count(*) FROM items").fetchone() == (0,)
