"""The files Scrapy's FilesPipeline and ImagesPipeline stored of a purged person are erased: by the purge on close
and by ``consentcrawl purge --files-store/--images-store``; exactly the files their removed items name (and an
image's thumbnails), never one a kept item names too, never a path outside the store (docs/purge.md, "Stored
files").

Real crawls of the fediverse demo server with a CDN host serving real pictures (Pillow makes them); the verdict is
the stores' files on disk, listed independently of the purge's code, and the receipts in the audit log.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from itemadapter import ItemAdapter
from PIL import Image
from scrapy.pipelines.files import FilesPipeline
from scrapy.pipelines.media import MediaPipeline
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.audit.chain import verify
from consentcrawl.cli import main
from consentcrawl.purge.media import shown_name
from consentcrawl_demo.fediverse import FediverseSite
from consentcrawl_demo.server import LoggedRequest, Response
from spiders.fediverse import SETTINGS
from tests.conftest import jsonl
from tests.test_purge_refusals import TimelineSpider, crawl_site, receipts_for, served_paths

CDN = "http://media.example"
BANNER = f"{CDN}/banner.png"  #: the instance's banner: every author's item names it
COLOURS = {"alice": (200, 40, 40), "bob": (40, 40, 200), "banner": (40, 200, 40)}


def avatar(name: str) -> str:
    return f"{CDN}/avatars/{name}.png"


def guid(url: str) -> str:
    """The name the pipelines give a URL's file (Scrapy's ``file_path``: the SHA-1 of the URL)."""
    return hashlib.sha1(url.encode()).hexdigest()


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (60, 40), colour).save(out, "PNG")
    return out.getvalue()


class PictureSite(FediverseSite):
    """The fediverse demo, each person's avatar and the instance banner on a CDN whose URLs name no one."""

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.host == "media.example":
            if request.path == "/robots.txt":
                return Response.text("User-agent: *\nAllow: /\n")
            name = request.path.rpartition("/")[2].removesuffix(".png")
            if name not in COLOURS:  # the site's signal files (ai.txt, tdmrep.json): none
                return Response.text("Not Found\n", 404)
            return Response(200, {"Content-Type": "image/png"}, _png(COLOURS[name]))
        return super().__call__(request, headers)


class PictureTimeline(TimelineSpider):
    """Each author's posts and pictures (their avatar, the shared banner), then their profile: Bob's says
    ``#nobot`` after his pictures were stored."""

    name = "pictures"

    def parse_posts(self, response: Any, name: str) -> Iterator[Any]:
        urls = [avatar(name), BANNER]
        yield {"subject": name, "platform": "fediverse", "kind": "pictures", "file_urls": urls, "image_urls": urls}
        yield from super().parse_posts(response, name)


def media_settings(out: Path, **extra: Any) -> dict[str, Any]:
    return {"FILES_STORE": str(out / "files"), "IMAGES_STORE": str(out / "images"),
            "IMAGES_THUMBS": {"small": (20, 20)}, **extra}


def add_pipelines(settings: dict[str, Any], **more: int) -> dict[str, Any]:
    settings["ITEM_PIPELINES"] = {**settings["ITEM_PIPELINES"], "scrapy.pipelines.files.FilesPipeline": 100,
                                  "scrapy.pipelines.images.ImagesPipeline": 200, **more}
    return settings


