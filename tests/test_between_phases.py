"""What changes between the request phase and send time is honoured at send time: a store change, a new
robots.txt, a refusal found on a page, a grant's expiry, a ``Host`` header or ``consentcrawl_subject`` set by a
downloader middleware after the request phase.

Each case runs the two phases of one runtime on one request object, as the downloader middleware and the
send-time handler call them. A guard for any reuse of the request phase's decision at send time (one was measured
and not kept: benchmarks/RESULTS.md, 2026-12-01): such a reuse must fail each of these cases when its validity
check is left out, as the measured one did. Crawls judged by the server's log: ``tests/test_send_time.py``,
``tests/test_live_stores.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from scrapy import Request
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.test import get_crawler

from consentcrawl.audit.log import read_decisions
from consentcrawl.consent.adapt import as_async_store
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.store import MemoryStore
from consentcrawl.meta_keys import META_SUBJECT
from consentcrawl.refusals.book import Refusal
from consentcrawl.robots.fetch import from_response as robots_file
from consentcrawl.robots.signalfetch import site_file_urls
from consentcrawl.runtime import ConsentRuntime, get_runtime
from consentcrawl.signals.fetch import from_response as signal_file
from spiders.microblog import MicroblogSpider
from tests.conftest import consent_settings

ORIGIN = "http://microblog.example"
URL = f"{ORIGIN}/u/3001"
NOW = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
EXPIRES = NOW + timedelta(minutes=5)


def _runtime(tmp_path: Path, store: MemoryStore) -> ConsentRuntime:
    """A runtime whose store is ``store`` (its configured file is an empty one: not read for a decision here)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    empty = tmp_path / "authorizations.yaml"
    empty.write_text("authorizations: []\n", encoding="utf-8")
    crawler = get_crawler(MicroblogSpider, consent_settings(tmp_path, CONSENTCRAWL_NOW=NOW.isoformat(),
                                                            CONSENTCRAWL_AUTHORIZATIONS=str(empty)))
    runtime = get_runtime(crawler)
    assert runtime is not None
    runtime.decider.store = as_async_store(store)
    _robots(runtime, b"User-agent: *\nAllow: /\n")
    return runtime


def _robots(runtime: ConsentRuntime, body: bytes) -> None:
    """A robots.txt (a new file object) and no signal files, in force for the origin from now."""
    now = runtime.config.now()
    robots = runtime.robots.cache.put(origin=ORIGIN, file=robots_file(f"{ORIGIN}/robots.txt", 200, body, now),
                                      now=now)
    for signal, url in site_file_urls(ORIGIN, robots, runtime.site_signals.conservative):
        file = signal_file(signal, url, 404, b"", now)
        runtime.site_signals.cache.put(file, now)
        runtime.site_signals._files[url] = file  # as a fetch leaves it for the send-time decision


def _grant(revoked: datetime | None = None) -> AuthorizationRecord:
    return AuthorizationRecord("microblog", "3001", frozenset({"research"}), granted_at=NOW - timedelta(days=30),
                               expires_at=EXPIRES, revoked_at=revoked, evidence="consent form T-1",
                               source="test#1")


def _withdraw(runtime: ConsentRuntime, store: MemoryStore, request: Request) -> None:
    store.add(_grant(revoked=NOW))


def _new_robots(runtime: ConsentRuntime, store: MemoryStore, request: Request) -> None:
    _robots(runtime, b"User-agent: *\nDisallow: /u/\n")


def _refused(runtime: ConsentRuntime, store: MemoryStore, request: Request) -> None:
    runtime.engine.refusals.add(Refusal("microblog", "3001", URL, "hashtag.nobot", "h-card p-note", "#nobot",
                                        frozenset({"research"}), NOW, "e" * 32))


def _expired(runtime: ConsentRuntime, store: MemoryStore, request: Request) -> None:
    runtime.config.fixed_now = EXPIRES  # the grant's expiry passes while the request waits in its slot


def _host_header(runtime: ConsentRuntime, store: MemoryStore, request: Request) -> None:
    request.headers[b"Host"] = b"elsewhere.example"  # a downloader middleware after the request phase


def _meta_subject(runtime: ConsentRuntime, store: MemoryStore, request: Request) -> None:
    request.meta[META_SUBJECT] = "microblog:3002"


CHANGES: dict[str, tuple[Callable[[ConsentRuntime, MemoryStore, Request], None], str]] = {
    "withdrawal in the store": (_withdraw, "subject.revoked"),
    "a new robots.txt": (_new_robots, "robots.disallowed"),
    "a refusal found on a page": (_refused, "subject.refused-on-page"),
    "the grant expired": (_expired, "subject.expired"),
    "a Host header set by a later middleware": (_host_header, "subject.mismatch"),
    "meta naming another person set by a later middleware": (_meta_subject, "subject.mismatch"),
}


async def _two_phases(tmp_path: Path, change: Callable[..., None] | None) -> tuple[Any, Any, list[dict[str, Any]]]:
    store = MemoryStore([_grant()])
    runtime = _runtime(tmp_path, store)
    request = Request(URL)
    try:
        before = await runtime.prefilter(request)
        if change is not None:
            change(runtime, store, request)
        sent = await runtime.decide_send(request)
    finally:
        runtime.audit.close()
    return before, sent, [e for e in read_decisions(tmp_path / "audit.jsonl") if e["phase"] == "request"]


