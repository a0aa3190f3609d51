"""An attacker's and regression review of review15: each a real crawl judged by the test server's own log and the
audit log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, Response
from tests import lenient
from tests.lenient import HOST, LenientPeople, ListLogic, Robots, crawl, make_spider, people_settings
from tests.test_leaks_hunt12 import assert_robots_keeps_101_out

BASE = f"http://{HOST}"


@dataclass
class BareAiTxtPeople(LenientPeople):
    """The lenient people site, whose ai.txt (no User-Agent line: it speaks to every crawler) disallows its about
    page, saved in ``encoding`` (``utf-8-sig``: with the byte order mark Windows Notepad writes)."""

    encoding: str = "utf-8-sig"

    def __call__(self, request: Any, headers: dict[str, str]) -> Response | None:
        if request.path == "/ai.txt":
            self.served.append(lenient.Served(request.time, request.host, request.target, request.path, "",
                                              "ai.txt", None, 200))
            return Response(200, {"Content-Type": "text/plain"}, "Disallow: /about\n".encode(self.encoding))
        return super().__call__(request, headers)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
@deferred_f_from_coro_f
async def test_an_ai_txt_without_a_user_agent_line_after_a_byte_order_mark_disallows_as_it_says(
    encoding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A line is put in front of an ai.txt without a User-Agent line; review15 reads a UTF-16 file first so its
    mark stays at the start, but a UTF-8 one with its mark kept it: the mark then began the file's first rule,
    which was no rule, and the page it disallows was fetched (utf-8 without a mark: the control)."""
    from tests.test_leaks_review15 import assert_ai_txt_keeps_about_out

    await assert_ai_txt_keeps_about_out(BareAiTxtPeople(encoding=encoding), tmp_path, monkeypatch)


# -- a robots.txt in UTF-8 with a NUL byte where a wide file has one -------------------------------------------

#: a UTF-8 robots.txt whose second byte is a NUL (a stray byte in a comment line); even in length, so it decodes
#: as UTF-16 too, to text that holds no record
NUL_SECOND = "#\0 generated.\nUser-agent: *\nDisallow: /u/\n"


