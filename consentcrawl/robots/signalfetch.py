"""A site's signal files inside a crawl (issue #13): ``/.well-known/tdmrep.json`` and the ``tdm-policy`` documents
it names, the RSL licences robots.txt names (and the licences and policies a response names), ``/ai.txt`` in
conservative mode.

Fetched with robots.txt's rules and robots.txt's machinery: through Scrapy's downloader as consentcrawl's own side
requests (:meth:`ScrapyRobotsFetcher.side_request`: recognised by identity, each redirect hop asked before it is
sent), once per file URL with one fetch in flight (single flight), kept by :class:`SignalFileCache` (at most 24 h;
an unavailable file is retried with a backoff) and classified by :func:`consentcrawl.signals.fetch.from_response`
(2xx statement, 4xx no statement, anything else unavailable).

The files of an origin are handed to the engine as one :class:`SiteFiles` object, the same object as long as none
of its files was fetched again: the site check's memo (:class:`consentcrawl.cache.SignalMemo`) is keyed by it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from ..distributed.shared import SharedStateUnavailable
from ..signals.evaluate import SiteFiles, licence_links
from ..signals.fetch import WELL_KNOWN, SignalFile, SignalFileCache, SignalFileStatus, from_response, unavailable
from ..signals.odrl import SIGNAL as POLICY
from ..signals.rsl import licences_to_fetch
from ..signals.tdmrep import site_policy_urls

if TYPE_CHECKING:
    from .fetch import RobotsFile
    from .scrapyfetch import ScrapyRobotsFetcher

logger = logging.getLogger("consentcrawl")

#: asked before each hop of a signal file is sent: (URL, whether it is the file's own URL) -> None or the refusal
SignalHopCheck = Callable[[str, bool], Awaitable["str | None"]]


def site_file_urls(origin: str, robots: RobotsFile | None, conservative: bool) -> list[tuple[str, str]]:
    """(signal, URL) of every site-level file an origin's decision reads."""
    urls = [("tdmrep", origin + WELL_KNOWN["tdmrep"])]
    if conservative:
        urls.append(("ai-txt", origin + WELL_KNOWN["ai-txt"]))
    urls += [("rsl", url) for url in licences_to_fetch(link.url for link in licence_links(SiteFiles(robots)))]
    return urls


def policy_urls(origin: str, files: dict[str, SignalFile]) -> list[tuple[str, str]]:
    """(signal, URL) of the ``tdm-policy`` documents the origin's fetched tdmrep.json names: fetched after it, each
    once, for the evidence. Asked at every decision: most origins publish no tdmrep.json, which is answered first."""
    tdmrep = files.get(origin + WELL_KNOWN["tdmrep"])
    if tdmrep is None or tdmrep.status is not SignalFileStatus.OK:
        return []
    return [(POLICY, url) for url in site_policy_urls(tdmrep)]


def assemble(origin: str, robots: RobotsFile | None, files: dict[str, SignalFile], conservative: bool,
             last: SiteFiles | None) -> SiteFiles:
    """The origin's :class:`SiteFiles` from fetched files by URL; ``last`` again when nothing changed."""
    tdmrep = files.get(origin + WELL_KNOWN["tdmrep"])
    ai_txt = files.get(origin + WELL_KNOWN["ai-txt"]) if conservative else None
    licences: dict[str, SignalFile] = {}
    policies: dict[str, SignalFile] = {}
    for f in files.values():
        if f.signal == "rsl":
            licences[f.url] = f
        elif f.signal == POLICY:
            policies[f.url] = f
    if (last is not None and last.robots is robots and last.tdmrep is tdmrep and last.ai_txt is ai_txt
            and _same(last.licences, licences) and (not (policies or last.policies) or _same(last.policies, policies))):
        return last
    return SiteFiles(robots, tdmrep, ai_txt, licences, policies)


def _same(last: Mapping[str, SignalFile], now: Mapping[str, SignalFile]) -> bool:
    return len(last) == len(now) and all(last.get(u) is f for u, f in now.items())


