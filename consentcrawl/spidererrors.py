"""What Scrapy's ``spider_error`` handlers receive when a project's errback or callback raises for a request
consentcrawl refused (or, in report mode, one it would deny): the exception's type and the reason code, nothing of
the person.

A refused request fails to its errback (``ConsentDenied``); report mode sends what it would deny, hands the page
to its callback and a failed download's failure to its errback. When that code raises, Scrapy builds a Failure of
the exception where it catches it and sends it to every ``spider_error`` handler, with the download's failure (or
the page) as ``response``. An error reporter connected there (Sentry's, a project's own) sends all of it to a
remote service: the project's message (``raise ValueError(f"failed {failure.request.url}")``, a name read from the
page), and a traceback whose frames hold the request, the refusal and the page in their locals. The traceback
always starts in Scrapy's own frame that holds the request, so no errback wrapper can keep it out: the failure has
to be replaced before it is sent.

So for a request whose decision is not an allow (or that was never decided: whose it is was not checked),
:class:`SpiderErrors` (in place of ``Scraper.handle_spider_error``) logs the original at DEBUG, with its message,
traceback and URL, where it is kept for debugging, and hands Scrapy in its place a failure of a new exception: a
:class:`RefusedRequestError` named as the project's exception was (``ValueError``: ``spider_exceptions/ValueError``
counts as before), whose text is that name and the reason code, with no cause or context, and a traceback of code
locations only (file, line, function: the project's code, no locals). The ``response`` handlers receive stands in
for the real one: a refusal with the reason code alone, a download's failure sanitized as the error is, or an
empty ``about:blank`` page with the status. Scrapy's log line (:mod:`consentcrawl.logformat`), its stats, its
``CLOSESPIDER_ERRORCOUNT`` and every handler then see that. ``CloseSpider`` is passed on: it closes the crawl,
which Scrapy does not report as an error; but its reason becomes ``Closing spider (<reason>)`` at INFO and the
``finish_reason`` stat, so a URL in it is kept only when it is the URL of the request or page whose code raised and
that was allowed (:func:`close_reason`); any other is taken out, the reason as raised logged at DEBUG. A reason
given anywhere else (:class:`CloseReasons`) has no request to vouch for a URL: each one in it is taken out.

A handler still runs on Scrapy's stack: code that walks up its callers' frames (``sys._getframe``) reaches the
request there, as it could reach anything of the crawl. Error reporters read the failure's traceback, not that.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy.exceptions import CloseSpider
from scrapy.http import Response
from scrapy.utils.log import failure_to_exc_info
from twisted.python.failure import Failure

from .decision import Decision, Verdict, not_allowed_reason
from .deniedpeople import ID_STAND_IN
from .downloadlines import unread_reason
from .errbacks import url_spellings
from .middlewares import ConsentDenied, ConsentMisconfigured
from .runtime import get_runtime, is_checked_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy.crawler import Crawler

#: Scrapy's ``SPIDERERRORMSG`` for a refused request, with the project's exception and traceback, at DEBUG
REFUSED_TRACEBACK = "Spider error processing a request consentcrawl refused (%(reason)s): <%(method)s %(url)s>"
#: the logger Scrapy writes spider errors on: a project's handlers and filters for them see these lines too
SCRAPER_LOGGER = logging.getLogger("scrapy.core.scraper")
#: the URL of the page handed to ``spider_error`` handlers in place of a refused one
BLANK = "about:blank"
#: a URL in a ``CloseSpider`` reason, and what stands for one that is not known to be allowed
_URL = re.compile(r"https?://[^\s\"'<>]*[^\s\"'<>.,;:)\]]", re.IGNORECASE)
NOT_ALLOWED_URL = "<a URL consentcrawl did not allow; at DEBUG>"
#: in a close reason given outside a callback: any word with a ``/`` in it (a URL of any scheme, ``host/path``,
#: ``/u/107``, ``u/107``) other than numbers (``3/5``), its trailing punctuation left as it was
_SLASHED = re.compile(r"[^\s/]*/\S*?(?=[.,;:)\]]*(?:\s|$))")
_NUMBERS = re.compile(r"[\d/.,:%()-]*")


class RefusedRequestError(Exception):
    """What a project's errback or callback raised for a request consentcrawl refused, as ``spider_error``
    handlers receive it: the type's name and the reason code. Each exception type gets a subclass of this one
    with its name (:func:`refused_error_type`)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{type(self).__name__} raised for a request consentcrawl refused ({reason}); its message "
                         "and traceback are at DEBUG, its URL in the audit log")


_TYPES: dict[str, type[RefusedRequestError]] = {}


