"""``consentcrawl purge --jobdir``: no byte of the person left anywhere in the job directory, whatever the queue
held besides its waiting requests, and a record crafted against the reader cannot stall the purge.

The queues are made here with queuelib as Scrapy's disk queues make them; the judge is the bytes of every file and
every name under the job directory.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from queuelib.queue import FifoDiskQueue, LifoDiskQueue
from scrapy import Request

from consentcrawl import META_SUBJECT
from consentcrawl.cli import main
from tests.test_purge_jobdir import PERSON, QUEUE, mkdir, purge, read_queue

PROFILE = f"http://microblog.example/u/{PERSON}"
OTHER = "http://microblog.example/u/1007"


def record(url: str, **kwargs: Any) -> bytes:
    return pickle.dumps(Request(url, **kwargs).to_dict(), protocol=4)


def lifo_job(job: Path, records: list[bytes]) -> Path:
    """A job directory whose one queue (``requests.queue/0``, a LifoDiskQueue) holds ``records``; its queue dir."""
    root = mkdir(job) / QUEUE
    root.mkdir()
    (root / "active.json").write_text("[0]")
    lifo = LifoDiskQueue(root / "0")
    for raw in records:
        lifo.push(raw)
    lifo.close()
    return root


def everything(job: Path) -> bytes:
    """Every file's bytes and every path's name under ``job``."""
    return b"".join(bytes(p.relative_to(job)) + b"\n" + (p.read_bytes() if p.is_file() else b"")
                    for p in sorted(job.rglob("*")))


def test_the_bytes_of_a_request_the_crawl_already_took_from_a_fifo_queue_go_too(tmp_path: Path) -> None:
    """The crawl popped the person's start request (it was sent, or refused at send time) and paused with another
    one waiting behind it: queuelib's FifoDiskQueue (Scrapy's start request queue) leaves a popped record's bytes in
    its chunk file until the whole chunk (100,000 records) is consumed."""
    job = tmp_path / "job"
    root = mkdir(job) / QUEUE
    root.mkdir()
    (root / "active.json").write_text("[0]")
    path = root / "0s"
    queue = FifoDiskQueue(path)
    queue.push(record(PROFILE, meta={"note": "the person's"}))
    queue.push(record(OTHER))
    assert pickle.loads(queue.pop())["url"] == PROFILE
    queue.close()
    assert f"/u/{PERSON}".encode() in everything(job)  # the taken request's bytes are still on disk

    log = tmp_path / "audit.jsonl"
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(log), "--jobdir", str(job)) == 0

    assert f"/u/{PERSON}".encode() not in everything(job)
    assert read_queue(path, mkdir(tmp_path / "s")) == [record(OTHER)]  # the waiting one kept


def test_a_slot_directory_named_by_the_persons_host_goes_with_their_last_request(tmp_path: Path) -> None:
    """``DownloaderAwarePriorityQueue`` keeps each download slot's queues in a directory named by the slot (the
    host): a request of the person on a host of their own leaves the host in the directory's name, and Scrapy
    leaves a slot's directory behind when its queues empty."""
    host = "ada-lovelace-home.example"
    slot = f"{host}-{hashlib.md5(host.encode()).hexdigest()}"
    job = tmp_path / "job"
    root = mkdir(job) / QUEUE
    (root / slot).mkdir(parents=True)
    lifo = LifoDiskQueue(root / slot / "0")
    lifo.push(record(f"http://{host}/about", meta={META_SUBJECT: f"microblog:{PERSON}"}))
    lifo.close()
    # a slot emptied by the crawl before it paused: Scrapy left its directory
    emptied_host = "ada-lovelace-blog.example"
    (root / f"{emptied_host}-{hashlib.md5(emptied_host.encode()).hexdigest()}").mkdir()
    (root / "active.json").write_text(json.dumps({host: [0]}))
    assert b"ada-lovelace" in everything(job)

    log = tmp_path / "audit.jsonl"
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(log), "--jobdir", str(job)) == 0

    assert b"ada-lovelace" not in everything(job)
    assert json.loads((root / "active.json").read_text()) == {}


