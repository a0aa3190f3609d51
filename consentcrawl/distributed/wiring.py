"""The distributed parts of one crawler, built when a shared Redis is configured (``CONSENTCRAWL_REDIS_URL`` or
``REDIS_URL``), closed with the spider."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from scrapy import signals

from ..errors import ConfigError
from ..settings import read
from ..tasks import stop_task
from .fetches import SharedFetches
from .refusals import RefusalFeed, profiles_read, publish_profile_read, publish_refusal
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
        self.purpose = config.purpose  #: a profile read for refusals is read for this purpose only
        self.fetches = SharedFetches(shared, config.robots_ttl, config.robots_retry, config.robots_retry_max,
                                     lock_timeout)
        self.spacing = SharedSpacing(shared, config.max_crawl_delay)
        self.refusals = RefusalFeed(shared)
        self._publishing: set[asyncio.Task[None]] = set()
        #: the people this worker let data of through without reading their profile (set by the purge on close)
        self.unread_here: Callable[[], list[tuple[str, str]]] | None = None
        #: of those, the people another worker read the profile of, asked at the close; None: not asked or not known
        self.read_elsewhere: set[tuple[str, str]] | None = None

    def publish_refusal(self, platform: str, subject: str, evidence: dict[str, Any], *, unread: bool = False) -> None:
        """Tell the other workers about a refusal this worker found on a page (or, ``unread``, a person whose linked
        actor it could not read), without holding up the response.

        This worker's own engine applies the refusal at once; the others learn it through Redis, retried while
        Redis is away (meanwhile they deny every request anyway: they cannot confirm the shared state).
        """
        self._send(lambda: publish_refusal(self.shared, platform, subject, evidence, unread=unread),
                   "a refusal found on a page", "the refusal log and this worker's audit log still have it")

    def publish_profile_read(self, platform: str, subject: str) -> None:
        """Tell the other workers that this worker read a page showing the person's profile (for their purge on
        close); one that never hears of it purges what it collected of them: when unsure, erase."""
        self._send(lambda: publish_profile_read(self.shared, platform, subject, self.purpose), "a profile read",
                   "another worker that collected the person purges them at its close")

    def _send(self, publish: Callable[[], Awaitable[Any]], what: str, lost: str) -> None:
        task = asyncio.get_running_loop().create_task(self._publish(publish, what, lost))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, publish: Callable[[], Awaitable[Any]], what: str, lost: str, tries: int = 60) -> None:
        for attempt in range(tries):
            try:
                await publish()
                return
            except SharedStateUnavailable as exc:
                if attempt == 0:
                    logger.error("consentcrawl: cannot tell the other workers about %s (retrying): %s", what, exc)
                await asyncio.sleep(0.5)
        logger.error("consentcrawl: gave up telling the other workers about %s; %s", what, lost)

    @classmethod
    def open(cls, crawler: Crawler, config: ConsentConfig) -> Distributed | None:
        shared = SharedState.from_settings(crawler.settings)
        if shared is None:
            if (crawler.settings.get("CONSENTCRAWL_REDIS_START_KEY")
                    or getattr(getattr(crawler, "spidercls", None), "redis_key", None)):
                # seeds nobody can read: the crawl would end at once, empty and "finished"
                raise ConfigError("seeds from a Redis key need a Redis: set CONSENTCRAWL_REDIS_URL or REDIS_URL",
                                  source="CONSENTCRAWL_REDIS_START_KEY")
            if _shared_queue(crawler.settings.get("SCHEDULER")):
                # the queue's workers would each keep Crawl-delay, refusals and robots.txt for themselves
                raise ConfigError("scrapy-redis's shared queue needs consentcrawl's shared state in a Redis: set "
                                  "REDIS_URL (or CONSENTCRAWL_REDIS_URL); REDIS_HOST and REDIS_PORT are read by "
                                  "scrapy-redis only", source="SCHEDULER")
            return None
        distributed = cls(shared, config, read(crawler.settings, "CONSENTCRAWL_SHARED_LOCK_TIMEOUT"))
        crawler.signals.connect(distributed.close, signal=signals.spider_closed)
        return distributed

    async def close(self) -> None:
        if self._publishing:  # refusals found just before the close still reach the other workers
            await asyncio.wait(set(self._publishing), timeout=5)
        for task in list(self._publishing):  # still retrying: the refusal log and the audit log have it
            await stop_task(task, "telling the other workers about a refusal or a profile read")
        if self.unread_here is not None:  # for the purge on close: whose profile another worker read
            try:
                self.read_elsewhere = await profiles_read(self.shared, self.unread_here(), self.purpose)
            except SharedStateUnavailable:
                self.read_elsewhere = None
        await self.refusals.settle()  # for the purge on close: who the cluster says refused, read while it is open
        await self.refusals.stop()
        await self.shared.close()


def _shared_queue(scheduler: Any) -> bool:
    """Whether ``SCHEDULER`` is scrapy-redis's (consentcrawl's shared queue is one): a queue other workers share."""
    try:
        from scrapy.utils.misc import load_object
        from scrapy_redis.scheduler import Scheduler  # type: ignore[import-untyped]

        cls = load_object(scheduler) if isinstance(scheduler, str) else scheduler
    except Exception:  # noqa: BLE001 - no scrapy-redis, or a SCHEDULER Scrapy itself reports as it loads it
        return False
    return isinstance(cls, type) and issubclass(cls, Scheduler)
