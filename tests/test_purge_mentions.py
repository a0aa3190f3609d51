"""Erasure reaches the items that *mention* a person, not only the items about them.

A real crawl of the lenient people site, with 104 authorized: 104's own page gives 104's item, 101's page gives an
item naming 104 as a friend (its URL in ``friends``, in the bio, alone in ``best_friend``), 102's page an item that
names no one. Every output a purge handles is written: JSON Lines, JSON and CSV feeds, the same compressed by
Scrapy's postprocessing plugins, and an SQLite item database. Then 104 withdraws, and ``consentcrawl purge
--withdrawn`` runs as a user runs it; or the crawl purges its own outputs at its close (104 withdraws after
101's item went out). Judged by the files: no output may still hold 104's URL; 101's item keeps everything else,
102's record keeps its bytes; the receipt and the stats say how many items lost mentions.
"""

from __future__ import annotations

import ast
import asyncio
import bz2
import csv
import gzip
import io
import json
import lzma
import re
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import scrapy
from itemadapter import ItemAdapter
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.audit.log import read_audit_log
from consentcrawl.cli import main
from consentcrawl.mentions import WITHHELD
from consentcrawl_demo.server import LocalServer
from tests.lenient import AUTHORIZED, HOST, LenientPeople, crawl, iso, make_spider, people_settings, record_yaml

BASE = f"http://{HOST}"
PLUGINS = "scrapy.extensions.postprocessing"
#: feed file -> (format, postprocessing plugin or None, how a reader opens it)
FEEDS: dict[str, tuple[str, str | None, Any]] = {
    "items.jsonl": ("jsonlines", None, bytes), "items.json": ("json", None, bytes), "items.csv": ("csv", None, bytes),
    "items.jsonl.gz": ("jsonlines", "GzipPlugin", gzip.decompress),
    "items.json.bz2": ("json", "Bz2Plugin", bz2.decompress),
    "items.csv.xz": ("csv", "LZMAPlugin", lzma.decompress),
}
#: 104 as any output could still hold them: their URL or path in any spelling the items use, their name
NAMES_104 = re.compile(rb"u[/\\]104(?!\d)|SECRET-NAME-104")


class MentionsDb:
    """A project's item database: each item as a row, its ``friends`` as JSON text, its provenance as JSON."""

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def from_crawler(cls, crawler: Any) -> MentionsDb:
        return cls(crawler.settings.get("TEST_ITEMS_DB"))

    def open_spider(self, spider: Any = None) -> None:
        self.conn = sqlite3.connect(self.path)
        self.conn.execute("CREATE TABLE items (url TEXT, name TEXT, friends TEXT, bio TEXT, best_friend TEXT, "
                          "consentcrawl TEXT)")

    def close_spider(self, spider: Any = None) -> None:
        self.conn.commit()
        self.conn.close()

    def process_item(self, item: Any) -> Any:
        a = ItemAdapter(item)
        self.conn.execute("INSERT INTO items VALUES (?,?,?,?,?,?)",
                          (a.get("url"), a.get("name"), json.dumps(a.get("friends")), a.get("bio"),
                           a.get("best_friend"), json.dumps(a.get("consentcrawl"))))
        self.conn.commit()
        return item


