"""Attacker's review (review29) of the purge's mention withholding (erase17) and its shared-queue target (hunt17).

Each test failed on 3fc0d85 and passes since its fix: real files purged by ``consentcrawl purge`` as a user runs it.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import redis
import scrapy

from consentcrawl.cli import main
from consentcrawl.distributed import serializer
from consentcrawl.distributed.heldqueue import _PUT_BACK
from tests.lenient import HOST, people_settings
from tests.redis_server import RedisServer
from tests.test_purge_refusals import receipts_for

BASE = f"http://{HOST}"
#: 104 as an output could still hold them
NAMES_104 = re.compile(r"u/104(?!\d)|SECRET-NAME-104")


def _purge(tmp_path: Path, *args: str) -> int:
    return main(["purge", "--platforms", str(tmp_path / "platforms.yaml"), "--audit-log",
                 str(tmp_path / "audit.jsonl"), "--subject", "people:104", *args])


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_record_with_a_key_twice_is_reported_not_kept_as_done(
        suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A JSON object with a key twice is read by Python as its last value: ``{"friends": [104's URL],
    "friends": []}`` read as naming no one, ``{"subject": "104", "subject": "101"}`` as 101's. Another reader (jq,
    a pipeline, a database's JSON functions) reads the first. The purge kept both records, 104's URL and name in
    them, and said done (exit 0). A record with a key twice is now kept and reported (exit 1)."""
    people_settings(tmp_path)
    records = [f'{{"subject": "101", "friends": ["{BASE}/u/104"], "friends": []}}',
               '{"subject": "104", "subject": "101", "name": "SECRET-NAME-104"}',
               '{"subject": "102", "friends": []}']
    feed = tmp_path / f"items{suffix}"
    feed.write_text("\n".join(records) + "\n" if suffix == ".jsonl" else "[\n" + ",\n".join(records) + "\n]\n")
    code = _purge(tmp_path, str(feed))
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.count("has a key twice") == 2 and "cannot tell whose it is" in err, err
    assert NAMES_104.search(err) is None, err  # the message names no key or value


def test_a_table_of_no_item_loses_the_persons_url_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A pipeline that stores an item's links in a table of their own (``links(item, url)``) beside its ``items``
    table: the purge read only the tables with a subject or provenance column, so 104's URL stayed in ``links``,
    in the file, and the purge said done. A table of no item now loses the selected people's URLs as an item's
    columns do; one that cannot be changed (a full-text index's storage) and names them is reported."""
    people_settings(tmp_path)
    db = tmp_path / "items.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (subject TEXT, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [("101", "SECRET-NAME-101"), ("104", "SECRET-NAME-104")])
        conn.execute("CREATE TABLE links (item INTEGER, url TEXT, note TEXT)")
        conn.executemany("INSERT INTO links VALUES (?, ?, ?)", [
            (1, f"{BASE}/u/104", "friend"), (1, f"{BASE}/u/102", f"met via {BASE}/u/104 once"), (2, "/u/101", "x")])
    conn.close()
    before = db.read_bytes()
    assert _purge(tmp_path, "--dry-run", str(db)) == 0
    assert "links#1" in capsys.readouterr().out and db.read_bytes() == before  # a dry run touches nothing
    assert _purge(tmp_path, str(db)) == 0, capsys.readouterr()
    with sqlite3.connect(db) as conn:
        links = conn.execute("SELECT item, url, note FROM links ORDER BY rowid").fetchall()
    conn.close()
    assert links == [(1, None, "friend"), (1, f"{BASE}/u/102", "met via [consentcrawl: withheld] once"),
                     (2, "/u/101", "x")], links
    assert NAMES_104.search(db.read_bytes().decode("latin-1")) is None
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "people:104")
    assert receipt["mentions_withheld"] == 2 and receipt["targets"][0]["mentions_where"] == ["links#1", "links#2"]

    with sqlite3.connect(db) as conn:  # a full-text index holds a copy of the text in its own storage
        conn.execute("CREATE VIRTUAL TABLE notes USING fts5(body)")
        conn.execute("INSERT INTO notes VALUES (?)", (f"see {BASE}/u/104",))
    conn.close()
    assert _purge(tmp_path, str(db)) == 1
    err = capsys.readouterr().err
    assert "table 'notes_content': 1 row(s) name a selected person" in err, err


