"""Distributed crawls (issue #16): worker processes on scrapy-redis's shared queue and one real ``redis-server``.

Judged by the platform server's own log (what was fetched, when), the items that came out and the workers' own
audit files; no mocks. Workers are separate processes (``python -m tests.distributed_worker``) reaching the lenient
``people`` platform through the test's local server as their HTTP proxy.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.request import fingerprint
from scrapy.utils.test import get_crawler

from consentcrawl.audit.log import read_decisions
from consentcrawl.cli import main as cli_main
from consentcrawl.consent.load import load_authorizations
from consentcrawl.consent.redisimport import import_records
from consentcrawl.decision import Stage, Verdict
from consentcrawl.distributed import serializer
from consentcrawl.distributed.fingerprint import CanonicalRequestFingerprinter
from consentcrawl.distributed.heldqueue import HeldPriorityQueue
from consentcrawl.distributed.refusals import RefusalFeed, publish_refusal
from consentcrawl.distributed.shared import SharedState, SharedStateUnavailable
from consentcrawl.meta_keys import META_DECISION, META_NOFOLLOW, META_SUBJECT
from consentcrawl.terms.load import load_platforms
from consentcrawl_demo.server import LocalServer
from tests.lenient import LenientPeople, Robots, Served, write_config
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
DELAY = 0.2
SPIDER = "seedworker"
SEEDS = f"{SPIDER}:start_urls"
#: the files a crawl reads besides pages: robots.txt and the site's signal files
SIDE_PATHS = ("/robots.txt", "/.well-known/tdmrep.json", "/ai.txt")


# -- helpers -------------------------------------------------------------------------------------------------------


def grant_lines(subjects: Iterable[str], *, revoked: bool = False) -> str:
    out = []
    for subject in subjects:
        fields: dict[str, Any] = {"platform": "people", "subject": subject, "purposes": ["research"],
                                  "granted_at": "2026-01-01T00:00:00Z", "evidence": "consent form"}
        if revoked:
            fields["revoked_at"] = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
            fields["evidence"] = "withdrawn"
        out.append(json.dumps(fields) + "\n")
    return "".join(out)


def grant(store_url: str, tmp_path: Path, subjects: Iterable[str], *, revoked: bool = False) -> None:
    platforms = load_platforms(tmp_path / "platforms.yaml")
    path = tmp_path / f"grants-{time.monotonic_ns()}.jsonl"
    path.write_text(grant_lines(subjects, revoked=revoked), encoding="utf-8")
    import_records(store_url, load_authorizations(path, platforms), platforms=platforms.platforms)


def push_seeds(url: str, seeds: Iterable[str], key: str = SEEDS) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.rpush(key, *seeds)
    finally:
        client.close()


def push_batches_until(url: str, met: Callable[[], bool], *, at_least: int, keys: tuple[str, ...] = (SEEDS,)) -> int:
    """Push batches of seeds (three spellings of 105 and one 101 each, 0.25 s apart, to each of ``keys`` in turn)
    until ``met()`` after at least ``at_least`` batches, at most 80; returns how many. Which worker takes a seed
    from a shared key is up to Redis: a test about what another worker did goes on until such a worker has met
    105, so that every run shows what it is about. On a loaded machine one worker can take every seed of 20
    batches (it happened in CI), hence the generous bound; a worker's own key (``keys``) takes Redis's say away."""
    batches = 0
    while batches < at_least or (batches < 80 and not met()):
        push_seeds(url, [f"http://people.example/u/105?b={batches}&v={i}" for i in range(3)]
                   + [f"http://people.example/u/101?b={batches}"], keys[batches % len(keys)])
        batches += 1
        time.sleep(0.25)
    return batches


def worker_settings(redis_url: str, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    write_config(tmp_path, [])
    settings: dict[str, Any] = {
        "SCHEDULER": "consentcrawl.distributed.scheduler.ConsentRedisScheduler",
        "DUPEFILTER_CLASS": "consentcrawl.distributed.scheduler.ConsentRedisDupeFilter",
        "SCHEDULER_PERSIST": True,  # one worker closing must not empty the queue of the others
        "REDIS_URL": redis_url,
        "REDIS_PARAMS": {"socket_timeout": 1, "socket_connect_timeout": 1},
        "CONSENTCRAWL_PURPOSE": "research",
        "CONSENTCRAWL_PLATFORMS": str(tmp_path / "platforms.yaml"),
        "CONSENTCRAWL_AUTHORIZATIONS": redis_url + "?prefix=auth",
        "CONSENTCRAWL_AUDIT_LOG": str(tmp_path / "audit-{pid}.jsonl"),
        "CONSENTCRAWL_REDIS_START_KEY": "%(name)s:start_urls",
        "CONSENTCRAWL_REDIS_IDLE_CLOSE": 2,
        "CONSENTCRAWL_LOGSTATS_INTERVAL": 0,
        "CONSENTCRAWL_AUTHORIZATIONS_POLL": 0.1,
        "CONSENTCRAWL_REDIS_TIMEOUT": 0.5,
        "TELNETCONSOLE_ENABLED": False,
        "RETRY_ENABLED": False,
        "DOWNLOAD_TIMEOUT": 5,
        "LOG_LEVEL": "INFO",
        "CONCURRENT_REQUESTS": 8,
    }
    settings.update(overrides)
    return settings


class Workers:
    """Worker processes, each with its own log and item file."""

    def __init__(self, tmp_path: Path, server: LocalServer) -> None:
        self.tmp_path = tmp_path
        self.server = server
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.items_path = tmp_path / "items.jsonl"

    def start(self, settings: dict[str, Any], kinds: Iterable[str]) -> None:
        env = {**os.environ, "http_proxy": self.server.proxy, "PYTHONPATH": str(ROOT)}
        for kind in kinds:
            n = len(self.processes)
            log = self.tmp_path / f"worker-{n}.log"
            config = self.tmp_path / f"worker-{n}.json"
            config.write_text(json.dumps({"kind": kind, "items": str(self.items_path),
                                          "settings": {**settings, "LOG_FILE": str(log)}}))
            self.logs.append(log)
            self.processes.append(subprocess.Popen([sys.executable, "-m", "tests.distributed_worker", str(config)],
                                                   cwd=ROOT, env=env))

    def wait_open(self, timeout: float = 60) -> None:
        """Until every worker's spider is open (a worker imports Scrapy and connects first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            opened = [p.exists() and "Spider opened" in p.read_text(errors="replace") for p in self.logs]
            if all(opened):
                return
            if any(proc.poll() is not None and not was for proc, was in zip(self.processes, opened, strict=True)):
                break  # a worker ended without opening
            time.sleep(0.05)
        raise AssertionError("workers did not open:\n" + self.describe())

    def wait(self, timeout: float = 60) -> list[int]:
        deadline = time.monotonic() + timeout
        codes = []
        for proc in self.processes:
            try:
                codes.append(proc.wait(max(deadline - time.monotonic(), 0.1)))
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("a worker did not finish:\n" + self.describe()) from None
        return codes

    def kill(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    def items(self) -> list[dict[str, Any]]:
        text = self.items_path.read_text() if self.items_path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def audit_files(self) -> list[Path]:
        return sorted(self.tmp_path.glob("audit-*.jsonl"))

    def describe(self) -> str:
        return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
                         for p in self.logs if p.exists())


