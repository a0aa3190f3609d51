"""``consentcrawl purge`` on the real outputs of a crawl of the demo platform: three feed formats, an SQLite
database written by a pipeline, and Scrapy's filesystem HTTP cache (issue 15, "Erasure").

One crawl is made for the module (it takes a few seconds) and each test purges its own copy of the outputs. What
a test expects is computed from the copy taken before the purge, independently of the purge's code: the lines
and rows that mention the person, and the cache entries that show them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from scrapy import signals
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.audit.chain import verify
from consentcrawl.audit.log import AuditLog, read_audit_log
from consentcrawl.cli import main
from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer
from spiders.microblog import MicroblogSpider
from tests.conftest import PLATFORMS, append_withdrawal, consent_settings, jsonl, run_crawl
from tests.purge_helpers import output_settings

_CRAWLED: dict[str, Path] = {}


async def crawled(server: LocalServer, monkeypatch: pytest.MonkeyPatch,
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The outputs of one crawl of the demo platform (made once for the module), as a directory to copy."""
    if "out" not in _CRAWLED:
        base = tmp_path_factory.mktemp("purge-crawl")
        out = base / "out"
        # 40 people are enough to show every kind of record, and keep the suite fast
        settings = consent_settings(base, **output_settings(out), LOG_LEVEL="INFO", CLOSESPIDER_ITEMCOUNT=40)
        result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        assert len(result.items) >= 40
        _CRAWLED["out"] = out
    return _CRAWLED["out"]