def _limit_memory() -> None:  # the child must not take the shared machine's memory if the reader expands it
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def _limits() -> None:  # memory, and the size of any file the child writes (a copy of /dev/zero)
    _limit_memory()
    resource.setrlimit(resource.RLIMIT_FSIZE, (100 << 20, 100 << 20))


def _purge_in_child(job: Path, log: Path, *, limit_files: bool = False) -> subprocess.CompletedProcess[str]:
    """``consentcrawl purge --subject microblog:PERSON --jobdir job`` in a child process with its memory (and file
    sizes) limited; a purge that does not finish in 100 s fails the test."""
    code = "import sys; from consentcrawl.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["purge", "--platforms", str(Path(__file__).parent.parent / "settings" / "platforms.yaml"),
            "--subject", f"microblog:{PERSON}", "--audit-log", str(log), "--jobdir", str(job)]
    try:
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=100,
                              preexec_fn=_limits if limit_files else _limit_memory, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("the purge did not finish")


def test_a_record_whose_shared_values_expand_without_end_is_unsure_and_the_purge_finishes(tmp_path: Path) -> None:
    """Pickle's memo lets a few kilobytes name one list from many places: 200 references at each of 8 levels is
    ~200**8 values to a reader that walks the request as a tree. Such a record cannot be judged in any time the
    purge has; it goes, listed unsure (as a request that cannot be read into facts does), and the purge finishes."""
    level: list[Any] = ["http://microblog.example/people"]
    for _ in range(8):
        level = [level] * 200
    bomb = pickle.dumps({"url": "http://microblog.example/people?page=9", "meta": {"x": level}}, protocol=4)
    assert len(bomb) < 10_000
    job = tmp_path / "job"
    root = lifo_job(job, [record(OTHER), bomb, record(PROFILE)])
    log = tmp_path / "audit.jsonl"

    done = _purge_in_child(job, log)
    assert done.returncode == 0, done.stderr
    assert "removed 1 request(s) of unsure whose (0#2)" in done.stdout
    assert read_queue(root / "0", mkdir(tmp_path / "s")) == [record(OTHER)]


def _crafted(kind: str) -> bytes:
    """The person's queued request, with a few bytes that make C's unpickler take gigabytes: a memo slot numbered
    2**28 (it allocates and clears a memo table of twice that many pointers, 4 GiB) or, in 15 MB, 3 million
    references to a global (a class each, ~1.5 kB apiece, if the reader makes one per reference)."""
    url = PROFILE.encode()
    head = b"\x80\x04"  # protocol 4, no frame
    if kind == "memo":
        inner = b"N" + b"r" + (1 << 28).to_bytes(4, "little") + b"0"  # None, LONG_BINPUT 2**28, POP
    else:
        inner = b"\x8c\x01a\x94" + b"]\x94(" + b"h\x00h\x00\x93" * 3_000_000 + b"e0"  # 3M globals, POP
    return (head + inner + b"}\x94(\x8c\x03url\x94\x8c" + bytes([len(url)]) + url + b"\x94\x8c\x06method\x94"
            b"\x8c\x03GET\x94u.")


@pytest.mark.parametrize("kind", ["memo", "classes"])
def test_a_record_crafted_to_take_gigabytes_to_unpickle_is_read_in_little_memory(tmp_path: Path, kind: str) -> None:
    crafted = _crafted(kind)
    assert pickle.loads(b"\x80\x04" + crafted[crafted.index(b"}\x94(\x8c\x03url"):]) == {
        "url": PROFILE, "method": "GET"}
    job = tmp_path / "job"
    root = lifo_job(job, [record(OTHER), crafted])
    log = tmp_path / "audit.jsonl"

    done = _purge_in_child(job, log)
    assert done.returncode == 0, done.stderr
    assert f"removed 1 request(s) of microblog:{PERSON} (0#2)" in done.stdout
    assert f"/u/{PERSON}".encode() not in everything(job)
    assert read_queue(root / "0", mkdir(tmp_path / "s")) == [record(OTHER)]


