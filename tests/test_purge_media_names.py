"""A project's own media naming (an ``ImagesPipeline`` subclass overriding ``file_path`` and ``thumb_path``): the
purge erases the purged person's image and thumbnails wherever the pipeline put them.

The item names the full image's ``path`` (the pipeline's result); its thumbnails are named by the pipeline's
``thumb_path``, which a project may override (and which, by default, hashes the URL, not the full image's name,
so a custom ``file_path`` alone moved them out of the purge's sight too). Real crawls of the fediverse demo with
pictures on a CDN (tests/test_purge_media.py); the verdict is the store's files on disk, listed with the file
system, the names computed here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from scrapy.pipelines.images import ImagesPipeline
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from spiders.fediverse import SETTINGS
from tests.conftest import jsonl
from tests.test_purge_media import BANNER, avatar, crawl_pictures, stored
from tests.test_purge_refusals import receipts_for

PIPELINE = "tests.test_purge_media_names.RenamingImages"


def digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


class RenamingImages(ImagesPipeline):
    """Stores each image under ``pictures/<subject>/<hash>.jpg`` and its thumbnails under
    ``previews/<size>/<subject>-<hash>.jpg``: names of the project's own, with the item's subject in them; the
    thumbnails' directory is set up by ``__init__`` (only the pipeline as the crawl made it can name them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.previews = "previews"

    def file_path(self, request: Any, response: Any = None, info: Any = None, *, item: Any = None) -> str:
        return f"pictures/{item['subject']}/{digest(request.url)}.jpg"

    def thumb_path(self, request: Any, thumb_id: str, response: Any = None, info: Any = None, *,
                   item: Any = None) -> str:
        return f"{self.previews}/{thumb_id}/{item['subject']}-{digest(request.url)}.jpg"


def stored_for(person: str, url: str) -> set[str]:
    return {f"pictures/{person}/{digest(url)}.jpg", f"previews/small/{person}-{digest(url)}.jpg"}


def expected_before() -> tuple[set[str], set[str]]:
    """(bob's avatar and its thumbnail, the banner's two files as a set of either person's copy). Scrapy downloads
    a URL once per crawl and gives every later item the first one's result, so the banner is stored once, under
    the name of whoever's item came first, and both items name that copy."""
    return stored_for("bob", avatar("bob")), stored_for("bob", BANNER) | stored_for("alice", BANNER)


def with_thumbnail(path: str) -> set[str]:
    """``pictures/<subject>/<hash>.jpg`` and its thumbnail's name, as :class:`RenamingImages` writes them."""
    _, subject, name = path.split("/")
    return {path, f"previews/small/{subject}-{name}"}


def check_before(files: set[str]) -> set[str]:
    """What must be left once bob is purged: all but his avatar's two files."""
    bobs, banners = expected_before()
    assert bobs <= files and len(files & banners) == 2
    assert files == bobs | stored_for("alice", avatar("alice")) | (files & banners)
    return files - bobs


def renaming(**extra: Any) -> dict[str, Any]:
    return {"PIPELINES": {"scrapy.pipelines.images.ImagesPipeline": None, PIPELINE: 200}, **extra}


@deferred_f_from_coro_f
async def test_purge_on_close_erases_images_and_thumbnails_a_pipeline_named_its_own_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    result, _, out = await crawl_pictures(tmp_path, monkeypatch, **renaming(CONSENTCRAWL_PURGE_ON_CLOSE=True))
    assert {i["subject"] for i in result.items if i.get("kind") == "pictures"} == {"alice", "bob"}
    # what the crawl stored, by the paths its items name (the purge ran at its end): each image and its thumbnail
    full = {i["images"][n]["path"] for i in result.items if i.get("kind") == "pictures" for n in range(2)}
    kept = check_before({name for path in full for name in with_thumbnail(path)})
    # bob (#nobot on his profile, read after his pictures were stored) is purged: his avatar and its thumbnail
    # go; the banner alice's kept item names too stays (shared)
    assert stored(out / "images") == kept
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:bob")
    [images] = [t for t in receipt["targets"] if t["kind"] == "images"]
    assert images["removed"] == 2 and len(images["shared"]) == 1 and receipt["failed"] == []
    assert "consentcrawl/purge/failed" not in result.stats


