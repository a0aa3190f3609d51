"""``consentcrawl purge --jobdir``: a paused crawl's queued requests of a person who withdrew are erased from disk.

A real crawl of the demo platform with ``JOBDIR`` is stopped mid-crawl (``CLOSESPIDER_PAGECOUNT``) with the
person's requests waiting in Scrapy's disk queues; the person then withdraws. What the tests expect is computed
independently of the purge's code: the queues are read here with queuelib and ``pickle``/``marshal`` (test code
may trust the files it made), a request is the person's when its URL, meta or headers spell their id, and the
resumed crawl is judged by the test server's own request log.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import marshal
import os
import pickle
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from queuelib.queue import FifoDiskQueue, FifoSQLiteQueue, LifoDiskQueue
from scrapy import Request
from scrapy.http import Response
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl import META_SUBJECT, ConsentSpider
from consentcrawl.audit.chain import verify
from consentcrawl.audit.log import read_audit_log
from consentcrawl.cli import main
from consentcrawl_demo.server import LocalServer
from tests.conftest import PLATFORMS, append_withdrawal, consent_settings, run_crawl

PERSON = "1005"  #: authorized for research, listed on the first page of people
QUEUE = "requests.queue"
#: the person's id where it stands for them, in every spelling the crawl writes: a profile path, %-escaped (the
#: demo's "escaped" link style), or in ``microblog:ID``
PERSON_BYTES = re.compile(rb"(?:/u/|/profile/|microblog:)" + PERSON.encode() + rb"(?![0-9])|"
                          + re.escape("".join(f"%{b:02X}" for b in PERSON.encode()).encode()))


class QueueingSpider(ConsentSpider):
    """The first page of people, then every profile linked there; more requests for the person: a start request
    for their mobile profile, their followers page first, their profile in its legacy spelling and a listing page
    naming them in meta last."""

    name = "queueing"
    purpose = "research"
    allowed_domains = ["microblog.example"]

    async def start(self) -> AsyncIterator[Request]:
        yield Request("http://microblog.example/people?page=1", callback=self.parse)
        # a start request waits in its own queue (a FIFO directory by default) behind the profiles found first
        yield Request(f"http://m.microblog.example/u/{PERSON}", callback=self.parse_profile)

    def parse(self, response: Response) -> Iterator[Request]:
        for href in response.css("li.person a.profile-link::attr(href)").getall():
            yield response.follow(href, callback=self.parse_profile)
        yield Request(f"http://microblog.example/u/{PERSON}/followers", callback=self.parse_profile, priority=10)
        yield Request(f"http://microblog.example/profile/{PERSON}", callback=self.parse_profile, priority=-10)
        yield Request("http://microblog.example/people?page=2", callback=self.parse_profile, priority=-10,
                      meta={META_SUBJECT: f"microblog:{PERSON}"})

    def parse_profile(self, response: Response) -> Iterator[Any]:
        card = response.css("[data-subject]")
        if card:
            yield {"subject": card.attrib["data-subject"], "url": response.url}


DEFAULT = ("scrapy.squeues.PickleLifoDiskQueue", "scrapy.pqueues.DownloaderAwarePriorityQueue")
QUEUE_CLASSES = [
    DEFAULT,
    ("scrapy.squeues.PickleFifoDiskQueue", "scrapy.pqueues.ScrapyPriorityQueue"),
    ("scrapy.squeues.PickleFifoSQLiteQueue", "scrapy.pqueues.DownloaderAwarePriorityQueue"),
    ("scrapy.squeues.MarshalLifoDiskQueue", "scrapy.pqueues.ScrapyPriorityQueue"),
]


def crawl_settings(tmp_path: Path, config_dir: Path, queues: tuple[str, str] = DEFAULT,
                   **overrides: Any) -> dict[str, Any]:
    disk, priority = queues
    start = "scrapy.squeues.MarshalFifoDiskQueue" if "Marshal" in disk else "scrapy.squeues.PickleFifoDiskQueue"
    return consent_settings(tmp_path, JOBDIR=str(tmp_path / "job"), CONCURRENT_REQUESTS=1,
                            CONSENTCRAWL_AUTHORIZATIONS=str(config_dir / "authorizations.yaml"),
                            SCHEDULER_DISK_QUEUE=disk, SCHEDULER_START_DISK_QUEUE=start,
                            SCHEDULER_PRIORITY_QUEUE=priority, LOG_LEVEL="INFO", **overrides)


async def paused_crawl(server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
                       queues: tuple[str, str] = DEFAULT) -> Path:
    """A crawl stopped after the first page of people, with requests of the person and of others queued."""
    # the first page: consentcrawl's own robots.txt and signal-file requests are not pages (tests/test_pagecount.py)
    settings = crawl_settings(tmp_path, config_dir, queues, CLOSESPIDER_PAGECOUNT=1)
    result = await run_crawl(QueueingSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert result.stats["finish_reason"] == "closespider_pagecount"
    assert not [r for r in server.requests if person_in(r.target)]  # nothing of the person fetched yet
    return tmp_path / "job"


def withdraw(config_dir: Path) -> None:
    revoked_at = (datetime.now(timezone.utc) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    append_withdrawal(config_dir / "authorizations.yaml", PERSON, revoked_at=revoked_at)


def person_in(target: str) -> bool:
    return bool(re.search(rf"/(?:u|profile)/{PERSON}(?![0-9])", unquote(target)))


# -- the queues, read here with queuelib -------------------------------------------------------------------------


def queue_files(job: Path) -> list[Path]:
    """Each queue under requests.queue: a file, or a FifoDiskQueue's directory (with its info.json)."""
    found = []
    for path in sorted((job / QUEUE).rglob("*")):
        if path.is_dir() and (path / "info.json").exists():
            found.append(path)
        elif path.is_file() and path.name != "active.json" and not (path.parent / "info.json").exists():
            found.append(path)
    return found


