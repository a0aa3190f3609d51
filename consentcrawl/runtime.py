"""One consent runtime per crawler, shared by the add-on's components.

It owns the policy engine, the robots.txt fetching through Scrapy's engine, the audit log and the stats, so the
middlewares, the scheduling guard and the item pipeline all record decisions the same way.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from scrapy import Request, signals
from scrapy.http import Response, TextResponse
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.asyncio import call_later

from .audit.log import AuditLog
from .config import ConsentConfig
from .decision import Decision, Evidence, Stage, deny
from .errors import AuditUnavailable, ConfigError
from .policy import PolicyEngine, RequestFacts
from .response import judge_response, wants_nofollow
from .robots.cache import RobotsCache
from .robots.fetch import (
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    RobotsFile,
    RobotsStatus,
    from_response,
    robots_url,
    unreachable,
)
from .robots.tags import parse_meta_robots, parse_robots_headers
from .urls import CanonicalURL

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger("consentcrawl")

#: request meta keys (public): a request may name the person it concerns, and carries its decision
META_SUBJECT = "consentcrawl_subject"
META_DECISION = "consentcrawl_decision"
#: internal: marks the robots.txt side requests so our own middleware lets them through
META_ROBOTS = "consentcrawl_robots"
#: set on a response whose X-Robots-Tag / meta robots says nofollow: its links are dropped
META_NOFOLLOW = "consentcrawl_nofollow"
#: internal: the URL a link was checked at when the spider produced it (a redirect or copy to another URL is not)
META_LINK_CHECKED = "consentcrawl_link_checked"

_ATTR = "_consentcrawl_runtime"
#: the spider's finish reason when the configuration is invalid and the crawl refuses to start
CONFIG_ERROR_REASON = "consentcrawl_config_error"


def get_runtime(crawler: Crawler) -> ConsentRuntime | None:
    """The crawler's runtime, built on first use; ``None`` when the configuration is invalid.

    An invalid configuration is logged once as one CRITICAL line naming the file and line; every component then
    refuses everything and :class:`~consentcrawl.middlewares.ConsentScheduleGuard` closes the spider as it opens,
    so nothing is fetched — without the traceback an exception from a component would print.
    """
    runtime = getattr(crawler, _ATTR, None)
    if runtime is None:
        try:
            runtime = ConsentRuntime(crawler)
        except ConfigError as exc:
            runtime = exc
            logger.critical("consentcrawl: configuration error, the crawl does not start: %s", exc)
        setattr(crawler, _ATTR, runtime)
    return runtime if isinstance(runtime, ConsentRuntime) else None


class RuntimeComponent:
    """Base of the add-on's components: each holds the crawler's runtime (``None``: refuse everything)."""

    def __init__(self, runtime: ConsentRuntime | None) -> None:
        self.runtime = runtime

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Any:
        return cls(get_runtime(crawler))


def config_error(crawler: Crawler) -> ConfigError | None:
    error = getattr(crawler, _ATTR, None)
    return error if isinstance(error, ConfigError) else None


def is_checked_url(url: str) -> bool:
    """Only http(s) requests can fetch a person; data: and file: URLs are local."""
    return url.startswith(("http://", "https://"))


class ConsentRuntime:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        spider = getattr(crawler, "spider", None)
        purpose = getattr(spider, "purpose", None) or getattr(crawler.spidercls, "purpose", None)
        self.config = ConsentConfig.from_settings(crawler.settings, purpose=purpose)
        self.engine = PolicyEngine(self.config.platforms, self.config.store, self.config.token,
                                   max_crawl_delay=self.config.max_crawl_delay)
        self.robots = ScrapyRobotsFetcher(crawler, self.config)
        self.audit = AuditLog(self.config.audit_log)
        self.stats = crawler.stats
        #: Scrapy filters by level in its handler, not on the logger: skip building DEBUG lines nobody keeps
        self._debug = crawler.settings.get("LOG_LEVEL", "DEBUG") in ("DEBUG", logging.DEBUG)
        #: counts not yet added to Scrapy's stats (each stats call costs µs; they are added once per loop turn)
        self._counts: dict[str, int] = {}
        self._turn_scheduled = False
        self._waiters: list[asyncio.Future[None]] = []  #: decisions waiting for this turn's audit write
        self.stats.set_value("consentcrawl/purpose", self.config.purpose)
        self.stats.set_value("consentcrawl/mode", self.config.mode)
        crawler.signals.connect(self._spider_closed, signal=signals.spider_closed)
        logger.info(
            "consentcrawl: purpose %r, mode %s, %d platform(s) from %s, authorizations from %s, audit log %s",
            self.config.purpose, self.config.mode, len(self.config.platforms),
            ", ".join(self.config.platform_files) or "(none)", self.config.authorizations_source or "(none)",
            self.config.audit_log or "(off)",
        )

    @property
    def enforce(self) -> bool:
        return self.config.enforce

    # -- deciding ------------------------------------------------------------------------------------------

    def facts_for(self, request: Request) -> tuple[RequestFacts | None, Decision | None]:
        """Facts for a request, or a deny decision when its URL cannot be understood."""
        try:
            facts = self.engine.facts(request.url, self.config.purpose, self.config.now(),
                                      request.meta.get(META_SUBJECT))
        except Exception as exc:  # noqa: BLE001 - an URL we cannot read is denied, not waved through
            return None, _bad_url(request.url, exc)
        return facts, None

    async def decide_request(self, request: Request, phase: str = "request") -> Decision:
        """The full decision for a request about to be sent: robots (fetched if needed), terms, subject."""
        facts, decision = self.facts_for(request)
        if facts is not None:
            robots: RobotsFile | None
            try:
                robots = await self.robots.get(facts.canonical)
            except Exception:
                logger.exception("consentcrawl: could not obtain robots.txt for %s", facts.canonical.origin)
                robots = None
            decision = self.engine.decide(facts, robots)
        assert decision is not None
        return await self.record_grouped(decision, request.url, facts.canonical.url if facts else None, phase)

    def decide_scheduled(self, request: Request) -> Decision | None:
        """What can be decided without I/O when a request is scheduled; None when nothing denies yet.

        A page links the same people again and again, and a denied link never reaches Scrapy's dupefilter: a
        link whose decision the engine hands back unchanged (:meth:`PolicyEngine.decide_link`) is that same
        decision again, counted in ``consentcrawl/schedule/repeated`` but not recorded or counted as a new one.
        """
        if request.meta.get(META_SUBJECT) is not None:
            facts, decision = self.facts_for(request)
            if facts is not None:
                decision = self.engine.decide_consent(facts)
                if decision.allowed:
                    return None
            assert decision is not None
            return self.record(decision, request.url, facts.canonical.url if facts else None, "schedule")
        url = request.url
        try:
            decision, canonical, repeat = self.engine.decide_link(url, self.config.purpose, self.config.now())
        except Exception as exc:  # noqa: BLE001 - an URL we cannot read is denied, not waved through
            return self.record(_bad_url(url, exc), url, None, "schedule")
        if decision.allowed:
            return None
        if repeat:
            self.count("consentcrawl/schedule/repeated")
            return decision
        return self.record(decision, url, canonical, "schedule")

    async def decide_item(self, platform: str | None, subject: str, url: str | None) -> Decision:
        decision = self.engine.decide_subject(platform, subject, self.config.purpose, self.config.now())
        return await self.record_grouped(decision, url, None, "item")

    def check_response(self, request: Request, response: Response, prior: Decision) -> Decision:
        """Read the response's robots directives before any callback or the HTTP cache sees it."""
        token = self.config.token
        try:
            directives = parse_robots_headers(response.headers, token)
            if isinstance(response, TextResponse) and b"html" in (response.headers.get(b"Content-Type") or b"html"):
                directives += parse_meta_robots(response.body, token, response.encoding)
        except Exception as exc:  # noqa: BLE001 - a crash reading the signals must deny, not skip them
            decision = deny(Stage.ERROR, "error.internal", subject=prior.subject, platform=prior.platform,
                            evidence=(_error_cause(exc, response.url),))
            return self.record(decision, response.url, None, "response")
        if not directives:
            return prior
        decision = judge_response(prior, directives, self.config.purpose, self.config.now(), response.url)
        if wants_nofollow(directives):
            request.meta[META_NOFOLLOW] = True
        # the signals are evidence either way; an allow was already counted when the request was decided
        self.count("consentcrawl/response/signals")
        return self.record(decision, response.url, None, "response", count=not decision.allowed)

    def record_nofollow(self, dropped: Request, response: Response) -> None:
        """A link on a nofollow response: recorded as a deny (``response.nofollow``) whether or not enforced."""
        decision = deny(Stage.RESPONSE, "response.nofollow", evidence=(
            Evidence("nofollow", response.url, {"link": dropped.url}),))
        self.record(decision, dropped.url, None, "output")

    # -- recording -----------------------------------------------------------------------------------------

    def record(self, decision: Decision, url: str | None, canonical_url: str | None, phase: str,
               count: bool = True) -> Decision:
        """Write the decision to the audit log and the stats; returns the decision that stands.

        A decision that lets something happen (a request sent, a response used, an item kept; in report mode,
        every one of those phases) is on disk before this returns; the others are written at the end of the
        event-loop turn. If the audit log cannot be written, an allow becomes ``error.audit-unavailable``: data
        we could not account for is not collected.
        """
        durable = self._lets_something_happen(decision, phase)
        try:
            self.audit.record(
                decision, time=self.config.now(), phase=phase, url=url,
                canonical_url=canonical_url, purpose=self.config.purpose,
                mode=self.config.mode, durable=durable,
            )
        except AuditUnavailable as exc:
            self.count("consentcrawl/audit/write_errors")
            return self._unaccounted(decision, url, canonical_url, phase, str(exc))
        if not durable:
            self._soon()
        return self._counted(decision, url, phase) if count else decision

    async def record_grouped(self, decision: Decision, url: str | None, canonical_url: str | None,
                             phase: str) -> Decision:
        """:meth:`record` for the request and item phases: the line goes out with the rest of this turn's lines.

        Group commit. Instead of a write of its own, a line that must be on disk first is queued, and the caller
        waits for the end-of-turn write that takes every line of the turn in one system call (a crawl decides about
        seven requests and items per turn). The evidence rule holds: this returns only once the line is in the
        file, and a line the file did not take turns an allow into ``error.audit-unavailable``. Outside an asyncio
        event loop (another Twisted reactor) it is :meth:`record`.
        """
        if not self._lets_something_happen(decision, phase):
            return self.record(decision, url, canonical_url, phase)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self.record(decision, url, canonical_url, phase)
        try:
            ticket = self.audit.queue(decision, time=self.config.now(), phase=phase, url=url,
                                      canonical_url=canonical_url, purpose=self.config.purpose, mode=self.config.mode)
        except AuditUnavailable as exc:
            self.count("consentcrawl/audit/write_errors")
            return self._unaccounted(decision, url, canonical_url, phase, str(exc))
        if ticket is not None:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            self._soon()
            await waiter
            if not self.audit.written(ticket):
                return self._unaccounted(decision, url, canonical_url, phase, self.audit.error or "not written")
        return self._counted(decision, url, phase)

    def _lets_something_happen(self, decision: Decision, phase: str) -> bool:
        """Whether the decision's line must be on disk before it takes effect (in report mode every one does)."""
        return phase in _EFFECT_PHASES and (decision.allowed or not self.config.enforce)

    def _unaccounted(self, decision: Decision, url: str | None, canonical_url: str | None, phase: str,
                     why: str) -> Decision:
        """The decision that stands when its line could not be written: an allow becomes a deny."""
        logger.error("consentcrawl: %s; denying", why)
        if decision.allowed:
            cause = Evidence("error", "audit log", {"error": "AuditUnavailable", "message": why})
            decision = deny(Stage.ERROR, "error.audit-unavailable", subject=decision.subject,
                            platform=decision.platform, evidence=(*decision.evidence, cause))
        # the deny that stands waits with the other lines for the log to take writes again
        self.audit.record(decision, time=self.config.now(), phase=phase, url=url, canonical_url=canonical_url,
                          purpose=self.config.purpose, mode=self.config.mode, durable=False)
        self._soon()
        return self._counted(decision, url, phase)

    def _counted(self, decision: Decision, url: str | None, phase: str) -> Decision:
        prefix = "consentcrawl/items/" if phase == "item" else "consentcrawl/"
        self.count(prefix + decision.stat_key)
        if not decision.allowed:
            self.count(prefix + "denied")
            if self._debug:
                logger.debug("consentcrawl: %s %s (%s, %s)", "would deny" if not self.enforce else "denied",
                             url, decision.reason, phase)
        return decision

    def count(self, key: str, n: int = 1) -> None:
        """Add to a ``consentcrawl/`` stat; Scrapy's stats see it at the end of this event-loop turn."""
        counts = self._counts
        counts[key] = counts.get(key, 0) + n
        if not self._turn_scheduled:
            self._soon()

    def _soon(self) -> None:
        if self._turn_scheduled:
            return
        self._turn_scheduled = True
        try:
            asyncio.get_running_loop().call_soon(self.end_of_turn)
        except RuntimeError:  # no asyncio loop running (another Twisted reactor)
            call_later(0, self.end_of_turn)

    def end_of_turn(self) -> None:
        """Write the waiting audit lines and hand the counts to Scrapy's stats (also called at close)."""
        self._turn_scheduled = False
        waiters, self._waiters = self._waiters, []
        try:
            self.audit.flush()
        except AuditUnavailable as exc:
            self._counts["consentcrawl/audit/write_errors"] = self._counts.get("consentcrawl/audit/write_errors", 0) + 1
            logger.error("consentcrawl: %s", exc)
        finally:
            for waiter in waiters:  # each asks the log whether its line made it
                if not waiter.done():
                    waiter.set_result(None)
        if self._counts:
            counts, self._counts = self._counts, {}
            inc_value = self.stats.inc_value
            for key, n in counts.items():
                inc_value(key, n)

    def summary(self) -> dict[str, Any]:
        self.end_of_turn()
        return {k: v for k, v in self.stats.get_stats().items() if k.startswith("consentcrawl/")}

    def _spider_closed(self, spider: Any = None, reason: str = "") -> None:
        self.end_of_turn()
        try:
            self.audit.close()
        except AuditUnavailable as exc:
            self.stats.inc_value("consentcrawl/audit/write_errors")
            logger.error("consentcrawl: %s", exc)


