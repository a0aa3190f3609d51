"""Fresh-eyes leak hunt (hunt8) against the purge of people refused mid-crawl, unreadable request parts, and the
site signals' case shortcut (``CaseSight``). Each test is a real crawl judged by the server's own log."""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.audit.chain import verify
from consentcrawl.refusallog import read_refusals
from consentcrawl_demo.fediverse import FediverseSite
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.conftest import run_crawl
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings
from tests.test_purge_refusals import (
    RevisitSpider,
    TimelineSpider,
    cached_urls,
    fedi_settings,
    receipts_for,
    served_paths,
)
from tests.test_robots_crawl import HOST as SITE
from tests.test_robots_crawl import ConsentListSpider
from tests.test_signals_crawl import SignalSite
from tests.test_signals_crawl import _settings as signal_settings

# -- site signals on a platform whose ids are case-insensitive ------------------------------------------------------

#: reserved paths, each written so that the request spelled in another case is the page the server serves
_RESERVED = ["/@alice", "/u/%61lice", "/profile.php?id=alice"]


class _ReservingPeople(LenientPeople):
    """The lenient people site, with a tdmrep.json that reserves alice's pages (in lower case, as her handle is)."""

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.path == "/.well-known/tdmrep.json":
            rules = [{"location": p, "tdm-reservation": 1} for p in _RESERVED]
            return Response(200, {"Content-Type": "application/json"},
                            json.dumps([*rules, {"location": "/", "tdm-reservation": 0}]))
        return super().__call__(request, headers)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_reserved_page_spelled_in_another_case_is_not_sent(kind: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The server reads handles in any case: ``/@ALICE`` is the page tdmrep.json reserves as ``/@alice``. The
    case shortcut must decide each spelling as the full match does: nothing of alice served, 101 (control) is."""
    app = _ReservingPeople()
    spellings = ["/@ALICE", "/@Alice", "/u/ALICE", "/u/aLiCe", "/profile.php?id=ALICE", "/profile.php?id=Alice"]
    spider: Any = make_spider(kind, ListLogic)
    spider.urls = [f"http://{HOST}{p}" for p in [*spellings, "/@101", "/u/101"]]
    with LocalServer(app) as server:
        result = await crawl(spider, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.people_served() == ["101", "101"], app.describe()
    denied = [(e["url"].split(HOST)[1], e["reason"]) for e in result.audit if e["verdict"] == "deny"]
    assert sorted(denied) == sorted((p, "terms.signal.tdmrep") for p in spellings), denied


# -- purge on close: what a media pipeline stored -------------------------------------------------------------------


class _AvatarSite(FediverseSite):
    """The fediverse demo, with each person's avatar (personal data: their picture) on a CDN host whose URLs name
    no one (``media.example/avatars/<hash>.png``, as real instances serve them)."""

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.host == "media.example":
            if request.path == "/robots.txt":
                return Response.text("User-agent: *\nAllow: /\n")
            return Response(200, {"Content-Type": "image/png"}, b"\x89PNG avatar " + request.path.encode())
        return super().__call__(request, headers)


def _avatar(name: str) -> str:
    return f"http://media.example/avatars/{sum(map(ord, name)):x}.png"


class _AvatarTimeline(TimelineSpider):
    """Each author's posts, and their avatar through Scrapy's FilesPipeline, before their profile is read."""

    name = "avatars"

    def parse_posts(self, response: Any, name: str) -> Iterator[Any]:
        yield {"subject": name, "platform": "fediverse", "kind": "avatar", "file_urls": [_avatar(name)]}
        yield from super().parse_posts(response, name)


@deferred_f_from_coro_f
async def test_a_purged_persons_media_goes_from_the_http_cache_and_from_the_files_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Bob's posts and avatar are collected before his profile says ``#nobot``. The purge on close erases his items
    from the feeds; the cached avatar (a URL that names no one, which his removed item names) goes from the HTTP
    cache too, and so does the picture FilesPipeline stored (tests/test_purge_media.py has the rest)."""
    out = tmp_path / "out"
    settings = fedi_settings(tmp_path, out, CONSENTCRAWL_PURGE_ON_CLOSE=True, FILES_STORE=str(out / "files"))
    settings["ITEM_PIPELINES"] = {**settings["ITEM_PIPELINES"], "scrapy.pipelines.files.FilesPipeline": 300}
    with LocalServer(_AvatarSite()) as server, caplog.at_level(logging.INFO):
        result = await run_crawl(_AvatarTimeline, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert [p for _, p in served_paths(server, "bob")] == ["/@bob/posts", "/@bob"]
    assert {_avatar("bob"), _avatar("alice")} <= {r.url for r in server.requests}
    stored = [f.read_bytes() for f in (out / "files").rglob("*.png")]
    assert stored == [b"\x89PNG avatar " + _avatar("alice").split("media.example")[1].encode()]  # his went
    cached = cached_urls(out)
    assert _avatar("bob") not in cached and _avatar("alice") in cached, cached
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:bob")
    assert receipt["selection"] == "refused-during-crawl"
    assert receipt["failed"] == []
    assert [t["removed"] for t in receipt["targets"] if t["kind"] == "files"] == [1]
    assert "consentcrawl/purge/failed" not in result.stats
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "bob" in r.getMessage()]


# -- the refusal log, as an operator writes it -----------------------------------------------------------------------


class _Profiles(TimelineSpider):
    """Each person's profile page, straight away."""

    name = "profiles"
    authors = ("alice", "bob")

    async def start(self) -> Any:
        for name in self.authors:
            yield scrapy.Request(f"http://fedi.example/@{name}", callback=self.parse_profile, cb_kwargs={"name": name})


@pytest.mark.parametrize("platform, written", [("fediverse", "Bob"),  # another case
                                                ("fediverse", "\uff22\uff4f\uff42"),  # full-width letters (NFKC)
                                                ("Fediverse", "bob"),  # the platform's name in another case
                                                ("fediverse", " Bob\t")])  # spaces around the id, by hand
@deferred_f_from_coro_f
async def test_a_refusal_logged_in_another_spelling_of_the_id_denies_the_person(
        platform: str, written: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The refusal log is the operator's to edit: a refusal written ``Bob`` (a person who said no by mail) on a
    platform whose ids are case-insensitive is bob's, as the consent stores read ids, and one on ``Fediverse`` is
    on the platform configured as ``fediverse``. Judged by the server's log: nothing of bob is fetched, alice
    (control) is. A refusal naming a platform the crawl does not configure denies no one, and a WARNING says so
    (naming the platform, not the person)."""
    log = tmp_path / "refusals.jsonl"
    by_mail = {"url": "mailto:dpo@example.org", "form": "hashtag.nobot", "field": "mail", "raw": "no",
               "purposes": ["research"], "seen_at": "2026-11-30T10:00:00+00:00"}
    log.write_text(json.dumps({"platform": "elsewhere", "subject": "carol", **by_mail, "event": "by-mail-2"}) + "\n"
                   + json.dumps({"platform": platform, "subject": written, **by_mail, "event": "by-mail"}) + "\n")
    out = tmp_path / "out"
    settings = fedi_settings(tmp_path, out, CONSENTCRAWL_REFUSALS_LOG=str(log))
    with LocalServer(FediverseSite()) as server, caplog.at_level(logging.INFO):
        result = await run_crawl(_Profiles, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert not served_paths(server, "bob"), served_paths(server, "bob")
    assert [p for _, p in served_paths(server, "alice")][:1] == ["/@alice"]
    assert {i["subject"] for i in result.items} == {"alice"}
    [deny] = [e for e in result.audit if e["verdict"] == "deny"]
    assert (deny["reason"], deny["because"]) == ("subject.refused-on-page", "by-mail")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "refusal" in r.getMessage()]
    assert len(warned) == 1 and "1 refusal(s)" in warned[0] and "'elsewhere'" in warned[0], warned
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "carol" in r.getMessage()]


# -- ai.txt: the paths no Disallow reaches (``disallow_reach``) -------------------------------------------------------

_AI_TXT = "User-agent: *\nDisallow: /*.jpg$\nDisallow: /private\nAllow: /private/ok\nDisallow: /a*b*c\n"


@deferred_f_from_coro_f
async def test_ai_txt_disallows_decided_through_the_reach_shortcut_are_not_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An AI-training crawl of a site whose ai.txt disallows a file type, a folder (but for a longer Allow) and a
    wildcard path: the shortcut that skips the matcher where no Disallow reaches a path must decide as the matcher
    does, for plain spellings and for spellings the server decodes. Judged by the paths the server served."""
    site = SignalSite(robots="User-agent: *\nAllow: /\n")

    def app(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.path == "/ai.txt":
            return Response(200, {"Content-Type": "text/plain"}, _AI_TXT)
        return site(request, headers)

    denied = ["/x/y.jpg", "/privateer", "/private/", "/a1b2c3", "/%70rivate", "/x/y%2Ejpg", "/x/y.jpg?"]
    allowed = ["/x/y.jpg.html", "/public", "/private/ok", "/acb", "/a/b/x", "/x/y.JPG"]
    ConsentListSpider.urls = [f"http://{SITE}{p}" for p in denied + allowed]
    with LocalServer(app) as server:
        result = await run_crawl(ConsentListSpider, signal_settings(tmp_path, "ai-training"), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
    served = sorted(r.path for r in server.requests if r.path not in ("/robots.txt", "/ai.txt") and
                    not r.path.startswith("/.well-known/"))
    assert served == sorted(allowed), served
    reasons = {e["url"].split(SITE)[1]: e["reason"] for e in result.audit
               if e["verdict"] == "deny" and e["phase"] == "request"}  # "/x/y.jpg?" is logged as "/x/y.jpg"
    assert set(reasons) == set(denied) - {"/x/y.jpg?"}, reasons
    assert set(reasons.values()) == {"terms.signal.ai-txt"}, reasons


# -- audit lines holding what a page wrote ---------------------------------------------------------------------------


class _SurrogateSite(FediverseSite):
    """Alice's actor summary (JSON, where ``\\ud800`` is a valid escape) holds a lone surrogate beside
    ``#nobot``."""

    def __init__(self) -> None:
        super().__init__()
        self.people["alice"] = replace(self.people["alice"], bio="Gardener \ud800 #nobot")


@deferred_f_from_coro_f
async def test_an_audit_line_holding_a_lone_surrogate_is_written_and_loses_no_other_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A lone surrogate cannot be encoded as UTF-8: the batch of audit lines it was in (other people's decisions)
    was dropped, the refusal found went unrecorded and the handler raised. Every line is written (the surrogate as
    a JSON escape, read back as it was), the chain verifies, and every request the server answered has its line."""
    settings = fedi_settings(tmp_path, tmp_path / "out", CONSENTCRAWL_REFUSALS_LOG=str(tmp_path / "refusals.jsonl"))
    with LocalServer(_SurrogateSite()) as server, caplog.at_level(logging.INFO):
        result = await run_crawl(RevisitSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert [p for _, p in served_paths(server, "alice")] == ["/users/alice"]  # her actor said no: nothing more
    [found] = [e for e in result.events if e["event"] == "refusal-found"]
    assert (found["subject"], found["raw"]) == ("alice", "Gardener \ud800 #nobot")
    assert verify(tmp_path / "audit.jsonl").problem is None
    assert [(r.subject, r.raw) for r in read_refusals(tmp_path / "refusals.jsonl")] == [("alice", found["raw"])]
    sent = [e["url"] for e in result.audit if e["phase"] == "request" and e["verdict"] == "allow"]
    for request in server.requests:
        if request.path.startswith(("/@", "/users/")):
            assert sent.count(request.url) >= [r.url for r in server.requests].count(request.url), request.url
    assert {i["kind"] for i in result.items if i["subject"] == "grace"} == {"actor", "post", "profile"}
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@deferred_f_from_coro_f
async def test_an_http_cache_in_another_storage_is_listed_as_failed_in_the_receipt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Bob's posts went into a DBM HTTP cache before his profile said ``#nobot``; the purge cannot read that
    storage, so his receipt must say the cache was not purged (it said nothing, as if it were)."""
    out = tmp_path / "out"
    settings = fedi_settings(tmp_path, out, CONSENTCRAWL_PURGE_ON_CLOSE=True,
                             HTTPCACHE_STORAGE="scrapy.extensions.httpcache.DbmCacheStorage")
    with LocalServer(FediverseSite()) as server, caplog.at_level(logging.INFO):
        result = await run_crawl(TimelineSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert [p for _, p in served_paths(server, "bob")] == ["/@bob/posts", "/@bob"]
    assert [f.name for f in (out / "httpcache").glob("timeline.db*")]  # his posts are in it
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:bob")
    assert [f["path"] for f in receipt["failed"]] == [str(out / "httpcache")], receipt["failed"]
    assert result.stats["consentcrawl/purge/failed"] == 1
    assert any("DbmCacheStorage" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


@pytest.mark.parametrize(("feed", "listed"), [("stdout:", "stdout:"),
                                               ("ftp://user:secret@127.0.0.1:9/out/items.jsonl?a=b",
                                                "ftp://127.0.0.1/out/items.jsonl")])
@deferred_f_from_coro_f
async def test_a_feed_the_purge_cannot_reach_is_listed_as_failed_in_the_receipt(
        feed: str, listed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A feed to standard output (or a remote store) holds bob's posts; his receipt must list it as not purged,
    without the credentials its URI holds."""
    out = tmp_path / "out"
    settings = fedi_settings(tmp_path, out, CONSENTCRAWL_PURGE_ON_CLOSE=True)
    settings["FEEDS"] = {feed: {"format": "jsonlines"}, str(out / "items.jsonl"): {"format": "jsonlines"}}
    with LocalServer(FediverseSite()) as server:
        result = await run_crawl(TimelineSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert [p for _, p in served_paths(server, "bob")] == ["/@bob/posts", "/@bob"]
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:bob")
    assert [f["path"] for f in receipt["failed"]] == [listed], receipt["failed"]
    assert "secret" not in (tmp_path / "audit.jsonl").read_text()
    assert {t["kind"]: t["removed"] for t in receipt["targets"]}["jsonlines"] == 3
    assert result.stats["consentcrawl/purge/failed"] == 1


class _Kind(enum.Enum):
    FEDIVERSE = 1


class _StampedByHand(scrapy.Spider):
    """An item from ``start()`` (no page stamped it) whose own provenance names its platform as an Enum member."""

    name = "stamped"
    custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}}

    async def start(self) -> Any:
        yield {"subject": "alice", "platform": "fediverse", "consentcrawl": {"platform": _Kind.FEDIVERSE}}


@deferred_f_from_coro_f
async def test_a_deny_line_naming_a_platform_the_spider_wrote_oddly_is_json_dumps_of_its_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The item names another platform than its provenance: denied ``subject.mismatch`` with the provenance's value
    as the decision's platform. Its line must be ``json.dumps(entry, default=str)`` (docs/audit-log.md), as every
    line is, whichever encoder writes it: orjson wrote the member's value (``1``), json writes ``str()`` of it."""
    with LocalServer(FediverseSite()) as server:
        result = await run_crawl(_StampedByHand, fedi_settings(tmp_path, tmp_path / "out"), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
    assert not result.items
    [deny] = [e for e in result.audit if e["verdict"] == "deny"]
    assert (deny["reason"], deny["platform"]) == ("subject.mismatch", "_Kind.FEDIVERSE")
    assert verify(tmp_path / "audit.jsonl").problem is None
