"""A store of the user's own, named by import path in CONSENTCRAWL_AUTHORIZATIONS, whose records change mid-crawl.

The stores below are what a consent API client or a change-feed consumer looks like to consentcrawl: they keep
their records in memory, update them in place when told, and say so with their ``version``; one answers with a
plain ``def lookup``, the other with ``async def lookup`` that waits as a network call does. A withdrawal received
during the crawl must stop fetches of that person within 2 s, and a store that raises must deny with its cause and
let nothing of that person be fetched, judged by the server's own log.
"""

from __future__ import annotations

import asyncio
import re
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
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, once_served, people_settings
from tests.test_send_time import GRACE, RepeatLogic, _timeline, went_on


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


class AsyncChangingStore(ChangingStore):
    """The same records behind ``async def lookup``, which waits for the event loop as a consent API call does."""

    live: AsyncChangingStore | None = None  # type: ignore[assignment]

    def __init__(self, crawler: Any = None) -> None:
        super().__init__(crawler)
        self.source = "tests.test_store_plugin.AsyncChangingStore"
        self.lookups = 0
        AsyncChangingStore.live = self

    async def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:  # type: ignore[override]
        await asyncio.sleep(0.005)  # the round trip
        self.lookups += 1
        return ChangingStore.lookup(self, platform, subject)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("store", [ChangingStore, AsyncChangingStore])
@deferred_f_from_coro_f
async def test_a_store_by_import_path_whose_records_change_mid_crawl(kind: str, store: type[ChangingStore],
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    settings = people_settings(tmp_path)
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = f"{__name__}.{store.__name__}"
    written: list[float] = []

    def withdraw() -> None:
        live = store.live
        assert live is not None and live.crawler is not None  # built by consentcrawl, with the crawler
        live.withdraw("101", datetime.now(timezone.utc))
        written.append(time.time())

    app = LenientPeople()
    with LocalServer(app) as server, once_served(app, "101", withdraw, after=1.0):
        result = await crawl(make_spider(kind, RepeatLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, follow_links=False, enough=went_on(app, written, GRACE + 2))
    assert written, "the withdrawal was not made during the crawl"
    write = written[0]
    timeline = _timeline(app, write, "the withdrawal")
    assert any(t < write for t in app.times_served("101")), f"control: 101 not served before\n{timeline}"
    assert any(t > write + GRACE + 1 for t in app.times_served("102")), f"control: the crawl went on\n{timeline}"
    late = [round(t - write, 2) for t in app.times_served("101") if t > write + GRACE]
    assert not late, f"101 fetched after withdrawing (s after): {late}\n{timeline}"
    assert any(e["reason"] == "subject.revoked" for e in result.audit if e.get("subject") == "101")
    if store is AsyncChangingStore:
        # remembered decisions are checked by the version alone: far fewer lookups than requests decided
        live = AsyncChangingStore.live
        assert live is not None and 0 < live.lookups < len(app.served)


class RefusingStore:
    """An asynchronous store whose service refuses one person's lookups (a bug, an outage of one shard)."""

    source = "tests.test_store_plugin.RefusingStore"
    version = 1

    async def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        await asyncio.sleep(0)
        if subject == "102":
            raise ConnectionRefusedError("consent API refused the connection")
        granted = datetime(2026, 1, 1, tzinfo=timezone.utc)
        return (AuthorizationRecord(platform, subject, frozenset({"research"}), granted, evidence="api"),)


@deferred_f_from_coro_f
async def test_an_async_store_that_raises_denies_with_its_cause_and_nothing_is_fetched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = people_settings(tmp_path)
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = f"{__name__}.RefusingStore"
    app = LenientPeople()
    urls = [f"http://{HOST}/u/101", f"http://{HOST}/u/102", f"http://{HOST}/u/102?page=2"]
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert app.times_served("101") and not app.times_served("102")
    denies = [e for e in result.audit if e.get("subject") == "102"]
    assert denies and all(e["verdict"] == "deny" and e["reason"] == "error.store-unavailable" for e in denies)
    for entry in denies:
        cause = entry["evidence"][-1]
        assert cause["kind"] == "error" and "ConnectionRefusedError" in cause["message"]
        assert "consent API refused the connection" in cause["message"]
    assert result.stats["consentcrawl/denied/error/store-unavailable"] == len(denies)


def test_a_bad_store_import_path_is_a_configuration_error(tmp_path: Path) -> None:
    settings = people_settings(tmp_path)
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = "tests.test_store_plugin.NoSuchStore"
    with pytest.raises(ConfigError, match=r"CONSENTCRAWL_AUTHORIZATIONS.*cannot import the store"):
        ConsentConfig.from_settings(settings)


def test_the_worked_example_in_the_docs_runs_and_prints_what_it_says(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/stores.md, "Write your own store": the store is tests/example_store.py, and the code that asks it
    prints the reasons its comments give."""
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "stores.md").read_text(encoding="utf-8")
    section = text[text.index("## Write your own store"):]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert (ROOT / "tests" / "example_store.py").read_text(encoding="utf-8") in blocks
    usage = next(block for block in blocks if "asyncio.run(main())" in block)
    expected = [line.split("#", 1)[1].strip() for line in usage.splitlines() if "print(" in line and "#" in line]
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile((ROOT / "tests" / "example_store.py").read_text(encoding="utf-8"), "example_store", "exec"),
         namespace)
    run_in_thread = threading.Thread(target=exec, args=(compile(usage, "usage", "exec"), namespace))
    run_in_thread.start()  # asyncio.run needs a thread without a running event loop
    run_in_thread.join()
    assert capsys.readouterr().out.split("\n")[:-1] == expected
