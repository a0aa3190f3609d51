"""Pages read as the spider reads them: a meta robots tag a template put in the ``<body>`` (a spider's
``.css("meta[name=robots]")`` finds it there); a refusal in a microformats1 ``vcard``, in one of two cards that
name no URL (whose it is cannot be told: the page is denied), or in the ``og:description`` of a profile page that
has an h-card too; zstd bytes served with no ``Content-Encoding`` that the spider
decompresses itself (``zstd.decompress``, by the frame's magic bytes), and a ``deflate`` body over the decompression
limit, denied with the limit as its recorded cause.

Real crawls against the lenient ``people`` site of :mod:`tests.lenient`, judged by the site's served log, the
callbacks that ran, the items and the audit log.
"""

from __future__ import annotations

import gzip
import importlib
import json
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.lenient import HOST, ListLogic, crawl, make_spider, people_settings, record_yaml, secret_name
from tests.test_gzip_pages import GzipPeople, _card, check_fetch_answers
from tests.test_hunt import AI_PLATFORMS_YAML

PLATFORMS_YAML = AI_PLATFORMS_YAML.replace("[research, ai-training]", "[research, ai-training, search-indexing]")

zstd: Any = importlib.import_module("compression.zstd" if sys.version_info >= (3, 14) else "backports.zstd")

BASE = f"http://{HOST}"
MAXSIZE = 16 * 1024 * 1024  #: the crawls' DOWNLOAD_MAXSIZE, below what the bombs decompress to


class DecompressLogic(ListLogic):
    """A spider for a site of ``.gz`` and ``.zst`` pages: it decompresses the body itself by its magic bytes (as
    ``gzip.decompress`` and ``zstd.decompress`` look for them), then reads the page."""

    follow_links = False

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        body = response.body
        while body[:2] == b"\x1f\x8b" or body[:4] == b"\x28\xb5\x2f\xfd":
            body = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else zstd.decompress(body)
        text = body.decode("utf-8", "replace")
        if text.lstrip().startswith("{"):
            yield {"url": response.url, "name": json.loads(text).get("name")}
            return
        name = scrapy.Selector(text=text).css(".name::text").get()
        if name:
            yield {"url": response.url, "name": name}


