"""An errback item naming an authorized person that holds the refused request's URL by its path alone
(``urlsplit(failure.request.url).path``: ``/u/107``, the refused person's id in it) is dropped, as one holding the
whole URL is (``tests/test_errback_items_named.py``): the path names the refused person on the platform as well.
Real crawls against the lenient people site, judged by the served log and the items scraped."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, crawl, make_spider, people_settings
from tests.test_errback_items_named import NamesAnotherPerson, assert_no_refused_url_kept

SHAPES = {
    "path": lambda url: urlsplit(url).path,
    "path in a text": lambda url: f"gave up on {urlsplit(url).path} today",
    "path in capitals": lambda url: urlsplit(url).path.upper(),
}


class HoldsThePath(NamesAnotherPerson):
    def failed(self, failure: Any) -> Any:
        held = SHAPES[self.shape](failure.request.url)
        yield {"subject": "101", "platform": "people", "case": "holds", "about": held}
        yield {"subject": "101", "platform": "people", "case": "clean", "about": "a friend's page failed"}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_errback_item_holding_the_refused_path_is_dropped(
        kind: str, shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spider = type("HoldsPath", (make_spider(kind, HoldsThePath),), {"shape": shape})
    await assert_no_refused_url_kept(spider, tmp_path, monkeypatch)


class QueryProfiles(NamesAnotherPerson):
    """Requests 107's ``/profile.php?id=107`` (not authorized); the errback yields an item for 101 holding 107's
    path and query, and one holding 101's own ``/profile.php?id=101`` (the control: another person's page of the
    same path is not the refused URL)."""

    async def start(self) -> Any:
        yield scrapy.Request(f"http://{HOST}/profile.php?id=107", callback=self.parse, errback=self.failed)

    def failed(self, failure: Any) -> Any:
        parts = urlsplit(failure.request.url)
        yield {"subject": "101", "platform": "people", "case": "holds", "about": f"{parts.path}?{parts.query}"}
        yield {"subject": "101", "platform": "people", "case": "clean", "about": "/profile.php?id=101"}


@deferred_f_from_coro_f
async def test_an_errback_item_holding_the_refused_path_and_query_is_dropped_and_another_id_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", QueryProfiles), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert "107" not in app.people_served(), app.describe()
    assert [item["case"] for item in result.items] == ["clean"], result.items
