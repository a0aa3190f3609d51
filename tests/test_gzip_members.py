"""A page served with ``Content-Encoding: gzip`` whose body is several gzip members (a server or proxy that
compresses a page in parts, then joins them) reaches the callback whole: Scrapy's ``gunzip`` (``GzipFile``) reads
every member, zero padding between them skipped. The response phase read the first member only (``zlib`` stops
at a member's end), so a meta robots tag in a later member was never seen, though the callback read it.

Real crawls against the lenient ``people`` site of :mod:`tests.lenient`, judged by the callbacks that ran and the
audit log.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, Response
from tests.lenient import LenientPeople, ListLogic, crawl, make_spider, people_settings, record_yaml
from tests.test_hunt import AI_PLATFORMS_YAML, BASE, _noai_page


def _members(html_body: str, padding: bytes = b"", layers: int = 1) -> Any:
    """The page as two gzip members (the tag in the second), ``padding`` between them, gzipped ``layers`` times
    (``Content-Encoding: gzip`` that many times)."""
    data = html_body.encode("utf-8")
    cut = data.index(b"<meta")
    body = gzip.compress(data[:cut]) + padding + gzip.compress(data[cut:])
    for _ in range(layers - 1):
        body = gzip.compress(body)

    def serve(request: Any) -> Response:
        return Response(200, {"Content-Type": "text/html; charset=utf-8",
                              "Content-Encoding": ", ".join(["gzip"] * layers)}, body)

    return serve


@pytest.mark.parametrize("shape", ["two members", "zero padding", "inner layer"])
@deferred_f_from_coro_f
async def test_every_member_of_a_gzip_page_is_read(shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = people_settings(tmp_path, CONSENTCRAWL_PURPOSE="ai-training",
                               records=[record_yaml("101", purposes="[research, ai-training]")])
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(AI_PLATFORMS_YAML)
    app = LenientPeople()
    page = _noai_page("noai-page")
    app.pages["/noai"] = _members(page, padding=b"\0\0\0" if shape == "zero padding" else b"",
                                  layers=2 if shape == "inner layer" else 1)
    app.pages["/plain"] = _members(page.replace('content="noai, noimageai"', 'content="index"'))  # control
    spidercls = type("Spider", (make_spider("ConsentSpider", ListLogic),), {"purpose": "ai-training"})
    with LocalServer(app) as server:
        result = await crawl(spidercls, settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/plain", f"{BASE}/noai"])
    assert f"{BASE}/plain" in result.seen, f"control: a gzip page in two members was not read: {result.denies()}"
    assert f"{BASE}/noai" not in result.seen, "noai in the second gzip member did not drop the page"
    assert any(e.get("reason") == "response.meta-robots" and e.get("url", "").endswith("/noai")
               for e in result.audit), result.denies()
