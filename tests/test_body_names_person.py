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
