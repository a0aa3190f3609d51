"""A gzip page without ``Content-Encoding`` is gunzipped by the spider itself, which then decodes it as it
chooses (``gzip.decompress(body).decode("utf-8")``, or in the charset of the gzip response's header): the byte
order mark the inner page starts with, which the response phase put first, says nothing of how the spider reads
it. A page whose refusal shows in any of the encodings it can be read in is
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
from tests.lenient import crawl, make_spider, people_settings, record_yaml, secret_name, write_config
from tests.test_gzip_pages import AI_PLATFORMS_YAML, BASE, GunzipLogic, GzipPeople, _card, check_fetch_answers


async def assert_101_refused(app: Any, spidercls: type, settings: dict[str, Any],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A crawl of 101's page (refusing) and 102's (the control, saying nothing) against ``app``: 102 collected,
    nothing of 101 in the items or a callback, and the response phase's deny recorded."""
    with LocalServer(app) as server:
        result = await crawl(spidercls, settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/101", f"{BASE}/u/102"])
    names = [item.get("name") for item in result.items]
    assert secret_name("102") in names, f"control: the spider reads such a page\n{result.items}\n{app.describe()}"
    assert secret_name("101") not in names, f"the refusing person's name reached the items: {result.items}"
    assert f"{BASE}/u/101" not in result.seen, "the callback ran on the refused page"
    denies = [(phase, url, why) for phase, url, why in result.denies() if url == f"{BASE}/u/101"]
    assert ("response", f"{BASE}/u/101", "subject.refused-on-page") in denies, f"{denies}\n{app.describe()}"


def assert_check_refuses_101(app: Any, platforms: Path, authorizations: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``consentcrawl check --fetch`` of 101's page (refusing) and 102's (the control) against ``app``: the same
    answers as the crawl."""
    answers = check_fetch_answers(app, (f"{BASE}/u/101", f"{BASE}/u/102"), "research", platforms, authorizations,
                                  capsys, monkeypatch)
    assert answers[f"{BASE}/u/102"] == (0, "subject.authorized"), f"control: {answers}\n{app.describe()}"
    assert answers[f"{BASE}/u/101"] == (1, "subject.refused-on-page"), f"{answers}\n{app.describe()}"


class HeaderCharsetLogic(GunzipLogic):
    """A spider that decodes the gunzipped page in the charset Scrapy read the gzip response in (its header's)."""

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        text = gzip.decompress(response.body).decode(response.encoding, "replace")
        name = scrapy.Selector(text=text).css(".name::text").get()
        if name:
            yield {"url": response.url, "name": name}


#: case -> (spider logic, Content-Type, the inner page's first bytes)
CASES: dict[str, tuple[type, str, bytes]] = {
    "UTF-16 BOM, decoded as UTF-8": (GunzipLogic, "application/x-gzip", b"\xff\xfe"),
    "UTF-16 BOM, decoded in the header's charset": (HeaderCharsetLogic, "text/html; charset=utf-8", b"\xff\xfe"),
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
    await assert_101_refused(app, spidercls, settings, monkeypatch)


def test_check_fetch_reads_such_a_page_in_each_encoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``consentcrawl check --fetch`` denies it as the crawl does (it read it as UTF-16 only, and allowed it)."""
    platforms, authorizations = write_config(tmp_path, [record_yaml(p) for p in ("101", "102")])
    app = GzipPeople()
    app.gz["/u/101"] = ("application/x-gzip", gzip.compress(b"\xff\xfe" + _card("101", "#nobot")))
    app.gz["/u/102"] = ("application/x-gzip", gzip.compress(b"\xff\xfe" + _card("102")))
    assert_check_refuses_101(app, platforms, authorizations, capsys, monkeypatch)
