"""Fresh-eyes leak hunt (hunt12): what a server's answers other than a page (a rate limit, a redirect) do to a
crawl's decisions.

Each test runs a real crawl in this process against the lenient people site of :mod:`tests.lenient` and judges by
the site's served log and by what reached a callback or an item. Tests marked "Fixed" failed on main (40d4575) and
pass since their fix; tests marked PIN passed from the start and cover an attack no other test covers.
"""

from __future__ import annotations

import gzip
import importlib
import json
import logging
import socketserver
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl.signals.fetch import SignalFileStatus
from consentcrawl.signals.fetch import from_response as signal_from_response
from consentcrawl_demo.server import LocalServer, Response
from tests import lenient
from tests.lenient import (
    AUTHORIZED,
    HOST,
    KINDS,
    LenientPeople,
    ListLogic,
    Robots,
    crawl,
    make_spider,
    people_settings,
    record_yaml,
    secret_name,
)
from tests.test_leaks import ListingItemsLogic
from tests.test_leaks_hunt import RangePeople

zstd: Any = importlib.import_module("compression.zstd" if sys.version_info >= (3, 14) else "backports.zstd")


async def assert_robots_keeps_101_out(kind: str, app: LenientPeople, settings: dict[str, Any],
                                      monkeypatch: pytest.MonkeyPatch, expected: str = "robots.disallowed", *,
                                      fetched_once: bool = True) -> Any:
    """Crawl 101's profile alone: robots.txt (fetched once, or at least once) keeps it out. The server never served
    it, nothing of it came out, and the audit log says why (``expected``)."""
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/101"], follow_links=False)
    fetches = len(app.robots_fetches())
    assert (fetches == 1) if fetched_once else (fetches >= 1), app.describe()
    assert app.people_served() == [], f"a page robots.txt disallows was fetched\n{app.describe()}"
    assert not result.items and not result.seen
    assert {e.get("reason") for e in result.audit_for("/u/101")} == {expected}, result.denies()
    return result

BASE = f"http://{HOST}"

# -- robots.txt answered with 429 Too Many Requests -------------------------------------------------------------

#: the site's robots.txt: it keeps consentcrawl off its people's pages
NO_PROFILES = "User-agent: *\nDisallow: /u/\n"


@dataclass
class RateLimitedRobots(Robots):
    """robots.txt that answers ``429 Too Many Requests`` (with a ``Retry-After``) from its ``limited_from``-th fetch
    on (0: from the first), as a rate limiter in front of a site does when a client asks too fast."""

    limited_from: int = 0
    fetches: list[int] = field(default_factory=list)

    def response(self) -> Response:
        self.fetches.append(len(self.fetches))
        if len(self.fetches) > self.limited_from:
            return Response.text("Too Many Requests\n", 429, {"Retry-After": "3600"})
        return super().response()


@pytest.mark.parametrize("limited_from", [0, 1])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_robots_txt_answered_with_429_does_not_open_the_origin(
    kind: str, limited_from: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. The site's robots.txt disallows ``/u/``; a rate limiter answers it with 429 (at the first fetch, or
    when the file is fetched again after its TTL). 429 says "not now", not "there are no rules", and RFC 9309's
    4xx case is a file that does not exist; a 429 was read as any 4xx, allow-all for the whole TTL (a day by
    default), and 101's profile, which the site's rules keep us off, was fetched. Now a 429 makes the origin
    unreachable, as a 5xx does: denied, tried again later, and a good copy fetched earlier keeps applying."""
    robots = RateLimitedRobots(body=NO_PROFILES, limited_from=limited_from)
    app = LenientPeople(default_robots=robots)
    settings = people_settings(tmp_path, CONSENTCRAWL_ROBOTS_TTL=1)
    urls = [f"{BASE}/people?page=9", 1.5, f"{BASE}/u/101"]  # /people?page=9 is a 404 listing: no rule covers it
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=urls, follow_links=False)
    assert len(robots.fetches) >= limited_from + 1, app.describe()
    assert app.people_served() == [], f"a page robots.txt disallows was fetched\n{app.describe()}"
    assert secret_name("101") not in str(result.items)
    reasons = {e.get("reason") for e in result.audit_for("/u/101")}
    expected = "robots.unreachable" if limited_from == 0 else "robots.disallowed"
    assert reasons == {expected}, result.denies()


def test_check_denies_an_origin_whose_robots_txt_answers_429(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. ``consentcrawl check`` classifies robots.txt as the crawl does: a 429 denies the origin."""
    settings = people_settings(tmp_path)
    monkeypatch.chdir(tmp_path)
    app = LenientPeople(default_robots=RateLimitedRobots(body=NO_PROFILES))
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        code = main(["check", f"{BASE}/u/101", "--json", "--purpose", "research",
                     "--platforms", settings["CONSENTCRAWL_PLATFORMS"],
                     "--authorizations", settings["CONSENTCRAWL_AUTHORIZATIONS"]])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert json.loads(out)["reason"] == "robots.unreachable", out
    assert app.people_served() == [], app.describe()


