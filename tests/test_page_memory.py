"""A large page's body is not kept alive by the page readers' memos once its response is done.

The readers remember what they read of the last bodies (:mod:`consentcrawl.pagehead`): the memos that every
response passes through hold the last few bodies, replaced as the crawl goes on. A memo only some pages reach (the
``<meta>`` tags of a page's body, read for a page whose body has any) held a copy of its last two such pages' bodies
for as long as no other such page came: a crawl that met one large page kept it to its end, and after.

Judged by the allocations left (``tracemalloc``): after a crawl that fetched an 8 MB page, then a few small ones,
no block of that size is alive.
"""

from __future__ import annotations

import gc
import gzip
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.conftest import consent_settings, run_crawl
from tests.test_robots_crawl import HOST, ConsentListSpider

BIG = 8 * 1024 * 1024
#: microdata ``<meta itemprop>`` in the body (which the head's scan does not read), then text up to :data:`BIG`
BIG_PAGE = ("<html><head><title>big</title></head><body>" + '<div itemscope><meta itemprop="name" content="x">'
            + "<p>" + "lorem ipsum " * (BIG // 12) + "</p></div></body></html>").encode()


@pytest.mark.parametrize("coding", [None, "gzip"])
@deferred_f_from_coro_f
async def test_a_large_pages_body_is_released_after_its_response(
        coding: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def app(request: LoggedRequest, headers: dict[str, str]) -> Response:
        if request.path == "/robots.txt":
            return Response(200, {"Content-Type": "text/plain"}, "User-agent: *\nAllow: /\n")
        if request.path == "/big" and coding:  # read (decompressed) before Scrapy's HttpCompressionMiddleware
            return Response(200, {"Content-Type": "text/html; charset=utf-8", "Content-Encoding": coding},
                            gzip.compress(BIG_PAGE, 1))
        if request.path == "/big":
            return Response(200, {"Content-Type": "text/html; charset=utf-8"}, BIG_PAGE)
        if request.path.startswith("/small"):
            return Response.html(f"<html><head><title>{request.path}</title></head><body>small</body></html>")
        return Response(404, {"Content-Type": "text/plain"}, "no")

    ConsentListSpider.urls = [f"http://{HOST}/big", *(f"http://{HOST}/small{n}" for n in range(8))]
    settings: dict[str, Any] = consent_settings(tmp_path, CONSENTCRAWL_PURPOSE="research", CONSENTCRAWL_PLATFORMS=[],
                                                CONSENTCRAWL_AUTHORIZATIONS=None, CONCURRENT_REQUESTS=1,
                                                DOWNLOAD_MAXSIZE=4 * BIG, DOWNLOAD_WARNSIZE=0)
    tracemalloc.start()
    try:
        with LocalServer(app) as server:
            result = await run_crawl(ConsentListSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
            asked = [r.path for r in server.requests]
        del result
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert "/big" in asked and asked[-1].startswith("/small"), asked
    alive = [t for t in snapshot.traces if t.size >= BIG // 2]
    where = "\n\n".join("\n".join(str(frame) for frame in t.traceback) for t in alive)
    assert not alive, f"{len(alive)} block(s) of the large page still alive, allocated at:\n{where}"