def stored(root: Path) -> set[str]:
    """Every file under ``root``, relative (read with the file system, not with the purge's code)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def expected(*names: str) -> tuple[set[str], set[str]]:
    urls = [BANNER if n == "banner" else avatar(n) for n in names]
    files = {f"full/{guid(u)}.png" for u in urls}
    images = {f"{d}/{guid(u)}.jpg" for u in urls for d in ("full", "thumbs/small")}
    return files, images


async def crawl_pictures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> tuple[Any, Any, Path]:
    from tests import test_purge_refusals

    original = test_purge_refusals.fedi_settings

    def with_media(tmp: Path, out: Path, **more: Any) -> dict[str, Any]:
        pipelines = more.pop("PIPELINES", {})
        return add_pipelines(original(tmp, out, **media_settings(out), **more), **pipelines)

    monkeypatch.setattr(test_purge_refusals, "fedi_settings", with_media)
    return await crawl_site(PictureSite(), PictureTimeline, tmp_path, monkeypatch, **extra)


# -- purge on close ---------------------------------------------------------------------------------------------------


@deferred_f_from_coro_f
async def test_purge_on_close_erases_the_persons_stored_files_and_thumbnails_and_keeps_shared_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        result, server, out = await crawl_pictures(tmp_path, monkeypatch, CONSENTCRAWL_PURGE_ON_CLOSE=True)
    assert [p for _, p in served_paths(server, "bob")] == ["/@bob/posts", "/@bob"]  # pictures, then #nobot
    assert {avatar("bob"), avatar("alice"), BANNER} <= {r.url for r in server.requests}
    bob = [i for i in result.items if i["subject"] == "bob" and i["kind"] == "pictures"]
    assert [f["path"] for f in bob[0]["files"]] == [f"full/{guid(avatar('bob'))}.png", f"full/{guid(BANNER)}.png"]

    files, images = expected("alice", "banner")
    assert stored(out / "files") == files  # bob's avatar gone, alice's and the shared banner kept
    assert stored(out / "images") == images  # his image and its thumbnail gone
    assert {i["subject"] for i in jsonl(out / "items.jsonl")} == {"alice"}

    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:bob")
    media = {t["kind"]: t for t in receipt["targets"] if t["kind"] in ("files", "images")}
    assert media["files"]["path"] == str(out / "files")
    assert media["files"]["where"] == [f"full/{guid(avatar('bob'))}.png"]
    assert media["files"]["shared"] == [f"full/{guid(BANNER)}.png"] and media["files"]["absent"] == []
    assert media["images"]["where"] == [f"full/{guid(avatar('bob'))}.jpg", f"thumbs/small/{guid(avatar('bob'))}.jpg"]
    assert media["images"]["shared"] == [f"full/{guid(BANNER)}.jpg"]
    assert media["files"]["bytes"] == len(_png(COLOURS["bob"]))
    assert receipt["failed"] == []
    assert "consentcrawl/purge/failed" not in result.stats
    assert verify(tmp_path / "audit.jsonl").problem is None
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "bob" in r.getMessage()]


class Tampering:
    """After the media pipelines: Bob's item names files outside the store (a record an attacker wrote)."""

    def process_item(self, item: Any) -> Any:
        adapter = ItemAdapter(item)
        if adapter.get("subject") == "bob" and adapter.get("files"):
            outside = os.environ["TEST_OUTSIDE"]
            adapter["files"] = [*adapter["files"], {"url": "x", "path": "../outside.txt", "checksum": "0"},
                                {"url": "y", "path": outside, "checksum": "0"},
                                {"url": "z", "path": "full/link.png", "checksum": "0"}]
        return item


@deferred_f_from_coro_f
async def test_purge_on_close_never_erases_outside_the_store_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    out = tmp_path / "out"
    (out / "files" / "full").mkdir(parents=True)
    outside = tmp_path / "out" / "outside.txt"  # what "../outside.txt" from the store is
    outside.write_text("not the store's")
    absolute = tmp_path / "absolute.txt"
    absolute.write_text("not the store's either")
    linked = tmp_path / "linked.txt"
    linked.write_text("a link's target")
    (out / "files" / "full" / "link.png").symlink_to(linked)
    monkeypatch.setenv("TEST_OUTSIDE", str(absolute))
    with caplog.at_level(logging.INFO):
        result, _, out = await crawl_pictures(tmp_path, monkeypatch, CONSENTCRAWL_PURGE_ON_CLOSE=True,
                                              PIPELINES={"tests.test_purge_media.Tampering": 300})
    assert outside.read_text() == "not the store's" and absolute.read_text() == "not the store's either"
    assert linked.read_text() == "a link's target" and (out / "files" / "full" / "link.png").is_symlink()
    files, _ = expected("alice", "banner")
    assert stored(out / "files") == files | {"full/link.png"}  # bob's own avatar went all the same
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:bob")
    failed = [f["why"] for f in receipt["failed"] if f["path"] == str(out / "files")]
    assert len(failed) == 3, receipt["failed"]
    assert any("'..'" in why for why in failed) and any("absolute" in why for why in failed)
    assert any("symbolic link" in why for why in failed)
    assert not any(str(absolute) in why or "outside.txt" in why for why in failed)  # named by a hash of the path
    assert result.stats["consentcrawl/purge/failed"] == 3
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len([e for e in errors if str(out / "files") in e]) == 3, errors


