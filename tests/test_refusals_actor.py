"""The ActivityPub actor an HTML profile links to (``<link rel="alternate" type="application/activity+json">``) is
fetched by consentcrawl itself, once per person, decided like any request of theirs, so that ``indexable: false``
there refuses even when the spider crawls profile HTML only (issue 14, "Refusals on the page").

A real crawl of the fediverse demo server by a spider that asks for profiles and posts, never an actor; judged by
the server's request log (with the Accept header each request was sent with), the items and the audit log.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from scrapy import Request
from scrapy.http import Response
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.fediverse import PEOPLE, FediverseSite
from consentcrawl_demo.server import LocalServer, LoggedRequest
from consentcrawl_demo.server import Response as Served
from spiders.fediverse import SETTINGS, FediverseSpider
from tests.conftest import run_crawl
from tests.test_refusals_crawl import fedi_settings

AP = "application/activity+json"
#: the people whose profile HTML says they refuse (a #nobot bio, a #noconsentcrawl field): their actor is not needed
REFUSING_IN_HTML = {"bob", "ivan"}
#: the people whose actor alone says they refuse (indexable false or missing, suspended, moved)
REFUSING_IN_ACTOR = {p.name for p in PEOPLE if p.refuses_research} - REFUSING_IN_HTML
NO_RECORD = "kim"  #: holds no record in this test: denied before anything of theirs is fetched


class ProfilesOnly(FediverseSpider):
    """The example spider without its actor requests: each person's profile HTML (first) and posts."""

    name = "fediverse-profiles"
    custom_settings: ClassVar[dict[str, Any]] = {"CONCURRENT_REQUESTS_PER_DOMAIN": 1}  # the records: the test's

    def parse_directory(self, response: Response) -> Iterator[Request]:
        for href in response.css("a.profile::attr(href)").getall():
            yield response.follow(href, callback=self.parse_profile, priority=10)
            yield response.follow(f"{href}/posts", callback=self.parse_posts)


@deferred_f_from_coro_f
async def test_the_linked_actor_is_fetched_once_and_its_refusal_stops_the_persons_other_pages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert REFUSING_IN_ACTOR >= {"carol", "judy"}  # control: indexable false and missing are among them
    records = tmp_path / "authorizations.jsonl"
    lines = (SETTINGS / "fediverse-authorizations.jsonl").read_text().splitlines(True)
    records.write_text("".join(line for line in lines if f'"{NO_RECORD}"' not in line))
    settings = fedi_settings(tmp_path, CONSENTCRAWL_AUTHORIZATIONS=str(records),
                             CONSENTCRAWL_PLATFORMS=[str(SETTINGS / "fediverse.yaml")])
    site = FediverseSite()
    sent: list[tuple[str, str]] = []  # (path, Accept) as the server received them

    def app(request: LoggedRequest, headers: dict[str, str]) -> Served | None:
        sent.append((request.decoded_path, headers.get("accept", "")))
        return site(request, headers)

    with LocalServer(app) as server:
        result = await run_crawl(ProfilesOnly, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    log = "\n".join(f"  {path} ({accept})" for path, accept in sent)

    def fetched(path: str) -> list[str]:
        return [accept for p, accept in sent if p == path]

    for person in PEOPLE:
        name = person.name
        actor, profile, posts = fetched(f"/users/{name}"), fetched(f"/@{name}"), fetched(f"/@{name}/posts")
        if name == NO_RECORD:  # denied before its first page: no page, no actor
            assert (actor, profile, posts) == ([], [], []), log
        elif name in REFUSING_IN_HTML:  # refused on the page: the actor is not fetched, nor anything else
            assert (len(profile), actor, posts) == (1, [], []), f"{name}\n{log}"
        elif name in REFUSING_IN_ACTOR:  # the actor, once, as ActivityPub; then nothing more of them
            assert len(profile) == 1 and actor == [AP] and posts == [], f"{name}\n{log}"
        else:  # an open person: their actor once (a later page does not fetch it again), their posts
            assert len(profile) == 1 and actor == [AP] and len(posts) == 1, f"{name}\n{log}"
    # the actor was fetched after the profile and before anything else of the person
    for name in REFUSING_IN_ACTOR:
        order = [p for p, _ in sent if p.startswith((f"/@{name}", f"/users/{name}"))]
        assert order == [f"/@{name}", f"/users/{name}"], order

    # the refusals found in the actors are recorded as the actor's; the profile page itself is denied
    found = {(e["subject"], e["url"].rpartition("/")[0] + "/", e["form"]) for e in result.events
             if e["event"] == "refusal-found"}
    assert {s for s, url, _ in found if url.endswith("/users/")} == REFUSING_IN_ACTOR, found
    assert ("carol", "http://fedi.example/users/", "activitypub.indexable") in found
    items = {(i["subject"], i["kind"]) for i in result.items}
    refusing = REFUSING_IN_ACTOR | REFUSING_IN_HTML
    assert not {s for s, _ in items} & (refusing | {NO_RECORD}), items
    assert ("alice", "profile") in items and ("alice", "post") in items  # control

    # the actor's own audit lines: decided at send time like any request of the person, then read
    carol = [e for e in result.audit if e["url"] == "http://fedi.example/users/carol"]
    assert [(e["phase"], e["verdict"], e["reason"]) for e in carol] == [
        ("request", "allow", "subject.authorized"), ("response", "deny", "subject.refused-on-page")], carol
    profile = [e for e in result.audit if e["url"] == "http://fedi.example/@carol" and e["phase"] == "response"]
    assert [e["reason"] for e in profile] == ["subject.refused-on-page"], profile
    assert result.stats.get("consentcrawl/refusals/actor_requests") == len(PEOPLE) - 1 - len(REFUSING_IN_HTML)
    assert json.dumps(result.items).count("Carol") == 0


@deferred_f_from_coro_f
async def test_an_actor_link_to_another_person_is_not_followed(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """heidi's profile links to carol's actor: reading it would be reading carol, not heidi; it is not fetched
    for heidi (carol's own profile fetches it, once). heidi's own actor is then not known: her say cannot be read,
    and she is denied (``error.internal``), her profile in its response phase and her other pages before they are
    sent."""
    site = FediverseSite()
    sent: list[str] = []

    def app(request: LoggedRequest, headers: dict[str, str]) -> Served | None:
        sent.append(request.decoded_path)
        answer = site(request, headers)
        if answer is not None and request.decoded_path == "/@heidi":
            answer = dataclasses.replace(answer, body=str(answer.body).replace("/users/heidi", "/users/carol"))
        return answer

    with LocalServer(app) as server:
        result = await run_crawl(ProfilesOnly, fedi_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert "/@heidi" in sent and "/users/heidi" not in sent and sent.count("/users/carol") == 1, sent
    assert "/@heidi/posts" not in sent, sent
    assert result.stats.get("consentcrawl/refusals/actor_of_another") == 1
    items = {(i["subject"], i["kind"]) for i in result.items}
    assert "heidi" not in {s for s, _ in items} and ("alice", "post") in items, items  # alice: the control
    heidi = [e for e in result.audit if e["url"] == "http://fedi.example/@heidi" and e["phase"] == "response"]
    assert [e["reason"] for e in heidi] == ["error.internal"], heidi
