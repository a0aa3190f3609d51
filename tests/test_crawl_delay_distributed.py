"""A ``Crawl-delay`` in a distributed crawl holds at the server, counted from the end of one fetch from the origin to
the start of the next, as in one process (:class:`consentcrawl.handler.OriginSpacing`). Real crawls on a real
``redis-server``, judged by the platform server's own log."""

from __future__ import annotations

import dataclasses
import itertools
import time
from pathlib import Path
from typing import Any

from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import LenientPeople, Robots, crawl, make_spider, people_settings
from tests.redis_server import RedisServer
from tests.test_hunt import SlotPerRequestLogic


@dataclasses.dataclass
class LateAndSlowFirstProfile(LenientPeople):
    """A server the first profile request reaches 0.4 s after it was sent (a new connection through a slow proxy),
    and that takes another 0.8 s to answer it."""

    def __call__(self, request: Any, headers: dict[str, str]) -> Any:
        if request.path != "/u/101":
            return super().__call__(request, headers)
        time.sleep(0.4)
        answer = super().__call__(dataclasses.replace(request, time=time.time()), headers)
        time.sleep(0.8)
        return answer


@deferred_f_from_coro_f
async def test_a_distributed_crawl_keeps_the_delay_from_the_end_of_a_slow_fetch(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: Any,
) -> None:
    """A worker of a distributed crawl sent the next profile while the first one's fetch was still going (its turn
    counted from the first one's *send*): the server, which the first request reached late, saw the next one 0.6 s
    after it under ``Crawl-delay: 1``. The worker now fetches one request at a time from an origin with a delay, as
    one process does, so the next one starts a delay after the previous one's response came back."""
    app = LateAndSlowFirstProfile(default_robots=Robots(crawl_delay=1))
    settings = people_settings(tmp_path, CONSENTCRAWL_REDIS_URL=redis_server.url)
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", SlotPerRequestLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, follow_links=False)
    times = sorted(s.time for s in app.served if s.kind == "profile")
    assert len(times) == 3, (app.describe(), result.stats)
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1.0, f"profile fetches {gaps} s apart at the server under Crawl-delay: 1\n{app.describe()}"
