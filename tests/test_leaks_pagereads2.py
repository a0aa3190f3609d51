"""Where the consent reader and a spider read a site's files or pages otherwise (pagereads2): compressed signal
files, a compressed robots.txt larger than what is parsed, cards nested in other microformats, and head markup
the tag scan read otherwise than the spider's parser. Each is a real crawl judged by the test server's own log,
the items and the audit log; each failed before its fix."""

from __future__ import annotations

import gzip
import importlib
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, Response
from tests import lenient
from tests.lenient import (
    HOST,
    KINDS,
    LenientPeople,
    ListLogic,
    Robots,
    crawl,
    make_spider,
    people_settings,
    secret_name,
)
from tests.test_leaks_perf import assert_reserved_pages_denied
from tests.test_leaks_review15 import assert_ai_txt_keeps_about_out

zstd: Any = importlib.import_module("compression.zstd" if sys.version_info >= (3, 14) else "backports.zstd")

BASE = f"http://{HOST}"


def compress(coding: str, data: bytes) -> bytes:
    return gzip.compress(data) if coding == "gzip" else zstd.compress(data)


# -- a signal file of gzip or zstd bytes, without a Content-Encoding ---------------------------------------------


@dataclass
class CompressedFilesPeople(LenientPeople):
    """The lenient people site, whose tdmrep.json reserves its about page or whose ai.txt disallows it for every
    crawler (``file``), sent as gzip or zstd bytes with no ``Content-Encoding`` (a ``.gz`` file served as the
    file), or with the header to a project that set ``COMPRESSION_ENABLED = False``."""

    coding: str = "gzip"
    header: bool = False
    file: str = "/.well-known/tdmrep.json"

    def __call__(self, request: Any, headers: dict[str, str]) -> Response | None:
        files = {"/.well-known/tdmrep.json": json.dumps([{"location": "/about", "tdm-reservation": 1}]).encode(),
                 "/ai.txt": b"User-Agent: *\nDisallow: /about\n"}
        if request.path == self.file:
            self.served.append(lenient.Served(request.time, request.host, request.target, request.path, "",
                                              "signal", None, 200))
            coded = {"Content-Encoding": self.coding} if self.header else {}
            return Response(200, {"Content-Type": "application/octet-stream", **coded},
                            compress(self.coding, files[request.path]))
        return super().__call__(request, headers)


@pytest.mark.parametrize(("coding", "header"), [("gzip", False), ("zstd", False), ("gzip", True)])
@deferred_f_from_coro_f
async def test_a_compressed_signal_file_says_what_it_says_decompressed(
    coding: str, header: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. robots.txt of gzip or zstd bytes is decompressed by its magic bytes (hunt12), the site's other files
    were not: tdmrep.json and ai.txt read as bytes said nothing (no statement: allow), and the about page they
    reserve was fetched for search indexing and for AI training (the header with the project's compression off
    is the control: the side request already undid it)."""
    app = CompressedFilesPeople(coding=coding, header=header)
    settings = people_settings(tmp_path, COMPRESSION_ENABLED=not header)
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/about"], follow_links=False)
    assert [s for s in app.served if s.path == "/.well-known/tdmrep.json"], app.describe()
    assert not [s for s in app.served if s.path == "/about"], f"a reserved page was fetched\n{app.describe()}"
    assert {e.get("reason") for e in result.audit_for("/about")} == {"terms.signal.tdmrep"}, result.denies()
    ai_txt = CompressedFilesPeople(coding=coding, header=header, file="/ai.txt")
    (tmp_path / "ai").mkdir()
    await assert_ai_txt_keeps_about_out(ai_txt, tmp_path / "ai",
                                        monkeypatch, COMPRESSION_ENABLED=not header)


# -- a compressed robots.txt larger than what is parsed ------------------------------------------------------------


#: a comment line of robots.txt, 1 KiB
_COMMENT = b"#" * 1023 + b"\n"


@dataclass
class BombRobots(Robots):
    """A robots.txt whose first lines disallow the people's pages, then comments: 1.1 GiB of them, sent as gzip
    members or zstd frames of 1 MiB each (about 1 MiB on the wire), with no ``Content-Encoding``."""

    coding: str = "gzip"

    def response(self) -> Response:
        part = compress(self.coding, _COMMENT * 1024)
        head = compress(self.coding, b"User-agent: *\nDisallow: /u/\n")
        return Response(200, {"Content-Type": "text/plain"}, head + part * 1100)


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_compressed_robots_txt_is_decompressed_only_as_far_as_it_is_parsed(
    kind: str, coding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. A compressed robots.txt was decompressed up to 1 GiB, though only its first 512 KiB are parsed: a
    small file that decompressed further made the origin unreachable (a plain file that long has its first
    512 KiB parsed, RFC 9309 §2.5), and one that decompressed to less than 1 GiB was held whole in memory. Now
    only what is parsed is decompressed: the file's rules apply (101's profile is kept out) and the about page,
    which they allow, is fetched, as for the same file sent plain."""
    app = LenientPeople(default_robots=BombRobots(coding=coding))
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/u/101", f"{BASE}/about"],
                             follow_links=False)
    assert len(app.robots_fetches()) == 1, app.describe()
    assert app.people_served() == [], f"a page robots.txt disallows was fetched\n{app.describe()}"
    assert [s for s in app.served if s.path == "/about"], f"the page robots.txt allows was not\n{result.denies()}"
    assert {e.get("reason") for e in result.audit_for("/u/101")} == {"robots.disallowed"}, result.denies()


