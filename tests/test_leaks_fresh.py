"""Leaks looked for by a fresh-eyes hunt on main (issue 11's promise, issues 13, 14 and 16): each a real crawl of a
local server, judged by the server's own request log and by what reached the spider, the items and the log."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main as cli_main
from consentcrawl_demo.fediverse import PEOPLE, FediverseSite
from consentcrawl_demo.server import LocalServer, LoggedRequest
from consentcrawl_demo.server import Response as Served
from tests.conftest import run_crawl
from tests.lenient import LenientPeople, Robots, people_settings, person_of_url, secret_name
from tests.redis_server import RedisServer
from tests.test_distributed import Workers, await_until, grant, push_seeds, worker_settings
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
