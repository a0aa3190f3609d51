"""What a spider's errback yields for a request consentcrawl refused goes no further than what the refused page
would have yielded: its items are dropped before the pipelines, its requests are decided like any other.

Scrapy hands an errback's output to the pipelines and the scheduler without the spider middlewares, so the
spider middleware that drops a denied page's output never sees it; an errback written to record failures
(``{"url": failure.request.url, ...}``) wrote a denied person's profile URL into the feed.
Judged by the items that came out and by the server's log.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings

#: a profile URL of a person the lenient site has and who did not authorize the crawl (104 to 120, bob)
_DENIED_URL = re.compile(r"/u/(?:10[4-9]|11\d|120|bob)(?!\d)")


async def _crawl(spider: type[scrapy.Spider], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 **settings: Any) -> tuple[Any, LenientPeople]:
    """A crawl of the people site with ``spider`` (HTTP errors go to the errback); its result and the site."""
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(spider, people_settings(tmp_path, HTTPERROR_ALLOWED_CODES=[], **settings),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    return result, app


def _nothing_of_the_refused(result: Any, app: LenientPeople) -> None:
    """Only the authorized people were fetched, and no item holds a refused person's profile URL."""
    assert sorted(app.people_served()) == ["101", "102", "103"], app.describe()
    leaked = [item for item in result.items if _DENIED_URL.search(str(item))]
    assert not leaked, leaked


class RecordingErrback(ListLogic):
    """Follows the listing's profile links and a missing page; its errback records every failure as an item and
    asks for a page of its own, in one of the shapes an errback's output may take."""

    shape = "generator"

    async def start(self) -> Any:
        yield scrapy.Request(f"http://{HOST}/people", callback=self.parse, errback=self.failed, dont_filter=True)
        # an allowed URL the site does not have: HttpError, not a refusal (the control)
        yield scrapy.Request(f"http://{HOST}/missing-page", callback=self.parse, errback=self.failed)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        for href in response.css("a.profile-link::attr(href)").getall():
            yield response.follow(href, callback=self.parse, errback=self.failed)

    def failed(self, failure: Any) -> Any:
        url = failure.request.url
        item = {"failed": url, "error": type(failure.value).__name__}
        follow = scrapy.Request(f"http://{HOST}/after-errback?from={url.rsplit('/', 1)[-1]}",
                                callback=self.parse, dont_filter=True)
        if self.shape == "item":
            return item
        if self.shape == "list":
            return [item, follow]
        if self.shape == "async":
            return self._async(item, follow)
        return iter([item, follow])

    async def _async(self, item: dict[str, Any], follow: scrapy.Request) -> Any:
        yield item
        yield follow


