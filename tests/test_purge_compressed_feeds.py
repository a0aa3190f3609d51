"""``consentcrawl purge`` on feeds a ``FEEDS`` ``postprocessing`` plugin compressed (Scrapy's ``GzipPlugin``,
``Bz2Plugin``, ``LZMAPlugin``): a real crawl of the demo platform writes them beside a plain JSON Lines feed, one
of its people withdraws, the purge runs; each compressed file is then read as a user would (decompressed) and must
hold every item of the plain feed but the person's, still compressed as it was. Read as bytes their records were
not JSON: the person's items stayed, reported as not checked, on every run.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.audit.log import read_audit_log
from consentcrawl.cli import main
from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer
from spiders.microblog import MicroblogSpider
from tests.conftest import PLATFORMS, append_withdrawal, consent_settings, jsonl, run_crawl

PLUGINS = "scrapy.extensions.postprocessing"
#: feed name -> (format, plugin, options, how a reader opens it)
FEEDS: dict[str, tuple[str, str, dict[str, Any], Any]] = {
    "items.jsonl.gz": ("jsonlines", "GzipPlugin", {"gzip_mtime": 1700000000, "gzip_filename": "people.jsonl"},
                       gzip.decompress),
    "items.json.bz2": ("json", "Bz2Plugin", {"bz2_compresslevel": 5}, bz2.decompress),
    "items.csv.xz": ("csv", "LZMAPlugin", {"lzma_check": lzma.CHECK_SHA256}, lzma.decompress),
    "gzipped.jsonl": ("jsonlines", "GzipPlugin", {}, gzip.decompress),  # compressed, named as a plain feed
}


def items_in(name: str, data: bytes) -> list[dict[str, Any]]:
    text = FEEDS[name][3](data).decode("utf-8")
    if FEEDS[name][0] == "jsonlines":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if FEEDS[name][0] == "json":
        return list(json.loads(text))
    return list(csv.DictReader(io.StringIO(text)))


@deferred_f_from_coro_f
async def test_a_withdrawn_persons_items_go_from_compressed_feeds_which_stay_compressed(
    server: LocalServer, site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    feeds: dict[str, Any] = {str(out / "items.jsonl"): {"format": "jsonlines"}}
    for name, (format_, plugin, options, _) in FEEDS.items():
        feeds[str(out / name)] = {"format": format_, "postprocessing": [f"{PLUGINS}.{plugin}"], **options}
    settings = consent_settings(tmp_path, FEEDS=feeds, CLOSESPIDER_ITEMCOUNT=6)
    await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    plain = jsonl(out / "items.jsonl")
    assert len(plain) >= 6
    before = {name: (out / name).read_bytes() for name in FEEDS}
    for name, data in before.items():  # the crawl wrote what the plugin writes, and the same items as plain
        assert [i["subject"] for i in items_in(name, data)] == [i["subject"] for i in plain], name
    subject = str(plain[1]["subject"])
    authorizations = config_dir / "authorizations.yaml"
    append_withdrawal(authorizations, subject)
    log = tmp_path / "audit-purge.jsonl"
    code = main(["purge", "--platforms", str(PLATFORMS), "--withdrawn", "--authorizations", str(authorizations),
                 "--audit-log", str(log), str(out / "items.jsonl"), *(str(out / name) for name in FEEDS)])
    printed = capsys.readouterr()
    assert code == 0, printed
    others = [i["subject"] for i in plain if str(i["subject"]) != subject]
    for name, (_, _, _, reader) in FEEDS.items():
        after = (out / name).read_bytes()
        assert [str(i["subject"]) for i in items_in(name, after)] == [str(s) for s in others], name
        assert str(site.profile(subject)["name"]).encode() not in reader(after), name
        assert after[:3] == before[name][:3], f"{name} is no longer compressed as it was"
    gz = (out / "items.jsonl.gz").read_bytes()  # the header as GzipPlugin wrote it: its time and file name
    assert gz[4:8] == (1700000000).to_bytes(4, "little") and b"people.jsonl\x00" in gz[:40]
    assert (out / "items.json.bz2").read_bytes()[:4] == b"BZh5"
    assert (out / "items.csv.xz").read_bytes()[7] == lzma.CHECK_SHA256
    receipt = next(e for e in read_audit_log(log) if e.get("event") == "purge-receipt"
                   and e.get("subject") == f"microblog:{subject}")
    kinds = {Path(t["path"]).name: (t["kind"], t["removed"]) for t in receipt["targets"]}
    # as many as the crawl exported of that person (a profile can yield more than one item before the crawl stops)
    mine = len(plain) - len(others)
    assert kinds["items.jsonl.gz"] == ("jsonlines+gzip", mine) and kinds["items.json.bz2"] == ("json+bz2", mine)
    assert kinds["items.csv.xz"] == ("csv+xz", mine) and kinds["gzipped.jsonl"] == ("jsonlines+gzip", mine)
    assert mine >= 1
    assert receipt["failed"] == [], receipt["failed"]


def test_a_compressed_feed_cut_short_is_not_checked_and_fails_the_purge(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feed = tmp_path / "items.jsonl.gz"
    whole = gzip.compress(b'{"subject": "1001", "platform": "microblog"}\n' * 50)
    feed.write_bytes(whole[:-12])
    code = main(["purge", "--platforms", str(PLATFORMS), "--subject", "microblog:1001", "--audit-log",
                 str(tmp_path / "audit.jsonl"), str(feed)])
    printed = capsys.readouterr()
    assert code == 1 and "does not decompress whole" in printed.out + printed.err, printed
    assert feed.read_bytes() == whole[:-12]


@deferred_f_from_coro_f
async def test_a_crawl_purges_its_own_gzip_feed_of_a_withdrawal_it_saw(
    server: LocalServer, site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
) -> None:
    """``CONSENTCRAWL_PURGE_ON_CLOSE``: the feed the crawl wrote through ``GzipPlugin`` is purged at its close, as
    its plain feeds are (the same purge, from Scrapy's ``feed_slot_closed``)."""
    from tests.test_purge import WithdrawingSpider

    out = tmp_path / "out"
    monkeypatch.setattr(WithdrawingSpider, "authorizations", config_dir / "authorizations.yaml")
    monkeypatch.setattr(WithdrawingSpider, "withdrawn", [])
    feed = out / "items.jsonl.gz"
    settings = consent_settings(
        tmp_path, FEEDS={str(feed): {"format": "jsonlines", "postprocessing": [f"{PLUGINS}.GzipPlugin"]}},
        CONSENTCRAWL_AUTHORIZATIONS=str(config_dir / "authorizations.yaml"), CONSENTCRAWL_PURGE_ON_CLOSE=True,
        CLOSESPIDER_ITEMCOUNT=20)
    result = await run_crawl(WithdrawingSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    [subject] = WithdrawingSpider.withdrawn
    assert str(result.items[0]["subject"]) == subject
    kept = [str(i["subject"]) for i in items_in("items.jsonl.gz", feed.read_bytes())]
    assert kept == [str(i["subject"]) for i in result.items if str(i["subject"]) != subject]
    assert str(site.profile(subject)["name"]).encode() not in gzip.decompress(feed.read_bytes())
    exported = [i for i in result.items if str(i["subject"]) == subject]  # one, or more that were on their way
    assert result.stats["consentcrawl/purge/removed"] == len(exported), (exported, result.stats)
    assert "consentcrawl/purge/failed" not in result.stats, result.stats
