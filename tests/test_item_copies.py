"""An item a project's spider middleware copies (or rebuilds) is still judged as its page's person's.

With ``CONSENTCRAWL_PROVENANCE_FIELD`` off, or an ``Item`` class without the field, consentcrawl's spider
middleware hands the page of an item that names no one to the guard by the item object's identity
(``consentcrawl/itempages.py``). A project's spider middleware below ours that yields ``dict(item)``,
``ItemAdapter(item).asdict()``, a new item built from the old one, or a new dict of some of its fields, makes an
object the guard had no page for: it went out as no one's, with the fields the person's grant does not cover,
and after the person's grant had ended. Real crawls against the lenient people site with a feed, judged by the
feed: 101 (authorized; the platform's grant covers ``name`` only) is kept without ``email``; 107, whose grant ends
while the callback parses their page, is not in the feed at all."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import scrapy
from itemadapter import ItemAdapter
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.runtime import get_runtime
from consentcrawl_demo.server import LocalServer
from tests.conftest import jsonl
from tests.lenient import (
    AUTHORIZED,
    HOST,
    KINDS,
    Crawl,
    LenientPeople,
    ListLogic,
    crawl,
    iso,
    make_spider,
    people_settings,
    record_yaml,
    secret_name,
)
from tests.test_hunt import FIELDS_PLATFORMS_YAML
from tests.test_leaks_hunt9 import ProfileItem

#: seconds after the crawl's configuration is written that 107's grant ends (whole seconds: the files' precision)
_GRANT_SECONDS = 10  # both profiles of all ten crawls (run at once) are fetched before it ends, on a loaded machine too


def _copy(item: Any, style: str) -> Any:
    adapter = ItemAdapter(item)
    if style == "dict":
        return dict(item)
    if style == "asdict":
        return adapter.asdict()
    if style == "rebuild":
        return type(item)(**adapter.asdict())
    if style == "subset":  # a new dict of some of its fields, and one of the middleware's own
        return {"name": adapter.get("name"), "email": adapter.get("email"), "seen_by": "copier"}
    raise ValueError(style)


class CopyingMiddleware:
    """A project's spider middleware that yields a copy of every item in place of the item."""

    style = "dict"

    @classmethod
    def from_crawler(cls, crawler: Any) -> CopyingMiddleware:
        middleware = cls()
        middleware.style = crawler.settings.get("TEST_COPY_STYLE", "dict")
        return middleware

    async def process_spider_output(self, response: Any, result: Any) -> Any:
        async for obj in result:
            yield obj if isinstance(obj, scrapy.Request) else _copy(obj, self.style)


class ProfilesUntilExpiry(ListLogic):
    """Parses 101's and 107's profiles into items without a subject field (``name``, and ``email``, which the
    platform's grant does not cover); on 107's page it yields only after 107's grant has ended."""

    urls = [f"http://{HOST}/u/101", f"http://{HOST}/u/107"]
    item_class: type = dict
    grant_ends: float

    async def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        if response.url.endswith("/107"):
            await asyncio.sleep(max(0.0, self.grant_ends - time.time()) + 0.5)
        yield self.item_class(name=response.css(".name::text").get(), email="jane.roe@mail.example")


def _settings(tmp_path: Path, style: str, provenance: str, grant_ends: float | None = None,
              ) -> tuple[dict[str, Any], float]:
    grant_ends = int(time.time()) + _GRANT_SECONDS if grant_ends is None else grant_ends
    records = [record_yaml(s) for s in AUTHORIZED] + [record_yaml("107", expires_at=iso(grant_ends))]
    settings = people_settings(tmp_path, records, CONSENTCRAWL_PROVENANCE_FIELD=provenance, TEST_COPY_STYLE=style,
                               SPIDER_MIDDLEWARES={f"{__name__}.CopyingMiddleware": 500},
                               FEEDS={str(tmp_path / "items.jsonl"): {"format": "jsonlines"}})
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(FIELDS_PLATFORMS_YAML)
    return settings, grant_ends


