"""People whose refusal a crawl finds after it let some of their data through, purged at its end
(``CONSENTCRAWL_PURGE_ON_CLOSE``; docs/purge.md, "Purge on close").

The first-page gate holds a person's other requests only until a page *showing their profile* has been read: a
page of theirs that is not a profile (their posts, reached from a timeline) goes first, is read (it says nothing
about them), and its items reach the feeds before their profile is fetched. A person may also change their
profile while the crawl runs: their actor said nothing, their posts were collected, their profile page, read
later, says ``#nobot``. Both are real crawls of the fediverse demo server, judged by the server's own request log,
the output files (three feed formats, an SQLite database, the HTTP cache) and the audit log.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.audit.chain import verify
from consentcrawl.audit.log import read_audit_log
from consentcrawl.purge.denied import REFUSED, UNREAD, WITHDRAWN, Cause, denied_people
from consentcrawl.refusals.book import ClusterSay, Refusal, RefusalBook, Unread
from consentcrawl_demo.fediverse import FediverseSite
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from spiders.fediverse import SETTINGS
from tests.conftest import consent_settings, jsonl, run_crawl
from tests.purge_helpers import output_settings

ACTIVITYPUB = "application/activity+json"


def fedi_settings(tmp_path: Path, out: Path, **extra: Any) -> dict[str, Any]:
    return consent_settings(tmp_path, **output_settings(out), LOG_LEVEL="INFO",
                            CONSENTCRAWL_PLATFORMS=[str(SETTINGS / "fediverse.yaml")],
                            CONSENTCRAWL_AUTHORIZATIONS=str(SETTINGS / "fediverse-authorizations.jsonl"),
                            CONSENTCRAWL_PURGE_TARGETS=[str(out / "items.db")], **extra)


async def crawl_site(site: Any, spider: type[scrapy.Spider], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                     **extra: Any) -> tuple[Any, LocalServer, Path]:
    """``spider`` crawls ``site`` with :func:`fedi_settings` (``extra`` added), its outputs in ``tmp_path/out``;
    the crawl's result, the server (its log) and the output directory. The server must have raised nothing."""
    out = tmp_path / "out"
    with LocalServer(site) as server:
        result = await run_crawl(spider, fedi_settings(tmp_path, out, **extra), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
        assert not server.errors, server.errors
    return result, server, out


class TimelineSpider(scrapy.Spider):
    """A crawler that meets people through their posts (a hashtag timeline, say) and then visits each author's
    profile: a person's posts are their first page, and it shows no profile."""

    name = "timeline"
    custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}, "CONCURRENT_REQUESTS": 1}
    authors = ("bob", "alice")

    async def start(self) -> Any:
        for name in self.authors:
            yield scrapy.Request(f"http://fedi.example/@{name}/posts", callback=self.parse_posts,
                                 cb_kwargs={"name": name})

    def parse_posts(self, response: Any, name: str) -> Iterator[Any]:
        for post in response.css(".h-entry .e-content"):
            yield {"subject": name, "platform": "fediverse", "kind": "post",
                   "text": " ".join(post.css("::text").getall())}
        yield response.follow(f"/@{name}", callback=self.parse_profile, cb_kwargs={"name": name})

    def parse_profile(self, response: Any, name: str) -> Iterator[Any]:
        yield {"subject": name, "platform": "fediverse", "kind": "profile",
               "name": response.css(".h-card .p-name::text").get()}


class ChangingSite(FediverseSite):
    """Alice adds ``#nobot`` to her bio while the crawl reads her posts."""

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        response = super().__call__(request, headers)
        if request.decoded_path == "/@alice/posts":
            self.people["alice"] = replace(self.people["alice"], bio="<p>Gardener. #nobot</p>")
        return response


class RevisitSpider(TimelineSpider):
    """Each person's actor, then their posts, then their profile page, one after the other."""

    name = "revisit"
    people = ("alice", "grace")

    async def start(self) -> Any:
        for name in self.people:
            yield scrapy.Request(f"http://fedi.example/users/{name}", headers={"Accept": ACTIVITYPUB},
                                 callback=self.parse_actor, cb_kwargs={"name": name})

    def parse_actor(self, response: Any, name: str) -> Iterator[Any]:
        yield {"subject": name, "platform": "fediverse", "kind": "actor",
               "summary": json.loads(response.text)["summary"]}
        yield scrapy.Request(f"http://fedi.example/@{name}/posts", callback=self.parse_posts, cb_kwargs={"name": name})

    def parse_profile(self, response: Any, name: str) -> Iterator[Any]:
        yield {"subject": name, "platform": "fediverse", "kind": "profile"}


