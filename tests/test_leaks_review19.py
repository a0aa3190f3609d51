"""An attacker's review of review17's and review18's fixes and what they left: line filters that fail closed, a cut
``tdmrep.json`` that is unavailable, an actor link after ``</html>``."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.downloadlines import DownloadLines
from consentcrawl.linecheck import UNCHECKED
from consentcrawl.signals.fetch import MAX_BYTES
from consentcrawl.signals.fetch import from_response as signal_from_response
from consentcrawl.signals.tdmrep import site_tdmrep
from consentcrawl_demo.server import LocalServer, Response
from tests import lenient
from tests.lenient import HOST, LenientPeople, ListLogic, crawl, make_spider, people_settings
from tests.test_leaks_pagereads2 import CompressedFilesPeople, compress
from tests.test_person_lines import _DENIED, _loud

BASE = f"http://{HOST}"


class Unsayable:
    """A value whose text cannot be had (a project's request class, or any argument whose ``__str__`` raises): the
    check of a line that holds it raises, and its exception's message names the page."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __str__(self) -> str:
        raise ValueError(f"cannot say {self.url}")


class UnsayableRequest(scrapy.Request):
    def __str__(self) -> str:
        raise ValueError(f"cannot say {self.url}")


class GivesUp:
    """Report mode lets 107's page through; on each page the callback gives up retrying a request whose text cannot
    be had, once on the retry middleware's logger and once on its own, and logs a value that cannot be said; and
    it logs links relative to the page (``u/115``, ``../u/108``) of people not decided yet, which were named."""

    seen: list[str]

    async def start(self) -> Any:
        for person in ("101", "107"):
            yield scrapy.Request(f"{BASE}/u/{person}", callback=self.profile)

    def profile(self, response: Any) -> None:
        for logger in (None, self.logger):
            kwargs = {"logger": logger} if logger is not None else {}
            get_retry_request(UnsayableRequest(response.url), spider=self, reason="503 Service Unavailable",
                              max_retry_times=0, **kwargs)
        self.logger.warning("stored %s", Unsayable(response.url))
        self.logger.info("following u/115 and ../u/108, then u/101")  # relative links, as a page writes them
        self.seen.append(response.url)


@deferred_f_from_coro_f
async def test_a_line_whose_check_raises_is_written_unchecked_not_raised_into_the_code_that_logged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report")
    with LocalServer(app) as server, caplog.at_level(logging.INFO):
        result = await crawl(make_spider("ADDONS", GivesUp), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert "107" in app.people_served(), app.describe()  # report mode sent it
    assert sorted(result.seen) == [f"{BASE}/u/101", f"{BASE}/u/107"], "no log call raised into the callback"
    loud = _loud(caplog)
    assert [line for line in loud if _DENIED.search(line) or "cannot say" in line] == []
    unchecked = [(r.name, r.levelno) for r in caplog.records if r.getMessage() == UNCHECKED]
    for name, level in (("scrapy.downloadermiddlewares.retry", logging.ERROR), ("givesup", logging.ERROR),
                        ("givesup", logging.WARNING)):
        assert unchecked.count((name, level)) == 2, (name, level, unchecked)  # 101's and 107's
    stand = "<a URL consentcrawl did not allow ("
    assert [m for m in loud if m.startswith(f"INFO givesup: following {stand}") and m.endswith(", then u/101")]


def test_a_held_download_line_whose_text_cannot_be_had_is_written_unchecked(
        caplog: pytest.LogCaptureFixture) -> None:
    """``DownloadLines`` reads a handler's line to know whether it names a request in flight."""
    name = "scrapy.core.downloader.handlers.http11"
    lines = DownloadLines()
    logger = logging.getLogger(name)
    logger.addFilter(lines)
    lines.sending(scrapy.Request(f"{BASE}/u/107"))
    try:
        with caplog.at_level(logging.INFO, logger=name):
            logger.warning("Got data loss in %s", Unsayable(f"{BASE}/u/107"))
    finally:
        logger.removeFilter(lines)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.WARNING, UNCHECKED)]


# -- a tdmrep.json longer than what is read ------------------------------------------------------------------------

#: a tdmrep.json that reserves the about page, then goes on past 512 KiB: its first 512 KiB are no JSON array
LONG_TDMREP = json.dumps([{"location": "/about", "tdm-reservation": 1}]
                         + [{"location": f"/archive/{n}/" + "x" * 200, "tdm-reservation": 0}
                            for n in range(3000)]).encode()


@dataclass
class LongTdmRepPeople(CompressedFilesPeople):
    """The people site, whose tdmrep.json is :data:`LONG_TDMREP`, sent as gzip bytes with no ``Content-Encoding``."""

    def __call__(self, request: Any, headers: dict[str, str]) -> Response | None:
        if request.path == self.file:
            self.served.append(lenient.Served(request.time, request.host, request.target, request.path, "",
                                              "signal", None, 200))
            return Response(200, {"Content-Type": "application/octet-stream"}, compress(self.coding, LONG_TDMREP))
        return super().__call__(request, headers)


