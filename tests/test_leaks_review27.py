"""What the review of left16 found (review27).

- an ended crawl's people stopped being hidden in asyncio's and Twisted's lines as soon as the next crawl's crawler
  was made, before that crawl's filter read any line: a next crawl whose start failed (a project's extension
  raising as Scrapy builds it) never read one, and a task the first crawl kept, collected after, named the person
  it denied at ERROR;
- and they were forgotten for good as the next crawl started: once that crawl had ended (having denied no one, or not
  that person), a task the first crawl kept, collected after, named the person the first crawl denied at ERROR. They
  are set aside while the next crawl runs, and hidden again as it ends, but for the people it allows.

Real crawls against the lenient people site; judged by the server's log and the log records at INFO and above.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import LenientPeople, crawl, make_spider, people_settings
from tests.test_leaks_left16 import BASE, DENIED, KeepsTasks, collect_kept


class FailingExtension:
    """A project's extension that raises as Scrapy builds it: the crawl never gets an engine."""

    @classmethod
    def from_crawler(cls, crawler: Any) -> Any:
        raise RuntimeError("the project's extension could not start")


@pytest.mark.parametrize("kind", ["ConsentSpider", "ADDONS"])
@deferred_f_from_coro_f
async def test_a_next_crawl_whose_start_failed_does_not_unhide_the_ended_crawls_people(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, KeepsTasks), people_settings(tmp_path / "first"),
                             proxy=server.proxy, monkeypatch=monkeypatch)
        with pytest.raises(RuntimeError, match="could not start"):
            await crawl(make_spider(kind, KeepsTasks), people_settings(
                tmp_path / "second", EXTENSIONS={f"{__name__}.FailingExtension": 0}),
                proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.people_served() == ["101"], app.describe()  # the first crawl's; the second fetched nothing
    kept = result.crawler.spider.kept
    assert len(kept) == 4
    written = [f"{r.name}: {r.getMessage()} {r.exc_text or ''}" for r in collect_kept(kept, caplog)]
    assert any("never retrieved" in line for line in written), written
    assert any("Unhandled error" in line for line in written), written
    assert not [line for line in written if DENIED.search(line)], written
    assert len([line for line in written if f"{BASE}/u/101" in line]) >= 2, written


class AsksFor101:
    """Fetches 101 (authorized) only: denies no one."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.profile)

    def profile(self, response: Any) -> None:
        self.seen.append(response.url)


@deferred_f_from_coro_f
async def test_an_ended_crawls_people_stay_hidden_after_the_next_crawl_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", KeepsTasks), people_settings(tmp_path / "first"),
                             proxy=server.proxy, monkeypatch=monkeypatch)
        await crawl(make_spider("ConsentSpider", AsksFor101, name="asksfor101"), people_settings(tmp_path / "second"),
                    proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.people_served() == ["101", "101"], app.describe()
    kept = result.crawler.spider.kept
    written = [f"{r.getMessage()} {r.exc_text or ''}" for r in collect_kept(kept, caplog)]
    assert any("never retrieved" in line for line in written), written
    assert not [line for line in written if DENIED.search(line)], written
    assert [line for line in written if f"{BASE}/u/101" in line], written  # allowed by both: in the line
