"""review22: what the previous reviewers' fixes left.

- a crawl whose start fails (a project's component raises as the engine is built): no ``spider_closed`` comes, and
  the log record factory the crawl put in place stayed, with the dead crawl's filter and its crawler, for the rest
  of the process (and its filter on the root logger's handlers, holding the crawler).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.test import get_crawler

from consentcrawl import personlines
from consentcrawl.personlines import PersonLines
from spiders.microblog import MicroblogSpider
from tests.conftest import consent_settings


class Broken:
    """A project's downloader middleware that cannot be built (its own configuration is wrong)."""

    @classmethod
    def from_crawler(cls, crawler: Any) -> Broken:
        raise RuntimeError("this middleware's own setting is wrong")


@deferred_f_from_coro_f
async def test_a_crawl_whose_start_fails_leaves_no_record_factory_and_no_filter_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = logging.getLogRecordFactory()
    settings = consent_settings(tmp_path)
    settings["DOWNLOADER_MIDDLEWARES"] = {**settings.get("DOWNLOADER_MIDDLEWARES", {}), f"{__name__}.Broken": 543}
    crawler = get_crawler(MicroblogSpider, settings)
    with pytest.raises(RuntimeError, match="own setting is wrong"):
        await crawler.crawl_async()
    assert logging.getLogRecordFactory() is before
    assert personlines._LIVE == []
    lines = PersonLines.install(crawler)  # the failed crawl's own
    assert not [h for h in logging.root.handlers if lines.on_handlers in h.filters]