def test_a_shared_queue_password_in_the_query_is_not_shown(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """redis-py reads a password from the URL's query (``redis://host/0?password=...``): the purge's messages, the
    audit log's header and the receipt showed it, as they never show one in the URL's user part. A Redis URL
    redis-py cannot use (a port that is no number, a parameter a plain connection does not take) was a traceback;
    it is a usage error (exit 2)."""
    people_settings(tmp_path)
    queue = "rediss://127.0.0.1:1/0?db=0&password=s3cret&ssl_password=s3cret#spider:requests"
    assert _purge(tmp_path, "--shared-queue", queue) == 1
    err = capsys.readouterr().err
    assert "rediss://127.0.0.1:1/0?db=0#spider:requests: Redis did not answer" in err, err
    assert "s3cret" not in err and "s3cret" not in (tmp_path / "audit.jsonl").read_text()
    assert _purge(tmp_path, "--shared-queue", "redis://127.0.0.1:xx/0?password=s3cret#spider:requests") == 2
    err = capsys.readouterr().err
    assert "--shared-queue" in err and "not a Redis URL" in err and "s3cret" not in err, err
    # a parameter redis-py has no use for on a plain connection was a TypeError raised out of the purge
    assert _purge(tmp_path, "--shared-queue", "redis://127.0.0.1:1/0?ssl_password=s3cret#spider:requests") == 2
    err = capsys.readouterr().err
    assert "not a Redis URL redis-py can use (TypeError)" in err and "s3cret" not in err, err
    assert "Traceback" not in err


def test_a_csv_cell_holding_a_url_with_a_comma_loses_the_mention(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Scrapy's CSV exporter joins a list's values with commas, and the purge read a cell as its comma-separated
    pieces: a mention whose URL holds a comma itself (``profile.php?fields=name,bio&id=104``, which the guard and
    the JSON Lines purge read whole as 104's page) was split into pieces that name no one, and stayed in the CSV
    feed while the same item's JSON Lines record lost it. A run of pieces is now read together too."""
    people_settings(tmp_path)
    url = f"{BASE}/profile.php?fields=name,bio&id=104"
    feed, control = tmp_path / "items.csv", tmp_path / "items.jsonl"
    feed.write_text(f'subject,friends,bio\r\n101,"{url},{BASE}/u/102","see /profile.php?a=b,c&id=104 now"\r\n'
                    '102,"a,b",plain\r\n')
    control.write_text(f'{{"subject": "101", "friends": ["{url}", "{BASE}/u/102"]}}\n')
    assert _purge(tmp_path, str(feed), str(control)) == 0, capsys.readouterr()
    assert control.read_text() == f'{{"subject": "101", "friends": ["{BASE}/u/102"]}}\n'  # the guard's reading
    assert feed.read_bytes().decode() == (
        f'subject,friends,bio\r\n101,{BASE}/u/102,see [consentcrawl: withheld] now\r\n102,"a,b",plain\r\n')


def test_purge_shared_queue_finds_an_entry_a_worker_puts_back_while_it_reads(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Workers move an entry between the queue and their in-flight hashes atomically (a pop; a put-back when a
    worker stops early; a dead worker's entries taken back). The purge read the queue, then the in-flight hashes:
    104's entry put back by a stopping worker in between was in neither read, stayed in the queue, and the purge
    said done. One put back after the read failed the purge ("taken by a worker"), though it was still there.
    Both moves are made here with the worker's own script, at those two moments: the purge now reads the three
    places in one step, and reads again where an entry of theirs moved, so both go."""
    people_settings(tmp_path)
    key = "spider:requests"
    entry = scrapy.Request(f"{BASE}/u/103").to_dict()
    keep = serializer.dumps(entry)
    first, second = (serializer.dumps({**entry, "url": f"{BASE}/u/104", "meta": {"n": n}}) for n in (1, 2))
    client = redis.Redis.from_url(redis_server.url)
    put_back = client.register_script(_PUT_BACK)
    inflight = f"{key}:inflight:w1"
    try:
        client.zadd(key, {keep: 0})
        client.hset(inflight, mapping={"h:0:a:1": first, "h:0:b:2": second})
        scan, loads = redis.Redis.scan_iter, serializer.loads

        def scan_after_put_back(self: Any, *args: Any, **kwargs: Any) -> Any:  # between the reads
            put_back(keys=[inflight, key], args=["h:0:a:1"])
            return scan(self, *args, **kwargs)

        def loads_after_put_back(raw: bytes) -> Any:  # after the reads, before the removal
            put_back(keys=[inflight, key], args=["h:0:b:2"])
            return loads(raw)

        monkeypatch.setattr(redis.Redis, "scan_iter", scan_after_put_back)
        monkeypatch.setattr(serializer, "loads", loads_after_put_back)
        code = _purge(tmp_path, "--shared-queue", f"{redis_server.url}#{key}")
        assert code == 0, capsys.readouterr()
        assert client.zrange(key, 0, -1) == [keep] and client.hgetall(inflight) == {}
        [receipt] = receipts_for(tmp_path / "audit.jsonl", "people:104")
        assert [t["removed"] for t in receipt["targets"]] == [2] and not receipt["failed"], receipt
    finally:
        client.close()