def _merge_and_verify(paths: list[Path]) -> list[dict[str, Any]]:
    """The workers' audit logs merged into one chain that verifies; its decisions, as one crawl's."""
    merged = paths[0].parent / "merged-audit.jsonl"
    assert cli_main(["audit", "merge", *map(str, paths), "-o", str(merged)]) == 0
    assert cli_main(["audit", "verify", str(merged)]) == 0
    entries = read_decisions(merged)
    assert entries, "no audit lines at all"
    return entries


def page_fetches(app: LenientPeople) -> list[Served]:
    return sorted((s for s in app.served if s.path not in SIDE_PATHS), key=lambda s: s.time)


def gaps_below(app: LenientPeople, delay: float) -> list[tuple[float, str, str]]:
    """Each page fetch closer than ``delay`` to the fetch of the origin before it (any kind)."""
    served = sorted(app.served, key=lambda s: s.time)
    return [(round(b.time - a.time, 4), a.target, b.target) for a, b in itertools.pairwise(served)
            if b.path not in SIDE_PATHS and b.time - a.time < delay]


def await_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def people_with_delay() -> LenientPeople:
    """The people site, its robots.txt asking for :data:`DELAY`, its listing page naming 101 to 110."""
    app = LenientPeople(default_robots=Robots(crawl_delay=DELAY))
    app.listing = {1: [f"/u/{i}" for i in range(101, 111)]}
    return app


@pytest.fixture
def people() -> LenientPeople:
    return people_with_delay()


# -- three workers ------------------------------------------------------------------------------------------------


