"""An attacker's review of reportlogs and items4: each a real crawl judged by the log records at INFO or above and
by the test server's own log."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.pipelines import ItemPipelineManager
from scrapy.utils.defer import deferred_f_from_coro_f
from twisted.internet import defer

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, ListLogic, crawl, make_spider, people_settings, secret_name
from tests.test_person_lines import _DENIED, _loud

BASE = f"http://{HOST}"


class OtherLoggers:
    """Report mode lets 107's page through: it is asked for with a cookie that has no value (Scrapy's cookies
    middleware warns naming the request, on ``scrapy.utils.request``), its callback logs its URL on the root logger
    (``logging.warning``, as Scrapy's own docs show) and starts a task that fails naming it, which no one awaits
    (asyncio's ERROR line), and ``start`` fails naming it (the engine's ERROR line)."""

    seen: list[str]

    async def start(self) -> Any:
        for person in ("101", "107"):
            yield scrapy.Request(f"{BASE}/u/{person}", callback=self.profile, cookies=[{"name": "session"}])
        raise ValueError(f"no more after {BASE}/u/107 and {BASE}/u/101")

    async def profile(self, response: Any) -> None:
        self.seen.append(response.url)
        logging.warning("reached %s", response.url)
        task = asyncio.ensure_future(_store(response.url))  # a task whose failure no one awaits
        await asyncio.sleep(0)
        del task
        gc.collect()  # asyncio logs "Task exception was never retrieved" as the task goes


async def _store(url: str) -> None:
    raise ValueError(f"could not store {url}")


@deferred_f_from_coro_f
async def test_report_mode_cookie_root_logger_and_start_error_lines_name_no_denied_person(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report")
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        await crawl(make_spider("ADDONS", OtherLoggers), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert "107" in app.people_served(), app.describe()  # report mode sent it
    loud = _loud(caplog)
    named = [line for line in loud if _DENIED.search(line)]
    assert named == [], "\n".join(named)
    for line in (f"Invalid cookie found in request <GET {BASE}/u/101>", f"WARNING root: reached {BASE}/u/101",
                 f"ValueError('could not store {BASE}/u/101')",
                 f"no more after <a URL consentcrawl did not allow (subject.no-authorization); at DEBUG> and "
                 f"{BASE}/u/101"):  # the control: 101 authorized the crawl
        assert [m for m in loud if line in m], (line, loud)


# -- request bodies naming a person as a JSON server or a UTF-8 form reader reads them -------------------------

#: a form part that says it is in base64, which a server ignores (RFC 7578: PHP, busboy read the part as sent)
MULTIPART_BASE64 = (b'--B\r\nContent-Disposition: form-data; name="user"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
                    b"%s\r\n--B--\r\n")
#: (body, content type): each names 107 to a server that reads the body as Express or Django does (JavaScript's
#: numbers: ``107.0`` and ``1.07e2`` are 107; a form's raw UTF-8 read as UTF-8, its fullwidth digits by ``int()``;
#: a multipart form's part as sent, whatever transfer encoding it claims; a GraphQL query's argument, or its
#: variables sent as a JSON string, as a GraphQL server reads them)
NAMING_107 = ((b'{"user": 107.0}', "application/json"), (b'{"follow": {"user": 1.07e2}}', "application/json"),
              ("user=\uff11\uff10\uff17".encode(), "application/x-www-form-urlencoded"),
              (MULTIPART_BASE64 % b"107", "multipart/form-data; boundary=B"),
              (b'{"query": "{ profile(uid: 107) { name } }"}', "application/json"),
              (b'{"query": "query($u: String!) { profile(uid: $u) { name } }", "variables": "{\\"u\\": \\"107\\"}"}',
               "application/json"))
#: the control: the same bodies naming 101, who authorized the crawl
NAMING_101 = ((b'{"user": 101.0}', "application/json"),
              ("user=\uff11\uff10\uff11".encode(), "application/x-www-form-urlencoded"),
              (MULTIPART_BASE64 % b"101", "multipart/form-data; boundary=B"),
              (b'{"query": "{ profile(uid: 101) { name } }"}', "application/json"))


class PostsNaming:
    """POSTs to the listing (a URL of no one) whose bodies name 107 (never authorized) or 101 (the control), by a
    key that is no query template's parameter (a body mentioning ``id`` is read as a query would be)."""

    seen: list[str]

    async def start(self) -> Any:
        for body, kind in (*NAMING_107, *NAMING_101):
            yield scrapy.Request(f"{BASE}/people", method="POST", body=body, headers={"Content-Type": kind},
                                 callback=self.seen_it, dont_filter=True)

    def seen_it(self, response: Any) -> None:
        self.seen.append(response.url)


@deferred_f_from_coro_f
async def test_a_body_naming_107_as_its_server_reads_it_is_not_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = LenientPeople()
    with LocalServer(app) as server:
        await crawl(make_spider("ADDONS", PostsNaming), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch)
        sent = sorted(r.body for r in server.requests if r.method == "POST")
    assert sent == sorted(body for body, _ in NAMING_101), sent  # the control went


# -- an item processor that runs the guard on the probe but not on every item -----------------------------------


class FastPathManager(ItemPipelineManager):
    """A project's processor with a fast path: an item marked ``cached`` needs no pipeline, it says. The empty probe
    the add-on hands it as the spider opens goes through Scrapy's chain (and reaches the guard)."""

    async def process_item_async(self, item: Any) -> Any:
        if item.get("cached"):
            return item
        return await super().process_item_async(item)


class CachedItems(ListLogic):
    def parse(self, response: Any) -> Any:
        self.seen.append(response.url)
        for person in ("101", "107"):
            yield {"subject": person, "platform": "people", "name": secret_name(person), "cached": True}
        yield {"subject": "101", "platform": "people", "name": secret_name("101")}  # the control: through the chain


@deferred_f_from_coro_f
async def test_an_item_processor_that_skips_the_guard_after_the_probe_hands_no_item_on_unchecked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feed = tmp_path / "items.jsonl"
    settings = people_settings(tmp_path, ITEM_PROCESSOR=f"{__name__}.FastPathManager",
                               FEEDS={str(feed): {"format": "jsonlines"}})
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", CachedItems), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/people?page=1"], follow_links=False)
    assert app.served, "the crawl ran"
    assert [(i.get("subject"), i.get("cached")) for i in result.items] == [("101", None)], result.items
    assert secret_name("107") not in feed.read_text()
    assert result.stats.get("consentcrawl/items/dropped") == 2, result.stats  # the guard saw neither cached item