def read_queue(path: Path, scratch: Path) -> list[bytes]:
    """The records of one queue in push order, read from a copy (queuelib's pop consumes)."""
    copy = scratch / f"copy-{len(list(scratch.iterdir()))}"
    if path.is_dir():
        shutil.copytree(path, copy)
        fifo = FifoDiskQueue(copy)
        records = list(iter(fifo.pop, None))
        fifo.close()
        return records
    shutil.copyfile(path, copy)
    if path.read_bytes().startswith(b"SQLite format 3"):
        sqlite = FifoSQLiteQueue(copy)
        records = list(iter(sqlite.pop, None))
        sqlite.close()
        return records
    lifo = LifoDiskQueue(copy)
    records = list(iter(lifo.pop, None))
    lifo.close()
    return records[::-1]


def queues(job: Path, scratch: Path) -> dict[str, list[bytes]]:
    scratch.mkdir(exist_ok=True)
    return {str(q.relative_to(job)): read_queue(q, scratch) for q in queue_files(job)}


def request_of(raw: bytes) -> dict[str, Any]:
    value = pickle.loads(raw) if raw[:1] == b"\x80" else marshal.loads(raw)
    assert isinstance(value, dict)
    return value


def is_persons(raw: bytes) -> bool:
    request = request_of(raw)
    text = repr((request["url"], request.get("meta"), request.get("headers"))).encode()
    return bool(PERSON_BYTES.search(text))


def raw_files(job: Path) -> dict[str, bytes]:
    return {str(p.relative_to(job)): p.read_bytes() for p in sorted(job.rglob("*")) if p.is_file()}


def receipts_in(log: Path) -> list[dict[str, Any]]:
    return [e for e in read_audit_log(log) if e.get("event") == "purge-receipt"]


def purge(*args: str) -> int:
    return main(["purge", "--platforms", str(PLATFORMS), *args])


# -- the tests ---------------------------------------------------------------------------------------------------