# -- a head whose markup the tag scan tokenized otherwise than the spider's parser -------------------------------


_RESERVED_META = '<meta name="tdm-reservation" content="1">'
#: heads that hold a TDM reservation the spider's selectors find, behind markup the scan read as a comment opener
_TRICKY_HEADS = {
    "/abrupt": f"<!-->{_RESERVED_META}<!-- -->",  # an empty comment: closed at once
    "/dash": f"<!--->{_RESERVED_META}<!-- -->",
    "/bang": f"<!x <!-- >{_RESERVED_META}<!-- -->",  # a bogus comment: closed at its first >
    "/question": f"<?php echo '<!--' ?>{_RESERVED_META}<!-- -->",
    "/attribute": f'<base title="<!--">{_RESERVED_META}<!-- -->',  # a comment opener in an attribute value
    "/end-tag": f'<script></script x="<!--">{_RESERVED_META}<!-- -->',
    "/not-the-end": f"<script></scriptx <!-- </script>{_RESERVED_META}<!-- -->",  # not script's end tag
}


@deferred_f_from_coro_f
async def test_a_tdm_reservation_behind_a_bogus_comment_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. A crawl for AI training of pages whose head reserves TDM after markup that opens no comment in HTML
    (``<!-->``, ``<!x``, ``<?x``, a ``<!--`` inside an attribute value, an end tag that is not script's): the
    head's scan read a comment from there to the next ``-->``, missed the reservation, and the page reached the
    callback. Now the scan tokenizes as the spider's parser does: the server served them (the decision is the
    response phase's), no callback ran, no item came out; ``/ok`` is the control."""
    await assert_reserved_pages_denied(
        {path: ("text/html; charset=utf-8",
                f"<html><head>{head}</head><body><p class=name>x</p></body></html>".encode())
         for path, head in _TRICKY_HEADS.items()}, tmp_path, monkeypatch)


# -- a card nested in another microformat ------------------------------------------------------------------------


def _page(inner: str) -> bytes:
    return f"<html><body>{inner}</body></html>".encode()


def _name(person: str) -> str:
    return f'<span class="p-name fn name">{secret_name(person)}</span>'


#: (the spider's reading, then the page of each authorized person): each refuses in a card nested in another
#: microformat, which a spider's ``.css(".h-card .p-note")`` (or ``.vcard .adr``) reads; alice's is the control,
#: a #nobot in the card of someone else's post, quoted on her page below her own card
NESTED = {
    "resume-vcard-hcard": {
        "101": _page('<div class="h-resume"><span class="p-summary">Gardener</span><div class="p-contact h-card">'
                     f'{_name("101")}<p class="p-note">#nobot</p></div></div>'),
        "102": _page('<article class="h-entry"><div class="p-author h-card">'
                     f'{_name("102")}<p class="p-note">#nobot</p></div><p class="e-content">Hello</p></article>'),
        "103": _page(f'<div class="vcard"><a class="url" href="{BASE}/u/103">@103</a>{_name("103")}'
                     '<div class="h-card"><p class="p-note">#nobot</p></div></div>'),
    },
    "author-addresses": {
        "101": _page(f'<div class="h-card">{_name("101")}<p class="p-note">Gardener</p></div>'
                     f'<article class="h-entry"><div class="p-author h-card"><a class="u-url" href="{BASE}/u/101">'
                     'me</a><p class="p-note">#nobot</p></div></article>'),
        "102": _page(f'<div class="vcard">{_name("102")}<span class="adr"><span class="locality">#nobot</span>'
                     "</span></div>"),
        "103": _page(f'<div class="h-card">{_name("103")}<p class="p-adr h-adr"><span class="p-locality">#nobot'
                     "</span></p></div>"),
    },
}
CONTROL = _page(f'<div class="h-card"><a class="u-url" href="{BASE}/u/alice">@alice</a>{_name("alice")}</div>'
                '<article class="h-entry"><div class="p-author h-card"><span class="p-name">Sam</span>'
                '<p class="p-note">#nobot</p></div></article>')


@pytest.mark.parametrize("pages", list(NESTED))
@deferred_f_from_coro_f
async def test_a_refusal_in_a_card_nested_in_another_microformat_is_the_persons(
    pages: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. A card inside another microformat was never read as the page person's: the contact card of their
    resume, the lone author card of a post on their profile page (no card of the page's own), an ``h-card`` a
    theme put inside the platform's ``vcard``, a post's author card naming their page; and a ``vcard``'s ``adr``
    or an ``h-card``'s ``p-adr h-adr`` was not read. Their refusal reached the callback. The server served each
    page (the refusal is read in the response phase), no callback ran on them, each is denied as refused on the
    page; alice's page, whose only #nobot is in the card of someone else's post, is the control."""
    from tests.test_page_reads import CodedPeople, DecompressLogic

    app = CodedPeople()
    for person, body in NESTED[pages].items():
        app.gz[f"/u/{person}"] = ("text/html; charset=utf-8", body)
    app.gz["/u/alice"] = ("text/html; charset=utf-8", CONTROL)
    urls = [f"{BASE}/u/{p}" for p in (*NESTED[pages], "alice")]
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", DecompressLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls)
    assert sorted(app.people_served()) == sorted([*NESTED[pages], "alice"]), app.describe()
    assert result.seen == [f"{BASE}/u/alice"], f"the callback ran on a refusing person's page: {result.items}"
    refused = {url for phase, url, why in result.denies() if why == "subject.refused-on-page"}
    assert refused == set(urls[:-1]), result.denies()


# -- a card naming the page but for case, on a platform whose people differ by case -------------------------------


#: alice's page: the card of Alice (another person where ids differ by case), then alice's own card, naming no URL
CASE_PAGE = _page(f'<div class="h-card"><a class="u-url" href="{BASE}/u/Alice">@Alice</a>'
                  '<span class="p-name">Alice</span><p class="p-note">Gardener.</p></div>'
                  f'<div class="h-card">{_name("alice")}<p class="p-note">#nobot</p></div>')


@pytest.mark.parametrize("case_sensitive", [True, False], ids=["case-sensitive", "control-case-insensitive"])
@deferred_f_from_coro_f
async def test_a_card_naming_the_page_but_for_case_does_not_hide_the_persons_own(
    case_sensitive: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. Card URLs were compared in any case: on a platform whose ids differ by case (``case_sensitive:
    true``), Alice's card on alice's page (``/u/Alice`` on ``/u/alice``) was taken for the page's one card, so
    alice's own card, naming no URL, was not read, and her #nobot with it: the page reached the callback. There a
    card naming the page but for case is not sure to be the page's: it is read, and so are the cards naming no
    URL. On a platform whose ids are one person in any case (the control), ``/u/Alice`` is alice's page: her card
    is the page's, and the other is not read."""
    from tests.test_page_reads import CodedPeople, DecompressLogic

    settings = people_settings(tmp_path)
    if case_sensitive:
        platforms = Path(settings["CONSENTCRAWL_PLATFORMS"])
        platforms.write_text(platforms.read_text() + "    case_sensitive: true\n")
    app = CodedPeople()
    app.gz["/u/alice"] = ("text/html; charset=utf-8", CASE_PAGE)
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", DecompressLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/u/alice"])
    assert app.people_served() == ["alice"], app.describe()
    refused = ("response", f"{BASE}/u/alice", "subject.refused-on-page") in result.denies()
    assert refused == case_sensitive, result.denies()
    assert result.seen == ([] if case_sensitive else [f"{BASE}/u/alice"]), result.items


def test_a_compressed_file_that_cannot_be_read_denies_with_its_cause() -> None:
    """The error paths of the bounded decompression (pure): corrupt gzip bytes make a signal file unavailable and
    robots.txt unreachable, each with the cause; a file whose outer layer is cut at the bound and whose inner zstd
    frame then stops short cannot tell its first bytes, and denies too; a UTF-16 robots.txt cut at the bound inside
    a character is read up to that character."""
    from datetime import datetime, timezone

    from consentcrawl.robots.fetch import COMPRESSED_KEEP, RobotsStatus
    from consentcrawl.robots.fetch import from_response as robots_from_response
    from consentcrawl.signals.fetch import SignalFileStatus
    from consentcrawl.signals.fetch import from_response as signal_from_response

    now = datetime(2026, 12, 2, tzinfo=timezone.utc)
    corrupt = b"\x1f\x8b\x08\x00garbage"
    signal = signal_from_response("tdmrep", f"{BASE}/.well-known/tdmrep.json", 200, corrupt, now)
    assert signal.status is SignalFileStatus.UNAVAILABLE and "compressed body" in signal.cause, signal
    robots = robots_from_response(f"{BASE}/robots.txt", 200, corrupt, now)
    assert robots.status is RobotsStatus.UNREACHABLE and "compressed body" in robots.cause, robots
    noise = random.Random(0).randbytes(2 * COMPRESSED_KEEP)  # zstd cannot shrink it: its frame outgrows the bound
    layered = gzip.compress(zstd.compress(b"User-agent: *\nDisallow: /u/\n" + noise))
    robots = robots_from_response(f"{BASE}/robots.txt", 200, layered, now)
    assert robots.status is RobotsStatus.UNREACHABLE and "cannot" in robots.cause, robots
    wide = ("User-agent: *\nDisallow: /u/\n" + "#\U0001f600" * COMPRESSED_KEEP).encode("utf-16")
    robots = robots_from_response(f"{BASE}/robots.txt", 200, gzip.compress(wide), now)
    assert robots.status is RobotsStatus.OK and not robots.rules.allowed("/u/101", "bot"), robots
