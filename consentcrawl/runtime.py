"""One consent runtime per crawler, shared by the add-on's components.

It owns the policy engine, the robots.txt fetcher, the audit log and the stats, so the pre-filters, the
send-time decision, the response phase and the item guard all record decisions the same way.
Its parts are mixed in: the scheduling check (:mod:`consentcrawl.scheduling`), recording
(:mod:`consentcrawl.recording`) and its own side requests (:mod:`consentcrawl.sidefetching`).

Decisions are kept per request *object* (a weak map), never trusted from ``request.meta``: a spider can copy
meta onto another request (``meta=response.meta``) or write it by hand, and neither may carry an allow.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from scrapy import Request, signals
from scrapy.http import Response

from .audit.header import chain_header
from .audit.log import AuditLog
from .config import ConsentConfig, build_decider
from .consent.adapt import close_store_now
from .decision import Decision, Evidence, Stage, deny
from .deniedpeople import DeniedPeople
from .distributed.wiring import Distributed
from .downloadlines import DownloadLines
from .errors import ConfigError
from .facts import RequestFacts, request_inputs
from .fetchthrough import through
from .heldlocks import crawl_alive
from .itempages import ItemPages
from .meta_keys import META_DECISION
from .recording import DecisionRecording
from .refusallog import RefusalLog
from .refusalphase import FirstPageGate, book_refusals, check_refusals
from .robots.body import content_encoding
from .robots.cache import RobotsCache
from .robots.fetch import RobotsFile
from .robots.scrapyfetch import ScrapyRobotsFetcher
from .scheduling import LinkScheduling, bad_url
from .sidefetching import SideFetching, signal_fetcher
from .signalphase import check_signals, decide_full
from .startup import check_handlers, check_log_formatter, check_outermost, check_pipelines
from .stillallowed import still_allowed
from .tagphase import check_tags
from .withdrawals import WithdrawalWatch

if TYPE_CHECKING:
    from datetime import datetime

    from scrapy.crawler import Crawler

    from .refusals.forms import PageReading

logger = logging.getLogger("consentcrawl")

#: send-time decisions made for one request that changes while each waits, before it is denied
SEND_TRIES = 3

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
            refuse_to_start(crawler, exc)
            return None
        setattr(crawler, _ATTR, runtime)
    return runtime if isinstance(runtime, ConsentRuntime) else None


def refuse_to_start(crawler: Crawler, error: ConfigError) -> None:
    """Record a configuration error: one CRITICAL line, then every component refuses everything (see above)."""
    if getattr(crawler, _ATTR, None) is None:
        logger.critical("consentcrawl: configuration error, the crawl does not start: %s", error.logged())
        setattr(crawler, _ATTR, error)


def release_failed_start(crawler: Crawler) -> None:
    """Close what the crawler's runtime opened (the audit log, ending its chain; the refusal log; the store), for a
    crawl whose start failed: no close comes for it (``Addon._released_on_failed_start``). Once."""
    runtime = getattr(crawler, _ATTR, None)
    if isinstance(runtime, ConsentRuntime) and not runtime.released:
        runtime.released = True
        runtime._spider_closed()
        close_store_now(runtime.config.store)


class RuntimeComponent:
    """Base of the add-on's components: each holds the crawler's runtime (``None``: refuse everything)."""

    def __init__(self, runtime: ConsentRuntime | None) -> None:
        self.runtime = runtime

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Any:
        return cls(get_runtime(crawler))


def built_runtime(crawler: Crawler) -> ConsentRuntime | None:
    """The crawler's runtime if one was built (:func:`get_runtime` builds it)."""
    runtime = getattr(crawler, _ATTR, None)
    return runtime if isinstance(runtime, ConsentRuntime) else None


def config_error(crawler: Crawler) -> ConfigError | None:
    error = getattr(crawler, _ATTR, None)
    return error if isinstance(error, ConfigError) else None


def is_checked_url(url: str) -> bool:
    """Every URL is decided but local ones (``data:``, ``file:``, a browser's ``about:`` and ``blob:``).

    An ``ftp://`` (or ``s3://``) URL can reach a platform's host too, and is not one consentcrawl can read whose
    page it is: it is denied (``error.bad-url``, "unsupported scheme") rather than fetched undecided.

    By the scheme as a URL parser reads it (``http:u/107`` is an http URL too), the way Scrapy picks the download
    handler: a spelling without ``//`` must not pass undecided."""
    scheme, sep, _ = url.lstrip(_C0_OR_SPACE).partition(":")
    return not sep or scheme.strip().lower() not in _LOCAL_SCHEMES


#: schemes that fetch nothing from a server (a browser's about:blank and blob: URLs are in its own memory)
_LOCAL_SCHEMES = frozenset({"data", "file", "about", "blob", "javascript"})
_C0_OR_SPACE = "".join(chr(i) for i in range(0x21))