@pytest.mark.parametrize("body", [NUL_SECOND, NUL_SECOND.replace("\0", "")], ids=["nul", "control"])
@deferred_f_from_coro_f
async def test_a_utf8_robots_txt_with_a_nul_in_its_first_bytes_is_not_read_as_utf16(
    body: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """review15 reads a robots.txt without a byte order mark as UTF-16 or UTF-32 when its first four bytes hold
    a NUL where a wide file's first character has one. A UTF-8 file with a stray NUL there decoded as UTF-16 to
    text with no record, allow-all, and 101's profile, which the file disallows, was fetched."""
    assert "\0" not in body or len(body.encode()) % 2 == 0  # so a UTF-16 reading decodes
    app = LenientPeople(default_robots=Robots(body=body))
    await assert_robots_keeps_101_out("ADDONS", app, people_settings(tmp_path), monkeypatch)


# -- an ordinary ImagesPipeline with thumbnails: an allowed person's stored image is still the store's -----------


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (60, 40), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


@dataclass
class AvatarPeople(LenientPeople):
    """The lenient people site, each profile's avatar a real PNG."""

    def __call__(self, request: Any, headers: dict[str, str]) -> Response | None:
        if request.path.endswith("/avatar.png"):
            self.served.append(lenient.Served(request.time, request.host, request.target, request.path, "",
                                              "avatar", request.path.split("/")[2], 200))
            return Response(200, {"Content-Type": "image/png"}, _png())
        return super().__call__(request, headers)


class OwnAvatarLogic(ListLogic):
    """101's profile, with an item that names 101's own avatar."""

    urls = [f"{BASE}/u/101"]
    follow_links = False

    def parse(self, response: Any) -> Any:
        self.seen.append(response.url)
        yield {"url": response.url, "image_urls": [f"{BASE}/u/101/avatar.png"]}


@deferred_f_from_coro_f
async def test_an_allowed_persons_stored_image_and_thumbnail_are_still_the_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """review15 decides each media request before the store is asked: for a person still authorized, the store
    still answers (``uptodate``), thumbnails and feed as before, and the image is not fetched again."""
    store = tmp_path / "images"
    extra = {"IMAGES_STORE": str(store), "IMAGES_THUMBS": {"small": (20, 20)},
             "ITEM_PIPELINES": {"scrapy.pipelines.images.ImagesPipeline": 1}}
    app = AvatarPeople()
    runs = []
    with LocalServer(app) as server:
        for n in (1, 2):
            where = tmp_path / f"run{n}"
            where.mkdir()
            runs.append(await crawl(make_spider("ADDONS", OwnAvatarLogic), people_settings(where, **extra),
                                    proxy=server.proxy, monkeypatch=monkeypatch))
    fetched = [s for s in app.served if s.path == "/u/101/avatar.png"]
    assert len(fetched) == 1, f"the stored image was fetched again\n{app.describe()}"
    statuses = [[f["status"] for f in i.get("images", [])] for r in runs for i in r.items]
    assert statuses == [["downloaded"], ["uptodate"]], [r.items for r in runs]
    assert len(list((store / "thumbs" / "small").iterdir())) == 1


# -- a project's downloader middleware that calls a 206 a 200 ---------------------------------------------------


class PartIsWhole:
    """A project's downloader middleware that gives its callbacks a 200 for the 206 its ``Range`` got, and no
    ``dataloss`` flag (so that ``response.status == 200`` checks pass): it runs before the response phase."""

    def process_response(self, request: scrapy.Request, response: scrapy.http.Response) -> Any:
        if response.status == 206 or "dataloss" in response.flags:
            return response.replace(status=200, flags=[f for f in response.flags if f != "dataloss"])
        return response


@pytest.mark.parametrize("ranged", [False, True], ids=["control-whole-page", "first-120-bytes"])
@deferred_f_from_coro_f
async def test_a_part_of_a_page_a_middleware_calls_whole_is_not_read_as_the_whole(
    ranged: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """review15 denies a 206 part of an HTML page, by its status; a project's downloader middleware (below the
    response phase, so its process_response runs first) that turns the 206 into a 200 made the part read as the
    whole page, which says nothing: the ai-training callback got the page its meta robots ``noai`` reserves."""
    from tests.test_leaks_review15 import assert_part_of_about_denied

    await assert_part_of_about_denied(ranged, tmp_path, monkeypatch,
                                      DOWNLOADER_MIDDLEWARES={f"{__name__}.PartIsWhole": 450})


# -- a card that names the page's path without the query that names its person ------------------------------


def _profile_and_viewer(viewer_card: bool) -> bytes:
    from tests.lenient import secret_name

    viewer = ('<div class="h-card"><a class="u-url" href="/profile.php">My profile</a>'
              '<span class="p-name">Signed-in viewer</span></div>') if viewer_card else ""
    return (f'<html><body>{viewer}<div class="h-card"><h1 class="p-name name">{secret_name("101")}</h1>'
            '<p class="p-note">Please do not scrape me. #nobot</p></div></body></html>').encode()


@pytest.mark.parametrize("viewer_card", [False, True], ids=["control-person-card-only", "viewer-card-bare-path"])
@deferred_f_from_coro_f
async def test_a_card_naming_the_path_without_the_persons_query_does_not_hide_the_persons_card(
    viewer_card: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """review15 takes a card's URL to name the page when it lacks only query parameters the page's URL has. On a
    site whose profiles are ``/profile.php?id=<id>``, a header card linking ``/profile.php`` (the signed-in
    viewer's own profile) then named 101's page; only it was read, 101's own card (no URL) and its #nobot were
    not, and the refusing person's page reached the callback (101's card alone is the control)."""
    from tests.test_page_reads import CodedPeople, DecompressLogic

    app = CodedPeople()
    app.gz["/profile.php"] = ("text/html; charset=utf-8", _profile_and_viewer(viewer_card))
    fetched = f"{BASE}/profile.php?id=101"
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", DecompressLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[fetched])
    assert [s for s in app.served if s.path == "/profile.php"], f"control: the page was fetched\n{app.describe()}"
    assert not result.seen, f"the callback ran on the refusing person's page: {result.items}"
    assert ("response", fetched, "subject.refused-on-page") in result.denies(), result.denies()
