"""``ConsentDownloadHandler``: the authoritative decision, made at send time, around whichever handler downloads.

A decision counts for the moment it is made. The request phase decides before a request waits in its download
slot (behind a ``Crawl-delay``, say); a grant can expire and a person can withdraw during that wait. A download
handler is called after the wait, immediately before the network, so the decision here reads the clock then and
its audit line is on disk before a byte is sent.

The add-on installs it for ``http`` and ``https`` and keeps the handler it replaces (Scrapy's, scrapy-playwright's,
scrapy-zyte-api's) as the fallback that does the download, in ``CONSENTCRAWL_HTTP_HANDLER`` and
``CONSENTCRAWL_HTTPS_HANDLER`` (as scrapy-zyte-api wraps ``DOWNLOAD_HANDLERS``).

It also keeps robots.txt's ``Crawl-delay`` per origin, whatever download slot a request came through: Scrapy's
slot spaces the requests *of one slot* only, and a spider can give every request a slot of its own
(``meta["download_slot"]``, per session or proxy). A request to an origin with a delay waits here until the delay
since the origin's previous fetch (its robots.txt included) *ended* has passed (:class:`OriginSpacing`), then is
decided with the clock read after that wait. In a distributed crawl the schedule is the cluster's, in Redis
(:mod:`consentcrawl.distributed.send`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import weakref
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler
from scrapy.exceptions import IgnoreRequest, NotConfigured, StopDownload
from scrapy.http import Response as ScrapyResponse
from scrapy.utils.misc import load_object

from ._scrapy_internals import download_past_slots, no_silent_resend, reserve_slot_delay
from .checks.robots import crawl_delay
from .distributed.send import ended_shared, send_shared, side_shared, unsent_shared
from .errors import ConfigError
from .middlewares import REFUSALS, ConsentDenied, ConsentMisconfigured, guard_refused_errback
from .originspacing import OriginSpacing, TurnNotFree
from .pagedenied import close_browser_page
from .personlines import PersonLines
from .refusalphase import actor_read, actor_request
from .robots.partial import unknown_length_of
from .runtime import get_runtime, is_checked_url, refuse_to_start
from .settings import read
from .startup import build_wrapped, built_wrong
from .urls import canonicalize

if TYPE_CHECKING:

    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from typing_extensions import Self

    from .runtime import ConsentRuntime

logger = logging.getLogger("consentcrawl")

#: the handlers Scrapy uses when the project sets none
DEFAULT_FALLBACK = "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler"
FALLBACK_SETTINGS = {"http": "CONSENTCRAWL_HTTP_HANDLER", "https": "CONSENTCRAWL_HTTPS_HANDLER"}


def _origin(url: str) -> str | None:
    try:
        return canonicalize(url).origin
    except Exception:  # noqa: BLE001 - a URL we cannot read is denied by the decision, with its cause
        return None


#: headers a project (its ``DEFAULT_REQUEST_HEADERS``, a downloader middleware of its own) may put on our own side
#: requests that make the answer something other than the whole file: a part (206), or a 4xx that reads as "no
#: robots.txt" (416 to a ``Range``, 412 to a failed precondition), or a 304 with no file. Taken off at send time,
#: where every middleware has run (RFC 9110 §13.1's preconditions, and ``Range``)
_ANSWER_CHANGING = (b"Range", b"If-Range", b"If-Match", b"If-None-Match", b"If-Modified-Since",
                    b"If-Unmodified-Since")

#: each crawl's send-time handlers, by scheme: the response phase sends a cached page's linked actor through one
_handlers: weakref.WeakKeyDictionary[Crawler, dict[str, ConsentDownloadHandler]] = weakref.WeakKeyDictionary()


def handler_for(crawler: Crawler, scheme: str) -> ConsentDownloadHandler | None:
    """The crawl's send-time handler for ``scheme``, or None."""
    return (_handlers.get(crawler) or {}).get(scheme)


def send_time_handler(crawler: Crawler) -> ConsentDownloadHandler | None:
    """The crawl's send-time handler (any scheme's: each sends through its own fallback), or None."""
    handlers = _handlers.get(crawler) or {}
    return handlers.get("http") or handlers.get("https")


