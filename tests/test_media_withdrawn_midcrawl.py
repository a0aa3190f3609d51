"""A media pipeline's results of a person who withdrew while the crawl ran.

Scrapy's ``MediaPipeline`` keeps every result of the crawl by request fingerprint (``SpiderInfo.downloaded``) and
hands it to a later item that asks for the same file, without a request and without asking its store. A file
downloaded while a person was authorized must not reach an item made after they withdrew. A real crawl of the
lenient site with a live SQLite store; the withdrawal is imported into the store between two items. Judged by the
items (their ``files``), the files store, the server's request log and the audit log (one line per decision).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.pipelines.files import FilesPipeline
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.sqlite import import_records
from consentcrawl.terms.load import load_platforms
from consentcrawl_demo.server import LocalServer
from tests.lenient import AUTHORIZED, HOST, LenientPeople, crawl, make_spider, people_settings, write_config

BASE = f"http://{HOST}"
AVATAR = f"{BASE}/u/104/avatar.png"


class RequestsOfItsOwn(FilesPipeline):
    """A FilesPipeline subclass that builds its requests from a field of its own (``get_media_requests``): the
    guard cannot take the URL out of the item before it (the field names the person whose avatar it is, not the
    URL: a URL of someone who withdrew the guard would withhold as a mention), so the pipeline itself must not hand
    the file on."""

    def get_media_requests(self, item: Any, info: Any) -> list[scrapy.Request]:
        return [scrapy.Request(f"{BASE}/u/{person}/avatar.png") for person in item.get("pictures", [])]


def _record(subject: str, revoked: datetime | None = None) -> AuthorizationRecord:
    return AuthorizationRecord("people", subject, frozenset({"research"}), datetime(2026, 1, 1, tzinfo=timezone.utc),
                               revoked_at=revoked, evidence="test consent", source="test")


class TwoPagesAroundAWithdrawal:
    """101's page, then (once its item went through the pipelines) 104 withdraws, then 102's page: each page's
    item names 104's avatar in ``pictures`` (by 104's id)."""

    seen: list[str]
    withdraw: Any = None

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.parse)
        stats = self.crawler.stats  # type: ignore[attr-defined]
        while not stats.get_value("item_scraped_count"):
            await asyncio.sleep(0.05)
        self.withdraw()
        yield scrapy.Request(f"{BASE}/u/102", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"url": response.url, "pictures": ["104"]}


@pytest.mark.parametrize("kind", ["ConsentSpider"])
@deferred_f_from_coro_f
async def test_a_file_downloaded_before_a_withdrawal_is_not_handed_to_a_later_item(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    platforms_file, _ = write_config(tmp_path)
    platforms = load_platforms([str(platforms_file)])
    store = f"sqlite:///{tmp_path / 'store.db'}?refresh=0"
    import_records(store, [_record(s) for s in (*AUTHORIZED, "104")], platforms=platforms)

    def withdraw() -> None:
        import_records(store, [_record("104", datetime.now(timezone.utc))], platforms=platforms)

    spider = make_spider(kind, TwoPagesAroundAWithdrawal)
    spider.withdraw = staticmethod(withdraw)  # type: ignore[attr-defined]
    settings = {**people_settings(tmp_path, FILES_STORE=str(tmp_path / "files"), CONCURRENT_REQUESTS=1,
                                  ITEM_PIPELINES={f"{__name__}.RequestsOfItsOwn": 1}),
                "CONSENTCRAWL_AUTHORIZATIONS": store}
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(spider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert [s.person for s in app.served if s.person] == ["101", "104", "102"], app.describe()
    assert len(result.items) == 2, result.items
    first, second = sorted(result.items, key=lambda i: i["url"])
    assert [f["url"] for f in first.get("files", [])] == [AVATAR], f"control: the first item got the file {first}"
    assert "/u/104" not in json.dumps(second.get("files", [])), f"104's file in an item after they withdrew: {second}"
    denies = result.audit_for("/u/104/avatar.png", verdict="deny")
    assert len(denies) == 1 and denies[0]["reason"] == "subject.revoked", result.denies()