# -- the command ------------------------------------------------------------------------------------------------------


@deferred_f_from_coro_f
async def test_the_command_erases_the_files_the_removed_items_name_in_the_stores_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    _, _, out = await crawl_pictures(tmp_path, monkeypatch)  # no purge on close: bob stays
    everything = expected("alice", "bob", "banner")
    assert (stored(out / "files"), stored(out / "images")) == everything
    feeds = [str(out / n) for n in ("items.jsonl", "items.json", "items.csv")]
    base = ["purge", "--platforms", str(SETTINGS / "fediverse.yaml"), "--subject", "fediverse:bob"]

    # no store named: the feeds are purged, the files are not, and the run says so (exit 1)
    spare = tmp_path / "spare"
    shutil.copytree(out, spare, ignore=shutil.ignore_patterns("httpcache"))
    capsys.readouterr()
    assert main([*base, "--audit-log", str(spare / "purge.jsonl"), str(spare / "items.csv")]) == 1
    err = capsys.readouterr().err
    assert "FILES_STORE" in err and "IMAGES_STORE" in err and "--files-store" in err, err
    assert stored(spare / "files") == everything[0]

    # a dry run changes nothing
    stores = ["--files-store", str(out / "files"), "--images-store", str(out / "images")]
    assert main([*base, "--dry-run", *stores, *feeds]) == 0
    assert "would remove 1 record(s) of fediverse:bob" in capsys.readouterr().out
    assert (stored(out / "files"), stored(out / "images")) == everything

    assert main([*base, "--audit-log", str(tmp_path / "purge.jsonl"), *stores, *feeds]) == 0, \
        capsys.readouterr().err
    assert (stored(out / "files"), stored(out / "images")) == expected("alice", "banner")
    assert {i["subject"] for i in jsonl(out / "items.jsonl")} == {"alice"}
    [receipt] = receipts_for(tmp_path / "purge.jsonl", "fediverse:bob")
    media = {t["kind"]: t for t in receipt["targets"] if t["kind"] in ("files", "images")}
    assert media["files"]["where"] == [f"full/{guid(avatar('bob'))}.png"]
    assert media["images"]["where"] == [f"full/{guid(avatar('bob'))}.jpg", f"thumbs/small/{guid(avatar('bob'))}.jpg"]
    assert verify(tmp_path / "purge.jsonl").problem is None


