"""The remote stores against real servers: the reference consent API (``consentcrawl serve-authorizations``) on
loopback and a real ``redis-server``; no mocks.

Withdrawals mid-crawl are judged by the platform server's own log (no fetch of the person more than 2 s, for Redis
1 s, after the change); the consent API down, slow and answering garbage denies with the cause and recovers; the
token is sent only when set and never appears in a log or the audit log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.audit.log import read_audit_log
from consentcrawl.cli import main
from consentcrawl.config import ConsentConfig
from consentcrawl.consent.apiserver import AuthorizationServer, Handler
from consentcrawl.consent.httpapi import HTTPConsentStore
from consentcrawl.consent.load import load_authorizations
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.errors import ConfigError, StoreUnavailable
from consentcrawl.terms.load import load_platforms
from consentcrawl.terms.platforms import PlatformRegistry
from consentcrawl_demo.server import LocalServer
from tests.lenient import Crawl, LenientPeople, make_spider, once_served, people_settings, write_config
from tests.lenient import crawl as run_crawl
from tests.redis_server import RedisServer
from tests.test_send_time import _timeline, went_on
from tests.test_store_plugin import RepeatLogic

TOKEN = "s3cr3t-t0ken-for-tests"
GRANTED = "2026-01-01T00:00:00Z"


def line(subject: str, *, revoked: bool = False, record_id: str = "") -> str:
    fields: dict[str, Any] = {"platform": "people", "subject": subject, "purposes": ["research"],
                              "granted_at": GRANTED, "evidence": "consent form"}
    if revoked:
        fields["revoked_at"] = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        fields["evidence"] = "withdrawn"
    if record_id:
        fields["record_id"] = record_id
    return json.dumps(fields) + "\n"


@pytest.fixture
def platforms(tmp_path: Path) -> PlatformRegistry:
    path, _ = write_config(tmp_path)
    return load_platforms([str(path)])


@pytest.fixture
def records(tmp_path: Path) -> Path:
    path = tmp_path / "records.jsonl"
    path.write_text("".join(line(s) for s in ("101", "102", "103", "alice")), encoding="utf-8")
    return path


def wait_until(condition: Callable[[], bool], bound: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > bound:
            pytest.fail(f"{what}: not within {bound} s")
        time.sleep(0.02)
    return time.monotonic() - start


async def await_until(condition: Callable[[], Any], bound: float, what: str) -> float:
    start = time.monotonic()
    while not await condition():
        if time.monotonic() - start > bound:
            pytest.fail(f"{what}: not within {bound} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def outcome(store: Any, subject: str) -> Any:
    try:
        return await store.lookup("people", subject)
    except StoreUnavailable as exc:
        return exc


# -- a consent API that can misbehave, and logs what it was sent ------------------------------------------------


class FaultyServer(AuthorizationServer):
    """The reference server, whose handler records the Authorization header of every request and, while
    :attr:`fault` says so, answers slowly, with garbage, a 503, a 403 or JSON of another shape."""

    fault: str | None = None
    slow = 1.5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen_auth: list[str | None] = []
        self.seen_paths: list[str] = []
        self.fail_lookups = 0  #: the next this many /v1/authorizations requests answer 503 (each a fault of its own)

    @property
    def handler_class(self) -> type[Handler]:
        server = self

        class Faulty(Handler):
            def do_GET(self) -> None:
                server.seen_auth.append(self.headers.get("Authorization"))
                server.seen_paths.append(self.path.split("?", 1)[0])
                fault = server.fault
                if server.fail_lookups and self.path.startswith("/v1/authorizations"):
                    server.fail_lookups -= 1
                    fault = "error"
                if fault == "slow":
                    time.sleep(server.slow)
                elif fault in self.FAULTS:
                    status, content_type, body = self.FAULTS[fault]
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                super().do_GET()

            #: the answers of a misbehaving API: garbage, a 5xx, a 403 (a token revoked at the CRM), JSON of
            #: another shape
            FAULTS: ClassVar[dict[str, tuple[int, str, bytes]]] = {
                "garbage": (200, "text/html", b"<html>maintenance</html>"),
                "error": (503, "text/plain", b"upstream CRM unavailable"),
                "forbidden": (403, "application/json", b'{"error": "token revoked"}'),
                "shape": (200, "application/json", b'{"records": "none", "version": 7}'),
            }

        return Faulty


@pytest.fixture
def api(records: Path, platforms: PlatformRegistry) -> Iterator[FaultyServer]:
    server = FaultyServer(load_authorizations(records, platforms), platforms, token=TOKEN)
    with server:
        yield server


def store_of(server: AuthorizationServer, platforms: PlatformRegistry, **kwargs: Any) -> HTTPConsentStore:
    kwargs.setdefault("poll", 0.05)
    kwargs.setdefault("timeout", 0.5)
    return HTTPConsentStore(server.url, platforms, **kwargs)


# -- the HTTP consent API store ------------------------------------------------------------------------------------


@deferred_f_from_coro_f
async def test_http_store_answers_caches_and_follows_the_change_feed(
        api: FaultyServer, platforms: PlatformRegistry, records: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTCRAWL_API_TOKEN", TOKEN)
    store = store_of(api, platforms)
    try:
        (grant,) = await store.lookup("people", "ALICE")  # by subject key: the same person
        assert isinstance(grant, AuthorizationRecord) and grant.subject == "alice" and grant.revoked_at is None
        assert grant.purposes == {"research"} and grant.evidence == "consent form"
        assert await store.lookup("people", "nobody") == ()
        before, lookups = store.version, store.lookups
        assert await store.lookup("people", "alice") == (grant,) and store.lookups == lookups  # from the cache
        assert store.version == before
        with records.open("a", encoding="utf-8") as f:
            f.write(line("Alice", revoked=True))
        took = await await_until(lambda: _records_of(store, "alice", 2), 2.0, "the withdrawal")
        assert took < 2.0 and store.version != before
        assert (await store.lookup("people", "alice"))[1].revoked_at is not None
        assert await store.lookup("people", "101") and store.lookups > lookups
    finally:
        await store.aclose()
    assert all(auth == f"Bearer {TOKEN}" for auth in api.seen_auth)


@deferred_f_from_coro_f
async def test_http_store_tries_a_5xx_once_more_and_then_denies(api: FaultyServer, platforms: PlatformRegistry,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """One 503 from the API is tried once more (the server's log has both requests) and the answer is used; two
    in a row fail the lookup with the cause, and nothing is remembered: the next lookup asks again."""
    monkeypatch.setenv("CONSENTCRAWL_API_TOKEN", TOKEN)
    store = store_of(api, platforms, poll=5.0)  # the feed's first poll only: the log holds the lookups
    try:
        api.fail_lookups = 1
        (grant,) = await store.lookup("people", "alice")
        assert grant.subject == "alice"
        assert api.seen_paths.count("/v1/authorizations") == 2 and api.fail_lookups == 0
        api.fail_lookups = 2
        with pytest.raises(StoreUnavailable, match="answered HTTP 503"):
            await store.lookup("people", "101")
        assert api.seen_paths.count("/v1/authorizations") == 4
        assert await store.lookup("people", "101")  # the API answers again: asked anew, and used
        assert api.seen_paths.count("/v1/authorizations") == 5
    finally:
        await store.aclose()


@deferred_f_from_coro_f
async def test_http_store_asks_a_loopback_api_directly_and_other_hosts_through_the_proxy(
        api: FaultyServer, platforms: PlatformRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the crawl's proxy in ``http_proxy`` (as the demo has it), a consent API on 127.0.0.1 is this machine's:
    the proxy's log stays empty (it would have asked its own loopback, and carried the token in clear text), the
    real API answers. A host that is not loopback goes through the proxy, as the proxy variables say."""
    def proxy_app(request: Any, headers: dict[str, str]) -> Any:
        from consentcrawl_demo.server import Response

        forged = {"version": "1", "records": [{"platform": "people", "subject": "mallory", "purposes": ["research"],
                                               "granted_at": "2026-01-01T00:00:00Z", "evidence": "forged"}]}
        if request.path == "/v1/changes":
            return Response(200, {"Content-Type": "application/json"}, json.dumps({"version": "1", "changed": []}))
        return Response(200, {"Content-Type": "application/json"}, json.dumps(forged))

    monkeypatch.setenv("CONSENTCRAWL_API_TOKEN", TOKEN)
    for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with LocalServer(proxy_app) as proxy:
        monkeypatch.setenv("http_proxy", proxy.proxy)
        store = store_of(api, platforms)
        try:
            (grant,) = await store.lookup("people", "alice")
            assert grant.evidence == "consent form" and await store.lookup("people", "mallory") == ()
        finally:
            await store.aclose()
        assert proxy.requests == [] and f"Bearer {TOKEN}" in api.seen_auth
        monkeypatch.delenv("CONSENTCRAWL_API_TOKEN")
        elsewhere = HTTPConsentStore("http://consent.example", platforms, poll=0.05, timeout=0.5)
        try:
            assert [r.evidence for r in await elsewhere.lookup("people", "mallory")] == ["forged"]
        finally:
            await elsewhere.aclose()
        assert {(r.host, r.path) for r in proxy.requests} >= {("consent.example", "/v1/authorizations")}


async def _records_of(store: Any, subject: str, count: int) -> bool:
    answer = await outcome(store, subject)
    return not isinstance(answer, StoreUnavailable) and len(answer) == count


@deferred_f_from_coro_f
async def test_http_store_token_sent_only_when_set_and_never_logged(
        records: Path, platforms: PlatformRegistry, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FaultyServer(load_authorizations(records, platforms), platforms) as open_api:  # no token required
        store = store_of(open_api, platforms)
        try:
            assert await store.lookup("people", "101")
        finally:
            await store.aclose()
        assert open_api.seen_auth and set(open_api.seen_auth) == {None}  # not set: no Authorization header
    with FaultyServer(load_authorizations(records, platforms), platforms, token=TOKEN) as api:
        store = store_of(api, platforms)  # the variable is not set: refused, and the cause says so
        try:
            refused = await outcome(store, "101")
            assert isinstance(refused, StoreUnavailable)
            assert "HTTP 401" in str(refused) and "$CONSENTCRAWL_API_TOKEN is not set" in str(refused)
        finally:
            await store.aclose()
        monkeypatch.setenv("MY_CRM_TOKEN", "wrong")
        store = store_of(api, platforms, token_env="MY_CRM_TOKEN")
        try:
            refused = await outcome(store, "101")
            assert isinstance(refused, StoreUnavailable) and "HTTP 401" in str(refused) and "wrong" not in str(refused)
        finally:
            await store.aclose()
        monkeypatch.setenv("MY_CRM_TOKEN", TOKEN)
        store = store_of(api, platforms, token_env="MY_CRM_TOKEN")
        try:
            assert await store.lookup("people", "101")
            assert TOKEN not in repr(store) and TOKEN not in str(vars(store).get("source"))
        finally:
            await store.aclose()
        assert f"Bearer {TOKEN}" in api.seen_auth
    assert "wrong" not in caplog.text and TOKEN not in caplog.text
    # the id as a number of its own: the test server's port (127.0.0.1:41017) may hold its digits
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("consentcrawl.consent")]
    assert not [m for m in logged if re.search(r"(?<!\d)101(?!\d)", m)], logged


def test_http_store_refuses_to_send_a_token_in_clear_text_off_loopback(
        platforms: PlatformRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTCRAWL_API_TOKEN", TOKEN)
    with pytest.raises(ConfigError, match="clear text") as error:
        HTTPConsentStore("http://crm.example/consent", platforms)
    assert TOKEN not in str(error.value)
    HTTPConsentStore("https://user:pw@crm.example/consent", platforms)  # https is fine
    assert HTTPConsentStore("https://user:pw@crm.example/c/", platforms).source == "https://crm.example/c"


@deferred_f_from_coro_f
async def test_http_store_fails_closed_on_5xx_and_bad_answers_and_recovers(
        api: FaultyServer, platforms: PlatformRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTCRAWL_API_TOKEN", TOKEN)
    store = store_of(api, platforms, timeout=0.3)
    try:
        assert await store.lookup("people", "101")
        version = store.version
        api.fault = "garbage"
        await await_until(lambda: _unavailable(store, "101"), 1.5, "garbage noticed")
        assert "not JSON" in str(await outcome(store, "102")) and store.version != version
        api.fault = "slow"
        await await_until(lambda: _says(store, "103", "did not answer within 0.3 s"), 2.0, "timeout noticed")
        api.fault = "error"
        await await_until(lambda: _says(store, "104", "answered HTTP 503"), 2.0, "5xx noticed")
        api.fault = "forbidden"
        await await_until(lambda: _says(store, "105", "refused us: HTTP 403; we sent a token"), 2.0, "403 noticed")
        api.fault = None
        await await_until(lambda: _records_of(store, "101", 1), 2.0, "recovery")
    finally:
        api.fault = None
        await store.aclose()


async def _unavailable(store: Any, subject: str) -> bool:
    return isinstance(await outcome(store, subject), StoreUnavailable)


async def _says(store: Any, subject: str, text: str) -> bool:
    answer = await outcome(store, subject)
    return isinstance(answer, StoreUnavailable) and text in str(answer)


def api_settings(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> dict[str, Any]:
    monkeypatch.setenv("CONSENTCRAWL_API_TOKEN", TOKEN)
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # the crawl's proxy is the platform; the consent API is not
    settings = people_settings(tmp_path, CONSENTCRAWL_AUTHORIZATIONS_POLL=0.05,
                               CONSENTCRAWL_AUTHORIZATIONS_TIMEOUT=0.3, **overrides)
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = url
    return settings


@deferred_f_from_coro_f
async def test_http_store_withdrawal_mid_crawl(api: FaultyServer, records: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = api_settings(tmp_path, api.url, monkeypatch)
    written: list[float] = []

    def withdraw() -> None:
        began.append(time.time())
        with records.open("a", encoding="utf-8") as f:
            f.write(line("101", revoked=True))
        written.append(time.time())

    began: list[float] = []
    app, result = await _crawl_withdrawing(settings, monkeypatch, withdraw)
    assert written, "the withdrawal was not made during the crawl"
    _judge(app, result, written[0], bound=2.0, began=began[0])
    assert TOKEN not in Path(settings["CONSENTCRAWL_AUDIT_LOG"]).read_text(encoding="utf-8")
    assert TOKEN not in caplog.text
    assert set(api.seen_auth) == {f"Bearer {TOKEN}"}


async def _crawl_withdrawing(settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                             withdraw: Callable[[], None]) -> tuple[LenientPeople, Crawl]:
    """A crawl of the lenient platform that calls ``withdraw`` from another thread, as an operator would, 1 s after
    the server first served 101 (not at a fixed time: on a loaded machine the crawl may start seconds late)."""
    app = LenientPeople()
    stop = threading.Event()
    done: list[float] = []

    def watch() -> None:
        deadline = time.monotonic() + 60
        while not app.times_served("101"):
            if stop.wait(0.05) or time.monotonic() > deadline:
                return
        if not stop.wait(1.0):
            withdraw()
            done.append(time.time())

    watcher = threading.Thread(target=watch, daemon=True)
    with LocalServer(app) as server:
        watcher.start()
        try:
            # the judges' bounds are at most 2 s: the crawl goes on 2 s past the latest, then stops
            result = await run_crawl(make_spider("ConsentSpider", RepeatLogic), settings, proxy=server.proxy,
                                     monkeypatch=monkeypatch, follow_links=False, enough=went_on(app, done, 2.0 + 2))
        finally:
            stop.set()
            watcher.join()
    return app, result


def _judge(app: LenientPeople, result: Any, write: float, bound: float, *, began: float) -> None:
    """The server's log: 101 fetched before the withdrawal, never more than ``bound`` after it (written between
    ``began`` and ``write``), 102 fetched on. The audit log: one ``withdrawal-seen`` event within the bound, no
    fetch of 101 after it (so none of the requests it stopped was sent), and every deny of 101 names it
    (``because``), no one else's."""
    timeline = _timeline(app, write, "the withdrawal")
    assert any(t < write for t in app.times_served("101")), f"control: 101 not served before\n{timeline}"
    assert any(t > write + bound + 1 for t in app.times_served("102")), f"control: the crawl went on\n{timeline}"
    late = [round(t - write, 2) for t in app.times_served("101") if t > write + bound]
    assert not late, f"101 fetched after withdrawing (s after): {late}\n{timeline}"
    assert any(e["reason"] == "subject.revoked" for e in result.audit if e.get("subject") == "101")
    events = [e for e in read_audit_log(result.crawler.settings["CONSENTCRAWL_AUDIT_LOG"]) if "event" in e]
    seen = [e for e in events if e["event"] == "withdrawal-seen"]
    assert [(e["platform"], e["subject"], e["reason"]) for e in seen] == [("people", "101", "subject.revoked")], seen
    (event,) = seen
    assert event["store_version"] != event["allowed_at_version"]
    seen_at = datetime.fromisoformat(event["time"]).timestamp()
    assert began <= seen_at <= write + bound, f"seen at {seen_at - write:+.2f} s\n{timeline}"
    after = [round(t - seen_at, 3) for t in app.times_served("101") if t > seen_at]
    assert not after, f"101 fetched after the withdrawal was seen (s after): {after}\n{timeline}"
    denied = [e for e in result.audit if e.get("subject") == "101" and e["verdict"] == "deny"]
    # a store that reads its file again after the change denies everyone for that moment (its own cause, before
    # the withdrawal is known); every other deny of 101 is the withdrawal's, and names its event
    rereading = [e for e in denied if e["reason"] == "error.store-unavailable"
                 and "is being read again" in json.dumps(e["evidence"]) and e["time"] <= event["time"]]
    stopped = [e for e in denied if e not in rereading]
    assert stopped and all(e.get("because") == event["event_id"] for e in stopped), json.dumps([
        (e["time"][11:23], e["phase"], e["reason"], e.get("because"), e.get("evidence")) for e in stopped][:2])
    assert {e["reason"] for e in stopped} == {"subject.revoked"}
    assert not [e for e in result.audit if e.get("subject") != "101" and e.get("because")]


class FaultLogic(RepeatLogic):
    every = 0.2
    seconds = 5.0


@pytest.mark.parametrize(("fault", "cause"), [("down", "cannot be reached: ConnectError"),
                                              ("slow", "did not answer within 0.3 s"),
                                              ("garbage", "not JSON"),
                                              ("error", "answered HTTP 503"),
                                              ("forbidden", "refused us: HTTP 403; we sent a token"),
                                              ("shape", "(/v1/changes) answered without a 'version' string")])
@deferred_f_from_coro_f
async def test_http_api_down_slow_or_garbage_denies_with_the_cause_then_recovers(
        fault: str, cause: str, api: FaultyServer, records: Path, platforms: PlatformRegistry, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = api_settings(tmp_path, api.url, monkeypatch)
    port = api.port
    marks: dict[str, float] = {}
    replacement: list[FaultyServer] = []

    def start_fault() -> None:
        marks["on"] = time.time()
        if fault == "down":
            api.stop()
        else:
            api.fault = fault

    def end_fault() -> None:
        if fault == "down":
            replacement.append(FaultyServer(load_authorizations(records, platforms), platforms, port=port,
                                            token=TOKEN).start())
        else:
            api.fault = None
        marks["off"] = time.time()

    def fault_for_1_5_s() -> None:
        start_fault()
        time.sleep(1.5)
        end_fault()

    app = LenientPeople()
    try:
        # the fault comes 0.5 s after 101 was first served, not at a fixed time: a crawl that took over 1.5 s to
        # start (the first of a process, a loaded machine) found the API already down and never reached it
        with LocalServer(app) as server, once_served(app, "101", fault_for_1_5_s):
            # 5 s at most: over once 101 was served again after the fault (the recovery judged below)
            result = await run_crawl(make_spider("ConsentSpider", FaultLogic), settings, proxy=server.proxy,
                                     monkeypatch=monkeypatch, follow_links=False,
                                     enough=lambda: "off" in marks and any(t > marks["off"] + 0.5
                                                                           for t in app.times_served("101")))
    finally:
        for started in replacement:
            started.stop()
    on, off = marks["on"], marks["off"]
    timeline = _timeline(app, on, f"the fault (until {off - on:+.2f}s)")
    during = [round(t - on, 2) for t in app.times_served("101") if on + 1.2 < t < off]
    assert not during, f"101 fetched while the API was {fault}: {during}\n{timeline}"
    assert any(t > off + 0.2 for t in app.times_served("101")), f"no recovery after the fault\n{timeline}"
    denies = [e for e in result.audit if e.get("reason") == "error.store-unavailable"]
    assert denies, f"no error.store-unavailable in the audit log\n{timeline}"
    messages = [ev.get("message", "") for e in denies for ev in e.get("evidence", []) if ev.get("kind") == "error"]
    assert any(cause in m for m in messages), messages[:5]
    assert all(e["verdict"] == "deny" for e in denies)
    assert TOKEN not in Path(settings["CONSENTCRAWL_AUDIT_LOG"]).read_text(encoding="utf-8")
    assert TOKEN not in caplog.text and api.seen_auth and set(api.seen_auth) == {f"Bearer {TOKEN}"}


def test_serve_authorizations_refuses_to_serve_off_loopback_without_a_token_and_names_a_bad_port(
        tmp_path: Path, records: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """People's consent records are personal data: listening on another address than loopback needs the token,
    checked before anything is bound; a port out of range or taken is one line naming --port, not a traceback."""
    platforms_file, _ = write_config(tmp_path)
    monkeypatch.delenv("CONSENTCRAWL_API_TOKEN", raising=False)
    common = ["serve-authorizations", str(records), "--platforms", str(platforms_file)]
    assert main([*common, "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "configuration error: --host: serving consent records on '0.0.0.0', off loopback, needs a bearer " \
           "token: set $CONSENTCRAWL_API_TOKEN" in err
    assert main([*common, "--port", "99999"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("consentcrawl: configuration error: --port: cannot listen on 127.0.0.1:99999") and \
        err.count("\n") == 1, err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main([*common, "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "configuration error: --port: cannot listen on 127.0.0.1:" in err and "Traceback" not in err, err


def test_serve_authorizations_command_serves_the_contract(tmp_path: Path, records: Path) -> None:
    platforms_file, _ = write_config(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "consentcrawl.cli", "serve-authorizations", str(records), "--platforms",
         str(platforms_file), "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first and "no token required" in first
        base = f"http://127.0.0.1:{port}/v1"
        with httpx.Client(trust_env=False) as client:
            answer = client.get(f"{base}/authorizations", params={"platform": "people", "subject": "ALICE"}).json()
            assert [r["subject"] for r in answer["records"]] == ["alice"] and answer["version"]
            feed = client.get(f"{base}/changes", params={"since": answer["version"]}).json()
            assert feed == {"version": answer["version"], "changed": []}
            with records.open("a", encoding="utf-8") as f:
                f.write(line("alice", revoked=True))
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and not feed["changed"]:
                time.sleep(0.05)
                feed = client.get(f"{base}/changes", params={"since": answer["version"]}).json()
            assert feed["changed"] == [{"platform": "people", "subject": "alice"}]
            assert client.get(f"{base}/changes", params={"since": "old.1"}).json()["reset"] is True
            assert client.get(f"{base}/authorizations", params={"platform": "people"}).status_code == 400
    finally:
        process.terminate()
        process.wait(10)
        assert process.stderr is not None
        process.stderr.close()
        process.stdout.close()  # type: ignore[union-attr]


def test_http_and_redis_settings_open_their_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = people_settings(tmp_path, CONSENTCRAWL_AUTHORIZATIONS_POLL=0.1)
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = "https://crm.example/consent/"
    store = ConsentConfig.from_settings(settings).store
    assert isinstance(store, HTTPConsentStore) and store.poll == 0.1 and store.source == "https://crm.example/consent"
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = "redis://:pw@127.0.0.1:1/0?prefix=crawl"
    from consentcrawl.consent.redisstore import RedisStore

    redis_store = ConsentConfig.from_settings(settings).store
    assert isinstance(redis_store, RedisStore) and redis_store.source == "redis://127.0.0.1:1/0?prefix=crawl"
    assert redis_store.url.prefix == "crawl" and "prefix" not in redis_store.url.url


# -- Redis ---------------------------------------------------------------------------------------------------------


def import_lines(url: str, tmp_path: Path, platforms: PlatformRegistry, lines: list[str], name: str) -> Any:
    from consentcrawl.consent.redisimport import import_records

    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return import_records(url, load_authorizations(path, platforms), platforms=platforms.platforms)


@deferred_f_from_coro_f
async def test_redis_store_answers_caches_and_sees_a_withdrawal_within_a_second(
        redis_server: RedisServer, tmp_path: Path, platforms: PlatformRegistry) -> None:
    from consentcrawl.consent.redisstore import RedisStore

    result = import_lines(redis_server.url, tmp_path, platforms, [line(s) for s in ("101", "102", "Alice")], "a")
    assert (result.imported, result.skipped) == (3, 0)
    again = import_lines(redis_server.url, tmp_path, platforms, [line("101")], "again")
    assert (again.imported, again.skipped) == (0, 1)  # the same record twice is stored once
    store = RedisStore(redis_server.url, platforms, poll=0.1)
    try:
        (grant,) = await store.lookup("people", "ALICE")
        assert grant.subject == "Alice" and grant.purposes == {"research"}
        lookups, version = store.lookups, store.version
        assert await store.lookup("people", "alice") == (grant,) and store.lookups == lookups
        assert await store.lookup("people", "nobody") == ()
        import_lines(redis_server.url, tmp_path, platforms, [line("alice", revoked=True)], "withdraw")
        took = await await_until(lambda: _records_of(store, "alice", 2), 1.0, "the withdrawal")
        assert took < 1.0 and store.version != version
        # the database flushed behind the store's back: every remembered answer goes
        import redis

        client = redis.Redis.from_url(redis_server.url)
        client.flushall()
        client.close()
        await await_until(lambda: _records_of(store, "alice", 0), 1.0, "the flush")
    finally:
        await store.aclose()


@deferred_f_from_coro_f
async def test_redis_down_denies_with_the_cause_then_recovers(
        redis_server: RedisServer, tmp_path: Path, platforms: PlatformRegistry) -> None:
    from consentcrawl.consent.redisstore import RedisStore

    import_lines(redis_server.url, tmp_path, platforms, [line("101")], "a")
    store = RedisStore(redis_server.url, platforms, poll=0.1, timeout=0.3)
    try:
        assert await store.lookup("people", "101")
        version = store.version
        redis_server.stop()
        took = await await_until(lambda: _unavailable(store, "101"), 1.0, "redis down")  # the cached answer too
        assert took < 1.0 and store.version != version
        assert "ConnectionError" in str(await outcome(store, "101"))
        redis_server.start()  # empty again: no persistence
        import_lines(redis_server.url, tmp_path, platforms, [line("101")], "b")
        await await_until(lambda: _records_of(store, "101", 1), 3.0, "recovery")
    finally:
        await store.aclose()


@deferred_f_from_coro_f
async def test_redis_withdrawal_mid_crawl(redis_server: RedisServer, tmp_path: Path, platforms: PlatformRegistry,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import_lines(redis_server.url, tmp_path, platforms, [line(s) for s in ("101", "102", "103")], "grants")
    settings = people_settings(tmp_path, CONSENTCRAWL_AUTHORIZATIONS_POLL=0.1)
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = redis_server.url
    withdrawal = tmp_path / "withdrawal.jsonl"
    withdrawal.write_text(line("101", revoked=True), encoding="utf-8")
    platforms_file = tmp_path / "platforms.yaml"
    written: list[float] = []

    def withdraw() -> None:  # the operator's command, as documented
        began.append(time.time())
        assert main(["authorizations", "import", str(withdrawal), redis_server.url,
                     "--platforms", str(platforms_file)]) == 0
        written.append(time.time())

    began: list[float] = []
    app, result = await _crawl_withdrawing(settings, monkeypatch, withdraw)
    assert written, "the withdrawal was not made during the crawl"
    _judge(app, result, written[0], bound=1.0, began=began[0])
