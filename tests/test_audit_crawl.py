"""The audit log in a real crawl: evidence reaches the file before what it justifies happens, and a link denied
again and again is one decision, not a line per repeat."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.audit.chain import line_hash, seal, verify
from consentcrawl.audit.log import read_decisions
from consentcrawl.urls import canonical_url
from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from spiders.microblog import MicroblogSpider
from tests.conftest import consent_settings, run_crawl


class CheckingSite:
    """The demo site, which reads the audit log before answering a profile: is this fetch already accounted for?"""

    def __init__(self, site: MicroblogSite, audit: Path) -> None:
        self.site = site
        self.audit = audit
        self.checked: list[str] = []
        self.unaccounted: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.path.startswith("/u/"):
            url = canonical_url(request.url)
            on_disk = {e["canonical_url"] for e in read_decisions(self.audit) if e["phase"] == "request"}
            with self._lock:
                self.checked.append(url)
                if url not in on_disk:
                    self.unaccounted.append(url)
        return self.site(request, headers)


class CheckingPipeline:
    """A pipeline after the guard: each item it receives must already have its item-phase line on disk."""

    audit: Path = Path()
    seen: dict[str, int] = {}
    unaccounted: list[str] = []

    def process_item(self, item: Any) -> Any:
        subject = str(item["subject"])
        self.seen[subject] = self.seen.get(subject, 0) + 1
        lines = [e for e in read_decisions(self.audit) if e["phase"] == "item" and e["subject"] == subject]
        if len(lines) < self.seen[subject]:
            self.unaccounted.append(subject)
        return item


@pytest.mark.parametrize("mode", ["enforce", "report"])
@deferred_f_from_coro_f
async def test_evidence_is_on_disk_before_the_fetch_and_before_the_pipelines(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    audit = tmp_path / "audit.jsonl"
    # report mode fetches every person (and the site re-reads the growing log at each fetch): half the people
    # still give it far more fetches and items than the checks below ask for
    app = CheckingSite(MicroblogSite(n_profiles=60 if mode == "enforce" else 30), audit)
    monkeypatch.setattr(CheckingPipeline, "audit", audit)
    monkeypatch.setattr(CheckingPipeline, "seen", {})
    monkeypatch.setattr(CheckingPipeline, "unaccounted", [])
    settings = consent_settings(tmp_path, CONSENTCRAWL_MODE=mode, LOG_LEVEL="INFO",
                                ITEM_PIPELINES={f"{__name__}.CheckingPipeline": 500})
    with LocalServer(app) as server:
        result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert len(app.checked) >= 20 and app.unaccounted == []
    assert sum(CheckingPipeline.seen.values()) == len(result.items) >= 10
    assert CheckingPipeline.unaccounted == []
    # and nothing waiting in memory was lost at close: every decision counted is in the file
    stats = result.consent_stats()
    audited = [e for e in result.audit if e["phase"] != "item"]
    assert stats.get("consentcrawl/allowed", 0) + stats["consentcrawl/denied"] == len(audited)


@deferred_f_from_coro_f
async def test_a_link_denied_again_is_the_same_decision_not_a_new_line(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = await run_crawl(MicroblogSpider, consent_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    scheduled = [e for e in result.audit if e["phase"] == "schedule"]
    urls = [e["url"] for e in scheduled]
    assert len(scheduled) > 50 and len(urls) == len(set(urls))  # one line per denied URL, however often linked
    repeats = result.stats["consentcrawl/schedule/repeated"]
    assert repeats > 50  # the demo links people from several pages: the repeats really happened
    # the stats count decisions, like the log: a repeat is neither a new allow nor a new deny
    assert result.stats["consentcrawl/denied"] == sum(e["verdict"] == "deny" for e in result.audit
                                                       if e["phase"] != "item")


def test_audit_lines_that_let_nothing_happen_wait_for_the_next_one_that_does(tmp_path: Path) -> None:
    from consentcrawl.audit.log import AuditLog
    from consentcrawl.decision import Stage, deny
    from tests.test_policy import NOW

    log = AuditLog(tmp_path / "audit.jsonl")
    log.record(deny(Stage.SUBJECT, "subject.no-authorization"), time=NOW, phase="schedule", durable=False)
    log.record(deny(Stage.SUBJECT, "subject.purpose"), time=NOW, phase="schedule", durable=False)
    assert log.pending == 2 and read_decisions(tmp_path / "audit.jsonl") == []
    log.record(deny(Stage.ROBOTS, "robots.disallowed"), time=NOW, phase="request", durable=True)
    assert log.pending == 0
    assert [e["reason"] for e in read_decisions(tmp_path / "audit.jsonl")] == [
        "subject.no-authorization", "subject.purpose", "robots.disallowed"]
    log.record(deny(Stage.SUBJECT, "subject.expired"), time=NOW, phase="schedule", durable=False)
    log.close()
    assert read_decisions(tmp_path / "audit.jsonl")[-1]["reason"] == "subject.expired"


def test_a_failed_write_keeps_the_waiting_lines_for_the_next_try(tmp_path: Path) -> None:
    """ENOSPC on a durable write raises (the caller denies, so that line is dropped); the lines waiting before it
    are written once the file takes writes again."""
    from consentcrawl.audit.log import AuditLog
    from consentcrawl.decision import Stage, deny
    from consentcrawl.errors import AuditUnavailable
    from tests.test_policy import NOW

    log = AuditLog(tmp_path / "audit.jsonl")
    real = log._file
    log._file = open("/dev/full", "wb", buffering=0)
    log.record(deny(Stage.SUBJECT, "subject.purpose"), time=NOW, phase="schedule", durable=False)
    with pytest.raises(AuditUnavailable, match="cannot write the audit log"):
        log.record(deny(Stage.ROBOTS, "robots.disallowed"), time=NOW, phase="request", durable=True)
    assert log.pending == 1  # the waiting line's bytes, kept
    log._file.close()
    log._file = real
    log.flush()
    log.close()
    assert [e["reason"] for e in read_decisions(tmp_path / "audit.jsonl")] == ["subject.purpose"]


class LinkThroughRedirectSpider(MicroblogSpider):
    """Links (from a callback) to allowed-looking URLs that redirect to a person without authorization.

    The target is given as a path: an absolute profile URL in the query is that person's page already
    (:mod:`consentcrawl.resolve`), and is denied before the redirect is fetched."""

    name = "link-through-redirect"
    targets: tuple[str, ...] = ()

    def parse(self, response: Any) -> Any:
        for target in self.targets:
            yield response.follow(f"http://m.microblog.example/go?to={urlsplit(target).path}",
                                  callback=self.parse_target)

    def parse_target(self, response: Any) -> Any:
        """The target's item, and none of its links: report mode fetches what they lead to (the whole site)."""
        yield next(iter(self.parse_profile(response)))


