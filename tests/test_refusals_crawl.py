"""Refusals on the page in real crawls, judged by the server's request log, the items and the audit log.

The fediverse example spider crawls the Mastodon-style demo server; every person there holds a live record, so
only what they say on their own profile can stop them. Their actor is requested first; their profile, posts and
followers are already scheduled (and wait in the one download slot) when the refusal is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.config import ConsentConfig
from consentcrawl.errors import ConfigError
from consentcrawl_demo.fediverse import PEOPLE, FediverseSite
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from spiders.fediverse import SETTINGS, FediverseSpider
from tests.conftest import consent_settings, run_crawl

REFUSING = {p.name for p in PEOPLE if p.refuses_research}
OPEN = {p.name for p in PEOPLE} - REFUSING


def person_of(request: LoggedRequest) -> str | None:
    path = request.decoded_path
    for prefix in ("/@", "/users/"):
        if path.startswith(prefix):
            return path[len(prefix):].split("/")[0]
    return None


def requests_by_person(server: LocalServer) -> dict[str, list[LoggedRequest]]:
    out: dict[str, list[LoggedRequest]] = {}
    for request in server.requests:
        person = person_of(request)
        if person is not None:
            out.setdefault(person, []).append(request)
    return out


def fedi_settings(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"CONSENTCRAWL_PLATFORMS": [str(SETTINGS / "fediverse.yaml")],
                              "CONSENTCRAWL_AUTHORIZATIONS": str(SETTINGS / "fediverse-authorizations.jsonl"),
                              "CONSENTCRAWL_REFUSALS_LOG": str(tmp_path / "refusals.jsonl")}
    return consent_settings(tmp_path, **{**values, **extra})


@deferred_f_from_coro_f
async def test_a_refusal_on_the_page_stops_the_persons_other_pages_now_and_in_the_next_crawl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert REFUSING and OPEN  # control: both kinds of people are on the server
    first = tmp_path / "first"
    first.mkdir()
    # a polite delay: the person's other requests wait in the download slot while their actor is read
    settings = fedi_settings(first, CONSENTCRAWL_REFUSALS_LOG=str(tmp_path / "refusals.jsonl"),
                             DOWNLOAD_DELAY=0.02, DOWNLOAD_DELAY_JITTER=0)
    with LocalServer(FediverseSite()) as server:
        result = await run_crawl(FediverseSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        assert not server.errors, server.errors
    served = requests_by_person(server)

    # those who did not refuse: every page of theirs fetched and collected (a look-alike is no refusal)
    for name in OPEN:
        assert {r.decoded_path for r in served[name]} == {f"/users/{name}", f"/@{name}", f"/@{name}/posts",
                                                          f"/users/{name}/followers"}, name
    kinds = {(i["subject"], i["kind"]) for i in result.items}
    assert {s for s, _ in kinds} == OPEN
    assert {k for s, k in kinds if s == "alice"} == {"actor", "profile", "post", "followers"}

    # those who refused: their actor was fetched (that is where the refusal is); nothing of theirs arrived at the
    # server after the refusal was found (what was already on the wire then is dropped in the response phase)
    events = {e["subject"]: e for e in result.events if e["event"] == "refusal-found"}
    assert set(events) == REFUSING
    timeline = "\n".join(f"{r.time:.3f} {r.decoded_path}" for r in server.requests)
    for name in REFUSING:
        found_at = datetime.fromisoformat(events[name]["time"]).timestamp()
        assert served[name][0].decoded_path == f"/users/{name}", (name, timeline)
        late = [r.decoded_path for r in served[name] if r.time > found_at]
        assert not late, (name, found_at, timeline)
        assert events[name]["url"] == f"http://fedi.example/users/{name}"
        responses = [e for e in result.audit if e["subject"] == name and e["phase"] == "response"]
        assert responses and {e["reason"] for e in responses} == {"subject.refused-on-page"}
    assert events["bob"]["form"] == "hashtag.nobot" and "#nobot" in events["bob"]["raw"]
    assert events["carol"]["form"] == "activitypub.indexable" and events["carol"]["raw"] == '{"indexable": false}'
    assert events["judy"]["raw"] == '"indexable" missing'
    assert events["erin"]["form"] == "activitypub.suspended" and events["frank"]["form"] == "activitypub.moved"
    assert events["ivan"]["form"] == "hashtag.no-token" and events["ivan"]["field"] == "attachment[0].value"

    # the requests each refusal stopped were already scheduled or waiting in the slot: each has a deny line that
    # names the refusal's event, and the server never saw them
    stopped = [e for e in result.audit if e["subject"] in REFUSING and e["verdict"] == "deny"
               and e["phase"] in ("request", "schedule")]
    assert len(stopped) >= len(REFUSING), timeline  # control: the delay really made requests wait
    for entry in stopped:
        assert entry["reason"] == "subject.refused-on-page"
        assert entry["because"] == events[entry["subject"]]["event_id"]
        assert entry["url"].removeprefix("http://fedi.example") not in {
            r.decoded_path for r in served[entry["subject"]]}
    log = [json.loads(line) for line in (tmp_path / "refusals.jsonl").read_text().splitlines()]
    assert {e["subject"] for e in log} == REFUSING

    # the next crawl, with the refusal log: nothing of theirs is requested at all
    second = tmp_path / "second"
    second.mkdir()
    settings = fedi_settings(second, CONSENTCRAWL_REFUSALS_LOG=str(tmp_path / "refusals.jsonl"))
    with LocalServer(FediverseSite()) as server:
        again = await run_crawl(FediverseSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    served = requests_by_person(server)
    assert set(served) == OPEN
    assert {i["subject"] for i in again.items} == OPEN
    assert not [e for e in again.events if e["event"] == "refusal-found"]  # known already: not found again
    denied = {e["subject"] for e in again.audit if e["reason"] == "subject.refused-on-page"}
    assert denied == REFUSING
    assert len((tmp_path / "refusals.jsonl").read_text().splitlines()) == len(log)


@deferred_f_from_coro_f
async def test_an_item_about_a_person_who_refused_is_dropped_by_the_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refusal read on a person's page also stops items about them that come from other pages."""
    class Spider(scrapy.Spider):
        name = "refused-items"
        custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}, "CONCURRENT_REQUESTS": 1}

        async def start(self) -> Any:
            yield scrapy.Request("http://fedi.example/users/bob", headers={"Accept": "application/activity+json"},
                                 callback=self.parse, priority=10)
            yield scrapy.Request("http://fedi.example/directory", callback=self.directory)

        def parse(self, response: Any) -> Iterator[Any]:
            yield {"subject": "bob", "platform": "fediverse"}

        def directory(self, response: Any) -> Iterator[Any]:  # a page that is no one's: names bob in an item
            yield {"subject": "bob", "platform": "fediverse", "seen_on": "directory"}
            yield {"subject": "alice", "platform": "fediverse", "seen_on": "directory"}

    settings = fedi_settings(tmp_path, CONSENTCRAWL_PURPOSE="research")
    with LocalServer(FediverseSite()) as server:
        result = await run_crawl(Spider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert [i["subject"] for i in result.items] == ["alice"]
    items = [e for e in result.audit if e["phase"] == "item"]
    assert [(e["subject"], e["reason"]) for e in items if e["subject"] == "bob"] == [
        ("bob", "subject.refused-on-page")]


def test_a_broken_refusal_log_stops_the_crawl_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "refusals.jsonl"
    good = {"platform": "fediverse", "subject": "bob", "url": "http://fedi.example/users/bob",
            "form": "hashtag.nobot", "field": "summary", "raw": "#nobot", "purposes": ["research"],
            "seen_at": "2026-11-30T10:00:00+00:00", "event": "e1"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "purposes": ["mining"]}) + "\n")
    settings = fedi_settings(tmp_path, CONSENTCRAWL_REFUSALS_LOG=str(path), CONSENTCRAWL_PURPOSE="research")
    with pytest.raises(ConfigError) as error:
        ConsentConfig.from_settings(settings)
    assert str(path) in str(error.value) and "line 2" in str(error.value) and "mining" in str(error.value)
    path.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(ConfigError, match="line 2"):
        ConsentConfig.from_settings(settings)
    path.write_text(json.dumps(good) + "\n")
    config = ConsentConfig.from_settings(settings)
    assert [(r.platform, r.subject, r.form) for r in config.refusals] == [("fediverse", "bob", "hashtag.nobot")]


