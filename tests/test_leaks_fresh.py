"""Leaks looked for by a fresh-eyes hunt on main (issue 11's promise, issues 13, 14 and 16): each a real crawl of a
local server, judged by the server's own request log and by what reached the spider, the items and the log."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

import tests.lenient as lenient
from consentcrawl.cli import main as cli_main
from consentcrawl.facts import REWRITE_HEADERS
from consentcrawl_demo.fediverse import PEOPLE, FediverseSite
from consentcrawl_demo.server import LocalServer, LoggedRequest
from consentcrawl_demo.server import Response as Served
from spiders.fediverse import FediverseSpider
from tests.conftest import run_crawl
from tests.lenient import (
    HOST,
    KINDS,
    PLATFORMS_YAML,
    LenientPeople,
    ListLogic,
    Robots,
    crawl,
    lenient_path,
    make_spider,
    people_settings,
    person_of_url,
    record_yaml,
    secret_name,
)
from tests.redis_server import RedisServer
from tests.test_distributed import Workers, await_until, grant, push_batches_until, push_seeds, worker_settings
from tests.test_refusals_actor import ProfilesOnly
from tests.test_refusals_crawl import fedi_settings

# --------------------------------------------------------------------------- the HTTP cache and the linked actor


def _opening(name: str) -> tuple:
    """The demo's people, with ``name`` open in their actor (``indexable: true``)."""
    return tuple(dataclasses.replace(p, indexable=True) if p.name == name else p for p in PEOPLE)


@deferred_f_from_coro_f
async def test_a_profile_answered_from_the_http_cache_is_not_used_while_its_actor_is_unread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Crawl 1 (HTTP cache on): carol's actor says ``indexable: true``; her profile and posts are cached. Between
    the crawls she turns ``indexable`` off. Crawl 2 over the same cache answers her pages from it, so nothing is
    sent and her actor, where her refusal now is, is never read by the send-time handler. Her pages must not reach
    the spider: either the actor is read (and refuses) or, unread, it denies."""
    cache = tmp_path / "httpcache"
    sent: list[tuple[int, str]] = []

    def serving(site: FediverseSite, crawl_no: int):
        def app(request: LoggedRequest, headers: dict[str, str]) -> Served | None:
            sent.append((crawl_no, request.decoded_path))
            return site(request, headers)
        return app

    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    with LocalServer(serving(FediverseSite(_opening("carol")), 1)) as server:
        one = await run_crawl(ProfilesOnly, fedi_settings(first, HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(cache)),
                              proxy=server.proxy, monkeypatch=monkeypatch)
    assert ("carol", "profile") in {(i["subject"], i["kind"]) for i in one.items}, "control: carol open in crawl 1"
    with LocalServer(serving(FediverseSite(), 2)) as server:
        two = await run_crawl(ProfilesOnly, fedi_settings(second, HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(cache)),
                              proxy=server.proxy, monkeypatch=monkeypatch)
    carol = [(s["subject"], s["kind"]) for s in two.items if s["subject"] == "carol"]
    assert not carol, f"carol's cached pages reached the spider though her actor refuses: {carol}\n{sent}"
    assert ("alice", "profile") in {(i["subject"], i["kind"]) for i in two.items}, "control"
    assert (2, "/@carol") not in sent and (2, "/users/carol") in sent, f"her page cached, her actor read: {sent}"
    refused = [e["reason"] for e in two.audit if e["url"] == "http://fedi.example/@carol" and e["phase"] == "response"]
    assert refused == ["subject.refused-on-page"], refused


def _revalidating(site: Any, crawl_no: int, sent: list[tuple[int, str]],  # type: ignore[no-untyped-def]
                  status: int = 304):
    """The site with an ``ETag`` on every HTML page and ``Cache-Control: max-age=0`` (revalidate each time), answering
    ``304 Not Modified`` to a matching ``If-None-Match``, as Rails' ``fresh_when`` does (or, ``status`` 503, failing
    then: ``RFC2616Policy`` hands the spider the cached page in place of a server error; or, 0, closing the
    connection: ``HttpCacheMiddleware`` recovers from the download error with the cached page)."""
    def app(request: LoggedRequest, headers: dict[str, str]) -> Served | None:
        sent.append((crawl_no, request.decoded_path))
        answer = site(request, headers)
        if answer is None or answer.status != 200 or "html" not in dict(answer.header_pairs()).get("Content-Type", ""):
            return answer
        etag = f'"{request.decoded_path.strip("/").replace("/", "-")}"'
        if headers.get("if-none-match") == etag:
            sent.append((crawl_no, f"{status} {request.decoded_path}"))
            if status == 0:
                return None  # the connection is closed unanswered: the cache recovers from the download error
            return Served(status, {"ETag": etag, "Cache-Control": "max-age=0"}, b"")
        return dataclasses.replace(answer, headers=[*answer.header_pairs(), ("ETag", etag),
                                                    ("Cache-Control", "max-age=0")])
    return app


@pytest.mark.parametrize("status", [304, 503, 0])
@deferred_f_from_coro_f
async def test_a_profile_revalidated_with_304_is_not_used_while_its_actor_is_unread(
        status: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As above, with ``HTTPCACHE_POLICY = RFC2616Policy`` and pages that must be revalidated: crawl 2 sends each
    profile with ``If-None-Match`` and gets ``304`` (or a ``503``); the cache then hands the spider the page it
    stored in crawl 1. The answer has no page to read, so the actor link is in the cached page only: carol's actor
    (which now refuses) must be read before her cached profile reaches the spider."""
    cache = tmp_path / "httpcache"
    sent: list[tuple[int, str]] = []
    policy = {"HTTPCACHE_ENABLED": True, "HTTPCACHE_DIR": str(cache),
              "HTTPCACHE_POLICY": "scrapy.extensions.httpcache.RFC2616Policy"}
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    with LocalServer(_revalidating(FediverseSite(_opening("carol")), 1, sent)) as server:
        one = await run_crawl(ProfilesOnly, fedi_settings(first, **policy), proxy=server.proxy,
                              monkeypatch=monkeypatch)
    assert ("carol", "profile") in {(i["subject"], i["kind"]) for i in one.items}, "control: carol open in crawl 1"
    with LocalServer(_revalidating(FediverseSite(), 2, sent, status)) as server:
        two = await run_crawl(ProfilesOnly, fedi_settings(second, **policy), proxy=server.proxy,
                              monkeypatch=monkeypatch)
    recovered = two.stats.get("httpcache/errorrecovery" if status == 0 else "httpcache/revalidate")
    assert recovered, f"control: crawl 2 revalidated: {two.stats}"
    carol = [(s["subject"], s["kind"]) for s in two.items if s["subject"] == "carol"]
    assert not carol, f"carol's revalidated pages reached the spider though her actor refuses: {carol}\n{sent}"
    assert ("alice", "profile") in {(i["subject"], i["kind"]) for i in two.items}, "control"
    assert (2, "/users/carol") in sent, sent


