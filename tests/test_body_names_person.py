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
