"""A page served with ``Content-Encoding: gzip`` whose body is several gzip members (a server or proxy that
compresses a page in parts, then joins them) reaches the callback whole: Scrapy's ``gunzip`` (``GzipFile``) reads
every member, zero padding between them skipped. The response phase read the first member only (``zlib`` stops
at a member's end), so a meta robots tag in a later member was never seen, though the callback read it.

Real crawls against the lenient ``people`` site of :mod:`tests.lenient`, judged by the callbacks that ran and the
audit log.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.lenient import LenientPeople, ListLogic, crawl, make_spider, people_settings, record_yaml, write_config
from tests.test_gzip_charset import assert_check_refuses_101
from tests.test_gzip_pages import _card
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


@dataclass
class CodedPeople(LenientPeople):
    """The people site, with some paths answered with ``Content-Encoding: gzip`` bodies as given."""

    coded: dict[str, bytes] = field(default_factory=dict)  #: path -> body as sent

    def _answer(self, request: LoggedRequest, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        if path in self.coded:
            return kind, Response(200, {"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip"},
                                  self.coded[path])
        return super()._answer(request, path, kind, person)


def test_check_fetch_reads_every_member_as_the_crawl_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``consentcrawl check --fetch`` let httpx undo the ``Content-Encoding``, and httpx's gzip decoder stops at
    the first member: the ``#nobot`` in the second was not read, and ``check`` allowed a page the crawl denies."""
    platforms, authorizations = write_config(tmp_path, [record_yaml(p) for p in ("101", "102")])
    page = _card("101", "Please do not scrape me. #nobot")
    cut = page.index(b"#nobot") - 10
    app = CodedPeople()
    app.coded["/u/101"] = gzip.compress(page[:cut]) + gzip.compress(page[cut:])
    app.coded["/u/102"] = gzip.compress(_card("102")[:40]) + gzip.compress(_card("102")[40:])  # control
    assert_check_refuses_101(app, platforms, authorizations, capsys, monkeypatch)