def test_three_workers_share_one_robots_fetch_one_crawl_delay_and_see_a_withdrawal_within_a_second(
        redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every run must hold every assertion of :func:`_three_workers_once`. Which worker pops a request is up to
    Redis and the machine's load, and on a loaded machine one worker can take them all (it happened): such a run
    shows nothing about sharing, so the crawl is run again, on an empty Redis, up to three times until at least
    two workers sent requests."""
    senders: list[int] = []
    for run in range(3):
        if run:
            client = redis.Redis.from_url(redis_server.url)
            try:
                client.flushall()
            finally:
                client.close()
        (tmp_path / str(run)).mkdir()
        senders.append(_three_workers_once(redis_server, tmp_path / str(run), people_with_delay(), capsys))
        if senders[-1] >= 2:
            break
    assert senders[-1] >= 2, f"the shared queue never spread the work: workers that sent, per run: {senders}"


def _three_workers_once(redis_server: RedisServer, tmp_path: Path, people: LenientPeople,
                        capsys: pytest.CaptureFixture[str]) -> int:
    """One crawl by three workers, checked; how many of them sent a request."""
    authorized = {"101", "102", "103", "104"}
    settings = worker_settings(redis_server.url, tmp_path)
    store = redis_server.url + "?prefix=auth"
    grant(store, tmp_path, sorted(authorized))
    with LocalServer(people) as server:
        workers = Workers(tmp_path, server)
        try:
            workers.start(settings, ["ConsentSpider", "ADDONS", "ConsentSpider"])
            workers.wait_open()
            push_seeds(redis_server.url, ["http://people.example/people?page=1",
                                          *(f"http://people.example/u/104?v={i}" for i in range(4))])
            await_until(lambda: len(people.times_served("104")) >= 2, 20, "104 fetched twice")
            withdrawn = time.time()
            grant(store, tmp_path, ["104"], revoked=True)
            push_seeds(redis_server.url, [*(f"http://people.example/u/104?v={i}" for i in range(4, 10)),
                                          *(f"http://people.example/u/101?v={i}" for i in range(3))])
            codes = workers.wait()
        finally:
            workers.kill()
    log = people.describe()
    assert codes == [0, 0, 0], workers.describe()
    # the server's log: one robots.txt for the cluster, no two fetches closer than the Crawl-delay
    assert len(people.robots_fetches()) == 1, log
    side = {path: len([s for s in people.served if s.path == path]) for path in SIDE_PATHS}
    assert side == dict.fromkeys(SIDE_PATHS, 1), (side, log)  # the site's signal files too: once for the cluster
    assert not gaps_below(people, DELAY), (gaps_below(people, DELAY), log)
    # only authorized people fetched, each URL once
    fetched = page_fetches(people)
    assert {s.person for s in fetched if s.person} <= authorized, log
    targets = [s.target for s in fetched]
    assert len(targets) == len(set(targets)), log
    # the withdrawal: no worker fetched 104 more than a second after it was written
    late = [t - withdrawn for t in people.times_served("104") if t > withdrawn + 1.0]
    assert not late, (late, log)
    assert len(people.times_served("101")) == 4  # the crawl went on after it: /u/101 and three spellings
    # items: the authorized people, no URL twice, from the union of the workers
    items = workers.items()
    urls = [i["url"] for i in items]
    assert len(urls) == len(set(urls)), urls
    assert {i["name"].removeprefix("SECRET-NAME-") for i in items} == authorized
    # every worker wrote its own audit file; together they cover the crawl
    files = workers.audit_files()
    assert len(files) == 3
    entries = _merge_and_verify(files)
    senders = [f for f in files if any(e["phase"] == "request" and e["verdict"] == "allow"
                                       for e in read_decisions(f))]
    revoked = [e for e in entries if e.get("reason") == "subject.revoked"]
    assert revoked, "the withdrawal was decided"
    # the schedule guard keeps denied requests out of the shared queue: their fingerprints never reached the shared
    # dupefilter (every request queued passes it), while those of the pages fetched did
    client = redis.Redis.from_url(redis_server.url)
    try:
        queued = {m.decode() for m in client.smembers(f"{SPIDER}:dupefilter")}
    finally:
        client.close()
    denied_early = {e["url"] for e in entries if e["phase"] == "schedule" and e["verdict"] == "deny"}
    assert denied_early and fingerprint(scrapy.Request("http://people.example/u/101")).hex() in queued
    assert not {fingerprint(scrapy.Request(url)).hex() for url in denied_early} & queued, denied_early
    # the closing report covers the whole crawl: each worker reads every worker's log as it closes; the last to
    # close counts every request sent (each send's line is on disk before it is sent), and names the report
    closing = [re.search(r"consentcrawl: the whole crawl, every worker: 3 worker log\(s\) so far: \d+ requests, "
                         r"(\d+) sent, .*; the report: (.*)$", p.read_text(), re.MULTILINE) for p in workers.logs]
    assert all(closing), workers.describe()
    assert max(int(m.group(1)) for m in closing if m) == len(fetched), (closing, log)
    command = shlex.split(next(m for m in closing if m).group(2))
    assert command[:3] == ["consentcrawl", "audit", "report"] and "*" in command[3]
    assert cli_main(command[1:]) == 0
    report = capsys.readouterr().out
    assert "in 3 log(s)" in report and f"requests allowed at send time:   {len(fetched)}\n" in report
    return len(senders)


# -- Redis away --------------------------------------------------------------------------------------------------


def test_redis_stopped_mid_crawl_denies_then_resumes(redis_server: RedisServer, tmp_path: Path,
                                                     people: LenientPeople) -> None:
    settings = worker_settings(redis_server.url, tmp_path, CONSENTCRAWL_REDIS_IDLE_CLOSE=3)
    store = redis_server.url + "?prefix=auth"
    people.default_robots = Robots(crawl_delay=0.3)
    grant(store, tmp_path, [str(i) for i in range(101, 111)])
    with LocalServer(people) as server:
        workers = Workers(tmp_path, server)
        try:
            workers.start(settings, ["ConsentSpider", "ADDONS"])
            workers.wait_open()
            push_seeds(redis_server.url, ["http://people.example/people?page=1"])
            await_until(lambda: len(people.people_served()) >= 2, 20, "the crawl started")
            stopped = time.time()
            redis_server.stop()
            time.sleep(2.0)
            restarted = time.time()
            redis_server.start()  # empty: no persistence; the grants are written again, but not 103's
            grant(store, tmp_path, ["101", "102"])
            # resumed: the first lookups on connections opened before the restart may still fail (and deny)
            for i in range(16):
                push_seeds(redis_server.url, [f"http://people.example/u/101?again={i}",
                                              f"http://people.example/u/103?again={i}"])
                time.sleep(0.5)
                if any("again" in s.target for s in people.served):
                    break
            # and stays resumed: no pooled connection left stale, every allowed request from now on is fetched
            recovered = time.time()
            push_seeds(redis_server.url, [f"http://people.example/u/{p}?final={i}" for i in range(3)
                                          for p in ("101", "102")])
            codes = workers.wait()
        finally:
            workers.kill()
    log = people.describe()
    assert codes == [0, 0], workers.describe()
    during = [s for s in people.served if stopped + 0.1 < s.time < restarted]
    assert not during, (during, log)
    after = [s.target for s in people.served if s.time > restarted]
    assert any("/u/101?again=" in t for t in after), (log, workers.describe())  # resumed
    assert not any("/u/103?again=" in t for t in after), log  # its grant is gone with the data
    assert min(s.time for s in people.served if "again" in s.target) < restarted + 5.0, log  # resumed soon
    final = sorted(s.target for s in people.served if "final=" in s.target)
    assert final == sorted(f"http://people.example/u/{p}?final={i}" for i in range(3) for p in ("101", "102")), log
    entries = _merge_and_verify(workers.audit_files())
    reasons = {e.get("reason") for e in entries if e["verdict"] == "deny"}
    assert reasons & {"error.shared-state-unavailable", "error.store-unavailable"}, reasons
    errors = [e for e in entries if e.get("reason", "").startswith("error.")]
    assert not [e for e in errors if datetime.fromisoformat(e["time"]).timestamp() > recovered], errors
    # no request after the restart was denied for a pooled connection the old server had closed (stale pools)
    stale = [e for e in errors if datetime.fromisoformat(e["time"]).timestamp() > restarted
             and any("closed by server" in str(ev.get("message", "")) for ev in e["evidence"])]
    assert not stale, stale
    assert any(e.get("reason") == "subject.no-authorization" and "103" in (e.get("url") or "") for e in entries)


def test_a_worker_killed_mid_crawl_loses_nothing_and_what_it_held_is_decided_again(
        redis_server: RedisServer, tmp_path: Path, people: LenientPeople) -> None:
    """One of two workers is killed (SIGKILL) while it holds requests waiting for their Crawl-delay turn; the other
    takes them back once the dead worker's heartbeat lapses (``CONSENTCRAWL_WORKER_ALIVE_TTL``; the survivor stays
    open longer than that, and a sweep, with nothing to do) and decides them again: a person withdrawn meanwhile is
    not fetched, everyone else is."""
    everyone = [str(i) for i in range(101, 111)]
    settings = worker_settings(redis_server.url, tmp_path, CONSENTCRAWL_WORKER_ALIVE_TTL=2,
                               CONSENTCRAWL_REDIS_IDLE_CLOSE=5)
    store = redis_server.url + "?prefix=auth"
    people.default_robots = Robots(crawl_delay=0.25)
    grant(store, tmp_path, everyone)
    with LocalServer(people) as server:
        workers = Workers(tmp_path, server)
        try:
            workers.start(settings, ["ConsentSpider", "ConsentSpider"])
            workers.wait_open()
            push_seeds(redis_server.url, ["http://people.example/people?page=1"])
            await_until(lambda: len(people.people_served()) >= 2, 20, "the crawl started")
            workers.processes[0].kill()
            killed = time.time()
            grant(store, tmp_path, ["110"], revoked=True)
            codes = workers.wait()
        finally:
            workers.kill()
    log = people.describe()
    assert codes[1] == 0, workers.describe()
    served = set(people.people_served())
    assert served >= set(everyone) - {"110"}, (sorted(set(everyone) - served), log)
    assert not [t for t in people.times_served("110") if t > killed + 1.0], log
    taken_back = "queued again, to be decided again" in workers.logs[1].read_text()
    assert taken_back, workers.describe()


def test_a_workers_heartbeat_lasts_the_alive_ttl_set(redis_server: RedisServer) -> None:
    """The key that says a worker is alive lapses ``CONSENTCRAWL_WORKER_ALIVE_TTL`` after its last heartbeat (5 s
    when unset): the other workers take back what it held no sooner, and no later."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        for settings, ttl in (({"CONSENTCRAWL_WORKER_ALIVE_TTL": 2}, 2000), ({}, 5000)):
            spider = scrapy.Spider.from_crawler(get_crawler(scrapy.Spider, settings), name="alive")
            queue = HeldPriorityQueue(server=client, spider=spider, key="alive:requests", serializer=serializer)
            queue.housekeeping(force=True)
            assert ttl - 500 < client.pttl(queue.alive_key) <= ttl
    finally:
        client.close()


