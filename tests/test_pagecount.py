"""``CLOSESPIDER_PAGECOUNT`` counts the pages the spider asked for: consentcrawl's own side requests (robots.txt,
``/.well-known/tdmrep.json``, ``/ai.txt``, a licence) are not pages of the crawl, and a user who sets 3 gets 3.

Real crawls against the lenient ``people`` site of :mod:`tests.lenient`, one request at a time, judged by the
site's served log, the callbacks that ran and the close reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings, record_yaml

BASE = f"http://{HOST}"
PEOPLE = ("101", "102", "103", "104", "105", "106")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("setting", ["CLOSESPIDER_PAGECOUNT", "CLOSESPIDER_PAGECOUNT_NO_ITEM"])
@deferred_f_from_coro_f
async def test_pagecount_counts_the_spiders_pages_not_consentcrawls_side_requests(
    kind: str, setting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: the side requests went through Scrapy's engine like the spider's and each sent
    ``response_received``, which CloseSpider counts: robots.txt, tdmrep.json and ai.txt made three "pages" before
    the first profile came back, and a crawl set to stop after 3 pages stopped after the first."""
    settings = people_settings(tmp_path, records=[record_yaml(p) for p in PEOPLE], CONCURRENT_REQUESTS=1,
                               **{setting: 3})
    app = LenientPeople()
    spidercls = make_spider(kind, ListLogic)
    if setting == "CLOSESPIDER_PAGECOUNT_NO_ITEM":  # pages without an item: the listing-like pages below
        urls = [f"{BASE}/page{i}" for i in range(6)]
        for i in range(6):
            app.page(f"/page{i}", "<html><body>nothing to keep</body></html>")
    else:
        urls = [f"{BASE}/u/{p}" for p in PEOPLE]
    with LocalServer(app) as server:
        result = await crawl(spidercls, settings, proxy=server.proxy, monkeypatch=monkeypatch, urls=urls)
    side = [s.target for s in app.served if s.kind in ("robots", "other")]
    assert len(side) >= 3, f"control: the side requests were made\n{app.describe()}"
    reason = "closespider_pagecount" if setting == "CLOSESPIDER_PAGECOUNT" else "closespider_pagecount_no_item"
    assert result.stats.get("finish_reason") == reason, result.stats
    assert len(result.seen) >= 3, f"{setting}=3 gave the spider {len(result.seen)} page(s)\n{app.describe()}"


@deferred_f_from_coro_f
async def test_a_project_that_took_closespider_out_keeps_it_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The add-on replaces CloseSpider where it is; it does not put one back that the project removed."""
    settings = people_settings(tmp_path, records=[record_yaml(p) for p in PEOPLE], CONCURRENT_REQUESTS=1,
                               CLOSESPIDER_PAGECOUNT=3,
                               EXTENSIONS={"scrapy.extensions.closespider.CloseSpider": None})
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/u/{p}" for p in PEOPLE])
    assert result.stats.get("finish_reason") == "finished", result.stats
    assert sorted(set(app.people_served())) == list(PEOPLE), app.describe()
    assert not any("CloseSpider" in name for name in result.components["extensions"]), result.components