class ParallelFediverseSpider(FediverseSpider):
    """The example spider with every page of every person requested at once (no per-domain limit, no delay)."""

    name = "fediverse-parallel"
    custom_settings = {**FediverseSpider.custom_settings, "CONCURRENT_REQUESTS_PER_DOMAIN": 32,
                       "CONCURRENT_REQUESTS": 32}


@deferred_f_from_coro_f
async def test_a_persons_pages_requested_together_do_not_race_their_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """All of a person's pages are scheduled together and sent in parallel: still, only one page showing their
    profile is fetched before their refusal is read (the others wait for it at send time, then are denied)."""
    with LocalServer(FediverseSite()) as server:
        result = await run_crawl(ParallelFediverseSpider, fedi_settings(tmp_path), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
    served = requests_by_person(server)
    timeline = "\n".join(f"{r.time:.3f} {r.decoded_path} {r.header('accept')}" for r in server.requests)
    assert {s for s in served if len(served[s]) == 4} == OPEN, timeline  # control: the others were fetched
    events = {e["subject"]: e for e in result.events if e["event"] == "refusal-found"}
    assert set(events) == REFUSING
    for name in REFUSING:
        profiles = [r for r in served[name] if r.decoded_path in (f"/users/{name}", f"/@{name}")]
        assert len(profiles) == 1, (name, timeline)  # one page with their profile, then nothing else of theirs
        assert served[name][-1] is profiles[0], (name, timeline)
    assert not {i["subject"] for i in result.items} & REFUSING


class BrokenActorSite(FediverseSite):
    """bob's actor is not JSON; carol's actor names another person's id."""

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.decoded_path == "/users/bob" and "activity" in headers.get("accept", ""):
            return Response(200, {"Content-Type": "application/activity+json"}, '{"id": "http://fedi.example/us')
        if request.decoded_path == "/users/carol" and "activity" in headers.get("accept", ""):
            response = super().__call__(request, headers)
            assert response is not None
            doc = json.loads(response.body_bytes())
            doc.update(id="http://fedi.example/users/alice", indexable=True)  # alice's actor, served as carol's
            return Response(200, {"Content-Type": "application/activity+json"}, json.dumps(doc))
        return super().__call__(request, headers)


class TwoActors(scrapy.Spider):
    name = "two-actors"
    custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}}

    async def start(self) -> Any:
        for name in ("bob", "carol", "alice"):
            yield scrapy.Request(f"http://fedi.example/users/{name}",
                                 headers={"Accept": "application/activity+json"}, callback=self.parse)

    def parse(self, response: Any) -> Iterator[Any]:
        yield {"subject": response.url.rsplit("/", 1)[1], "platform": "fediverse"}