def test_the_command_keeps_files_a_kept_item_names_and_never_leaves_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    store = tmp_path / "store"
    (store / "full").mkdir(parents=True)
    outside_dir = tmp_path / "elsewhere"
    outside_dir.mkdir()
    for name in ("mine.png", "shared.png", "x.png"):
        (store / "full" / name).write_bytes(name.encode())
    (outside_dir / "x.png").write_bytes(b"elsewhere")
    (tmp_path / "outside.txt").write_text("outside")
    (store / "linkdir").symlink_to(outside_dir)
    (store / "full" / "link.png").symlink_to(store / "full" / "x.png")  # inside the store, still not followed

    def files(*paths: str) -> list[dict[str, str]]:
        return [{"url": f"http://cdn.example/{i}", "path": p, "checksum": "0", "status": "downloaded"}
                for i, p in enumerate(paths)]

    feed = tmp_path / "items.jsonl"
    feed.write_text("".join(json.dumps(item) + "\n" for item in [
        {"subject": "bob", "platform": "fediverse",
         "files": files("full/mine.png", "full/shared.png", "full/gone.png", "../outside.txt",
                        str(tmp_path / "outside.txt"), "linkdir/x.png", "full/link.png", "full/./x.png")},
        {"subject": "alice", "platform": "fediverse", "files": files("full/shared.png")},
    ]))
    command = ["purge", "--platforms", str(SETTINGS / "fediverse.yaml"), "--subject", "fediverse:bob",
               "--audit-log", str(tmp_path / "purge.jsonl"), "--files-store"]
    before = feed.read_bytes()
    assert main([*command, str(tmp_path / "no-such-store"), str(feed)]) == 2  # a usage error: nothing touched
    assert "--files-store" in capsys.readouterr().err and feed.read_bytes() == before
    code = main([*command, str(store), str(feed)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert stored(store) == {"full/shared.png", "full/x.png", "full/link.png", "linkdir"}
    assert (outside_dir / "x.png").read_bytes() == b"elsewhere" and (tmp_path / "outside.txt").exists()
    [receipt] = receipts_for(tmp_path / "purge.jsonl", "fediverse:bob")
    [media] = [t for t in receipt["targets"] if t["kind"] == "files"]
    assert media["where"] == [shown_name("full/mine.png")] and media["where"][0].startswith("sha256:")
    assert media["shared"] == [shown_name("full/shared.png")] and media["absent"] == [shown_name("full/gone.png")]
    assert media["bytes"] == len(b"mine.png")
    whys = [f["why"] for f in receipt["failed"]]
    assert len(whys) == 5, whys
    assert sum("symbolic link" in w for w in whys) == 2 and sum("'..'" in w for w in whys) == 2
    assert sum("absolute" in w for w in whys) == 1
    assert "outside.txt" not in err and "mine.png" not in err  # a file named by a hash of its path


class AvatarsPipeline(FilesPipeline):
    """A project's own FilesPipeline: its result field is read as Scrapy reads it (a class-named setting)."""


def test_a_store_off_the_local_disk_is_listed_failed_without_its_credentials_and_fields_are_read_as_scrapy_does(
) -> None:
    from scrapy.settings import Settings

    from consentcrawl.purge.media import MediaStore, erase_media, stores_from_settings
    from consentcrawl.purge.media_names import MediaNames

    settings = Settings({"ITEM_PIPELINES": {"tests.test_purge_media.AvatarsPipeline": 1,
                                            "scrapy.pipelines.images.ImagesPipeline": 2},
                         "FILES_STORE": "ftp://user:secret@files.example/store?x=1", "IMAGES_STORE": "/srv/images",
                         "AVATARSPIPELINE_FILES_RESULT_FIELD": "avatars", "IMAGES_RESULT_FIELD": "pictures"})
    stores = stores_from_settings(settings)
    assert stores == [MediaStore("files", "ftp://user:secret@files.example/store?x=1", "AvatarsPipeline", "avatars"),
                      MediaStore("images", "/srv/images", "ImagesPipeline", "pictures")]
    names = MediaNames()
    results, failed = erase_media(stores[:1], names)
    assert results == [] and failed == [("ftp://files.example/store", "AvatarsPipeline's store is not on the local "
                                         "disk: the files it saved of the purged people are not erased (erase them "
                                         "by the file paths of their items)")]


class OwnMediaPipeline(MediaPipeline):
    """A media pipeline of the project's own: where it saves, and under which field, is not known."""

    def get_media_requests(self, item: Any, info: Any) -> list[Any]:
        return []

    def media_to_download(self, request: Any, info: Any, *, item: Any = None) -> None:
        return None

    def media_downloaded(self, response: Any, request: Any, info: Any, *, item: Any = None) -> None:
        return None

    def media_failed(self, failure: Any, request: Any, info: Any) -> None:
        return None

    def file_path(self, request: Any, response: Any = None, info: Any = None, *, item: Any = None) -> str:
        return ""

    def item_completed(self, results: Any, item: Any, info: Any) -> Any:
        return item


def test_a_media_pipeline_of_unknown_kind_is_listed_failed() -> None:
    from scrapy.settings import Settings

    from consentcrawl.purge.media import erase_media, stores_from_settings
    from consentcrawl.purge.media_names import MediaNames

    stores = stores_from_settings(Settings({"ITEM_PIPELINES": {"tests.test_purge_media.OwnMediaPipeline": 1}}))
    _, failed = erase_media(stores, MediaNames())
    assert failed == [("tests.test_purge_media.OwnMediaPipeline", "OwnMediaPipeline is a media pipeline that is "
                       "neither FilesPipeline nor ImagesPipeline: the files it saved of the purged people are not "
                       "erased")]