def test_a_signal_file_answered_with_429_is_unavailable_not_absent() -> None:
    """Fixed. A site signal file (``tdmrep.json``, ``ai.txt``, an RSL licence) answered 429 is unavailable, which
    denies the purposes the signal covers, as a 5xx does; read as absent it said "no statement" for a day."""
    now = datetime(2026, 12, 2, tzinfo=timezone.utc)
    file = signal_from_response("tdmrep", f"{BASE}/.well-known/tdmrep.json", 429, b"[]", now)
    assert file.status is SignalFileStatus.UNAVAILABLE and file.cause == "HTTP 429"
    assert signal_from_response("tdmrep", f"{BASE}/.well-known/tdmrep.json", 404, b"", now).status \
        is SignalFileStatus.ABSENT


# -- robots.txt cut short (data loss) ----------------------------------------------------------------------------


class _CutRobotsSite(socketserver.ThreadingTCPServer):
    """A loopback origin-and-proxy whose robots.txt promises ``NO_PROFILES`` and sends only its first line, then
    closes (a connection reset mid-file: Scrapy's "data loss"). Every other target gets a profile page, and the
    site logs the targets it was asked for: the test judges by that log."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CutRobots)
        self.targets: list[str] = []


class _CutRobots(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(65537).decode("latin-1")
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass
        target = line.split(" ")[1] if line.count(" ") >= 2 else ""
        self.server.targets.append(target)  # type: ignore[attr-defined]
        if target.endswith("/robots.txt"):
            body = NO_PROFILES.encode()
            sent = body[:body.index(b"\n") + 1]  # "User-agent: *\n": the Disallow line is lost
        else:
            body = sent = f'<html><body><h1 class="name">{secret_name("101")}</h1></body></html>'.encode()
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), sent))


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_robots_txt_cut_short_is_not_read_as_the_rules_it_kept(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. The project sets ``DOWNLOAD_FAIL_ON_DATALOSS = False`` (Scrapy's advice for servers that send wrong
    lengths); robots.txt promises ``Disallow: /u/`` and the connection drops after its first line. Scrapy hands on
    the part it got, flagged ``dataloss``; the fetcher parsed it as the whole file, which then said nothing, and
    101's profile, which the site's rules keep us off, was fetched. A file cut short is now unreachable: its
    missing part may hold the rule that applies."""
    server = _CutRobotsSite()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings = people_settings(tmp_path, DOWNLOAD_FAIL_ON_DATALOSS=False)
    try:
        result = await crawl(make_spider(kind, ListLogic), settings, monkeypatch=monkeypatch,
                             proxy=f"http://127.0.0.1:{server.server_address[1]}", urls=[f"{BASE}/u/101"],
                             follow_links=False)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert f"{BASE}/robots.txt" in server.targets, server.targets
    assert f"{BASE}/u/101" not in server.targets, f"a page robots.txt disallows was fetched: {server.targets}"
    assert not result.items and not result.seen
    assert {e.get("reason") for e in result.audit_for("/u/101")} == {"robots.unreachable"}, result.denies()


