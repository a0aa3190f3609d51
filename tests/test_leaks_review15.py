"""An attacker's review of hunt12 and pagereads: ways around their fixes, each a real crawl judged by the test
server's own log, the items and the audit log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.pipelines import ItemPipelineManager
from scrapy.pipelines.files import FilesPipeline
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.audit.log import read_audit_log
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
from tests.test_leaks import ListingItemsLogic
from tests.test_leaks_hunt import RangePeople
from tests.test_leaks_hunt12 import (
    assert_item_processor_refused,
    assert_robots_keeps_101_out,
    crawl_after_104_withdrew,
)

BASE = f"http://{HOST}"
#: the site's robots.txt: it keeps consentcrawl off its people's pages
NO_PROFILES = "User-agent: *\nDisallow: /u/\n"

# -- a media pipeline that reads its URLs from a field of its own ------------------------------------------------


class PdfFilesPipeline(FilesPipeline):
    """A FilesPipeline subclass that names its own URL field (a class attribute, as Scrapy documents)."""

    FILES_URLS_FIELD = "attachment_urls"


class RequestsOfItsOwn(FilesPipeline):
    """A FilesPipeline subclass that builds its requests from any field it likes (``get_media_requests``): here
    the ids of the people whose avatars it wants (a URL in the item would be withheld by the guard as a mention of a
    person who is not allowed, before the pipeline: docs/mentions.md)."""

    def get_media_requests(self, item: Any, info: Any) -> list[scrapy.Request]:
        return [scrapy.Request(f"{BASE}/u/{person}/avatar.png") for person in item.get("pictures", [])]


class AvatarFieldLogic(ListLogic):
    """101's profile, with an item that names 104's avatar in every field the pipelines above read."""

    urls = [f"{BASE}/u/101"]
    follow_links = False

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"url": response.url, "attachment_urls": [f"{BASE}/u/104/avatar.png"], "pictures": ["104"]}


@pytest.mark.parametrize("pipeline", [PdfFilesPipeline, RequestsOfItsOwn], ids=["own-field", "own-requests"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_stored_file_of_a_person_who_withdrew_is_not_put_in_an_item_by_a_pipeline_of_the_projects_own(
    kind: str, pipeline: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """hunt12 decides the URLs in ``FILES_URLS_FIELD`` / ``IMAGES_URLS_FIELD``; a FilesPipeline subclass may read
    another field (its ``FILES_URLS_FIELD`` class attribute, a ``<CLASS>_FILES_URLS_FIELD`` setting) or build its
    requests itself (``get_media_requests``). Its store still hands a file stored while 104 was authorized to a
    new item without a request (``media_to_download``), after 104 withdrew.

    The URL in ``attachment_urls`` is 104's page: the guard withholds it as a mention before any pipeline sees it
    (one ``mentions-withheld`` event), so the pipeline that reads it asks for nothing; the one that builds its
    request from 104's id is refused by the media guard."""
    result = await crawl_after_104_withdrew(kind, AvatarFieldLogic, f"{__name__}.{pipeline.__name__}", tmp_path,
                                            monkeypatch)
    stored = [f for i in result.items for f in i.get("files", [])]
    assert "/u/104" not in json.dumps(stored), f"104's file is in an item after they withdrew: {result.items}"
    assert [i["attachment_urls"] for i in result.items] == [[]], result.items
    events = [line for line in read_audit_log(result.crawler.settings["CONSENTCRAWL_AUDIT_LOG"])
              if line.get("event") == "mentions-withheld"]
    assert [[p["subject"] for p in e["people"]] for e in events] == [["104"]], events
    # one line for the one decision: the request the deny fails is never sent, so no send-time deny follows it
    asked = 1 if pipeline is RequestsOfItsOwn else 0
    assert len(result.audit_for("/u/104/avatar.png", verdict="deny")) == asked, result.denies()


# -- a project's headers on consentcrawl's own robots.txt request, beyond Accept and Range ----------------------


@dataclass
class PreconditionPeople(LenientPeople):
    """The lenient site behind a server that honours preconditions and negotiates, as nginx does for a static
    file: ``If-Match`` naming another entity tag, or ``If-Unmodified-Since`` before the file changed, gets ``412
    Precondition Failed``; an ``Accept`` that admits neither ``text/plain`` nor ``*/*`` gets ``406``."""

    def __call__(self, request: Any, headers: dict[str, str]) -> Response | None:
        named = {k.lower(): v for k, v in headers.items()}
        if request.path == "/robots.txt":
            accept = named.get("accept", "*/*")
            status = 412 if ("if-match" in named or "if-unmodified-since" in named) else \
                406 if not any(t in accept for t in ("text/plain", "*/*", "text/*")) else None
            if status is not None:
                self.served.append(lenient.Served(request.time, request.host, request.target, "/robots.txt", "",
                                                  "robots", None, status))
                return Response.text("No\n", status)
        return super().__call__(request, headers)