def _is_profile_page(runtime: ConsentRuntime, url: str) -> bool:
    """Whether ``url`` is a person's profile page itself (not a page under it) on its platform."""
    try:
        resolved = runtime.engine.resolved(url)
    except ValueError:
        return False
    return resolved.platform is not None and resolved.platform.is_profile_page(resolved.canonical.path_query)


class ConsentDownloadHandler:
    """Decides each request as it is sent, then hands it to the fallback handler; a deny is never downloaded."""

    lazy = False
    scheme: ClassVar[str] = "http"

    def __init__(self, crawler: Crawler, fallback: Any, max_crawl_delay: float) -> None:
        self.crawler = crawler
        self.fallback = fallback
        no_silent_resend(fallback)  # every send has its decision: a resend is a retry, decided again
        #: whether a body sent with no length is flagged here: Twisted's handler flags it ``partial`` itself,
        #: aiohttp's and httpx's read it to the end without a word (robots/partial.py)
        self._flags_length = not isinstance(fallback, HTTP11DownloadHandler)
        self.spacing = OriginSpacing(max_crawl_delay)
        #: how long a fetch with no timeout of its own (:meth:`_holds`) may hold its turn with a side request waiting
        self.side_turn_limit = crawler.settings.getfloat("DOWNLOAD_TIMEOUT") + max_crawl_delay
        #: the responses this handler downloaded for a checked request (by identity: the response phase reads and
        #: decides any other one, from the HTTP cache, as a page that was never sent)
        self._sent: weakref.WeakSet[Response] = weakref.WeakSet()
        #: the responses whose response phase this handler decided before handing them on (:meth:`_decide_page`),
        #: each with the request it was decided for (a cache storage may hand the same object to another request)
        self._decided: weakref.WeakKeyDictionary[Response, weakref.ref[Request]] = weakref.WeakKeyDictionary()
        #: the linked-actor requests sent while their person's first page holds the gate (never read as unsent:
        #: their person's gate would wait for itself)
        self._actors: weakref.WeakSet[Request] = weakref.WeakSet()
        _handlers.setdefault(crawler, {})[self.scheme] = self

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        setting = FALLBACK_SETTINGS[cls.scheme]
        try:
            fallback_cls = read(crawler.settings, setting) or load_object(DEFAULT_FALLBACK)
            max_crawl_delay = read(crawler.settings, "CONSENTCRAWL_MAX_CRAWL_DELAY")
        except ConfigError as exc:  # built before any other component: the one line naming it is logged here
            refuse_to_start(crawler, exc)
            raise NotConfigured(str(exc)) from None
        if issubclass(fallback_cls, ConsentDownloadHandler):
            built_wrong(crawler, ConfigError(f"{fallback_cls.__qualname__} names a consentcrawl handler, not one that "
                                             "downloads", source=setting))
            raise NotConfigured(setting)
        fallback = build_wrapped(crawler, fallback_cls, setting, "download_request", "a download handler")
        if fallback is None:
            raise NotConfigured(setting)
        # the engine's first component: the log line filter goes on the root handler Scrapy has just replaced
        PersonLines.install(crawler).on_root_handlers()
        return cls(crawler, fallback, float(max_crawl_delay))

    async def download_request(self, request: Request) -> Response:
        runtime = get_runtime(self.crawler)
        if runtime is None:
            raise ConsentMisconfigured
        if runtime.is_own(request):
            return await self._send_own(runtime, request)
        elif is_checked_url(request.url):
            person = runtime.person_of(request)
            # a person's other requests wait here until one of their pages has been read for refusals
            first = person is not None and await runtime.first_pages.enter(person)
            read = False
            stopped: StopDownload | None = None
            try:
                try:
                    response: Response = await self._send(runtime, request)
                except StopDownload as exc:  # the part that came goes to the errback: decided as any page first
                    if not isinstance(exc.response, ScrapyResponse):
                        raise
                    stopped, response = exc, exc.response
                # the page holds its slot: the side requests made now go past the slot queues (sidedownload.py)
                if first:
                    assert person is not None
                    read = await self._first_page(runtime, person, request, response)
                await self._decide_page(runtime, request, response)
                if stopped is not None:
                    raise stopped
                return response
            finally:
                if first:
                    assert person is not None
                    runtime.first_pages.done(person, read)
        return await self.fallback.download_request(request)  # type: ignore[no-any-return]

    def _holds(self, request: Request) -> float | None:
        """The longest ``request`` holds its origin's turn: the delay, then its own download timeout (meta)."""
        timeout = request.meta.get("download_timeout")
        return timeout + self.spacing.horizon if isinstance(timeout, (int, float)) and timeout > 0 else None

    async def _keep_slot_delay(self, request: Request, runtime: ConsentRuntime | None = None,
                               stat: str | None = None) -> None:
        """The wait a request sent past its download slot's queue owes the slot's ``DOWNLOAD_DELAY`` schedule (its
        place in it reserved now), counted in ``stat`` when it waits."""
        if (wait := reserve_slot_delay(self.crawler, request)) > 0:
            if runtime is not None and stat is not None:
                runtime.count(stat)
            await asyncio.sleep(wait)

    async def _send_own(self, runtime: ConsentRuntime, request: Request) -> Response:
        """One of our side requests (robots.txt, a signal file): decided again, past the slot queues in its slot's
        ``DOWNLOAD_DELAY`` schedule, in its origin's ``Crawl-delay`` turn (robots.txt's own fetch excepted).

        It waits behind pages taking the origin's turn in turn, not for one holding it past its bound (:meth:`_holds`):
        that page may wait for this very request (a browser's redirect hop on the origin, decided during its fetch,
        needing the origin's expired files). Then it fails: what its file covers is denied as unavailable."""
        for name in _ANSWER_CHANGING:  # a project's Range or precondition: a 206, 412 or 304 is not the file
            request.headers.pop(name, None)
        request.headers[b"Accept"] = b"*/*"  # a project's Accept: a negotiating server's 406 is not "no file"
        origin = _origin(request.url)
        # robots.txt goes at once (it is how the delay is known); the site's other files keep the delay
        delay = None if urlsplit(request.url).path == "/robots.txt" else self._delay(runtime, request.url)[1]
        try:  # only the wait for the turn raises TurnNotFree
            async with self.spacing.turn(origin, delay, self.side_turn_limit, self._holds(request)) as waited:
                if waited:
                    runtime.count("consentcrawl/crawl_delay/waited")
                # past the slot's queue (sidedownload.py), in its DOWNLOAD_DELAY schedule: a wait on the clock alone
                await self._keep_slot_delay(request, runtime, "consentcrawl/side_requests/slot_delay_waited")
                if runtime.distributed is not None and origin is not None:
                    await side_shared(runtime, request, origin, delay,
                                      functools.partial(self.spacing.off_the_clock, origin, delay))
                try:
                    url = request.url
                    refused = await runtime.may_send_own(url)  # each side request's hop, again at send time
                    if refused is not None:
                        raise IgnoreRequest(f"consentcrawl: {refused}")
                    if request.url != url:  # changed while decided (``Request._set_url``): only the URL decided goes
                        runtime.count("consentcrawl/side_requests/changed_url")
                        raise IgnoreRequest("consentcrawl: one of our own requests changed its URL while decided")
                except BaseException:
                    await unsent_shared(runtime, request, origin, delay, side=True)
                    raise
                return await self._fetch(runtime, request, origin, delay, side=True)
        except TurnNotFree as exc:
            runtime.count("consentcrawl/side_requests/turn_not_free")
            raise IgnoreRequest(f"consentcrawl: {exc}: a fetch from the origin held it") from None

    async def _first_page(self, runtime: ConsentRuntime, person: tuple[str, str], request: Request,
                          response: Response) -> bool:
        """A person's first page, read for refusals as soon as it is here, and the actor it links to sent for;
        whether the page said whose it is (:class:`~consentcrawl.refusalphase.FirstPageGate`)."""
        reading = runtime.read_first_page(request, response)
        if reading is not None and (reading.profile or (200 <= response.status < 300
                                                        and _is_profile_page(runtime, response.url))):
            runtime.first_pages.profile_read(person)  # an error page at the profile URL says nothing of theirs
        actor = actor_request(runtime, person, reading)
        if actor is not None:
            await self._read_actor(runtime, actor, person)
        return reading is not None and reading.profile

    async def _decide_page(self, runtime: ConsentRuntime, request: Request, response: Response) -> None:
        """The response phase (the person's refusals, robots tags, the page's signals), decided here, before the
        downloader hands the page on: Scrapy's ``response_downloaded`` signal (a project's extension that archives
        every download, AutoThrottle's INFO line) fires as this returns, before any downloader middleware, so a
        page the response phase drops must not come back from here. A deny is raised (the response phase's
        middleware refuses it from its ``process_response``, before another middleware's ``process_exception`` could
        send for the page again: pagedenied.py), never cached (``dont_cache``), its errback wrapped."""
        decision = await runtime.decide_response(request, response)
        if runtime.drops(decision):
            request.meta["dont_cache"] = True
            guard_refused_errback(runtime, request)
            await close_browser_page(request)
            raise ConsentDenied(decision)  # to its errback past the other middlewares' process_exception (pagedenied)
        self._decided[response] = weakref.ref(request)

    def decided(self, request: Request, response: Response) -> bool:
        """Whether any of the crawl's send-time handlers decided ``response``'s response phase already, for
        ``request``."""
        return any((ref := h._decided.get(response)) is not None and ref() is request
                   for h in _handlers.get(self.crawler, {}).values())

    def unsent(self, request: Request, response: Response) -> bool:
        """Whether ``response`` came back without a send-time handler (any scheme's) downloading it (the HTTP cache
        answered) for a request that is not a linked actor's: :meth:`read_unsent` reads it then."""
        handlers = _handlers.get(self.crawler, {}).values()
        return not any(response in h._sent or request in h._actors for h in handlers)

    async def read_unsent(self, runtime: ConsentRuntime, request: Request, response: Response) -> None:
        """A person's page that came back without being sent (the HTTP cache answered it), before the response
        phase decides it: read as a page this handler sends is, behind the same gate, its linked actor sent for.
        The actor is where a person may have refused since the page was cached, and a crawl answered from the cache
        would otherwise never read it."""
        person = runtime.person_of(request)
        if person is None or not await runtime.first_pages.enter(person):
            return
        read = False
        try:
            read = await self._first_page(runtime, person, request, response)
        finally:
            runtime.first_pages.done(person, read)

    async def _send(self, runtime: ConsentRuntime, request: Request) -> Response:
        """The origin's ``Crawl-delay``, the decision at send time (a deny raises), the download.

        A refused request's errback is wrapped here, as it is refused (errbacks.py). The refusal reaches it past
        every other downloader middleware's ``process_exception`` (pagedenied.py): none answers it with a page of its
        own or a request sent again."""
        try:
            return await self._decide_and_send(runtime, request)
        except REFUSALS:
            guard_refused_errback(runtime, request)
            raise

    async def _decide_and_send(self, runtime: ConsentRuntime, request: Request) -> Response:
        origin, delay = self._delay(runtime, request.url)
        # one fetch at a time per origin with a delay in this process, a distributed one's too: the cluster's
        # schedule counts from a fetch's end only once it has ended, and this worker's next fetch would not wait
        async with self.spacing.turn(origin, delay, holds=self._holds(request)) as waited:
            if waited:
                runtime.count("consentcrawl/crawl_delay/waited")
            if runtime.distributed is not None:  # the cluster's Crawl-delay schedule, then the decision
                try:
                    await send_shared(runtime, request, (origin, delay),
                                      functools.partial(self.spacing.off_the_clock, origin, delay))
                except BaseException:  # it may have been recorded as sent in a round before the one that denied it
                    await unsent_shared(runtime, request, origin, delay)
                    raise
            else:
                decision = await runtime.decide_send(request)  # reads the clock now, after the wait
                if runtime.drops(decision):
                    raise ConsentDenied(decision)
            return await self._send_decided(runtime, request, origin, delay)

    async def _send_decided(self, runtime: ConsentRuntime, request: Request, origin: str | None,
                            delay: float | None) -> Response:
        runtime.download_lines.sending(request)  # its handler's lines wait for the response phase
        try:
            response: Response = await self._fetch(runtime, request, origin, delay)
        except BaseException:  # never read: the send-time decision stands for the page, a person's as unread
            runtime.download_lines.failed(request, runtime.decision_for(request))
            raise
        self._sent.add(response)
        return response

    async def _fetch(self, runtime: ConsentRuntime, request: Request, origin: str | None,
                     delay: float | None, side: bool = False) -> Response:
        """The download itself; its end is when the origin's ``Crawl-delay`` starts to count (a ``side`` fetch's
        too: robots.txt's delay may be known only once it is here)."""
        try:
            response: Response = await self.fallback.download_request(request)
            if self._flags_length and "partial" not in response.flags and unknown_length_of(request.method, response):
                response.flags.append("partial")  # as Twisted flags it: a part is never read as the whole
            return response
        finally:
            if origin is not None:
                self.spacing.ended(origin)
                if runtime.distributed is not None and (delay or side):
                    await ended_shared(runtime, request, origin, delay, side)

    async def _read_actor(self, runtime: ConsentRuntime, actor: Request, person: tuple[str, str]) -> None:
        """The actor a person's HTML profile links to (:func:`~consentcrawl.refusalphase.actor_request`), fetched
        while the person's other requests wait, so that an ``indexable: false`` there stops them (and this page,
        in its response phase).

        It goes through the downloader middlewares (the request phase's decision, the user agent, the proxy; the
        response phase reads it for refusals and records them) and is decided again at send time, each with its
        audit line, like any request of the person. It skips the download slot's queue (this page holds the slot,
        which the actor would wait for), not its ``DOWNLOAD_DELAY``. Its response goes to no spider and no cache. A
        deny or a failure denies the person: what they say there is not known
        (:func:`~consentcrawl.refusalphase.actor_read`)."""
        self._actors.add(actor)

        async def send(request: Request) -> Response:  # past the slot queues, not past the slot's delay
            await self._keep_slot_delay(request)
            return await self._send(runtime, request)

        response: Response | None = None
        failed: str | None = None
        try:
            answer = await download_past_slots(self.crawler, send, actor)
            if isinstance(answer, ScrapyResponse):
                response = answer
            else:  # a middleware sent another request instead: the actor was not read
                failed = "a downloader middleware answered with another request"
        except IgnoreRequest as exc:  # denied, in the request, send-time or response phase: its line says why
            failed = f"not fetched or not read: {exc}"
        except Exception as exc:  # noqa: BLE001 - the person's say is not known: they are denied (actor_read)
            runtime.count("consentcrawl/refusals/actor_errors")
            logger.info("consentcrawl: a linked ActivityPub actor could not be read: %s", type(exc).__name__)
            failed = f"{type(exc).__name__}: {str(exc)[:200]}"
        actor_read(runtime, person, actor.url, response, failed, actor)

    @staticmethod
    def _delay(runtime: ConsentRuntime, url: str) -> tuple[str | None, float | None]:
        """The URL's origin and the ``Crawl-delay`` to keep for it (None over ``CONSENTCRAWL_MAX_CRAWL_DELAY``: the
        decision denies such a request, ``robots.crawl-delay``)."""
        origin = _origin(url)
        if origin is None:
            return None, None
        robots = runtime.robots.cached(origin)
        delay = crawl_delay(robots, runtime.config.token) if robots is not None else None
        if delay and delay > runtime.config.max_crawl_delay:
            delay = None
        return origin, delay

    async def close(self) -> None:
        close = getattr(self.fallback, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result


class ConsentHTTPDownloadHandler(ConsentDownloadHandler):
    scheme = "http"


class ConsentHTTPSDownloadHandler(ConsentDownloadHandler):
    scheme = "https"