@pytest.mark.parametrize("shape", ["generator", "item", "list", "async"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_errbacks_items_for_a_refused_request_do_not_reach_the_pipelines(
        kind: str, shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spider = type("Recording", (make_spider(kind, RecordingErrback),), {"shape": shape})
    result, app = await _crawl(spider, tmp_path, monkeypatch)
    _nothing_of_the_refused(result, app)
    # the control: the errback of a failure that is not a refusal still yields its item
    assert [item["error"] for item in result.items if "missing-page" in item.get("failed", "")] == ["HttpError"]
    assert result.stats.get("consentcrawl/output_dropped", 0) >= 7  # 104-110, one item each
    if shape != "item":
        # requests an errback yields are decided like any other, and this one is allowed
        followed = sorted(s.query for s in app.served if s.path == "/after-errback")
        assert "from=104" in followed and "from=missing-page" in followed, app.describe()


@deferred_f_from_coro_f
async def test_an_errbacks_items_are_dropped_for_refusals_before_the_send_and_after_the_response(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other ways a request is refused: robots.txt (the request phase, before the slot) and a refusal the
    person published on their page (the response phase, before any callback)."""
    from tests.lenient import Robots

    app = LenientPeople(default_robots=Robots("User-agent: *\nDisallow: /u/102\n"), refusing={"103"})
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", RecordingErrback), people_settings(tmp_path),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert "102" not in app.people_served() and "103" in app.people_served(), app.describe()
    reasons = {e["url"].rsplit("/", 1)[-1]: e["reason"] for e in result.audit
               if e.get("verdict") == "deny" and e.get("url", "").endswith(("/u/102", "/u/103"))}
    assert reasons == {"102": "robots.disallowed", "103": "subject.refused-on-page"}, reasons
    failed = [item["failed"] for item in result.items if "failed" in item]
    assert not [url for url in failed if re.search(r"/u/10[2-9](?!\d)", url)], failed
    assert [url for url in failed if "missing-page" in url], "control: the errback ran for other failures"


class NamingErrback(RecordingErrback):
    """Its errback returns one item, not a list: a record about the person the failure is for, by name, in a dict
    or in a scrapy.Item (both iterate over their keys)."""

    item_class: Any = dict

    def failed(self, failure: Any) -> Any:
        person = failure.request.url.rsplit("/", 1)[-1]
        item = self.item_class()
        item["subject"] = "101" if person.isdigit() else person  # an authorized person: may be kept
        item["platform"] = "people"
        item["note"] = f"errback for {type(failure.value).__name__}"
        return item


class _NamingItem(scrapy.Item):
    subject = scrapy.Field()
    platform = scrapy.Field()
    note = scrapy.Field()


@pytest.mark.parametrize("item_class", [dict, _NamingItem])
@deferred_f_from_coro_f
async def test_a_single_item_naming_a_person_from_a_refused_requests_errback_reaches_the_guard_whole(
        item_class: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One item that names its person, returned alone (as Scrapy allows), goes on to the guard pipeline as the
    item it is: not taken apart into its keys (each of which the guard would drop as error.internal)."""
    spider = type("Naming", (make_spider("ConsentSpider", NamingErrback),), {"item_class": item_class})
    result, app = await _crawl(spider, tmp_path, monkeypatch)
    assert sorted(app.people_served()) == ["101", "102", "103"], app.describe()
    notes = [dict(item) for item in result.items if "note" in item]
    # 104-110 refused, each errback naming person 101 (authorized): each item kept whole
    assert len([n for n in notes if n["note"] == "errback for ConsentDenied"]) >= 7, result.items
    assert not [item for item in result.items if isinstance(item, str)], result.items
    internal = [e for e in result.audit if e.get("reason") == "error.internal"]
    assert not internal, internal


class FallbackErrback(RecordingErrback):
    """Its errback tries another page in place of a failed one, built from the failed request
    (``failure.request.replace(url=...)``), which carries the failed request's errback over."""

    def failed(self, failure: Any) -> Any:
        url = failure.request.url
        if "after-errback" in url:
            return None
        return failure.request.replace(url=f"http://{HOST}/after-errback?from={url.rsplit('/', 1)[-1]}",
                                       dont_filter=True)


@deferred_f_from_coro_f
async def test_a_request_an_errback_builds_from_a_refused_one_can_still_be_stored_in_the_queue(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The refused request's errback is wrapped; a request made from it (``replace``, ``copy``) and allowed goes
    into the disk queue with the spider's own errback, not the wrapper, which a queue cannot store: it would be
    kept in memory only (lost on a pause) and, in a shared scrapy-redis queue, never pushed."""
    result, app = await _crawl(make_spider("ConsentSpider", FallbackErrback), tmp_path, monkeypatch,
                               JOBDIR=str(tmp_path / "job"))
    followed = sorted(s.query for s in app.served if s.path == "/after-errback")
    assert "from=104" in followed, app.describe()
    assert result.stats.get("scheduler/unserializable", 0) == 0, result.stats
    assert result.stats.get("scheduler/enqueued/disk", 0) >= len(followed), result.stats


class BlankSubjectErrback(RecordingErrback):
    """Its errback records the failure in an item whose subject is blank: it names no one, whatever it looks like."""

    blank = " "

    def failed(self, failure: Any) -> Any:
        return {"subject": self.blank, "platform": "people", "failed": failure.request.url}


@pytest.mark.parametrize("blank", [" ", "\t", "\u00a0", " 101"])
@deferred_f_from_coro_f
async def test_an_errbacks_item_with_a_blank_subject_does_not_pass_as_naming_a_person(
        blank: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spider = type("Blank", (make_spider("ConsentSpider", BlankSubjectErrback),), {"blank": blank})
    result, app = await _crawl(spider, tmp_path, monkeypatch)
    _nothing_of_the_refused(result, app)


@deferred_f_from_coro_f
async def test_a_request_an_errback_builds_from_a_refused_one_goes_into_the_shared_queue(
        redis_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same in a distributed crawl: a scrapy-redis queue stores the request with the spider's errback (the
    wrapper could not be pushed: the request was held back as if Redis were away)."""
    result, app = await _crawl(make_spider("ConsentSpider", FallbackErrback), tmp_path, monkeypatch,
                               SCHEDULER="consentcrawl.distributed.scheduler.ConsentRedisScheduler",
                               DUPEFILTER_CLASS="consentcrawl.distributed.scheduler.ConsentRedisDupeFilter",
                               REDIS_URL=redis_server.url)
    followed = sorted(s.query for s in app.served if s.path == "/after-errback")
    assert "from=104" in followed, app.describe()
    assert result.stats.get("consentcrawl/shared_queue/unavailable", 0) == 0, result.stats


class WrapsDownloadErrors:
    """A project's downloader middleware that turns every download error into its own (as a monitoring or
    retrying middleware may): raising in ``process_exception`` ends Scrapy's chain there, before consentcrawl's
    request-phase middleware (priority 10, the last to see an exception) could wrap the refused request's errback."""

    how = "from"

    @classmethod
    def from_crawler(cls, crawler: Any) -> WrapsDownloadErrors:
        middleware = cls()
        middleware.how = crawler.settings.get("TEST_WRAP_HOW", "from")
        return middleware

    def process_exception(self, request: scrapy.Request, exception: Exception) -> None:
        if self.how == "from":
            raise RuntimeError(f"download failed: {type(exception).__name__}") from exception
        raise RuntimeError(f"download failed: {type(exception).__name__}") from None


@pytest.mark.parametrize("how", ["from", "from None"])
@deferred_f_from_coro_f
async def test_an_errbacks_items_are_dropped_for_a_refusal_a_project_middleware_turned_into_another_error(
        how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.lenient import Robots

    app = LenientPeople(default_robots=Robots("User-agent: *\nDisallow: /u/102\n"))
    settings = people_settings(tmp_path, HTTPERROR_ALLOWED_CODES=[], TEST_WRAP_HOW=how,
                               DOWNLOADER_MIDDLEWARES={f"{__name__}.WrapsDownloadErrors": 500})
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", RecordingErrback), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert "102" not in app.people_served(), app.describe()
    assert any(e.get("reason") == "robots.disallowed" and e.get("url", "").endswith("/u/102")
               for e in result.audit), result.denies()
    failed = [item["failed"] for item in result.items if "failed" in item]
    assert not [url for url in failed if re.search(r"/u/10[2-9](?!\d)", url)], failed
    assert [url for url in failed if "missing-page" in url], "control: the errback ran for other failures"


class HoldsProfile107:
    """A project's downloader middleware that holds /u/107 after the request phase until its grant has ended, so
    that the send-time decision is the one that refuses it."""

    async def process_request(self, request: scrapy.Request) -> None:
        if request.url.endswith("/u/107"):
            await asyncio.sleep(max(0.0, request.meta["grant_ends"] - time.time()) + 0.5)


class SendTimeRefusal(RecordingErrback):
    async def start(self) -> Any:
        for path, meta in (("/u/107", {"grant_ends": self.grant_ends}), ("/missing-page", {})):
            yield scrapy.Request(f"http://{HOST}{path}", callback=self.parse, errback=self.failed, meta=meta)


@deferred_f_from_coro_f
async def test_an_errbacks_items_are_dropped_for_a_send_time_refusal_a_project_middleware_turned_into_another_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.lenient import AUTHORIZED, iso, record_yaml

    grant_ends = int(time.time()) + 2
    records = [record_yaml(s) for s in AUTHORIZED] + [record_yaml("107", expires_at=iso(grant_ends))]
    app = LenientPeople()
    settings = people_settings(tmp_path, records, HTTPERROR_ALLOWED_CODES=[], DOWNLOADER_MIDDLEWARES={
        f"{__name__}.WrapsDownloadErrors": 500, f"{__name__}.HoldsProfile107": 20})
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", SendTimeRefusal), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, grant_ends=grant_ends)
    assert "107" not in app.people_served(), app.describe()
    assert any(e.get("reason") == "subject.expired" and e.get("phase") == "request" for e in result.audit), \
        result.denies()
    failed = [item["failed"] for item in result.items if "failed" in item]
    assert not [url for url in failed if url.endswith("/u/107")], failed
    assert [url for url in failed if "missing-page" in url], "control: the errback ran for other failures"