@pytest.mark.parametrize("style", ["dict", "asdict", "rebuild", "subset"])
@pytest.mark.parametrize(("item_class", "provenance"), [(dict, ""), (ProfileItem, "consentcrawl")],
                         ids=["dict-provenance-off", "Item-without-the-field"])
@deferred_f_from_coro_f
async def test_a_copied_item_is_judged_as_its_pages_person(
        item_class: type, provenance: str, style: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await _crawl_and_judge("ConsentSpider", item_class, provenance, style, tmp_path, monkeypatch)


@deferred_f_from_coro_f
async def test_a_copied_item_is_judged_as_its_pages_person_with_the_addons_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await _crawl_and_judge("ADDONS", dict, "", "dict", tmp_path, monkeypatch)


#: the (kind, item class, provenance field, copy style) of every test below that judges 101's and 107's items: each
#: waits for 107's grant to end, so they are crawled at once, each on its own host of the people site with its own
#: configuration, feed and audit log, and each test judges its own crawl
_CASES = [*(("ConsentSpider", item_class, provenance, style)
            for item_class, provenance in ((dict, ""), (ProfileItem, "consentcrawl"))
            for style in ("dict", "asdict", "rebuild", "subset")),
          ("ADDONS", dict, "", "dict"), ("ConsentSpider", dict, "consentcrawl", "subset")]
#: case -> (its crawl, the people its host served, its directory): the crawls of this worker, run once
_CRAWLED: dict[tuple[str, type, str, str], tuple[Crawl, list[str], Path]] = {}


async def _crawl_all(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = [f"case{i}.{HOST}" for i in range(len(_CASES))]
    app = LenientPeople(hosts=tuple(hosts))
    grant_ends = int(time.time()) + _GRANT_SECONDS

    async def one(i: int, kind: str, item_class: type, provenance: str, style: str) -> Crawl:
        directory = root / f"case{i}"
        directory.mkdir()
        settings, _ = _settings(directory, style, provenance, grant_ends)
        return await crawl(make_spider(kind, ProfilesUntilExpiry), settings, proxy=None, monkeypatch=monkeypatch,
                           item_class=item_class, grant_ends=grant_ends,
                           urls=[f"http://{hosts[i]}/u/101", f"http://{hosts[i]}/u/107"])

    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        results = await asyncio.gather(*(one(i, *case) for i, case in enumerate(_CASES)))
    for i, (case, result) in enumerate(zip(_CASES, results, strict=True)):
        served = [s.person for s in app.served if s.host == hosts[i] and s.person is not None]
        _CRAWLED[case] = (result, served, root / f"case{i}")


async def _crawl_and_judge(kind: str, item_class: type, provenance: str, style: str, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert kind in KINDS
    case = (kind, item_class, provenance, style)
    if case not in _CRAWLED:
        await _crawl_all(tmp_path, monkeypatch)
    result, served, tmp_path = _CRAWLED[case]
    assert sorted(served) == ["101", "107"], served  # both fetched while authorized
    feed = jsonl(tmp_path / "items.jsonl")
    names = [item.get("name") for item in feed]
    assert names == [secret_name("101")], feed  # 107's item is not in the feed
    assert "email" not in feed[0], f"a field outside the grant's fields was kept: {feed[0]}"
    assert secret_name("107") not in (tmp_path / "items.jsonl").read_text()
    items = sorted((e["subject"], e["verdict"], e["reason"]) for e in result.audit if e["phase"] == "item")
    assert items == [("101", "allow", "subject.authorized"), ("107", "deny", "subject.expired")], items
    # where the output can name its person (the provenance field on, a dict), it does, and a purge can find it;
    # elsewhere the guard counts the item as one a purge cannot find (the purge's receipt says so)
    unfindable = get_runtime(result.crawler).item_pages.unfindable
    if provenance and (item_class is dict or style != "rebuild"):  # the copy is a dict: it can carry the field
        assert feed[0][provenance]["subject"] == "101", feed[0]
        assert unfindable == {}, unfindable
    else:
        assert unfindable == {("people", "101"): 1}, unfindable


@deferred_f_from_coro_f
async def test_a_new_dict_without_the_provenance_field_is_judged_as_its_pages_person(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the provenance field on, a copy of a dict carries it; a new dict made of some of its fields does not,
    and is judged as the page's person's all the same."""
    await _crawl_and_judge("ConsentSpider", dict, "consentcrawl", "subset", tmp_path, monkeypatch)


class PipelinesByHand(ListLogic):
    """Hands its items to the item pipelines itself, as ``scrapy parse --pipelines`` does with a callback's items:
    outside Scrapy's scraper, so Scrapy names no page for them. One names no one, one names its person."""

    urls = [f"http://{HOST}/u/101"]
    outcomes: list[str]

    async def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        itemproc = self.crawler.engine.scraper.itemproc
        for item in ({"name": response.css(".name::text").get()},
                     {"name": response.css(".name::text").get(), "subject": "101", "platform": "people"}):
            try:
                kept = await itemproc.process_item_async(item)
            except scrapy.exceptions.DropItem as exc:
                self.outcomes.append(f"dropped: {exc}")
            else:
                self.outcomes.append(f"kept: {sorted(kept)}")
        return
        yield


@deferred_f_from_coro_f
async def test_an_item_handed_to_the_pipelines_outside_scrapys_scraper_is_dropped_unless_it_names_its_person(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whose an item is that names no one, carries no page and comes from no page Scrapy names cannot be told:
    dropped, ``subject.unknown-page``, with its cause in the audit log. An item that names its person is judged
    by that person (the control)."""
    outcomes: list[str] = []
    with LocalServer(LenientPeople()) as server:
        result = await crawl(make_spider("ConsentSpider", PipelinesByHand),
                             people_settings(tmp_path, CONSENTCRAWL_PROVENANCE_FIELD=""), proxy=server.proxy,
                             monkeypatch=monkeypatch, outcomes=outcomes)
    assert outcomes == ["dropped: consentcrawl: subject.unknown-page",
                        "kept: ['name', 'platform', 'subject']"], outcomes
    [line] = [e for e in result.audit if e["phase"] == "item" and e["reason"] == "subject.unknown-page"]
    assert line["verdict"] == "deny" and "outside Scrapy's scraper" in line["evidence"][0]["cause"], line


class NoOnesItems(ListLogic):
    """Items of no person, copied by the project's middleware: one yielded from ``start()``, one from the listing
    page (not a profile), one from an errback of a 404 (HttpError, handed the page) and one an async generator
    callback yields after awaiting. None is a person's, so none may be dropped as of an unknown page."""

    urls = [f"http://{HOST}/people", f"http://{HOST}/missing-page"]

    async def start(self) -> Any:
        yield {"kind": "start"}
        for url in self.urls:
            yield scrapy.Request(url, callback=self.listing, errback=self.failed, dont_filter=True)

    async def listing(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"kind": "listing", "count": len(response.css("a.profile-link"))}
        await asyncio.sleep(0.05)
        yield {"kind": "later"}

    def failed(self, failure: Any) -> Any:
        yield {"kind": "errback", "status": failure.value.response.status}


@pytest.mark.parametrize("provenance", ["", "consentcrawl"])
@deferred_f_from_coro_f
async def test_copied_items_of_no_person_are_kept(
        provenance: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, _ = _settings(tmp_path, "dict", provenance)
    with LocalServer(LenientPeople()) as server:
        result = await crawl(make_spider("ConsentSpider", NoOnesItems), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    kinds = sorted(item["kind"] for item in jsonl(tmp_path / "items.jsonl"))
    assert kinds == ["errback", "later", "listing", "start"], (kinds, result.denies())
    assert [e for e in result.audit if e.get("reason") == "subject.unknown-page"] == [], result.audit
