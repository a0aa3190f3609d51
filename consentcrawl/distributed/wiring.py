"""The distributed parts of one crawler, built when a shared Redis is configured (``CONSENTCRAWL_REDIS_URL`` or
``REDIS_URL``), closed with the spider."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy import signals

from ..settings import read
from .fetches import SharedFetches
from .refusals import RefusalFeed
from .shared import SharedState
from .spacing import SharedSpacing

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from ..config import ConsentConfig


class Distributed:
    """The shared fetches, the shared schedule and the refusals feed of one worker."""

    def __init__(self, shared: SharedState, config: ConsentConfig, lock_timeout: float) -> None:
        self.shared = shared
        self.fetches = SharedFetches(shared, config.robots_ttl, config.robots_retry, config.robots_retry_max,
                                     lock_timeout)
        self.spacing = SharedSpacing(shared)
        self.refusals = RefusalFeed(shared)

    @classmethod
    def open(cls, crawler: Crawler, config: ConsentConfig) -> Distributed | None:
        shared = SharedState.from_settings(crawler.settings)
        if shared is None:
            return None
        distributed = cls(shared, config, read(crawler.settings, "CONSENTCRAWL_SHARED_LOCK_TIMEOUT"))
        crawler.signals.connect(distributed.close, signal=signals.spider_closed)
        return distributed

    async def close(self) -> None:
        await self.refusals.stop()
        await self.shared.close()
