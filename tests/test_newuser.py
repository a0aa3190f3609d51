"""What a new user meets walking the README's three ways of use: a ``ConsentSpider`` in a project of their own, a
crawl run in-process with a spider argument, and the add-on plugged into an existing project. Each test is a
case that, before its fix, did something else than the docs say (a crawl for another purpose than asked for, a
plain spider running unguarded without a word, an error naming the wrong place)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from spiders.microblog import MicroblogSpider
from tests.conftest import consent_settings, run_crawl


@deferred_f_from_coro_f
async def test_a_purpose_given_to_a_crawler_built_before_its_spider_is_not_silently_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, site: object,
) -> None:
    """``get_crawler(MicroblogSpider, ...)`` builds the crawl's components (and the runtime with its purpose) before
    the spider exists; ``crawler.crawl(purpose="archiving")`` then made a spider that says archiving while every
    decision, the audit log and the items' provenance said research (the class attribute). It must refuse to start,
    with one line naming both, before anything is fetched."""
    settings = consent_settings(tmp_path)
    with caplog.at_level(logging.INFO), LocalServer(site) as server:  # type: ignore[arg-type]
        result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch,
                                 purpose="archiving")
        served = [r.path for r in server.requests]
    assert served == [], served
    assert result.items == []
    assert result.stats["finish_reason"] == "consentcrawl_config_error"
    assert not [e for e in result.audit if e.get("verdict") == "allow"]
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1, critical
    assert "the spider's purpose attribute: the spider asks for purpose 'archiving'" in critical[0]
    assert "set up for 'research'" in critical[0]


@deferred_f_from_coro_f
async def test_the_same_purpose_given_as_a_spider_argument_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site: object,
) -> None:
    """Control: the argument that agrees with the crawl's purpose does not stop it."""
    with LocalServer(site) as server:  # type: ignore[arg-type]
        result = await run_crawl(MicroblogSpider, consent_settings(tmp_path), proxy=server.proxy,
                                 monkeypatch=monkeypatch, purpose="research")
    assert result.stats["finish_reason"] == "finished"
    assert result.items and {e["purpose"] for e in result.audit} == {"research"}
