"""Pages served with ``Content-Encoding: zstd`` or ``br`` (Scrapy asks for both: ``Accept-Encoding: gzip, deflate,
br, zstd``) are read for meta robots as Scrapy decodes them for the callback: zstd with ``backports.zstd`` (one of
Scrapy's requirements; ``compression.zstd`` from Python 3.14), brotli with ``brotli``.

consentcrawl looked for the ``zstandard`` package, which Scrapy does not use: every zstd page was denied
(``error.internal``), an ordinary one too, though the spider would have read it.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import brotli
import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, Response
from tests.lenient import KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings, record_yaml
from tests.test_hunt import AI_PLATFORMS_YAML, BASE, _noai_page

zstd = importlib.import_module("compression.zstd" if sys.version_info >= (3, 14) else "backports.zstd")


def _plain_page(person: str) -> str:
    return f'<html><head><title>{person}</title></head><body><h1 class="name">{person}</h1></body></html>'


def _encoded(coding: str, html_body: str, cut: bool = False) -> Any:
    data = html_body.encode("utf-8")
    body = zstd.compress(data) if coding == "zstd" else brotli.compress(data)
    if cut:
        body = body[: len(body) // 2]

    def serve(request: Any) -> Response:
        return Response(200, {"Content-Type": "text/html; charset=utf-8", "Content-Encoding": coding}, body)

    return serve


@pytest.mark.parametrize("coding", ["zstd", "br"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_zstd_or_brotli_page_is_read_as_scrapy_decodes_it(
    kind: str, coding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = people_settings(tmp_path, CONSENTCRAWL_PURPOSE="ai-training",
                               records=[record_yaml("101", purposes="[research, ai-training]")])
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(AI_PLATFORMS_YAML)
    app = LenientPeople()
    app.pages["/plain"] = _encoded(coding, _plain_page("plain-page"))
    app.pages["/noai"] = _encoded(coding, _noai_page("noai-page"))
    app.pages["/cut"] = _encoded(coding, _plain_page("cut-page"), cut=True)  # what is missing may refuse
    spidercls = make_spider(kind, ListLogic)
    if kind == "ConsentSpider":
        spidercls = type(spidercls.__name__, (spidercls,), {"purpose": "ai-training"})
    with LocalServer(app) as server:
        result = await crawl(spidercls, settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/plain", f"{BASE}/noai", f"{BASE}/cut"])
    assert f"{BASE}/plain" in result.seen, f"an ordinary {coding} page was not read: {result.denies()}"
    assert f"{BASE}/noai" not in result.seen, f"noai in a {coding} page did not drop it"
    assert any(e.get("reason") == "response.meta-robots" and e.get("url", "").endswith("/noai")
               for e in result.audit), result.denies()
    assert f"{BASE}/cut" not in result.seen, f"a {coding} page cut short reached the callback"