@deferred_f_from_coro_f
async def test_an_unchanged_request_is_allowed_at_send_time_with_one_line(tmp_path: Path) -> None:
    """The control: without a change, the same person is allowed at both phases; only the send time writes."""
    before, sent, lines = await _two_phases(tmp_path, None)
    assert before.reason == sent.reason == "subject.authorized"
    assert [e["decision_id"] for e in lines] == [sent.decision_id]  # one line, at send time
    assert lines[0]["time"] == NOW.isoformat()


@pytest.mark.parametrize("what", list(CHANGES))
@deferred_f_from_coro_f
async def test_a_change_between_the_phases_is_decided_at_send_time(tmp_path: Path, what: str) -> None:
    change, reason = CHANGES[what]
    before, sent, lines = await _two_phases(tmp_path, change)
    assert before.allowed
    assert not sent.allowed and sent.reason == reason
    assert sent.decision_id != before.decision_id
    assert [(e["decision_id"], e["reason"]) for e in lines] == [(sent.decision_id, reason)]


@deferred_f_from_coro_f
async def test_a_report_mode_deny_is_decided_again_at_send_time_with_its_own_line(tmp_path: Path) -> None:
    store = MemoryStore()  # nobody's grant
    crawler = get_crawler(MicroblogSpider, consent_settings(tmp_path, CONSENTCRAWL_NOW=NOW.isoformat(),
                                                            CONSENTCRAWL_MODE="report"))
    runtime = get_runtime(crawler)
    assert runtime is not None
    runtime.decider.store = as_async_store(store)
    _robots(runtime, b"User-agent: *\nAllow: /\n")
    request = Request(URL)
    try:
        before = await runtime.prefilter(request)
        sent = await runtime.decide_send(request)
        again = await runtime.decide_send(request)  # a second send of the same object: decided again
    finally:
        runtime.audit.close()
    assert before.reason == sent.reason == again.reason == "subject.no-authorization"
    assert len({before.decision_id, sent.decision_id, again.decision_id}) == 3
    lines = [e["decision_id"] for e in read_decisions(tmp_path / "audit.jsonl") if e["phase"] == "request"]
    assert lines == [before.decision_id, sent.decision_id, again.decision_id]


# --------------------------------------------------------------------------- a request's facts read again at each phase


@contextmanager
def _opened(path: Path) -> Iterator[ConsentRuntime]:
    runtime = _runtime(path, MemoryStore([_grant()]))
    try:
        yield runtime
    finally:
        runtime.audit.close()


def _set(name: str, value: bytes) -> Callable[[Request], None]:
    def change(request: Request) -> None:
        request.headers[name] = value
    return change


def _set_meta(key: str, value: Any) -> Callable[[Request], None]:
    def change(request: Request) -> None:
        request.meta[key] = value
    return change


def _set_body(request: Request) -> None:
    request._set_body(b"next=microblog.example/u/3002")  # a downloader middleware rewriting the body in place


def _set_url(request: Request) -> None:
    request._set_url(f"{ORIGIN}/u/3002")  # in place, as a middleware reaching into the request could


#: each input the facts are read from, changed on the same request object between two phases
FACT_CHANGES: dict[str, Callable[[Request], None]] = {
    "URL": _set_url,
    "Host": _set(b"Host", b"elsewhere.example"),
    "Host, spelled in lower case": _set(b"host", b"elsewhere.example"),
    "Cookie": _set(b"Cookie", b"next=microblog.example/u/3002"),
    "a rewrite header": _set(b"X-Original-URL", b"/u/3002"),
    "a framing header": _set(b"Transfer-Encoding", b"chunked"),
    "meta subject": _set_meta(META_SUBJECT, "microblog:3002"),
    "proxy": _set_meta("proxy", "http://[unreadable"),
    "body": _set_body,
}


@pytest.mark.parametrize("what", list(FACT_CHANGES))
def test_a_requests_facts_are_read_again_when_an_input_changed_between_phases(tmp_path: Path, what: str) -> None:
    """A request read at one phase, changed, and read again: the facts (and the person named) are those of the
    changed request, as a runtime that never read it makes them. A guard for any reuse of a request's facts from one
    phase to the next (one was measured and not kept: benchmarks/RESULTS.md, 2026-12-01, branch percall): each case
    failed against it with the input left out of its validity rule."""
    request = Request(URL, method="POST")
    with _opened(tmp_path) as runtime, _opened(tmp_path / "fresh") as never_read:
        first, _ = runtime.facts_for(request, request.url, NOW)
        FACT_CHANGES[what](request)
        again, _ = runtime.facts_for(request, request.url, NOW)
        fresh, _ = never_read.facts_for(request, request.url, NOW)
        assert fresh is not None and again == fresh and again != first
        person = (fresh.platform.name, fresh.subject) if fresh.platform is not None and fresh.subject else None
        assert runtime.person_of(request) == person
