"""What the decision path remembers between phases never outlives what it rests on, judged by the server's log.

- The response phase remembers the site-level signals' outcome per origin for pages that say nothing: a page of
  the same origin that does say something (a ``tdm-reservation`` meta tag) after silent ones is still denied
  before any callback.
- The request phase and the response phase take the origin's signal files without a wait while they are cached
  and fresh: a file that changes is read again once its TTL is over, and applies to the pages requested after.
- The request phase decides at once when robots.txt is cached: a withdrawal written while the crawl runs still
  stops the person's pages (tests/test_send_time.py has the timing; here, every phase after the link check).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.test_robots_crawl import HOST, ConsentListSpider
from tests.test_signals_crawl import SignalSite, _denied, _pages, _settings

SILENT = '<html><head><meta charset="utf-8"><link rel="stylesheet" href="/s.css"></head><body>x</body></html>'
RESERVED = '<html><head><meta name="tdm-reservation" content="1"></head><body>x</body></html>'


@deferred_f_from_coro_f
async def test_a_page_that_speaks_after_silent_ones_is_still_denied(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    site = SignalSite(pages={"/a": ([], SILENT), "/b": ([], RESERVED), "/c": ([], SILENT),
                             "/d": ([("Content-Usage", "train-ai=n")], SILENT)})
    ConsentListSpider.urls = [f"http://{HOST}/a", 0.5, f"http://{HOST}/b", 0.5, f"http://{HOST}/c", 0.5,
                              f"http://{HOST}/d"]
    settings = _settings(tmp_path, "ai-training", CONSENTCRAWL_PURPOSE_DEFAULTS={"ai-training": "allow"})
    with LocalServer(site) as server:
        result = await run(settings, server, monkeypatch)
        assert _pages(server) == ["/a", "/b", "/c", "/d"]
    assert sorted(i["url"] for i in result.items) == [f"http://{HOST}/a", f"http://{HOST}/c"]
    assert _denied(result) == {"b": "response.signal.tdmrep", "d": "response.signal.content-usage"}


class ChangingTdmRep(SignalSite):
    """tdmrep.json reserves nothing at first, then everything."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.path == "/.well-known/tdmrep.json":
            self.reads += 1
            reserved = 0 if self.reads == 1 else 1
            self.tdmrep = f'[{{"location": "/", "tdm-reservation": {reserved}}}]'
        return super().__call__(request, headers)


@deferred_f_from_coro_f
async def test_a_signal_file_that_changes_applies_once_its_ttl_is_over(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    site = ChangingTdmRep()
    ConsentListSpider.urls = [f"http://{HOST}/a", f"http://{HOST}/b", 1.6, f"http://{HOST}/c", f"http://{HOST}/d"]
    with LocalServer(site) as server:
        result = await run(_settings(tmp_path, "research", CONSENTCRAWL_ROBOTS_TTL=1), server, monkeypatch)
        assert _pages(server) == ["/a", "/b"]  # the reserved pages were never requested
    assert site.reads == 2
    assert _denied(result) == {"c": "terms.signal.tdmrep", "d": "terms.signal.tdmrep"}


async def run(settings: dict[str, Any], server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    from tests.conftest import run_crawl

    return await run_crawl(ConsentListSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