@dataclass
class CodedPeople(GzipPeople):
    """The people site, with some paths answered with a ``Content-Encoding`` too."""

    coded: dict[str, str] = field(default_factory=dict)  #: path -> Content-Encoding

    def _answer(self, request: LoggedRequest, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        kind, response = super()._answer(request, path, kind, person)
        if path in self.coded:
            response = Response(response.status, {**response.headers, "Content-Encoding": self.coded[path]},
                                response.body)
        return kind, response


def _in_body(person: str, meta: str) -> bytes:
    """A profile whose template put a meta tag in the body, after the card."""
    return _card(person).replace(b"</body>", meta.encode() + b"</body>")


ZSTD = "application/zstd"
#: case -> (purpose, path, Content-Type, Content-Encoding, body as sent, the deny's reason, cause in the evidence)
CASES: dict[str, tuple[str, str, str, str | None, bytes, str, str]] = {
    "meta robots noindex in the body of a profile": (
        "search-indexing", "/u/101", "text/html; charset=utf-8", None,
        _in_body("101", '<meta name="robots" content="noindex">'), "subject.refused-on-page", ""),
    "meta robots noai in the body, not a profile": (
        "ai-training", "/about", "text/html; charset=utf-8", None,
        _in_body("about", '<meta name="robots" content="noai">'), "response.meta-robots", ""),
    "meta robots noai, a NUL byte in its tag name (parsel drops NULs before lxml parses)": (
        "ai-training", "/about", "text/html; charset=utf-8", None,
        _in_body("about", '<met\x00a name="robots" content="noai">'), "response.meta-robots", ""),
    "meta robots noindex of a profile, NUL bytes in its values": (
        "search-indexing", "/u/101", "text/html; charset=utf-8", None,
        _in_body("101", '<meta name="rob\x00ots" content="noi\x00ndex">'), "subject.refused-on-page", ""),
    "an h-card with a NUL byte in its class, #nobot in the bio": (
        "research", "/u/101", "text/html; charset=utf-8", None,
        (f'<html><body><div class="h-c\x00ard"><h1 class="p-name name">{secret_name("101")}</h1>'
         '<p class="p-note">#nobot</p></div></body></html>').encode(), "subject.refused-on-page", ""),
    "an h-card, #no<NUL>bot in the bio": (
        "research", "/u/101", "text/html; charset=utf-8", None,
        (f'<html><body><div class="h-card"><h1 class="p-name name">{secret_name("101")}</h1>'
         '<p class="p-note">#no\x00bot</p></div></body></html>').encode(), "subject.refused-on-page", ""),
    "meta X-Robots-Tag noai in the body, gzip bytes": (
        "ai-training", "/about", "application/x-gzip", None,
        gzip.compress(_in_body("about", '<meta http-equiv="X-Robots-Tag" content="noai">')),
        "response.meta-robots", ""),
    "two h-cards naming no URL, the refusal in one": (
        "research", "/u/101", "text/html; charset=utf-8", None,
        ('<html><body><div class="h-card"><span class="p-name">Sam</span><p class="p-note">Gardener.</p></div>'
         f'<div class="h-card profile"><h1 class="name p-name">{secret_name("101")}</h1>'
         '<p class="p-note">#nobot</p></div></body></html>').encode(), "subject.refused-on-page", ""),
    "microformats1 vcard": (
        "research", "/u/101", "text/html; charset=utf-8", None,
        (f'<html><body><div class="vcard"><h1 class="name fn">{secret_name("101")}</h1>'
         '<p class="note">Please do not scrape me. #nobot</p></div></body></html>').encode(),
        "subject.refused-on-page", ""),
    "an h-card and og:type profile, the refusal in og:description": (
        "research", "/u/101", "text/html; charset=utf-8", None,
        _card("101", "Gardener.", head='<meta property="og:type" content="profile">'
              '<meta property="og:description" content="Gardener. #nobot">'), "subject.refused-on-page", ""),
    "zstd: nobot in the bio": (
        "research", "/u/101", ZSTD, None, zstd.compress(_card("101", "Please do not scrape me. #nobot")),
        "subject.refused-on-page", ""),
    "zstd: two frames, the refusal in the second": (
        "research", "/u/101", ZSTD, None,
        zstd.compress(_card("101", "Please do not scrape me. #nobot")[:60])
        + zstd.compress(_card("101", "Please do not scrape me. #nobot")[60:]),
        "subject.refused-on-page", ""),
    "zstd in gzip": (
        "research", "/u/101", "application/gzip", None, gzip.compress(zstd.compress(_card("101", "#nobot"))),
        "subject.refused-on-page", ""),
    "zstd: meta robots noai, not a profile": (
        "ai-training", "/about", ZSTD, None, zstd.compress(_card("about", head='<meta name="robots" content="noai">')),
        "response.meta-robots", ""),
    "zstd: cut short": (
        "research", "/u/101", ZSTD, None, zstd.compress(_card("101"))[:-6], "error.internal", "end-of-frame"),
    "zstd: decompression bomb": (
        "research", "/u/101", ZSTD, None, zstd.compress(_card("101") + b" " * (MAXSIZE + 1024)),
        "error.internal", f"decompresses to more than {MAXSIZE} bytes"),
    "deflate (zlib format) over the limit": (
        "research", "/u/101", "text/html; charset=utf-8", "deflate",
        zlib.compress(_card("101") + b" " * (MAXSIZE + 1024)), "error.internal",
        f"decompresses to more than {MAXSIZE} bytes"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@deferred_f_from_coro_f
async def test_a_page_is_read_as_the_spider_reads_it(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: the body's meta tag was not read (the scan stopped at ``<body``), and zstd bytes were read as they
    came, so the callback, which finds the tag or decompresses the body itself, got the refusing person's page
    and their other page (``/@101``) was fetched; the deflate bomb was denied with a raw-deflate error as its
    cause. A page that cannot be read is denied ``error.internal`` with the cause (its limit) in the audit log."""
    purpose, path, content_type, coding, body, reason, cause = CASES[case]
    if content_type != "text/html; charset=utf-8":
        assert b"nobot" not in body and b"noai" not in body, "the case's refusal must not be readable as sent"
    records = [record_yaml(p, purposes="[research, ai-training, search-indexing]") for p in ("101", "102")]
    settings = people_settings(tmp_path, records=records, CONSENTCRAWL_PURPOSE=purpose, DOWNLOAD_MAXSIZE=MAXSIZE)
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(PLATFORMS_YAML)
    app = CodedPeople()
    app.gz[path] = (content_type, body)
    app.gz["/u/102"] = (ZSTD, zstd.compress(_card("102")))  # control: a zstd page that says nothing
    if coding is not None:
        app.coded[path] = coding
    spidercls = make_spider("ConsentSpider", DecompressLogic)
    spidercls = type(spidercls.__name__, (spidercls,), {"purpose": purpose})
    urls = [f"{BASE}{path}", f"{BASE}/u/102"] + ([f"{BASE}/@101"] if path == "/u/101" else [])
    with LocalServer(app) as server:
        result = await crawl(spidercls, settings, proxy=server.proxy, monkeypatch=monkeypatch, urls=urls)
    names = [item.get("name") for item in result.items]
    assert secret_name("102") in names, f"control: the spider reads a zstd page\n{result.denies()}\n{app.describe()}"
    assert [s.target for s in app.served if s.path == path], f"the page was not fetched\n{app.describe()}"
    assert f"{BASE}{path}" not in result.seen, f"the callback ran on the page: items {result.items}"
    assert not [item for item in result.items if item["url"] == f"{BASE}{path}"], result.items
    denies = [(phase, url, why) for phase, url, why in result.denies() if url == f"{BASE}{path}"]
    assert ("response", f"{BASE}{path}", reason) in denies, f"{denies}\n{app.describe()}"
    if cause:
        messages = [json.dumps(e.get("evidence")) for e in result.audit_for(path, reason=reason)]
        assert any(cause in m for m in messages), messages
        assert not any("invalid" in m or "incorrect header" in m for m in messages), messages
    if path == "/u/101" and reason == "subject.refused-on-page":
        assert app.people_served().count("101") == 1, f"the refusing person's other page was fetched\n{app.describe()}"
        assert secret_name("101") not in names, result.items



@pytest.mark.parametrize("case", ["meta robots noindex in the body of a profile", "zstd: nobot in the bio",
                                  "zstd: decompression bomb", "two h-cards naming no URL, the refusal in one",
                                  "microformats1 vcard", "an h-card and og:type profile, the refusal in og:description",
                                  "deflate (zlib format) over the limit",
                                  "meta robots noindex of a profile, NUL bytes in its values"])
def test_check_fetch_reads_the_page_as_the_crawl_does(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``consentcrawl check --fetch`` decides each page as the crawl's response phase does (same reason), with the
    project's ``DOWNLOAD_MAXSIZE``."""
    from tests.lenient import write_config

    purpose, path, content_type, coding, body, reason, _cause = CASES[case]
    platforms, authorizations = write_config(
        tmp_path, [record_yaml(p, purposes="[research, ai-training, search-indexing]") for p in ("101", "102")])
    platforms.write_text(PLATFORMS_YAML)
    (tmp_path / "limit_settings.py").write_text(f"DOWNLOAD_MAXSIZE = {MAXSIZE}\n")
    monkeypatch.chdir(tmp_path)
    app = CodedPeople()
    app.gz[path] = (content_type, body)
    app.gz["/u/102"] = (ZSTD, zstd.compress(_card("102")))
    if coding is not None:
        app.coded[path] = coding
    answers = check_fetch_answers(app, (f"{BASE}{path}", f"{BASE}/u/102"), purpose, platforms, authorizations,
                                  capsys, monkeypatch, "--settings", "limit_settings")
    assert answers[f"{BASE}/u/102"] == (0, "subject.authorized"), f"control: {answers}\n{app.describe()}"
    assert answers[f"{BASE}{path}"] == (1, reason), f"{answers}\n{app.describe()}"
