"""What one worker fetched for the cluster (robots.txt, a site's signal files) is reused by another only where that
worker could have fetched it itself: every redirect hop is asked of its own checks again, and the fetch is shared
only between workers that send the same User-Agent. Real crawls, one after the other, on one real ``redis-server``,
judged by the platform server's own log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, ListLogic, Robots, crawl, make_spider, people_settings
from tests.redis_server import RedisServer

SITE = "site.example"  #: a site that is no platform: only its robots.txt and signal files decide


class OnePage(ListLogic):
    follow_links = False

    async def start(self) -> Any:
        import scrapy

        yield scrapy.Request(f"http://{SITE}/page?by={self.settings.get('WHO')}", callback=self.parse)


def _settings(tmp_path: Path, redis_server: RedisServer, who: str, purpose: str) -> dict[str, Any]:
    (tmp_path / who).mkdir()
    return people_settings(tmp_path / who, None, CONSENTCRAWL_REDIS_URL=redis_server.url, CONSENTCRAWL_PURPOSE=purpose,
                           CONSENTCRAWL_REDIS_TIMEOUT=0.5, WHO=who)


@deferred_f_from_coro_f
async def test_a_shared_robots_fetch_is_not_reused_through_a_redirect_the_other_worker_may_not_follow(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """site.example's robots.txt redirects to a page of the people platform, whose terms allow research only.
    Worker A (research) may follow that hop, and publishes what it got (a 404: no robots.txt, everything
    allowed). Worker B (archiving) would have refused the hop (the platform's terms) and found no robots.txt
    it could read: the site unreachable, nothing fetched. It used to take A's result as it was, and fetched the
    site's page under it. Now B asks each hop of its own checks first."""
    app = LenientPeople(robots={SITE: Robots(location=f"http://{HOST}/about")})
    spider = make_spider("ADDONS", OnePage)
    with LocalServer(app) as server:
        first = await crawl(spider, _settings(tmp_path, redis_server, "a", "research"), proxy=server.proxy,
                            monkeypatch=monkeypatch)
        second = await crawl(spider, _settings(tmp_path, redis_server, "b", "archiving"), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    targets = [s.target for s in app.served]
    assert any(t.endswith("/page?by=a") for t in targets), (app.describe(), first.stats, first.audit[:3])  # control
    assert not [t for t in targets if t.endswith("/page?by=b")], app.describe()
    assert len(app.robots_fetches()) == 1, app.describe()  # B fetched no robots.txt itself: it reused A's
    assert first.stats.get("consentcrawl/robots/unreachable") is None, first.stats
    assert second.stats.get("consentcrawl/robots/unreachable"), second.stats


class BlocksBotA(LenientPeople):
    """A server that answers robots.txt 403 to ``BotA`` (its firewall's bot list) and rules to everyone else."""

    def _answer(self, request: Any, path: str, kind: str, person: str | None) -> tuple[str, Any]:
        if kind == "robots":
            agent = dict((k.lower(), v) for k, v in request.headers).get("user-agent", "")
            robots = Robots(status=403, body="blocked\n") if "BotA" in agent else Robots(body="User-agent: *\n"
                                                                                             "Disallow: /\n")
            return kind, robots.response()
        return super()._answer(request, path, kind, person)


@deferred_f_from_coro_f
async def test_a_shared_robots_fetch_is_not_reused_by_a_worker_sending_another_user_agent(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server answers robots.txt 403 to BotA (no robots.txt: everything allowed, RFC 9309) and ``Disallow: /``
    to BotB. Worker A (BotA) publishes its 403; worker B (BotB) used to read it as its own and fetch the page its
    robots.txt disallows. Now a shared fetch is keyed by the User-Agent sent too: B fetches its own, and obeys it."""
    app = BlocksBotA(robots={SITE: Robots()})
    spider = make_spider("ADDONS", OnePage)
    with LocalServer(app) as server:
        await crawl(spider, {**_settings(tmp_path, redis_server, "a", "research"), "USER_AGENT": "BotA/1"},
                    proxy=server.proxy, monkeypatch=monkeypatch)
        await crawl(spider, {**_settings(tmp_path, redis_server, "b", "research"), "USER_AGENT": "BotB/1"},
                    proxy=server.proxy, monkeypatch=monkeypatch)
    targets = [s.target for s in app.served]
    assert any(t.endswith("/page?by=a") for t in targets), app.describe()  # control: A fetched the page
    assert not [t for t in targets if t.endswith("/page?by=b")], app.describe()
    assert len(app.robots_fetches()) == 2, app.describe()


@deferred_f_from_coro_f
async def test_a_shared_robots_fetch_is_keyed_by_the_user_agent_default_request_headers_send(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As above, with each worker's User-Agent in ``DEFAULT_REQUEST_HEADERS`` (Scrapy's ``DefaultHeadersMiddleware``
    puts it on the request before ``UserAgentMiddleware``, so it is the one sent) and ``USER_AGENT`` left as it is:
    B used to take A's 403 as its own (both keyed by the same ``USER_AGENT``) and fetch the page its robots.txt
    disallows."""
    app = BlocksBotA(robots={SITE: Robots()})
    spider = make_spider("ADDONS", OnePage)
    with LocalServer(app) as server:
        await crawl(spider, {**_settings(tmp_path, redis_server, "a", "research"),
                             "DEFAULT_REQUEST_HEADERS": {"User-Agent": "BotA/1"}},
                    proxy=server.proxy, monkeypatch=monkeypatch)
        await crawl(spider, {**_settings(tmp_path, redis_server, "b", "research"),
                             "DEFAULT_REQUEST_HEADERS": {"User-Agent": "BotB/1"}},
                    proxy=server.proxy, monkeypatch=monkeypatch)
    targets = [s.target for s in app.served]
    assert any(t.endswith("/page?by=a") for t in targets), app.describe()  # control: A fetched the page
    assert not [t for t in targets if t.endswith("/page?by=b")], app.describe()
    assert len(app.robots_fetches()) == 2, app.describe()