# -- what the outputs hold ---------------------------------------------------------------------------------------


def served_paths(server: LocalServer, name: str) -> list[tuple[float, str]]:
    return [(r.time, r.decoded_path) for r in server.requests
            if r.decoded_path.startswith((f"/@{name}", f"/users/{name}"))]


def feed_subjects(out: Path) -> dict[str, set[str]]:
    """The people each output names, read independently of the purge's code."""
    db = sqlite3.connect(out / "items.db")
    try:
        rows = {str(s) for (s,) in db.execute("SELECT subject FROM people")}
    finally:
        db.close()
    csv_lines = (out / "items.csv").read_text().splitlines()[1:]
    header = (out / "items.csv").read_text().splitlines()[0].split(",")
    column = header.index("subject")
    return {"jsonl": {str(i["subject"]) for i in jsonl(out / "items.jsonl")},
            "json": {str(i["subject"]) for i in json.loads((out / "items.json").read_text())},
            "csv": {line.split(",")[column] for line in csv_lines},
            "sqlite": rows}


def cached_urls(out: Path) -> list[str]:
    import ast

    return [str(ast.literal_eval(meta.read_text())["url"]) for meta in (out / "httpcache").rglob("meta")]


def receipts_for(log: Path, who: str) -> list[dict[str, Any]]:
    return [e for e in read_audit_log(log) if e.get("event") == "purge-receipt" and e.get("subject") == who]


def no_name_at_info(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and name in r.getMessage()]


# -- a person's posts first, their refusal on the profile after -----------------------------------------------------


@deferred_f_from_coro_f
async def test_posts_collected_before_the_profile_refused_are_purged_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        result, server, out = await crawl_site(FediverseSite(), TimelineSpider, tmp_path, monkeypatch,
                                               CONSENTCRAWL_PURGE_ON_CLOSE=True)
    # the path to the leak, by the server's log: bob's posts went out and came back before his profile was read
    bob = served_paths(server, "bob")
    assert [p for _, p in bob] == ["/@bob/posts", "/@bob"], bob
    [found] = [e for e in result.events if e["event"] == "refusal-found"]
    assert (found["subject"], found["form"]) == ("bob", "hashtag.nobot")
    assert datetime.fromisoformat(found["time"]).timestamp() >= bob[1][0]  # nothing of bob after it: none left
    assert [i["kind"] for i in result.items if i["subject"] == "bob"] == ["post"] * 3  # collected, then refused
    # control: alice (no refusal) went the same way and is kept everywhere
    assert {i["kind"] for i in result.items if i["subject"] == "alice"} == {"post", "profile"}

    # after the close: nothing of bob in any output, alice as she was
    assert feed_subjects(out) == {k: {"alice"} for k in ("jsonl", "json", "csv", "sqlite")}
    urls = cached_urls(out)
    assert not [u for u in urls if "bob" in u], urls
    assert "http://fedi.example/@alice/posts" in urls and "http://fedi.example/@alice" in urls
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:bob")
    assert receipt["selection"] == "refused-during-crawl"
    assert receipt["because"] == [{"event": found["event_id"], "form": "hashtag.nobot", "seen_by": "this crawl"}]
    removed = {t["kind"]: t["removed"] for t in receipt["targets"]}
    assert removed == {"jsonlines": 3, "json": 3, "csv": 3, "sqlite": 3, "httpcache": 1}, receipt
    assert not receipts_for(tmp_path / "audit.jsonl", "fediverse:alice")
    verified = verify(tmp_path / "audit.jsonl")
    assert verified.problem is None, verified.problem
    assert result.stats["consentcrawl/purge/people"] == 1
    assert result.stats["consentcrawl/refusals/after_collection"] == 1
    assert "consentcrawl/purge/failed" not in result.stats
    assert not no_name_at_info(caplog, "bob")


@deferred_f_from_coro_f
async def test_without_purge_on_close_a_warning_counts_the_people_and_names_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        result, server, out = await crawl_site(FediverseSite(), TimelineSpider, tmp_path, monkeypatch)
    assert [p for _, p in served_paths(server, "bob")] == ["/@bob/posts", "/@bob"]
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "before their refusal" in r.getMessage()]
    assert len(warnings) == 1 and "1 person" in warnings[0] and "CONSENTCRAWL_PURGE_ON_CLOSE" in warnings[0], warnings
    assert result.stats["consentcrawl/refusals/after_collection"] == 1
    assert "consentcrawl/purge/people" not in result.stats
    assert not no_name_at_info(caplog, "bob")
    # nothing is purged: the outputs still hold bob's posts (what the warning is about), and no receipt is written
    assert feed_subjects(out)["jsonl"] == {"alice", "bob"}
    assert not receipts_for(tmp_path / "audit.jsonl", "fediverse:bob")