def test_a_queued_request_whose_cookies_name_the_person_on_a_query_template_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """``Request(cookies=...)`` is stored in the request's ``cookies``, not in its headers: CookiesMiddleware makes
    the ``Cookie`` header at send time, where the crawl reads it (PHP reads ``id`` from a cookie as from the query,
    tests/test_leaks_fresh.py). Read from the queue, the request must be read with that header too."""
    from tests.lenient import HOST, PLATFORMS_YAML

    platforms = tmp_path / "platforms.yaml"
    platforms.write_text(PLATFORMS_YAML)
    theirs = [record(f"http://{HOST}/profile.php?id=101", cookies={"id": "107"}),
              record(f"http://{HOST}/profile.php", cookies=[{"name": "id", "value": "107", "domain": HOST}])]
    other = record(f"http://{HOST}/profile.php?id=101", cookies={"theme": "dark"})
    job = tmp_path / "job"
    root = lifo_job(job, [other, *theirs])

    assert main(["purge", "--platforms", str(platforms), "--subject", "people:107", "--audit-log",
                 str(tmp_path / "audit.jsonl"), "--jobdir", str(job)]) == 0
    assert read_queue(root / "0", mkdir(tmp_path / "s")) == [other]
    out = capsys.readouterr().out
    assert "removed 1 request(s) of people:107 (0#3)" in out  # the cookie alone names them
    assert "removed 1 request(s) of unsure whose (0#2)" in out  # 101 by its query, 107 by its cookie: denied


@pytest.mark.parametrize("state", [{"last_profile": PROFILE, "pages": 3},
                                   {"kept": [{"subject": PERSON, "platform": "microblog", "name": "Ada"}]}],
                         ids=["url", "item"])
def test_a_spider_state_naming_the_person_fails_the_purge_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], state: dict[str, Any],
) -> None:
    """``spider.state`` is the spider's own ``state`` dict, pickled by Scrapy at close: the purge does not rewrite
    what the spider keeps, but it must not say the person is gone while their URL or item is in it."""
    job = tmp_path / "job"
    root = lifo_job(job, [record(OTHER)])
    log = str(tmp_path / "audit.jsonl")
    (job / "spider.state").write_bytes(pickle.dumps({"pages": 3, "last": OTHER}, protocol=4))
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", log, "--jobdir", str(job)) == 0  # no one's

    (job / "spider.state").write_bytes(pickle.dumps(state, protocol=4))
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", log, "--jobdir", str(job)) == 1
    err = capsys.readouterr().err
    assert f"{job / 'spider.state'}: the spider's state names 1 selected person(s)" in err
    assert read_queue(root / "0", mkdir(tmp_path / "s")) == [record(OTHER)]


def _endless_view(path: Path) -> None:
    """An SQLite file whose ``queue`` is a view of endless rows: counting them never ends."""
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("CREATE VIEW queue AS WITH RECURSIVE n(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM n) "
               "SELECT id, zeroblob(10) AS item FROM n")
    db.commit()
    db.close()


def _fifo_of_zeros(path: Path) -> None:
    """A FifoDiskQueue directory whose chunk is a link to ``/dev/zero`` and whose info counts 10**12 requests."""
    path.mkdir()
    (path / "info.json").write_text(json.dumps({"chunksize": 100000, "size": 10**12, "head": [0, 10**12],
                                                "tail": [0, 0, 0]}))
    (path / "q00000").symlink_to("/dev/zero")


@pytest.mark.parametrize(("make", "why"), [(_endless_view, "not a queue queuelib writes (a view named queue)"),
                                           (_fifo_of_zeros, "q00000 is a symbolic link")],
                         ids=["sqlite-view", "fifo-dev-zero"])
def test_a_queue_crafted_to_never_end_fails_the_purge_and_nothing_changes(
    tmp_path: Path, make: Any, why: str,
) -> None:
    """Read as queuelib reads it, the view's rows are counted without end, and the link is copied without end
    (here until the child's 100 MB file limit; on a machine, until the disk is full)."""
    job = tmp_path / "job"
    root = lifo_job(job, [record(PROFILE)])
    make(root / "1")
    before = everything(job)
    log = tmp_path / "audit.jsonl"

    done = _purge_in_child(job, log, limit_files=True)
    assert done.returncode == 1, done.stderr
    assert f"{root / '1'}" in done.stderr and why in done.stderr, done.stderr
    assert everything(job) == before


