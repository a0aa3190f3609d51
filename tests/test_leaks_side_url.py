"""A downloader middleware that changes the URL of one of consentcrawl's own side requests (robots.txt).

consentcrawl recognises its side requests by identity, and a side request is not decided like a spider's: only
each hop is asked whether it may be fetched. A project's downloader middleware holds the very request object, so
it can call Scrapy's private ``Request._set_url`` on it (``request.replace`` makes a new, unrecognised request).
Each test is judged by the lenient site's own log: a person's page is never fetched as a side request, whoever
the person, and one the crawl may not collect is never fetched at all. Tests marked "Fixed" failed on main
(40d4575); "PIN" passed there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.sidefetching import SideFetching
from consentcrawl_demo.server import LocalServer
from tests import lenient
from tests.lenient import KINDS, ListLogic, crawl, make_spider, people_settings

BASE = "http://people.example"
#: where the middleware sends robots.txt: a person who never granted anything, and an authorized one (101),
#: whose page is still not to be fetched as a site's file (it would be read without their request's checks)
TARGETS = {"denied": f"{BASE}/u/107", "authorized": f"{BASE}/u/101"}


class SetsRobotsUrl:
    """A downloader middleware that points every robots.txt request at ``TARGET`` with ``Request._set_url``."""

    target = ""

    def process_request(self, request: scrapy.Request, spider: Any = None) -> None:
        if request.url.endswith("/robots.txt"):
            request._set_url(self.target)


class ReplacesRobotsRequest(SetsRobotsUrl):
    """The same through the public API: a new request (``request.replace``) instead of the one we made."""

    def process_request(self, request: scrapy.Request, spider: Any = None) -> scrapy.Request | None:  # type: ignore[override]
        if request.url.endswith("/robots.txt"):
            return request.replace(url=self.target)
        return None


Logic = type("OnePage", (ListLogic,), {"urls": [f"{BASE}/u/102"], "follow_links": False})


async def _crawl(kind: str, middleware: type[SetsRobotsUrl], target: str, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> tuple[lenient.LenientPeople, Any]:
    monkeypatch.setattr(middleware, "target", target)
    app = lenient.LenientPeople()
    settings = people_settings(tmp_path, DOWNLOADER_MIDDLEWARES={f"{__name__}.{middleware.__name__}": 543})
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, Logic), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    return app, result


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", TARGETS)
@deferred_f_from_coro_f
async def test_set_url_on_the_robots_request_does_not_fetch_a_persons_page(
    kind: str, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PIN. ``_set_url`` in ``process_request`` changes our robots.txt request before it reaches the download
    handler, which decides each of our side requests again at send time with the URL it has then: the person's
    page is refused (it is no site file), the origin's robots.txt is unknown, and nothing is fetched from it."""
    app, result = await _crawl(kind, SetsRobotsUrl, TARGETS[target], tmp_path, monkeypatch)
    assert app.people_served() == [], app.describe()
    assert any(e.get("verdict") == "deny" and (e.get("url") or "").endswith(TARGETS[target][len(BASE):])
               for e in result.audit), result.denies()


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_replaced_robots_request_is_decided_as_a_spiders_request(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PIN. A middleware that answers our robots.txt request with a new request for a person's page: 107 (who never
    granted anything) is not fetched. The new request is not ours and is never sent as robots.txt: a side request
    goes past the slot queues (sidedownload.py), where another request in its place fails the fetch, and the origin,
    its robots.txt unreachable, is denied (the new request was downloaded through the engine, and denied at send
    time, when robots.txt went through the slots)."""
    app, result = await _crawl(kind, ReplacesRobotsRequest, TARGETS["denied"], tmp_path, monkeypatch)
    assert "107" not in app.people_served(), app.describe()
    assert result.denies() == [("request", f"{BASE}/u/102", "robots.unreachable")], result.denies()
    assert [s.kind for s in app.served] == [], app.describe()


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_side_request_changed_while_its_hop_is_decided_is_not_sent(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. The send-time check of a side request awaits (the audit's group write), and code the event loop
    runs meanwhile may hold the request: here the URL is changed with ``_set_url`` just as the check of the
    robots.txt URL returns. The handler sent the request as it then was, 107's profile, unchecked. Now it sends
    only the URL it decided, and a request that changed is refused."""
    original = SideFetching.may_send_own

    async def changed_while_deciding(self: SideFetching, url: str) -> str | None:
        refused = await original(self, url)
        for request in list(self.robots.own):
            if request.url == url and url.endswith("/robots.txt"):
                request._set_url(TARGETS["denied"])
        return refused

    monkeypatch.setattr(SideFetching, "may_send_own", changed_while_deciding)
    app = lenient.LenientPeople()
    with LocalServer(app) as server:
        await crawl(make_spider(kind, Logic), people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert "107" not in app.people_served(), app.describe()
    assert not [s for s in app.served if s.kind == "robots"], app.describe()
