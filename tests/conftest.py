"""Shared fixtures: the demo microblog served on loopback and a helper that runs a real Scrapy crawl against it.

Crawls reach ``microblog.example`` and ``m.microblog.example`` through the local server acting as an HTTP proxy,
exactly as a user's crawler reaches real hosts, so registered-domain and redirect logic are really exercised.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy import signals
from scrapy.utils.test import get_crawler

from consentcrawl.audit.log import read_audit_log
from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer
from tests.redis_server import REDIS_SERVER as redis_server_binary
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ROOT / "settings" / "platforms.yaml"
AUTHORIZATIONS = ROOT / "settings" / "authorizations.yaml"

# Python's bytecode cache, kept even where the environment turns it off (CI's sets PYTHONDONTWRITEBYTECODE=1): the
# suite starts a few hundred ``scrapy`` and ``python -c`` subprocesses (xdist's workers too, after this runs in the
# controller), and each compiled the package from source again (~0.15 s). Python checks a cached file against its
# source's mtime and size, and replaces it atomically, so concurrent writers and edited sources are safe; the
# ``__pycache__`` directories are git-ignored. A subprocess that must not write (a file-size limit) says so itself.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their proxy themselves; the developer's environment must not route or bypass it."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_line_filter_left_watching() -> Iterator[None]:
    """A test that makes a crawler and never runs it (a runtime for a unit test) leaves its crawl's line filter
    watching the process's log record factory: closed after the test, as the crawl's close would, so that the record
    factory tests that run later in the same worker see only their own crawls (they judge what is left once the
    last one ends, and failed whenever such a test had run before them)."""
    from consentcrawl import loghandlers

    before = list(loghandlers._LIVE)
    yield
    for lines in [lines for lines in loghandlers._LIVE if lines not in before]:
        lines.close()


@pytest.fixture(scope="session")
def site() -> MicroblogSite:
    return MicroblogSite()


@pytest.fixture
def server(site: MicroblogSite) -> Iterator[LocalServer]:
    with LocalServer(site) as srv:
        yield srv


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A private copy of the example configuration, for tests that edit it."""
    shutil.copy(PLATFORMS, tmp_path / "platforms.yaml")
    shutil.copy(AUTHORIZATIONS, tmp_path / "authorizations.yaml")
    return tmp_path


@dataclass
class CrawlResult:
    items: list[dict[str, Any]]
    stats: dict[str, Any]
    audit: list[dict[str, Any]]  #: the decision lines of the audit log
    dropped_items: list[dict[str, Any]] = field(default_factory=list)
    #: the audit log's event lines (``refusal-found``, ``withdrawal-seen``, ...): the lines with an ``event`` key
    events: list[dict[str, Any]] = field(default_factory=list)

    def consent_stats(self) -> dict[str, Any]:
        return {k: v for k, v in self.stats.items() if k.startswith("consentcrawl/")}


def consent_settings(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "CONSENTCRAWL_PURPOSE": "research",
        "CONSENTCRAWL_PLATFORMS": str(PLATFORMS),
        "CONSENTCRAWL_AUTHORIZATIONS": str(AUTHORIZATIONS),
        "CONSENTCRAWL_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "CONSENTCRAWL_LOGSTATS_INTERVAL": 0,
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,
        "CONCURRENT_REQUESTS": 16,
        "LOG_LEVEL": "DEBUG",
        "RETRY_ENABLED": False,
    }
    settings.update(overrides)
    return settings


#: the longest a test's crawl may take; under pytest-timeout's 120 s, whose signal would stop the shared reactor
#: and with it every test after the hung one
CRAWL_LIMIT = 90.0


async def crawl_within_limit(crawler: Any, **spider_kwargs: Any) -> None:
    """``crawler.crawl_async``, failing this test alone, with what the crawl was waiting for, if it hangs."""
    import asyncio

    task = asyncio.ensure_future(crawler.crawl_async(**spider_kwargs))
    done, _ = await asyncio.wait({task}, timeout=CRAWL_LIMIT)
    if done:
        task.result()
        return
    raise AssertionError(f"the crawl did not finish within {CRAWL_LIMIT:.0f} s: {_stuck(crawler)}")


def _stuck(crawler: Any) -> str:
    """What a hung crawl holds (Scrapy's and consentcrawl's private state: for the failure message only)."""
    from consentcrawl.runtime import get_runtime

    engine = crawler.engine
    slot = getattr(engine, "_slot", None)
    parts = [f"in progress {[r.url for r in getattr(slot, 'inprogress', ())][:10]}",
             f"downloader active {[r.url for r in getattr(getattr(engine, 'downloader', None), 'active', ())][:10]}"]
    runtime = get_runtime(crawler)
    if runtime is not None:
        parts.append(f"first-page gate waiting on {list(runtime.first_pages._pending)[:10]}")
    parts.append(f"closing {getattr(slot, 'closing', None) is not None}")
    return "; ".join(parts) + "\n" + _task_stacks()


def _task_stacks() -> str:
    """Where each asyncio task of the loop waits, down the chain of awaits: what a hung crawl is stuck in."""
    import asyncio

    lines = []
    for task in asyncio.all_tasks():
        if task is asyncio.current_task():
            continue
        chain, coro = [], task.get_coro()
        while coro is not None and len(chain) < 12:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is None:
                break
            chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        lines.append(f"task {' > '.join(chain)} awaiting {type(coro).__name__ if coro is not None else '?'}")
    return "\n".join(sorted(lines))[-12000:]


async def run_crawl(spidercls: type[scrapy.Spider], settings: dict[str, Any], *, proxy: str | None,
                    monkeypatch: pytest.MonkeyPatch | None = None, **spider_kwargs: Any) -> CrawlResult:
    """Run one real crawl in this process and return what came out of it."""
    if proxy and monkeypatch is not None:
        monkeypatch.setenv("http_proxy", proxy)
    crawler = get_crawler(spidercls, settings)
    items: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []

    def scraped(item: Any) -> None:
        items.append(dict(item))

    def item_dropped(item: Any) -> None:
        dropped.append(dict(item))

    crawler.signals.connect(scraped, signal=signals.item_scraped, weak=False)
    crawler.signals.connect(item_dropped, signal=signals.item_dropped, weak=False)
    await crawl_within_limit(crawler, **spider_kwargs)
    audit_path = settings.get("CONSENTCRAWL_AUDIT_LOG")
    lines = read_audit_log(audit_path) if isinstance(audit_path, (str, Path)) and Path(audit_path).is_file() else []
    assert crawler.stats is not None
    return CrawlResult(items, dict(crawler.stats.get_stats()), [e for e in lines if "event" not in e], dropped,
                       [e for e in lines if "event" in e])


def append_withdrawal(authorizations: Path, subject: str, *, revoked_at: str | None = None,
                      evidence: str = "withdrawn by e-mail") -> None:
    """Add a microblog person's withdrawal for research to an authorization file (revoked a minute ago unless
    ``revoked_at`` says when)."""
    if revoked_at is None:
        revoked_at = (datetime.now(timezone.utc) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with authorizations.open("a", encoding="utf-8") as f:
        f.write(f'  - platform: microblog\n    subject: "{subject}"\n    purposes: [research]\n'
                f"    granted_at: 2026-01-02T00:00:00Z\n    revoked_at: {revoked_at}\n"
                f'    evidence: "{evidence}"\n')


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if not Path(redis_server_binary).exists():
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
