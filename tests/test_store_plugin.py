"""A store of the user's own, named by import path in CONSENTCRAWL_AUTHORIZATIONS, whose records change mid-crawl.

The store below is what a consent API client or a change-feed consumer looks like to consentcrawl: it keeps its
records in memory, updates them in place when told, and says so with its ``version``. A withdrawal it receives
during the crawl must stop fetches of that person within 2 s, judged by the server's own log.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl import AuthorizationRecord, ConfigError
from consentcrawl.config import ConsentConfig
from consentcrawl_demo.server import LocalServer
from tests.lenient import KINDS, LenientPeople, crawl, make_spider, people_settings
from tests.test_send_time import GRACE, RepeatLogic, _timeline


class ChangingStore:
    """Records in memory, changed in place; ``version`` counts the changes. Built by consentcrawl from its
    import path, with ``from_crawler``."""

    live: ChangingStore | None = None  #: the instance the crawl built, for the test to change

    def __init__(self, crawler: Any = None) -> None:
        self.source = "tests.test_store_plugin.ChangingStore"
        self.crawler = crawler
        granted = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self._records = {s: (AuthorizationRecord("people", s, frozenset({"research"}), granted, evidence="api"),)
                         for s in ("101", "102")}
        self._version = 0
        self._lock = threading.Lock()
        ChangingStore.live = self

    @classmethod
    def from_crawler(cls, crawler: Any) -> ChangingStore:
        return cls(crawler)

    @property
    def version(self) -> int:
        return self._version

    def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        with self._lock:
            return self._records.get(subject, ()) if platform == "people" else ()

    def withdraw(self, subject: str, at: datetime) -> None:
        with self._lock:
            self._records[subject] = tuple(
                AuthorizationRecord(r.platform, r.subject, r.purposes, r.granted_at, revoked_at=at,
                                    evidence="withdrawn through the API") for r in self._records[subject])
            self._version += 1


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_store_by_import_path_whose_records_change_mid_crawl(kind: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    settings = people_settings(tmp_path)
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = f"{__name__}.ChangingStore"
    written: list[float] = []

    def withdraw() -> None:
        store = ChangingStore.live
        assert store is not None and store.crawler is not None  # built by consentcrawl, with the crawler
        store.withdraw("101", datetime.now(timezone.utc))
        written.append(time.time())

    app = LenientPeople()
    timer = threading.Timer(2.5, withdraw)
    with LocalServer(app) as server:
        timer.start()
        try:
            result = await crawl(make_spider(kind, RepeatLogic), settings, proxy=server.proxy,
                                 monkeypatch=monkeypatch, follow_links=False)
        finally:
            timer.cancel()
    assert written, "the withdrawal was not made during the crawl"
    write = written[0]
    timeline = _timeline(app, write, "the withdrawal")
    assert any(t < write for t in app.times_served("101")), f"control: 101 not served before\n{timeline}"
    assert any(t > write + GRACE + 1 for t in app.times_served("102")), f"control: the crawl went on\n{timeline}"
    late = [round(t - write, 2) for t in app.times_served("101") if t > write + GRACE]
    assert not late, f"101 fetched after withdrawing (s after): {late}\n{timeline}"
    assert any(e["reason"] == "subject.revoked" for e in result.audit if e.get("subject") == "101")


def test_a_bad_store_import_path_is_a_configuration_error(tmp_path: Path) -> None:
    settings = people_settings(tmp_path)
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = "tests.test_store_plugin.NoSuchStore"
    with pytest.raises(ConfigError, match=r"CONSENTCRAWL_AUTHORIZATIONS.*cannot import the store"):
        ConsentConfig.from_settings(settings)
