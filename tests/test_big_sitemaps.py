"""A sitemap larger than 32 MiB once decompressed (the sitemaps protocol allows 50 MB) is read by the response
phase up to what Scrapy itself decompresses for the spider (``DOWNLOAD_MAXSIZE``, the request's
``download_maxsize`` meta), so a ``SitemapSpider`` follows it; one Scrapy would refuse to decompress (over that
limit) is still denied.

Real crawls of a ``SitemapSpider`` against the lenient ``people`` site of :mod:`tests.lenient`, judged by the
site's served log and the audit log. The sitemap is built from a repeated pattern (comments, which the sitemap
parser drops), so its gzip stream is small and the crawl fast; the profiles it lists come after the padding, so a
sitemap read only in part lists none of them.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.spiders import SitemapSpider
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl import ConsentSpider
from consentcrawl.cli import main
from consentcrawl.config import ConsentConfig
from consentcrawl.errors import ConfigError
from consentcrawl.robots.body import page_body
from consentcrawl_demo.server import LocalServer, Response
from tests.lenient import HOST, LenientPeople, crawl, people_settings, write_config

BASE = f"http://{HOST}"
MIB = 1024 * 1024
#: the sitemap's decompressed size: over the 32 MiB the response phase used to stop at, under the 50 MB allowed
SITEMAP_SIZE = 40 * MIB


def _sitemap(size: int = SITEMAP_SIZE) -> bytes:
    """A urlset of about ``size`` bytes: padding comments first, then 101 (authorized) and 107 (not)."""
    head = b'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
    tail = (f"<url><loc>{BASE}/u/101</loc></url><url><loc>{BASE}/u/107</loc></url></urlset>").encode()
    comment = b"<!--" + b"pad " * 16_000 + b"-->\n"
    return head + comment * ((size - len(head) - len(tail)) // len(comment) + 1) + tail


_SITEMAP_GZ = gzip.compress(_sitemap(), compresslevel=9)


class SitemapLogic:
    """A ``SitemapSpider`` over one sitemap, its request's ``download_maxsize`` meta set when ``maxsize_meta`` is."""

    sitemap_urls: list[str] = []
    maxsize_meta: Any = None
    seen: list[str]

    async def start(self) -> AsyncIterator[Any]:
        meta = {} if self.maxsize_meta is None else {"download_maxsize": self.maxsize_meta}
        for url in self.sitemap_urls:
            yield scrapy.Request(url, callback=self._parse_sitemap, meta=meta)  # type: ignore[attr-defined]

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"url": response.url, "name": response.css(".name::text").get()}


def _serve(app: LenientPeople, coded: bool) -> str:
    """The sitemap on ``app``: ``.xml.gz`` gzip bytes without a ``Content-Encoding`` (as a static file server
    sends one), or XML with ``Content-Encoding: gzip``; its URL."""
    if coded:
        app.pages["/sitemap.xml"] = lambda request: Response(
            200, {"Content-Type": "application/xml", "Content-Encoding": "gzip"}, _SITEMAP_GZ)
        return f"{BASE}/sitemap.xml"
    app.pages["/sitemap.xml.gz"] = lambda request: Response(200, {"Content-Type": "application/x-gzip"}, _SITEMAP_GZ)
    return f"{BASE}/sitemap.xml.gz"