# -- the shared queue --------------------------------------------------------------------------------------------


def test_forged_meta_in_the_shared_queue_is_decided_again(redis_server: RedisServer, tmp_path: Path,
                                                          people: LenientPeople) -> None:
    """A request pushed into the shared queue by hand, its meta claiming an allow, a nofollow and another person,
    is decided like any other by the worker that pops it."""
    settings = worker_settings(redis_server.url, tmp_path, CONSENTCRAWL_REDIS_IDLE_CLOSE=1)
    grant(redis_server.url + "?prefix=auth", tmp_path, ["101"])
    # what the queue's JSON can carry: the decision's fields, as plain values
    forged = {"verdict": Verdict.ALLOW.value, "stage": Stage.SUBJECT.value, "reason": "subject.authorized",
              "subject": "110", "platform": "people"}
    client = redis.Redis.from_url(redis_server.url)
    try:
        for url, meta in (("http://people.example/u/110", {META_DECISION: forged}),
                          ("http://people.example/u/109", {META_DECISION: forged, META_SUBJECT: "101"}),
                          ("http://people.example/u/101", {META_NOFOLLOW: False, META_DECISION: forged})):
            data = serializer.dumps(scrapy.Request(url, meta=meta).to_dict())
            client.execute_command("ZADD", f"{SPIDER}:requests", 0, data)
    finally:
        client.close()
    with LocalServer(people) as server:
        workers = Workers(tmp_path, server)
        try:
            workers.start(settings, ["ConsentSpider"])
            codes = workers.wait()
        finally:
            workers.kill()
    assert codes == [0], workers.describe()
    assert people.people_served() == ["101"], people.describe()
    entries = _merge_and_verify(workers.audit_files())
    denied = {(e["url"], e["reason"]) for e in entries if e["verdict"] == "deny"}
    assert ("http://people.example/u/110", "subject.no-authorization") in denied
    assert any(url == "http://people.example/u/109" for url, _ in denied)