def test_the_bytes_of_a_request_the_crawl_already_took_from_an_sqlite_queue_go_too(tmp_path: Path) -> None:
    """An SQLite queue's pop deletes the row; unless the SQLite library was built to overwrite deleted content
    (SQLITE_SECURE_DELETE: Debian's is, SQLite's own default is not), the row's bytes stay in the file. The pop
    here is queuelib's statement on a connection with ``secure_delete`` off, as such a library runs it."""
    import sqlite3

    from queuelib.queue import FifoSQLiteQueue

    job = tmp_path / "job"
    root = mkdir(job) / QUEUE
    root.mkdir()
    (root / "active.json").write_text("[0]")
    path = root / "0"
    queue = FifoSQLiteQueue(path)
    queue.push(record(PROFILE, meta={"note": "the person's"}))
    queue.push(record(OTHER))
    queue.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA secure_delete = OFF")
    with db:
        [(first,)] = db.execute("SELECT id FROM queue ORDER BY id LIMIT 1")
        db.execute(FifoSQLiteQueue._sql_del, (first,))
    db.close()
    assert f"/u/{PERSON}".encode() in everything(job)  # the taken request's bytes are still on disk

    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(tmp_path / "audit.jsonl"), "--jobdir",
                 str(job)) == 0

    assert f"/u/{PERSON}".encode() not in everything(job)
    assert read_queue(path, mkdir(tmp_path / "s")) == [record(OTHER)]


def test_a_url_of_the_person_deep_in_a_queued_requests_meta_makes_it_theirs(tmp_path: Path) -> None:
    """An API's JSON a callback passes on in meta nests deep (``data.user.edges[0].node.links[0].href``): the
    person's URL counts wherever it is in the request, as docs/purge.md says."""
    deep: Any = {"href": PROFILE}
    for key in ("links", "node", "edges", "user", "data", "graph", "page", "api", "response", "payload"):
        deep = {key: [deep]}
    theirs = record("http://microblog.example/people?page=5", meta={"json": deep})
    job = tmp_path / "job"
    root = lifo_job(job, [record(OTHER), theirs])
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(tmp_path / "audit.jsonl"), "--jobdir",
                 str(job)) == 0
    assert read_queue(root / "0", mkdir(tmp_path / "s")) == [record(OTHER)]


def test_an_active_json_nested_past_the_parsers_depth_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    job = tmp_path / "job"
    root = lifo_job(job, [record(PROFILE)])
    (root / "active.json").write_text("[" * 100_000 + "]" * 100_000)
    before = everything(job)
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(tmp_path / "audit.jsonl"), "--jobdir",
                 str(job)) == 1
    assert f"{root / 'active.json'} cannot be read" in capsys.readouterr().err
    assert everything(job) == before


@pytest.mark.parametrize("damage", ["queue", "state"])
def test_a_failure_names_no_host_of_a_slot_and_no_person_in_the_receipts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str,
) -> None:
    """A failure's message goes into every receipt of the run (and, on close, into the crawl's log at ERROR): it
    names a slot's queue as receipts do, by the MD5 of its host, and the people the spider's state names by how
    many, not by who."""
    host = "ada-lovelace-home.example"
    slot = f"{host}-{hashlib.md5(host.encode()).hexdigest()}"
    job = tmp_path / "job"
    root = lifo_job(job, [record(OTHER)])
    (root / slot).mkdir()
    lifo = LifoDiskQueue(root / slot / "0")
    lifo.push(record(f"http://{host}/about"))
    lifo.close()
    (root / "active.json").write_text(json.dumps({host: [0]}))
    if damage == "queue":
        with (root / slot / "0").open("ab") as f:  # bytes past the last whole record
            f.write(b"\x00\x00\x00\x07half")
    else:
        (job / "spider.state").write_bytes(pickle.dumps({"last": PROFILE}, protocol=4))
    log = tmp_path / "audit.jsonl"
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(log), "--jobdir", str(job)) == 1
    err = capsys.readouterr().err
    assert "ada-lovelace" not in err and "ada-lovelace" not in log.read_text(), err
    if damage == "state":
        assert f"microblog:{PERSON}" not in err and "names 1 selected person" in err, err
