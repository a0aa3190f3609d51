"""robots.txt inside a crawl: fetched once per origin (past the slot queues: sidedownload); callers wait on one fetch.

Redirects are followed here, hop by hop, rather than by Scrapy's RedirectMiddleware: a hop Scrapy would filter
(offsite, its own redirect limit) must not turn into allow-all, and the rules found apply to the original origin
(RFC 9309 §2.3.1.2). Each hop is a request like any other: before it is sent, ``may_fetch`` is asked, and a hop
we would deny (a redirect to a person's profile, say) is never fetched; the origin is then unreachable.

Our requests accept any type and ask for the whole file, unconditionally (the send-time handler sets ``Accept: */*``
and takes off a ``Range`` or a precondition, ``If-Match`` and the like, that a project's ``DEFAULT_REQUEST_HEADERS``
or downloader middleware put on them): a 406, 412 or 416 to the project's headers would read as "no robots.txt". A
part of a file (a ``206`` a server sends anyway, or a body cut short that a project with
``DOWNLOAD_FAIL_ON_DATALOSS = False`` gets as far as it arrived) is a failure to fetch, not the file: the part
that never arrived may hold the rule that applies. A body still compressed (a project that turns
HttpCompressionMiddleware off, ``COMPRESSION_ENABLED = False``, with a server that compresses anyway) is
decompressed here: its bytes read as rules say nothing, which would be allow-all.

Retries are not Scrapy's either (``dont_retry``): RetryMiddleware answers with a copy of the request, a new object
this fetcher does not know, whose request phase would wait for this very robots.txt fetch: a deadlock. A
robots.txt that cannot be fetched makes the origin unreachable, and :class:`RobotsCache` tries it again later.

The side requests are recognised by identity (:attr:`ScrapyRobotsFetcher.own`), never by a meta flag a spider
could copy onto its own requests.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urljoin

from scrapy import Request
from scrapy.http.request import NO_CALLBACK

from ..distributed.fetches import RawFetch
from ..distributed.shared import SharedStateUnavailable
from ..sidedownload import download_side
from .body import content_encoding, decoded_body
from .cache import RobotsCache
from .fetch import MAX_REDIRECTS, REDIRECT_STATUSES, RobotsFile, RobotsStatus, from_response, robots_url, unreachable
from .partial import partial_cause

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from ..distributed.fetches import SharedFetches

logger = logging.getLogger("consentcrawl")

_T = TypeVar("_T")

#: asked before each hop is sent: None to fetch it, or the reason it must not be fetched
HopCheck = Callable[[str], Awaitable["str | None"]]


class ScrapyRobotsFetcher:
    """The robots.txt of each origin, through Scrapy's downloader middlewares, cached by :class:`RobotsCache`."""

    PRIORITY = 1000

    def __init__(self, crawler: Crawler, cache: RobotsCache, now: Callable[[], datetime], may_fetch: HopCheck,
                 shared: SharedFetches | None = None) -> None:
        self.crawler = crawler
        #: the cluster's fetches in a distributed crawl (docs/distributed.md); None in one process
        self.shared = shared
        self.cache = cache
        self.now = now
        self.may_fetch = may_fetch
        #: the requests this fetcher made: the consent middlewares let exactly these through unchecked
        self.own: weakref.WeakSet[Request] = weakref.WeakSet()
        self._inflight: dict[str, asyncio.Future[RobotsFile]] = {}
        #: the last file used per origin, whatever its age: what a send-time decision falls back on
        self._last: dict[str, RobotsFile] = {}

    def cached(self, origin: str) -> RobotsFile | None:
        """The file in force for ``origin`` now, else the last one used; None if the origin was never fetched."""
        return self.cache.get(origin, self.now()) or self._last.get(origin)

    def fresh(self, origin: str) -> RobotsFile | None:
        """What :meth:`get` returns without fetching: the file in force for ``origin`` now, or None when it must be
        fetched (again)."""
        return self.cache.get(origin, self.now())

    async def get(self, origin: str) -> RobotsFile:
        cached = self.cache.get(origin, self.now())
        if cached is not None:
            return cached
        task = self._inflight.get(origin)
        if task is None:
            task = asyncio.ensure_future(self._fetch(origin))
            self._inflight[origin] = task
            task.add_done_callback(functools.partial(self._forget, origin))
        return await asyncio.shield(task)

    def _forget(self, origin: str, _task: object) -> None:
        self._inflight.pop(origin, None)

    async def _fetch(self, origin: str) -> RobotsFile:
        try:
            file = await self._download(robots_url(origin))
        except SharedStateUnavailable as exc:  # denied now, not remembered: tried again once Redis answers
            logger.warning("consentcrawl: robots.txt of %s not known: %s", origin, exc)
            return unreachable(robots_url(origin), self.now(), str(exc))
        stats = self.crawler.stats
        assert stats is not None
        stats.inc_value(f"consentcrawl/robots/{file.status.value}")
        # from the time it was fetched: a file another worker fetched a while ago expires when it would have there
        used = self.cache.put(origin, file, min(file.fetched_at, self.now()))
        self._last[origin] = used
        if file.status is RobotsStatus.UNREACHABLE:
            if used is file:
                logger.warning("consentcrawl: robots.txt %s unreachable (%s): denying the whole origin",
                               file.url, file.cause)
            else:
                logger.warning("consentcrawl: robots.txt %s unreachable (%s): keeping the copy fetched at %s",
                               file.url, file.cause, used.fetched_at.isoformat())
        return used

    async def _download(self, url: str) -> RobotsFile:
        def ok(status: int, body: bytes, final: str, hops: tuple[str, ...], at: datetime) -> RobotsFile:
            return from_response(url, status, body, at, final_url=final, redirects=hops)

        def fail(cause: str, status: int | None, final: str, hops: tuple[str, ...], at: datetime) -> RobotsFile:
            return unreachable(url, at, cause, http_status=status, final_url=final, redirects=hops)

        return await self.side_request(url, self.may_fetch, ok, fail, "robots")

    async def side_request(self, url: str, may_fetch: HopCheck, ok: Callable[..., _T], fail: Callable[..., _T],
                           stat: str) -> _T:
        """One of consentcrawl's own side requests (robots.txt, a site's signal files): past the slot queues,
        recognised by identity (:attr:`own`), each redirect hop asked of ``may_fetch`` before it is sent.

        ``ok(status, body, final_url, hops, fetched_at)`` classifies the final answer;
        ``fail(cause, status, final_url, hops, fetched_at)`` is every way of not getting one (a refused hop, too
        many redirects, a network error). In a distributed crawl (:attr:`shared`) the cluster fetches each URL
        once and every worker classifies that one result; a shared state that cannot be asked raises
        :class:`~consentcrawl.distributed.shared.SharedStateUnavailable`."""
        if self.shared is None:
            raw = await self._raw_request(url, may_fetch, stat)
        else:
            here: list[bool] = []

            async def fetch_here() -> RawFetch:
                here.append(True)
                return await self._raw_request(url, may_fetch, stat)

            raw = await self.shared.fetch(url, fetch_here, variant=self._user_agent())
            if not here:
                raw = await self._as_if_fetched_here(raw, may_fetch)
        if raw.answered:
            assert raw.status is not None
            return ok(raw.status, raw.body, raw.final_url, raw.hops, raw.fetched_at)
        return fail(raw.cause, raw.status, raw.final_url, raw.hops, raw.fetched_at)

    def _user_agent(self) -> str:
        """The User-Agent this crawl's side requests go out with (Scrapy's ``UserAgentMiddleware``: the spider's
        ``user_agent``, else ``USER_AGENT``): a server may answer robots.txt differently for another one (a 403 to
        one bot, which reads as "no robots.txt", and rules to the rest), so only workers that send the same one
        share a fetch. A User-Agent in ``DEFAULT_REQUEST_HEADERS`` is the one sent (``DefaultHeadersMiddleware`` puts
        it on first): both are in the key, so workers that differ in either fetch their own."""
        agent = getattr(self.crawler.spider, "user_agent", None) or self.crawler.settings.get("USER_AGENT")
        defaults = self.crawler.settings.getdict("DEFAULT_REQUEST_HEADERS")
        header = next((str(v) for k, v in defaults.items() if str(k).strip().lower() == "user-agent"), None)
        return str(agent or "") if header is None else f"{agent or ''}\n{header}"

    async def _as_if_fetched_here(self, raw: RawFetch, may_fetch: HopCheck) -> RawFetch:
        """Another worker's answer, as this worker would have had it: each URL it was fetched through is asked of
        this worker's own checks (its purpose, its platforms' terms, its store), as :meth:`_raw_request` asks
        them before each hop. A hop it may not fetch ends it there, as it would have: the answer another worker
        could read is not this worker's to read (robots.txt redirected to a page its purpose may not touch)."""
        if not raw.answered:
            return raw
        for i, hop in enumerate((*raw.hops, raw.final_url)):
            refused = await may_fetch(hop)
            if refused is not None:
                what = "a redirect to a URL" if i else "a URL"
                return RawFetch(False, None, b"", hop, raw.hops[:i], f"{what} we may not fetch ({refused})",
                                raw.fetched_at)
        return raw

    async def _raw_request(self, url: str, may_fetch: HopCheck, stat: str) -> RawFetch:
        stats = self.crawler.stats
        assert stats is not None
        current, hops = url, list[str]()

        def fail(cause: str, status: int | None) -> RawFetch:
            return RawFetch(False, status, b"", current, tuple(hops), cause, self.now())

        while True:
            refused = await may_fetch(current)
            if refused is not None:
                # never log the URL itself at WARNING: it may name a person
                what = "a redirect to a URL" if hops else "a URL"  # the file's own URL may be refused too
                return fail(f"{what} we may not fetch ({refused})", None)
            request = Request(current, priority=self.PRIORITY, callback=NO_CALLBACK, dont_filter=True,
                              meta={"dont_obey_robotstxt": True, "dont_cache": True, "dont_redirect": True,
                                    "dont_retry": True, "handle_httpstatus_all": True, "allow_offsite": True})
            self.own.add(request)
            stats.inc_value(f"consentcrawl/{stat}/request_count")
            try:
                response = await download_side(self.crawler, request)
            except Exception as exc:  # noqa: BLE001 - every failure to fetch fails closed
                # the cause is logged at WARNING: Scrapy's errors name the URL (a timeout's), which may name a person
                cause = f"{type(exc).__name__}: {exc}".replace(request.url, "<url>").replace(current, "<url>")
                return fail(cause.rstrip(": "), None)
            stats.inc_value(f"consentcrawl/{stat}/response_status_count/{response.status}")
            partial = partial_cause(response.status, response.flags)
            if partial is not None:  # the missing part may hold the rule that applies
                return fail(partial, response.status)
            coding = content_encoding(response.headers)  # HttpCompressionMiddleware off (COMPRESSION_ENABLED)
            try:
                body = decoded_body(response.body, coding) if coding else response.body
            except ValueError as exc:
                return fail(f"its Content-Encoding cannot be undone ({exc})", response.status)
            location = response.headers.get(b"Location")
            if response.status in REDIRECT_STATUSES and location:
                hops.append(current)
                if len(hops) > MAX_REDIRECTS:
                    return fail(f"more than {MAX_REDIRECTS} redirects", response.status)
                current = urljoin(current, location.decode("latin-1").strip())
                if not current.startswith(("http://", "https://")):
                    return fail("a redirect to a non-HTTP URL", response.status)
                continue
            return RawFetch(True, response.status, body, current, tuple(hops), "", self.now())