def refused_error_type(name: str) -> type[RefusedRequestError]:
    """The :class:`RefusedRequestError` subclass named ``name``: one per exception type name, so that Scrapy's
    ``spider_exceptions/<name>`` stat and a reporter's grouping by type are those of the project's exception."""
    cls = _TYPES.get(name)
    if cls is None:
        cls = _TYPES[name] = type(name, (RefusedRequestError,), {"__module__": __name__, "__qualname__": name})
    return cls


def refusal_of(crawler: Crawler | None, response: Any) -> str | None:
    """The reason code when ``response`` (what Scrapy passes as ``response`` with a spider error) is consentcrawl's
    refusal of a request; or a page, or a download's failure, whose request's decision is not an allow (report mode
    sends such requests and hands their pages to callbacks) or that no decision was made for. None for anything
    else: an allowed page or request, a URL not checked."""
    if isinstance(response, Failure):
        error = response.value
        if isinstance(error, ConsentDenied):
            return str(error.decision.reason)
        if isinstance(error, ConsentMisconfigured):
            return "configuration error"
        request = getattr(response, "request", None)  # the scraper sets it before it calls the errback
        return not_allowed(crawler, request, request.url) if isinstance(request, Request) else None
    if isinstance(response, Response):
        return not_allowed(crawler, response.request, response.url)
    return None


def not_allowed(crawler: Crawler | None, request: Request | None, url: str) -> str | None:
    """The reason code when ``request``'s decision at ``url`` is not an allow, or none was made ("undecided");
    None for an allowed request or a URL that is not checked."""
    if crawler is None or not is_checked_url(url):
        return None
    runtime = get_runtime(crawler)
    if runtime is None:
        return "configuration error"
    return not_allowed_reason(runtime.decision_for(request, url))


def not_read(crawler: Crawler | None, request: Request, url: str | None = None) -> str | None:
    """What a line about ``request`` whose page was not read as its person's (its download failed, its retries ran
    out, its status was an error) may say of it: the reason code of a decision at ``url`` (the request's) that is
    not an allow (as :func:`not_allowed`), ``page-unread`` for an allowed person's page (a refusal on it was never
    read: :func:`~consentcrawl.downloadlines.unread_reason`), None for a page that is no one's or not checked."""
    url = url if url is not None else request.url
    if crawler is None or not is_checked_url(url):
        return None
    runtime = get_runtime(crawler)
    if runtime is None:
        return "configuration error"
    return unread_reason(runtime.decision_for(request, url))


def sanitized(failure: Failure, reason: str) -> Failure:
    """A failure of a :class:`RefusedRequestError` named as ``failure``'s exception, with ``failure``'s code
    locations (function, file, line) and none of its values: never raised, so with no cause, context or frames."""
    clean = Failure(refused_error_type(type(failure.value).__name__)(reason))
    clean.frames = [(name, filename, line, (), ()) for name, filename, line, *_ in failure.frames]
    return clean


def stand_in(response: Any, reason: str) -> Any:
    """What ``spider_error`` handlers receive as ``response`` in place of a refused one (see the module doc)."""
    if isinstance(response, Response):
        return Response(BLANK, status=response.status, request=Request(BLANK))
    if not isinstance(response, Failure):
        return None
    error = response.value
    if isinstance(error, ConsentDenied):
        decision = error.decision
        return Failure(ConsentDenied(Decision(Verdict.DENY, decision.stage, decision.reason, decision_id="")))
    if isinstance(error, ConsentMisconfigured):
        return Failure(ConsentMisconfigured())
    return sanitized(response, reason)  # a download's failure (report mode): its message can name the URL


class SpiderErrors:
    """``Scraper.handle_spider_error`` for a crawl: a spider error about a refused request is logged at DEBUG as
    raised and handed on sanitized (see the module doc); any other is handed on as it is."""

    def __init__(self, crawler: Crawler, handle: Callable[[Failure, Request, Any], None],
                 reasons: CloseReasons | None = None) -> None:
        self.crawler = crawler
        self.handle = handle
        self.reasons = reasons if reasons is not None else CloseReasons(crawler)

    def __call__(self, failure: Failure, request: Request, response: Any) -> None:
        if isinstance(failure.value, CloseSpider):
            failure.value.reason = self.reasons.from_callback(failure.value.reason, request, response)
        reason = None if isinstance(failure.value, CloseSpider) else refusal_of(self.crawler, response)
        if reason is None:
            self.handle(failure, request, response)
            return
        SCRAPER_LOGGER.debug(REFUSED_TRACEBACK, {"reason": reason, "method": request.method, "url": request.url},
                             exc_info=failure_to_exc_info(failure), extra={"spider": self.crawler.spider})
        clean, blank = sanitized(failure, reason), stand_in(response, reason)
        del failure, response  # not in this frame while the handlers run below it
        as_handled(clean.value, lambda: self.handle(clean, request, blank))


