"""The distributed parts of one crawler, built when a shared Redis is configured (``CONSENTCRAWL_REDIS_URL`` or
``REDIS_URL``), closed with the spider."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from scrapy import signals

from ..settings import read
from ..tasks import stop_task
from .fetches import SharedFetches
from .refusals import RefusalFeed, publish_refusal
from .shared import SharedState, SharedStateUnavailable
from .spacing import SharedSpacing

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from ..config import ConsentConfig

logger = logging.getLogger(__name__)


class Distributed:
    """The shared fetches, the shared schedule and the refusals feed of one worker."""

    def __init__(self, shared: SharedState, config: ConsentConfig, lock_timeout: float) -> None:
        self.shared = shared
        self.fetches = SharedFetches(shared, config.robots_ttl, config.robots_retry, config.robots_retry_max,
                                     lock_timeout)
        self.spacing = SharedSpacing(shared)
        self.refusals = RefusalFeed(shared)
        self._publishing: set[asyncio.Task[None]] = set()

    def publish_refusal(self, platform: str, subject: str, evidence: dict[str, Any], *, unread: bool = False) -> None:
        """Tell the other workers about a refusal this worker found on a page (or, ``unread``, a person whose linked
        actor it could not read), without holding up the response.

        This worker's own engine applies the refusal at once; the others learn it through Redis, retried while
        Redis is away (meanwhile they deny every request anyway: they cannot confirm the shared state).
        """
        task = asyncio.get_running_loop().create_task(self._publish(platform, subject, evidence, unread))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, platform: str, subject: str, evidence: dict[str, Any], unread: bool,
                       tries: int = 60) -> None:
        for attempt in range(tries):
            try:
                await publish_refusal(self.shared, platform, subject, evidence, unread=unread)
                return
            except SharedStateUnavailable as exc:
                if attempt == 0:
                    logger.error("consentcrawl: cannot tell the other workers about a refusal found on a page "
                                 "(retrying): %s", exc)
                await asyncio.sleep(0.5)
        logger.error("consentcrawl: gave up telling the other workers about a refusal found on a page; the "
                     "refusal log and this worker's audit log still have it")

    @classmethod
    def open(cls, crawler: Crawler, config: ConsentConfig) -> Distributed | None:
        shared = SharedState.from_settings(crawler.settings)
        if shared is None:
            return None
        distributed = cls(shared, config, read(crawler.settings, "CONSENTCRAWL_SHARED_LOCK_TIMEOUT"))
        crawler.signals.connect(distributed.close, signal=signals.spider_closed)
        return distributed

    async def close(self) -> None:
        if self._publishing:  # refusals found just before the close still reach the other workers
            await asyncio.wait(set(self._publishing), timeout=5)
        for task in list(self._publishing):  # still retrying: the refusal log and the audit log have it
            await stop_task(task, "telling the other workers about a refusal")
        await self.refusals.settle()  # for the purge on close: who the cluster says refused, read while it is open
        await self.refusals.stop()
        await self.shared.close()
