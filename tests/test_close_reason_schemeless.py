"""A ``CloseSpider`` reason raised from a refused request's errback naming its URL without the scheme (or in
capitals, as ``failure.request.url`` can be spelt by the project's own code): ``Closing spider (<reason>)`` at INFO
and ``finish_reason`` must not carry the refused person's URL, as they do not when it has its scheme
(``tests/test_close_reason.py``; the errback items guard finds the URL spelt so, ``errbacks._holds``). Real crawls
against the lenient people site, judged by the log records and the stats."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from scrapy.exceptions import CloseSpider
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import LenientPeople, crawl, make_spider, people_settings
from tests.test_close_reason import ClosesWithTheUrl

#: how the errback spells the refused URL in its reason
SPELLINGS = {
    "without its scheme": lambda url: url.split("://", 1)[1],
    "in capitals": lambda url: url.upper(),
    "host and path in capitals": lambda url: url.split("://", 1)[1].upper(),
    "its path alone": lambda url: urlsplit(url).path,
}


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
@deferred_f_from_coro_f
async def test_a_close_reason_naming_a_refused_url_spelt_otherwise_keeps_it_out(
        spelling: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    spell = SPELLINGS[spelling]

    def failed(self: Any, failure: Any) -> Any:
        raise CloseSpider(f"gave up at {spell(failure.request.url)}")

    spider = type("ClosesSpelt", (make_spider("ConsentSpider", ClosesWithTheUrl),), {"failed": failed})
    app = LenientPeople()
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        result = await crawl(spider, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert "107" not in app.people_served(), app.describe()
    reason = result.stats.get("finish_reason")
    assert isinstance(reason, str) and reason.startswith("gave up at "), reason
    assert "/u/107" not in reason.lower(), reason
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert [m for m in loud if "/u/107" in m.lower()] == [], loud
