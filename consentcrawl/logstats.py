"""A periodic log line with the consent counts, next to Scrapy's own "Crawled N pages" line."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import create_looping_call

from .runtime import get_runtime

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from typing_extensions import Self

logger = logging.getLogger("consentcrawl")


def format_counts(stats: dict[str, Any]) -> str:
    """``allowed 120, denied 40 (subject/no-authorization 30, robots/disallowed 10)``."""
    allowed = stats.get("consentcrawl/allowed", 0)
    denied = {k[len("consentcrawl/denied/"):]: v for k, v in stats.items() if k.startswith("consentcrawl/denied/")}
    total = sum(denied.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(denied.items(), key=lambda kv: (-kv[1], kv[0])))
    line = f"allowed {allowed}, denied {total}"
    if detail:
        line += f" ({detail})"
    dropped = stats.get("consentcrawl/items/dropped", 0)
    kept = stats.get("consentcrawl/items/kept", 0)
    if dropped or kept:
        line += f"; items kept {kept}, dropped {dropped}"
    return line


class ConsentLogStats:
    def __init__(self, crawler: Crawler, interval: float) -> None:
        self.crawler = crawler
        self.interval = interval
        self.task: Any = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        runtime = get_runtime(crawler)
        interval = runtime.config.logstats_interval if runtime else 0
        if not interval:
            raise NotConfigured
        ext = cls(crawler, interval)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def log(self) -> None:
        assert self.crawler.stats is not None
        logger.info("consentcrawl: %s", format_counts(self.crawler.stats.get_stats()))

    def spider_opened(self, spider: Any = None) -> None:
        self.task = create_looping_call(self.log)
        self.task.start(self.interval, now=False)

    def spider_closed(self, spider: Any = None, reason: str = "") -> None:
        if self.task is not None and self.task.running:
            self.task.stop()
        self.log()