@deferred_f_from_coro_f
@pytest.mark.parametrize("queue_classes", QUEUE_CLASSES, ids=lambda q: q[0].rsplit(".", 1)[1])
async def test_purge_jobdir_erases_the_persons_queued_requests_and_the_resumed_crawl_fetches_the_others(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
    capsys: pytest.CaptureFixture[str], queue_classes: tuple[str, str],
) -> None:
    job = await paused_crawl(server, monkeypatch, tmp_path, config_dir, queue_classes)
    before = queues(job, tmp_path / "scratch")
    theirs = {q: [r for r in records if is_persons(r)] for q, records in before.items()}
    # the listing's link, the start request, the followers page, the legacy spelling, meta
    assert sum(map(len, theirs.values())) >= 4
    assert [q for q in before if (job / q).is_dir() and theirs[q]]  # the start request, in a FIFO directory
    assert any(PERSON_BYTES.search(data) for data in raw_files(job / QUEUE).values())
    others = [request_of(r)["url"] for records in before.values() for r in records if not is_persons(r)]
    assert len(others) >= 3
    seen_before = (job / "requests.seen").read_bytes()
    withdraw(config_dir)
    log = tmp_path / "purge-audit.jsonl"

    assert purge("--withdrawn", "--authorizations", str(config_dir / "authorizations.yaml"), "--audit-log",
                 str(log), "--jobdir", str(job)) == 0

    # no byte of the person left in any queue file; every other request as it was, in its order
    for name, data in raw_files(job / QUEUE).items():
        assert not PERSON_BYTES.search(data), name
    after = queues(job, tmp_path / "scratch2")
    assert after == {q: [r for r in records if r not in theirs[q]] for q, records in before.items()
                     if len(records) > len(theirs[q])}
    # the person's fingerprints left requests.seen (tests/test_purge_jobdir_seen.py), the others stayed
    assert len((job / "requests.seen").read_bytes()) < len(seen_before)
    # a queue left empty is gone, and so is its priority from active.json (the followers page's was the person's)
    state = json.loads((job / QUEUE / "active.json").read_text())
    emptied = set(before) - set(after)
    assert emptied and state
    for name in emptied:
        queue = Path(name)
        priority = int(queue.name.rstrip("s"))
        still = any(Path(a).parent == queue.parent and int(Path(a).name.rstrip("s")) == priority for a in after)
        listed = state if isinstance(state, list) else state.get(queue.parent.name.rsplit("-", 1)[0], [])
        assert (priority in listed) == still, (name, state)
    # the receipt: how many of the person's requests went, no URL
    receipt = next(r for r in receipts_in(log) if r["subject"] == f"microblog:{PERSON}")
    [target, fingerprints] = receipt["targets"]
    removed = [r for q in sorted(theirs) for r in theirs[q]]
    assert target["kind"] == "jobdir" and target["removed"] == len(removed)
    assert fingerprints["kind"] == "requests.seen" and fingerprints["removed"] >= len(removed)
    assert receipt["removed"] == target["removed"] + fingerprints["removed"]
    assert target["sha256"] == hashlib.sha256(b"".join(removed)).hexdigest()
    assert target["unsure"] == [] and receipt["failed"] == []
    line = next(raw for raw in log.read_bytes().splitlines() if b"purge-receipt" in raw and PERSON.encode() in raw)
    assert b"microblog.example/" not in line and b"/u/" not in line
    assert verify(log).problem is None
    assert f"removed {len(removed)} request(s) of microblog:{PERSON}" in capsys.readouterr().out

    # resumed: the server is asked for every other queued request and never for the person
    server.clear()
    await run_crawl(QueueingSpider, crawl_settings(tmp_path, config_dir, queue_classes), proxy=server.proxy,
                    monkeypatch=monkeypatch)
    targets = [r.target for r in server.requests]
    assert set(others) <= set(targets), set(others) - set(targets)
    assert not [t for t in targets if person_in(t)]