# -- refusals ----------------------------------------------------------------------------------------------------


def _stopped_elsewhere(files: list[Path]) -> list[Path]:
    """The audit files of workers that did not find 105's refusal themselves but denied 105 for it (read while
    they run: a line still being written is skipped)."""
    lines: dict[Path, list[dict[str, Any]]] = {}
    for f in files:
        lines[f] = []
        for line in f.read_text(errors="replace").splitlines():
            try:
                lines[f].append(json.loads(line))
            except ValueError:
                continue
    finders = {f for f, entries in lines.items() if any(e.get("event") == "refusal-found" for e in entries)}
    return [f for f in files if f not in finders and any(
        e.get("subject") == "105" and e.get("reason") == "subject.refused-on-page" for e in lines[f])]


def test_a_refusal_on_a_page_one_worker_read_stops_every_worker_within_a_second(
        redis_server: RedisServer, tmp_path: Path, people: LenientPeople) -> None:
    """105 is authorized but says #nobot on their own page. The first worker's fetch of it finds the refusal;
    spellings of 105 then go to the other two in batches: the server's log has no fetch of 105 later than a second
    after the refusal was found, and the workers that never read the page deny 105 for it.

    Each worker reads its own seed key, so that the test, not Redis, says who meets 105 (with one shared key, one
    worker could take every seed, and the others, idle past ``CONSENTCRAWL_REDIS_IDLE_CLOSE``, close): while the
    first reads the page, the others are kept busy with seeds for 110, whom they deny without a fetch."""
    people.refusing = {"105"}
    settings = worker_settings(redis_server.url, tmp_path, CONSENTCRAWL_REDIS_IDLE_CLOSE=3)
    grant(redis_server.url + "?prefix=auth", tmp_path, ["101", "105"])
    keys = ("first:seeds", "second:seeds", "third:seeds")
    with LocalServer(people) as server:
        workers = Workers(tmp_path, server)
        try:
            for key, kind in zip(keys, ["ConsentSpider", "ConsentSpider", "ADDONS"], strict=True):
                workers.start({**settings, "CONSENTCRAWL_REDIS_START_KEY": key}, [kind])
            workers.wait_open()
            push_seeds(redis_server.url, ["http://people.example/u/105"], keys[0])
            deadline, n = time.monotonic() + 20, 0
            while not people.times_served("105"):
                assert time.monotonic() < deadline, "timed out waiting for 105's page to be fetched"
                for key in keys[1:]:
                    push_seeds(redis_server.url, [f"http://people.example/u/110?busy={n}"], key)
                n += 1
                time.sleep(0.25)
            # until a worker that did not find the refusal has met a spelling of 105
            batches = push_batches_until(redis_server.url, lambda: _stopped_elsewhere(workers.audit_files()),
                                         at_least=6, keys=keys[1:])
            codes = workers.wait()
        finally:
            workers.kill()
    log = people.describe()
    assert codes == [0, 0, 0], workers.describe()
    files = workers.audit_files()
    lines = {f: [json.loads(line) for line in f.read_text().splitlines()] for f in files}
    found = [(e["time"], f) for f, entries in lines.items() for e in entries if e.get("event") == "refusal-found"]
    assert found, log
    found_at = min(datetime.fromisoformat(t).timestamp() for t, _ in found)
    late = [round(t - found_at, 3) for t in people.times_served("105") if t > found_at + 1.0]
    assert not late, (late, log)
    assert len(people.times_served("101")) == batches, log  # the crawl went on: every batch's 101 was fetched
    assert _stopped_elsewhere(files), "a worker that never read the page denied 105 for the refusal"
    _merge_and_verify(files)


