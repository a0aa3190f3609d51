"""A request whose body names a person is about that person, wherever its URL points (bodyreading.py).

A crawl paused with ``JOBDIR`` keeps the spider's POSTs to the listing ``/people`` (a form naming one person, a JSON
body naming another) in its disk queue; one of the two people withdraws; the resumed crawl sends those requests
long after they were made. Judged by the demo server's own request log (method, path and body of what it got)
and the audit log.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from scrapy import FormRequest, Request
from scrapy.http import Response
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl import ConsentSpider
from consentcrawl.audit.log import read_decisions
from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer
from tests.conftest import run_crawl
from tests.test_purge_jobdir import PERSON, crawl_settings, withdraw

#: authorized for research all along (settings/authorizations.yaml)
OTHER = "1001"
LISTING = "http://microblog.example/people"


class PostsToTheListing(ConsentSpider):
    """The first page of people; from it, POSTs to the listing that name one person each in their bodies, queued
    behind the profiles."""

    name = "poststothelisting"
    purpose = "research"

    async def start(self) -> AsyncIterator[Request]:
        yield Request(f"{LISTING}?page=1", callback=self.parse)

    def parse(self, response: Response) -> Iterator[Request]:
        yield FormRequest(LISTING, formdata={"page": "2", "id": PERSON}, callback=self.parse_other, priority=-10)
        yield Request(LISTING, method="POST", body=json.dumps({"user": {"id": int(PERSON)}}),
                      headers={"Content-Type": "application/json"}, callback=self.parse_other, priority=-10)
        yield FormRequest(LISTING, formdata={"id": OTHER}, callback=self.parse_other, priority=-10)
        for href in response.css("li.person a.profile-link::attr(href)").getall()[:3]:
            yield response.follow(href, callback=self.parse_other)

    def parse_other(self, response: Response) -> Iterator[Any]:
        return iter(())


def posts(server: LocalServer) -> list[bytes]:
    return [r.body for r in server.requests if r.method == "POST"]


@deferred_f_from_coro_f
async def test_a_resumed_post_to_the_listing_naming_a_withdrawn_person_is_not_sent(
    site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
) -> None:
    log = tmp_path / "audit.jsonl"
    with LocalServer(site) as server:
        paused = crawl_settings(tmp_path, config_dir, CLOSESPIDER_PAGECOUNT=1, CONSENTCRAWL_AUDIT_LOG=str(log))
        first = await run_crawl(PostsToTheListing, paused, proxy=server.proxy, monkeypatch=monkeypatch)
        assert first.stats["finish_reason"] == "closespider_pagecount"
        assert posts(server) == [], "control: the POSTs waited in the JOBDIR's queue"
        withdraw(config_dir)
        resumed = crawl_settings(tmp_path, config_dir, CONSENTCRAWL_AUDIT_LOG=str(log))
        second = await run_crawl(PostsToTheListing, resumed, proxy=server.proxy, monkeypatch=monkeypatch)
        assert second.stats["finish_reason"] == "finished"
        sent = posts(server)
    assert sent == [f"id={OTHER}".encode()], f"the server got {sent}"  # the control: the other person's POST went
    denied = [e for e in read_decisions(log) if e.get("verdict") == "deny" and e.get("url") == LISTING]
    assert sorted(e["reason"] for e in denied) == ["subject.ambiguous-url", "subject.revoked"], denied
    revoked = next(e for e in denied if e["reason"] == "subject.revoked")
    assert (revoked["platform"], revoked["subject"]) == ("microblog", PERSON), revoked


# -- the reading itself, case by case (pure: consentcrawl/bodyreading.py) ----------------------------------------


def _facts(tmp_path: Path, url: str, body: bytes, content_type: bytes | None) -> Any:
    from datetime import datetime, timezone

    from consentcrawl.facts import FactReader, request_inputs
    from consentcrawl.terms.load import load_platforms
    from tests.lenient import write_config

    platforms_file, _ = write_config(tmp_path)
    reader = FactReader(load_platforms([str(platforms_file)]), "consentcrawl")
    inputs = request_inputs({}, {}, body, content_type)
    return reader.facts(url, "research", datetime(2026, 6, 1, tzinfo=timezone.utc), **inputs)


FORM = b"application/x-www-form-urlencoded"


@pytest.mark.parametrize(("url", "body", "content_type", "subject", "ambiguous"), [
    ("http://people.example/people", b"id=104", FORM, "104", False),
    ("http://people.example/people", b"id=%EF%BC%91%EF%BC%90%EF%BC%94", FORM, "104", False),  # fullwidth digits
    ("http://people.example/people", b"q=!!&id=Alice", FORM, "alice", False),  # ids fold case on this platform
    ("http://people.example/people", b'{"a": [{"b": 104}], "104x": "!"}', b"application/json", "104", False),
    ("http://people.example/people", b'{"who": "104"}', None, "104", False),  # JSON without a type: read too
    ("http://people.example/people", b"id=104&id=105", FORM, None, True),  # two people
    ("http://people.example/people", b"id=0104", FORM, None, True),  # "0104", and 104 to a number parser
    ("http://people.example/people", b"id=%2B104", FORM, "104", False),  # 104 to a number parser only
    ("http://people.example/people", b"<who>104</who>", b"text/xml", None, True),  # cannot be read: deny
    ("http://people.example/people", b"id=104.0", FORM, "104", False),  # 104 to PHP, MySQL, parseInt
    ("http://people.example/people", b'{"id": " 104.9 "}', None, "104", False),  # the fraction cut off
    ("http://people.example/people", b"id=104abc", FORM, None, True),  # the handle "104abc", and 104 to PHP
    ("http://people.example/people", b'{"id": "1.04e2"}', None, None, True),  # 104 to PHP, 1 to parseInt
    ("http://people.example/people", b"page=2", FORM, "2", False),  # as before: ids are any digits here
    ("http://people.example/people", b"q=%21%21&page=", FORM, None, False),  # no number: no one
    ("http://people.example/u/104/follow", b"id=104", FORM, "104", False),  # the URL's person again
    ("http://people.example/u/101/follow", b"id=104", FORM, None, True),  # another than the URL's
    ("http://people.example/people", b"id=", FORM, None, False),  # names no one: the listing's request
    ("http://elsewhere.example/people", b"id=104", FORM, None, False),  # off the platform: no one of it
])
def test_a_body_value_names_the_person_the_platforms_regex_accepts(
    tmp_path: Path, url: str, body: bytes, content_type: bytes | None, subject: str | None, ambiguous: bool,
) -> None:
    facts = _facts(tmp_path, url, body, content_type)
    assert (facts.subject, facts.ambiguous is not None) == (subject, ambiguous), facts


def test_a_request_without_a_body_is_read_from_its_url_alone(tmp_path: Path) -> None:
    facts = _facts(tmp_path, "http://people.example/people?id=104", b"", None)
    assert (facts.subject, facts.ambiguous, facts.subject_source) == (None, None, None)
    assert _facts(tmp_path, "http://people.example/people", b"id=104", FORM).subject_source == "body"


# -- a body's id read as lenient servers read numbers ----------------------------------------------------------

#: ids of three or more digits, handles that start with a letter: ``page=2`` names no one here
LONG_IDS = 'subject: "[0-9]{3,}|[A-Za-z][A-Za-z0-9_]*"'
#: the spellings PHP's (int), MySQL's comparison and JavaScript's parseInt read as 107
AS_107 = ("107abc", " 107", "+107", "107.0", "1.07e2", "107.9", "0107x")


class PostsIds:
    """POSTs to the listing: a form and a JSON body for each of :data:`AS_107`, a page of the listing, and 101's
    id written the same lenient way (the controls)."""

    seen: list[str]

    async def start(self) -> AsyncIterator[Request]:
        for spelling in AS_107:
            yield FormRequest(f"{BASE}/people", formdata={"id": spelling}, callback=self.parse, dont_filter=True)
            yield Request(f"{BASE}/people", method="POST", body=json.dumps({"id": spelling}), dont_filter=True,
                          headers={"Content-Type": "application/json"}, callback=self.parse)
        yield FormRequest(f"{BASE}/people", formdata={"page": "2"}, callback=self.parse, dont_filter=True)
        yield FormRequest(f"{BASE}/people", formdata={"id": "101.0"}, callback=self.parse, dont_filter=True)

    def parse(self, response: Response) -> Iterator[Any]:
        self.seen.append(response.url)
        name = response.css(".name::text").get()
        if name:
            yield {"url": response.url, "name": name}


BASE = "http://people.example"


@deferred_f_from_coro_f
async def test_a_body_id_a_lenient_server_reads_as_a_withdrawn_person_is_not_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """107 withdrew. ``id=107abc`` (and ``107.0``, ``1.07e2``...) names no one to the subject regex, but the listing
    answers a POST with its id read as a number, 107's profile: such a value names 107 (and ``1.07e2``, 1 to
    ``parseInt``, names two people: ambiguous). A body that names no one (``page=2``) is sent as before."""
    from tests.lenient import LenientPeople, crawl, make_spider, people_settings, record_yaml, secret_name

    records = [record_yaml("101"), record_yaml("107", revoked_at="2026-02-01T00:00:00Z")]
    settings = people_settings(tmp_path, records, CONSENTCRAWL_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
    platforms = tmp_path / "platforms.yaml"
    platforms.write_text(platforms.read_text().replace('subject: "[A-Za-z0-9_]+"', LONG_IDS))
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", PostsIds), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
        bodies = sorted(r.body for r in server.requests if r.method == "POST")
    assert "107" not in app.people_served(), f"the withdrawn person's profile was served\n{app.describe()}"
    assert app.people_served() == ["101"], app.describe()  # the control: 101's id, written as 101.0
    assert bodies == [b"id=101.0", b"page=2"], bodies  # a page of the listing names no one: sent
    assert not any(secret_name("107") in str(item) for item in result.items), result.items
    denied = [e for e in result.audit if e.get("verdict") == "deny"]
    assert len(denied) == 2 * len(AS_107), result.denies()
    assert {e["reason"] for e in denied} == {"subject.revoked", "subject.ambiguous-url"}, result.denies()
    assert {e.get("subject") for e in denied if e["reason"] == "subject.revoked"} == {"107"}, result.denies()