def copy_of(out: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy to purge and a copy to compare with."""
    work, before = tmp_path / "out", tmp_path / "before"
    shutil.copytree(out, work)
    shutil.copytree(out, before)
    return work, before


def targets(out: Path) -> list[str]:
    return [str(out / n) for n in ("items.jsonl", "items.json", "items.csv", "items.db", "httpcache")]


def id_pattern(subject: str) -> re.Pattern[bytes]:
    """The id where it stands for the person: in a profile path (also %-encoded), quoted (JSON, a Python repr,
    an HTML attribute), as ``microblog:ID``, or first in a CSV record; not a number that happens to have the same
    digits (a Content-Length, a follower count) nor inside a hex id."""
    return re.compile(rb"(?im)(?:/u/|/profile/|u%2F|profile%2F|[\"']|microblog:|^)" + subject.encode()
                      + rb"(?![0-9A-Za-z])")


def every_file(root: Path) -> Iterator[Path]:
    return (p for p in sorted(root.rglob("*")) if p.is_file())


def mentions(data: bytes, subject: str, site: MicroblogSite) -> bool:
    name = str(site.profile(subject)["name"]).encode()
    return bool(id_pattern(subject).search(data)) or name in data


def choose_person(before: Path, site: MicroblogSite) -> str:
    """A collected person whose id appears in no other person's records (so "no byte of them" can be checked)."""
    items = jsonl(before / "items.jsonl")
    lines = (before / "items.jsonl").read_bytes().splitlines()
    for item in items:
        subject = item["subject"]
        others = b"\n".join(line for line, other in zip(lines, items, strict=True) if other["subject"] != subject)
        if not id_pattern(subject).search(others):
            return str(subject)
    pytest.fail("no person to purge")


def cache_entries(root: Path) -> dict[str, dict[str, bytes]]:
    return {str(meta.parent.relative_to(root)): {f.name: f.read_bytes() for f in meta.parent.iterdir()}
            for meta in root.rglob("meta")}


def receipts_in(log: Path) -> list[dict[str, Any]]:
    return [e for e in read_audit_log(log) if e.get("event") == "purge-receipt"] if log.exists() else []


def purge(*args: str) -> int:
    return main(["purge", "--platforms", str(PLATFORMS), *args])


# -- the person gone, everything else as it was ------------------------------------------------------------------


@deferred_f_from_coro_f
async def test_purge_removes_every_byte_of_the_person_and_keeps_every_other_byte(
    server: LocalServer, site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
) -> None:
    out, before = copy_of(await crawled(server, monkeypatch, tmp_path_factory), tmp_path)
    subject = choose_person(before, site)
    name = str(site.profile(subject)["name"])
    log = tmp_path / "audit.jsonl"

    assert purge("--subject", f"microblog:{subject}", "--audit-log", str(log), *targets(out)) == 0

    # no byte of the person anywhere under the outputs: id, name, bio (where no one else has that bio)
    bio = str(site.profile(subject)["bio"])
    bio_unique = sum(str(site.profile(s)["bio"]) == bio for s in site.subject_ids) == 1
    for path in every_file(out):
        data = path.read_bytes()
        assert not mentions(data, subject, site), path
        assert not (bio_unique and bio.encode() in data), path

    # feeds: every other record byte-identical, in order
    old = (before / "items.jsonl").read_bytes().splitlines(keepends=True)
    gone = [line for line in old if json.loads(line)["subject"] == subject]
    assert gone  # once, or more when the crawl fetched their page under two spellings
    assert (out / "items.jsonl").read_bytes() == b"".join(line for line in old if line not in gone)
    old_json = (before / "items.json").read_bytes().splitlines()
    json_gone = [line.rstrip(b",") for line in old_json if name.encode() in line]
    kept_json = [line.rstrip(b",") for line in old_json if name.encode() not in line]
    assert [line.rstrip(b",") for line in (out / "items.json").read_bytes().splitlines()] == kept_json
    assert len(json.loads((out / "items.json").read_bytes())) == len(old) - len(gone)
    old_csv = (before / "items.csv").read_bytes().splitlines(keepends=True)
    csv_gone = [line for line in old_csv if name.encode() in line]
    assert (out / "items.csv").read_bytes() == b"".join(line for line in old_csv if line not in csv_gone)

    # SQLite: the other rows and tables as they were, the person's row gone from the file's bytes too
    def rows(db: Path, table: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            return conn.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid").fetchall()

    old_rows = rows(before / "items.db", "people")
    row_gone = [r for r in old_rows if r[1] == subject]
    assert rows(out / "items.db", "people") == [r for r in old_rows if r not in row_gone]
    assert rows(out / "items.db", "crawl_notes") == rows(before / "items.db", "crawl_notes")

    # the HTTP cache: exactly the entries that show the person are gone; the others are byte-identical
    old_cache, new_cache = cache_entries(before / "httpcache"), cache_entries(out / "httpcache")
    showing = {k for k, files in old_cache.items() if any(mentions(d, subject, site) for d in files.values())}
    assert showing and set(new_cache) == set(old_cache) - showing
    assert all(new_cache[k] == old_cache[k] for k in new_cache)

    # the receipt: in the audit log, with the hash of what was removed, and nothing of the person but the id
    [receipt] = receipts_in(log)
    assert receipt["subject"] == f"microblog:{subject}" and receipt["selection"] == "subject"
    by_kind = {t["kind"]: t for t in receipt["targets"]}
    with contextlib.closing(sqlite3.connect(before / "items.db")) as conn:
        conn.row_factory = sqlite3.Row
        removed_rows = conn.execute("SELECT rowid, * FROM people WHERE subject = ?", (subject,)).fetchall()
        row_text = b"".join((json.dumps({"table": "people", "rowid": r["rowid"],
                                         "row": {k: r[k] for k in r.keys() if k != "rowid"}},
                                        ensure_ascii=False, separators=(",", ":")) + "\n").encode()
                            for r in removed_rows)
    cache_bytes = b"".join(data for key in sorted(showing) for _, data in sorted(old_cache[key].items()))
    expected = {"jsonlines": b"".join(gone), "json": b"".join(json_gone), "csv": b"".join(csv_gone),
                "sqlite": row_text, "httpcache": cache_bytes}
    for kind, data in expected.items():
        assert by_kind[kind]["sha256"] == hashlib.sha256(data).hexdigest(), kind
        assert by_kind[kind]["bytes"] == len(data), kind
    assert by_kind["httpcache"]["removed"] == len(showing)
    assert receipt["removed"] == 4 * len(gone) + len(showing) and receipt["failed"] == []
    line = next(raw for raw in log.read_bytes().splitlines() if b"purge-receipt" in raw)
    assert name.encode() not in line and bio.encode() not in line
    # ... and the receipt is in the log's hash chain: the whole log still verifies, receipt segment included
    verified = verify(log)
    assert verified.problem is None, verified.problem
    assert f"removed {len(gone)} record(s) of microblog:{subject}" in capsys.readouterr().out


@deferred_f_from_coro_f
async def test_dry_run_changes_nothing_and_writes_no_receipt(
    server: LocalServer, site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
) -> None:
    out, before = copy_of(await crawled(server, monkeypatch, tmp_path_factory), tmp_path)
    subject = choose_person(before, site)
    log = tmp_path / "audit.jsonl"
    assert purge("--subject", f"microblog:{subject}", "--dry-run", "--audit-log", str(log), *targets(out)) == 0
    assert "would remove" in capsys.readouterr().out
    assert not log.exists()
    assert {str(p.relative_to(out)): p.read_bytes() for p in every_file(out)} == {
        str(p.relative_to(before)): p.read_bytes() for p in every_file(before)}


# -- who: withdrawn, expired --------------------------------------------------------------------------------------


@deferred_f_from_coro_f
async def test_purge_withdrawn_takes_the_people_the_store_says_withdrew(
    server: LocalServer, site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory, config_dir: Path,
) -> None:
    out, before = copy_of(await crawled(server, monkeypatch, tmp_path_factory), tmp_path)
    subject = choose_person(before, site)
    authorizations = config_dir / "authorizations.yaml"
    append_withdrawal(authorizations, subject)
    log = tmp_path / "audit.jsonl"
    assert purge("--withdrawn", "--authorizations", str(authorizations), "--audit-log", str(log),
                 *targets(out)) == 0
    for path in every_file(out):
        assert not mentions(path.read_bytes(), subject, site), path
    assert [i for i in jsonl(out / "items.jsonl")] == [i for i in jsonl(before / "items.jsonl")
                                                       if i["subject"] != subject]
    receipts = {r["subject"]: r for r in receipts_in(log)}
    # 1002 withdrew before the crawl: never collected, but named (beside a link to their profile) on the cached
    # listing pages, which go too; our person now
    assert set(receipts) == {f"microblog:{subject}", "microblog:1002"}
    assert receipts[f"microblog:{subject}"]["removed"] >= 4
    removed_1002 = {t["kind"]: t["removed"] for t in receipts["microblog:1002"]["targets"]}
    assert removed_1002["httpcache"] >= 1 and sum(removed_1002.values()) == removed_1002["httpcache"]
    for path in every_file(out):
        assert not mentions(path.read_bytes(), "1002", site), path
    assert all(r["selection"] == "withdrawn" for r in receipts.values())


@deferred_f_from_coro_f
async def test_purge_expired_removes_the_items_whose_grants_ended(
    server: LocalServer, site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    out, before = copy_of(await crawled(server, monkeypatch, tmp_path_factory), tmp_path)
    items = jsonl(before / "items.jsonl")
    ends = sorted({item["consentcrawl"]["expires_at"] for item in items})
    assert ends[0] is not None and len(ends) > 2
    # the provenance names the grants, and expires_at is the earliest end among them
    for item in items:
        prov = item["consentcrawl"]
        assert prov["platform_agreement"]["reference"] == "Demo data access agreement MB-DEMO-1"
        assert prov["authorization"]["evidence"] and prov["authorization"]["record_id"]
        ends_of_grants = [prov["authorization"]["expires_at"], prov["platform_agreement"]["valid_until"]]
        assert prov["expires_at"] == min([e for e in ends_of_grants if e], key=datetime.fromisoformat)
    now = datetime.fromisoformat(ends[1])  # the first two ends have passed
    expired = {i["subject"] for i in items if datetime.fromisoformat(i["consentcrawl"]["expires_at"]) <= now}
    log = tmp_path / "audit.jsonl"
    assert purge("--expired", "--now", now.isoformat(), "--audit-log", str(log), *targets(out)) == 0
    assert {i["subject"] for i in jsonl(out / "items.jsonl")} == {i["subject"] for i in items} - expired
    assert {i["subject"] for i in json.loads((out / "items.json").read_bytes())} == {
        i["subject"] for i in items} - expired
    for subject in expired:
        for path in every_file(out):
            assert not mentions(path.read_bytes(), subject, site), (subject, path)
    assert {r["subject"] for r in receipts_in(log)} == {f"microblog:{s}" for s in expired}


# -- what cannot be purged ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` made unwritable: by its mode, and for root (whom modes do not stop) by the immutable flag."""
    directory.chmod(0o555)
    immutable = False
    probe = directory / ".probe"
    try:
        try:
            probe.touch()
        except OSError:
            pass
        else:
            probe.unlink()
            chattr = shutil.which("chattr")
            immutable = chattr is not None and subprocess.run([chattr, "+i", str(directory)],
                                                              capture_output=True).returncode == 0
            if not immutable:
                pytest.skip("cannot make a directory unwritable here (root, without chattr)")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        directory.chmod(0o755)


@deferred_f_from_coro_f
async def test_a_target_that_cannot_be_written_is_named_and_left_untouched(
    server: LocalServer, site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
) -> None:
    out, before = copy_of(await crawled(server, monkeypatch, tmp_path_factory), tmp_path)
    subject = choose_person(before, site)
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.move(str(out / "items.jsonl"), locked / "items.jsonl")
    log = tmp_path / "audit.jsonl"
    with read_only(locked):
        status = purge("--subject", f"microblog:{subject}", "--audit-log", str(log),
                       str(locked / "items.jsonl"), str(out / "items.csv"), str(tmp_path / "missing.jsonl"))
    assert status == 1
    err = capsys.readouterr().err
    assert f"{locked / 'items.jsonl'}: cannot write a temporary file" in err
    assert f"{tmp_path / 'missing.jsonl'}: no such file or directory" in err
    assert (locked / "items.jsonl").read_bytes() == (before / "items.jsonl").read_bytes()
    assert sorted(os.listdir(locked)) == ["items.jsonl"]
    assert not mentions((out / "items.csv").read_bytes(), subject, site)  # the writable target was purged
    [receipt] = receipts_in(log)
    assert {f["path"] for f in receipt["failed"]} == {str(locked / "items.jsonl"), str(tmp_path / "missing.jsonl")}


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no scrapy.cfg here: no project settings to fall back on
    feed = tmp_path / "items.jsonl"
    feed.write_text("{}\n")
    assert purge("--subject", "1001", str(feed)) == 2
    assert "is not PLATFORM:ID" in capsys.readouterr().err
    assert purge("--subject", "nosuch:1001", str(feed)) == 2
    assert purge("--withdrawn", "--audit-log", str(tmp_path / "a.jsonl"), str(feed)) == 2
    assert "--withdrawn needs the authorization store" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        purge(str(feed))
    assert exc.value.code == 2
    assert feed.read_text() == "{}\n" and not (tmp_path / "a.jsonl").exists()
    # nowhere to put the receipt: nothing is purged
    feed.write_text('{"subject": "1001", "platform": "microblog"}\n')
    assert purge("--subject", "microblog:1001", "--audit-log", str(feed / "audit.jsonl"), str(feed)) == 2
    assert "cannot open the audit log" in capsys.readouterr().err
    assert feed.read_text() == '{"subject": "1001", "platform": "microblog"}\n'


# -- purge on close -----------------------------------------------------------------------------------------------


class WithdrawingSpider(MicroblogSpider):
    """The first person collected withdraws (in the authorization file) right after their item is exported."""

    name = "withdrawing"
    authorizations: Path = Path()
    withdrawn: list[str] = []

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Any:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.item_scraped, signal=signals.item_scraped)
        return spider

    def item_scraped(self, item: Any) -> None:
        if self.withdrawn:
            return
        subject = str(item["subject"])
        type(self).withdrawn.append(subject)
        revoked_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        append_withdrawal(self.authorizations, subject, revoked_at=revoked_at, evidence="withdrawn during the crawl")


@deferred_f_from_coro_f
async def test_a_crawl_purges_its_own_outputs_of_a_withdrawal_it_saw(
    server: LocalServer, site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
) -> None:
    out = tmp_path / "out"
    monkeypatch.setattr(WithdrawingSpider, "authorizations", config_dir / "authorizations.yaml")
    monkeypatch.setattr(WithdrawingSpider, "withdrawn", [])
    settings = consent_settings(tmp_path, **output_settings(out), LOG_LEVEL="INFO",
                                CONSENTCRAWL_AUTHORIZATIONS=str(config_dir / "authorizations.yaml"),
                                CONSENTCRAWL_PURGE_ON_CLOSE=True, CONSENTCRAWL_PURGE_TARGETS=[str(out / "items.db")],
                                CLOSESPIDER_ITEMCOUNT=20)
    result = await run_crawl(WithdrawingSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    [subject] = WithdrawingSpider.withdrawn
    # collected first, withdrawn, and the crawl went on collecting others after it
    assert str(result.items[0]["subject"]) == subject and len(result.items) >= 20
    kept = {str(i["subject"]) for i in result.items} - {subject}
    assert {str(i["subject"]) for i in jsonl(out / "items.jsonl")} == kept
    for path in every_file(out):
        assert not mentions(path.read_bytes(), subject, site), path
    receipts = [r for r in receipts_in(tmp_path / "audit.jsonl") if r["subject"] == f"microblog:{subject}"]
    assert receipts and receipts[0]["selection"] == "withdrawn-during-crawl"
    verified = verify(tmp_path / "audit.jsonl")  # the crawl's own segment, then the purge's, in one chain
    assert verified.problem is None, verified.problem
    kinds = {t["kind"]: t["removed"] for t in receipts[0]["targets"]}
    assert kinds["jsonlines"] == kinds["json"] == kinds["csv"] == kinds["sqlite"] >= 1 and kinds["httpcache"] >= 1
    assert result.stats["consentcrawl/purge/removed"] >= 4
    assert "consentcrawl/purge/failed" not in result.stats


# -- feeds written by hand: the shapes a crawl may not produce -----------------------------------------------------


def test_crafted_feeds_keep_every_other_byte(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    person = {"subject": "1022", "name": "Ada\nLovelace, \"the first\""}
    other = {"subject": "1023", "name": "Bob", "consentcrawl": {"platform": "microblog", "subject": "1023"}}
    # JSON Lines: a record with no platform at all is still the person's; a torn last line is kept and reported
    jl = tmp_path / "a.jsonl"
    jl.write_bytes(b'{"subject": "1023"}\r\n' + json.dumps(person).encode() + b"\n" + b'{"subject": "10')
    # JSON: Scrapy's exporter without indentation writes one line; the array stays valid
    js = tmp_path / "a.json"
    js.write_bytes(json.dumps([person, other, person]).encode())
    # CSV: a quoted line break and quote inside a cell
    cs = tmp_path / "a.csv"
    cs.write_bytes(b'subject,name\r\n1022,"Ada\r\nLovelace, ""the first"""\r\n1023,Bob\r\n')
    log = tmp_path / "audit.jsonl"
    assert purge("--subject", "microblog:1022", "--audit-log", str(log), str(jl), str(js), str(cs)) == 1
    assert f"{jl}: line 3 is not JSON: not checked, kept" in capsys.readouterr().err
    assert jl.read_bytes() == b'{"subject": "1023"}\r\n{"subject": "10'
    assert js.read_bytes() == json.dumps([other]).encode()
    assert cs.read_bytes() == b"subject,name\r\n1023,Bob\r\n"
    [receipt] = receipts_in(log)
    csv_target = next(t for t in receipt["targets"] if t["kind"] == "csv")
    assert csv_target["sha256"] == hashlib.sha256(b'1022,"Ada\r\nLovelace, ""the first"""\r\n').hexdigest()
    assert csv_target["where"] == [2]


def test_a_json_feed_cut_short_loses_the_person_and_keeps_its_torn_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    js = tmp_path / "a.json"
    js.write_bytes(b'[\n{"subject": "1023"},\n{"subject": "1022"},\n{"subject": "10')
    log = tmp_path / "audit.jsonl"
    assert purge("--subject", "microblog:1022", "--audit-log", str(log), str(js)) == 1
    assert "a feed cut short?" in capsys.readouterr().err
    assert js.read_bytes() == b'[\n{"subject": "1023"},\n{"subject": "10'
    not_json = tmp_path / "b.json"
    not_json.write_bytes(b'{"subject": "1022"}')
    assert purge("--subject", "microblog:1022", "--audit-log", str(log), str(not_json)) == 1
    assert "not a JSON array" in capsys.readouterr().err and not_json.read_bytes() == b'{"subject": "1022"}'


def test_the_audit_log_an_output_directory_and_links_are_handled_as_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "audit.jsonl"
    earlier = AuditLog(log, sync=False)  # a crawl's chained log, with a line about the person
    earlier.event("note", {"subject": "1022", "platform": "microblog"}, time=datetime.now(timezone.utc))
    earlier.close()
    outputs = tmp_path / "output"
    outputs.mkdir()
    real = outputs / "items.jsonl"
    real.write_text('{"subject": "1022"}\n{"subject": "1023"}\n')
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    before = log.read_text()
    assert purge("--subject", "microblog:1022", "--audit-log", str(log), str(log), str(outputs), str(link)) == 1
    err = capsys.readouterr().err
    assert f"{log}: this is the audit log the receipts go to" in err
    assert f"{outputs}: a directory that holds no HTTP cache entry" in err
    assert link.is_symlink() and real.read_text() == '{"subject": "1023"}\n'  # the file, not the link, purged
    assert log.read_text().startswith(before)  # evidence kept; the receipt appended after it


def test_sqlite_in_wal_mode_keeps_no_byte_of_the_person_in_the_file_or_its_log(tmp_path: Path) -> None:
    db = tmp_path / "items.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE items (subject TEXT, platform TEXT, name TEXT)")
        conn.execute("CREATE INDEX by_name ON items(name)")
        conn.executemany("INSERT INTO items VALUES (?,?,?)",
                         [(str(1000 + i), "microblog", f"Person Number{i:04d}") for i in range(300)])
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    log = tmp_path / "audit.jsonl"
    assert purge("--subject", "microblog:1022", "--audit-log", str(log), str(db)) == 0
    for path in tmp_path.glob("items.sqlite*"):
        assert b"Number0022" not in path.read_bytes(), path
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 299
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_withdrawn_from_an_sqlite_store(tmp_path: Path, config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path}/consent.db"
    assert main(["authorizations", "import", str(config_dir / "authorizations.yaml"), store,
                 "--platforms", str(PLATFORMS)]) == 0
    feed = tmp_path / "items.jsonl"
    feed.write_text('{"subject": "1001", "platform": "microblog"}\n{"subject": "1002", "platform": "microblog"}\n')
    log = tmp_path / "audit.jsonl"
    assert purge("--withdrawn", "--authorizations", store, "--audit-log", str(log), str(feed)) == 0
    assert feed.read_text() == '{"subject": "1001", "platform": "microblog"}\n'  # 1002 withdrew in the demo data
    assert [r["subject"] for r in receipts_in(log)] == ["microblog:1002"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device whose writes fail: disk full)")
def test_a_log_that_cannot_take_the_receipt_stops_the_purge_before_anything_is_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    feed = tmp_path / "items.jsonl"
    kept = '{"subject": "1001", "platform": "microblog"}\n{"subject": "1003", "platform": "microblog"}\n'
    feed.write_text(kept)
    # the receipt's segment cannot even start (its chain-start line does not fit): nothing may be removed unproven
    assert purge("--subject", "microblog:1001", "--audit-log", "/dev/full", str(feed)) == 2
    assert "/dev/full: cannot start the audit log" in capsys.readouterr().err
    assert feed.read_text() == kept


@deferred_f_from_coro_f
async def test_a_gzip_http_cache_is_read_through_its_compression(
    server: LocalServer, site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    import gzip

    cache = tmp_path / "httpcache"
    settings = consent_settings(tmp_path, LOG_LEVEL="INFO", CLOSESPIDER_ITEMCOUNT=10, HTTPCACHE_ENABLED=True,
                                HTTPCACHE_DIR=str(cache), HTTPCACHE_GZIP=True)
    result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    subject = str(result.items[0]["subject"])

    def showing() -> set[Path]:
        return {meta.parent for meta in cache.rglob("meta")
                if any(mentions(gzip.decompress(f.read_bytes()), subject, site) for f in meta.parent.iterdir())}

    before = showing()
    assert before, "the person's pages are in the cache, compressed"
    log = tmp_path / "receipts.jsonl"
    assert purge("--subject", f"microblog:{subject}", "--audit-log", str(log), str(cache)) == 0
    assert showing() == set() and all(not p.exists() for p in before)
    assert receipts_in(log)[0]["targets"][0]["removed"] == len(before)
