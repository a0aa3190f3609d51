"""Leaks found by a second, fresh-eyes hunt (issues 11, 13, 14, 16): each a real crawl of the lenient ``people``
site (:mod:`tests.lenient`), judged by what the server served and by what spider code, logs and files received,
for a ``ConsentSpider`` and for a plain spider with the ``ADDONS`` line."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

import tests.lenient as lenient
import tests.test_hunt as hunt
from consentcrawl.decision import Decision, Evidence, Stage, deny
from consentcrawl_demo.server import LocalServer, Response
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

BASE = f"http://{HOST}"


# --------------------------------------------------------------------------- a refusal's words in an errback

#: what 101 wrote in their bio, next to the hashtag that refuses the crawl
BIO_SECRET = "SECRET-BIO-101"


def _refusing_profile(person: str, *, refusing: bool = True) -> str:
    return (f'<html><body><div class="h-card"><h1 class="p-name name">{secret_name(person)}</h1>'
            f'<p class="p-note">my diary, {BIO_SECRET}, is mine #nobot</p></div></body></html>')


class ErrbackLogic(hunt.ErrbackLogic):
    """101's profile only, its failure kept by the errback."""

    people = ("101",)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_the_words_of_a_refusal_on_the_page_do_not_reach_the_errback(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """101 is authorized but refuses on their page (``#nobot`` in their bio): the response is denied
    (``subject.refused-on-page``) and its errback called with the deny. The deny's evidence quotes the bio around
    the hashtag; that quote is for the audit log, not for spider code: neither ``failure.value.decision`` nor the
    request's ``meta["consentcrawl_decision"]`` may carry it."""
    monkeypatch.setattr(lenient, "_profile_html", _refusing_profile)
    failures: list[Any] = []
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ErrbackLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, failures=failures)
    assert app.people_served() == ["101"], app.describe()
    assert not result.seen and not result.items, "the refusing person's page reached a callback"
    refused = [e for e in result.audit if e.get("reason") == "subject.refused-on-page"]
    assert refused and BIO_SECRET in str(refused), "control: the audit line keeps the evidence"
    assert len(failures) == 1, failures
    decision = failures[0].value.decision
    assert decision.reason == "subject.refused-on-page" and decision.decision_id == refused[-1]["decision_id"]
    assert any(e.kind == "refusal-on-page" for e in decision.evidence), "control: the evidence is there, quoteless"
    handed = repr(decision) + repr(failures[0].request.meta)
    assert BIO_SECRET not in handed, f"the refusing person's words reached the errback: {handed}"


#: what the operator recorded when 101 withdrew
WITHDRAWAL_SECRET = "SECRET-WITHDRAWAL-101"


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_how_a_person_withdrew_does_not_reach_the_errback(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """101 withdrew; the record's evidence says how. The deny reaches the errback without that text (the audit line
    keeps it), and 101's page is not fetched."""
    records = [lenient.record_yaml("101", revoked_at="2026-02-01T00:00:00Z", evidence=f"{WITHDRAWAL_SECRET} by mail")]
    failures: list[Any] = []
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ErrbackLogic), people_settings(tmp_path, records), proxy=server.proxy,
                             monkeypatch=monkeypatch, failures=failures)
    assert "101" not in app.people_served(), app.describe()
    revoked = [e for e in result.audit if e.get("reason") == "subject.revoked"]
    assert revoked and WITHDRAWAL_SECRET in str(revoked), "control: the audit line keeps the record's evidence"
    assert len(failures) == 1, failures
    decision = failures[0].value.decision
    assert decision.reason == "subject.revoked"
    assert any(e.kind == "subject-authorization" for e in decision.evidence), "control: the evidence is there"
    handed = repr(decision) + repr(failures[0].request.meta)
    assert WITHDRAWAL_SECRET not in handed, f"how 101 withdrew reached the errback: {handed}"