@dataclass
class PartRobots(Robots):
    """robots.txt answered ``206`` with its first line only, whatever the request asked for (a cache or proxy that
    hands on the part it holds)."""

    def response(self) -> Response:
        body = super().response().body_bytes()
        part = body[:body.index(b"\n") + 1]
        return Response(206, {"Content-Type": "text/plain", "Content-Range": f"bytes 0-{len(part) - 1}/{len(body)}"},
                        part)


@pytest.mark.parametrize("how", ["default Range", "206 unasked"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_robots_txt_answered_with_a_part_is_not_read_as_the_whole_file(
    kind: str, how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. The project caps every download with ``DEFAULT_REQUEST_HEADERS = {"Range": "bytes=0-13"}``, which
    Scrapy's DefaultHeadersMiddleware put on consentcrawl's own robots.txt request too; the site answered ``206``
    with ``User-agent: *`` and not the ``Disallow: /u/`` after it, and the part was parsed as the whole file:
    101's profile was fetched. Our own requests now go without a ``Range`` (the whole file is read and obeyed),
    and a ``206`` a server sends anyway is a part: unreachable, as a body cut short is."""
    if how == "default Range":
        app: LenientPeople = RangePeople(default_robots=Robots(body=NO_PROFILES))
        settings = people_settings(tmp_path, DEFAULT_REQUEST_HEADERS={"Range": "bytes=0-13"})
        expected = "robots.disallowed"
    else:
        app = LenientPeople(default_robots=PartRobots(body=NO_PROFILES))
        settings = people_settings(tmp_path)
        expected = "robots.unreachable"
    await assert_robots_keeps_101_out(kind, app, settings, monkeypatch, expected)


# -- robots.txt still compressed when it reaches the fetcher ----------------------------------------------------


@dataclass
class GzipRobots(Robots):
    """robots.txt sent gzip-compressed with ``Content-Encoding: gzip`` whatever the request asked for (a server
    whose pre-compressed static files are always served so), or gzip bytes with no header at all; or the same
    with zstd."""

    header: bool = True
    coding: str = "gzip"

    def response(self) -> Response:
        plain = super().response()
        headers = {"Content-Type": "text/plain", **({"Content-Encoding": self.coding} if self.header else {})}
        compress = gzip.compress if self.coding == "gzip" else zstd.compress
        return Response(plain.status, headers, compress(plain.body_bytes()))


@pytest.mark.parametrize(("compression", "header", "coding"), [
    (False, True, "gzip"), (False, False, "gzip"), (True, False, "gzip"),
    (False, True, "zstd"), (True, False, "zstd"),
])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_compressed_robots_txt_is_read_decompressed_whatever_the_projects_compression_setting(
    kind: str, compression: bool, header: bool, coding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. The project sets ``COMPRESSION_ENABLED = False`` (HttpCompressionMiddleware off), and the site's
    server gzips robots.txt anyway; or the server sends gzip bytes without a ``Content-Encoding`` (which
    HttpCompressionMiddleware reads alone). The fetcher parsed the gzip bytes as rules: no rule could be read
    from them, which is allow-all, and 101's profile, which the file disallows, was fetched. robots.txt is now
    decompressed by the fetcher itself, as the response phase decompresses pages (``robots.body.page_body``)."""
    app = LenientPeople(default_robots=GzipRobots(body=NO_PROFILES, header=header, coding=coding))
    settings = people_settings(tmp_path, COMPRESSION_ENABLED=compression)
    await assert_robots_keeps_101_out(kind, app, settings, monkeypatch)


# -- an item processor of the project's own (ITEM_PROCESSOR) -----------------------------------------------------


class StraightThrough:
    """An item processor (Scrapy's ``ITEM_PROCESSOR``, ``scrapy.pipelines.ItemProcessorProtocol``) that hands every
    item on as it is: a project that sends items to a queue, say, instead of through ``ITEM_PIPELINES``."""

    seen: list[dict[str, Any]] = []

    async def open_spider_async(self) -> None:
        pass

    async def process_item_async(self, item: Any) -> Any:
        StraightThrough.seen.append(dict(item))
        return item

    async def close_spider_async(self) -> None:
        pass


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_projects_own_item_processor_does_not_take_the_guard_out(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """Fixed. The project names its own ``ITEM_PROCESSOR`` (a Scrapy setting with a public protocol), which does
    not run ``ITEM_PIPELINES``: the guard pipeline the add-on installs never ran, and the item naming 107, who
    never authorized, reached the processor and the feed (``item_scraped``). The crawl now refuses to start, with
    one CRITICAL line naming ``ITEM_PROCESSOR``, as for a pipeline put before the guard."""
    StraightThrough.seen = []
    await assert_item_processor_refused(kind, f"{__name__}.StraightThrough", tmp_path, monkeypatch, caplog)
    assert not [i for i in StraightThrough.seen if i.get("subject") == "107"], StraightThrough.seen


async def assert_item_processor_refused(kind: str, processor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """A crawl of the listing (its items name 101 and 107, who never authorized) with ``ITEM_PROCESSOR`` set to
    ``processor`` refuses to start: no item of 107's and no page fetched, one CRITICAL line naming the setting."""
    feed = tmp_path / "items.jsonl"
    settings = people_settings(tmp_path, ITEM_PROCESSOR=processor, FEEDS={str(feed): {"format": "jsonlines"}})
    app = LenientPeople()
    with caplog.at_level(logging.INFO), LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListingItemsLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/people?page=1"], follow_links=False)
    assert not [i for i in result.items if i.get("subject") == "107"], result.items
    assert secret_name("107") not in (feed.read_text() if feed.exists() else "")
    assert result.stats.get("finish_reason") == "consentcrawl_config_error", result.stats.get("finish_reason")
    assert app.served == [], app.describe()
    critical = [r.getMessage() for r in caplog.records if r.levelno >= logging.CRITICAL]
    assert len(critical) == 1 and "ITEM_PROCESSOR" in critical[0], critical


# -- a media pipeline's stored file of a person who withdrew since ----------------------------------------------


class AvatarLogic(ListLogic):
    """101's profile, with an item that names 104's avatar for the files pipeline."""

    urls = [f"{BASE}/u/101"]
    follow_links = False

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"url": response.url, "name": response.css(".name::text").get(),
               "file_urls": [f"{BASE}/u/104/avatar.png"]}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_stored_file_of_a_person_who_withdrew_is_not_put_in_a_new_item(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A first crawl, while 104 was authorized, stored 104's avatar with Scrapy's FilesPipeline. 104 withdraws.
    The next crawl's item (on 101's page) names the avatar again: FilesPipeline finds the file fresh in its store
    and puts it in the item without a request, so no decision was ever made about it, and the item (and the feed)
    carried 104's file. A file URL the crawl may not fetch now is not handed to the media pipelines."""
    result = await crawl_after_104_withdrew(kind, AvatarLogic, "scrapy.pipelines.files.FilesPipeline", tmp_path,
                                            monkeypatch)
    assert "/u/104" not in json.dumps(result.items), f"104's file is in an item after they withdrew: {result.items}"


async def crawl_after_104_withdrew(kind: str, logic: type, pipeline: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> Any:
    """Two crawls of ``logic`` with ``pipeline`` and one files store: the first while 104 was authorized (it
    stores 104's avatar: the control), the second after 104 withdrew. The second crawl's result, once the server
    shows it fetched 101's page alone and it yielded one item."""
    files = tmp_path / "files"
    pipelines = {pipeline: 1}
    first = tmp_path / "first"
    first.mkdir()
    before = people_settings(first, [record_yaml(s) for s in (*AUTHORIZED, "104")], FILES_STORE=str(files),
                             ITEM_PIPELINES=pipelines)
    after = people_settings(tmp_path, [record_yaml(s) for s in AUTHORIZED], FILES_STORE=str(files),
                            ITEM_PIPELINES=pipelines)
    app = LenientPeople()
    with LocalServer(app) as server:
        control = await crawl(make_spider(kind, logic), before, proxy=server.proxy, monkeypatch=monkeypatch)
        assert [f["url"] for i in control.items for f in i.get("files", [])] == [f"{BASE}/u/104/avatar.png"], \
            f"control: the first crawl stored 104's avatar\n{app.describe()}"
        served_before = len(app.served)
        result = await crawl(make_spider(kind, logic), after, proxy=server.proxy, monkeypatch=monkeypatch)
    assert [s.person for s in app.served[served_before:] if s.person] == ["101"], app.describe()
    assert len(result.items) == 1, result.items
    return result


# -- robots.txt saved in UTF-16 or UTF-32 ------------------------------------------------------------------------


@dataclass
class WideRobots(Robots):
    """robots.txt saved in a wide encoding with its byte order mark (Windows Notepad's "Unicode" is UTF-16 LE)."""

    encoding: str = "utf-16"

    def response(self) -> Response:
        plain = super().response()
        text = plain.body_bytes().decode()
        body = text.encode(self.encoding) if self.encoding in ("utf-16", "utf-32") \
            else ("\ufeff" + text).encode(self.encoding)
        return Response(plain.status, {"Content-Type": "text/plain"}, body)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_robots_txt_in_utf16_is_read_by_its_byte_order_mark(
    kind: str, encoding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. The site's robots.txt (``Disallow: /u/``) was saved in UTF-16 (or UTF-32) with a byte order mark.
    Read as bytes, no line of it was a record: allow-all, and 101's profile was fetched. A file whose byte order
    mark names a wide encoding is now decoded by it first (RFC 9309 asks for UTF-8, and the mark says plainly what
    the site wrote); one that does not decode denies the origin."""
    app = LenientPeople(default_robots=WideRobots(body=NO_PROFILES, encoding=encoding))
    await assert_robots_keeps_101_out(kind, app, people_settings(tmp_path), monkeypatch)


# -- a project's default headers on consentcrawl's own requests -------------------------------------------------


@dataclass
class NegotiatingPeople(RangePeople):
    """The lenient site behind a server that negotiates: a request whose ``Accept`` admits neither ``text/plain``
    nor ``*/*`` gets ``406 Not Acceptable`` for robots.txt, and a ``Range`` past the end of a file gets ``416``."""

    def __call__(self, request: Any, headers: dict[str, str]) -> Response | None:
        named = {k.lower(): v for k, v in headers.items()}
        if request.path == "/robots.txt":
            accept = named.get("accept", "*/*")
            if "text/plain" not in accept and "*/*" not in accept and "text/*" not in accept:
                self.served.append(lenient.Served(request.time, request.host, request.target, "/robots.txt", "",
                                                  "robots", None, 406))
                return Response.text("Not Acceptable\n", 406)
            if named.get("range", "").startswith("bytes=4096-"):
                self.served.append(lenient.Served(request.time, request.host, request.target, "/robots.txt", "",
                                                  "robots", None, 416))
                return Response.text("Range Not Satisfiable\n", 416)
        return super().__call__(request, headers)


@pytest.mark.parametrize("headers", [{"Accept": "application/json"}, {"Range": "bytes=4096-"}])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_projects_default_headers_do_not_make_robots_txt_answer_no_file(
    kind: str, headers: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. A project's ``DEFAULT_REQUEST_HEADERS`` reach consentcrawl's own robots.txt request: an API crawler's
    ``Accept: application/json`` gets ``406 Not Acceptable`` from a negotiating server, a ``Range`` meant for big
    pages gets ``416``. Both are 4xx, read as "no robots.txt": allow-all, and 101's profile, which the file
    disallows, was fetched. consentcrawl's own requests now say what they accept (``*/*``) and ask for the whole
    file (no ``Range``), whatever the project's defaults."""
    app = NegotiatingPeople(default_robots=Robots(body=NO_PROFILES))
    settings = people_settings(tmp_path, DEFAULT_REQUEST_HEADERS=headers)
    await assert_robots_keeps_101_out(kind, app, settings, monkeypatch, fetched_once=False)
