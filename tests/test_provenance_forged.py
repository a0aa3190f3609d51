"""A provenance field the spider wrote itself never stands for the page the item was yielded from.

The spider middleware stamps each item with its page's provenance, and a stamp the guard has not judged yet is
combined with the next page's (itempages.py: one object yielded from two pages). What the spider put in the field
before any page stamped it is the spider's, not a page's: were it taken for a stamp, the spider would write the
item's source URL, platform agreement and ``expires_at`` (how long it may be kept, what ``purge --expired``
reads). Real crawls of the lenient people site, judged by the items."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, crawl, make_spider, people_settings, secret_name

FORGED = {"decision_id": "forged", "url": "http://elsewhere.example/", "platform": "people", "subject": "101",
          "purpose": "research", "reason": "subject.authorized",
          "platform_agreement": {"reference": "forged", "valid_until": "2099-01-01T00:00:00Z"},
          "authorization": {"granted_at": "2026-01-01T00:00:00Z", "expires_at": "2099-01-01T00:00:00Z"},
          "expires_at": "2099-01-01T00:00:00Z"}


class ForgingLogic:
    """Yields two items for 101 from 101's profile: one as spiders do, one with a provenance field of its own."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"http://{HOST}/u/101", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"subject": "101", "platform": "people", "name": secret_name("101"), "case": "plain"}
        yield {"subject": "101", "platform": "people", "name": secret_name("101"), "case": "forged",
               "consentcrawl": dict(FORGED)}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_provenance_the_spider_wrote_is_replaced_by_its_pages(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalServer(LenientPeople()) as server:
        result = await crawl(make_spider(kind, ForgingLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    by_case = {item.get("case"): item["consentcrawl"] for item in result.items}
    assert set(by_case) == {"plain", "forged"}, result.items
    plain, forged = by_case["plain"], by_case["forged"]
    assert forged["url"] == plain["url"] == f"http://{HOST}/u/101", forged
    for key in ("platform_agreement", "authorization", "expires_at"):
        assert forged[key] == plain[key], (key, forged[key], plain[key])
    assert forged["decision_id"] == plain["decision_id"] != "forged", forged
