"""``ConsentSpider``: a ``scrapy.Spider`` that declares its purpose and turns the add-on on for itself."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

import scrapy
from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings
from scrapy.utils.misc import load_object

from .addon import Addon
from .personlines import PersonLines

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from typing_extensions import Self

logger = logging.getLogger("consentcrawl")


class ConsentSpider(scrapy.Spider):
    """Subclass it like a normal spider and set ``purpose`` (e.g. ``"research"``).

    The purpose may also be given with ``-a purpose=...`` or ``CONSENTCRAWL_PURPOSE``; the spider's wins.
    """

    purpose: ClassVar[str | None] = None

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        """The log line filter goes on before the spider is made: the lines its ``__init__`` writes are checked."""
        PersonLines.install(crawler)
        return super().from_crawler(crawler, *args, **kwargs)

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        addons = settings.getdict("ADDONS")
        ours = [path for path in addons if load_object(path) is Addon]
        if any(addons[path] is not None for path in ours):
            return
        if ours:  # switched off (None: Scrapy's add-on manager skips it): the spider would run with no check at all
            logger.warning("consentcrawl: ADDONS switches %s off; a ConsentSpider runs with it, so it is put back",
                           ours[0] if isinstance(ours[0], str) else f"{ours[0].__module__}.{ours[0].__qualname__}")
        addons[ours[0] if ours else Addon] = 0
        # at spider priority: a runner merging its own (empty) ADDONS must not drop ours
        priority = max(settings.getpriority("ADDONS") or 0, SETTINGS_PRIORITIES["spider"])
        settings.set("ADDONS", addons, priority=priority)
