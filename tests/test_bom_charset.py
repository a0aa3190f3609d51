"""A page whose body is ASCII after a UTF-16 (or UTF-32) byte order mark, served as ``text/html; charset=utf-8``:
Scrapy reads it as UTF-16 (the mark first), and so did the response phase, finding nothing; a spider that decodes
the body itself (``response.body.decode()``, UTF-8, which is common) reads the page's text, the refusing person's
name and their ``#nobot`` with it. The page is read for refusals in UTF-8 as well as in UTF-16 when the encoding
it is read in cannot read ASCII as ASCII; a refusal in either refuses it. With a ``Content-Encoding`` too (the
spider gets the body once ``HttpCompressionMiddleware`` has undone it).

Real crawls against the lenient ``people`` site (through ``tests.test_gzip_pages``), judged by the items, the
callbacks that ran and the audit log.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LoggedRequest, Response
from tests.lenient import ListLogic, make_spider, people_settings, record_yaml
from tests.test_gzip_charset import assert_101_refused
from tests.test_gzip_pages import AI_PLATFORMS_YAML, GzipPeople, _card


class EncodedPeople(GzipPeople):
    """:class:`GzipPeople` whose ``gz`` pages may carry a ``Content-Encoding`` (``encoded``)."""

    encoded: bool = False

    def _answer(self, request: LoggedRequest, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        if path in self.gz and self.encoded:
            content_type, body = self.gz[path]
            return kind, Response(200, {"Content-Type": content_type, "Content-Encoding": "gzip"},
                                  gzip.compress(body))
        return super()._answer(request, path, kind, person)


class DecodesItself(ListLogic):
    """Reads the body as UTF-8 itself."""

    follow_links = False

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        name = scrapy.Selector(text=response.body.decode("utf-8", "replace")).css(".name::text").get()
        if name:
            yield {"url": response.url, "name": name}


#: case -> (byte order mark, Content-Encoding)
CASES = {
    "UTF-16 BOM": (b"\xff\xfe", False),
    "UTF-16 BOM, big-endian": (b"\xfe\xff", False),
    "UTF-32 BOM": (b"\xff\xfe\x00\x00", False),
    "UTF-16 BOM, Content-Encoding gzip": (b"\xff\xfe", True),
}


@pytest.mark.parametrize("case", sorted(CASES))
@deferred_f_from_coro_f
async def test_a_page_ascii_after_a_utf16_bom_is_read_as_utf8_too(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    bom, encoded = CASES[case]
    records = [record_yaml(p, purposes="[research, ai-training]") for p in ("101", "102")]
    settings = people_settings(tmp_path, records=records, CONSENTCRAWL_PURPOSE="research")
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(AI_PLATFORMS_YAML)
    app = EncodedPeople()
    app.encoded = encoded
    app.gz["/u/101"] = ("text/html; charset=utf-8", bom + _card("101", "Please do not scrape me. #nobot"))
    app.gz["/u/102"] = ("text/html; charset=utf-8", bom + _card("102"))  # control: says nothing
    spidercls = type("Decodes", (make_spider("ConsentSpider", DecodesItself),), {"purpose": "research"})
    await assert_101_refused(app, spidercls, settings, monkeypatch)
