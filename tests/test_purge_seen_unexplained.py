"""``requests.seen`` fails closed (``consentcrawl/purge/seen.py``): a fingerprint nothing explains may be a purged
person's, so the whole file goes (or, with ``--keep-seen`` / ``CONSENTCRAWL_PURGE_KEEP_SEEN``, the others stay).

A real crawl with a ``JOBDIR`` sends a POST whose form body names the person: the audit log holds its URL, not its
body, so no purge can recompute its fingerprint. What is expected is computed here with Scrapy's fingerprinter from
the requests the spider made; the verdict is the file on disk.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from scrapy import FormRequest, Request
from scrapy.http import Response
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.request import fingerprint
from scrapy.utils.test import get_crawler

from consentcrawl_demo.server import LocalServer
from tests.conftest import crawl_within_limit, run_crawl
from tests.test_purge_jobdir import PERSON, QueueingSpider, crawl_settings, person_in, purge, receipts_in, withdraw
from tests.test_purge_jobdir_seen import SEEN, seen

SEARCH = "http://microblog.example/people"


def search() -> FormRequest:
    """A POST whose body names the person (a search form): its URL names no one."""
    return FormRequest(SEARCH, formdata={"id": PERSON}, callback=None, dont_filter=False)


class PostingSpider(QueueingSpider):
    name = "posting"

    def parse(self, response: Response) -> Iterator[Request]:
        yield from super().parse(response)
        yield search().replace(callback=self.parse_profile)

    def parse_profile(self, response: Response) -> Iterator[Any]:
        yield from super().parse_profile(response)


async def finished_crawl(server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                         config_dir: Path, **extra: Any) -> tuple[Path, list[bytes]]:
    result = await run_crawl(PostingSpider, crawl_settings(tmp_path, config_dir, **extra), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert result.stats["finish_reason"] == "finished"
    assert [r for r in server.requests if r.method == "POST"]  # control: the POST was sent
    job = tmp_path / "job"
    before = seen(job)
    assert fingerprint(search()) in before  # control: the dupefilter recorded it
    return job, before


@deferred_f_from_coro_f
async def test_a_post_no_log_line_explains_drops_the_whole_requests_seen_and_keep_seen_keeps_the_others(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job, before = await finished_crawl(server, monkeypatch, tmp_path, config_dir)
    theirs = {fingerprint(Request(r.url)) for r in server.requests if person_in(r.target)} & set(before)
    assert theirs
    kept_copy = tmp_path / "copy"
    shutil.copytree(job, kept_copy)
    withdraw(config_dir)
    log = tmp_path / "audit.jsonl"  # the crawl's own, naming every request it sent (by URL)
    args = ["--withdrawn", "--authorizations", str(config_dir / "authorizations.yaml"), "--audit-log", str(log)]
    capsys.readouterr()

    assert purge(*args, "--jobdir", str(job)) == 0

    assert (job / SEEN).read_bytes() == b""  # the whole file: the POST may be the person's
    err = capsys.readouterr().err
    assert "1 fingerprint(s) that no audit line or queued request explains" in err
    assert "the whole file was dropped" in err and "--keep-seen" in err
    post = str(before.index(fingerprint(search())) + 1)
    receipt = next(r for r in receipts_in(log) if r["subject"] == f"microblog:{PERSON}")
    [target] = [t for t in receipt["targets"] if t["kind"] == "requests.seen"]
    assert target["unexplained"] == [post]
    assert target["removed"] >= len(theirs)  # theirs, and the listing page the spider tied to them in meta
    dropped = sum(int(p.partition("-")[2] or p) - int(p.partition("-")[0]) + 1 for p in target["dropped"])
    assert dropped + target["removed"] == len(before)

    # the escape: the others stay, the POST among them; the person's computable fingerprints go all the same
    assert purge(*args, "--jobdir", str(kept_copy), "--keep-seen") == 0
    assert "they were kept (--keep-seen)" in capsys.readouterr().err
    after = seen(kept_copy)
    assert fingerprint(search()) in after and not set(after) & theirs
    assert after == [fp for fp in before if fp in set(after)] and len(after) == dropped  # as they were, in order


@deferred_f_from_coro_f
async def test_purge_on_close_drops_a_requests_seen_it_cannot_explain(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A crawl paused with the POST queued; the person withdraws; the resumed crawl denies the POST at send time
    and purges on close: the POST's fingerprint, recorded by the first run, is explained by nothing."""
    paused = await run_crawl(PostingSpider, crawl_settings(tmp_path, config_dir, CLOSESPIDER_PAGECOUNT=1),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert paused.stats["finish_reason"] == "closespider_pagecount"
    job = tmp_path / "job"
    assert fingerprint(search()) in seen(job)  # control
    assert not [r for r in server.requests if r.method == "POST"]  # queued, not sent
    withdraw(config_dir)
    settings = crawl_settings(tmp_path, config_dir, CONSENTCRAWL_PURGE_ON_CLOSE=True)
    result = await run_crawl(PostingSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert "consentcrawl/purge/failed" not in result.stats
    assert (job / SEEN).read_bytes() == b""
    assert "that no audit line or queued request explains" in caplog.text
    assert "CONSENTCRAWL_PURGE_KEEP_SEEN keeps the others" in caplog.text
    receipt = next(r for r in receipts_in(tmp_path / "audit.jsonl") if r["subject"] == f"microblog:{PERSON}")
    [target] = [t for t in receipt["targets"] if t["kind"] == "requests.seen"]
    assert target["unexplained"] and target["dropped"]


@deferred_f_from_coro_f
async def test_purge_on_close_reads_only_the_lines_its_crawl_wrote(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A new job's ``requests.seen`` holds only what this crawl's lines explain: the purge on close reads the log
    from this crawl's own ``chain-start``. The log's earlier region (5,000 lines of other crawls) has a damaged line
    that a read of the whole log reports as a failure; it is not read, and every fingerprint is still explained."""
    from consentcrawl.audit.log import AuditLog

    log = tmp_path / "audit.jsonl"
    earlier = AuditLog(log, sync=False, header={"writer": "an earlier crawl"})
    for n in range(5000):
        earlier.event("note", {"n": n}, time=datetime.now(timezone.utc), durable=False)
    earlier.close()
    lines = log.read_bytes().split(b"\n")
    lines[2500] = b"x" * len(lines[2500])  # damaged in the middle: the chain's start and end still read
    log.write_bytes(b"\n".join(lines))
    withdraw(config_dir)  # before the crawl: their links are denied, and they are purged on close
    settings = crawl_settings(tmp_path, config_dir, CONSENTCRAWL_PURGE_ON_CLOSE=True, CLOSESPIDER_PAGECOUNT=2)
    monkeypatch.setenv("http_proxy", server.proxy)
    crawler = get_crawler(QueueingSpider, settings)  # run_crawl would read the whole log itself
    await crawl_within_limit(crawler)
    stats = crawler.stats.get_stats() if crawler.stats is not None else {}
    assert stats["finish_reason"] == "closespider_pagecount"
    assert stats["consentcrawl/purge/people"] >= 1
    job = tmp_path / "job"
    assert "not JSON" not in caplog.text
    assert "consentcrawl/purge/failed" not in stats, caplog.text
    assert seen(job)  # every fingerprint explained by this crawl's lines: nothing dropped
    import json

    this_crawl = [json.loads(line) for line in log.read_bytes().split(b"\n")[2501:] if line]
    receipt = next(r for r in this_crawl if r.get("event") == "purge-receipt" and r["subject"] == f"microblog:{PERSON}")
    [target] = [t for t in receipt["targets"] if t["kind"] == "requests.seen"]
    assert target["unexplained"] == [] and target["dropped"] == []


class RefererFingerprinter:
    """A project's fingerprinter that tells requests apart by their ``Referer`` too (Scrapy's
    ``include_headers``): the audit log holds no header, so the purge cannot recompute what it gave."""

    def fingerprint(self, request: Request) -> bytes:
        return fingerprint(request, include_headers=["Referer"])


@deferred_f_from_coro_f
async def test_a_fingerprinter_reading_headers_drops_the_whole_requests_seen(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"{__name__}.RefererFingerprinter"
    result = await run_crawl(QueueingSpider, crawl_settings(tmp_path, config_dir, REQUEST_FINGERPRINTER_CLASS=name),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert result.stats["finish_reason"] == "finished"
    job = tmp_path / "job"
    before = seen(job)
    fetched = [r for r in server.requests if person_in(r.target)]
    assert fetched and before  # control: the person's pages were fetched, and the file holds fingerprints
    (tmp_path / "referer_settings.py").write_text(f"REQUEST_FINGERPRINTER_CLASS = {name!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    withdraw(config_dir)
    capsys.readouterr()
    assert purge("--withdrawn", "--authorizations", str(config_dir / "authorizations.yaml"), "--audit-log",
                 str(tmp_path / "audit.jsonl"), "--jobdir", str(job), "--settings", "referer_settings") == 0
    assert (job / SEEN).read_bytes() == b""
    assert "the whole file was dropped" in capsys.readouterr().err


@deferred_f_from_coro_f
async def test_a_log_the_purge_is_not_given_leaves_requests_seen_unexplained_and_read_log_explains_it(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The receipts go to a log of their own: the crawl's log, which names the requests it sent, is not read, so
    the sent listing page's fingerprint is explained by nothing (the whole file goes). Given with ``--read-log``
    (as another worker's or a rotated log would be), it explains them: only the person's fingerprints go."""
    from tests.test_purge_jobdir import paused_crawl

    job = await paused_crawl(server, monkeypatch, tmp_path, config_dir)
    before = seen(job)
    second = tmp_path / "second-job"
    shutil.copytree(job, second)
    withdraw(config_dir)
    args = ["--withdrawn", "--authorizations", str(config_dir / "authorizations.yaml"), "--audit-log",
            str(tmp_path / "receipts.jsonl")]
    capsys.readouterr()
    assert purge(*args, "--jobdir", str(job)) == 0
    assert (job / SEEN).read_bytes() == b"" and "the whole file was dropped" in capsys.readouterr().err

    assert purge(*args, "--jobdir", str(second), "--read-log", str(tmp_path / "audit.jsonl")) == 0
    after = seen(second)
    assert "explains" not in capsys.readouterr().err
    assert after and len(after) < len(before) and after == [fp for fp in before if fp in set(after)]
    assert fingerprint(Request("http://microblog.example/people?page=1")) in after  # the sent page, explained
    assert purge(*args, "--jobdir", str(second), "--read-log", str(tmp_path / "no-such.jsonl")) == 2
    assert "--read-log: " in capsys.readouterr().err