@deferred_f_from_coro_f
async def test_a_refusal_published_by_one_worker_reaches_another_within_a_second(
        redis_server: RedisServer) -> None:
    publisher, follower = SharedState(redis_server.url), SharedState(redis_server.url)
    feed = RefusalFeed(follower)
    try:
        await feed.ready()
        assert not feed.refused("people", "105")
        published = time.monotonic()
        assert await publish_refusal(publisher, "people", "105", {"url": "http://people.example/u/105"})
        assert not await publish_refusal(publisher, "people", "105", {"url": "again"})
        while not feed.refused("people", "105"):
            assert time.monotonic() - published < 1.0, "the refusal did not arrive within a second"
            await asyncio.sleep(0.01)
        late = RefusalFeed(SharedState(redis_server.url))  # a worker started later reads the set
        await late.ready()
        assert late.refused("people", "105")
        await late.stop()
        assert await feed.check("people", "105") and not await feed.check("people", "101")
        redis_server.stop()  # the feed goes silent: within a second every person is refused, none is let through
        stopped = time.monotonic()
        with pytest.raises(SharedStateUnavailable):
            while time.monotonic() - stopped < 1.0:
                assert not await feed.check("people", "101")
                await asyncio.sleep(0.02)
    finally:
        await feed.stop()
        await publisher.close()
        await follower.close()


# -- canonical duplicates ----------------------------------------------------------------------------------------


def test_canonical_fingerprinter_makes_each_spelling_of_a_profile_one_request(tmp_path: Path) -> None:
    write_config(tmp_path)
    fingerprinter = CanonicalRequestFingerprinter(platforms=load_platforms(tmp_path / "platforms.yaml"))

    def fp(url: str, **kwargs: Any) -> bytes:
        return fingerprinter.fingerprint(scrapy.Request(url, **kwargs))

    same = ["http://people.example/u/101", "http://www.people.example/u/101/", "http://people.example/u/%31%30%31",
            "http://PEOPLE.example:80/U/101", "http://people.example/@101", "http://people.example/profile.php?id=101"]
    assert len({fp(u) for u in same}) == 1
    others = ["http://people.example/u/102", "http://people.example/u/101/followers", "http://other.example/u/101",
              "http://people.example/u/101?tab=posts"]
    assert len({fp(u) for u in [same[0], *others]}) == 5
    assert fp(same[0], method="POST", body=b"x") != fp(same[0])


