"""Fresh-eyes leak hunt (hunt17): what a purge leaves in outputs a project shaped with Scrapy's feed options.

Tests marked "Fixed" failed on main (f2753f1) and pass since their fix.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.fediverse import FediverseSite
from consentcrawl_demo.server import LocalServer
from spiders.fediverse import SETTINGS
from tests.conftest import consent_settings, jsonl, run_crawl
from tests.test_purge_refusals import TimelineSpider, receipts_for


@pytest.mark.parametrize("fmt", ["jsonlines", "json"])
@deferred_f_from_coro_f
async def test_a_feed_exported_without_the_subject_and_provenance_fields_is_not_purged_silently(
        fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Fixed. ``FEED_EXPORT_FIELDS`` (or a feed's ``fields``) that leaves out the subject and the provenance field,
    as a project that wants only its own columns writes it, gives a JSON Lines or JSON feed whose records name no
    one by the fields the purge reads. Bob's posts, collected before his profile said ``#nobot``, stayed in the
    feed while the purge on close counted him purged, with no failure: a CSV feed of the same fields failed the
    purge ("cannot tell whose records are in it"). Such a record is now a failure named with its cause (an ERROR,
    ``consentcrawl/purge/failed``, the receipt lists it), as in a CSV feed."""
    out = tmp_path / "out"
    feed = out / ("items.jsonl" if fmt == "jsonlines" else "items.json")
    with caplog.at_level(logging.INFO):
        settings = consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=[str(SETTINGS / "fediverse.yaml")],
                                    CONSENTCRAWL_AUTHORIZATIONS=str(SETTINGS / "fediverse-authorizations.jsonl"),
                                    CONSENTCRAWL_PURGE_ON_CLOSE=True, FEEDS={str(feed): {"format": fmt}},
                                    FEED_EXPORT_FIELDS=["kind", "text", "name"])
        with LocalServer(FediverseSite()) as server:
            result = await run_crawl(TimelineSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    served = [r.decoded_path for r in server.requests if r.decoded_path.startswith("/@bob")]
    assert served == ["/@bob/posts", "/@bob"], served  # bob's posts came before his refusal
    assert result.stats["consentcrawl/purge/people"] == 1
    records = jsonl(feed) if fmt == "jsonlines" else json.loads(feed.read_text())
    posts = [r for r in records if r["kind"] == "post"]
    assert posts, records
    # bob's posts are still in the feed (nothing in them says whose they are): the purge must not claim success
    [receipt] = receipts_for(tmp_path / "audit.jsonl", "fediverse:bob")
    failed = [f["why"] for f in receipt["failed"] if f["path"] == str(feed)]
    assert failed and all("cannot tell whose" in why for why in failed), receipt
    assert result.stats.get("consentcrawl/purge/failed"), result.stats
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("cannot tell whose" in line for line in errors), errors
