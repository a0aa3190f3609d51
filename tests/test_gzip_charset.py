"""A gzip page without ``Content-Encoding`` is gunzipped by the spider itself, which then decodes it as it
chooses (``gzip.decompress(body).decode("utf-8")``, or ``response.replace(body=...)``, which keeps the charset of
the gzip response's header): the byte order mark the inner page starts with, which the response phase put first,
says nothing of how the spider reads it. A page whose refusal shows in any of the encodings it can be read in is
denied.

Real crawls against the lenient ``people`` site of :mod:`tests.lenient` (through ``tests.test_gzip_pages``),
judged by the site's served log, the callbacks that ran, the items and the audit log.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import crawl, make_spider, people_settings, record_yaml, secret_name
from tests.test_gzip_pages import AI_PLATFORMS_YAML, BASE, GunzipLogic, GzipPeople, _card


class ReplaceLogic(GunzipLogic):
    """A spider that reads the gunzipped page as a response of its own: ``response.replace`` keeps the encoding
    the gzip response was read in (its header's charset)."""

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        page = response.replace(body=gzip.decompress(response.body))
        name = page.css(".name::text").get()
        if name:
            yield {"url": response.url, "name": name}


#: case -> (spider logic, Content-Type, the inner page's first bytes)
CASES: dict[str, tuple[type, str, bytes]] = {
    "UTF-16 BOM, decoded as UTF-8": (GunzipLogic, "application/x-gzip", b"\xff\xfe"),
    "UTF-16 BOM, replace() with the header's charset": (ReplaceLogic, "text/html; charset=utf-8", b"\xff\xfe"),
    "UTF-32 BOM, decoded as UTF-8": (GunzipLogic, "application/x-gzip", b"\xff\xfe\x00\x00"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@deferred_f_from_coro_f
async def test_a_gzip_page_is_read_in_each_encoding_the_spider_may_read_it_in(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: the inner page starts with a UTF-16 (or UTF-32) byte order mark and is ASCII after it; the response
    phase read it as UTF-16, found nothing, and the spider, reading the same bytes as UTF-8 (the BOM two
    replacement characters), got the refusing person's name as an item."""
    logic, content_type, prefix = CASES[case]
    records = [record_yaml(p, purposes="[research, ai-training]") for p in ("101", "102")]
    settings = people_settings(tmp_path, records=records, CONSENTCRAWL_PURPOSE="research")
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(AI_PLATFORMS_YAML)
    app = GzipPeople()
    app.gz["/u/101"] = (content_type, gzip.compress(prefix + _card("101", "Please do not scrape me. #nobot")))
    app.gz["/u/102"] = (content_type, gzip.compress(prefix + _card("102")))  # control: says nothing
    spidercls = make_spider("ConsentSpider", logic)
    spidercls = type(spidercls.__name__, (spidercls,), {"purpose": "research"})
    with LocalServer(app) as server:
        result = await crawl(spidercls, settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/101", f"{BASE}/u/102"])
    names = [item.get("name") for item in result.items]
    assert secret_name("102") in names, f"control: the spider reads such a page\n{result.items}\n{app.describe()}"
    assert secret_name("101") not in names, f"the refusing person's name reached the items: {result.items}"
    assert f"{BASE}/u/101" not in result.seen, "the callback ran on the refused page"
    denies = [(phase, url, why) for phase, url, why in result.denies() if url == f"{BASE}/u/101"]
    assert ("response", f"{BASE}/u/101", "subject.refused-on-page") in denies, f"{denies}\n{app.describe()}"
