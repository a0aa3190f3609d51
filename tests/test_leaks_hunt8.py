"""Fresh-eyes leak hunt (hunt8) against the purge of people refused mid-crawl, unreadable request parts, and the
site signals' case shortcut (``CaseSight``). Each test is a real crawl judged by the server's own log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings

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