class ConsentRuntime(LinkScheduling, DecisionRecording, SideFetching):
    #: closed after a failed start (:func:`release_failed_start`)
    released = False

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        spider = getattr(crawler, "spider", None)
        purpose = getattr(spider, "purpose", None) or getattr(crawler.spidercls, "purpose", None)
        self.config = ConsentConfig.from_settings(crawler.settings, purpose=purpose, crawler=crawler,
                                                  purpose_source="the spider's purpose attribute")
        #: the engine and the store, asked through one path (cache, then the store when needed, then the engine)
        self.decider = build_decider(self.config, crawler)
        self.decider.on_damaged = lambda _exc: crawler.stats.inc_value("consentcrawl/authorizations/damaged")
        self.engine = self.decider.engine
        config = self.config
        #: the robots tag rules that deny the crawl's purpose (a custom purpose: those of what it counts as; opt-ins)
        self.tag_rules = config.signal_policy.tag_rules(config.purpose)
        cache = RobotsCache(config.robots_ttl, config.robots_retry, config.robots_retry_max, config.robots_stale)
        #: the state shared with the other workers of a distributed crawl (docs/distributed.md), or None
        self.distributed = Distributed.open(crawler, config)
        self.robots = ScrapyRobotsFetcher(crawler, cache, config.now, self.may_fetch_robots,
                                          self.distributed.fetches if self.distributed is not None else None)
        self.site_signals = signal_fetcher(self.robots, config, self.may_fetch_signal)
        check_handlers(crawler)
        check_pipelines(crawler)
        check_log_formatter(crawler)
        check_outermost(crawler)
        self.audit = AuditLog(config.audit_log, sync=config.audit_sync, alive=crawl_alive(crawler),
                              header=chain_header(config, crawler.settings) if config.audit_log else None)
        #: the operator's refusal log, appended to as refusals are found on pages (None: this crawl only)
        self.refusal_log = RefusalLog(config.refusals_log) if config.refusals_log else None
        #: notices when a store change turns a person from allowed to denied (recording.py)
        self.withdrawals = WithdrawalWatch()
        #: a person's other requests wait at send time until one of their pages has been read for refusals
        self.first_pages = FirstPageGate()
        #: the page of each item that cannot carry its provenance, for the guard pipeline
        self.item_pages = ItemPages()
        #: every person a decision did not allow: a log line may not name them (personlines.py)
        self.denied_people = DeniedPeople()
        assert crawler.stats is not None
        self.stats = crawler.stats
        #: the decision that let each request go out (or the response in), its URL, and the spider's copy of it
        self._decided: weakref.WeakKeyDictionary[Request, tuple[str, Decision, Decision]] = weakref.WeakKeyDictionary()
        #: requests whose response said nofollow (by identity: meta copied to the next page must not carry it)
        self.nofollowed: weakref.WeakSet[Request] = weakref.WeakSet()  #: responses whose links go unfollowed
        #: requests whose link check was made by the spider middleware, with the URL it was made for
        self._link_checked: weakref.WeakKeyDictionary[Request, str] = weakref.WeakKeyDictionary()
        #: the facts each request's last send-time allow was made for (:meth:`as_decided`)
        self._send_facts: weakref.WeakKeyDictionary[Request, RequestFacts] = weakref.WeakKeyDictionary()
        #: Scrapy filters by level in its handler, not on the logger: skip building DEBUG lines nobody keeps
        self._debug = crawler.settings.get("LOG_LEVEL", "DEBUG") in ("DEBUG", logging.DEBUG)
        self._turn_scheduled = False
        self._waiters: list[asyncio.Future[None]] = []  #: decisions waiting for this turn's audit write
        self.stats.set_value("consentcrawl/purpose", config.purpose)
        self.stats.set_value("consentcrawl/mode", config.mode)
        crawler.signals.connect(self._spider_closed, signal=signals.spider_closed)
        #: Scrapy's download handlers' lines about a page, held until the page is decided (downloadlines.py)
        self.download_lines = DownloadLines.install(crawler)
        logger.info(
            "consentcrawl: purpose %r, mode %s, %d platform(s) from %s, authorizations from %s, audit log %s",
            config.purpose, config.mode, len(config.platforms),
            ", ".join(config.platform_files) or "(none)", config.authorizations_source or "(none)",
            config.audit_log or "(off)",
        )
        if config.fixed_now is not None:  # a replay setting: a crawl that keeps it decides as of a time gone by
            logger.warning("consentcrawl: CONSENTCRAWL_NOW is set: every decision is made as of %s, not the clock; "
                           "withdrawals and expiries after that time are not honoured (for replays and tests only)",
                           config.fixed_now.isoformat())

    @property
    def enforce(self) -> bool:
        return self.config.enforce

    # -- what was decided ----------------------------------------------------------------------------------

    def decision_for(self, request: Request | None, url: str | None = None) -> Decision | None:
        """The decision made for this very request object at this URL, or None."""
        if request is None:
            return None
        entry = self._decided.get(request)
        if entry is None or entry[0] != (url if url is not None else request.url):
            return None
        return entry[1]

    def decisions_at(self, url: str) -> list[Decision]:
        """The decisions made at ``url`` for requests still alive (a line that names a request only as text)."""
        return [decision for at, decision, _ in list(self._decided.values()) if at == url]

    def _remember(self, request: Request, url: str, decision: Decision) -> None:
        entry = self._decided.get(request)  # the response phase remembers the send time's decision again, often
        spider = entry[2] if entry is not None and entry[1] is decision else decision.for_spider()
        self._decided[request] = (url, decision, spider)
        request.meta[META_DECISION] = spider  # for the spider to read; never read back

    def remember_refusal(self, request: Request, decision: Decision) -> None:
        """A deny that drops ``request`` before it is sent, remembered as a send-time deny is: what reports an error
        or a line for it afterwards (a project's own error for the refusal, ``scrapy parse``) reads its reason."""
        self._remember(request, request.url, decision)

    def nofollow(self, request: Request | None) -> bool:
        """Whether the response to this very request said nofollow."""
        return request is not None and request in self.nofollowed

    def mark_link_checked(self, request: Request) -> None:
        self._link_checked[request] = request.url

    def link_checked(self, request: Request) -> bool:
        return self._link_checked.get(request) == request.url

    # -- deciding ------------------------------------------------------------------------------------------

    def facts_for(self, request: Request | None, url: str, now: datetime) -> tuple[RequestFacts | None,
                                                                                      Decision | None]:
        """Facts for a URL (with the request's ``consentcrawl_subject``), or a deny when it cannot be understood."""
        try:  # a header put in past Headers' checks (a bare str or bytes) cannot be read: denied, with its cause
            inputs: dict[str, Any] = {}
            if request is not None:
                body = request.body
                inputs = request_inputs(request.meta, request.headers, body,
                                        request.headers.get(b"Content-Type") if body else None,
                                        content_encoding(request.headers) if body else None)
            facts = self.engine.facts(url, self.config.purpose, now, **inputs)
        except Exception as exc:  # noqa: BLE001 - a request we cannot read is denied, not waved through
            return None, bad_url(url, exc)
        return facts, None

    async def prefilter(self, request: Request) -> Decision:
        """The request phase: what can be decided before the download slot's wait, robots.txt included.

        A deny is recorded and stands (:meth:`remember_refusal` when it drops the request). An allow is only a
        promise that :meth:`decide_send` is worth making; that one is recorded.
        """
        url = request.url
        facts, decision = self.facts_for(request, url, self.config.now())
        if facts is not None:
            robots = self.robots.fresh(facts.canonical.origin)
            if robots is not None:  # nothing to wait for: the full decision at once (it includes consent's)
                decision = await decide_full(self, facts, robots)
            else:  # a deny by consent is not worth waiting for robots.txt
                decision = await self.decider.decide_consent(facts)
                if not self.drops(decision):  # in report mode too: robots.txt is enforced there, so it must be known
                    robots = await self.robots_for(facts)
                    facts = replace(facts, now=self.config.now())  # the time read after the wait for robots.txt
                    decision = await decide_full(self, facts, robots)
            decision = await through(self, facts, decision, fetch=True) if facts.via else decision
        assert decision is not None
        if decision.allowed:
            return decision
        now = self.config.now()
        decision = await self.record_grouped(decision, url, facts.canonical.url if facts else None, "request", time=now)
        if self.drops(decision):
            self.remember_refusal(request, decision)
        return decision

    async def decide_send(self, request: Request) -> Decision:
        """The authoritative decision, immediately before the request goes to the network, at that time.

        robots.txt is the file in force for the origin (fetched by the request phase); a request that never passed
        the request phase has none, and is denied (``error.robots-missing``). The person's records are looked up
        again when the store's version changed since the decision they rest on was made.

        What goes to the network is the request as it is when this returns. The decision waits (the store's
        lookup, the audit write), and the event loop may meanwhile run code that holds the request and changes it
        (a spider callback): an allow is returned only while the request reads as the facts it was made for (read
        again, and compared), else the request is decided again as it now is, and denied (``error.internal``) when
        it keeps changing.
        """
        for _ in range(SEND_TRIES):
            url = request.url
            now = self.config.now()
            facts, decision = self.facts_for(request, url, now)
            if facts is not None:
                origin = facts.canonical.origin
                robots = self.robots.cached(origin)
                decision = await self.decider.decide(facts, robots, self.site_signals.cached(origin, robots))
                decision = await through(self, facts, decision, fetch=False) if facts.via else decision
            assert decision is not None
            decision = await self.record_grouped(decision, url, facts.canonical.url if facts else None, "request",
                                                 time=now)
            if facts is None or not decision.allowed or self.facts_for(request, request.url, now)[0] == facts:
                self._remember(request, url, decision)
                if facts is not None and decision.allowed:
                    self._send_facts[request] = facts
                return decision
            self.send_deferred(decision, request, 0.0)  # changed while decided: this allow does not go
        decision = self.record(deny(Stage.ERROR, "error.internal", evidence=(Evidence("error", request.url, {
            "error": "RequestChanged", "message": f"the request changed while each of {SEND_TRIES} send-time "
                                                  "decisions waited"}),)), request.url, None, "request")
        self._remember(request, request.url, decision)
        return decision

    def as_decided(self, request: Request) -> bool:
        """Whether the request still reads as the facts its last send-time allow was made for: a caller that awaits
        anything between that allow and the send asks it before sending (the request may have changed)."""
        facts = self._send_facts.get(request)
        return facts is not None and self.facts_for(request, request.url, facts.now)[0] == facts

    def person_of(self, request: Request) -> tuple[str, str] | None:
        """(platform, subject key) of the person a request's URL names, or None."""
        facts, _ = self.facts_for(request, request.url, self.config.now())
        if facts is None or facts.platform is None or facts.subject is None:
            return None
        return facts.platform.name, facts.subject

    def read_first_page(self, request: Request, response: Response) -> PageReading | None:
        """A person's first page, read for refusals as soon as it is downloaded (:class:`FirstPageGate`)."""
        return book_refusals(self, request, response)

    async def decide_request(self, request: Request, phase: str = "request", url: str | None = None) -> Decision:
        """The full decision for a URL of a request, robots.txt fetched if needed, recorded in ``phase``."""
        url = url or request.url
        facts, decision = self.facts_for(request, url, self.config.now())
        if facts is not None:
            robots = await self.robots_for(facts)
            now = self.config.now()
            facts, decision = self.facts_for(request, url, now)
            if facts is not None:
                decision = await through(self, facts, await decide_full(self, facts, robots), fetch=True)
        else:
            now = self.config.now()
        assert decision is not None
        return await self.record_grouped(decision, url, facts.canonical.url if facts else None, phase, time=now)

    async def decide_url_now(self, url: str, *, phase: str = "browser") -> Decision:
        """The full decision for a URL a browser is about to request (no Scrapy request exists); never raises."""
        try:
            if not is_checked_url(url):
                raise ValueError("not an http(s) URL")
            return await self.decide_request(Request(url), phase=phase, url=url)
        except Exception as exc:  # noqa: BLE001 - fail closed
            return self.record(bad_url(url, exc), url, None, phase, time=self.config.now())

    async def decide_response(self, request: Request, response: Response) -> Decision:
        """The response phase: the request's decision, made again if the response is for another URL (a handler
        that followed a redirect) or if none was made at send time (an HTTP cache hit); then the page's signals."""
        decision = self.decision_for(request)
        if decision is None:
            decision = await self.decide_request(request, phase="response")
        if decision.allowed and response.url != request.url:
            decision = await self.decide_request(request, phase="response", url=response.url)
        decision = check_refusals(self, request, response, decision)  # the person's own say, whatever else says
        if decision.allowed:
            decision = check_tags(self, request, response, decision)
        if decision.allowed:
            decision = await check_signals(self, request, response, decision)
        if decision.allowed:  # the person's say as the page is handed on: a withdrawal while it came (stillallowed.py)
            decision = await still_allowed(self, request, response.url, decision)
        self._remember(request, response.url, decision)
        self.download_lines.decided(request, decision)
        return decision

    async def robots_for(self, facts: RequestFacts) -> RobotsFile | None:
        try:
            return await self.robots.get(facts.canonical.origin)
        except Exception:
            logger.exception("consentcrawl: could not obtain robots.txt for %s", facts.canonical.origin)
            return None

    async def decide_item(self, platform: str | None, subject: str, url: str | None) -> Decision:
        now = self.config.now()
        decision = await self.decider.decide_subject(platform, subject, self.config.purpose, now)
        return await self.record_grouped(decision, url, None, "item", time=now)

    def record_nofollow(self, dropped: Request, response: Response) -> Decision:
        """A link on a nofollow response: recorded as a deny (``response.nofollow``) whether or not enforced."""
        decision = deny(Stage.RESPONSE, "response.nofollow", evidence=(
            Evidence("nofollow", response.url, {"link": dropped.url}),))
        return self.record(decision, dropped.url, None, "output", time=self.config.now())