class ArticleLogic(ListLogic):
    urls = ["http://news.example/article"]
    follow_links = False


@deferred_f_from_coro_f
async def test_a_page_revalidated_with_304_is_decided_by_its_cached_body_for_this_crawls_purpose(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Crawl 1 (research) caches an article whose ``<meta name="robots" content="noindex">`` does not concern
    research. Crawl 2 (search-indexing) revalidates it: the 304 has no body, the cache hands the spider the stored
    page, and its ``noindex`` must deny it (``response.meta-robots``) before the callback."""
    sent: list[tuple[int, str]] = []
    site = LenientPeople(any_host=True).page("/article", '<html><head><meta name="robots" content="noindex">'
                                                         '</head><body><p class="name">an article</p></body></html>')
    cache = {"HTTPCACHE_ENABLED": True, "HTTPCACHE_DIR": str(tmp_path / "httpcache"),
             "HTTPCACHE_POLICY": "scrapy.extensions.httpcache.RFC2616Policy"}
    seen: list[list[str]] = []
    for n, purpose in ((1, "research"), (2, "search-indexing")):
        spider = type(f"Article{n}", (ArticleLogic, scrapy.Spider), {
            "name": "article", "custom_settings": {"ADDONS": {"consentcrawl.Addon": 0}}})
        (tmp_path / str(n)).mkdir()
        with LocalServer(_revalidating(site, n, sent)) as server:
            result = await crawl(spider, people_settings(tmp_path / str(n), CONSENTCRAWL_PURPOSE=purpose, **cache),
                                 proxy=server.proxy, monkeypatch=monkeypatch)
        seen.append(result.seen)
    assert seen[0] == ["http://news.example/article"], "control: research may read it, and caches it"
    assert (2, "304 /article") in sent, f"control: crawl 2 revalidated it: {sent}"
    assert seen[1] == [], f"a noindex page reached a search-indexing callback from the cache: {sent}"
    assert [e["reason"] for e in result.audit_for("/article", verdict="deny")] == ["response.meta-robots"]


# --------------------------------------------------------------------------- an unread actor, in a distributed crawl

#: 105's profile: an h-card that links to an actor the platform's templates do not place at 105 (``/users/105``):
#: it cannot be read as 105's, so what 105 says there is not known, and 105 is denied
_UNREAD_ACTOR_PROFILE = (
    '<html><head><link rel="alternate" type="application/activity+json" href="http://people.example/users/105">'
    '</head><body><div class="h-card profile" data-subject="105"><h1 class="name p-name">{name}</h1>'
    '<p class="p-note">Hello.</p></div></body></html>')


def _unread_audit(files: list[Path]) -> list[dict]:
    """The audit lines (read while the workers run) that deny 105 because their actor is unread."""
    out = []
    for f in files:
        for line in f.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("subject") == "105" and entry.get("reason") == "error.internal":
                out.append(entry)
    return out


def _denied_elsewhere(files: list[Path]) -> bool:
    """Whether a worker denied 105 at send time for another worker's unread actor."""
    return any(any(e.get("kind") == "error" and e.get("seen_by") == "a worker" for e in entry.get("evidence", ()))
               for entry in _unread_audit(files))


def _denials_by_worker(files: list[Path]) -> dict[str, dict[str, int]]:
    """For a failure's message: how many times each worker denied 105, by phase and reason."""
    out: dict[str, dict[str, int]] = {}
    for f in files:
        counts = out.setdefault(f.name, {})
        for line in f.read_text(errors="replace").splitlines():
            entry = json.loads(line) if line.startswith("{") else {}
            if entry.get("subject") == "105" and entry.get("verdict") == "deny":
                key = f"{entry.get('phase')} {entry.get('reason')}"
                counts[key] = counts.get(key, 0) + 1
    return out


def test_a_person_whose_actor_one_worker_could_not_read_is_not_fetched_by_the_others(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """105's profile links to an actor that cannot be read as theirs. The worker that fetched the profile denies
    105 for the rest of its crawl (``error.internal``, ActorUnread). The other workers must not fetch 105's pages
    after that: one worker's unread actor is the cluster's, as a refusal found on a page is.

    The first worker reads the profile alone and has closed before the others start: with all three running, one
    worker could take every seed (it did, in CI, for 80 batches), and a run would show nothing about the others."""
    people = LenientPeople(default_robots=Robots())
    people.listing = {}

    def app(request: LoggedRequest, headers: dict[str, str]) -> Served | None:
        answer = people(request, headers)
        target = request.path + (f"?{request.query}" if request.query else "")
        if answer is not None and answer.status == 200 and person_of_url(target) == "105":
            answer = Served.html(_UNREAD_ACTOR_PROFILE.format(name=secret_name("105")))
        return answer

    first = worker_settings(redis_server.url, tmp_path, CONSENTCRAWL_REDIS_IDLE_CLOSE=1)
    grant(redis_server.url + "?prefix=auth", tmp_path, ["101", "105"])
    with LocalServer(app) as server:
        workers = Workers(tmp_path, server)
        try:
            push_seeds(redis_server.url, ["http://people.example/u/105"])  # before it starts: its first seed
            workers.start(first, ["ConsentSpider"])
            await_until(lambda: bool(_unread_audit(workers.audit_files())), 30, "105 denied for the unread actor")
            assert workers.processes[0].wait(60) == 0, workers.describe()
            known = time.time()
            workers.start({**first, "CONSENTCRAWL_REDIS_IDLE_CLOSE": 3}, ["ConsentSpider", "ADDONS"])
            workers.wait_open()
            batches = push_batches_until(redis_server.url, lambda: _denied_elsewhere(workers.audit_files()),
                                         at_least=8)
            codes = workers.wait()
        finally:
            workers.kill()
    log = people.describe()
    assert codes == [0, 0, 0], workers.describe()
    late = [round(t - known, 3) for t in people.times_served("105") if t > known]
    assert not late, f"105 fetched after a worker could not read their actor:\n{log}"
    assert len(people.times_served("101")) == batches, log  # the crawl went on: every batch's 101 was fetched
    assert _denied_elsewhere(workers.audit_files()), (
        f"control: the workers that never read 105's profile denied 105 for it, in {batches} batches; per worker, "
        f"105's denials by phase: {_denials_by_worker(workers.audit_files())}")
    assert not [i for i in workers.items() if secret_name("105") in json.dumps(i)], workers.items()


# --------------------------------------------------------------------------- the command line's --fetch


def _cli(args: list[str], app: LenientPeople, monkeypatch: pytest.MonkeyPatch) -> int:
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        return cli_main(args)


@pytest.mark.parametrize("url", ["http://people.example/u/107", "http://people.example/u/101/..%2F107",
                                 "http://people.example/u%2F107", "http://www.people.example/@bob"])
def test_signals_fetch_does_not_fetch_a_persons_page_without_their_authorization(
        url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``consentcrawl signals URL --fetch`` reads a page's response-level signals. On a configured platform a
    person's page (any spelling of it) is fetched only as a crawl would fetch it: 107 and bob have no
    authorization, so their page is not fetched, and the command says why instead of printing a table."""
    settings = people_settings(tmp_path)
    app = LenientPeople()
    monkeypatch.chdir(tmp_path)
    code = _cli(["signals", url, "--json", "--fetch", "--platforms", settings["CONSENTCRAWL_PLATFORMS"]], app,
                monkeypatch)
    out, err = capsys.readouterr()
    assert app.people_served() == [], f"signals --fetch fetched a person's page:\n{app.describe()}"
    assert "/robots.txt" in [s.path for s in app.served], app.describe()  # control: the site was asked
    assert code != 0 and secret_name("107") not in out + err, out + err


# --------------------------------------------------------------------------- the item guard's subject field

#: subject fields a spider may write for 107 (no authorization) on a listing page: each must be dropped
_ODD_SUBJECTS: dict[str, object] = {
    "list": ["101", "107"], "one-list": ["107"], "nested": {"id": "107"}, "fullwidth": "\uff11\uff10\uff17",
    "upper-handle": "BOB", "int": 107, "platform-prefixed": "people:107", "spaced": " 107",
}


class OddSubjects:
    """One listing page, yielding an item for 101 (the control) and one per spelling in :data:`_ODD_SUBJECTS`."""

    seen: list[str]

    async def start(self):  # type: ignore[no-untyped-def]
        yield scrapy.Request(f"http://{HOST}/people?page=1", callback=self.parse)

    def parse(self, response):  # type: ignore[no-untyped-def]
        self.seen.append(response.url)
        yield {"subject": "101", "case": "control", "name": secret_name("101")}
        for case, subject in _ODD_SUBJECTS.items():
            yield {"subject": subject, "case": case, "name": secret_name("107")}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_item_whose_subject_is_a_list_a_mapping_or_another_spelling_is_dropped(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The guard pipeline reads the subject field as it is written: a list, a mapping, fullwidth digits, an upper-case
    handle, a number, a ``platform:`` prefix or a space must not let an item naming 107 (or bob) through, and the
    dropped item's data is in no log line at INFO or above."""
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, OddSubjects), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert [i["case"] for i in result.items] == ["control"], result.items
    assert len(result.dropped) == len(_ODD_SUBJECTS), result.dropped
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [m for m in loud if secret_name("107") in m], loud


# --------------------------------------------------------------------------- cookies a PHP-style server reads


class PhpCookies(LenientPeople):
    """The lenient site, with PHP's default ``$_REQUEST`` when no php.ini sets ``request_order``: cookies too, after
    the query and the body (``variables_order = "EGPCS"``: a cookie ``id`` wins)."""

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Served | None:
        cookies: dict[str, str] = {}  # the first value of a name wins, as in PHP
        for pair in headers.get("cookie", "").replace(",", ";").split(";"):
            if "=" in pair:
                name, value = pair.strip().split("=", 1)
                cookies.setdefault(name, value)
        if "id" in cookies and lenient_path(request.path).casefold() == "/profile.php":
            request = dataclasses.replace(request, query=f"{request.query}&id={cookies['id']}")
        return super().__call__(request, headers)


class CookieLogic(ListLogic):
    """101's profile by its query, with a cookie the server reads as the id."""

    follow_links = False

    async def start(self):  # type: ignore[no-untyped-def]
        yield scrapy.Request(f"http://{HOST}/profile.php?id=101", cookies={"id": "107"}, callback=self.parse)
        # two Cookie headers, the URL's id last: a server joins them, and PHP keeps a cookie's first value
        yield scrapy.Request(f"http://{HOST}/profile.php?id=103", headers={"Cookie": ["id=108", "id=103"]},
                             meta={"dont_merge_cookies": True}, callback=self.parse)
        yield scrapy.Request(f"http://{HOST}/u/102", callback=self.parse)  # the control: the jar sends id=107 too


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_cookie_that_names_another_person_on_a_query_template_is_not_sent(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``/profile.php?id={subject}`` is a template; PHP can read ``id`` from a cookie too. A request for 101 whose
    cookie says 107 is read as 107 by such a server: it is ambiguous, and not sent."""
    app = PhpCookies()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, CookieLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert not {"107", "108"} & set(app.people_served()), f"a cookie made the server serve another:\n{app.describe()}"
    assert not [i for i in result.items if secret_name("107") in json.dumps(i)], result.items
    assert "102" in app.people_served(), app.describe()
    for url in ("/profile.php?id=101", "/profile.php?id=103"):
        reasons = [e["reason"] for e in result.audit_for(url, verdict="deny")]
        assert reasons == ["subject.ambiguous-url"], result.denies()


# --------------------------------------------------------------------------- headers that rewrite the URL


class RewritingServer(LenientPeople):
    """The lenient site behind a front end that routes by ``X-Original-URL`` / ``X-Rewrite-URL`` when a request
    carries one (IIS's URL Rewrite module and Symfony's request before 2018 did): the header's path and query
    replace the request's."""

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Served | None:
        rewritten = next((headers[name.lower()] for name in REWRITE_HEADERS if name.lower() in headers), None)
        if rewritten:
            path, _, query = rewritten.partition("?")
            request = dataclasses.replace(request, path=path, query=query)
        return super().__call__(request, headers)


#: every header a front end may route by, each in another spelling than the list's (the name is read in any case)
_REWRITE_SPELLINGS = ["X-Original-URL", "x-rewrite-url", "X-ORIGINAL-URI", "x-Forwarded-URI"]


@pytest.mark.parametrize("header", _REWRITE_SPELLINGS)
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_header_that_rewrites_the_url_to_another_persons_page_is_not_sent(
        kind: str, header: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request for a page of nobody's (``/about``) or of 101, whose header names 107's profile: a front end that
    honours the header serves 107. Neither is sent; a header naming the URL's own page is harmless (the control)."""
    logic = type("HeaderLogic", (ListLogic,), {"follow_links": False, "urls": [
        scrapy.Request(f"http://{HOST}/about", headers={header: "/u/107"}, dont_filter=True),
        scrapy.Request(f"http://{HOST}/u/101", headers={header: "/u/%31%30%38"}, dont_filter=True),
        scrapy.Request(f"http://{HOST}/u/102", headers={header: "/u/102"}, dont_filter=True)]})
    app = RewritingServer()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, logic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    denied = [e for e in result.audit if e["verdict"] == "deny" and e["reason"] == "subject.mismatch"]
    assert {e["url"].rpartition("/")[2] for e in denied} == {"about", "101"}, result.denies()
    listed = next(name for name in REWRITE_HEADERS if name.lower() == header.lower())  # cited as the list spells it
    assert all(any(ev["kind"] == "request-header" and ev["source"] == listed for ev in e["evidence"])
               for e in denied), denied
    served = app.people_served()
    assert "107" not in served and "108" not in served, f"{header} made the server serve another:\n{app.describe()}"
    assert "102" in served, app.describe()


def test_check_fetch_as_of_a_past_time_does_not_fetch_a_page_the_person_has_since_withdrawn(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``--now`` replays a decision as of a past time; ``--fetch`` fetches the page now. 101 withdrew in February:
    a replay as of January allows, but the page must not be fetched today on the strength of it."""
    records = [record_yaml("101", revoked_at="2026-02-01T00:00:00Z"), record_yaml("102")]
    settings = people_settings(tmp_path, records)
    app = LenientPeople()
    monkeypatch.chdir(tmp_path)
    args = ["--json", "--fetch", "--purpose", "research", "--platforms", settings["CONSENTCRAWL_PLATFORMS"],
            "--authorizations", settings["CONSENTCRAWL_AUTHORIZATIONS"]]
    code = _cli(["check", f"http://{HOST}/u/101", "--now", "2026-01-15T00:00:00Z", *args], app, monkeypatch)
    out, err = capsys.readouterr()
    assert "101" not in app.people_served(), f"check --now --fetch fetched a withdrawn person's page:\n{app.describe()}"
    assert code != 0 and secret_name("101") not in out + err, out + err
    # the control: the same replay of 102, still authorized now, fetches the page
    assert _cli(["check", f"http://{HOST}/u/102", "--now", "2026-01-15T00:00:00Z", *args], app, monkeypatch) == 0
    assert "102" in app.people_served(), app.describe()


# --------------------------------------------------------------------------- a refusal on a page with an error status


class ErrorStatusProfiles(LenientPeople):
    """The lenient site, answering 105's profile (which says #nobot) with ``STATUS`` and the whole page, as a
    platform does for a locked or limited account it still shows."""

    status = 403
    answered: list[int]

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Served | None:
        answer = super().__call__(request, headers)
        target = request.path + (f"?{request.query}" if request.query else "")
        if answer is not None and person_of_url(target) == "105":
            answer = dataclasses.replace(answer, status=self.status)
            self.answered.append(self.status)
        return answer


class AllStatusLogic(ListLogic):
    follow_links = False

    async def start(self):  # type: ignore[no-untyped-def]
        for person in ("105", "101"):
            yield scrapy.Request(f"http://{HOST}/u/{person}", callback=self.parse, meta={"handle_httpstatus_all": True})


@pytest.mark.parametrize("status", [403, 404, 410, 451])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_refusal_on_a_profile_served_with_an_error_status_is_read(
        kind: str, status: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """105 is authorized and says #nobot on their page, which the platform answers with an error status; a spider
    that handles every status (``handle_httpstatus_all``) reads the page as any other. The refusal on it must be
    read too: the page does not reach the callback."""
    app = ErrorStatusProfiles(refusing={"105"})
    app.status, app.answered = status, []
    records = [record_yaml(s) for s in ("101", "105")]
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, AllStatusLogic), people_settings(tmp_path, records),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.answered == [status], app.describe()
    assert f"http://{HOST}/u/101" in result.seen, "control"
    assert f"http://{HOST}/u/105" not in result.seen, f"105's refusing page reached the callback ({status})"
    assert not [i for i in result.items if secret_name("105") in json.dumps(i)], result.items


# --------------------------------------------------------------------------- framing headers the spider sets

#: a body that ends a chunked message at once, followed by a second request, for 107
_SMUGGLED = b"0\r\n\r\nGET /u/107 HTTP/1.1\r\nHost: people.example\r\n\r\n"


#: the framing headers a spider sets, and the body: what a server that reads them takes for the next request
_FRAMINGS = {
    "chunked": ({"Transfer-Encoding": "chunked"}, _SMUGGLED),
    "short-length": ({"Content-Length": "3"}, b"x=1" + _SMUGGLED[5:]),
    "chunked-lower-case": ({"transfer-encoding": "chunked"}, _SMUGGLED),
}


@pytest.mark.parametrize("framing", sorted(_FRAMINGS))
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_request_that_sets_its_own_framing_headers_does_not_smuggle_another_request(
        kind: str, framing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spider's ``Transfer-Encoding: chunked`` (or a short ``Content-Length``) beside the ``Content-Length`` Scrapy
    sends: a server that reads the spider's framing (as the test server and many others do) ends the body early and
    reads the rest as the next request on the connection, a request for 107's profile that nothing decided."""
    headers, body = _FRAMINGS[framing]

    class SmugglingLogic(ListLogic):
        follow_links = False

        async def start(self):  # type: ignore[no-untyped-def]
            yield scrapy.Request(f"http://{HOST}/about", method="POST", body=body, callback=self.parse,
                                 headers={**headers, "Content-Type": "text/plain"})
            yield scrapy.Request(f"http://{HOST}/u/102", callback=self.parse)  # the control

    app = LenientPeople()
    with LocalServer(app) as server:
        await crawl(make_spider(kind, SmugglingLogic), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch)
    assert "107" not in app.people_served(), f"a smuggled request was served:\n{app.describe()}"
    assert "102" in app.people_served(), app.describe()


#: a second request for 107, written into the request line or a header of the first one
_INJECTED = "\r\n\r\nGET /u/107 HTTP/1.1\r\nHost: people.example\r\nX-Rest: "
_INJECTIONS = {
    "method": ({"method": f"GET /about HTTP/1.1{_INJECTED}"}, f"http://{HOST}/about"),
    "header-value": ({"headers": {"X-Note": f"a{_INJECTED}b"}}, f"http://{HOST}/about"),
    "header-name": ({"headers": {f"X-Note: a{_INJECTED}b": "c"}}, f"http://{HOST}/about"),
    "url": ({}, f"http://{HOST}/about?x=1 HTTP/1.1{_INJECTED}"),
}


@pytest.mark.parametrize("where", sorted(_INJECTIONS))
@deferred_f_from_coro_f
async def test_crlf_in_the_method_a_header_or_the_url_does_not_send_another_request(
        where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CR LF written into the method, a header's value or name, or the URL: the HTTP client must not send the text
    after it as a request of its own (a request for 107 that nothing decided)."""
    kwargs, url = _INJECTIONS[where]

    class InjectingLogic(ListLogic):
        follow_links = False

        async def start(self):  # type: ignore[no-untyped-def]
            yield scrapy.Request(url, callback=self.parse, errback=lambda failure: None, **kwargs)
            yield scrapy.Request(f"http://{HOST}/u/102", callback=self.parse)  # the control

    app = LenientPeople()
    with LocalServer(app) as server:
        await crawl(make_spider("ADDONS", InjectingLogic), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch)
    assert "107" not in app.people_served(), f"an injected request was served:\n{app.describe()}"
    assert "102" in app.people_served(), app.describe()


# --------------------------------------------------------------------------- a proxy that is the platform's server

IP_PLATFORMS = PLATFORMS_YAML.replace(f"domains: [{HOST}]", f"domains: [{HOST}, 127.0.0.1]")


class ProxyLogic(ListLogic):
    follow_links = False
    proxy = ""

    async def start(self):  # type: ignore[no-untyped-def]
        yield scrapy.Request("http://elsewhere.example/u/107", callback=self.parse, meta={"proxy": self.proxy})
        yield scrapy.Request("http://elsewhere.example/u/103", callback=self.parse)  # the control: no proxy of its own


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_proxy_that_is_a_platforms_host_does_not_carry_a_request_decided_for_another_host(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform lists ``127.0.0.1`` (its server) among its domains. A request for ``elsewhere.example`` (off any
    platform) with ``meta["proxy"]`` naming that server goes to the platform's server, which, like many, answers by
    the path whatever host the request names: it served 107, decided as an off-platform page. The proxy must not
    take a request to a platform the decision did not consider."""
    settings = people_settings(tmp_path)
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(IP_PLATFORMS)
    platform_server = LenientPeople(any_host=True)
    elsewhere = LenientPeople(any_host=True)  # the proxy every other request goes through (http_proxy): no platform's
    with LocalServer(platform_server) as platform, LocalServer(elsewhere, host="127.0.0.2") as server:
        spider = make_spider(kind, type("P", (ProxyLogic,), {"proxy": f"http://127.0.0.1:{platform.port}"}))
        result = await crawl(spider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert platform_server.people_served() == [], f"the platform's server served:\n{platform_server.describe()}"
    assert elsewhere.people_served() == ["103"], elsewhere.describe()
    denied = [e for e in result.audit if e["verdict"] == "deny" and e["url"].endswith("/u/107")]
    assert denied and {e["reason"] for e in denied} == {"subject.mismatch"}, denied
    assert any(ev["kind"] == "request-meta" and ev["source"] == "proxy" for ev in denied[-1]["evidence"]), denied


# --------------------------------------------------------------------------- a refusal deep in a big page


def _buried(how: str):  # type: ignore[no-untyped-def]
    """Profile pages whose card comes after 300 nested elements, or after an 11 MB text node: past libxml2's
    default limits, which Scrapy's selectors (parsel: ``huge_tree``) lift."""
    plain = lenient._profile_html

    def profile(person: str, *, refusing: bool = False) -> str:
        page = plain(person, refusing=refusing)
        head, _, rest = page.partition("<body>")
        if how == "deep":
            return f"{head}<body>{'<div>' * 300}{rest.replace('</body>', '</div>' * 300 + '</body>')}"
        return f"{head}<body><p>{'x' * (11 * 1024 * 1024)}</p>{rest}"
    return profile


@pytest.mark.parametrize("how", ["deep", "big"])
@deferred_f_from_coro_f
async def test_a_refusal_past_the_parsers_default_limits_is_read_as_the_spider_reads_the_page(
        how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """105's card (with #nobot) sits after 300 nested elements, or after an 11 MB text node. The spider's selectors
    read it there; the refusal must be read there too, and the page must not reach the callback."""
    monkeypatch.setattr(lenient, "_profile_html", _buried(how))
    result = await _refuser_then_another(LenientPeople(refusing={"105"}), tmp_path, monkeypatch)
    assert f"http://{HOST}/u/101" in result.seen, "control: the spider reads a page like it"
    names = [i["name"] for i in result.items]
    assert secret_name("101") in names, "control: the spider's selectors find the card"
    assert f"http://{HOST}/u/105" not in result.seen and secret_name("105") not in names, (
        f"105's refusing page ({how}) reached the callback")


async def _refuser_then_another(app: LenientPeople, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A crawl of 105's profile (who refuses on it), then 101's, both with records, each page's callback run."""
    records = [record_yaml(s) for s in ("101", "105")]
    logic = type("RefuserFirst", (ListLogic,), {"urls": [f"http://{HOST}/u/105", f"http://{HOST}/u/101"],
                                                "follow_links": False})
    with LocalServer(app) as server:
        return await crawl(make_spider("ADDONS", logic), people_settings(tmp_path, records), proxy=server.proxy,
                           monkeypatch=monkeypatch)


class TypedProfiles(LenientPeople):
    """The lenient site, sending 105's profile (which says #nobot) with ``content_type``."""

    content_type = "application/xml"

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Served | None:
        answer = super().__call__(request, headers)
        target = request.path + (f"?{request.query}" if request.query else "")
        if answer is not None and person_of_url(target) == "105":
            pairs = [(k, v) for k, v in answer.header_pairs() if k.lower() != "content-type"]
            answer = dataclasses.replace(answer, headers=[*pairs, ("Content-Type", self.content_type)])
        return answer


@pytest.mark.parametrize("content_type", ["application/xml", "text/xml; charset=utf-8", "image/svg+xml",
                                          "application/atom+xml"])
@deferred_f_from_coro_f
async def test_a_refusal_on_a_profile_sent_as_xml_is_read_as_the_spider_reads_the_page(
        content_type: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """105's profile (an h-card with #nobot) sent as XML: Scrapy hands the callback an ``XmlResponse``, whose
    ``.css()`` finds the card's classes all the same. The refusal must be read too."""
    app = TypedProfiles(refusing={"105"})
    app.content_type = content_type
    result = await _refuser_then_another(app, tmp_path, monkeypatch)
    names = [i["name"] for i in result.items]
    assert secret_name("101") in names, "control"
    assert secret_name("105") not in names, f"105's refusing page sent as {content_type} reached the callback"


# --------------------------------------------------------------------------- an actor in UTF-16


@deferred_f_from_coro_f
async def test_an_actor_in_utf16_is_read_as_the_spider_reads_it(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """carol's actor (``indexable: false``) sent as ``application/json`` in UTF-16 with a byte order mark: the
    example spider's ``json.loads(response.text)`` reads it (Scrapy decodes by the mark), so the refusal in it must
    be read too, and her actor must not reach the spider."""
    site = FediverseSite()

    def app(request: LoggedRequest, headers: dict[str, str]) -> Served | None:
        answer = site(request, headers)
        if answer is not None and request.decoded_path == "/users/carol" and "json" in str(answer.header_pairs()):
            body = answer.body if isinstance(answer.body, str) else answer.body.decode()
            answer = Served(200, {"Content-Type": "application/json"}, body.encode("utf-16"))
        return answer

    with LocalServer(app) as server:
        result = await run_crawl(FediverseSpider, fedi_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    kinds = {(i["subject"], i["kind"]) for i in result.items}
    assert ("alice", "actor") in kinds, "control"
    assert not {k for k in kinds if k[0] == "carol"}, f"carol's data reached the spider: {kinds}"