class FriendsOf104:
    """104's page, then 101's page (its item names 104 as a friend), then, after ``withdraw`` (if any) once both
    items went out, 102's page (an item that names no one 104)."""

    seen: list[str]
    withdraw: Any = None
    first: tuple[str, ...] = ("104", "101")  #: the pages before the withdrawal

    async def start(self) -> Any:
        for person in self.first:
            yield scrapy.Request(f"{BASE}/u/{person}", callback=self.parse)
        stats = self.crawler.stats  # type: ignore[attr-defined]
        while (stats.get_value("item_scraped_count") or 0) < len(self.first):
            await asyncio.sleep(0.05)
        if self.withdraw is not None:
            self.withdraw()
        yield scrapy.Request(f"{BASE}/u/102", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        person = response.url.rsplit("/", 1)[-1]
        item: dict[str, Any] = {"url": response.url, "name": response.css(".name::text").get()}
        if person == "101":
            item.update(friends=[f"{BASE}/u/102", f"{BASE}/u/104"], bio=f"Friends with {BASE}/u/104. and /u/102",
                        best_friend="/u/104")
        else:
            item.update(friends=[f"{BASE}/u/103"], bio="No one else here", best_friend=None)
        yield item


def _settings(tmp_path: Path, out: Path, **overrides: Any) -> dict[str, Any]:
    feeds = {str(out / name): {"format": format_, **({"postprocessing": [f"{PLUGINS}.{plugin}"]} if plugin else {})}
             for name, (format_, plugin, _) in FEEDS.items()}
    return people_settings(tmp_path, [record_yaml(s) for s in (*AUTHORIZED, "104")], FEEDS=feeds,
                           ITEM_PIPELINES={f"{__name__}.MentionsDb": 500}, TEST_ITEMS_DB=str(out / "items.db"),
                           CONCURRENT_REQUESTS=1, **overrides)


def _withdraw_104(authorizations: Path) -> None:
    with authorizations.open("a", encoding="utf-8") as f:
        f.write(record_yaml("104", revoked_at=iso(datetime.now(timezone.utc)), evidence="withdrawn"))


def _items(name: str, data: bytes) -> list[dict[str, Any]]:
    text = FEEDS[name][2](data).decode("utf-8")
    if FEEDS[name][0] == "jsonlines":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if FEEDS[name][0] == "json":
        return list(json.loads(text))
    return list(csv.DictReader(io.StringIO(text)))


def _rows(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM items ORDER BY rowid")]


def _subject(item: dict[str, Any]) -> str:
    provenance = item["consentcrawl"]  # JSON text in the database, a dict's str() in CSV
    return str((ast.literal_eval(provenance.replace("null", "None")) if isinstance(provenance, str)
                else provenance)["subject"])


def _check_outputs(out: Path, before: dict[str, bytes], db_before: list[dict[str, Any]]) -> None:
    """No output holds 104; 101's item lost only 104's mentions; 102's kept its bytes."""
    for name in FEEDS:
        after = (out / name).read_bytes()
        plain = FEEDS[name][2](after)
        assert not NAMES_104.search(plain), f"{name} still names 104: {plain!r}"
        items = {_subject(i): i for i in _items(name, after)}
        old = {_subject(i): i for i in _items(name, before[name])}
        assert sorted(items) == ["101", "102"], (name, items)
        assert items["102"] == old["102"], name
        changed, was = items["101"], old["101"]
        if FEEDS[name][0] == "csv":  # a list is its values joined by commas, None an empty cell
            assert changed["friends"] == f"{BASE}/u/102" and changed["best_friend"] == "", (name, changed)
        else:
            assert changed["friends"] == [f"{BASE}/u/102"] and changed["best_friend"] is None, (name, changed)
        assert changed["bio"] == f"Friends with {WITHHELD}. and /u/102", (name, changed)
        assert {k: v for k, v in changed.items() if k not in ("friends", "bio", "best_friend")} == {
            k: v for k, v in was.items() if k not in ("friends", "bio", "best_friend")}, name
    plain_before = FEEDS["items.jsonl"][2](before["items.jsonl"]).splitlines(keepends=True)
    plain_after = (out / "items.jsonl").read_bytes().splitlines(keepends=True)
    assert [line for line in plain_after if b"/u/102\"" in line and b'"bio": "No one' in line] == [
        line for line in plain_before if b"/u/102\"" in line and b'"bio": "No one' in line], "102's line, verbatim"
    rows = {_subject(r): r for r in _rows(out / "items.db")}
    old_rows = {_subject(r): r for r in db_before}
    assert sorted(rows) == ["101", "102"] and rows["102"] == old_rows["102"], rows
    assert json.loads(rows["101"]["friends"]) == [f"{BASE}/u/102"] and rows["101"]["best_friend"] is None, rows
    assert rows["101"]["bio"] == f"Friends with {WITHHELD}. and /u/102", rows
    assert rows["101"]["name"] == old_rows["101"]["name"] == "SECRET-NAME-101", rows
    assert not NAMES_104.search((out / "items.db").read_bytes()), "104's bytes are still in the database file"


async def _crawl_friends_of_104(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                app: LenientPeople) -> tuple[Path, dict[str, Any], Any]:
    """The crawl whose outputs the purge tests read: its output folder, its settings and its result."""
    out = tmp_path / "out"
    out.mkdir()
    settings = _settings(tmp_path, out)
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", FriendsOf104), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    return out, settings, result


@deferred_f_from_coro_f
async def test_purge_withdrawn_takes_a_withdrawn_persons_url_out_of_the_items_that_mention_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    app = LenientPeople()
    out, settings, result = await _crawl_friends_of_104(tmp_path, monkeypatch, app)
    assert app.people_served() == ["104", "101", "102"], app.describe()
    before = {name: (out / name).read_bytes() for name in FEEDS}
    db_before = _rows(out / "items.db")
    for name in FEEDS:  # control: 104 was allowed, so 101's item went out naming them
        assert [i["friends"] for i in _items(name, before[name]) if _subject(i) == "101"] in (
            [[f"{BASE}/u/102", f"{BASE}/u/104"]], [f"{BASE}/u/102,{BASE}/u/104"]), name
    assert len(result.items) == 3 and len(db_before) == 3

    _withdraw_104(Path(settings["CONSENTCRAWL_AUTHORIZATIONS"]))
    log = tmp_path / "audit-purge.jsonl"
    code = main(["purge", "--platforms", settings["CONSENTCRAWL_PLATFORMS"], "--withdrawn",
                 "--authorizations", settings["CONSENTCRAWL_AUTHORIZATIONS"], "--audit-log", str(log),
                 *(str(out / name) for name in FEEDS), str(out / "items.db")])
    printed = capsys.readouterr()
    assert code == 0, printed
    _check_outputs(out, before, db_before)
    assert "withheld the mentions of people:104 in 1 kept record(s)" in printed.out, printed.out

    (receipt,) = [e for e in read_audit_log(log) if e.get("event") == "purge-receipt"]
    assert receipt["subject"] == "people:104" and receipt["failed"] == [], receipt
    targets = {Path(t["path"]).name: t for t in receipt["targets"]}
    assert {name: (t["removed"], t["mentions_withheld"]) for name, t in targets.items()} == {
        name: (1, 1) for name in [*FEEDS, "items.db"]}, targets
    assert targets["items.jsonl"]["mentions_where"] == [2] and targets["items.db"]["mentions_where"] == ["items#2"]
    assert receipt["mentions_withheld"] == len(FEEDS) + 1, receipt
    assert not NAMES_104.search(log.read_bytes()), "the receipt names 104 by id, never by URL"


@deferred_f_from_coro_f
async def test_dry_run_counts_the_mentions_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    out, settings, _ = await _crawl_friends_of_104(tmp_path, monkeypatch, LenientPeople())
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    code = main(["purge", "--platforms", settings["CONSENTCRAWL_PLATFORMS"], "--subject", "people:104", "--dry-run",
                 *(str(out / name) for name in FEEDS), str(out / "items.db")])
    printed = capsys.readouterr()
    assert code == 0, printed
    assert printed.out.count("would withhold the mentions of people:104 in 1 kept record(s)") == len(FEEDS) + 1
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


@pytest.mark.parametrize("first", [("104", "101"), ("101",)], ids=["their-page-too", "only-mentioned"])
@deferred_f_from_coro_f
async def test_purge_on_close_takes_the_url_of_a_friend_who_withdrew_out_of_the_items_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: tuple[str, ...],
) -> None:
    """104's own page fetched too, or 104 only mentioned in 101's item (allowed when it passed): either way 104
    withdrew while the crawl ran, and their URL leaves what the crawl wrote."""
    out = tmp_path / "out"
    out.mkdir()
    settings = _settings(tmp_path, out, CONSENTCRAWL_PURGE_ON_CLOSE=True,
                         CONSENTCRAWL_PURGE_TARGETS=[str(out / "items.db")])
    spider = make_spider("ConsentSpider", FriendsOf104)
    spider.first = first  # type: ignore[attr-defined]
    authorizations = Path(settings["CONSENTCRAWL_AUTHORIZATIONS"])
    spider.withdraw = staticmethod(lambda: _withdraw_104(authorizations))  # type: ignore[attr-defined]
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(spider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.people_served() == [*first, "102"], app.describe()
    # what the crawl exported before the purge on close: the items the signals saw (101's naming 104)
    exported = {_subject(i): i for i in result.items}
    assert exported["101"]["friends"] == [f"{BASE}/u/102", f"{BASE}/u/104"], exported
    for name in FEEDS:
        plain = FEEDS[name][2]((out / name).read_bytes())
        assert not NAMES_104.search(plain), f"{name} still names 104: {plain!r}"
        items = {_subject(i): i for i in _items(name, (out / name).read_bytes())}
        assert sorted(items) == ["101", "102"] and items["101"]["bio"] == f"Friends with {WITHHELD}. and /u/102"
    rows = {_subject(r): r for r in _rows(out / "items.db")}
    assert sorted(rows) == ["101", "102"] and json.loads(rows["101"]["friends"]) == [f"{BASE}/u/102"], rows
    assert not NAMES_104.search((out / "items.db").read_bytes())
    assert result.stats.get("consentcrawl/purge/mentions_withheld") == len(FEEDS) + 1, result.stats
    assert "consentcrawl/purge/failed" not in result.stats, result.stats
    (receipt,) = [e for e in read_audit_log(settings["CONSENTCRAWL_AUDIT_LOG"]) if e.get("event") == "purge-receipt"]
    assert receipt["subject"] == "people:104" and receipt["mentions_withheld"] == len(FEEDS) + 1, receipt


AVATAR = f"{BASE}/u/104/avatar.png"


class FriendsWithAvatar(FriendsOf104):
    """As :class:`FriendsOf104`, and 101's item shows 104's avatar (``file_urls``: FilesPipeline stores it)."""

    def parse(self, response: scrapy.http.Response) -> Any:
        for item in super().parse(response):
            if response.url.endswith("/u/101"):
                item["file_urls"] = [AVATAR]
            yield item


@deferred_f_from_coro_f
async def test_the_withdrawn_persons_avatar_a_kept_item_showed_goes_from_the_files_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    store = tmp_path / "files"
    settings = people_settings(tmp_path, [record_yaml(s) for s in (*AUTHORIZED, "104")],
                               FEEDS={str(out / "items.jsonl"): {"format": "jsonlines"}}, FILES_STORE=str(store),
                               ITEM_PIPELINES={"scrapy.pipelines.files.FilesPipeline": 1}, CONCURRENT_REQUESTS=1)
    app = LenientPeople()
    with LocalServer(app) as server:
        await crawl(make_spider("ConsentSpider", FriendsWithAvatar), settings, proxy=server.proxy,
                    monkeypatch=monkeypatch)
    (kept_item,) = [i for i in _items("items.jsonl", (out / "items.jsonl").read_bytes()) if _subject(i) == "101"]
    (stored,) = kept_item["files"]  # control: 104 was allowed, their avatar was fetched and stored
    assert stored["url"] == AVATAR and (store / stored["path"]).is_file(), kept_item

    _withdraw_104(Path(settings["CONSENTCRAWL_AUTHORIZATIONS"]))
    log = tmp_path / "audit-purge.jsonl"
    code = main(["purge", "--platforms", settings["CONSENTCRAWL_PLATFORMS"], "--withdrawn",
                 "--authorizations", settings["CONSENTCRAWL_AUTHORIZATIONS"], "--audit-log", str(log),
                 "--files-store", str(store), str(out / "items.jsonl")])
    printed = capsys.readouterr()
    assert code == 0, printed
    assert not (store / stored["path"]).exists(), "104's avatar is still in the files store"
    assert not NAMES_104.search((out / "items.jsonl").read_bytes())
    (after,) = [i for i in _items("items.jsonl", (out / "items.jsonl").read_bytes()) if _subject(i) == "101"]
    assert after["file_urls"] == [] and after["files"] == [{**stored, "url": None}], after
    (receipt,) = [e for e in read_audit_log(log) if e.get("event") == "purge-receipt"]
    files = next(t for t in receipt["targets"] if t["kind"] == "files")
    assert files["where"] == [stored["path"]] and files["shared"] == [], files


def test_crafted_feeds_keep_every_byte_of_the_records_that_mention_no_one_erased(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Shapes a crawl's settings can give (``FEED_EXPORT_INDENT``, ``FEED_EXPORT_ENCODING = "utf-8"``, CSV's
    ``\\r\\n`` and quoted cells): a record that mentions 104 is written anew and still reads; every other byte
    stays."""
    platforms = tmp_path / "platforms.yaml"
    people_settings(tmp_path)  # writes the people platform's config
    provenance = {"platform": "people", "subject": "101", "url": f"{BASE}/u/101"}
    mentions = {"consentcrawl": provenance, "name": "Zoë", "friends": [f"{HOST}/u/104", "/u/102"],
                "bio": 'says "hi" to ../u/104, and /u/103'}
    other = {"consentcrawl": {**provenance, "subject": "102", "url": f"{BASE}/u/102"}, "name": "Zoë",
             "friends": ["/u/1040", "/u/103"], "bio": "u/10 4"}
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_bytes(b"".join(json.dumps(i, ensure_ascii=False).encode() + b"\n" for i in (other, mentions, other)))
    indented = tmp_path / "items.json"
    indented.write_bytes(("[\n" + ",\n".join(json.dumps(i, indent=2) for i in (mentions, other)) + "\n]").encode())
    table = tmp_path / "items.csv"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["consentcrawl", "name", "friends", "bio"])
    for i in (other, mentions):
        writer.writerow([str(i["consentcrawl"]), i["name"], ",".join(i["friends"]), i["bio"]])
    table.write_bytes(out.getvalue().encode())
    before = {path: path.read_bytes() for path in (jsonl, indented, table)}

    code = main(["purge", "--platforms", str(platforms), "--subject", "people:104", "--audit-log",
                 str(tmp_path / "audit.jsonl"), str(jsonl), str(indented), str(table)])
    assert code == 0, capsys.readouterr()
    lines = jsonl.read_bytes().splitlines(keepends=True)
    old_lines = before[jsonl].splitlines(keepends=True)
    assert [lines[0], lines[2]] == [old_lines[0], old_lines[2]] and "Zoë".encode() in lines[1]
    expected = {**mentions, "friends": ["/u/102"], "bio": f'says "hi" to {WITHHELD}, and /u/103'}
    assert json.loads(lines[1]) == expected
    assert json.loads(indented.read_text()) == [expected, other]
    assert indented.read_text().endswith(json.dumps(other, indent=2) + "\n]"), "the other element, verbatim"
    # the element written anew keeps the feed's indent, as Scrapy's exporter wrote it with FEED_EXPORT_INDENT = 2
    assert indented.read_text() == "[\n" + ",\n".join(json.dumps(i, indent=2) for i in (expected, other)) + "\n]"
    rows = table.read_bytes().split(b"\r\n")
    assert rows[1] == before[table].split(b"\r\n")[1] and len(rows) == 4 and rows[3] == b"", rows
    (changed,) = list(csv.DictReader(io.StringIO(rows[2].decode()), ["consentcrawl", "name", "friends", "bio"]))
    assert changed["friends"] == "/u/102" and changed["bio"] == expected["bio"], changed
    for path in before:
        assert not NAMES_104.search(path.read_bytes()), path


def test_a_kept_record_nested_too_deep_to_read_for_mentions_is_kept_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A record Python's JSON parser reads but that is nested deeper than the mention reader goes (or deeper than
    the parser goes): kept as it was, named on stderr, exit 1; the records around it are purged. No traceback."""
    platforms = tmp_path / "platforms.yaml"
    people_settings(tmp_path)
    provenance = {"platform": "people", "subject": "101", "url": f"{BASE}/u/101"}
    deep = json.dumps({"consentcrawl": provenance, "friends": json.loads("[" * 900 + '"/u/104"' + "]" * 900)})
    deeper = "[" * 100_000 + "]" * 100_000
    lines = [json.dumps({"consentcrawl": provenance, "friends": ["/u/104", "/u/102"]}), deep, deeper,
             json.dumps({"consentcrawl": {**provenance, "subject": "104", "url": f"{BASE}/u/104"}})]
    feed = tmp_path / "items.jsonl"
    feed.write_text("".join(line + "\n" for line in lines))
    code = main(["purge", "--platforms", str(platforms), "--subject", "people:104", "--audit-log",
                 str(tmp_path / "audit.jsonl"), str(feed)])
    printed = capsys.readouterr()
    assert code == 1, printed
    assert "record 2 is nested too deep to be read for mentions: kept as it was" in printed.err, printed.err
    assert "line 3 is not JSON: not checked, kept" in printed.err, printed.err
    assert "Traceback" not in printed.out + printed.err
    after = feed.read_text().splitlines()
    assert json.loads(after[0])["friends"] == ["/u/102"] and after[1:] == [deep, deeper], after[:1]
