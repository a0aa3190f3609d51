"""A crawl and a purge never work on one ``JOBDIR`` at the same time (``consentcrawl/purge/joblock.py``).

A real crawl with a ``JOBDIR`` is kept running by a server that holds one profile's answer; while it runs, ``purge
--jobdir`` on its directory must refuse (exit 2, naming the directory, nothing written: no receipt, no work
directory), and so must a second crawl on it (a configuration error; the server is asked nothing by it). Once
the first crawl has ended, the purge runs.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.test import get_crawler

from consentcrawl import ConsentSpider
from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer
from tests.conftest import crawl_within_limit, run_crawl
from tests.test_purge_jobdir import PERSON, QUEUE, QueueingSpider, crawl_settings, purge, receipts_in

SLOW = "/people"  #: the first listing page, answered only when the test says so


class HeldSite:
    """The demo site, with the listing's answer held until :attr:`go` is set; :attr:`arrived` says it was asked."""

    def __init__(self, site: MicroblogSite) -> None:
        self.site = site
        self.arrived = threading.Event()
        self.go = threading.Event()

    def __call__(self, request: Any, headers: Any) -> Any:
        if request.path == SLOW:
            self.arrived.set()
            self.go.wait(60)
        return self.site(request, headers)


async def until(event: threading.Event, limit: float = 60.0) -> None:
    """Wait (without blocking the reactor) for ``event``, failing after ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not event.is_set():
        assert loop.time() < deadline, "the held request never reached the server"
        await asyncio.sleep(0.05)


@deferred_f_from_coro_f
async def test_a_purge_and_a_second_crawl_refuse_a_jobdir_a_crawl_is_running_on_then_the_purge_runs(
    site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    held = HeldSite(site)
    with LocalServer(held) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        job = tmp_path / "job"
        settings = crawl_settings(tmp_path, config_dir)
        # a ConsentSpider with no ADDONS in its settings: it installs the add-on itself (ConsentSpider's
        # update_settings), and with it the lock
        assert "ADDONS" not in settings and issubclass(QueueingSpider, ConsentSpider)
        crawler = get_crawler(QueueingSpider, settings)
        running = asyncio.ensure_future(crawl_within_limit(crawler))
        try:
            await until(held.arrived)
            assert (job / QUEUE).is_dir() or job.is_dir()
            log = tmp_path / "purge-audit.jsonl"

            status = purge("--subject", f"microblog:{PERSON}", "--audit-log", str(log), "--jobdir", str(job))

            assert status == 2
            err = capsys.readouterr().err
            assert f"the job directory {job} is in use: a running crawl (or a purge) holds its lock" in err
            assert not log.exists()  # nothing started: not even the receipt's log
            assert not [p for p in job.rglob(".purge-*")]
            # a second crawl on the same directory does not start, and asks the server nothing
            asked = len(server.requests)
            (tmp_path / "second").mkdir()
            settings = {**crawl_settings(tmp_path / "second", config_dir), "JOBDIR": str(job)}
            second = await run_crawl(QueueingSpider, settings, proxy=None)
            assert second.stats["finish_reason"] == "consentcrawl_config_error"
            assert len(server.requests) == asked
            assert f"JOBDIR: the job directory {job} is in use" in caplog.text
        finally:
            held.go.set()
            await running
    assert crawler.stats is not None and crawler.stats.get_value("finish_reason") == "finished"
    # the crawl has ended: its lock is released, and the purge runs
    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(log), "--jobdir", str(job)) == 0
    [receipt] = receipts_in(log)
    assert receipt["failed"] == []
