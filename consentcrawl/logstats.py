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
    """``allowed 120, denied 40 (subject/no-authorization 30, robots/disallowed 10)``.

    In report mode only robots denies are enforced; the rest is what enforce mode would have dropped:
    ``allowed 150, denied 10 (robots/disallowed 10), would deny 30 (subject/no-authorization 30)``.
    """
    allowed = stats.get("consentcrawl/allowed", 0)
    denied = {k[len("consentcrawl/denied/"):]: v for k, v in stats.items() if k.startswith("consentcrawl/denied/")}
    would: dict[str, int] = {}
    report = stats.get("consentcrawl/mode") == "report"
    if report:
        would = {k: v for k, v in denied.items() if not k.startswith("robots/")}
        denied = {k: v for k, v in denied.items() if k.startswith("robots/")}
    line = f"allowed {allowed}, " + _part("denied", denied)
    if report:
        line += ", " + _part("would deny", would)
    dropped = stats.get("consentcrawl/items/dropped", 0)
    kept = stats.get("consentcrawl/items/kept", 0)
    if dropped or kept:
        line += f"; items kept {kept}, {'would drop' if report else 'dropped'} {dropped}"
    return line


def _part(label: str, counts: dict[str, int]) -> str:
    detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{label} {sum(counts.values())}" + (f" ({detail})" if detail else "")


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
