"""``consentcrawl purge`` on HTTP cache entries whose body is compressed in more than one layer.

The cache keeps a response as the download handler got it, before HttpCompressionMiddleware (it sits further from
the engine), so an entry's body is still compressed. A server may name each coding in a ``Content-Encoding``
header of its own; Scrapy undoes them all (``getlist``), and so must the purge, or a page that links to the person
reads as a body that names no one and is kept. A body that is still gzip after its codings (a ``.gz`` page) is read
gunzipped too, as a spider that gunzips it reads it.

The entries are written by Scrapy's own ``FilesystemCacheStorage`` for a crawler of the project's settings.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pytest
from scrapy import Spider
from scrapy.extensions.httpcache import FilesystemCacheStorage
from scrapy.http import HtmlResponse, Request
from scrapy.utils.test import get_crawler

from consentcrawl.cli import main
from tests.conftest import PLATFORMS

SITE = "https://microblog.example"
PERSON = "1001"


def _listing(*subjects: str) -> bytes:
    links = "".join(f'<li><a href="/u/{s}">someone</a></li>' for s in subjects)
    return f"<html><body><ul>{links}</ul></body></html>".encode()


def _deflate(data: bytes) -> bytes:
    return zlib.compress(data)


#: codings applied in order, one ``Content-Encoding`` header each (or one header listing them, for the control)
LAYERS = {
    "gzip, gzip in two headers": ([("gzip", gzip.compress), ("gzip", gzip.compress)], "headers"),
    "deflate, gzip in two headers": ([("deflate", _deflate), ("gzip", gzip.compress)], "headers"),
    "gzip bytes of a .gz page, then gzip": ([("", gzip.compress), ("gzip", gzip.compress)], "headers"),
    "gzip, gzip in one header": ([("gzip", gzip.compress), ("gzip", gzip.compress)], "one header"),
}


def _store(cache: Path, url: str, body: bytes, layers: list[tuple[str, object]], how: str) -> None:
    crawler = get_crawler(Spider, {"HTTPCACHE_DIR": str(cache)})
    spider = Spider("people")
    spider.crawler = crawler
    storage = FilesystemCacheStorage(crawler.settings)
    storage.open_spider(spider)
    names = []
    for name, encode in layers:
        body = encode(body)  # type: ignore[operator]
        if name:
            names.append(name)
    headers: dict[str, object] = {"Content-Type": "text/html; charset=utf-8"}
    headers["Content-Encoding"] = names if how == "headers" else ", ".join(names)
    storage.store_response(spider, Request(url), HtmlResponse(url, body=body, headers=headers))


def _entries(cache: Path) -> dict[str, bytes]:
    return {(meta.parent / "meta").read_text(): (meta.parent / "response_body").read_bytes()
            for meta in cache.rglob("meta")}


@pytest.mark.parametrize("case", list(LAYERS))
def test_a_cached_page_linking_to_the_person_through_stacked_codings_is_purged(case: str, tmp_path: Path) -> None:
    layers, how = LAYERS[case]
    cache = tmp_path / "httpcache"
    _store(cache, f"{SITE}/people?page=1", _listing("1002", PERSON, "1003"), layers, how)
    _store(cache, f"{SITE}/people?page=2", _listing("1004", "1005"), layers, how)  # names no one purged: kept
    assert len(_entries(cache)) == 2
    log = tmp_path / "receipts.jsonl"
    assert main(["purge", "--platforms", str(PLATFORMS), "--subject", f"microblog:{PERSON}", "--audit-log", str(log),
                 str(cache)]) == 0
    left = _entries(cache)
    assert len(left) == 1, f"{case}: the page linking to {PERSON} was kept"
    assert "page=2" in next(iter(left))


def test_a_cached_body_that_cannot_be_decoded_fails_the_purge_of_its_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A body whose codings cannot be undone cannot be shown to be no one's: the purge says so, and fails."""
    cache = tmp_path / "httpcache"
    def corrupt(data: bytes) -> bytes:
        return data[:12] + b"\xff" * 16 + data[28:]

    _store(cache, f"{SITE}/people?page=1", _listing(PERSON), [("gzip", gzip.compress), ("", corrupt)], "headers")
    log = tmp_path / "receipts.jsonl"
    code = main(["purge", "--platforms", str(PLATFORMS), "--subject", f"microblog:{PERSON}", "--audit-log", str(log),
                 str(cache)])
    assert code != 0
    assert "cannot be decoded" in capsys.readouterr().err