@deferred_f_from_coro_f
async def test_without_a_purge_the_resumed_crawl_denies_the_persons_queued_requests_at_send_time(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
) -> None:
    job = await paused_crawl(server, monkeypatch, tmp_path, config_dir)
    theirs = [request_of(r)["url"] for records in queues(job, tmp_path / "scratch").values() for r in records
              if is_persons(r)]
    assert theirs
    withdraw(config_dir)
    server.clear()
    result = await run_crawl(QueueingSpider, crawl_settings(tmp_path, config_dir), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert not [r.target for r in server.requests if person_in(r.target)]
    assert [r.target for r in server.requests if "/u/" in r.target]  # the others were fetched
    denied = {line["url"] for line in result.audit if line.get("reason") == "subject.revoked"}
    assert set(theirs) <= denied


@deferred_f_from_coro_f
async def test_purge_on_close_erases_the_queued_requests_of_a_person_the_resumed_crawl_saw_withdrawn(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
) -> None:
    job = await paused_crawl(server, monkeypatch, tmp_path, config_dir)
    withdraw(config_dir)
    server.clear()
    # resumed and stopped again: the person's followers page (first out) is denied, their two requests of the
    # lowest priority are still queued when the crawl writes its queues at its close
    settings = crawl_settings(tmp_path, config_dir, CONSENTCRAWL_PURGE_ON_CLOSE=True, CLOSESPIDER_PAGECOUNT=5)
    result = await run_crawl(QueueingSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert result.stats["finish_reason"] == "closespider_pagecount"
    assert not [r.target for r in server.requests if person_in(r.target)]
    for name, data in raw_files(job / QUEUE).items():
        assert not PERSON_BYTES.search(data), name
    left = [r for records in queues(job, tmp_path / "scratch").values() for r in records]
    assert left  # others still queued, for the next resume
    [receipt] = [r for r in receipts_in(tmp_path / "audit.jsonl") if r["subject"] == f"microblog:{PERSON}"]
    assert receipt["selection"] == "withdrawn-during-crawl"
    [target] = [t for t in receipt["targets"] if t["kind"] == "jobdir"]
    assert target["removed"] >= 2 and target["path"] == str(job)
    assert "consentcrawl/purge/failed" not in result.stats


# -- failing closed ----------------------------------------------------------------------------------------------


@deferred_f_from_coro_f
async def test_a_queue_that_cannot_be_read_fails_the_purge_naming_it_and_nothing_changes(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = await paused_crawl(server, monkeypatch, tmp_path, config_dir)
    [damaged] = [q for q in queue_files(job) if any(is_persons(r) for r in read_queue(q, mkdir(tmp_path / "s")))
                 and q.name == "0"]
    with damaged.open("ab") as f:  # a crash mid-write: bytes past the last whole record
        f.write(b"\x00\x00\x00\x07half")
    before = raw_files(job)
    log = tmp_path / "purge-audit.jsonl"
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(log), "--jobdir", str(job)) == 1
    err = capsys.readouterr().err
    # named with its slot directory's host hidden, as receipts name it (the message goes into every receipt)
    shown = damaged.parent.parent / f"*-{damaged.parent.name.rsplit('-', 1)[1]}" / damaged.name
    assert f"{shown}: the queue cannot be read" in err and "nothing in the job directory was changed" in err
    assert raw_files(job) == before
    assert [f["path"] for f in receipts_in(log)[0]["failed"]] == [str(job)]

    # a record that is not a request Scrapy stored: the same
    damaged.unlink()
    lifo = LifoDiskQueue(damaged)
    lifo.push(pickle.dumps(["not", "a", "request"], protocol=4))
    lifo.close()
    before = raw_files(job)
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(log), "--jobdir", str(job)) == 1
    assert f"{shown}: record 1: a queued record is not a request" in capsys.readouterr().err
    assert raw_files(job) == before


def mkdir(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    return path


@deferred_f_from_coro_f
@pytest.mark.parametrize("queue_classes", [DEFAULT, ("scrapy.squeues.PickleFifoDiskQueue", DEFAULT[1])],
                         ids=["file", "directory"])
async def test_a_queue_that_cannot_be_replaced_keeps_its_old_bytes_and_the_purge_says_so(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
    capsys: pytest.CaptureFixture[str], queue_classes: tuple[str, str],
) -> None:
    from tests.test_purge import read_only

    job = await paused_crawl(server, monkeypatch, tmp_path, config_dir, queue_classes)
    slot = next(p for p in (job / QUEUE).iterdir() if p.name.startswith("microblog.example-"))
    before = raw_files(slot)
    log = tmp_path / "purge-audit.jsonl"
    with read_only(slot):
        status = purge("--subject", f"microblog:{PERSON}", "--audit-log", str(log), "--jobdir", str(job))
    assert status == 1
    assert "the queue cannot be replaced" in capsys.readouterr().err
    assert raw_files(slot) == before
    assert not [p for p in (job / QUEUE).iterdir() if p.name.startswith(".purge-")]  # its work directory went


def test_usage_without_a_target_or_a_jobdir_and_a_stray_work_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    log = str(tmp_path / "audit.jsonl")
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", log) == 2
    assert "name a TARGET or a --jobdir DIR" in capsys.readouterr().err
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", log, "--jobdir", str(tmp_path)) == 1
    assert "no requests.queue directory: not the JOBDIR of a Scrapy crawl" in capsys.readouterr().err
    stray = tmp_path / QUEUE / ".purge-0bad"
    stray.mkdir(parents=True)
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", log, "--jobdir", str(tmp_path)) == 1
    assert f"{stray} was left by an interrupted purge" in capsys.readouterr().err


# -- whose a queued request is -----------------------------------------------------------------------------------


class Carried:
    """An object a spider put in meta: the purge never imports its class, and reads what it holds."""

    def __init__(self, subject: str) -> None:
        self.subject = subject


class Trap:
    """Unpickled by ``pickle.loads``, this would run a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_whose_a_queued_request_is_read_from_every_part_and_no_code_in_the_file_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    marker = tmp_path / "ran"

    def record(url: str, **kwargs: Any) -> bytes:
        return pickle.dumps(Request(url, **kwargs).to_dict(), protocol=4)

    other = record("http://microblog.example/u/1007")
    trap = record("http://microblog.example/u/1008", meta={"x": Trap(marker)})
    records = [
        other,
        record("http://microblog.example/people?page=3", cb_kwargs={"item": {"subject": PERSON,
                                                                            "platform": "microblog"}}),
        trap,
        record("http://microblog.example/people?page=4", meta={"carried": Carried(PERSON)}),
        # the URL names one selected person and the page it was found on another: whose cannot be told
        record("http://microblog.example/u/1001", headers={"Referer": f"http://microblog.example/u/{PERSON}"}),
        pickle.dumps({"url": "http://microblog.example:99999/u/1009", "meta": {}}, protocol=4),  # unreadable
    ]
    job = tmp_path / "job"
    (job / QUEUE).mkdir(parents=True)
    (job / QUEUE / "active.json").write_text("[0]")
    lifo = LifoDiskQueue(job / QUEUE / "0")
    for raw in records:
        lifo.push(raw)
    lifo.close()
    log = tmp_path / "audit.jsonl"

    assert purge("--subject", f"microblog:{PERSON}", "--subject", "microblog:1001", "--dry-run",
                 "--jobdir", str(job)) == 0
    assert read_queue(job / QUEUE / "0", mkdir(tmp_path / "s")) == records  # a dry run changes nothing
    assert purge("--subject", f"microblog:{PERSON}", "--subject", "microblog:1001", "--audit-log", str(log),
                 "--jobdir", str(job)) == 0
    assert not marker.exists()
    assert read_queue(job / QUEUE / "0", mkdir(tmp_path / "s2")) == [other, trap]
    by_subject = {r["subject"]: r for r in receipts_in(log)}
    assert set(by_subject) == {f"microblog:{PERSON}", "microblog:1001", None}
    [theirs] = by_subject[f"microblog:{PERSON}"]["targets"]
    assert theirs["where"] == ["0#2", "0#4"] and theirs["unsure"] == ["0#5", "0#6"]
    assert by_subject["microblog:1001"]["removed"] == 0
    [unsure] = by_subject[None]["targets"]
    assert unsure["removed"] == 2 and unsure["sha256"] == hashlib.sha256(records[4] + records[5]).hexdigest()
    assert "removed 2 request(s) of unsure whose (0#5, 0#6)" in capsys.readouterr().out
    # the last request of a queue gone: so is the queue, and its priority from active.json
    assert purge("--subject", "microblog:1007", "--subject", "microblog:1008", "--audit-log", str(log),
                 "--jobdir", str(job)) == 0
    assert not (job / QUEUE / "0").exists() and json.loads((job / QUEUE / "active.json").read_text()) == []


def test_a_queued_compressed_body_naming_the_person_is_theirs(tmp_path: Path) -> None:
    """A POST to a fetch-through service whose gzip-compressed JSON body names the person's profile is read as the
    send time reads it, decompressed: the purge removes it (the compressed bytes hold no URL to find)."""
    payload = json.dumps({"url": f"http://microblog.example/u/{PERSON}"}).encode()
    theirs = pickle.dumps(Request("http://render.example/render.html", method="POST", body=gzip.compress(payload),
                                  headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}).to_dict(),
                          protocol=4)
    other = pickle.dumps(Request("http://microblog.example/u/1007").to_dict(), protocol=4)
    assert PERSON.encode() not in theirs  # control: only a reader that decompresses finds the person
    job = tmp_path / "job"
    (job / QUEUE).mkdir(parents=True)
    (job / QUEUE / "active.json").write_text("[0]")
    lifo = LifoDiskQueue(job / QUEUE / "0")
    for raw in (other, theirs):
        lifo.push(raw)
    lifo.close()
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(tmp_path / "audit.jsonl"),
                 "--jobdir", str(job)) == 0
    assert read_queue(job / QUEUE / "0", mkdir(tmp_path / "s")) == [other]