@deferred_f_from_coro_f
async def test_a_tdmrep_json_cut_at_the_size_limit_is_unavailable_not_no_statement(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its reservation of the about page was lost with the cut: the file read as not JSON, no statement (allow),
    and the about page was fetched for search indexing and AI training."""
    assert len(LONG_TDMREP) > MAX_BYTES
    now = datetime(2026, 12, 2, tzinfo=timezone.utc)
    plain = signal_from_response("tdmrep", f"{BASE}/.well-known/tdmrep.json", 200, LONG_TDMREP, now)
    result = site_tdmrep(plain, f"{BASE}/about")
    assert result.unavailable and "longer than" in result.unavailable, result
    whole = signal_from_response("tdmrep", f"{BASE}/.well-known/tdmrep.json", 200, LONG_TDMREP[:MAX_BYTES], now)
    assert not site_tdmrep(whole, f"{BASE}/about").unavailable, "the control: a file that is not cut"
    app = LongTdmRepPeople()
    with LocalServer(app) as server:
        crawled = await crawl(make_spider("ConsentSpider", ListLogic), people_settings(tmp_path), proxy=server.proxy,
                              monkeypatch=monkeypatch, urls=[f"{BASE}/about"], follow_links=False)
    assert [s for s in app.served if s.path == "/.well-known/tdmrep.json"], app.describe()
    assert not [s for s in app.served if s.path == "/about"], f"a reserved page was fetched\n{app.describe()}"
    assert {e.get("reason") for e in crawled.audit_for("/about")} == {"terms.signal-unavailable.tdmrep"}, \
        crawled.denies()


def test_a_profiles_actor_link_after_its_html_end_tag_is_read() -> None:
    """libxml2 puts markup after ``</html>`` in a second root, where a spider's ``.xpath("//link")`` reads it and
    the root's ``.iter("link")`` did not: the actor (whose ``discoverable: false`` or bio's #nobot refuses) was not
    read for the profile page."""
    from scrapy.http import HtmlResponse

    from consentcrawl.refusals.forms import html_profile

    url = "https://social.example/@alice"
    page = (b'<html><head><meta property="og:type" content="profile"></head><body><p>hi</p></body></html>'
            b'<link rel="alternate" type="application/activity+json" href="/users/alice">')
    spider = HtmlResponse(url, body=page)
    assert spider.xpath("//link[@rel='alternate']/@href").get() == "/users/alice"
    assert html_profile(page, url, "nobot", "utf-8")[1:] == (True, "https://social.example/users/alice")


@pytest.mark.parametrize("page", [
    b'<div class="h&#45;card"><a class="u-url" href="/u/alice">A</a><p class="p-note">Bio #nobot</p></div>',
    b'<div class="v&#x63;ard"><p class="note">Bio #nobot</p></div>',
    b'<meta property="og&colon;type" content="profile"><meta property="og:description" content="Bio #nobot">',
    b'<meta property="OG:TYPE" content="profile"><meta property="og:description" content="Bio #nobot">',
], ids=["decimal", "hex", "colon", "upper-case"])
def test_a_card_or_og_type_written_with_character_references_is_read(page: bytes) -> None:
    """The byte search that spares most pages a parse looked for ``h-card``, ``vcard`` and ``og:type`` as written:
    ``class="h&#45;card"`` is a card to the spider's selectors (the parser reads the reference), and ``OG:TYPE`` an
    og:type to the parse (read in any case), but the page was not parsed and its #nobot not read."""
    from consentcrawl.refusals.forms import read_html_profile

    url = "https://people.example/u/alice"
    assert [f.form for f in read_html_profile(b"<html><body>" + page + b"</body></html>", url, "nobot")] == [
        "hashtag.nobot"]


@pytest.mark.parametrize("query", [
    "{ profile(where: {uid: 107}) { name } }", "{ profiles(uids: [107]) { name } }",
    "query($u: Int = 107) { profile(uid: $u) { name } }", '{ profile(uid: """107""") { name } }',
    '{ profile(uid: "\\u0031\\u0030\\u0037") { name } }'],
    ids=["input-object", "list", "variable-default", "block-string", "escaped"])
def test_a_graphql_query_naming_107_in_any_value_position_names_107(query: str) -> None:
    """review17 read a GraphQL argument's own literal only: 107 in an input object, a list, a variable's default
    (the server uses it when no variables are sent), a block string or a string of escapes reached the server
    as a POST to a URL of no one."""
    from consentcrawl.bodyreading import body_values

    values = body_values(json.dumps({"query": query}).encode(), "", False)
    assert values is not None and "107" in values, values
    assert "10" not in (body_values(b'{"query": "{ profile(uid: 1) { posts(first: 5) { title } } }"}', "", False)
                        or ()), "the control: only the query's values"
