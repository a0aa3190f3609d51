"""A file a media pipeline has in its store (``FILES_STORE``) and hands to an item without fetching it (``status:
uptodate``), under robots.txt and the site's signals as they are now.

Two real crawls of the lenient site with one files store: the first downloads the file, then the site's robots.txt
disallows it (or its signals reserve it), and the second crawl's item asks for the same file. Judged by the items'
``files``, the server's request log and the audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, Response
from tests.lenient import HOST, LenientPeople, Robots, crawl, make_spider, people_settings

BASE = f"http://{HOST}"
#: on the site's other host: an origin the second crawl has fetched nothing from when the store hands the file over
FILE_HOST = f"www.{HOST}"
FILE = f"http://{FILE_HOST}/files/a.txt"
TDMREP = '[{"location": "/files/*", "tdm-reservation": 1}]'


class PageWithAFile:
    """One page, whose item asks the files pipeline for :data:`FILE`."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/doc", callback=self.parse, dont_filter=True)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"url": response.url, "file_urls": [FILE]}


async def _two_crawls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app: LenientPeople,
                      between: Any) -> tuple[Any, Any]:
    results = []
    for n in (1, 2):
        run = tmp_path / f"crawl{n}"
        run.mkdir()
        settings = people_settings(run, FILES_STORE=str(tmp_path / "files"),
                                   ITEM_PIPELINES={"scrapy.pipelines.files.FilesPipeline": 1})
        with LocalServer(app) as server:
            results.append(await crawl(make_spider("ConsentSpider", PageWithAFile), settings, proxy=server.proxy,
                                       monkeypatch=monkeypatch))
        if n == 1:
            between()
    return results[0], results[1]


def _fetched(app: LenientPeople) -> int:
    return sum(1 for s in app.served if s.path == "/files/a.txt")


def _robots_disallow(app: LenientPeople) -> None:
    app.robots[FILE_HOST] = Robots("User-agent: *\nDisallow: /files/\n")


def _robots_unavailable(app: LenientPeople) -> None:
    app.robots[FILE_HOST] = Robots(status=503)


def _tdm_reserved(app: LenientPeople) -> None:
    app.pages["/.well-known/tdmrep.json"] = lambda request: Response(200, {"Content-Type": "application/json"}, TDMREP)


@pytest.mark.parametrize(("change", "reason"), [(_robots_disallow, "robots.disallowed"),
                                                (_robots_unavailable, "robots.unreachable"),
                                                (_tdm_reserved, "terms.signal.tdmrep")])
@deferred_f_from_coro_f
async def test_a_stored_file_the_site_now_refuses_is_not_handed_over(
        change: Any, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. The files store handed the file over as ``uptodate``, decided by the link check alone (terms and the
    person): robots.txt and the site's signals, read when the file is sent, were never applied to it."""
    app = LenientPeople().page("/doc", "<p>a document</p>").page("/files/a.txt", "the file")
    first, second = await _two_crawls(tmp_path, monkeypatch, app, lambda: change(app))
    assert [f["url"] for f in first.items[0].get("files", [])] == [FILE], f"control: {first.items}"
    assert _fetched(app) == 1, app.describe()
    assert len(second.items) == 1 and second.items[0].get("files") == [], second.items
    denies = second.audit_for("/files/a.txt", verdict="deny")
    assert [d["reason"] for d in denies] == [reason], second.denies()


@deferred_f_from_coro_f
async def test_a_stored_file_the_site_still_allows_is_handed_over(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: nothing changed, the store hands the file over without a fetch."""
    app = LenientPeople().page("/doc", "<p>a document</p>").page("/files/a.txt", "the file")
    _, second = await _two_crawls(tmp_path, monkeypatch, app, lambda: None)
    assert _fetched(app) == 1, app.describe()
    assert [(f["url"], f["status"]) for f in second.items[0].get("files", [])] == [(FILE, "uptodate")], second.items
    assert not second.denies(), second.denies()
