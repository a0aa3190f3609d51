"""The leaving check reads an item's person as the guard pipeline does (consentcrawl/itemperson.py).

A pipeline between the guard and the leaving check may change the item. The leaving check used to read the item's
person more simply than the guard: the platform field as it stood, never against its page's; and an item the guard
kept on its page's person by identity (it cannot say whose it is) was not asked again at all. Judged by the feed,
the items scraped and the audit log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.lenient import (
    HOST,
    PLATFORMS_YAML,
    LenientPeople,
    crawl,
    iso,
    make_spider,
    people_settings,
    secret_name,
)
from tests.test_leaks_hunt18 import SLOW, AvatarLogic

BASE = f"http://{HOST}"
#: the people platform and another one on which 101 and 102 have also granted research
TWO_PLATFORMS = PLATFORMS_YAML + """\
  other:
    domains: [other.example]
    authorization: {purposes: [research], reference: "other agreement", valid_from: 2026-01-01,
                    valid_until: 2030-01-01}
    profiles: ["/u/{subject}"]
    subject: "[A-Za-z0-9_]+"
"""


def _record(platform: str, subject: str, revoked_at: str | None = None) -> str:
    revoked = f"    revoked_at: {revoked_at}\n" if revoked_at else ""
    return (f'  - platform: {platform}\n    subject: "{subject}"\n    purposes: [research]\n'
            f'    granted_at: 2026-01-01T00:00:00Z\n{revoked}    evidence: "test consent"\n')


class RelabelPipeline:
    """A project's pipeline between the guard and the leaving check that writes the platform field its own way."""

    def process_item(self, item: Any) -> Any:
        item["platform"] = "other"
        return item


def withdrawing_at_avatar(path: Path) -> LenientPeople:
    """The people site whose avatars FilesPipeline fetches: 101 withdraws (a line appended to ``path``) as their
    avatar is asked for, which then answers slowly; 102's answers at once."""

    def avatar(request: LoggedRequest) -> Response:
        if "avatar-101" in request.path:
            with path.open("a") as f:
                f.write(_record("people", "101", revoked_at=iso(time.time())))
            return Response(200, {"Content-Type": "image/png"}, b"\x89PNG 101", delay=SLOW)
        return Response(200, {"Content-Type": "image/png"}, b"\x89PNG 102")

    app = LenientPeople()
    app.pages["/files/avatar-101.png"] = app.pages["/files/avatar-102.png"] = avatar
    return app


@deferred_f_from_coro_f
async def test_a_platform_a_later_pipeline_rewrote_is_not_asked_instead_of_the_page_s(
        tmp_path: Path, monkeypatch: Any) -> None:
    """Fixed. 101 withdrew on the people platform while ``FilesPipeline`` fetched their avatar; a pipeline after it
    wrote ``platform: other`` into the item, a platform where 101 still grants research. The leaving check asked
    ``other`` and the item went to the feed; the guard would have denied an item naming another platform than its
    page's (``subject.mismatch``), and the leaving check now reads it the same way."""
    feed = tmp_path / "items.jsonl"
    records = [_record(p, s) for p in ("people", "other") for s in ("101", "102")]
    settings = people_settings(tmp_path, records, FILES_STORE=str(tmp_path / "files"),
                               ITEM_PIPELINES={"scrapy.pipelines.files.FilesPipeline": 1,
                                               f"{__name__}.RelabelPipeline": 2},
                               FEEDS={str(feed): {"format": "jsonlines"}})
    (tmp_path / "platforms.yaml").write_text(TWO_PLATFORMS)
    app = withdrawing_at_avatar(Path(settings["CONSENTCRAWL_AUTHORIZATIONS"]))
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", AvatarLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/u/101", f"{BASE}/u/102"], follow_links=False)
    assert {"/files/avatar-101.png", "/files/avatar-102.png"} <= {s.path for s in app.served}, app.describe()
    written = feed.read_text()
    assert secret_name("101") not in written, "the withdrawn person's item was written to the feed"
    assert not [item for item in result.items if item.get("subject") == "101"], result.items
    allowed = {e.get("subject") for e in result.audit if e.get("phase") == "item" and e.get("verdict") == "allow"}
    assert allowed == {"101", "102"}, result.audit  # control: the guard let both in, on the people platform
    item_denials = [e for e in result.audit if e.get("phase") == "item" and e.get("verdict") == "deny"]
    assert [e["reason"] for e in item_denials] == ["subject.mismatch"] * 2, item_denials


@dataclass
class Card:
    """An item class of the project's that names no one and has no provenance field: kept on its page's person by
    identity (itempages.py)."""

    name: str | None = None
    file_urls: list[str] = field(default_factory=list)
    files: list[Any] = field(default_factory=list)


class CardLogic(AvatarLogic):
    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        person = response.url.rsplit("/", 1)[-1]
        yield Card(response.css(".name::text").get(), [f"{BASE}/files/avatar-{person}.png"])


@deferred_f_from_coro_f
async def test_an_item_kept_on_its_page_by_identity_is_asked_again_as_it_leaves(
        tmp_path: Path, monkeypatch: Any) -> None:
    """Fixed. An item that names no one and cannot carry its provenance (a dataclass without those fields) is kept
    on its page's person by identity. 101 withdrew while ``FilesPipeline`` fetched their avatar, and their card was
    written to the feed: the leaving check found no person in it. It now asks about the person the guard allowed
    the item on."""
    feed = tmp_path / "items.jsonl"
    settings = people_settings(tmp_path, FILES_STORE=str(tmp_path / "files"),
                               ITEM_PIPELINES={"scrapy.pipelines.files.FilesPipeline": 1},
                               FEEDS={str(feed): {"format": "jsonlines"}})
    app = withdrawing_at_avatar(Path(settings["CONSENTCRAWL_AUTHORIZATIONS"]))
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", CardLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/101", f"{BASE}/u/102"], follow_links=False)
    assert {"/files/avatar-101.png", "/files/avatar-102.png"} <= {s.path for s in app.served}, app.describe()
    written = feed.read_text()
    assert secret_name("102") in written, f"control: 102's card is not in the feed: {written!r}"
    assert secret_name("101") not in written, "the withdrawn person's card was written to the feed"
    [deny] = [e for e in result.audit if e.get("phase") == "item" and e.get("verdict") == "deny"]
    assert deny["reason"] == "subject.revoked" and deny["subject"] == "101", deny
    assert result.stats.get("consentcrawl/items/denied_leaving") == 1, result.stats
