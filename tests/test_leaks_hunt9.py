"""Fresh-eyes leak hunt (hunt9): Scrapy's own log lines that a denied request reaches. Each test is a real crawl
against the lenient people site, judged by its served log and by every log line at INFO or above."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.logformatter import LogFormatter
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl import AuthorizationRecord
from consentcrawl_demo.fediverse import FediverseSite
from consentcrawl_demo.server import LocalServer
from spiders.fediverse import SETTINGS
from tests.conftest import consent_settings, jsonl, run_crawl
from tests.lenient import (
    AUTHORIZED,
    HOST,
    KINDS,
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
from tests.test_purge_refusals import TimelineSpider, receipts_for, served_paths

#: a profile URL of a person the lenient site has and who did not authorize the crawl (104 to 120, bob)
_DENIED_URL = re.compile(r"/u/(?:10[4-9]|11\d|120|bob)(?!\d)")


def _loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every log line at INFO or above, as it is written (the message with its arguments)."""
    return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.INFO]


def _naming_the_denied(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [line for line in _loud(caplog) if _DENIED_URL.search(line)]


# -- an errback that raises for a denied request -------------------------------------------------------------------


class RaisingErrback(ListLogic):
    """Follows the listing's profile links with an errback written for ``HttpError`` only, as many are: it reads
    ``failure.value.response``, which a denied request's failure has none of, and so raises."""

    urls = [f"http://{HOST}/people"]

    async def start(self) -> Any:
        for url in self.urls:
            yield scrapy.Request(url, callback=self.parse, errback=self.failed, dont_filter=True)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        for href in response.css("a.profile-link::attr(href)").getall():
            yield response.follow(href, callback=self.parse, errback=self.failed)

    def failed(self, failure: Any) -> Any:
        return failure.value.response.status


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_errback_raising_for_a_denied_request_logs_no_url_of_the_person(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Scrapy logs an errback's exception at ERROR as ``Spider error processing <GET url>``: for a request
    consentcrawl denied, that is the profile URL of a person who did not authorize the crawl. The errback still
    runs and its exception is still logged, by its type, without the URL (its traceback at DEBUG)."""
    app = LenientPeople()
    with LocalServer(app) as server, caplog.at_level(logging.INFO):
        result = await crawl(make_spider(kind, RaisingErrback), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert sorted(app.people_served()) == ["101", "102", "103"], app.describe()
    assert result.stats.get("spider_exceptions/AttributeError") == 7, result.stats  # 104-110: each errback raised
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "scrapy.core.scraper"]
    assert len(errors) == 7, _loud(caplog)
    assert not _naming_the_denied(caplog), _naming_the_denied(caplog)


class WarningFormatter(LogFormatter):
    """A project's own formatter: spider errors at WARNING."""

    def spider_error(self, *args: Any) -> Any:
        return {**super().spider_error(*args), "level": logging.WARNING}


@deferred_f_from_coro_f
async def test_a_projects_log_formatter_still_makes_the_lines_and_names_no_denied_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The add-on wraps the project's LOG_FORMATTER rather than replacing it: the project's level stands."""
    settings = people_settings(tmp_path, LOG_FORMATTER=f"{__name__}.WarningFormatter")
    with LocalServer(LenientPeople()) as server, caplog.at_level(logging.INFO):
        result = await crawl(make_spider("ADDONS", RaisingErrback), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert type(result.crawler.logformatter.inner) is WarningFormatter
    lines = [r for r in caplog.records if r.name == "scrapy.core.scraper" and r.levelno >= logging.INFO]
    assert [r.levelno for r in lines] == [logging.WARNING] * 7, _loud(caplog)
    assert not _naming_the_denied(caplog), _naming_the_denied(caplog)


class FormatterAddon:
    """An add-on applied after consentcrawl's that sets its own LOG_FORMATTER (Scrapy's, here)."""

    def update_settings(self, settings: Any) -> None:
        settings.set("LOG_FORMATTER", "scrapy.logformatter.LogFormatter", "addon")


@deferred_f_from_coro_f
async def test_a_later_add_on_that_replaces_the_log_formatter_stops_the_crawl(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """An add-on applied after consentcrawl's (a higher number in ``ADDONS``) that replaces LOG_FORMATTER would
    bring back the URL in Scrapy's line about a refused request's errback: the crawl refuses to start, with one
    CRITICAL line naming LOG_FORMATTER, as for a replaced download handler or pipeline."""
    spider = make_spider("ADDONS", RaisingErrback)
    spider.custom_settings = {"ADDONS": {"consentcrawl.Addon": 0, f"{__name__}.FormatterAddon": 500}}
    app = LenientPeople()
    with LocalServer(app) as server, caplog.at_level(logging.INFO):
        result = await crawl(spider, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.served == [], app.describe()
    assert result.stats.get("finish_reason") == "consentcrawl_config_error", result.stats
    critical = [line for line in _loud(caplog) if line.startswith("CRITICAL consentcrawl")]
    assert len(critical) == 1 and "LOG_FORMATTER" in critical[0], _loud(caplog)
    assert not _naming_the_denied(caplog), _naming_the_denied(caplog)


# -- a start request Scrapy's UrlLengthMiddleware ignores ----------------------------------------------------------


class LongStart(ListLogic):
    urls = [f"http://{HOST}/u/107?ref=" + "x" * 60, f"http://{HOST}/u/101?ref=" + "x" * 60, f"http://{HOST}/u/102"]


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_long_start_url_of_a_denied_person_is_not_logged_by_scrapy(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """UrlLengthMiddleware (a spider middleware) logs every request it drops at INFO with its URL. A callback's link
    meets consentcrawl's spider middleware first; a start request must too: the denied person's URL is refused
    (and recorded) before Scrapy's middleware logs it. The authorized person's long URL is Scrapy's to log."""
    app = LenientPeople()
    with LocalServer(app) as server, caplog.at_level(logging.INFO):
        result = await crawl(make_spider(kind, LongStart), people_settings(tmp_path, URLLENGTH_LIMIT=50),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.people_served() == ["102"], app.describe()
    assert [line for line in _loud(caplog) if "/u/101?ref=" in line], _loud(caplog)  # control: Scrapy logs it
    assert not _naming_the_denied(caplog), _naming_the_denied(caplog)
    assert [e["reason"] for e in result.audit_for("/u/107?ref=" + "x" * 60)] == ["subject.no-authorization"]
    assert "101" in AUTHORIZED


# -- a store whose version cannot be read --------------------------------------------------------------------------


class VersionFails:
    """A store of the user's own whose ``version`` asks its consent service, which is down: reading it raises
    (its lookups would still answer, from what it held). Grants 101-103."""

    source = "consent-service:down"

    def __init__(self) -> None:
        granted = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.records = {s: (AuthorizationRecord("people", s, frozenset({"research"}), granted, None, None,
                                                "test consent"),) for s in ("101", "102", "103")}

    @property
    def version(self) -> int:
        raise ConnectionError("the consent service does not answer")

    def lookup(self, platform: str, subject: str) -> Any:
        return self.records.get(subject, ())


class Profiles(ListLogic):
    urls = [f"http://{HOST}/u/107", f"http://{HOST}/u/101", f"http://{HOST}/people?page=2"]


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_store_whose_version_cannot_be_read_denies_with_its_cause_and_logs_no_url(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A store that cannot say whether its answers changed is a store that cannot answer: each request that needs a
    person's records is denied ``error.store-unavailable`` and recorded with the cause, as a failed lookup is.
    Before, the exception left the decision: robots.txt was refused as unreachable (the store's error as its
    cause), each request failed as a download error with no audit line, and Scrapy logged
    ``Error downloading <GET http://people.example/u/107>`` at ERROR."""
    settings = {**people_settings(tmp_path), "CONSENTCRAWL_AUTHORIZATIONS": f"{__name__}.VersionFails"}
    app = LenientPeople()
    with LocalServer(app) as server, caplog.at_level(logging.INFO):
        result = await crawl(make_spider(kind, Profiles), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.people_served() == [], app.describe()
    assert [s.path for s in app.served if s.kind == "robots"] == ["/robots.txt"], app.describe()
    assert [s.target for s in app.served if s.kind == "listing"] == [f"http://{HOST}/people?page=2"], app.describe()
    for path in ("/u/107", "/u/101"):
        [line] = result.audit_for(path)
        assert line["reason"] == "error.store-unavailable", line
        assert "the consent service does not answer" in json.dumps(line["evidence"]), line
    assert not _naming_the_denied(caplog), _naming_the_denied(caplog)


# -- an Item class that cannot take the provenance field ------------------------------------------------------------


class ProfileItem(scrapy.Item):
    """A project's item class: the profile's fields, no ``subject`` field and no provenance field."""

    name = scrapy.Field()
    email = scrapy.Field()


class ProfileItems(ListLogic):
    item_class: type = ProfileItem

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield self.item_class(name=response.css(".name::text").get(), email="jane.roe@mail.example")


@pytest.mark.parametrize(("item_class", "provenance"), [(ProfileItem, "consentcrawl"), (dict, "")],
                         ids=["Item", "dict-provenance-off"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_item_class_without_the_provenance_field_keeps_only_the_granted_fields(
        kind: str, item_class: type, provenance: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform grants ``fields: [name]``. An item from 101's profile is about 101 whether or not its class can
    hold the provenance field: the guard must apply 101's grant to it, as it does to a dict from the same page
    (tests/test_hunt.py). An ``Item`` class with neither a ``subject`` nor a provenance field kept ``email``; so
    did a dict with the provenance field switched off (``CONSENTCRAWL_PROVENANCE_FIELD = ""``)."""
    settings = people_settings(tmp_path, CONSENTCRAWL_PROVENANCE_FIELD=provenance)
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(FIELDS_PLATFORMS_YAML)
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ProfileItems), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"http://{HOST}/u/101"], item_class=item_class)
    assert app.people_served() == ["101"], app.describe()
    assert [i.get("name") for i in result.items] == [secret_name("101")], result.items
    assert "email" not in result.items[0], f"a field outside the grant's fields was kept: {result.items[0]}"
    [line] = [e for e in result.audit if e["phase"] == "item"]
    assert (line["subject"], line["verdict"]) == ("101", "allow"), line


class WithdrawsWhileParsing(ListLogic):
    """101's profile is parsed; while the callback runs, 101 withdraws (a line appended to the authorizations file),
    and the callback yields its item after the store has seen it (within its 2 s)."""

    authorizations: Path
    item_class: type = ProfileItem

    async def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        with self.authorizations.open("a", encoding="utf-8") as out:
            out.write(record_yaml("101", revoked_at=iso(time.time() - 1)))
        await asyncio.sleep(2.6)
        yield self.item_class(name=response.css(".name::text").get(), email="jane.roe@mail.example")


@pytest.mark.parametrize("item_class", [dict, ProfileItem], ids=["dict", "Item"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_item_class_without_the_provenance_field_from_a_person_who_withdrew_is_dropped(
        kind: str, item_class: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page was fetched while 101 was authorized; the item the callback yields after 101's withdrawal is about
    101 and must be dropped by the guard's live check, whether or not its class can hold the provenance field (a
    dict, which is stamped, is the control)."""
    settings = people_settings(tmp_path)
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, WithdrawsWhileParsing), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"http://{HOST}/u/101"],
                             authorizations=Path(settings["CONSENTCRAWL_AUTHORIZATIONS"]), item_class=item_class)
    assert app.people_served() == ["101"], app.describe()
    assert result.items == [], result.items
    [line] = [e for e in result.audit if e["phase"] == "item"]
    assert (line["subject"], line["verdict"]) == ("101", "deny"), line


# -- the purge on close, for items that cannot be found in the outputs ----------------------------------------------


class UnnamedPosts(TimelineSpider):
    """Posts as items that name no one (no subject field): the guard judges them as their page's person's."""

    name = "unnamed-posts"

    def parse_posts(self, response: Any, name: str) -> Any:
        for post in response.css(".h-entry .e-content"):
            yield {"kind": "post", "page": response.url, "text": " ".join(post.css("::text").getall())}
        yield response.follow(f"/@{name}", callback=self.parse_profile, cb_kwargs={"name": name})


@deferred_f_from_coro_f
async def test_a_purge_that_cannot_find_a_refused_persons_items_says_so_in_the_receipt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Bob's posts are collected before his profile says ``#nobot``; the purge on close erases what it can find of
    him. His posts were kept as items that name no one in the output (no subject field, the provenance field off):
    the purge cannot find them, so his receipt must not read as complete: it lists them as failed, the run counts
    ``consentcrawl/purge/failed`` and says so at ERROR (without his id)."""
    out = tmp_path / "out"
    settings = consent_settings(tmp_path, LOG_LEVEL="INFO", CONSENTCRAWL_PURGE_ON_CLOSE=True,
                                CONSENTCRAWL_PROVENANCE_FIELD="",
                                CONSENTCRAWL_PLATFORMS=[str(SETTINGS / "fediverse.yaml")],
                                CONSENTCRAWL_AUTHORIZATIONS=str(SETTINGS / "fediverse-authorizations.jsonl"),
                                FEEDS={str(out / "items.jsonl"): {"format": "jsonlines"}})
    with LocalServer(FediverseSite()) as server, caplog.at_level(logging.INFO):
        result = await run_crawl(UnnamedPosts, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        assert not server.errors, server.errors
    assert [p for _, p in served_paths(server, "bob")] == ["/@bob/posts", "/@bob"]
    # in the output, naming no one: nothing can find them there; their page's URL (bob's) is a mention of him, and
    # the purge withholds it from the items it keeps
    items = jsonl(out / "items.jsonl")
    kept = [i for i in items if i.get("kind") == "post" and i.get("page") is None]
    assert len(kept) == 3, items
    assert not [i for i in items if "@bob" in json.dumps(i)], items
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:bob")
    assert receipt["removed"] == 0, receipt
    assert [f for f in receipt["failed"] if "name no one" in f["why"]], receipt["failed"]
    assert result.stats.get("consentcrawl/purge/failed"), result.stats
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "purge" in r.getMessage()]
    assert errors and not [m for m in errors if "bob" in m], errors