@deferred_f_from_coro_f
async def test_the_command_erases_images_and_thumbnails_a_pipeline_named_its_own_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    _, _, out = await crawl_pictures(tmp_path, monkeypatch, **renaming())
    kept = check_before(stored(out / "images"))
    module = tmp_path / "renaming_settings.py"
    module.write_text(f"ITEM_PIPELINES = {{'scrapy.pipelines.files.FilesPipeline': 100, {PIPELINE!r}: 200}}\n"
                      f"FILES_STORE = {str(out / 'files')!r}\nIMAGES_STORE = {str(out / 'images')!r}\n"
                      "IMAGES_THUMBS = {'small': (20, 20)}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    status = main(["purge", "--platforms", str(SETTINGS / "fediverse.yaml"), "--settings", "renaming_settings",
                   "--subject", "fediverse:bob", "--audit-log", str(tmp_path / "purge.jsonl"),
                   str(out / "items.jsonl")])
    assert status == 0, capsys.readouterr().err
    assert {i["subject"] for i in jsonl(out / "items.jsonl")} == {"alice"}
    assert stored(out / "images") == kept


class NeedsResponse(RenamingImages):
    """Names thumbnails from the response, which the purge does not have."""

    def thumb_path(self, request: Any, thumb_id: str, response: Any = None, info: Any = None, *,
                   item: Any = None) -> str:
        return f"previews/{thumb_id}/{response.url.rsplit('/', 1)[-1]}"


@deferred_f_from_coro_f
async def test_thumbnails_the_pipeline_cannot_name_without_the_crawl_are_a_failure_not_a_guess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    _, _, out = await crawl_pictures(tmp_path, monkeypatch, **renaming())
    before = stored(out / "images")
    module = tmp_path / "needs_response_settings.py"
    module.write_text("ITEM_PIPELINES = {'scrapy.pipelines.files.FilesPipeline': 100, "
                      "'tests.test_purge_media_names.NeedsResponse': 200}\n"
                      f"FILES_STORE = {str(out / 'files')!r}\nIMAGES_STORE = {str(out / 'images')!r}\n"
                      "IMAGES_THUMBS = {'small': (20, 20)}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    log = tmp_path / "purge.jsonl"
    assert main(["purge", "--platforms", str(SETTINGS / "fediverse.yaml"), "--settings", "needs_response_settings",
                 "--subject", "fediverse:bob", "--audit-log", str(log), str(out / "items.jsonl")]) == 1
    assert "NeedsResponse.thumb_path cannot name its thumbnails here (AttributeError)" in capsys.readouterr().err
    # his image went; its thumbnail, whose name could not be told, is reported in the receipt, not guessed at
    assert before - stored(out / "images") == {f"pictures/bob/{digest(avatar('bob'))}.jpg"}
    [receipt] = receipts_for(log, "fediverse:bob")
    assert any("thumb_path cannot name" in f["why"] for f in receipt["failed"])


@deferred_f_from_coro_f
async def test_the_command_builds_no_pipeline_when_it_erases_no_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A purge that erases no image does not run the project's pipeline ``__init__`` (ImagesPipeline's makes
    ``IMAGES_STORE``): the store it names stays unmade; one that erases an image builds it and names the
    thumbnails as the crawl did (above)."""
    _, _, out = await crawl_pictures(tmp_path, monkeypatch, **renaming())
    before = (out / "items.jsonl").read_bytes()
    unmade = tmp_path / "no-such-store"
    module = tmp_path / "unmade_settings.py"
    module.write_text(f"ITEM_PIPELINES = {{{PIPELINE!r}: 200}}\nIMAGES_STORE = {str(unmade)!r}\n"
                      "IMAGES_THUMBS = {'small': (20, 20)}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    status = main(["purge", "--platforms", str(SETTINGS / "fediverse.yaml"), "--settings", "unmade_settings",
                   "--subject", "fediverse:nobody", "--audit-log", str(tmp_path / "purge.jsonl"),
                   str(out / "items.jsonl")])
    assert status == 0, capsys.readouterr().err
    assert not unmade.exists()
    assert (out / "items.jsonl").read_bytes() == before
