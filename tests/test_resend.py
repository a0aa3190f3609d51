"""A request the connection pool would send again by itself is sent again only with a new decision.

Twisted's connection pool, which Scrapy's HTTP/1.1 handler uses, resends an idempotent request on a new connection
when a kept-alive connection it reused fails before an answer (the server closed it meanwhile): a second send
nobody decided, and that no audit line records. Here the server withdraws the person's consent as it reads the
request and closes the connection without answering; the resend would carry the withdrawn person's request to the
server. Judged by the server's own log: the person is received once, before the withdrawal, and every time the
server received their page the audit log holds a send-time allow made for it.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.messages import LoggedRequest, Response
from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, ListLogic, crawl, make_spider, people_settings
from tests.test_store_plugin import ChangingStore


class DropsAfterWithdrawing(LenientPeople):
    """The people site; the first request for 101's profile withdraws 101's consent in the crawl's store, then the
    connection is closed without an answer (a server restarted, a load balancer dropping an idle connection)."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = threading.Event()

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        response = super().__call__(request, headers)
        if self.served[-1].person == "101" and not self.dropped.is_set():
            live = ChangingStore.live
            assert live is not None
            live.withdraw("101", datetime.now(timezone.utc))
            self.dropped.set()
            return None
        return response


@pytest.mark.parametrize("handler", [
    None,  # Scrapy's HTTP/1.1 handler, the default: Twisted's pool resent
    "scrapy.core.downloader.handlers._aiohttp.AiohttpDownloadHandler",  # aiohttp's session resent too
    "scrapy.core.downloader.handlers._httpx.HttpxDownloadHandler",  # httpx does not
])
@deferred_f_from_coro_f
async def test_a_request_the_handler_would_resend_is_decided_again_and_a_withdrawal_stops_it(
        handler: str | None, tmp_path: Path, monkeypatch: Any) -> None:
    """Scrapy's handlers as the fallback. Twisted's pool and aiohttp's ``ClientSession`` resend an idempotent
    request once when a reused connection fails before an answer (RFC 9112 9.3.1.1), a send nobody decided."""
    settings = people_settings(tmp_path, CONCURRENT_REQUESTS=1, RETRY_ENABLED=True, RETRY_TIMES=2)
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = "tests.test_store_plugin.ChangingStore"
    if handler is not None:
        settings["CONSENTCRAWL_HTTP_HANDLER"] = handler
    app = DropsAfterWithdrawing()
    # 102 first, so that the connection is kept alive and reused for 101 (only a reused connection is resent)
    urls = [f"http://{HOST}/u/102", f"http://{HOST}/u/101", f"http://{HOST}/u/102?page=2"]
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert app.dropped.is_set(), f"control: 101 was never asked for\n{app.describe()}"
    assert len(app.times_served("102")) == 2, f"control: the crawl went on\n{app.describe()}"
    assert len(app.times_served("101")) == 1, f"101 sent again after withdrawing\n{app.describe()}"
    sends = result.audit_for("/u/101", phase="request", verdict="allow")
    assert len(sends) >= len(app.times_served("101")), "a send of 101 without a send-time decision"
    assert any(e["reason"] == "subject.revoked" for e in result.audit if e.get("subject") == "101"), \
        "the retry was not decided again"
