"""``consentcrawl.Addon``: one line in ``ADDONS`` makes an existing crawler consent-aware."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .logstats import ConsentLogStats
from .middlewares import (
    ConsentDownloaderMiddleware,
    ConsentResponseMiddleware,
    ConsentScheduleGuard,
    ConsentSpiderMiddleware,
)
from .pipelines import ConsentGuardPipeline

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

logger = logging.getLogger("consentcrawl")

#: request phase: before every built-in downloader middleware, so before the HTTP cache (900) can answer
REQUEST_PRIORITY = 10
#: response phase: process_response runs in decreasing order, so above HttpCacheMiddleware (900) and
#: HttpCompression (590), i.e. before the cache stores anything
RESPONSE_PRIORITY = 950
#: spider middleware nearest the engine: it sees the output of every other spider middleware
SPIDER_PRIORITY = 5
#: guard pipeline first
PIPELINE_PRIORITY = -1000


class Addon:
    """Installs the consent components and switches Scrapy's own robots.txt handling off (ours replaces it)."""

    def update_settings(self, settings: BaseSettings) -> None:
        settings.setdefault_in_component_priority_dict(
            "DOWNLOADER_MIDDLEWARES", ConsentDownloaderMiddleware, REQUEST_PRIORITY)
        settings.setdefault_in_component_priority_dict(
            "DOWNLOADER_MIDDLEWARES", ConsentResponseMiddleware, RESPONSE_PRIORITY)
        settings.setdefault_in_component_priority_dict("SPIDER_MIDDLEWARES", ConsentSpiderMiddleware, SPIDER_PRIORITY)
        settings.setdefault_in_component_priority_dict("ITEM_PIPELINES", ConsentGuardPipeline, PIPELINE_PRIORITY)
        settings.setdefault_in_component_priority_dict("EXTENSIONS", ConsentScheduleGuard, 0)
        settings.setdefault_in_component_priority_dict("EXTENSIONS", ConsentLogStats, 0)
        if settings.getbool("ROBOTSTXT_OBEY"):
            logger.info("consentcrawl: ROBOTSTXT_OBEY switched off; consentcrawl's robots stage replaces "
                        "Scrapy's RobotsTxtMiddleware (which fails open on unreachable robots.txt)")
        settings.set("ROBOTSTXT_OBEY", False, priority="addon")