def close_reason(crawler: Crawler, reason: Any, request: Request, response: Any) -> Any:
    """A ``CloseSpider`` reason raised by a callback or errback of ``request``, without the URLs in it other than
    the allowed URL of that request or its page (module doc); the request's or page's URL that is not allowed is
    taken out spelt without its scheme, or by its path alone, too, in any case (``people.example/u/107``,
    ``/u/107``), as the errback guard finds it in an item (``errbacks.url_spellings``)."""
    if not isinstance(reason, str):
        return reason
    urls = [url for url in (request.url, getattr(response, "url", None)) if isinstance(url, str)]
    allowed = {url for url in urls if not_allowed(crawler, request, url) is None
               and refusal_of(crawler, response) is None}
    clean = _URL.sub(lambda m: m.group(0) if m.group(0) in allowed else NOT_ALLOWED_URL, reason)
    for url in urls:
        for spelling in url_spellings(url) if url not in allowed else ():
            clean = re.sub(re.escape(spelling), NOT_ALLOWED_URL, clean, flags=re.IGNORECASE)
    if clean != reason:
        SCRAPER_LOGGER.debug("consentcrawl: a CloseSpider reason named a URL consentcrawl did not allow: %r", reason,
                             extra={"spider": crawler.spider})
    return clean


class CloseReasons:
    """The reason every close of the crawl gives, as Scrapy logs it at INFO and keeps as ``finish_reason``
    (``_scrapy_internals.wrap_engine_close`` hands each one here). A ``CloseSpider`` raised by a callback or
    errback was cleaned for its request already (:func:`close_reason`, through :meth:`from_callback`) and keeps the
    allowed URL of that request. Any other (a ``spider_idle`` or ``spider_opened`` handler, an extension, ``start()``)
    was given with no request whose allow could vouch for a URL in it: every word with a ``/`` in it (a URL of any
    scheme, ``host/path``, a path: ``/u/107``, ``u/107``) other than numbers (``3/5``) is taken out; the reason as
    given is logged at DEBUG. An id or a name alone in the text cannot be told from any other word."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self._checked: set[str] = set()

    def from_callback(self, reason: Any, request: Request, response: Any) -> Any:
        clean = self._without_ids(close_reason(self.crawler, reason, request, response), reason)
        if isinstance(clean, str):
            self._checked.add(clean)
        return clean

    def __call__(self, reason: Any) -> Any:
        if not isinstance(reason, str) or reason in self._checked:
            return reason
        clean = _SLASHED.sub(lambda m: m.group(0) if _NUMBERS.fullmatch(m.group(0)) else NOT_ALLOWED_URL, reason)
        if clean != reason:
            SCRAPER_LOGGER.debug("consentcrawl: the crawl's close reason named a URL or path, which no request's "
                                 "allow vouches for: %r", reason, extra={"spider": self.crawler.spider})
        return self._without_ids(clean, reason)

    def _without_ids(self, clean: Any, reason: Any) -> Any:
        """``clean`` without the ids of the people this crawl denied (deniedpeople.py), wherever the reason was
        given: an id alone (``stopped at 107``) is the one thing of a person that text can be searched for."""
        runtime = get_runtime(self.crawler)
        if not isinstance(clean, str) or runtime is None:
            return clean
        without = runtime.denied_people.ids_out(clean, ID_STAND_IN)
        if without != clean:
            SCRAPER_LOGGER.debug("consentcrawl: the crawl's close reason named a person consentcrawl did not allow: "
                                 "%r", reason, extra={"spider": self.crawler.spider})
        return without


def as_handled(error: BaseException, run: Callable[[], None]) -> None:
    """``run()`` with ``error`` as the exception being handled. Scrapy calls ``handle_spider_error`` inside its
    ``except`` clause: a handler's ``logger.exception()`` or argument-less ``capture_exception()`` reads the
    exception being handled (``sys.exc_info()``), which there is the project's own, URL and frames included.
    ``error`` is given no context (raised here, it would get the project's exception as its context) and no
    traceback; where Python keeps the traceback apart (3.10) it holds this frame alone, whose locals are
    ``error`` and ``run``, a function whose repr names nothing."""
    try:
        raise error
    except BaseException as handled:  # noqa: BLE001 - it is ``error``, raised just above
        handled.__traceback__ = handled.__context__ = None
        run()