def test_for_spider_leaves_out_page_quotes_and_keeps_everything_else() -> None:
    quote = Evidence("refusal-on-page", "http://p.example/u/1", {"form": "hashtag.nobot", "raw": "my words #nobot"})
    owner = Evidence("page-owner", "http://p.example/u/1", {"owner": "http://p.example/users/2", "cause": "x"})
    other = Evidence("robots.txt", "http://p.example/robots.txt", {"rule": "Allow: /"})
    decision = deny(Stage.SUBJECT, "subject.refused-on-page", subject="1", platform="p",
                    evidence=(other, quote, owner))
    seen = decision.for_spider()
    assert (seen.reason, seen.subject, seen.platform, seen.decision_id) == (
        decision.reason, decision.subject, decision.platform, decision.decision_id)
    assert [e.to_dict() for e in seen.evidence] == [
        other.to_dict(),
        {"kind": "refusal-on-page", "source": "http://p.example/u/1", "form": "hashtag.nobot"},
        {"kind": "page-owner", "source": "http://p.example/u/1", "cause": "x"}]
    assert "my words" in str(decision.to_dict()), "the audit log's copy is unchanged"
    plain = Decision(decision.verdict, decision.stage, decision.reason, evidence=(other,))
    copy = plain.for_spider()
    assert copy == plain and copy.evidence[0].detail is not other.detail, "equal, sharing no mutable detail"
    bare = Decision(decision.verdict, decision.stage, decision.reason)
    assert bare.for_spider() is bare, "nothing mutable to copy"


# --------------------------------------------------------------------------- side requests that fetch a person


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_side_request_that_would_fetch_a_persons_page_is_refused_with_its_audit_line(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another site's robots.txt redirects to 101's profile, and names 102's profile as its RSL licence. Both are
    authorized, but a site's own file is not a person's page: fetched as one, it would pass by their origin's
    robots.txt, the wait for their first page and the reading of it (tests/test_leaks_failopen.py). Neither is
    fetched, and each refused hop is in the audit log (phase ``robots`` or ``signals``, naming the person,
    ``subject.mismatch``).
    107, named the same way, holds no record (control: denied as before)."""
    app = LenientPeople(hosts=(HOST, "other.example", "third.example"))
    app.robots["other.example"] = Robots(location=f"{BASE}/u/101")
    app.robots["third.example"] = Robots(body=f"User-agent: *\nAllow: /\nLicense: {BASE}/u/102\n"
                                              f"License: {BASE}/u/107\n")
    app.page("/page", "<html><body>a page</body></html>")
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=["http://other.example/page", "http://third.example/page"],
                             follow_links=False)
    assert next(s.path for s in app.served if s.host == "third.example") == "/robots.txt", app.describe()  # control
    assert app.people_served() == [], app.describe()
    for person, phase in (("101", "robots"), ("102", "signals")):
        lines = [e for e in result.audit if e.get("url") == f"{BASE}/u/{person}"]
        assert lines and all(e["verdict"] == "deny" for e in lines), result.audit
        assert {(e["phase"], e["subject"], e["reason"]) for e in lines} == {(phase, person, "subject.mismatch")}
    assert any(e.get("url") == f"{BASE}/u/107" for e in result.audit if e.get("verdict") == "deny")


# --------------------------------------------------------------------------- a fixed decision time in a crawl


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_crawl_with_a_fixed_decision_time_says_so_at_warning(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """``CONSENTCRAWL_NOW`` (for ``check --now``, replays and tests) in a crawl decides as of that time: 101, who
    withdrew after it, is fetched. That is what the setting means, so the crawl must not keep it quiet: one
    WARNING line names the setting and what it costs."""
    records = [lenient.record_yaml(s) for s in lenient.AUTHORIZED]
    records.append(lenient.record_yaml("101", revoked_at="2026-11-30T00:00:00Z", evidence="withdrawn"))
    settings = people_settings(tmp_path, records, CONSENTCRAWL_NOW="2026-06-01T00:00:00Z")
    app = LenientPeople()
    with caplog.at_level(logging.INFO), LocalServer(app) as server:
        await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                    urls=[f"{BASE}/u/101"], follow_links=False)
    assert app.people_served() == ["101"], "control: as of 2026-06-01, 101 had not withdrawn"
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
              and "CONSENTCRAWL_NOW" in r.getMessage()]
    assert len(warned) == 1 and "withdrawals and expiries after that time are not honoured" in warned[0], warned


# --------------------------------------------------------------------------- a refusal on a page of an odd type


@dataclass
class TypedPeople(LenientPeople):
    """The lenient site, its profile pages sent with another ``Content-Type`` (None: no such header at all)."""

    profile_type: str | None = "text/html; charset=utf-8"

    def _answer(self, request: Any, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        kind, response = super()._answer(request, path, kind, person)
        if kind == "profile":
            headers = {} if self.profile_type is None else {"Content-Type": self.profile_type}
            response = Response(response.status, headers, response.body)
        return kind, response


async def first_page_then_posts(kind: str, app: Any, profile: Any, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> Any:
    """101's refusing page (``profile``) served by ``app`` (a :class:`LenientPeople` that sends it as it likes),
    then their posts a second later: the crawl, once the server's log shows only the first page was served."""
    monkeypatch.setattr(lenient, "_profile_html", profile)
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/u/101", 1.0, f"{BASE}/u/101/posts"],
                             follow_links=False)
    assert app.people_served() == ["101"], f"101's next page was fetched after they refused\n{app.describe()}"
    return result


