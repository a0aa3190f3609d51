"""Fresh-eyes leak hunt (hunt13): the distributed crawl's Redis, remote and live stores, and the CLI that feeds them.

Tests marked "Fixed" failed on main (d2e9201) and pass since their fix; tests marked PIN passed from the start
and cover an attack no other test covers.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl import AuthorizationRecord
from consentcrawl.cli import main
from consentcrawl.consent.redisstore import list_records
from consentcrawl.distributed import serializer
from consentcrawl.terms.load import load_platforms
from consentcrawl_demo.server import LocalServer
from tests.lenient import (
    HOST,
    KINDS,
    LenientPeople,
    ListLogic,
    crawl,
    iso,
    make_spider,
    once_served,
    people_settings,
    record_yaml,
    secret_name,
    write_config,
)
from tests.redis_server import RedisServer
from tests.test_send_time import GRACE, RepeatLogic, _timeline
from tests.test_store_plugin import ChangingStore

BASE = f"http://{HOST}"


def _record(subject: str, record_id: str, *, revoked: bool = False) -> str:
    fields = {"platform": "people", "subject": subject, "purposes": ["research"],
              "granted_at": "2026-01-01T00:00:00Z", "evidence": "consent form 17", "record_id": record_id}
    if revoked:
        fields.update(revoked_at="2026-06-01T00:00:00Z", evidence="withdrawn by e-mail")
    return json.dumps(fields) + "\n"


def test_a_withdrawal_reusing_a_stored_record_id_is_not_skipped_by_a_redis_import(
        redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Fixed. A CRM exports a consent record with its id; when the person withdraws, the next export has the same
    record (same ``record_id``) with ``revoked_at`` set, and the operator imports it into the Redis store the
    crawl follows, as docs/file-stores.md says stops collection live. The import skipped it as a record "it
    already held" (its hash field is the record_id) and exited 0: the grant stayed alone in the store and 101
    went on being collected. A file with both refuses to load and an SQLite store refuses the import (a
    duplicate record_id); a Redis import now does too, naming the file and line (exit 2), and writes nothing of
    that import. Importing the same file again stays harmless."""
    platforms, _ = write_config(tmp_path)
    url = f"{redis_server.url}?prefix=h13"
    grant, withdrawal = tmp_path / "export-1.jsonl", tmp_path / "export-2.jsonl"
    grant.write_text(_record("101", "crm-88812"), encoding="utf-8")
    withdrawal.write_text(_record("102", "crm-1") + _record("101", "crm-88812", revoked=True), encoding="utf-8")
    args = ["--platforms", str(platforms)]
    assert main(["authorizations", "import", str(grant), url, *args]) == 0
    assert main(["authorizations", "import", str(grant), url, *args]) == 0  # the same file again: harmless
    capsys.readouterr()
    code = main(["authorizations", "import", str(withdrawal), url, *args])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert f"{withdrawal}, line 2: duplicate authorization record" in err and "record_id" in err, err
    stored = list_records(url, load_platforms([str(platforms)]))
    assert sorted((r.subject, r.record_id, r.revoked_at) for r in stored) == [
        ("101", "crm-88812", None)], stored  # nothing of that import, not even the line before it (all or nothing)
    assert "nothing was written" in err


# -- a store of the user's own that answers for another person than the one asked for -------------------------


