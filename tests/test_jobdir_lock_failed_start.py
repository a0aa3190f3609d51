"""A crawl that fails to start after the add-on locked its ``JOBDIR`` (a project's item pipeline raising in its
constructor: Scrapy builds the pipelines after the add-ons, and raises out of ``crawl`` with no engine, so no
``spider_closed`` and no ``engine_stopped`` come) must not keep the directory locked in its process: the next crawl
on it there (a service that runs crawls, a retry after the fix) must run, not be refused as "in use" by a crawl
that no longer exists. Real crawls against the demo site, judged by its request log and the stats."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer
from tests.conftest import run_crawl
from tests.test_purge_jobdir import QueueingSpider, crawl_settings


class BrokenPipeline:
    """A project's pipeline with a bug in its constructor."""

    def __init__(self) -> None:
        raise RuntimeError("a bug in the project's pipeline")

    def process_item(self, item: Any) -> Any:  # pragma: no cover - never built
        return item


@deferred_f_from_coro_f
async def test_a_crawl_that_failed_to_start_leaves_its_jobdir_unlocked(
    site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
) -> None:
    with LocalServer(site) as server:
        settings = crawl_settings(tmp_path, config_dir)
        broken = {**settings, "ITEM_PIPELINES": {f"{__name__}.BrokenPipeline": 100}}
        with pytest.raises(RuntimeError, match="a bug in the project's pipeline"):
            await run_crawl(QueueingSpider, broken, proxy=server.proxy, monkeypatch=monkeypatch)
        asked = len(server.requests)
        # its own audit log: the audit log's lock is the test below's subject
        settings["CONSENTCRAWL_AUDIT_LOG"] = str(tmp_path / "second-audit.jsonl")
        result = await run_crawl(QueueingSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        assert result.stats.get("finish_reason") == "finished", result.stats
        assert len(server.requests) > asked, "the second crawl asked the server nothing"


@deferred_f_from_coro_f
async def test_a_crawl_that_failed_to_start_leaves_its_audit_log_to_the_next_crawl_in_its_process(
    site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
) -> None:
    """The failed crawl's runtime had opened the audit log (its lock taken, its chain-start written) before the
    pipeline raised: the retry in the same process, on the same log, runs; the failed crawl's segment was ended
    (chain-end) as its start failed, and the whole file verifies as one chain."""
    from consentcrawl.audit.chain import verify
    from consentcrawl.audit.log import read_audit_log

    log = tmp_path / "audit.jsonl"
    with LocalServer(site) as server:
        settings = crawl_settings(tmp_path, config_dir, CONSENTCRAWL_AUDIT_LOG=str(log))
        broken = {**settings, "ITEM_PIPELINES": {f"{__name__}.BrokenPipeline": 100}}
        # its traceback keeps the failed crawler (and with it its runtime and log) alive: the lock is taken over
        with pytest.raises(RuntimeError, match="a bug in the project's pipeline") as failed:
            await run_crawl(QueueingSpider, broken, proxy=server.proxy, monkeypatch=monkeypatch)
        # the log was opened, and closed as the start failed (test below)
        assert [e["event"] for e in read_audit_log(log)] == ["chain-start", "chain-end"]
        asked = len(server.requests)
        result = await run_crawl(QueueingSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        assert result.stats.get("finish_reason") == "finished", result.stats
        assert len(server.requests) > asked, "the second crawl asked the server nothing"
    assert failed.value is not None
    events = [e.get("event") for e in read_audit_log(log)]
    assert events[:3] == ["chain-start", "chain-end", "chain-start"] and events[-1] == "chain-end"
    assert verify(log).ok
    assert lockable_elsewhere(log)  # the retry's close let go of the lock it took over


def lockable_elsewhere(path: Path) -> bool:
    """Whether another process can take ``path``'s ``flock`` now (as a purge, or another crawl, would)."""
    code = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY)\n"
            "try: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError: sys.exit(1)")
    return subprocess.run([sys.executable, "-c", code, str(path)], check=False).returncode == 0



class PipelineFailingToOpen:
    """A project's pipeline that is built but fails as the spider opens (after the engine exists)."""

    def open_spider(self) -> None:
        raise RuntimeError("the project's pipeline cannot open")

    def process_item(self, item: Any) -> Any:  # pragma: no cover - never reached
        return item


@deferred_f_from_coro_f
async def test_a_crawl_that_failed_as_its_spider_opened_leaves_its_locks_to_the_next_crawl(
    site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path,
) -> None:
    """PIN. A pipeline raising in ``open_spider`` fails the crawl after Scrapy made its engine (so the failed crawl
    looks alive to :func:`~consentcrawl.heldlocks.crawl_alive`): Scrapy's engine close still closes the spider, and
    the retry in the same process, on the same JOBDIR and audit log, runs."""
    log = tmp_path / "audit.jsonl"
    with LocalServer(site) as server:
        settings = crawl_settings(tmp_path, config_dir, CONSENTCRAWL_AUDIT_LOG=str(log))
        broken = {**settings, "ITEM_PIPELINES": {f"{__name__}.PipelineFailingToOpen": 100}}
        with pytest.raises(RuntimeError, match="the project's pipeline cannot open"):
            await run_crawl(QueueingSpider, broken, proxy=server.proxy, monkeypatch=monkeypatch)
        asked = len(server.requests)
        result = await run_crawl(QueueingSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        assert result.stats.get("finish_reason") == "finished", result.stats
        assert len(server.requests) > asked, "the second crawl asked the server nothing"


class BrokenExtension:
    """A project's extension with a bug in its constructor (Scrapy builds extensions before its engine)."""

    def __init__(self) -> None:
        raise RuntimeError("a bug in the project's extension")


@pytest.mark.parametrize("broken", [{"ITEM_PIPELINES": {f"{__name__}.BrokenPipeline": 100}},
                                    {"EXTENSIONS": {f"{__name__}.BrokenExtension": 100}}],
                         ids=["pipeline", "extension"])
@deferred_f_from_coro_f
async def test_a_crawl_that_failed_to_start_lets_another_process_take_its_locks_while_it_lives_on(
    site: MicroblogSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path, broken: dict[str, Any],
) -> None:
    """Scrapy keeps the failed crawler reachable (here: by the traceback ``failed`` holds), and no close comes for
    it: its JOBDIR and audit log were locked until this process ended, so another process (a purge, the same crawl
    started again) was refused as if a crawl were running. They are let go as the start fails, and the audit log's
    chain is ended there."""
    from consentcrawl.audit.chain import verify
    from consentcrawl.audit.log import read_audit_log

    log = tmp_path / "audit.jsonl"
    with LocalServer(site) as server:
        settings = {**crawl_settings(tmp_path, config_dir, CONSENTCRAWL_AUDIT_LOG=str(log)), **broken}
        with pytest.raises(RuntimeError, match="a bug in the project's") as failed:
            await run_crawl(QueueingSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        await settled()
        assert lockable_elsewhere(tmp_path / "job"), "the failed crawl still holds its JOBDIR"
        assert lockable_elsewhere(log) if log.exists() else True, "the failed crawl still holds its audit log"
        assert server.requests == []
    assert failed.value is not None  # the failed crawler was reachable all along
    if log.exists():
        assert [e["event"] for e in read_audit_log(log)] == ["chain-start", "chain-end"]
        assert verify(log).ok


async def settled() -> None:
    """One turn of the event loop (what the crawl's start scheduled runs)."""
    from scrapy.utils.defer import maybe_deferred_to_future
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    await maybe_deferred_to_future(deferLater(reactor, 0))