@deferred_f_from_coro_f
async def test_an_unreadable_or_someone_elses_actor_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Fail closed: a page whose person's say cannot be read is denied with the cause; an actor document with
    another person's id is not read as the page's person (and not used)."""
    with LocalServer(BrokenActorSite()) as server:
        result = await run_crawl(TwoActors, fedi_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert [i["subject"] for i in result.items] == ["alice"]
    lines = {e["subject"]: e for e in result.audit if e["phase"] == "response"}
    assert lines["bob"]["reason"] == "error.internal"
    assert lines["bob"]["evidence"][-1]["while"] == "reading refusals"
    assert "not JSON" in lines["bob"]["evidence"][-1]["message"]
    assert lines["carol"]["reason"] == "subject.mismatch"
    assert lines["carol"]["evidence"][-1] == {"kind": "page-owner", "source": "http://fedi.example/users/carol",
                                               "owner": "http://fedi.example/users/alice",
                                               "cause": "the actor's id names another person than the page's URL"}
    assert not [e for e in result.events if e["event"] == "refusal-found"]  # neither is a refusal (nor alice's)


@deferred_f_from_coro_f
async def test_a_refusal_log_that_cannot_be_written_still_stops_the_person(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """The disk is full when the refusal is appended (the failure injected into the file write): logged with its
    cause and counted; the refusal applies to this crawl all the same."""
    import errno

    from consentcrawl.refusallog import RefusalLog

    def full(self: RefusalLog, refusal: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RefusalLog, "append", full)
    with LocalServer(FediverseSite()) as server, caplog.at_level("ERROR", logger="consentcrawl"):
        result = await run_crawl(ParallelFediverseSpider, fedi_settings(tmp_path), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
    served = requests_by_person(server)
    assert {i["subject"] for i in result.items} == OPEN
    for name in REFUSING:  # one page with their profile, then nothing else of theirs (as without the failure)
        assert [r.decoded_path for r in served[name]][-1:] == [
            r.decoded_path for r in served[name] if r.decoded_path in (f"/users/{name}", f"/@{name}")]
    assert result.stats["consentcrawl/refusals/log_errors"] == len(REFUSING)
    errors = [r.getMessage() for r in caplog.records if "refusal log" in r.getMessage()]
    assert len(errors) == len(REFUSING) and all("No space left on device" in m for m in errors)
    assert all("bob" not in m and "#nobot" not in m for m in errors)  # no personal data at ERROR
