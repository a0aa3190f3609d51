"""Purge on close on a platform whose profile pages no template describes.

The purge on close erases everyone whose data the crawl let through and whose profile page it never read for
refusals. On a platform without ``profiles`` no URL is anyone's profile page, so no one's profile is ever read and
every person collected there would be erased at the close, whatever they said: the crawl cannot tell whose a page
is. A crawl with ``CONSENTCRAWL_PURGE_ON_CLOSE`` and such a platform does not start (a configuration error naming
the setting and the platform's file and line), rather than erase all of them silently; judged by the test server's
request log and the crawl's own finish reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.conftest import run_crawl
from tests.lenient import LenientPeople, people_settings


class Pages(scrapy.Spider):
    """101's page; the item names him by its subject field (the platform's URLs name no one)."""

    name = "pages"
    custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}, "CONCURRENT_REQUESTS": 1}

    async def start(self) -> Any:
        yield scrapy.Request("http://people.example/u/101", callback=self.parse)

    def parse(self, response: Any) -> Iterator[Any]:
        yield {"subject": "101", "platform": "people"}


def without_templates(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    tmp_path.mkdir(exist_ok=True)
    settings = people_settings(tmp_path, **overrides)
    platforms = Path(settings["CONSENTCRAWL_PLATFORMS"])
    text = platforms.read_text()
    kept = [line for line in text.splitlines() if not line.lstrip().startswith("profiles:")]
    assert len(kept) == len(text.splitlines()) - 1
    platforms.write_text("\n".join(kept) + "\n")
    return settings


@deferred_f_from_coro_f
async def test_purge_on_close_with_a_platform_without_profile_templates_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    out = tmp_path / "out"
    feeds = {str(out / "items.jsonl"): {"format": "jsonlines"}}
    with LocalServer(LenientPeople()) as server:
        # control: without the purge the configuration is valid, and 101's item is collected
        plain = await run_crawl(Pages, without_templates(tmp_path / "plain", FEEDS=feeds), proxy=server.proxy,
                                monkeypatch=monkeypatch)
        assert plain.stats["finish_reason"] == "finished" and [i["subject"] for i in plain.items] == ["101"]
        assert [json.loads(line)["subject"] for line in (out / "items.jsonl").read_text().splitlines()] == ["101"]
        server.clear()
        (out / "items.jsonl").unlink()

        result = await run_crawl(Pages, without_templates(tmp_path, CONSENTCRAWL_PURGE_ON_CLOSE=True, FEEDS=feeds),
                                 proxy=server.proxy, monkeypatch=monkeypatch)

        assert result.stats["finish_reason"] == "consentcrawl_config_error"
        assert not server.requests and not result.items
    [critical] = [r.getMessage() for r in caplog.records if r.levelname == "CRITICAL"]
    assert "CONSENTCRAWL_PURGE_ON_CLOSE" in critical
    assert f"platform 'people' ({tmp_path / 'platforms.yaml'}:2) has no profile templates" in critical
