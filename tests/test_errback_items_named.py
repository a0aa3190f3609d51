"""The errback of a request consentcrawl refused may yield an item that names a person (its subject field): such an
item goes on to the guard pipeline, which judges it by that person's own authorization. One that names an
authorized person but holds the refused request's URL (``{"subject": "101", "failed": failure.request.url}``)
passed the guard on 101's grant and wrote the refused person's URL into the feed. It is dropped now; an item of an
authorized person that holds no refused URL still goes on (the control). Real crawls against the lenient people
site, judged by the served log and the items scraped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings


class NamesAnotherPerson(ListLogic):
    """Requests 107 and 104 (not authorized); the errback yields items naming 101 (authorized): one that holds the
    refused URL (as it is, inside a text, in a list, in a nested mapping, without its scheme in capitals, as bytes),
    one that does not."""

    shape = "plain"

    async def start(self) -> Any:
        for person in ("107", "104"):
            yield scrapy.Request(f"http://{HOST}/u/{person}", callback=self.parse, errback=self.failed)

    def failed(self, failure: Any) -> Any:
        url = failure.request.url
        held: Any = {"plain": url, "text": f"could not fetch {url} today", "list": ["x", url],
                     "nested": {"sources": [{"href": url}]}, "spelled": url.split("://", 1)[1].upper(),
                     "bytes": url.encode()}[self.shape]
        yield {"subject": "101", "platform": "people", "case": "holds", "about": held}
        yield {"subject": "101", "platform": "people", "case": "clean", "about": "a friend's page failed"}


@pytest.mark.parametrize("shape", ["plain", "text", "list", "nested", "spelled", "bytes"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_errback_item_naming_an_authorized_person_keeps_no_refused_url(
        kind: str, shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spider = type("NamesAnother", (make_spider(kind, NamesAnotherPerson),), {"shape": shape})
    await assert_no_refused_url_kept(spider, tmp_path, monkeypatch)


async def assert_no_refused_url_kept(spider: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crawl in which 104's and 107's requests are refused and their errbacks yield items about 101: neither
    refused page fetched, no item that holds their URL, and the two clean items (the control) kept."""
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(spider, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert not {"104", "107"} & set(app.people_served()), app.describe()
    held = [item for item in result.items if any(f"/u/{p}" in repr(item).lower() for p in ("104", "107"))]
    assert held == [], result.items
    assert sorted(item["case"] for item in result.items) == ["clean", "clean"], result.items  # the control