async def _crawl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, coded: bool, maxsize_meta: Any = None,
                 attributes: dict[str, Any] | None = None, **settings: Any) -> tuple[LenientPeople, str, Any]:
    app = LenientPeople()
    url = _serve(app, coded)
    spidercls = type("BigSitemap", (SitemapLogic, SitemapSpider, ConsentSpider),
                     {"name": "bigsitemap", "purpose": "research", "sitemap_urls": [url],
                      "maxsize_meta": maxsize_meta, **(attributes or {})})
    with LocalServer(app) as server:
        result = await crawl(spidercls, people_settings(tmp_path, **settings), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    return app, url, result


@pytest.mark.parametrize("coded", [False, True], ids=["xml.gz", "content-encoding"])
@deferred_f_from_coro_f
async def test_a_sitemap_over_32_mib_is_followed(coded: bool, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the response phase decompressed at most 32 MiB, denied the 40 MiB sitemap ``error.internal``
    (Scrapy decompresses up to ``DOWNLOAD_MAXSIZE``, 1 GiB by default) and the spider fetched none of its
    pages. Now the allowed profile it lists is fetched, the one not allowed still is not."""
    app, url, result = await _crawl(tmp_path, monkeypatch, coded)
    assert url in {s.target for s in app.served}, app.describe()
    assert not [d for d in result.denies() if d[1] == url], result.denies()
    assert "101" in app.people_served(), f"the sitemap's allowed profile was not fetched\n{app.describe()}"
    assert f"{BASE}/u/101" in result.seen
    assert "107" not in app.people_served(), f"a profile the crawl may not fetch was fetched\n{app.describe()}"


#: case -> (Content-Encoding on the sitemap, DOWNLOAD_MAXSIZE or None, the request's download_maxsize meta or None,
#: whether the sitemap is read: Scrapy decompresses it within that limit, so the response phase reads it too)
LIMITS: dict[str, tuple[bool, int | None, Any, bool]] = {
    "DOWNLOAD_MAXSIZE below it, xml.gz": (False, 16 * MIB, None, False),
    "DOWNLOAD_MAXSIZE below it, content-encoding": (True, 16 * MIB, None, False),
    "DOWNLOAD_MAXSIZE 0 (no limit)": (False, 0, None, True),
    "meta raises DOWNLOAD_MAXSIZE": (False, 16 * MIB, 64 * MIB, True),
    "meta raises DOWNLOAD_MAXSIZE, content-encoding": (True, 16 * MIB, 64 * MIB, True),
    "meta lowers it": (False, None, 16 * MIB, False),
    "meta lowers it, content-encoding": (True, None, 16 * MIB, False),
    "meta 0 (no limit)": (False, 16 * MIB, 0, True),
}


@pytest.mark.parametrize("case", sorted(LIMITS))
@deferred_f_from_coro_f
async def test_the_decompression_limit_is_scrapys(case: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit is the one Scrapy decompresses the sitemap within (``DOWNLOAD_MAXSIZE``, the request's
    ``download_maxsize`` meta first, ``0`` for none): within it the sitemap's allowed profile is fetched; over it
    (Scrapy would drop the sitemap: ``IgnoreRequest``, or ``SitemapSpider`` reads no sitemap) the sitemap is
    denied ``error.internal``, and nothing it lists is fetched."""
    coded, maxsize, meta, read = LIMITS[case]
    settings = {} if maxsize is None else {"DOWNLOAD_MAXSIZE": maxsize}
    app, url, result = await _crawl(tmp_path, monkeypatch, coded, meta, **settings)
    denies = [d for d in result.denies() if d[1] == url]
    if read:
        assert not denies, denies
        assert "101" in app.people_served(), f"the sitemap's allowed profile was not fetched\n{app.describe()}"
    else:
        assert denies == [("response", url, "error.internal")], result.denies()
        assert app.people_served() == [], app.describe()
    assert "107" not in app.people_served(), f"a profile the crawl may not fetch was fetched\n{app.describe()}"


@pytest.mark.filterwarnings("ignore:.*download_maxsize.*:scrapy.exceptions.ScrapyDeprecationWarning")
@pytest.mark.parametrize(("attribute", "read"), [(16 * MIB, False), (64 * MIB, True)])
@deferred_f_from_coro_f
async def test_the_spiders_download_maxsize_attribute_is_read_as_scrapy_reads_it(
    attribute: int, read: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A spider's ``download_maxsize`` attribute (deprecated by Scrapy, still read by it) wins over
    ``DOWNLOAD_MAXSIZE``, as in Scrapy: below the sitemap it is denied, above it (the setting below) it is read."""
    app, url, result = await _crawl(tmp_path, monkeypatch, False, attributes={"download_maxsize": attribute},
                                    DOWNLOAD_MAXSIZE=0 if not read else 16 * MIB)
    denies = [d for d in result.denies() if d[1] == url]
    if read:
        assert not denies, denies
        assert "101" in app.people_served(), app.describe()
    else:
        assert denies == [("response", url, "error.internal")], result.denies()
        assert app.people_served() == [], app.describe()


def test_page_body_limits() -> None:
    """The reading itself, as Scrapy's ``_check_max_size`` counts: within the limit the whole page, ``0`` no
    limit, over it or negative (Scrapy decompresses nothing then) a ValueError; a stream cut short or corrupt is
    a ValueError whatever the limit; a body not compressed is never limited."""
    page = b"<html><head></head><body>" + b"x" * 100_000 + b"</body></html>"
    packed = gzip.compress(page)
    for limit in (len(page), len(page) + 1, 0):
        assert page_body(packed, None, limit) == page
        assert page_body(packed, b"gzip", limit) == page
    for limit in (len(page) - 1, -1):
        for coding in (None, b"gzip"):
            with pytest.raises(ValueError, match=r"more than|limit is -1"):
                page_body(packed, coding, limit)
    for limit in (0, len(page)):
        with pytest.raises(ValueError, match=r"ends before|cannot decompress"):
            page_body(packed[:-100], None, limit)
        with pytest.raises(ValueError, match="cannot decompress"):
            page_body(packed[:20] + b"garbage" * 10, b"gzip", limit)
    assert page_body(page, None, -1) is page


@pytest.mark.parametrize("maxsize", [None, 16 * MIB])
def test_check_fetch_reads_a_big_sitemap_within_the_projects_limit(
    maxsize: int | None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``consentcrawl check --fetch`` decompresses within the project's ``DOWNLOAD_MAXSIZE`` (a ``--settings``
    module's; Scrapy's default outside a project), as the crawl does: the 40 MiB sitemap is allowed, and denied
    ``error.internal`` where the project's limit is below it."""
    platforms, authorizations = write_config(tmp_path)
    options = []
    if maxsize is not None:
        (tmp_path / "maxsize_settings.py").write_text(f"DOWNLOAD_MAXSIZE = {maxsize}\n")
        monkeypatch.chdir(tmp_path)
        options = ["--settings", "maxsize_settings"]
    app = LenientPeople()
    url = _serve(app, coded=False)
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        code = main(["check", url, "--purpose", "research", "--json", "--fetch", "--platforms", str(platforms),
                     "--authorizations", str(authorizations), *options])
        out, err = capsys.readouterr()
    assert url in {s.target for s in app.served}, app.describe()
    reason = json.loads(out)["reason"] if out.strip() else err
    assert (code, reason) == ((1, "error.internal") if maxsize else (0, "subject.not-a-profile")), (code, out, err)


def test_a_download_maxsize_that_is_not_a_number_is_a_config_error(tmp_path: Path) -> None:
    """A ``DOWNLOAD_MAXSIZE`` that is not a whole number stops the crawl (and ``check``) before it starts, the
    setting named, rather than denying every compressed page."""
    settings = people_settings(tmp_path, DOWNLOAD_MAXSIZE="a lot")
    with pytest.raises(ConfigError) as raised:
        ConsentConfig.from_settings(settings)
    assert raised.value.source == "DOWNLOAD_MAXSIZE", raised.value
    assert ConsentConfig.from_settings(people_settings(tmp_path)).download_maxsize == 1024 * MIB
    assert ConsentConfig.from_settings(people_settings(tmp_path, DOWNLOAD_MAXSIZE="0")).download_maxsize == 0