class WholeListStore:
    """A store of the user's own, named by import path, with a bug real stores have: its query ignores the
    person asked for (a cache keyed by the platform only, a ``WHERE`` clause lost in a refactoring) and answers
    every lookup with the records it holds, 101's grant among them."""

    source = "tests.test_leaks_hunt13.WholeListStore"
    version = 1

    def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        granted = datetime(2026, 1, 1, tzinfo=timezone.utc)
        return (AuthorizationRecord("people", "101", frozenset({"research"}), granted, evidence="form 17"),)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_store_answering_for_another_person_denies(kind: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. The remote stores check that every record they were answered with is of the person asked for
    (``records_from_json``); a store given by import path was trusted: asked for 107, it answered 101's grant,
    and 107's profile was fetched as ``subject.authorized``. Every store's answer is now held to that rule where
    the store is asked (``Decider.look_up``): a record of another person makes the lookup a store failure
    (``error.store-unavailable``), and 101 is still fetched."""
    settings = people_settings(tmp_path)
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = "tests.test_leaks_hunt13.WholeListStore"
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/107", f"{BASE}/u/101"], follow_links=False)
    assert app.people_served() == ["101"], app.describe()
    assert secret_name("107") not in str(result.items)
    denies = {e.get("reason") for e in result.audit_for("/u/107")}
    assert denies == {"error.store-unavailable"}, result.denies()
    assert "another person" in json.dumps(result.audit_for("/u/107")), result.audit_for("/u/107")


# -- a worker of the distributed crawl started without the add-on ----------------------------------------------


class NoAddonLogic(ListLogic):
    """A worker's spider that lost the add-on: an older deploy on one machine (a plain ``scrapy.Spider``), or a
    spider whose ``custom_settings`` replaced the project's ``ADDONS``. Same name, so the same shared queue."""


@pytest.mark.filterwarnings("ignore:Spider.log:scrapy.exceptions.ScrapyDeprecationWarning")  # scrapy-redis's
@deferred_f_from_coro_f
async def test_a_worker_without_the_add_on_takes_nothing_from_the_shared_queue(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. Another worker queued 101's profile while 101 was authorized (its schedule guard let it through);
    the worker that pops it runs without the add-on. consentcrawl's scheduler handed it the request and it was
    fetched with no decision at all (no send-time check, no audit line). The scheduler now refuses to hand out
    anything in a crawl consentcrawl does not guard: one CRITICAL line naming SCHEDULER, nothing popped, and the
    request stays queued for a guarded worker."""
    import redis
    import scrapy

    settings = people_settings(tmp_path, SCHEDULER="consentcrawl.distributed.scheduler.ConsentRedisScheduler",
                               DUPEFILTER_CLASS="consentcrawl.distributed.scheduler.ConsentRedisDupeFilter",
                               SCHEDULER_PERSIST=True, REDIS_URL=redis_server.url,
                               REDIS_PARAMS={"socket_timeout": 1, "socket_connect_timeout": 1})
    client = redis.Redis.from_url(redis_server.url)
    try:
        data = serializer.dumps(scrapy.Request(f"{BASE}/u/101").to_dict())
        client.execute_command("ZADD", "worker:requests", 0, data)
        spidercls = type("PlainWorker", (NoAddonLogic, scrapy.Spider), {"name": "worker"})
        app = LenientPeople()
        with LocalServer(app) as server:
            result = await crawl(spidercls, settings, proxy=server.proxy, monkeypatch=monkeypatch, urls=[])
        assert app.people_served() == [], app.describe()
        assert not result.items and not result.seen
        assert result.stats.get("finish_reason") == "consentcrawl_config_error", result.stats
        assert client.zcard("worker:requests") == 1  # still there, for a worker consentcrawl guards
    finally:
        client.close()


# -- a spider's custom_settings that take consentcrawl's components out ---------------------------------------

#: what a spider's ``custom_settings`` may carry, copied from a project that disabled "extra" components
TAKEN_OUT = {
    "DOWNLOADER_MIDDLEWARES": {"consentcrawl.middlewares.ConsentDownloaderMiddleware": None},
    "EXTENSIONS": {"consentcrawl.middlewares.ConsentScheduleGuard": None,
                   "consentcrawl.purge.onclose.PurgeOnClose": None},
}


@deferred_f_from_coro_f
async def test_components_a_spider_takes_out_are_put_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. The project sets ``CONSENTCRAWL_PURGE_ON_CLOSE = True``; a spider's ``custom_settings`` set
    PurgeOnClose (and the request phase and the schedule guard) to None. 101 withdrew mid-crawl, after their
    page was collected: the feed kept 101's item, and nothing said the purge had not run. (Without the request
    phase no robots.txt was fetched and every page was denied ``error.robots-missing``; without the schedule
    guard a denied request reached the scheduler.) The add-on now puts each back, as it puts back the guard
    pipeline, with a WARNING."""
    import time

    app = LenientPeople()
    feed = tmp_path / "items.jsonl"
    settings = people_settings(tmp_path, FEEDS={str(feed): {"format": "jsonlines"}}, CONSENTCRAWL_PURGE_ON_CLOSE=True)
    spidercls = make_spider("ADDONS", ListLogic, name="takenout")
    spidercls.custom_settings = {**(spidercls.custom_settings or {}), **TAKEN_OUT}

    def withdraw() -> None:
        with (tmp_path / "authorizations.yaml").open("a", encoding="utf-8") as f:
            f.write(record_yaml("101", granted_at="2026-01-02T00:00:00Z", revoked_at=iso(time.time()),
                                evidence="withdrawn"))

    with LocalServer(app) as server, once_served(app, "101", withdraw, after=0.2):
        result = await crawl(spidercls, settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/101", 1.5, f"{BASE}/u/102"], follow_links=False)
    assert app.people_served() == ["101", "102"], app.describe()
    text = feed.read_text(encoding="utf-8")
    assert secret_name("101") not in text and secret_name("102") in text, text
    assert "consentcrawl.middlewares.ConsentDownloaderMiddleware" in result.components["downloader_middlewares"]
    assert "consentcrawl.middlewares.ConsentScheduleGuard" in result.components["extensions"]


# -- a Redis store written under one subject key rule and read under another ----------------------------------


def test_a_redis_store_keyed_under_another_case_rule_denies(
        redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. The platform was first configured ``case_sensitive: true``: alice's grant went into the Redis store
    under the key ``alice`` and a withdrawal written ``Alice`` under ``Alice`` (another account, then). The
    operator then learns that the platform's handles are case-insensitive and removes the flag: ``Alice`` and
    ``alice`` are one person, whose withdrawal is in force, and a file store or an SQLite store (which records
    the rule it indexed by and refuses to be read under another) denies. The Redis store kept no rule, looked
    ``alice`` up under ``alice`` alone and ``check`` allowed her page. It now records each platform's rule at
    import, denies while the configuration's differs (``error.store-unavailable``, naming the platform), and an
    import under another rule is refused."""
    platforms, _ = write_config(tmp_path)
    text = platforms.read_text(encoding="utf-8")
    platforms.write_text(text.replace("    subject:", "    case_sensitive: true\n    subject:"), encoding="utf-8")
    url = f"{redis_server.url}?prefix=h13case"
    records = tmp_path / "records.jsonl"
    records.write_text(_record("alice", "crm-1") + _record("Alice", "crm-2", revoked=True), encoding="utf-8")
    assert main(["authorizations", "import", str(records), url, "--platforms", str(platforms)]) == 0
    platforms.write_text(text, encoding="utf-8")  # handles are case-insensitive after all
    monkeypatch.chdir(tmp_path)
    app = LenientPeople()
    capsys.readouterr()
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        code = main(["check", f"{BASE}/@alice", "--json", "--purpose", "research", "--platforms", str(platforms),
                     "--authorizations", url])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    decision = json.loads(out)
    assert decision["reason"] == "error.store-unavailable" and "'people'" in out, out
    again = tmp_path / "again.jsonl"
    again.write_text(_record("bob", "crm-3"), encoding="utf-8")
    assert main(["authorizations", "import", str(again), url, "--platforms", str(platforms)]) == 2
    assert "case" in capsys.readouterr().err


# -- a store whose version is an object it changes in place ----------------------------------------------------


class OffsetStore(ChangingStore):
    """A change-feed consumer's store (Kafka, a CDC stream): its version is where it has read each partition to,
    the consumer's own ``dict`` of offsets, which it advances in place as news arrives."""

    live: OffsetStore | None = None  # type: ignore[assignment]

    def __init__(self, crawler: Any = None) -> None:
        super().__init__(crawler)
        self.source = "tests.test_leaks_hunt13.OffsetStore"
        self.offsets = {"consent-changes/0": 41}
        OffsetStore.live = self

    @property
    def version(self) -> Any:  # type: ignore[override]
        return self.offsets

    def withdraw(self, subject: str, at: datetime) -> None:
        super().withdraw(subject, at)
        self.offsets["consent-changes/0"] += 1  # read one more message


class ShortRepeat(RepeatLogic):
    seconds = 5.0


@deferred_f_from_coro_f
async def test_a_store_version_changed_in_place_is_not_taken_for_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. A store whose version is its consumer's offsets, a ``dict`` it advances in place: every read handed
    out the same object, so a decision remembered at the version before 101's withdrawal compared equal to the
    version after it, and 101 went on being fetched for the rest of the crawl (every 0.3 s, judged by the
    server's log). A version whose type is not hashable (a dict, a list, a set: what can change in place and
    still be the same object) is now read as a copy, so versions compare by what they held when read."""
    import time

    settings = people_settings(tmp_path)
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = "tests.test_leaks_hunt13.OffsetStore"
    written: list[float] = []

    def withdraw() -> None:
        live = OffsetStore.live
        assert live is not None
        live.withdraw("101", datetime.now(timezone.utc))
        written.append(time.time())

    app = LenientPeople()
    with LocalServer(app) as server, once_served(app, "101", withdraw, after=1.0):
        result = await crawl(make_spider("ConsentSpider", ShortRepeat), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, follow_links=False)
    assert written, "the withdrawal was not made during the crawl"
    timeline = _timeline(app, written[0], "the withdrawal")
    assert any(t < written[0] for t in app.times_served("101")), f"control: 101 not served before\n{timeline}"
    assert any(t > written[0] + GRACE + 1 for t in app.times_served("102")), f"control: the crawl went on\n{timeline}"
    late = [round(t - written[0], 2) for t in app.times_served("101") if t > written[0] + GRACE]
    assert not late, f"101 fetched after withdrawing (s after): {late}\n{timeline}"
    assert any(e["reason"] == "subject.revoked" for e in result.audit if e.get("subject") == "101")