@pytest.mark.parametrize("profile_type", ["text/plain; charset=utf-8", "application/octet-stream", "text/htm",
                                          None])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_refusal_on_a_page_sent_with_another_content_type_is_read(
    kind: str, profile_type: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """101 refuses in their bio, on a page the site sends as ``text/plain``, ``application/octet-stream``, a
    misspelt type or none. Scrapy still hands it to the callback as a text response that ``.css()`` parses as
    HTML, so the page must be read for refusals as HTML: it is denied, and 101's next page is not fetched."""
    result = await first_page_then_posts(kind, TypedPeople(profile_type=profile_type), _refusing_profile, tmp_path,
                                         monkeypatch)
    assert not result.seen and secret_name("101") not in str(result.items), f"a callback got it: {result.seen}"
    assert any(e.get("reason") == "subject.refused-on-page" for e in result.audit), result.denies()


# --------------------------------------------------------------------------- PHP's parameter names


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_query_parameter_name_with_leading_spaces_is_read_as_php_reads_it(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PHP drops leading spaces from parameter names: ``/profile.php?%20id=107`` and ``?+id=108`` are ``id``, and
    the lenient site serves 107 and 108 for them. They must be read as those people, not as "no profile"."""
    hrefs = ["/profile.php?%20id=107", "/profile.php?+id=108", "/profile.php?%20%20id=109&x=1", "/u/101"]
    for href in hrefs[:3]:
        assert lenient.person_of_url(href) is not None, href  # what the site reads
    app = LenientPeople().links_page("/spellings", hrefs)
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/spellings"])
    assert "101" in app.people_served(), app.describe()
    assert not {"107", "108", "109"} & set(app.people_served()), app.describe()
    denied = {e["url"] for e in result.audit if e.get("verdict") == "deny" and "profile.php" in e.get("url", "")}
    assert len(denied) == 3, result.denies()


# --------------------------------------------------------------------------- a refusal on a compressed UTF-16 page


@dataclass
class EncodedPeople(LenientPeople):
    """The lenient site, its profile pages in UTF-16 (with a byte order mark, the only sign of it), gzip-compressed."""

    def _answer(self, request: Any, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        kind, response = super()._answer(request, path, kind, person)
        if kind == "profile":
            body = gzip.compress(response.body_bytes().decode("utf-8").encode("utf-16"))
            response = Response(response.status, {"Content-Type": "text/html", "Content-Encoding": "gzip"}, body)
        return kind, response


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_refusal_on_a_compressed_utf16_page_is_read(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The page is read for refusals before Scrapy decompresses it, so the reader decompresses it itself; it must
    then find the encoding as Scrapy will (the byte order mark), or the callback parses a page whose refusal
    nobody read."""
    result = await first_page_then_posts(kind, EncodedPeople(), _refusing_profile, tmp_path, monkeypatch)
    assert not result.seen and secret_name("101") not in str(result.items), f"a callback got it: {result.seen}"


def _actor(person: str, *, refusing: bool = False) -> str:
    return json.dumps({"@context": "https://www.w3.org/ns/activitystreams", "type": "Person",
                       "id": f"{BASE}/u/{person}", "name": secret_name(person), "indexable": False})


@pytest.mark.parametrize("profile_type", ["text/plain; charset=utf-8", None, "application/octet-stream"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_actor_document_sent_with_another_content_type_is_read(
    kind: str, profile_type: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """101's ActivityPub actor says ``"indexable": false`` (no research use, Mastodon's opt-in), on a page the
    site sends as text or with no type. A callback reads it with ``json.loads(response.text)`` all the same, so it
    is read as an actor: denied, and 101's next page not fetched."""
    result = await first_page_then_posts(kind, TypedPeople(profile_type=profile_type), _actor, tmp_path, monkeypatch)
    assert not result.seen, f"a callback got it: {result.seen}"


# --------------------------------------------------------------------------- the browser guard's error line


@deferred_f_from_coro_f
async def test_a_browser_request_that_cannot_be_decided_is_blocked_without_its_url_at_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """scrapy-playwright's guard blocks a request it could not decide, and says so at ERROR; the URL (a person's
    page, perhaps one who did not authorize the crawl) and the exception's text stay at DEBUG."""
    from scrapy.utils.test import get_crawler

    import consentcrawl.browser as browser_module

    class Session:
        sent: list[str] = []

        async def send(self, method: str, params: dict[str, Any]) -> None:
            self.sent.append(method)

    class Exploding:
        async def decide_url_now(self, url: str, *, phase: str = "browser") -> Any:
            raise RuntimeError(f"could not read {url}")

    session = Session()
    gate = browser_module._RequestGate(get_crawler(settings_dict={}), session)
    monkeypatch.setattr(browser_module, "get_runtime", lambda crawler: Exploding())
    with caplog.at_level(logging.DEBUG):
        await gate.answer({"requestId": "1", "request": {"url": f"{BASE}/u/107", "method": "GET"}})
    assert session.sent == ["Fetch.failRequest"]
    errors = [logging.Formatter().format(r) for r in caplog.records if r.levelno >= logging.INFO]
    assert errors and not any("/u/107" in line for line in errors), errors
    assert any("/u/107" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG), "control"


# --------------------------------------------------------------------------- a project component nearer the network


class SeeingSpiderMiddleware:
    """A project's spider middleware numbered above consentcrawl's (say, one that logs every link): what it sees."""

    seen: list[str] = []

    async def process_spider_output(self, response: Any, result: Any) -> Any:
        async for obj in result:
            if isinstance(obj, scrapy.Request):
                SeeingSpiderMiddleware.seen.append(obj.url)
            yield obj


class SeeingDownloaderMiddleware:
    """A project's downloader middleware numbered above consentcrawl's response phase (say, one that archives every
    response): the bodies it sees."""

    seen: list[bytes] = []

    def process_response(self, request: Any, response: Any) -> Any:
        SeeingDownloaderMiddleware.seen.append(response.body)
        return response


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_project_component_numbered_above_consentcrawls_does_not_see_what_it_drops(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A spider middleware at 20000 and a downloader middleware at 990 would meet a callback's output and the
    network's responses before consentcrawl's (10000 and 950). The add-on moves its own outermost, as it moves the
    guard pipeline first, and says so: the links to people who did not authorize the crawl and the page of a person
    who refused on it never reach the project's components."""
    monkeypatch.setattr(lenient, "_profile_html", _refusing_profile)  # every profile refuses (#nobot)
    monkeypatch.setattr(SeeingSpiderMiddleware, "seen", [])
    monkeypatch.setattr(SeeingDownloaderMiddleware, "seen", [])
    settings = people_settings(
        tmp_path, SPIDER_MIDDLEWARES={"tests.test_leaks_hunt.SeeingSpiderMiddleware": 20000},
        DOWNLOADER_MIDDLEWARES={"tests.test_leaks_hunt.SeeingDownloaderMiddleware": 990})
    app = LenientPeople()
    with caplog.at_level(logging.INFO), LocalServer(app) as server:
        await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                    urls=[f"{BASE}/people?page=1"])
    assert "101" in app.people_served(), app.describe()  # authorized: fetched, then denied for its #nobot
    links = SeeingSpiderMiddleware.seen
    assert any(u.endswith("/u/101") for u in links), f"control: the project middleware saw links: {links}"
    assert not [u for u in links if u.rsplit("/", 1)[-1] in {str(i) for i in range(104, 111)}], links
    assert SeeingDownloaderMiddleware.seen, "control: the project middleware saw responses"
    assert not [b for b in SeeingDownloaderMiddleware.seen if secret_name("101").encode() in b], \
        "the page of a person who refused on it reached the project's downloader middleware"
    moved = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "runs at" in r.getMessage()]
    assert len(moved) == 2, moved


# --------------------------------------------------------------------------- a part of a page


@dataclass
class RangePeople(LenientPeople):
    """The lenient site, answering a ``Range: bytes=0-N`` request for a profile with ``206`` and those bytes."""

    parts: int = 0  #: 206 answers given

    def __call__(self, request: Any, headers: dict[str, str]) -> Response | None:
        response = super().__call__(request, headers)
        wanted = {k.lower(): v for k, v in headers.items()}.get("range", "")
        if response is not None and response.status == 200 and wanted.startswith("bytes=0-"):
            end = int(wanted.removeprefix("bytes=0-")) + 1
            body = response.body_bytes()
            self.parts += 1
            response = Response(206, {**dict(response.header_pairs()),
                                      "Content-Range": f"bytes 0-{end - 1}/{len(body)}"}, body[:end])
        return response


class RangeLogic(ListLogic):
    """Fetches the first 120 bytes of 101's profile (enough for the name, not for the bio), then the page below it."""

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", headers={"Range": "bytes=0-119"}, callback=self.parse)
        await asyncio.sleep(1.0)
        yield scrapy.Request(f"{BASE}/u/101/posts", callback=self.parse)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_part_of_a_persons_page_is_not_used_as_if_it_had_no_refusal(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``206`` answer to a range request holds part of a page: the part a refusal is in may be missing (here the
    bio with ``#nobot``; the name is there). What the person says cannot be read, so the part is not used, and
    their next page is not fetched as if their page had been read."""
    monkeypatch.setattr(lenient, "_profile_html", _refusing_profile)
    app = RangePeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, RangeLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, follow_links=False)
    assert app.parts == 1, f"control: a part was served\n{app.describe()}"
    assert not result.seen and secret_name("101") not in str(result.items), f"a callback got it: {result.seen}"


class LaterSpiderMiddlewareAddon:
    """An add-on applied after consentcrawl's that puts a spider middleware above consentcrawl's."""

    def update_settings(self, settings: Any) -> None:
        settings["SPIDER_MIDDLEWARES"].set(f"{__name__}.SeeingSpiderMiddleware", 50000, "addon")


class LaterDownloaderMiddlewareAddon:
    """An add-on applied after consentcrawl's that puts a downloader middleware above the response phase."""

    def update_settings(self, settings: Any) -> None:
        settings["DOWNLOADER_MIDDLEWARES"].set(f"{__name__}.SeeingDownloaderMiddleware", 5000, "addon")


@pytest.mark.parametrize(("addon", "setting"), [(LaterSpiderMiddlewareAddon, "SPIDER_MIDDLEWARES"),
                                                (LaterDownloaderMiddlewareAddon, "DOWNLOADER_MIDDLEWARES")])
@deferred_f_from_coro_f
async def test_a_later_add_on_numbering_a_component_above_consentcrawls_stops_the_crawl(
    addon: type, setting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """An add-on applied after consentcrawl's (a higher number in ``ADDONS``) cannot be renumbered by it: the crawl
    refuses to start, with one CRITICAL line naming the setting, and nothing is fetched."""
    monkeypatch.setattr(SeeingSpiderMiddleware, "seen", [])
    spider = make_spider("ADDONS", ListLogic)
    spider.custom_settings = {"ADDONS": {"consentcrawl.Addon": 0, f"{__name__}.{addon.__name__}": 500}}
    app = LenientPeople()
    with caplog.at_level(logging.INFO), LocalServer(app) as server:
        result = await crawl(spider, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/people?page=1"])
    assert app.served == [], app.describe()
    assert result.stats.get("finish_reason") == "consentcrawl_config_error", result.stats.get("finish_reason")
    critical = [r.getMessage() for r in caplog.records if r.levelno >= logging.CRITICAL]
    assert len(critical) == 1 and setting in critical[0], critical


# --------------------------------------------------------------------------- seeds pushed to Redis


@pytest.mark.parametrize("kind", ["ConsentSpider", "ADDONS"])
def test_seeds_pushed_to_redis_naming_people_who_did_not_authorize_are_not_fetched(
    kind: str, redis_server: Any, tmp_path: Path,
) -> None:
    """A distributed worker reads seeds from its Redis start key: plain URLs and JSON entries with meta. A seed
    for 107, a lenient spelling of 108 under 101's path, and one whose meta names 101 for 109's URL are decided
    like any start request: only 101 is fetched (the site's served log)."""
    from tests.test_distributed import SEEDS, Workers, grant, worker_settings

    settings = worker_settings(redis_server.url, tmp_path, CONSENTCRAWL_REDIS_IDLE_CLOSE=1)
    grant(redis_server.url + "?prefix=auth", tmp_path, ["101"])
    seeds = [f"{BASE}/u/107", f"{BASE}/u/101/..%2F108",
             json.dumps({"url": f"{BASE}/u/109", "meta": {"consentcrawl_subject": "people:101"}}),
             json.dumps({"url": f"{BASE}/u/110", "meta": {"consentcrawl_decision": "allow", "dont_filter": True}}),
             f"{BASE}/u/101"]
    app = LenientPeople()
    with LocalServer(app) as server:
        workers = Workers(tmp_path, server)
        try:
            import redis

            client = redis.Redis.from_url(redis_server.url)
            try:  # before the worker starts: one idle for CONSENTCRAWL_REDIS_IDLE_CLOSE before they came would close
                client.rpush(SEEDS, *seeds)
            finally:
                client.close()
            workers.start(settings, [kind])
            codes = workers.wait()
        finally:
            workers.kill()
    assert codes == [0], workers.describe()
    assert app.people_served() == ["101"], app.describe()


class MetaLogic(ListLogic):
    """101's profile only; the callback keeps what ``response.meta`` hands it."""

    urls = [f"{BASE}/u/101"]
    metas: list[str]

    def parse(self, response: scrapy.http.Response) -> Any:
        self.metas.append(repr(response.meta.get("consentcrawl_decision")))
        yield from ()


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_in_report_mode_how_a_person_withdrew_does_not_reach_the_callback(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Report mode fetches 101's page though 101 withdrew; the callback reads the send-time deny in
    ``response.meta``, remembered again by the response phase. Neither phase hands it the record's text."""
    records = [lenient.record_yaml("101", revoked_at="2026-02-01T00:00:00Z", evidence=f"{WITHDRAWAL_SECRET} by mail")]
    metas: list[str] = []
    app = LenientPeople()
    with LocalServer(app) as server:
        settings = people_settings(tmp_path, records, CONSENTCRAWL_MODE="report")
        result = await crawl(make_spider(kind, MetaLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             metas=metas)
    assert app.people_served() == ["101"], app.describe()
    revoked = [e for e in result.audit if e.get("reason") == "subject.revoked"]
    assert revoked and WITHDRAWAL_SECRET in str(revoked), "control: the audit line keeps the record's evidence"
    assert len(metas) == 1 and "subject.revoked" in metas[0] and "subject-authorization" in metas[0], metas
    assert WITHDRAWAL_SECRET not in metas[0], f"how 101 withdrew reached the callback: {metas[0]}"


class EvidenceWritingLogic(ListLogic):
    """101's profile twice: the first callback writes into every evidence ``detail`` its ``response.meta`` decision
    holds, then asks for the page again (``dont_filter``), so the second decision is the same question asked again."""

    urls = [f"{BASE}/u/101"]
    writes: list[int]

    def parse(self, response: scrapy.http.Response) -> Any:
        decision = response.meta.get("consentcrawl_decision")
        if not self.writes:
            for evidence in decision.evidence if decision is not None else ():
                for key in list(evidence.detail):
                    evidence.detail[key] = "WRITTEN-BY-SPIDER"
                evidence.detail["spider"] = "WRITTEN-BY-SPIDER"
                self.writes.append(1)
            yield scrapy.Request(response.url, callback=self.parse, dont_filter=True)
        yield from ()


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_what_a_callback_writes_into_its_decisions_evidence_is_not_in_later_audit_lines(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The decision a callback reads shares nothing mutable with the engine's: a spider writing into its
    evidence must not rewrite the evidence of the decisions made after it (the audit log is the proof)."""
    writes: list[int] = []
    app = LenientPeople()
    with LocalServer(app) as server:
        settings = people_settings(tmp_path, [lenient.record_yaml("101")])
        result = await crawl(make_spider(kind, EvidenceWritingLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, writes=writes)
    assert app.people_served() == ["101", "101"], app.describe()
    assert writes, "control: the callback's decision had evidence to write into"
    allows = [e for e in result.audit if e.get("subject") == "101" and e.get("verdict") == "allow"]
    assert len(allows) >= 2, result.audit
    assert "WRITTEN-BY-SPIDER" not in json.dumps(result.audit), [e for e in result.audit if "WRITTEN" in str(e)]
