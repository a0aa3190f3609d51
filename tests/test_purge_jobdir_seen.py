"""``requests.seen`` loses the fingerprints of a purged person's requests (``consentcrawl/purge/seen.py``).

Scrapy's dupefilter keeps, in ``JOBDIR/requests.seen``, the fingerprint of every request it let into the queue:
whoever holds the directory can fingerprint a guessed URL (``/u/1005``) and test it for membership. After a
purge the file must hold none of the person's fingerprints that can be computed: their queued requests, the
requests the crawl's audit log names for them, their profile URLs. What the tests expect is computed here with
Scrapy's own fingerprinter (or the crawl's ``REQUEST_FINGERPRINTER_CLASS``) from the test server's request log and
the queue bytes, never from the purge's code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scrapy import Request
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.request import fingerprint

from consentcrawl.distributed.fingerprint import CanonicalRequestFingerprinter
from consentcrawl.terms.load import load_platforms
from consentcrawl_demo.server import LocalServer
from tests.conftest import PLATFORMS, run_crawl
from tests.test_purge_jobdir import (
    PERSON,
    QueueingSpider,
    crawl_settings,
    is_persons,
    paused_crawl,
    person_in,
    purge,
    queues,
    receipts_in,
    request_of,
    withdraw,
)

SEEN = "requests.seen"
CANONICAL = "consentcrawl.distributed.fingerprint.CanonicalRequestFingerprinter"


def seen(job: Path) -> list[bytes]:
    """The fingerprints in ``requests.seen``, in file order (each stored as a 2-byte big-endian length and the
    fingerprint, as Scrapy 2.19's RFPDupeFilter writes them)."""
    data = (job / SEEN).read_bytes()
    out, at = [], 0
    while at < len(data):
        size = int.from_bytes(data[at:at + 2], "big")
        out.append(data[at + 2:at + 2 + size])
        at += 2 + size
    assert at == len(data)
    return out


def fingerprinter(name: str | None) -> Any:
    if name == CANONICAL:
        return CanonicalRequestFingerprinter(platforms=load_platforms([str(PLATFORMS)])).fingerprint
    return fingerprint


def profile_guesses() -> list[str]:
    return [f"{scheme}://{host}{path}" for scheme in ("http", "https")
            for host in ("microblog.example", "m.microblog.example")
            for path in (f"/u/{PERSON}", f"/profile/{PERSON}")]


@deferred_f_from_coro_f
async def test_purge_jobdir_removes_the_persons_queued_requests_and_profile_urls_from_requests_seen(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
) -> None:
    job = await paused_crawl(server, monkeypatch, tmp_path, config_dir)
    before = seen(job)
    queued = [request_of(r) for records in queues(job, tmp_path / "scratch").values() for r in records]
    theirs = {fingerprint(Request(q["url"], method=q.get("method", "GET"), body=q.get("body") or b""))
              for q in queued if is_persons_request(q)}
    guesses = {fingerprint(Request(url)) for url in profile_guesses()}
    assert theirs and theirs <= set(before)  # control: the file names the person's queued requests
    others = [fp for fp in before if fp not in theirs | guesses]
    assert others
    withdraw(config_dir)
    log = tmp_path / "audit.jsonl"  # the crawl's own: it names every request the crawl sent

    assert purge("--withdrawn", "--authorizations", str(config_dir / "authorizations.yaml"), "--audit-log",
                 str(log), "--jobdir", str(job)) == 0

    after = seen(job)
    assert not (set(after) & (theirs | guesses))
    assert after == others  # every other fingerprint as it was, in its order
    receipt = next(r for r in receipts_in(log) if r["subject"] == f"microblog:{PERSON}")
    [target] = [t for t in receipt["targets"] if t["kind"] == "requests.seen"]
    assert target["path"] == str(job / SEEN) and target["removed"] == len(set(before) - set(after))
    assert receipt["failed"] == []


def is_persons_request(request: dict[str, Any]) -> bool:
    import pickle

    return is_persons(pickle.dumps(request, protocol=4))


@deferred_f_from_coro_f
@pytest.mark.parametrize("fingerprinter_class", [None, CANONICAL], ids=["scrapy", "canonical"])
async def test_purge_jobdir_removes_the_fingerprints_of_the_persons_fetched_pages_named_in_the_audit_log(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
    fingerprinter_class: str | None,
) -> None:
    extra = {"REQUEST_FINGERPRINTER_CLASS": fingerprinter_class} if fingerprinter_class else {}
    result = await run_crawl(QueueingSpider, crawl_settings(tmp_path, config_dir, **extra), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert result.stats["finish_reason"] == "finished"
    job = tmp_path / "job"
    fp = fingerprinter(fingerprinter_class)
    fetched = [r.target for r in server.requests if not r.target.endswith("/robots.txt")]
    before = seen(job)
    # the requests the dupefilter let through (a redirect's target and side fetches did not pass it)
    theirs = {fp(Request(url)) for url in fetched if person_in(url)} & set(before)
    # the listing page the spider asked for naming the person in meta is theirs too (the crawl decided it as theirs)
    named = {fp(Request("http://microblog.example/people?page=2"))}
    kept = {fp(Request(url)) for url in fetched if not person_in(url)} & set(before) - theirs - named
    assert theirs and kept  # control: the person's pages were fetched, and recorded
    withdraw(config_dir)
    settings_args = ["--settings", "tests.seen_settings"] if fingerprinter_class else []
    # the receipts go to the crawl's own audit log, which names the requests decided for the person
    assert purge("--withdrawn", "--authorizations", str(config_dir / "authorizations.yaml"), "--audit-log",
                 str(tmp_path / "audit.jsonl"), "--jobdir", str(job), *settings_args) == 0

    after = seen(job)
    assert not (set(after) & theirs)
    assert kept <= set(after)


@deferred_f_from_coro_f
async def test_purge_on_close_removes_the_withdrawn_persons_fingerprints_from_requests_seen(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
) -> None:
    job = await paused_crawl(server, monkeypatch, tmp_path, config_dir)
    queued = [request_of(r) for records in queues(job, tmp_path / "scratch").values() for r in records]
    theirs = {fingerprint(Request(q["url"])) for q in queued if is_persons_request(q)}
    assert theirs <= set(seen(job))
    withdraw(config_dir)
    settings = crawl_settings(tmp_path, config_dir, CONSENTCRAWL_PURGE_ON_CLOSE=True, CLOSESPIDER_PAGECOUNT=5)
    result = await run_crawl(QueueingSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert "consentcrawl/purge/failed" not in result.stats
    assert not (set(seen(job)) & theirs)
    assert seen(job)  # the others' fingerprints stay


def small_job(tmp_path: Path, fingerprints: list[bytes]) -> Path:
    """A JOBDIR with one queued request of someone else and ``requests.seen`` holding ``fingerprints``."""
    import pickle

    from queuelib.queue import LifoDiskQueue

    job = tmp_path / "job"
    (job / "requests.queue").mkdir(parents=True)
    (job / "requests.queue" / "active.json").write_text("[0]")
    lifo = LifoDiskQueue(job / "requests.queue" / "0")
    lifo.push(pickle.dumps(Request("http://microblog.example/u/1007").to_dict(), protocol=4))
    lifo.close()
    (job / SEEN).write_bytes(b"".join(len(fp).to_bytes(2, "big") + fp for fp in fingerprints))
    return job


def test_a_requests_seen_cut_short_fails_naming_it_and_stays_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    job = small_job(tmp_path, [fingerprint(Request(f"http://microblog.example/u/{PERSON}"))])
    with (job / SEEN).open("ab") as f:
        f.write(b"\x00\x14half")  # a crash mid-write
    before = (job / SEEN).read_bytes()
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(tmp_path / "a.jsonl"),
                 "--jobdir", str(job)) == 1
    assert f"{job / SEEN}: its last fingerprint is cut short" in capsys.readouterr().err
    assert (job / SEEN).read_bytes() == before


def test_a_fingerprinter_that_cannot_be_built_stops_the_purge_before_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = small_job(tmp_path, [fingerprint(Request(f"http://microblog.example/u/{PERSON}"))])
    before = (job / SEEN).read_bytes()
    settings = tmp_path / "broken_fp_settings.py"
    settings.write_text('REQUEST_FINGERPRINTER_CLASS = "tests.no_such_module.Fingerprinter"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    log = tmp_path / "a.jsonl"
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(log), "--jobdir", str(job),
                 "--settings", "broken_fp_settings") == 2
    assert "REQUEST_FINGERPRINTER_CLASS: cannot build the request fingerprinter" in capsys.readouterr().err
    assert (job / SEEN).read_bytes() == before and not log.exists()


def test_a_dry_run_counts_the_fingerprints_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    other = fingerprint(Request("http://microblog.example/u/1007"))
    job = small_job(tmp_path, [fingerprint(Request(f"https://microblog.example/profile/{PERSON}/")), other])
    before = (job / SEEN).read_bytes()
    assert purge("--subject", f"microblog:{PERSON}", "--dry-run", "--jobdir", str(job)) == 0
    assert f"would remove 1 fingerprint(s) of microblog:{PERSON} (1)" in capsys.readouterr().out
    assert (job / SEEN).read_bytes() == before
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(tmp_path / "a.jsonl"),
                 "--jobdir", str(job)) == 0
    assert seen(job) == [other]


def test_a_host_the_persons_queued_request_names_is_searched_for_their_profile_urls(tmp_path: Path) -> None:
    """Their followers page on the mobile host is queued: the profile URLs there go too, though no log is given."""
    import pickle

    from queuelib.queue import LifoDiskQueue

    guess = fingerprint(Request(f"https://m.microblog.example/profile/{PERSON}"))
    other = fingerprint(Request("http://microblog.example/u/1007"))  # someone else's queued request
    job = small_job(tmp_path, [guess, other])
    lifo = LifoDiskQueue(job / "requests.queue" / "0")
    lifo.push(pickle.dumps(Request(f"http://m.microblog.example/u/{PERSON}/followers").to_dict(), protocol=4))
    lifo.close()
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(tmp_path / "a.jsonl"),
                 "--jobdir", str(job)) == 0
    assert seen(job) == [other]