class OldStyleFastPath(ItemPipelineManager):
    """A processor that overrides only the deprecated ``process_item`` (Scrapy then hands every item to it, not to
    ``process_item_async``) and hands items on without the pipelines."""

    def process_item(self, item: Any, spider: Any = None) -> Any:
        return defer.succeed(item)


@pytest.mark.filterwarnings("ignore::scrapy.exceptions.ScrapyDeprecationWarning")
@deferred_f_from_coro_f
async def test_an_item_processor_overriding_the_deprecated_process_item_is_probed_the_way_items_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = people_settings(tmp_path, ITEM_PROCESSOR=f"{__name__}.OldStyleFastPath")
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", CachedItems), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/people?page=1"], follow_links=False)
    assert [i for i in result.items if i.get("subject") == "107"] == [], result.items
    assert result.stats.get("finish_reason") == "consentcrawl_config_error", result.stats.get("finish_reason")
    assert app.served == [], app.describe()


# -- a relative link logged before it is followed ----------------------------------------------------------------


class LogsItsLinks:
    """101's page; its callback logs each link it follows as written on the page (relative), before following it:
    107 (never authorized) and 115 (records not known) are not decided yet when their lines are written."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.profile)

    def profile(self, response: Any) -> Any:
        self.seen.append(response.url)
        if response.url.endswith("/u/101"):
            for href in ("/u/107", "/u/115", "/u/101?tab=posts"):
                self.logger.info("following %s", href)
                yield response.follow(href, callback=self.profile)


@deferred_f_from_coro_f
async def test_a_relative_link_of_a_person_not_decided_yet_is_not_named_at_info(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        await crawl(make_spider("ADDONS", LogsItsLinks), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch)
    assert app.people_served() == ["101", "101"], app.describe()
    loud = _loud(caplog)
    named = [line for line in loud if _DENIED.search(line)]
    assert named == [], "\n".join(named)
    assert [m for m in loud if m.endswith("following /u/101?tab=posts")], loud  # the control: 101 authorized
