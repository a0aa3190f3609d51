"""An ``ai.txt`` longer than what is read (:data:`~consentcrawl.signals.fetch.MAX_BYTES`), saved in UTF-16, whose
cut falls inside a character (between the two halves of a surrogate pair): read up to the cut, as robots.txt is
and as the same file in UTF-8 is, the partial character left out. With a byte order mark it did not decode and
disallowed every page; without one it was read as bytes, where no line is a rule, and allowed every page.

Judged by the test server's request log: the page the file disallows is never asked for, the one it leaves open is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.signals.ai_txt import parse_ai_txt
from consentcrawl.signals.fetch import MAX_BYTES
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.conftest import consent_settings, run_crawl
from tests.test_robots_crawl import HOST, ConsentListSpider

HEAD = "User-agent: *\nDisallow: /private/\n"
BOMS = {"utf-16": 2, "utf-16-le": 0, "utf-16-be": 0}


def cut_inside_a_character(codec: str) -> bytes:
    """An ai.txt in ``codec`` whose first :data:`MAX_BYTES` end with the first half of a surrogate pair, and which
    goes on after it (rules past the cut)."""
    units = (MAX_BYTES - BOMS[codec]) // 2 - 1  # the code units before the pair's first half
    filler = units - len(HEAD)
    lines = "".join("# " + "x" * 61 + "\n" for _ in range(filler // 64))
    text = HEAD + lines + "#" * (filler - len(lines) - 1) + " \U0001F600 and more\n" + "Disallow: /later/\n" * 50
    body = text.encode(codec)
    assert len(body) > MAX_BYTES and body[:MAX_BYTES].decode(codec, "ignore")[-2:] == "# "
    return body


def test_the_file_is_built_to_be_cut_inside_a_character() -> None:
    for codec in BOMS:
        body = cut_inside_a_character(codec)[:MAX_BYTES]
        with pytest.raises(UnicodeDecodeError):
            body.decode(codec)
    assert parse_ai_txt(HEAD.encode("utf-16")).match("/private/a", "consentcrawl").allowed is False


async def crawl_under(ai_txt: bytes, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], dict[str, str]]:
    """A crawl of ``/private/a`` and ``/ok`` for AI training on a site serving ``ai_txt``: the paths the server
    was asked for, and the pages the audit log denies (path: reason)."""

    def app(request: LoggedRequest, headers: dict[str, str]) -> Response:
        if request.path == "/ai.txt":
            return Response(200, {"Content-Type": "text/plain"}, ai_txt)
        if request.path == "/robots.txt":
            return Response(200, {"Content-Type": "text/plain"}, "User-agent: *\nAllow: /\n")
        if request.path in ("/private/a", "/ok"):
            return Response.html(f"<html><body>{request.path}</body></html>")
        return Response(404, {"Content-Type": "text/plain"}, "no")

    ConsentListSpider.urls = [f"http://{HOST}/private/a", f"http://{HOST}/ok"]
    settings: dict[str, Any] = consent_settings(
        tmp_path, CONSENTCRAWL_PURPOSE="ai-training", CONSENTCRAWL_PLATFORMS=[], CONSENTCRAWL_AUTHORIZATIONS=None,
        CONSENTCRAWL_PURPOSE_DEFAULTS={"ai-training": "allow"})
    with LocalServer(app) as server:
        result = await run_crawl(ConsentListSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        asked = [r.path for r in server.requests]
    assert asked.count("/ai.txt") == 1, asked
    return asked, {e["url"].split(HOST, 1)[1]: e["reason"] for e in result.audit if e["verdict"] == "deny"}


@pytest.mark.parametrize("codec", list(BOMS))
@deferred_f_from_coro_f
async def test_a_utf16_ai_txt_cut_inside_a_character_is_read_up_to_the_cut(
        codec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked, denied = await crawl_under(cut_inside_a_character(codec), tmp_path, monkeypatch)
    assert "/private/a" not in asked, f"a page the ai.txt disallows was fetched: {asked}"
    assert "/ok" in asked, f"a page the ai.txt leaves open was not fetched: {asked}"
    assert denied == {"/private/a": "terms.signal.ai-txt"}, denied


@deferred_f_from_coro_f
async def test_an_allow_cut_by_the_size_limit_allows_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Allow: /private/and-public`` cut to ``Allow: /private/a`` at the limit: read as written it allowed
    ``/private/a`` (longer than the ``Disallow: /private/``); robots.txt drops such a line, and so does ai.txt."""
    head = "User-agent: *\nDisallow: /private/\n"
    filler = "".join("# " + "x" * 61 + "\n" for _ in range((MAX_BYTES - len(head)) // 64 - 1))
    text = head + filler
    text += "#" * (MAX_BYTES - len(text) - len("\nAllow: /private/a")) + "\nAllow: /private/and-public\n"
    assert text.encode()[:MAX_BYTES].endswith(b"Allow: /private/a")
    asked, denied = await crawl_under(text.encode(), tmp_path, monkeypatch)
    assert "/private/a" not in asked and "/ok" in asked, asked
    assert denied == {"/private/a": "terms.signal.ai-txt"}, denied