@pytest.mark.parametrize("mode", ["enforce", "report"])
@deferred_f_from_coro_f
async def test_a_redirect_from_a_checked_link_is_checked_again_before_the_scheduler(
    mode: str, server: LocalServer, site: MicroblogSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Links are checked in the spider middleware and marked with their URL; the redirect's new request carries
    the mark (Scrapy copies meta) but another URL, so the scheduling guard decides it before it is queued."""
    from tests.test_crawl_e2e import live_research_subjects

    denied = sorted(set(site.subject_ids) - live_research_subjects())[:3]
    targets = tuple(f"http://m.microblog.example/u/{subject}" for subject in denied)
    monkeypatch.setattr(LinkThroughRedirectSpider, "targets", targets)
    settings = consent_settings(tmp_path, CONSENTCRAWL_MODE=mode)
    result = await run_crawl(LinkThroughRedirectSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert sum(r.path == "/go" for r in server.requests) == len(targets)  # the links were allowed and followed
    scheduled = {e["url"]: e for e in result.audit if e["phase"] == "schedule"}
    for target in targets:
        assert scheduled[target]["verdict"] == "deny", target  # decided when the redirect scheduled it
    fetched = {r.url for r in server.requests}
    if mode == "enforce":
        assert not fetched & set(targets) and result.items == []
        assert not [e for e in result.audit if e["phase"] == "request" and e["url"] in targets]
        # the last held-back request denied, the crawl closes at once (not at the engine's 5-second heartbeat)
        last = max(datetime.fromisoformat(e["time"]) for e in result.audit)
        idle = (result.stats["finish_time"] - last).total_seconds()
        assert idle < 2.5, f"the crawl closed {idle:.1f} s after its last decision"
    else:  # report mode drops nothing: the same decisions, and the fetch is recorded too
        assert set(targets) <= fetched


@deferred_f_from_coro_f
async def test_a_group_write_that_fails_is_counted_and_the_next_allow_is_denied(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """The end-of-turn write of waiting deny lines fails (ENOSPC): counted and logged, nothing raised into the
    event loop; the lines stay waiting, so the next allow cannot be written either and becomes a deny."""
    import asyncio

    from scrapy.utils.test import get_crawler

    from consentcrawl.decision import Decision, Stage, Verdict, deny
    from consentcrawl.runtime import get_runtime

    crawler = get_crawler(MicroblogSpider, consent_settings(tmp_path))
    runtime = get_runtime(crawler)
    assert runtime is not None
    real = runtime.audit._file
    runtime.audit._file = open("/dev/full", "wb", buffering=0)

    with caplog.at_level("ERROR", logger="consentcrawl"):
        runtime.record(deny(Stage.SUBJECT, "subject.no-authorization"), "http://microblog.example/u/1", None,
                       "schedule")
        await asyncio.sleep(0.01)  # the end-of-turn write runs (and fails) here
    assert crawler.stats.get_value("consentcrawl/audit/write_errors") == 1
    assert any("cannot write the audit log" in r.getMessage() for r in caplog.records)
    assert runtime.audit.pending == 1
    allowed = runtime.record(Decision(Verdict.ALLOW, Stage.SUBJECT, "subject.authorized"),
                             "http://microblog.example/u/2", None, "request")
    assert allowed.reason == "error.audit-unavailable"
    runtime.audit._file.close()
    runtime.audit._file = real
    runtime.end_of_turn()
    runtime.audit.close()
    assert [e["reason"] for e in read_decisions(tmp_path / "audit.jsonl")] == [
        "subject.no-authorization", "error.audit-unavailable"]


class UnreadableLinksSpider(MicroblogSpider):
    """A start request and a link whose URLs Scrapy accepts but whose host is not a valid host name."""

    name = "unreadable-links"

    async def start(self) -> Any:
        async for request in super().start():
            yield request
        yield scrapy.Request("http://1.2.3.4.5/u/1002", callback=self.parse_profile)

    def parse(self, response: Any) -> Any:
        yield response.follow("http://a..b/u/1001", callback=self.parse_profile)


@deferred_f_from_coro_f
async def test_a_url_we_cannot_read_is_denied_and_recorded_wherever_it_is_checked(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both scheduling checks (the spider middleware for links, request_scheduled for start requests) deny an
    URL they cannot canonicalise with error.bad-url, say why in the evidence, and nothing is fetched."""
    result = await run_crawl(UnreadableLinksSpider, consent_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    bad = {e["url"]: e for e in result.audit if e["reason"] == "error.bad-url"}
    assert set(bad) == {"http://1.2.3.4.5/u/1002", "http://a..b/u/1001"}
    for entry in bad.values():
        assert entry["phase"] == "schedule" and entry["verdict"] == "deny" and entry["stage"] == "error"
        assert entry["evidence"][0]["error"] == "ValueError" and "host" in entry["evidence"][0]["message"]
    assert result.stats["consentcrawl/denied/error/bad-url"] == 2
    assert not {r.host for r in server.requests} & {"1.2.3.4.5", "a..b"}


def test_a_queued_line_is_written_with_its_group_and_only_then_counts_as_written(tmp_path: Path) -> None:
    """Group commit: queued lines reach the file together at the next flush; until then their tickets say no."""
    from consentcrawl.audit.log import AuditLog
    from consentcrawl.decision import Decision, Stage, Verdict, deny
    from tests.test_policy import NOW

    log = AuditLog(tmp_path / "audit.jsonl")
    allow = Decision(Verdict.ALLOW, Stage.SUBJECT, "subject.authorized")
    first = log.queue(allow, time=NOW, phase="request", url="http://microblog.example/u/1")
    log.record(deny(Stage.SUBJECT, "subject.purpose"), time=NOW, phase="schedule", durable=False)
    second = log.queue(allow, time=NOW, phase="item", url="http://microblog.example/u/1")
    assert not log.written(first) and not log.written(second)
    assert read_decisions(tmp_path / "audit.jsonl") == []
    log.flush()
    assert log.written(first) and log.written(second)
    assert [e["phase"] for e in read_decisions(tmp_path / "audit.jsonl")] == ["request", "schedule", "item"]
    assert log.count == 4  # and the chain-start line
    log.close()
    assert AuditLog(None).queue(allow, time=NOW, phase="request") is None  # no log: nothing to wait for


def test_a_failed_group_write_withdraws_the_lines_decisions_wait_for(tmp_path: Path) -> None:
    """ENOSPC: the lines whose decisions wait are withdrawn (those decisions will not stand), the rest stay."""
    from consentcrawl.audit.log import AuditLog
    from consentcrawl.decision import Decision, Stage, Verdict, deny
    from consentcrawl.errors import AuditUnavailable
    from tests.test_policy import NOW

    log = AuditLog(tmp_path / "audit.jsonl")
    real = log._file
    log._file = open("/dev/full", "wb", buffering=0)
    allow = Decision(Verdict.ALLOW, Stage.SUBJECT, "subject.authorized")
    ticket = log.queue(allow, time=NOW, phase="request", url="http://microblog.example/u/1")
    log.record(deny(Stage.SUBJECT, "subject.purpose"), time=NOW, phase="schedule", durable=False)
    with pytest.raises(AuditUnavailable, match="No space left"):
        log.flush()
    assert not log.written(ticket) and log.pending == 1
    assert log.error is not None and "No space left" in log.error
    log._file.close()
    log._file = real
    log.close()
    assert [e["phase"] for e in read_decisions(tmp_path / "audit.jsonl")] == ["schedule"]


def test_a_line_the_file_took_part_of_is_finished_but_its_decision_does_not_stand(tmp_path: Path) -> None:
    """A real short write (the file size limit, RLIMIT_FSIZE, reached inside a line): the lines before it are
    written, the torn line is finished by the next write so the log stays whole JSON lines, and its ticket fails."""
    import resource

    from consentcrawl.audit.log import AuditLog
    from consentcrawl.decision import Decision, Stage, Verdict, deny
    from consentcrawl.errors import AuditUnavailable
    from tests.test_policy import NOW

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    allow = Decision(Verdict.ALLOW, Stage.SUBJECT, "subject.authorized")
    before = log.queue(allow, time=NOW, phase="request", url="http://microblog.example/u/1")
    torn = log.queue(allow, time=NOW, phase="request", url="http://microblog.example/u/2")
    log.record(deny(Stage.SUBJECT, "subject.purpose"), time=NOW, phase="schedule", durable=False)
    after = log.queue(allow, time=NOW, phase="item", url="http://microblog.example/u/1")
    start = path.stat().st_size  # the chain-start line
    first_line = start + len(seal(log._pending[0][:-2], log.seq + 1, log.end))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (first_line + 40, hard))  # Python ignores SIGXFSZ: EFBIG instead
    try:
        with pytest.raises(AuditUnavailable, match="too large"):
            log.flush()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert path.stat().st_size == first_line + 40
    assert log.written(before) and not log.written(torn) and not log.written(after)
    assert log.pending == 2  # the torn line's rest, and the line that lets nothing happen
    log.close()
    entries = read_decisions(path)  # every line whole JSON
    assert [(e["phase"], e["url"]) for e in entries] == [
        ("request", "http://microblog.example/u/1"), ("request", "http://microblog.example/u/2"),
        ("schedule", None)]
    assert log.count == 5  # with the chain-start and chain-end lines
    assert verify(path).ok  # the torn line, finished, is sealed where it began


@deferred_f_from_coro_f
async def test_decisions_of_one_turn_wait_for_one_write_and_a_failed_one_denies_them_all(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """The request and item phases wait for the end-of-turn write: none returns before its line is in the file,
    the turn's lines go out together, and when that write fails every allow waiting for it becomes a deny."""
    import asyncio

    from scrapy.utils.test import get_crawler

    from consentcrawl.decision import Decision, Stage, Verdict
    from consentcrawl.runtime import get_runtime

    crawler = get_crawler(MicroblogSpider, consent_settings(tmp_path))
    runtime = get_runtime(crawler)
    assert runtime is not None
    path = tmp_path / "audit.jsonl"
    allow = Decision(Verdict.ALLOW, Stage.SUBJECT, "subject.authorized", subject="1", platform="microblog")
    on_disk: list[int] = []

    async def decide(url: str, phase: str) -> Decision:
        decision = await runtime.record_grouped(allow, url, url, phase)
        on_disk.append(len(read_decisions(path)))
        return decision

    urls = [f"http://m.microblog.example/u/{n}" for n in range(1, 4)]
    phases = ["request", "item", "request"]
    decided = await asyncio.gather(*(decide(url, phase) for url, phase in zip(urls, phases, strict=True)))
    assert [d.reason for d in decided] == ["subject.authorized"] * 3
    assert on_disk == [3, 3, 3]  # each returned with all three lines written: one group
    runtime.end_of_turn()
    assert crawler.stats.get_value("consentcrawl/allowed") == 2
    assert crawler.stats.get_value("consentcrawl/items/allowed") == 1

    real = runtime.audit._file
    runtime.audit._file = open("/dev/full", "wb", buffering=0)
    with caplog.at_level("ERROR", logger="consentcrawl"):
        decided = await asyncio.gather(*(runtime.record_grouped(allow, url, url, "request") for url in urls[:2]))
    assert [d.reason for d in decided] == ["error.audit-unavailable"] * 2
    assert all("No space left" in d.evidence[-1].detail["message"] for d in decided)
    messages = [r.getMessage() for r in caplog.records]
    assert "cannot write" in messages[0] and not messages[0].endswith("denying")  # one write, for both
    assert sum(m.endswith("; denying") for m in messages) == 2
    runtime.end_of_turn()  # (their deny lines wait: this write fails too, and is counted too)
    assert crawler.stats.get_value("consentcrawl/audit/write_errors") >= 2
    assert crawler.stats.get_value("consentcrawl/denied/error/audit-unavailable") == 2
    runtime.audit._file.close()
    runtime.audit._file = real
    runtime.end_of_turn()
    runtime.audit.close()
    assert [e["reason"] for e in read_decisions(path)][3:] == ["error.audit-unavailable"] * 2


@deferred_f_from_coro_f
async def test_after_the_audit_log_is_closed_an_allow_becomes_a_deny(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """A closed log is not a crawl without a log: a decision that needs its line first is denied, both ways it can
    be recorded, and counted; a crawl configured without a log still records nothing and allows."""
    from scrapy.utils.test import get_crawler

    from consentcrawl.audit.log import AuditLog
    from consentcrawl.decision import Decision, Stage, Verdict
    from consentcrawl.errors import AuditUnavailable
    from consentcrawl.runtime import get_runtime
    from tests.test_policy import NOW

    allow = Decision(Verdict.ALLOW, Stage.SUBJECT, "subject.authorized", subject="1", platform="microblog")
    log = AuditLog(tmp_path / "closed.jsonl")
    log.close()
    with pytest.raises(AuditUnavailable, match="is closed"):
        log.queue(allow, time=NOW, phase="request")
    with pytest.raises(AuditUnavailable, match="is closed"):
        log.record(allow, time=NOW, phase="request", durable=True)
    assert AuditLog(None).queue(allow, time=NOW, phase="request") is None  # no log configured: nothing to wait for

    crawler = get_crawler(MicroblogSpider, consent_settings(tmp_path))
    runtime = get_runtime(crawler)
    assert runtime is not None
    runtime.audit.close()
    url = "http://m.microblog.example/u/1"
    with caplog.at_level("ERROR", logger="consentcrawl"):
        grouped = await runtime.record_grouped(allow, url, url, "item")
        single = runtime.record(allow, url, url, "request")
    assert grouped.reason == single.reason == "error.audit-unavailable"
    assert "is closed" in grouped.evidence[-1].detail["message"]
    assert sum("is closed; denying" in r.getMessage() for r in caplog.records) == 2
    runtime.end_of_turn()
    assert crawler.stats.get_value("consentcrawl/audit/write_errors") == 2
    assert crawler.stats.get_value("consentcrawl/items/denied/error/audit-unavailable") == 1
    assert crawler.stats.get_value("consentcrawl/denied/error/audit-unavailable") == 1


def test_an_event_line_is_on_disk_when_event_returns_and_a_closed_log_refuses_it(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from consentcrawl.audit.log import AuditLog, read_audit_log
    from consentcrawl.errors import AuditUnavailable

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, sync=False)
    when = datetime(2026, 12, 1, tzinfo=timezone.utc)
    log.event("withdrawal-seen", {"platform": "microblog", "subject": "101"}, time=when)
    entries = read_audit_log(path)
    assert [e["event"] for e in entries] == ["chain-start", "withdrawal-seen"]
    assert entries[1] == {"event": "withdrawal-seen", "time": when.isoformat(), "platform": "microblog",
                          "subject": "101", "seq": 2, "prev": line_hash(path.read_bytes().splitlines(True)[0])}
    log.close()
    with pytest.raises(AuditUnavailable):
        log.event("withdrawal-seen", {"platform": "microblog", "subject": "102"}, time=when)


@deferred_f_from_coro_f
async def test_report_mode_request_phase_denies_are_on_disk_first_and_share_one_write(tmp_path: Path) -> None:
    """In report mode a request-phase deny lets the request go on, so its line is in the file when the pre-filter
    returns; the denies of one event-loop turn go out in one write (group commit), like the send-time lines."""
    import asyncio

    from scrapy import Request
    from scrapy.utils.test import get_crawler

    from consentcrawl.robots.fetch import from_response as robots_file
    from consentcrawl.robots.signalfetch import site_file_urls
    from consentcrawl.runtime import get_runtime
    from consentcrawl.signals.fetch import from_response as signal_file

    crawler = get_crawler(MicroblogSpider, consent_settings(tmp_path, CONSENTCRAWL_MODE="report"))
    runtime = get_runtime(crawler)
    assert runtime is not None
    now = runtime.config.now()
    origin = "http://microblog.example"
    robots = runtime.robots.cache.put(origin, robots_file(f"{origin}/robots.txt", 200, b"User-agent: *\nAllow: /\n",
                                                          now), now)
    for signal, url in site_file_urls(origin, robots, runtime.site_signals.conservative):
        runtime.site_signals.cache.put(signal_file(signal, url, 404, b"", now), now)  # the origin publishes none
    writes: list[int] = []
    write = runtime.audit._write

    def counted() -> None:
        writes.append(len(runtime.audit._pending))
        write()

    runtime.audit._write = counted  # type: ignore[method-assign]
    urls = [f"{origin}/u/{person}" for person in ("2001", "2002", "2003")]  # nobody's grant
    try:
        decisions = await asyncio.gather(*(runtime.prefilter(Request(url)) for url in urls))
        during = list(writes)
    finally:
        runtime.audit.close()
    assert [d.reason for d in decisions] == ["subject.no-authorization"] * 3
    assert not any(runtime.drops(d) for d in decisions)  # report mode: the requests go on
    written = [e for e in read_decisions(tmp_path / "audit.jsonl") if e["phase"] == "request"]
    assert sorted(e["url"] for e in written) == urls  # in the file when prefilter returned
    assert during == [3]  # one write for the three lines


def test_a_group_write_failing_otherwise_than_by_the_os_withdraws_its_lines_too(tmp_path: Path) -> None:
    """A write that fails with something other than an OS error (here the file object closed under the log; a bug
    would do the same) loses the group: the decisions waiting for its lines must not stand, also after a later
    write succeeds (tickets settle in order, so a lost ticket not marked failed would read as written)."""
    from consentcrawl.audit.log import AuditLog
    from consentcrawl.decision import Decision, Stage, Verdict
    from consentcrawl.errors import AuditUnavailable
    from tests.test_policy import NOW

    log = AuditLog(tmp_path / "audit.jsonl")
    real = log._file
    closed = open(tmp_path / "elsewhere", "wb")  # closed on purpose
    closed.close()
    log._file = closed
    allow = Decision(Verdict.ALLOW, Stage.SUBJECT, "subject.authorized")
    lost = log.queue(allow, time=NOW, phase="request", url="http://microblog.example/u/1")
    with pytest.raises(AuditUnavailable, match="ValueError"):
        log.flush()
    assert log.error is not None and "closed file" in log.error
    log._file = real
    later = log.queue(allow, time=NOW, phase="request", url="http://microblog.example/u/2")
    log.flush()
    assert log.written(later) and not log.written(lost)
    log.close()
    assert [e["url"] for e in read_decisions(tmp_path / "audit.jsonl")] == ["http://microblog.example/u/2"]