class ScrapySignalFetcher:
    """The signal files of each origin, fetched through :class:`ScrapyRobotsFetcher`'s side requests."""

    def __init__(self, robots: ScrapyRobotsFetcher, cache: SignalFileCache, now: Callable[[], datetime],
                 may_fetch: SignalHopCheck, conservative: bool = True) -> None:
        self.robots = robots
        self.cache = cache
        self.now = now
        self.may_fetch = may_fetch
        self.conservative = conservative
        self._inflight: dict[str, asyncio.Future[SignalFile]] = {}
        self._last: dict[str, SiteFiles] = {}  #: origin -> the files last handed out
        self._files: dict[str, SignalFile] = {}  #: URL -> the last fetch, whatever its age (send time falls back)

    def fresh(self, origin: str, robots: RobotsFile | None) -> SiteFiles | None:
        """What :meth:`get` returns when every file is cached and still fresh (no fetch, no wait); None when one
        must be fetched. The common case of a crawl, asked without a coroutine and a task per file."""
        now = self.now()
        files: dict[str, SignalFile] = {}
        for _signal, url in site_file_urls(origin, robots, self.conservative):
            file = self.cache.get(url, now)
            if file is None:
                return None
            files[url] = file
        for _signal, url in policy_urls(origin, files):
            file = self.cache.get(url, now)
            if file is None:
                return None
            files[url] = file
        return self._assemble(origin, robots, files)

    async def get(self, origin: str, robots: RobotsFile | None) -> SiteFiles:
        """The origin's files in force now, fetched where they are not (or no longer) cached."""
        wanted = site_file_urls(origin, robots, self.conservative)
        got = await asyncio.gather(*(self.file(signal, url) for signal, url in wanted))
        files = {f.url: f for f in got}
        got = await asyncio.gather(*(self.file(signal, url) for signal, url in policy_urls(origin, files)))
        return self._assemble(origin, robots, {**files, **{f.url: f for f in got}})

    def cached(self, origin: str, robots: RobotsFile | None) -> SiteFiles:
        """The files the send-time decision uses: the last fetched, whatever their age. A file never fetched is
        unavailable ("not fetched before the request was sent"): it denies what its signal covers."""
        now = self.now()
        files: dict[str, SignalFile] = {}
        for signal, url in site_file_urls(origin, robots, self.conservative):
            file = self._files.get(url)
            files[url] = file if file is not None else unavailable(signal, url, now, "not fetched before sending")
        for signal, url in policy_urls(origin, files):
            file = self._files.get(url)
            files[url] = file if file is not None else unavailable(signal, url, now, "not fetched before sending")
        return self._assemble(origin, robots, files)

    async def licences(self, urls: Iterable[str], signal: str = "rsl") -> dict[str, SignalFile]:
        """RSL licences a response names (its ``Link`` header or ``<link>``), or with ``signal="tdm-policy"`` the
        ``tdm-policy`` it names, fetched before it is released (at most :data:`~consentcrawl.signals.rsl.MAX_LICENCES`;
        one not fetched denies as unavailable)."""
        got = await asyncio.gather(*(self.file(signal, url) for url in licences_to_fetch(urls)))
        return {f.url: f for f in got}

    def _assemble(self, origin: str, robots: RobotsFile | None, files: dict[str, SignalFile]) -> SiteFiles:
        site = assemble(origin, robots, files, self.conservative, self._last.get(origin))
        self._last[origin] = site
        return site

    async def file(self, signal: str, url: str) -> SignalFile:
        cached = self.cache.get(url, self.now())
        if cached is not None:
            return cached
        task = self._inflight.get(url)
        if task is None:
            task = asyncio.ensure_future(self._fetch(signal, url))
            self._inflight[url] = task
            task.add_done_callback(functools.partial(self._forget, url))
        return await asyncio.shield(task)

    def _forget(self, url: str, _task: object) -> None:
        self._inflight.pop(url, None)

    async def _fetch(self, signal: str, url: str) -> SignalFile:
        def ok(status: int, body: bytes, final: str, hops: tuple[str, ...], at: datetime) -> SignalFile:
            return from_response(signal, url, status, body, at)

        def fail(cause: str, status: int | None, final: str, hops: tuple[str, ...], at: datetime) -> SignalFile:
            return unavailable(signal, url, at, cause, http_status=status)

        try:
            file = await self.robots.side_request(url, lambda hop: self.may_fetch(hop, hop == url), ok, fail,
                                                  "signals")
        except SharedStateUnavailable as exc:  # denied now, not remembered: tried again once Redis answers
            logger.warning("consentcrawl: %s file not known: %s", signal, exc)
            return unavailable(signal, url, self.now(), str(exc))
        except Exception as exc:  # noqa: BLE001 - a file we could not fetch is unavailable: fail closed
            file = unavailable(signal, url, self.now(), f"{type(exc).__name__}: {exc}".rstrip(": "))
        stats = self.robots.crawler.stats
        if stats is not None:
            stats.inc_value(f"consentcrawl/signals/{file.status.value}")
        if file.status is SignalFileStatus.UNAVAILABLE and signal == POLICY:
            logger.warning("consentcrawl: tdm-policy on %s unavailable (%s): recorded, the reservation decides",
                           url.split("/", 3)[2] if "//" in url else url, file.cause)
        elif file.status is SignalFileStatus.UNAVAILABLE:
            logger.warning("consentcrawl: %s file of %s unavailable (%s): denying the purposes it covers",
                           signal, url.split("/", 3)[2] if "//" in url else url, file.cause)
        self.cache.put(file, min(file.fetched_at, self.now()))  # from the time it was fetched
        self._files[url] = file
        return file
