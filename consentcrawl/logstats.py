"""A periodic log line with the consent counts, next to Scrapy's own "Crawled N pages" line, and a closing
summary that says where the crawl's audit report can be made."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
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
    """``consent: 120 allowed, 45 denied (robots 3, terms 10, subject 32); items kept 40, dropped 2``.

    Denies are summed by stage, so the line stays one screen wide whatever the reasons; :func:`format_reasons`
    has them one by one. In report mode only robots denies are enforced; the rest is what enforce mode would have
    dropped: ``consent: 150 allowed, 10 denied (robots 10), would deny 30 (subject 30)``.
    """
    allowed = stats.get("consentcrawl/allowed", 0)
    denied = _by_stage(_denied(stats))
    would: dict[str, int] = {}
    report = stats.get("consentcrawl/mode") == "report"
    if report:
        would = {k: v for k, v in denied.items() if k != "robots"}
        denied = {k: v for k, v in denied.items() if k == "robots"}
    line = f"consent: {allowed} allowed, " + _part("denied", denied)
    if report:
        line += ", " + _part("would deny", would)
    dropped = stats.get("consentcrawl/items/dropped", 0)
    kept = stats.get("consentcrawl/items/kept", 0)
    if dropped or kept:
        line += f"; items kept {kept}, {'would drop' if report else 'dropped'} {dropped}"
    return line


def format_reasons(stats: dict[str, Any]) -> str:
    """``subject/no-authorization 30, robots/disallowed 10`` (most first), or ``none``."""
    denied = _denied(stats)
    return ", ".join(f"{k} {v}" for k, v in _most_first(denied)) or "none"


def report_command(audit_log: str | None) -> str:
    """Where the crawl's report can be made: the ``consentcrawl audit report`` command line for its log."""
    if not audit_log:
        return "no audit log (CONSENTCRAWL_AUDIT_LOG is off), so no report"
    path = Path(audit_log).absolute()
    html = path.with_name(path.stem.replace("*", "all") + "-report.html")  # a pattern: every worker's log
    return f"consentcrawl audit report {shlex.quote(str(path))} --html {shlex.quote(str(html))}"


def cluster_summary(pattern: str) -> str:
    """Every worker's audit log read now (``pattern``: :func:`~consentcrawl.distributed.shared.worker_glob`): the
    whole crawl's requests so far, and the command for its report. The last worker to close prints the whole
    crawl's (a request's send-time line is on disk before it is sent, so no send of a closed worker is missing)."""
    from .audit.report import log_paths, summarize
    from .errors import ConfigError

    absolute = str(Path(pattern).absolute())
    command = report_command(absolute)
    try:
        files = log_paths([absolute])
        s = summarize(files)
    except ConfigError as exc:
        return f"cannot read the workers' audit logs ({exc}); the report: {command}"
    return (f"{len(files)} worker log(s) so far: {s.sent + s.denied_requests} requests, {s.sent} sent, "
            f"{s.denied_requests} denied before sending, {s.phases[('item', 'allow')]} items kept, of "
            f"{len(s.collected_people)} people; the report: {command}")


def _denied(stats: dict[str, Any]) -> dict[str, int]:
    return {k[len("consentcrawl/denied/"):]: v for k, v in stats.items() if k.startswith("consentcrawl/denied/")}


def _by_stage(denied: dict[str, int]) -> dict[str, int]:
    stages: dict[str, int] = {}
    for key, count in denied.items():
        stage = key.split("/", 1)[0]
        stages[stage] = stages.get(stage, 0) + count
    return stages


def _most_first(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _part(label: str, counts: dict[str, int]) -> str:
    """``45 denied (subject 32, terms 10, robots 3)``, or ``would deny 30 (subject 30)``."""
    total = sum(counts.values())
    head = f"{total} {label}" if label == "denied" else f"{label} {total}"
    detail = ", ".join(f"{k} {v}" for k, v in _most_first(counts))
    return head + (f" ({detail})" if detail else "")


class ConsentLogStats:
    """Every ``CONSENTCRAWL_LOGSTATS_INTERVAL`` seconds the consent counts; unset, at the pace of Scrapy's own
    "Crawled N pages" line (``LOGSTATS_INTERVAL``), so the two appear together. At the end of the crawl, a summary
    that names the audit log and the command that makes its report, logged even with the periodic line off."""

    def __init__(self, crawler: Crawler, interval: float, audit_log: str | None) -> None:
        self.crawler = crawler
        self.interval = interval
        self.audit_log = audit_log
        self.task: Any = None
        self.workers: str | None = None  #: the pattern of every worker's audit log (a distributed crawl)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        runtime = get_runtime(crawler)
        if runtime is None:
            raise NotConfigured
        interval = runtime.config.logstats_interval
        if crawler.settings.get("CONSENTCRAWL_LOGSTATS_INTERVAL") is None:  # unset: at the pace of Scrapy's line
            interval = max(crawler.settings.getfloat("LOGSTATS_INTERVAL"), 0.0) or interval
        ext = cls(crawler, interval, runtime.config.audit_log)
        from .distributed.shared import worker_glob
        from .settings import read

        ext.workers = worker_glob(read(crawler.settings, "CONSENTCRAWL_AUDIT_LOG"))
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def _stats(self) -> dict[str, Any]:
        assert self.crawler.stats is not None
        return self.crawler.stats.get_stats()

    def log(self) -> None:
        logger.info("consentcrawl: %s", format_counts(self._stats()))

    def spider_opened(self, spider: Any = None) -> None:
        if self.interval:
            self.task = create_looping_call(self.log)
            self.task.start(self.interval, now=False)

    def spider_closed(self, spider: Any = None, reason: str = "") -> None:
        if self.task is not None and self.task.running:
            self.task.stop()
        stats = self._stats()
        logger.info("consentcrawl: closing (%s): %s", reason or "finished", format_counts(stats))
        logger.info("consentcrawl: denied by reason: %s", format_reasons(stats))
        where = f"audit log {Path(self.audit_log).absolute()}" if self.audit_log else "audit log off"
        logger.info("consentcrawl: %s; the report: %s", where, report_command(self.audit_log))
        if self.workers:
            logger.info("consentcrawl: the whole crawl, every worker: %s", cluster_summary(self.workers))
