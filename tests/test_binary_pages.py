"""A page Scrapy types as binary (a plain ``Response``: a type it does not map, such as
``application/octet-stream``, and a control byte such as a form feed in the first 5000 bytes, so that its body
sniffing calls it binary) still reaches the callback, which reads ``response.body`` itself (a crawler that keeps
raw bodies for training does exactly that). Its meta robots must be read as for any page: the response phase read
tags only in text responses, compressed bodies and gzip bytes, and handed such a page with ``noai`` to the
callback.

Real crawls against the lenient ``people`` site of :mod:`tests.lenient`, judged by the callbacks that ran and the
audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, Response
from tests.lenient import LenientPeople, ListLogic, crawl, make_spider, people_settings, record_yaml
from tests.test_hunt import AI_PLATFORMS_YAML, BASE, _noai_page


class RawLogic(ListLogic):
    """Keeps every page's body as it came, decoded by the spider itself."""

    follow_links = False

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"url": response.url, "type": type(response).__name__, "text": response.body.decode("utf-8", "replace")}


def _binary(html_body: str, content_type: str | None) -> Any:
    body = html_body.replace("<body>", "<body>\f").encode("utf-8")  # a form feed: Scrapy's sniffing says binary

    def serve(request: Any) -> Response:
        return Response(200, {"Content-Type": content_type} if content_type else {}, body)

    return serve


@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/png", None])
@deferred_f_from_coro_f
async def test_a_page_scrapy_types_as_binary_is_read_for_meta_robots(
    content_type: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = people_settings(tmp_path, CONSENTCRAWL_PURPOSE="ai-training",
                               records=[record_yaml("101", purposes="[research, ai-training]")])
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(AI_PLATFORMS_YAML)
    app = LenientPeople()
    page = _noai_page("noai-page")
    app.pages["/noai"] = _binary(page, content_type)
    app.pages["/plain"] = _binary(page.replace('content="noai, noimageai"', 'content="index"'), content_type)
    spidercls = type("Spider", (make_spider("ConsentSpider", RawLogic),), {"purpose": "ai-training"})
    with LocalServer(app) as server:
        result = await crawl(spidercls, settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/plain", f"{BASE}/noai"])
    types = {item["url"]: item["type"] for item in result.items}
    assert types.get(f"{BASE}/plain") == "Response", f"control: the page is not a binary response: {result.items}"
    assert f"{BASE}/noai" not in result.seen, f"noai in a binary-typed page did not drop it: {result.items}"
    assert any(e.get("reason") == "response.meta-robots" and e.get("url", "").endswith("/noai")
               for e in result.audit), result.denies()