def _error_cause(exc: BaseException, where: str) -> Evidence:
    return Evidence("error", where, {"error": type(exc).__name__, "message": str(exc)})


def _bad_url(url: str, exc: BaseException) -> Decision:
    """The deny for a URL we cannot read (``error.bad-url``), with the reason in its evidence."""
    return deny(Stage.ERROR, "error.bad-url", evidence=(_error_cause(exc, url),))


#: phases whose allow lets something happen (a fetch, a callback, a kept item): their lines are written at once
_EFFECT_PHASES = frozenset({"request", "response", "item"})


class ScrapyRobotsFetcher:
    """robots.txt inside a crawl: fetched through Scrapy's engine once per origin, concurrent callers wait.

    Redirects are followed here, hop by hop (each hop a request through the engine), rather than by Scrapy's
    RedirectMiddleware: a hop Scrapy would filter (offsite, its own redirect limit) must not turn into
    allow-all, and the rules found apply to the original origin (RFC 9309 §2.3.1.2).
    """

    PRIORITY = 1000

    def __init__(self, crawler: Crawler, config: ConsentConfig) -> None:
        self.crawler = crawler
        self.config = config
        self.cache = RobotsCache(config.robots_ttl, config.robots_retry, config.robots_retry_max,
                                 config.robots_stale)
        self._inflight: dict[str, asyncio.Future[RobotsFile]] = {}

    async def get(self, canonical: CanonicalURL) -> RobotsFile:
        origin = canonical.origin
        cached = self.cache.get(origin, self.config.now())
        if cached is not None:
            return cached
        task = self._inflight.get(origin)
        if task is None:
            task = asyncio.ensure_future(self._fetch(origin))
            self._inflight[origin] = task
            task.add_done_callback(lambda _t, o=origin: self._inflight.pop(o, None))
        return await asyncio.shield(task)

    async def _fetch(self, origin: str) -> RobotsFile:
        file = await self._download(robots_url(origin))
        stats = self.crawler.stats
        stats.inc_value(f"consentcrawl/robots/{file.status.value}")
        used = self.cache.put(origin, file, self.config.now())
        if file.status is RobotsStatus.UNREACHABLE:
            if used is file:
                logger.warning("consentcrawl: robots.txt %s unreachable (%s): denying the whole origin",
                               file.url, file.cause)
            else:
                logger.warning("consentcrawl: robots.txt %s unreachable (%s): keeping the copy fetched at %s",
                               file.url, file.cause, used.fetched_at.isoformat())
        return used

    async def _download(self, url: str) -> RobotsFile:
        stats = self.crawler.stats
        current, hops = url, []
        while True:
            request = Request(current, priority=self.PRIORITY, callback=NO_CALLBACK, dont_filter=True,
                              meta={META_ROBOTS: True, "dont_obey_robotstxt": True, "dont_cache": True,
                                    "dont_redirect": True, "handle_httpstatus_all": True, "allow_offsite": True})
            stats.inc_value("consentcrawl/robots/request_count")
            try:
                assert self.crawler.engine is not None
                response = await self.crawler.engine.download_async(request)
            except Exception as exc:  # noqa: BLE001 - every failure to fetch is "unreachable": deny the origin
                cause = f"{type(exc).__name__}: {exc}".rstrip(": ")
                return unreachable(url, self.config.now(), cause, final_url=current, redirects=tuple(hops))
            stats.inc_value(f"consentcrawl/robots/response_status_count/{response.status}")
            location = response.headers.get(b"Location")
            if response.status in REDIRECT_STATUSES and location:
                hops.append(current)
                if len(hops) > MAX_REDIRECTS:
                    return unreachable(url, self.config.now(), f"more than {MAX_REDIRECTS} redirects",
                                       http_status=response.status, final_url=current, redirects=tuple(hops))
                current = urljoin(current, location.decode("latin-1").strip())
                if not is_checked_url(current):
                    return unreachable(url, self.config.now(), f"redirect to a non-HTTP URL {current!r}",
                                       http_status=response.status, final_url=current, redirects=tuple(hops))
                continue
            return from_response(url, response.status, response.body, self.config.now(), final_url=current,
                                 redirects=tuple(hops))


def apply_crawl_delay(crawler: Crawler, request: Request, delay: float) -> None:
    """Make Scrapy's download slot for this request wait ``delay`` seconds between requests.

    The slot's delay only ever grows, its jitter is switched off (a random delay could fall short of what the
    site asked), and AutoThrottle is told not to lower it for this request.
    """
    engine = crawler.engine
    downloader = getattr(engine, "downloader", None)
    if downloader is None:
        return
    key = downloader.get_slot_key(request)
    slot = downloader.slots.get(key)
    if slot is None:
        settings = downloader.per_slot_settings.setdefault(key, {})
        settings["delay"] = max(float(settings.get("delay", 0)), delay)
        settings["jitter"] = 0
    else:
        if slot.delay < delay:
            slot.delay = delay
        slot.jitter = 0
    request.meta["autothrottle_dont_adjust_delay"] = True