# -- a person who changed their profile while the crawl ran --------------------------------------------------------


@deferred_f_from_coro_f
async def test_a_refusal_added_to_the_profile_mid_crawl_purges_what_was_collected_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        result, server, out = await crawl_site(ChangingSite(), RevisitSpider, tmp_path, monkeypatch,
                                               CONSENTCRAWL_PURGE_ON_CLOSE=True)
    alice = [p for _, p in served_paths(server, "alice")]
    assert alice == ["/users/alice", "/@alice/posts", "/@alice"], alice  # her actor said nothing; then #nobot
    [found] = [e for e in result.events if e["event"] == "refusal-found"]
    assert (found["subject"], found["url"]) == ("alice", "http://fedi.example/@alice")
    assert sorted(i["kind"] for i in result.items if i["subject"] == "alice") == ["actor", "post", "post", "post"]
    assert {i["kind"] for i in result.items if i["subject"] == "grace"} == {"actor", "post", "profile"}  # control

    assert feed_subjects(out) == {k: {"grace"} for k in ("jsonl", "json", "csv", "sqlite")}
    urls = cached_urls(out)
    assert not [u for u in urls if "alice" in u], urls
    assert "http://fedi.example/users/grace" in urls
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:alice")
    assert receipt["selection"] == "refused-during-crawl"
    assert [b["event"] for b in receipt["because"]] == [found["event_id"]]
    removed = {t["kind"]: t["removed"] for t in receipt["targets"]}
    assert removed == {"jsonlines": 4, "json": 4, "csv": 4, "sqlite": 4, "httpcache": 2}, receipt
    assert verify(tmp_path / "audit.jsonl").problem is None
    assert not no_name_at_info(caplog, "alice")


# -- a person whose say could not be read ------------------------------------------------------------------------


class GraceAndBob(TimelineSpider):
    authors = ("grace", "bob")


