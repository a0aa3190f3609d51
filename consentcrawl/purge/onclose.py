"""``CONSENTCRAWL_PURGE_ON_CLOSE``: a crawl erases, from its own outputs, the people who withdrew while it ran.

Who: every person a decision of this crawl found withdrawn (``subject.revoked``), and every person whose data it
let through (an allow naming them) that the store says, when the spider closes, has withdrawn since. The second
look is made in ``spider_closed``, while the store is still open (remote stores close at ``engine_stopped``).

What and when: the files the crawl's feeds wrote (as ``feed_slot_closed`` reports their URIs; local files
only), the targets ``CONSENTCRAWL_PURGE_TARGETS`` names (an SQLite database a pipeline writes, say) and its HTTP
cache (``HTTPCACHE_DIR/<spider>`` when ``HTTPCACHE_ENABLED`` with Scrapy's filesystem storage), purged at
``engine_stopped``: Scrapy's ``FeedExporter`` finishes and closes its files in ``spider_closed``, and the engine
stops only after every ``spider_closed`` handler is done, so nothing is still writing them. The receipts go into
the crawl's audit log (``CONSENTCRAWL_AUDIT_LOG``), reopened for them after the crawl closed it.

At INFO the log says how many people and records; their ids only at DEBUG. A target that could not be purged is
an ERROR naming it, and ``consentcrawl/purge/failed`` counts it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from scrapy import signals
from scrapy.exceptions import NotConfigured

from ..decision import Decision
from ..runtime import get_runtime
from ..settings import read
from .common import Selection
from .run import purge, receipts, write_receipts

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from typing_extensions import Self

__all__ = ["PurgeOnClose"]

logger = logging.getLogger("consentcrawl")

FILESYSTEM_STORAGE = "scrapy.extensions.httpcache.FilesystemCacheStorage"


class PurgeOnClose:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.runtime = get_runtime(crawler)
        self.withdrawn: dict[tuple[str, str], None] = {}
        self.collected: dict[tuple[str, str], None] = {}
        self.feeds: list[Path] = []
        self.spider_name: str | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if get_runtime(crawler) is None:  # a configuration error (reported once, by the runtime): no crawl
            raise NotConfigured
        if not read(crawler.settings, "CONSENTCRAWL_PURGE_ON_CLOSE"):
            raise NotConfigured
        ext = cls(crawler)
        runtime = ext.runtime
        assert runtime is not None
        runtime.watch = ext.seen
        crawler.signals.connect(ext.feed_slot_closed, signal=signals.feed_slot_closed)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(ext.engine_stopped, signal=signals.engine_stopped)
        return ext

    def seen(self, decision: Decision) -> None:
        """Every decision the crawl records (``DecisionRecording.watch``)."""
        if decision.subject is None or decision.platform is None:
            return
        key = (decision.platform, decision.subject)
        if decision.reason == "subject.revoked":
            self.withdrawn[key] = None
        elif decision.allowed:
            self.collected[key] = None

    def feed_slot_closed(self, slot: Any) -> None:
        uri = str(getattr(slot, "uri", "") or "")
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            self.feeds.append(Path(unquote(parsed.path)))
        elif parsed.scheme == "" or len(parsed.scheme) == 1:  # a path (a Windows drive letter is no scheme)
            self.feeds.append(Path(uri))
        else:
            logger.warning("consentcrawl: purge on close: the feed at a %s:// URI is not a local file and is not "
                           "purged", parsed.scheme)
            self.crawler.stats.inc_value("consentcrawl/purge/failed")  # type: ignore[union-attr]

    async def spider_closed(self, spider: Any = None, reason: str = "") -> None:
        self.spider_name = getattr(spider, "name", None) or getattr(self.crawler.spider, "name", None)
        runtime = self.runtime
        assert runtime is not None
        now = runtime.config.now()
        for platform, subject in [k for k in self.collected if k not in self.withdrawn]:
            try:
                decision = await runtime.decider.decide_subject(platform, subject, runtime.config.purpose, now)
            except Exception as exc:  # noqa: BLE001 - cannot tell: not purged, and said so (ids only at DEBUG)
                logger.error("consentcrawl: purge on close: could not ask the store whether a person withdrew "
                             "(%s); their data is not purged", type(exc).__name__)
                logger.debug("consentcrawl: purge on close: not asked about %s:%s", platform, subject)
                self.crawler.stats.inc_value("consentcrawl/purge/failed")  # type: ignore[union-attr]
                continue
            if decision.reason == "subject.revoked":
                self.withdrawn[(platform, subject)] = None

    def engine_stopped(self) -> None:
        runtime = self.runtime
        stats = self.crawler.stats
        assert runtime is not None and stats is not None
        if not self.withdrawn:
            return
        targets = list(dict.fromkeys([*self.feeds, *map(Path, read(self.crawler.settings,
                                                                   "CONSENTCRAWL_PURGE_TARGETS"))]))
        settings = self.crawler.settings
        if settings.getbool("HTTPCACHE_ENABLED"):
            storage = settings.get("HTTPCACHE_STORAGE")
            storage = storage if isinstance(storage, str) else f"{storage.__module__}.{storage.__qualname__}"
            if storage == FILESYSTEM_STORAGE:
                from scrapy.utils.project import data_path

                cache = Path(data_path(settings["HTTPCACHE_DIR"]), self.spider_name or "")
                if cache.is_dir():
                    targets.append(cache)
            else:
                logger.error("consentcrawl: purge on close: HTTPCACHE_STORAGE %s is not the filesystem storage; "
                             "its entries are not purged", storage)
                stats.inc_value("consentcrawl/purge/failed")
        config = runtime.config
        selection = Selection(config.platforms, subject_field=config.subject_field,
                              provenance_field=config.provenance_field)
        people = [selection.add_person(platform, subject) for platform, subject in self.withdrawn]
        run = purge(targets, selection, keep=[Path(config.audit_log)] if config.audit_log else [])
        removed = sum(r.count for r in run.results)
        stats.inc_value("consentcrawl/purge/removed", removed)
        stats.inc_value("consentcrawl/purge/people", len(people))
        logger.info("consentcrawl: purge on close: %d record(s) of %d person(s) who withdrew during the crawl "
                    "removed from %d output(s)", removed, len(people), len(run.results))
        logger.debug("consentcrawl: purge on close: %s", ", ".join(people))
        for path, why in run.problems():
            logger.error("consentcrawl: purge on close: %s could not be purged: %s", path, why)
            stats.inc_value("consentcrawl/purge/failed")
        if not config.audit_log:
            return
        from ..audit.log import AuditLog

        try:
            log = AuditLog(config.audit_log, sync=config.audit_sync,
                           header={"writer": "consentcrawl purge on close"})
            now = datetime.now(timezone.utc)
            write_receipts(log, receipts(run, "withdrawn-during-crawl", people), now)
            log.close()
        except Exception as exc:  # noqa: BLE001 - ConfigError, AuditUnavailable: the data is gone, the proof is not
            logger.error("consentcrawl: purge on close: the receipts could not be written to the audit log: %s", exc)
            stats.inc_value("consentcrawl/purge/failed")