class JsonEverywhere:
    """A project's downloader middleware that asks for JSON on every request it sees (an API crawler's)."""

    def process_request(self, request: scrapy.Request) -> None:
        request.headers["Accept"] = "application/json"


@pytest.mark.parametrize("settings", [
    {"DEFAULT_REQUEST_HEADERS": {"If-Match": '"v1"'}},
    {"DEFAULT_REQUEST_HEADERS": {"If-Unmodified-Since": "Thu, 01 Jan 2015 00:00:00 GMT"}},
    {"DOWNLOADER_MIDDLEWARES": {f"{__name__}.JsonEverywhere": 450}},
], ids=["if-match", "if-unmodified-since", "accept-by-middleware"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_projects_headers_do_not_make_robots_txt_answer_no_file(
    kind: str, settings: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """hunt12 gave our own requests ``Accept: */*`` (where a project's defaults would set it) and takes off a
    ``Range`` at send time. A precondition among the project's defaults (``If-Match``, ``If-Unmodified-Since``)
    gets ``412``, and a project's downloader middleware that sets ``Accept`` on every request gets ``406``: each a
    4xx, read as "no robots.txt", allow-all, and 101's profile, which the file disallows, would be fetched."""
    app = PreconditionPeople(default_robots=Robots(body=NO_PROFILES))
    await assert_robots_keeps_101_out(kind, app, people_settings(tmp_path, **settings), monkeypatch,
                                      fetched_once=False)


# -- an item processor that subclasses ItemPipelineManager and takes the guard out --------------------------------


class PassThroughManager(ItemPipelineManager):
    """Scrapy's ItemPipelineManager, subclassed (so hunt12's check passes), handing items on unprocessed."""

    async def process_item_async(self, item: Any) -> Any:
        return item


class WithoutTheGuard(ItemPipelineManager):
    """Scrapy's ItemPipelineManager, subclassed, building its pipelines from a list of its own that leaves out
    the guard (``_get_mwlist_from_settings``, as Scrapy's managers build theirs)."""

    @classmethod
    def _get_mwlist_from_settings(cls, settings: Any) -> list[Any]:
        return [p for p in super()._get_mwlist_from_settings(settings) if "consentcrawl" not in str(p)]


class SkipsTheGuardOnceOpen(ItemPipelineManager):
    """A subclass whose class looks like Scrapy's where items are run, but that takes the guard out of the list of
    ``process_item`` methods as it opens (``self.methods``, which Scrapy's chain runs)."""

    async def open_spider_async(self) -> None:
        await super().open_spider_async()
        self.methods["process_item"] = type(self.methods["process_item"])(
            m for m in self.methods["process_item"] if "consentcrawl" not in type(m.__self__).__module__)


@pytest.mark.parametrize("processor", [PassThroughManager, WithoutTheGuard, SkipsTheGuardOnceOpen],
                         ids=["process-item", "pipeline-list", "methods-once-open"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_item_processor_subclass_does_not_take_the_guard_out(
    kind: str, processor: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """hunt12 refuses an ``ITEM_PROCESSOR`` that is not ItemPipelineManager or a subclass of it. A subclass that
    runs no pipeline (``process_item_async``) or builds its list without the guard (``_get_mwlist_from_settings``)
    passed that check, and the item naming 107, who never authorized, reached the feed."""
    await assert_item_processor_refused(kind, f"{__name__}.{processor.__name__}", tmp_path, monkeypatch, caplog)


class OpensSomething(ItemPipelineManager):
    """A subclass that adds to the processor's opening only: its pipelines run as Scrapy's do."""

    opened = 0

    async def open_spider_async(self) -> None:
        OpensSomething.opened += 1
        await super().open_spider_async()


class BuiltItsOwnWay(ItemPipelineManager):
    """An ordinary project's subclass: its own ``__init__`` and ``from_crawler`` (each only adds to Scrapy's, through
    ``super()``), and a ``process_item_async`` that counts items before Scrapy's chain runs them."""

    opened = 0

    def __init__(self, *middlewares: Any, crawler: Any = None) -> None:
        super().__init__(*middlewares, crawler=crawler)
        self.counted = 0

    @classmethod
    def from_crawler(cls, crawler: Any) -> Any:
        manager = super().from_crawler(crawler)
        BuiltItsOwnWay.opened += 1
        return manager

    async def process_item_async(self, item: Any) -> Any:
        self.counted += 1
        return await super().process_item_async(item)


@pytest.mark.parametrize("processor", [OpensSomething, BuiltItsOwnWay], ids=["opening", "init-and-from-crawler"])
@deferred_f_from_coro_f
async def test_an_item_processor_subclass_that_keeps_the_pipelines_crawls(
    processor: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check above refuses only a processor that does not run the guard first: a subclass that adds to its
    opening, or builds itself its own way through ``super()``, still crawls, and the guard drops 107's item."""
    processor.opened = 0
    settings = people_settings(tmp_path, ITEM_PROCESSOR=f"{__name__}.{processor.__name__}")
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", ListingItemsLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/people?page=1"], follow_links=False)
    assert processor.opened == 1
    assert result.stats.get("finish_reason") == "finished", result.stats.get("finish_reason")
    assert [i.get("subject") for i in result.items] == ["101"], result.items


# -- robots.txt in a wide encoding without its byte order mark ----------------------------------------------------


@dataclass
class WideRobotsNoMark(Robots):
    """robots.txt in UTF-16 or UTF-32 without a byte order mark (an editor's "UTF-16 LE without BOM", PowerShell
    text written so), served with the charset named."""

    encoding: str = "utf-16-le"

    def response(self) -> Response:
        plain = super().response()
        body = plain.body_bytes().decode().encode(self.encoding)
        return Response(plain.status, {"Content-Type": f"text/plain; charset={self.encoding}"}, body)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_robots_txt_in_utf16_without_a_byte_order_mark_is_not_read_as_no_rules(
    kind: str, encoding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """hunt12 decodes a robots.txt by its UTF-16 or UTF-32 byte order mark. Without the mark, every other byte
    of the file is a NUL: read as bytes, no line of it is a record, allow-all, and 101's profile, which the file
    disallows, would be fetched."""
    app = LenientPeople(default_robots=WideRobotsNoMark(body=NO_PROFILES, encoding=encoding))
    await assert_robots_keeps_101_out(kind, app, people_settings(tmp_path), monkeypatch)


# -- a site signal file in UTF-16 --------------------------------------------------------------------------------


@dataclass
class WideTdmRepPeople(LenientPeople):
    """The lenient people site, whose tdmrep.json reserves its about page, saved in a wide encoding (with its byte
    order mark, as Windows Notepad's "Unicode" writes it)."""

    encoding: str = "utf-16"

    def __call__(self, request: Any, headers: dict[str, str]) -> Response | None:
        if request.path == "/.well-known/tdmrep.json":
            rules = [{"location": "/about", "tdm-reservation": 1}, {"location": "/", "tdm-reservation": 0}]
            self.served.append(lenient.Served(request.time, request.host, request.target, request.path, "",
                                              "tdmrep", None, 200))
            return Response(200, {"Content-Type": "application/json"}, json.dumps(rules).encode(self.encoding))
        return super().__call__(request, headers)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_tdmrep_json_in_utf16_reserves_as_it_says(
    kind: str, encoding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A robots.txt in UTF-16 is read by its byte order mark since hunt12; the site's tdmrep.json saved so was
    decoded as UTF-8, "not JSON", no statement, and the page it reserves was fetched (utf-8: the control)."""
    app = WideTdmRepPeople(encoding=encoding)
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/about"], follow_links=False)
    assert [s for s in app.served if s.path == "/.well-known/tdmrep.json"], app.describe()
    assert not [s for s in app.served if s.path == "/about"], f"a reserved page was fetched\n{app.describe()}"
    assert {e.get("reason") for e in result.audit_for("/about")} == {"terms.signal.tdmrep"}, result.denies()


@dataclass
class WideAiTxtPeople(LenientPeople):
    """The lenient people site, whose ai.txt disallows its about page for every crawler, saved in a wide
    encoding with its byte order mark."""

    encoding: str = "utf-16"

    def __call__(self, request: Any, headers: dict[str, str]) -> Response | None:
        if request.path == "/ai.txt":
            self.served.append(lenient.Served(request.time, request.host, request.target, request.path, "",
                                              "ai.txt", None, 200))
            body = "User-Agent: *\nDisallow: /about\n".encode(self.encoding)
            return Response(200, {"Content-Type": "text/plain"}, body)
        return super().__call__(request, headers)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
@deferred_f_from_coro_f
async def test_an_ai_txt_in_utf16_disallows_as_it_says(
    encoding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ai.txt is read with the robots.txt parser, but a line is put in front of a file without a User-Agent line
    first: a file in UTF-16 has none as bytes, so its byte order mark was no longer at the start, and the file,
    read as bytes, said nothing (utf-8: the control)."""
    await assert_ai_txt_keeps_about_out(WideAiTxtPeople(encoding=encoding), tmp_path, monkeypatch)


async def assert_ai_txt_keeps_about_out(app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        **extra: Any) -> None:
    """An ai-training crawl of ``/about`` (with the ``extra`` settings): ``app``'s ai.txt (read) keeps it out, and
    the audit log says so."""
    from tests.test_page_reads import PLATFORMS_YAML

    settings = people_settings(tmp_path, CONSENTCRAWL_PURPOSE="ai-training", **extra)
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(PLATFORMS_YAML)
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/about"], follow_links=False)
    assert [s for s in app.served if s.path == "/ai.txt"], app.describe()
    assert not [s for s in app.served if s.path == "/about"], f"a disallowed page was fetched\n{app.describe()}"
    assert {e.get("reason") for e in result.audit_for("/about")} == {"terms.signal.ai-txt"}, result.denies()


# -- a profile card whose URL is the page's, spelled otherwise ---------------------------------------------------


def _named_card(u_url: str) -> bytes:
    return (f'<html><body><div class="h-card"><a class="u-url" href="{u_url}">me</a><h1 class="p-name name">'
            f'{secret_name("101")}</h1><p class="p-note">Please do not scrape me. #nobot</p></div></body></html>'
            ).encode()


@pytest.mark.parametrize(("fetched", "u_url"), [
    ("/u/101?ref=feed", f"{BASE}/u/101"),
    ("/u/101", "https://people.example/u/101"),
    ("/u/101", "/u/101/"),
], ids=["query-added-by-the-spider", "https-canonical", "control-trailing-slash"])
@deferred_f_from_coro_f
async def test_a_profile_card_naming_the_page_otherwise_is_still_the_persons(
    fetched: str, u_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """101's profile card names their profile (``u-url``), as the site writes it: absolute and canonical. A card
    naming a URL other than the page's was read as another person's, and its refusal not read: the spider fetched
    the profile with a query of its own (``?ref=feed``), or over http where the card says https, and the refusing
    person's page reached the callback (the trailing slash is the control, which was already read)."""
    from tests.test_page_reads import CodedPeople, DecompressLogic

    app = CodedPeople()
    app.gz["/u/101"] = ("text/html; charset=utf-8", _named_card(u_url))
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", DecompressLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}{fetched}"])
    assert [s for s in app.served if s.path == "/u/101"], f"control: the page was fetched\n{app.describe()}"
    assert not result.seen, f"the callback ran on the refusing person's page: {result.items}"
    assert ("response", f"{BASE}{fetched}", "subject.refused-on-page") in result.denies(), result.denies()


# -- a part of a page whose meta robots is in the part not sent -------------------------------------------------


class AboutPeople(LenientPeople):
    """The people site with an about page whose template puts meta robots ``noai`` at the end of its body."""

    def __call__(self, request: Any, headers: dict[str, str]) -> Response | None:
        if request.path == "/about":
            body = (f'<html><head><title>About</title></head><body><p class="name">{secret_name("about")}</p>'
                    + "<p>filler</p>" * 40 + '<meta name="robots" content="noai"></body></html>')
            return Response(200, {"Content-Type": "text/html; charset=utf-8"}, body.encode())
        return super().__call__(request, headers)


class PartAboutPeople(RangePeople, AboutPeople):
    """That site, answering a ``Range: bytes=0-N`` with ``206`` and those bytes."""


@pytest.mark.parametrize("ranged", [False, True], ids=["control-whole-page", "first-120-bytes"])
@deferred_f_from_coro_f
async def test_a_part_of_a_page_is_not_read_as_a_page_without_meta_robots(
    ranged: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pagereads reads meta robots in the body; a spider that asks for the first 120 bytes of the page (``Range``)
    gets a ``206`` part without it, which was read as a page that says nothing: the ai-training callback got the
    page its meta robots ``noai`` reserves. A part is never read as the whole (as a person's page and robots.txt
    are not); the whole page is the control."""
    await assert_part_of_about_denied(ranged, tmp_path, monkeypatch)


async def assert_part_of_about_denied(ranged: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      **settings: Any) -> None:
    """An ai-training crawl of ``/about`` (the first 120 bytes of it when ``ranged``): the callback never runs; a
    part is ``error.internal``, the whole page its meta robots' deny."""
    from tests.test_page_reads import PLATFORMS_YAML

    crawl_settings = people_settings(tmp_path, CONSENTCRAWL_PURPOSE="ai-training", **settings)
    Path(crawl_settings["CONSENTCRAWL_PLATFORMS"]).write_text(PLATFORMS_YAML)
    app = PartAboutPeople()
    headers = {"Range": "bytes=0-119"} if ranged else {}
    logic = type("PartLogic", (ListLogic,), {"start": lambda self: _one(scrapy.Request(
        f"{BASE}/about", headers=headers, callback=self.parse))})
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", logic), crawl_settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert app.parts == (1 if ranged else 0), app.describe()
    assert not result.seen, f"the callback ran on the page: {result.items}"
    assert [why for phase, url, why in result.denies() if url == f"{BASE}/about"] == \
        ["error.internal" if ranged else "response.meta-robots"], result.denies()


async def _one(request: scrapy.Request) -> Any:
    yield request