@deferred_f_from_coro_f
async def test_posts_of_a_person_whose_actor_could_not_be_read_are_purged_as_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Grace's profile links to her actor (where her ``indexable`` is), which answers 500: she is denied
    ``error.internal`` (``ActorUnread``) after her posts were collected; purged, the receipt says unread."""

    class Site(FediverseSite):
        def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
            if request.decoded_path == "/users/grace" and ACTIVITYPUB in headers.get("accept", ""):
                return Response.text("500 Internal Server Error\n", 500)
            return super().__call__(request, headers)

    out = tmp_path / "out"
    settings = fedi_settings(tmp_path, out, CONSENTCRAWL_PURGE_ON_CLOSE=True)
    with LocalServer(Site()) as server:
        result = await run_crawl(GraceAndBob, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert [p for _, p in served_paths(server, "grace")] == ["/@grace/posts", "/@grace", "/users/grace"]
    assert [i["kind"] for i in result.items if i["subject"] == "grace"] == ["post"] * 3  # collected, then unread
    assert result.stats["consentcrawl/refusals/actor_unread"] == 1
    assert feed_subjects(out) == {k: set() for k in ("jsonl", "json", "csv", "sqlite")}  # bob refused too
    assert not [u for u in cached_urls(out) if "grace" in u or "bob" in u]
    receipts = {r["subject"]: r for r in read_audit_log(tmp_path / "audit.jsonl") if r.get("event") == "purge-receipt"}
    assert receipts["fediverse:grace"]["selection"] == "unread-during-crawl"
    assert receipts["fediverse:grace"]["because"] == [{"seen_by": "this crawl"}]
    assert receipts["fediverse:grace"]["removed"] == 3 * 4 + 1
    assert receipts["fediverse:bob"]["selection"] == "refused-during-crawl"
    assert result.stats["consentcrawl/refusals/after_collection"] == 2


@deferred_f_from_coro_f
async def test_a_refusal_known_from_the_log_takes_the_cached_listing_that_names_the_person(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bob refused in an earlier crawl (the refusal log): this crawl fetches nothing of his, but the directory it
    caches links his profile; that entry goes, and his receipt says the refusal log saw it."""

    class Directory(scrapy.Spider):
        name = "directory"
        custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}, "CONCURRENT_REQUESTS": 1}

        async def start(self) -> Any:
            yield scrapy.Request("http://fedi.example/directory", callback=self.parse)

        def parse(self, response: Any) -> Iterator[Any]:
            for href in response.css("a.profile::attr(href)").getall()[:3]:  # alice, bob, carol
                yield response.follow(href, callback=self.profile)

        def profile(self, response: Any) -> Iterator[Any]:
            yield {"subject": response.url.rpartition("@")[2], "platform": "fediverse"}

    log = tmp_path / "refusals.jsonl"
    log.write_text(json.dumps({"platform": "fediverse", "subject": "bob", "url": "http://fedi.example/@bob",
                               "form": "hashtag.nobot", "field": "p-note", "raw": "#nobot", "purposes": ["research"],
                               "seen_at": "2026-11-30T10:00:00+00:00", "event": "earlier"}) + "\n")
    out = tmp_path / "out"
    settings = fedi_settings(tmp_path, out, CONSENTCRAWL_PURGE_ON_CLOSE=True, CONSENTCRAWL_REFUSALS_LOG=str(log))
    with LocalServer(FediverseSite()) as server:
        result = await run_crawl(Directory, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert not served_paths(server, "bob")  # nothing of his fetched
    assert "http://fedi.example/directory" in {r.url for r in server.requests}
    assert not any(u.endswith("/directory") for u in cached_urls(out))  # the listing that names him went
    receipts = {r["subject"]: r for r in read_audit_log(tmp_path / "audit.jsonl") if r.get("event") == "purge-receipt"}
    assert receipts["fediverse:bob"]["because"] == [{"event": "earlier", "form": "hashtag.nobot",
                                                     "seen_by": "refusal log"}]
    assert {t["kind"]: t["removed"] for t in receipts["fediverse:bob"]["targets"]}["httpcache"] == 1
    assert "consentcrawl/refusals/after_collection" not in result.stats  # no item of his was ever kept


# -- the selection, unit by unit -------------------------------------------------------------------------------------


def _refusal(subject: str, form: str = "hashtag.nobot", purposes: frozenset[str] = frozenset({"research"}),
             event: str = "e1") -> Refusal:
    return Refusal("fediverse", subject, f"http://fedi.example/@{subject}", form, "note", "#nobot", purposes,
                   datetime(2026, 12, 1, tzinfo=timezone.utc), event)


def test_who_goes_for_their_own_say_and_why() -> None:
    logged = _refusal("dan", event="old")
    book = RefusalBook([logged, _refusal("bob"), _refusal("ann", "meta-robots.noai", frozenset({"ai-training"}))])
    book.add_unread(Unread("fediverse", "uma", "http://fedi.example/users/uma", "HTTP 500",
                           datetime(2026, 12, 1, tzinfo=timezone.utc)))
    cluster = {("fediverse", "cy"): ClusterSay(False, {"event_id": "w2", "form": "activitypub.indexable",
                                                        "url": "http://fedi.example/users/cy"}),
               ("fediverse", "vi"): ClusterSay(True, {"url": "http://fedi.example/users/vi", "cause": "HTTP 404"})}
    out = denied_people(book, frozenset({"research"}), refused_decided=[("fediverse", "dan")],
                        collected=[("fediverse", p) for p in ("bob", "ann", "cy", "vi", "al")], logged={logged},
                        cluster=cluster)
    fields = {who: cause.receipt_fields() for (_, who), cause in out.items()}
    assert fields == {
        "dan": {"selection": REFUSED, "because": [{"event": "old", "form": "hashtag.nobot", "seen_by": "refusal log"}]},
        "bob": {"selection": REFUSED, "because": [{"event": "e1", "form": "hashtag.nobot", "seen_by": "this crawl"}]},
        "cy": {"selection": REFUSED, "because": [{"event": "w2", "form": "activitypub.indexable",
                                                   "seen_by": "another worker"}]},
        "vi": {"selection": UNREAD, "because": [{"seen_by": "another worker"}]},
        "uma": {"selection": UNREAD, "because": [{"seen_by": "this crawl"}]},
    }  # ann refused another purpose only; al said nothing; no URL, no raw text in a receipt
    assert Cause(WITHDRAWN).receipt_fields() == {"selection": WITHDRAWN}
    # a refusal in the log of a person this crawl never met: no receipt (nothing of theirs was met)
    assert ("fediverse", "dan") not in denied_people(book, frozenset({"research"}), refused_decided=[], collected=[],
                                                      logged={logged})
    # denied for a refusal whose evidence this worker does not hold (the cluster could not be read at the close)
    assert denied_people(RefusalBook(), frozenset({"research"}), refused_decided=[("fediverse", "zo")],
                         collected=[])[("fediverse", "zo")] == Cause(REFUSED)