@deferred_f_from_coro_f
async def test_the_demo_crawl_with_canonical_fingerprints_fetches_each_profile_once(
        redis_server: RedisServer, server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo links each profile in five spellings (hosts, escapes, a redirect); on scrapy-redis's queue with
    the canonical fingerprinter, each person's profile page is fetched once."""
    from spiders.microblog import MicroblogSpider
    from tests.conftest import consent_settings, run_crawl

    settings = consent_settings(
        tmp_path, REQUEST_FINGERPRINTER_CLASS="consentcrawl.distributed.fingerprint.CanonicalRequestFingerprinter",
        SCHEDULER="consentcrawl.distributed.scheduler.ConsentRedisScheduler",
        DUPEFILTER_CLASS="consentcrawl.distributed.scheduler.ConsentRedisDupeFilter", REDIS_URL=redis_server.url)
    result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    pages: dict[str, int] = {}
    for request in server.requests:
        match = re.fullmatch(r"/u/([0-9]+)/?", request.decoded_path)
        if match:
            pages[match.group(1)] = pages.get(match.group(1), 0) + 1
    assert pages and set(pages.values()) == {1}, {s: n for s, n in pages.items() if n > 1}
    # the people who refused on their page (#nobot) had it fetched once, to read it, and are not collected
    refused = {e["subject"] for e in result.events if e["event"] == "refusal-found"}
    assert refused and {item["subject"] for item in result.items} == set(pages) - refused


# -- the shared parts, one at a time ------------------------------------------------------------------------------


@deferred_f_from_coro_f
async def test_shared_fetches_single_flight_across_workers_and_keep_the_failure_backoff(
        redis_server: RedisServer) -> None:
    from datetime import timedelta

    from consentcrawl.distributed.fetches import RawFetch, SharedFetches

    calls: list[str] = []

    def fetcher(status: int | None) -> Any:
        async def fetch() -> RawFetch:
            calls.append("fetch")
            await asyncio.sleep(0.2)  # the others arrive while it is in flight
            now = datetime.now(timezone.utc)
            if status is None:
                return RawFetch(False, None, b"", "http://a.example/robots.txt", (), "timeout", now)
            return RawFetch(True, status, b"User-agent: *\nDisallow: /x\n", "http://a.example/robots.txt", (), "", now)
        return fetch

    states = [SharedState(redis_server.url, prefix="t") for _ in range(3)]  # three workers
    caches = [SharedFetches(s, timedelta(seconds=60), timedelta(seconds=1), timedelta(seconds=3)) for s in states]
    try:
        got = await asyncio.gather(*(c.fetch("http://a.example/robots.txt", fetcher(200)) for c in caches))
        assert calls == ["fetch"] and len({g.to_json() for g in got}) == 1 and got[0].body.startswith(b"User")
        # a failure is kept for the retry interval, doubled for each failure in a row
        client = redis.Redis.from_url(redis_server.url)
        ttls = []
        for _ in range(3):
            await caches[0].fetch("http://b.example/robots.txt", fetcher(None))
            keys = [k for k in client.keys("t:fetch:*") if not k.endswith((b":lock", b":failures"))]
            ttls.append(max(client.pttl(k) for k in keys if client.get(k) and b"timeout" in client.get(k)))
            client.delete(*[k for k in keys if b"timeout" in (client.get(k) or b"")])  # as if it expired
        client.close()
        assert ttls[0] <= 1000 < ttls[1] <= 2000 < ttls[2] <= 3000, ttls
        redis_server.stop()
        with pytest.raises(SharedStateUnavailable):
            await caches[1].fetch("http://c.example/robots.txt", fetcher(200))
    finally:
        for state in states:
            await state.close()


@deferred_f_from_coro_f
async def test_the_shared_schedule_spaces_turns_across_workers_and_refuses_a_late_send(
        redis_server: RedisServer) -> None:
    from consentcrawl.distributed.spacing import MARGIN, SharedSpacing

    a, b = SharedState(redis_server.url, prefix="s"), SharedState(redis_server.url, prefix="s")
    try:
        spacing_a, spacing_b = SharedSpacing(a), SharedSpacing(b)
        origin = "http://people.example"
        waits = [await spacing_a.reserve(origin, 0.5), await spacing_b.reserve(origin, 0.5),
                 await spacing_a.reserve(origin, 0.5)]
        gap = 0.5 + MARGIN
        assert waits[0] == 0 and abs(waits[1] - gap) < 0.05 and abs(waits[2] - 2 * gap) < 0.05, waits
        assert await spacing_a.send(origin, 0.5) == 0  # the first turn's owner sends
        late = await spacing_b.send(origin, 0.5)  # b did not wait for its turn: refused, told how long to wait
        assert 0.4 < late <= gap, late
        assert await spacing_b.send("http://other.example", 0.5) == 0  # origins are independent
        # the script goes by its hash (EVALSHA); a server that forgot it (restarted) has it loaded again
        server = redis.Redis.from_url(redis_server.url)
        try:
            server.script_flush()
            assert await spacing_b.send("http://third.example", 0.5) == 0
            stats = server.info("commandstats")
        finally:
            server.close()
        assert "cmdstat_eval" not in stats and stats["cmdstat_evalsha"]["calls"] >= 7, stats
    finally:
        await a.close()
        await b.close()


@deferred_f_from_coro_f
async def test_the_shared_schedule_counts_the_delay_from_the_end_of_a_fetch(redis_server: RedisServer) -> None:
    """A fetch that ends late (a slow response, a request that reached the server late) moves the origin's clock
    for every worker: the next send waits the delay from that end, not from the fetch's send, as in one process."""
    from consentcrawl.distributed.spacing import MARGIN, SharedSpacing

    a, b = SharedState(redis_server.url, prefix="e"), SharedState(redis_server.url, prefix="e")
    try:
        spacing_a, spacing_b = SharedSpacing(a), SharedSpacing(b)
        origin = "http://people.example"
        assert await spacing_a.reserve(origin, 0.5) == 0 and await spacing_a.send(origin, 0.5) == 0
        await asyncio.sleep(0.4)  # a's fetch takes 0.4 s
        await spacing_a.ended(origin, 0.5)
        gap = 0.5 + MARGIN
        turn = await spacing_b.reserve(origin, 0.5)  # b's next turn counts from a's end
        assert gap - 0.05 < turn <= gap, turn
        late = await spacing_b.send(origin, 0.5)  # before its turn: refused, told to wait the rest of the gap
        assert gap - 0.1 < late <= gap, late
        await spacing_a.ended("http://other.example", None)  # no delay: nothing to keep, no call
        assert await spacing_b.send("http://other.example", 0.5) == 0
    finally:
        await a.close()
        await b.close()


@deferred_f_from_coro_f
async def test_a_fetch_holds_its_origin_in_the_shared_schedule_until_it_ends_or_its_hold_lapses(
        redis_server: RedisServer) -> None:
    """While a worker's fetch from an origin with a delay is going, another worker's send is told to wait (negative:
    look again), not allowed on its turn; the fetch's end frees the origin (and the delay counts from it); a request
    not sent after all frees it at once; a worker killed mid-fetch holds it only for the fetch's download timeout."""
    from consentcrawl.distributed.spacing import MARGIN, SharedSpacing

    a, b = SharedState(redis_server.url, prefix="h"), SharedState(redis_server.url, prefix="h")
    try:
        spacing_a, spacing_b = SharedSpacing(a), SharedSpacing(b)
        origin, gap = "http://people.example", 0.2 + MARGIN
        assert await spacing_a.send(origin, 0.2, "a:1", 5.0) == 0
        await asyncio.sleep(gap)
        held = await spacing_b.send(origin, 0.2, "b:1", 5.0)  # its turn, but a's fetch is going
        assert -gap <= held < 0, held
        await spacing_a.ended(origin, 0.2, "a:1")
        await asyncio.wait_for(spacing_b.until_free(origin, 0.2, "b:1"), 1)
        assert 0 < await spacing_b.send(origin, 0.2, "b:1", 5.0) <= gap  # the delay counts from a's end
        await asyncio.sleep(gap)
        assert await spacing_b.send(origin, 0.2, "b:1", 5.0) == 0
        await spacing_b.free(origin, 0.2, "b:1")  # b was denied after all: not sent, a goes on its turn
        await asyncio.sleep(gap)
        assert await spacing_a.send(origin, 0.2, "a:2", 0.3) == 0  # a is killed mid-fetch: no end, no free
        started = time.monotonic()
        await asyncio.wait_for(spacing_b.until_free(origin, 0.2, "b:2"), 2)
        assert 0.3 <= time.monotonic() - started < 1.0
    finally:
        await a.close()
        await b.close()


@deferred_f_from_coro_f
async def test_a_fetch_without_a_finite_download_timeout_holds_its_origin_for_the_default(
        redis_server: RedisServer) -> None:
    """``meta["download_timeout"]`` of ``inf`` (no timeout) or ``nan``: the send raised OverflowError or ValueError
    turning the hold into Redis's milliseconds (the request failed with a raw exception, no recorded reason). The
    hold is the default one, and the fetch's end frees the origin as any other."""
    from consentcrawl.distributed.spacing import DEFAULT_HOLD, SharedSpacing, fetch_hold

    shared = SharedState(redis_server.url, prefix="inf")
    try:
        spacing = SharedSpacing(shared)
        for n, timeout in enumerate((float("inf"), float("nan"))):
            request = scrapy.Request("http://people.example/u/101", meta={"download_timeout": timeout})
            assert fetch_hold(request) == DEFAULT_HOLD
            origin = f"http://o{n}.example"
            assert await spacing.send(origin, 0.1, f"w:{n}", fetch_hold(request)) == 0
            assert await spacing.send(origin, 0.1, f"x:{n}", DEFAULT_HOLD) < 0  # held by the fetch
            await spacing.ended(origin, 0.1, f"w:{n}")
    finally:
        await shared.close()
