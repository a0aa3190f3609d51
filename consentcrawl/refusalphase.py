"""Refusals on the page, in a crawl: read in the response phase, before the HTTP cache and any callback.

A profile page (a URL that names a person on a configured platform) is read for the refusals its person published
(:mod:`consentcrawl.refusals.forms`). A refusal of the crawl's purpose:

1. is added to the engine's :class:`~consentcrawl.refusals.book.RefusalBook` first, so every later decision about
   the person (the link check, ``request_scheduled``, the send-time decision of requests already waiting in a
   download slot, the item guard) denies ``subject.refused-on-page``;
2. is written to the audit log as a ``refusal-found`` event, and appended to the operator's refusal log
   (``CONSENTCRAWL_REFUSALS_LOG``) for later crawls;
3. denies this response (``subject.refused-on-page``, phase ``response``): it never reaches the cache, a callback or
   an item.

A response of a person who refused on another of their pages after this request was sent (it was already on the
wire) is denied here too.

An ActivityPub actor whose ``id`` is another person's than the page's is not read as the page's person (and the
response is denied ``subject.mismatch``); a failure to read the page denies it (``error.internal``), and so does a
page of which only a part came back (a ``206``, a body cut short) with no refusal in that part.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scrapy import Request as ScrapyRequest
from scrapy.http import Response, TextResponse

from .decision import Decision, Evidence, Stage, deny, new_decision_id
from .errors import AuditUnavailable
from .recent import Recent
from .refusals.book import REASON, Refusal, Unread
from .refusals.forms import Found, PageReading, is_activitypub
from .refusals.page import read_page
from .robots.body import content_encoding, page_body, page_encoding, reading_encodings, reads_as_html
from .robots.meta import parse_meta_robots
from .robots.partial import is_partial, partial_what
from .signalphase import decode_limit

if TYPE_CHECKING:
    from datetime import datetime

    from scrapy import Request

    from .engine import PolicyEngine
    from .facts import RequestFacts
    from .runtime import ConsentRuntime

logger = logging.getLogger("consentcrawl")

ACTIVITYPUB = "application/activity+json"  #: what a crawl asks a profile URL for to get the actor (Mastodon negotiates)

__all__ = ["FirstPageGate", "actor_read", "actor_request", "actor_unread_cause", "book_refusals", "check_refusals",
           "mismatch_deny", "owner_mismatch", "partial_deny", "read_fetched", "read_fetched_as", "refused_deny",
           "refusing", "unreadable_deny"]


class FirstPageGate:
    """One page of a person at a time until one of their pages has been read for refusals.

    Without it, a person's profile and their other pages (another spelling, the mobile host, their posts) can be on
    the wire together, before the refusal on the first one is read. The send-time handler lets a person's first
    request through and holds their others until its page has been read (:meth:`done`); they are then decided
    with the refusal known. A first page that could not be read (an error, a redirect, a deny) lets the next one
    be first. Once a person's page is read, their requests go out in parallel as usual: the wait is paid once per
    person, by requests that would otherwise race the refusal.
    """

    def __init__(self, size: int = 65536) -> None:
        self._pending: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._read: Recent[tuple[str, str], bool] = Recent(size)
        #: the people whose linked actor was sent for (:func:`actor_request`): once per person
        self.actors: Recent[tuple[str, str], bool] = Recent(size)
        #: told of each person whose profile page was read for refusals (:meth:`profile_read`; the purge on close
        #: keeps them all: ``_read`` forgets, and a person whose profile was never read is purged at the close)
        self.watch: Callable[[tuple[str, str]], None] | None = None

    async def enter(self, key: tuple[str, str]) -> bool:
        """Wait for the person's first page to be read; True when this request is that first page (the caller
        then calls :meth:`done`)."""
        while True:
            pending = self._pending.get(key)
            if pending is None:
                if self._read.get(key):
                    return False
                self._pending[key] = asyncio.get_running_loop().create_future()
                return True
            await asyncio.shield(pending)

    def profile_read(self, key: tuple[str, str]) -> None:
        """A page of the person read for refusals showed their profile, or was their profile page itself (a
        platform whose profiles carry no machine-readable card: what they say there was read all the same)."""
        if self.watch is not None:
            self.watch(key)

    def done(self, key: tuple[str, str], read: bool) -> None:
        """The first page's request is over: its page read for refusals (``read``), or not."""
        if read:
            self._read.put(key, True)
        pending = self._pending.pop(key, None)
        if pending is not None and not pending.done():
            pending.set_result(None)


def actor_request(runtime: ConsentRuntime, person: tuple[str, str], reading: PageReading | None) -> Request | None:
    """The request for the ActivityPub actor an HTML profile of ``person`` links to, where their ``indexable``
    and other flags are (a crawl of profile HTML would not see them otherwise); the caller sends it as any request
    of the person, decided at send time, while it holds their other requests.

    Once per person; only an actor the platform's templates say is the same person's (fetching another's is not
    reading this person: the person's own is then not known, and they are denied, :func:`actor_read`); not for a
    person who already refused (their actor would be denied: no fetch, no line).
    """
    gate = runtime.first_pages
    if reading is None or not reading.profile or reading.actor is None or gate.actors.get(person):
        return None
    gate.actors.put(person, True)
    request = ScrapyRequest(reading.actor, headers={"Accept": ACTIVITYPUB}, dont_filter=True,
                            meta={"dont_redirect": True, "dont_retry": True, "dont_cache": True,
                                  "handle_httpstatus_all": True})
    if runtime.person_of(request) != person:
        runtime.count("consentcrawl/refusals/actor_of_another")
        actor_read(runtime, person, reading.actor, None, "the profile links to another person's (or no one's) actor")
        return None
    if runtime.engine.refusals.refusal(*person, runtime.engine.refused_purposes(runtime.config.purpose)):
        return None
    runtime.count("consentcrawl/refusals/actor_requests")
    return request


def actor_read(runtime: ConsentRuntime, person: tuple[str, str], url: str, response: Response | None,
               failed: str | None, request: Request | None = None) -> None:
    """After the actor a person's profile links to was asked for: unless it was read (an actor, 2xx, whole, the
    person's own: its refusals are in the book) or the person already refused, the person is denied for the rest of
    the crawl (:class:`~consentcrawl.refusals.book.Unread`, ``error.internal`` with the cause). FEP-5feb is opt-in:
    an actor that could not be read said no more than one without ``indexable``, and it might have said
    ``suspended`` or ``movedTo``. ``failed``: why there is no response (a deny, a network error)."""
    book = runtime.engine.refusals
    if book.refusal(*person, runtime.engine.refused_purposes(runtime.config.purpose)) is not None:
        return  # refused (in the actor, a 401, or on the page): that says more than a failure would
    cause = failed
    if cause is None and response is not None and request is not None:
        try:
            cause = actor_unread_cause(response.status, _read(runtime, request, response), _partial(response))
        except Exception as exc:  # noqa: BLE001 - a body that cannot be read is not read
            cause = f"{type(exc).__name__}: {str(exc)[:200]}"
    if cause is None:
        return
    runtime.count("consentcrawl/refusals/actor_unread")
    book.add_unread(Unread(*person, url, cause, runtime.config.now()))
    if runtime.distributed is not None:  # the other workers would fetch the person's pages otherwise
        runtime.distributed.publish_refusal(*person, {"url": url, "cause": cause[:200]}, unread=True)


def actor_unread_cause(status: int, reading: PageReading, partial: bool = False) -> str | None:
    """Why a linked actor's response did not say what the person says (None: it did): not 2xx, not an actor,
    only part of it (by a crawl and by ``consentcrawl check --fetch``; a refusal it holds, a 401's included, is
    judged before this)."""
    if not 200 <= status < 300:
        return f"HTTP {status}"
    if reading.kind != "activitypub" or not reading.profile:
        return "the response is not an ActivityPub actor"
    if partial:
        return "only part of the actor came back"
    return None


def _read(runtime: ConsentRuntime, request: Request, response: Response, case_sensitive: bool = False) -> PageReading:
    """The page read for refusals, once per response object (the handler reads a person's first page as it is
    downloaded; the response phase then gets the same response and reuses the reading). ``case_sensitive``: the
    platform of the page's person tells people apart by case (its cards are read so)."""
    reading = _readings.get(response)
    if reading is None:
        reading = _readings[response] = _read_now(runtime, request, response, case_sensitive)
    return reading


#: readings by response object (weak: gone with the response)
_readings: weakref.WeakKeyDictionary[Response, PageReading] = weakref.WeakKeyDictionary()


def _read_now(runtime: ConsentRuntime, request: Request, response: Response, case_sensitive: bool) -> PageReading:
    content_type = (response.headers.get(b"Content-Type") or b"").decode("latin-1")
    encoded = content_encoding(response.headers)
    body = page_body(response.body, encoded, decode_limit(runtime, request))
    if isinstance(response, TextResponse) and body is response.body:
        encoding = response.encoding
    else:
        encoding = page_encoding(response.headers.get(b"Content-Type"), body)
    # and as a spider that decodes the body itself may read it (robots.body.reading_encodings)
    encodings = reading_encodings(encoding, response.headers.get(b"Content-Type"))
    accept = (request.headers.get(b"Accept") or b"").decode("latin-1")
    return read_fetched_as(runtime.config.token, response.url, response.status, content_type, body, encodings,
                           accept, case_sensitive)


def read_fetched_as(token: str, url: str, status: int, content_type: str, body: bytes, encodings: tuple[str, ...],
                    accept: str, case_sensitive: bool = False) -> PageReading:
    """:func:`read_fetched` in each of ``encodings`` (the first Scrapy's): the first reading, with every refusal
    another reading found (a page whose refusal shows in one way a spider may decode it is refused). Only the
    first reading's failure is the page's: another that cannot be read at all (a UTF-16 actor's JSON read as
    UTF-8) shows no refusal."""
    first = read_fetched(token, url, status, content_type, body, encodings[0], accept, case_sensitive)
    found = list(first.found)
    for encoding in encodings[1:]:
        try:
            other = read_fetched(token, url, status, content_type, body, encoding, accept, case_sensitive)
        except ValueError:
            continue
        found += [f for f in other.found if f not in found]
    return replace(first, found=tuple(found)) if len(found) > len(first.found) else first


def read_fetched(token: str, url: str, status: int, content_type: str, body: bytes, encoding: str,
                 accept: str, case_sensitive: bool = False) -> PageReading:
    """A fetched page (its body decoded) read for refusals: by a crawl's response phase and by ``consentcrawl
    check --fetch``, so that both read a page the same way."""
    directives = parse_meta_robots(body, token, encoding) if reads_as_html(content_type, body) else []
    return read_page(url, status, content_type, body, token, encoding=encoding, meta_directives=directives,
                     activitypub_requested=is_activitypub(accept), case_sensitive=case_sensitive)


def owner_mismatch(engine: PolicyEngine, purpose: str, facts: RequestFacts, reading: PageReading,
                   now: datetime) -> str | None:
    """Why the document is not the page's person's own (None when it is, or says nothing about whose it is)."""
    assert facts.platform is not None and facts.subject is not None
    if reading.owner is None:
        return None
    if reading.kind == "activitypub":
        try:
            owner = engine.facts(reading.owner, purpose, now)
        except Exception:  # noqa: BLE001 - an id we cannot read is no proof of whose page this is
            return "the actor's id cannot be read as a URL"
        if owner.platform is not facts.platform or owner.subject != facts.subject:
            return "the actor's id names another person than the page's URL"
        return None
    if reading.kind == "bluesky" and facts.subject.startswith("did:") and reading.owner.lower() != facts.subject:
        return "the profile's DID is another person's than the page's URL"
    return None


def refusing(engine: PolicyEngine, purpose: str, reading: PageReading) -> list[Found]:
    """The refusals on the page that refuse ``purpose`` (what a custom purpose counts as included)."""
    purposes = engine.refused_purposes(purpose)
    return [found for found in reading.found if found.purposes & purposes]


def unreadable_deny(prior: Decision, url: str, exc: Exception) -> Decision:
    """The deny of a page that could not be read for its person's say."""
    return deny(Stage.ERROR, "error.internal", subject=prior.subject, platform=prior.platform,
                evidence=(*prior.evidence, Evidence("error", url, {
                    "error": type(exc).__name__, "message": str(exc)[:500], "while": "reading refusals"})))


def mismatch_deny(facts: RequestFacts, reading: PageReading, url: str, mismatch: str) -> Decision:
    """The deny of a page whose document is another person's (an actor's ``id``, a DID)."""
    assert facts.platform is not None
    return deny(Stage.SUBJECT, "subject.mismatch", subject=facts.subject, platform=facts.platform.name,
                evidence=(Evidence("page-owner", url, {"owner": reading.owner, "cause": mismatch}),))


def refused_deny(facts: RequestFacts, prior: Decision, refusals: list[Refusal]) -> Decision:
    """The deny of a page whose person refused the purpose: what ``prior`` consulted, and the refusals."""
    assert facts.platform is not None
    return deny(Stage.SUBJECT, REASON, subject=facts.subject, platform=facts.platform.name,
                evidence=(*prior.evidence, *(r.to_evidence() for r in refusals)))


def _add(runtime: ConsentRuntime, facts: RequestFacts, url: str, found: Found, now: datetime) -> Refusal:
    """A new refusal: in the book first (it applies even if a write fails), then the audit event and the log."""
    assert facts.platform is not None and facts.subject is not None
    book = runtime.engine.refusals
    for known in book.people.get((facts.platform.name, facts.subject), ()):
        if (known.form, known.field, known.url) == (found.form, found.field, url):
            return known  # the same page read again (report mode, a cache hit): recorded once
    refusal = Refusal(facts.platform.name, facts.subject, url, found.form, found.field, found.raw, found.purposes,
                      now, new_decision_id())
    book.add(refusal)
    runtime.count("consentcrawl/refusals/found")
    fields = {"event_id": refusal.event_id, "platform": refusal.platform, "subject": refusal.subject,
              "url": url, "form": found.form, "field": found.field, "raw": found.raw,
              "purposes": sorted(found.purposes), "purpose": runtime.config.purpose}
    try:
        runtime.audit.event("refusal-found", fields, time=now)
    except AuditUnavailable as exc:  # the refusal applies all the same; its deny lines cite it
        runtime.count("consentcrawl/audit/write_errors")
        logger.error("consentcrawl: a refusal found on a page could not be written to the audit log: %s", exc)
    if runtime.distributed is not None:  # the other workers of a distributed crawl learn it through Redis
        runtime.distributed.publish_refusal(refusal.platform, refusal.subject,
                                            {"url": url, "form": found.form, "field": found.field,
                                             "event_id": refusal.event_id})
    if runtime.refusal_log is not None:
        try:
            runtime.refusal_log.append(refusal)
        except OSError as exc:
            runtime.count("consentcrawl/refusals/log_errors")
            logger.error("consentcrawl: cannot append to the refusal log %s: %s (the refusal applies to this crawl "
                         "only)", runtime.refusal_log.path, exc)
    return refusal


def book_refusals(runtime: ConsentRuntime, request: Request, response: Response) -> PageReading | None:
    """Read a person's page for refusals as soon as it is downloaded (the send-time handler, for a person's first
    page) and add them to the book, before their next request is decided. The reading, when the page is their
    own (its ``profile``: what they say is known; its ``actor``: the actor it links to); the response phase reads
    it again, recording the deny (a refusal is recorded once)."""
    now = runtime.config.now()
    try:
        facts, _ = runtime.facts_for(request, response.url, now)
        if facts is None or facts.platform is None or facts.subject is None:
            return None
        reading = _read(runtime, request, response, facts.platform.case_sensitive)
        if owner_mismatch(runtime.engine, runtime.config.purpose, facts, reading, now) is not None:
            return None
    except Exception:  # noqa: BLE001 - the response phase reads it again, and denies with the cause
        return None
    for found in refusing(runtime.engine, runtime.config.purpose, reading):
        _add(runtime, facts, response.url, found, now)
    return None if _partial(response) else reading  # a part of a page: what the rest says is not known


def _partial(response: Response) -> bool:
    """Whether the response holds only part of the page (``robots.partial.is_partial``): a refusal may be in the part
    that is missing."""
    return is_partial(response.status, response.flags, len(response.body))


def partial_deny(prior: Decision, facts: RequestFacts, url: str, status: int, flags: Iterable[str]) -> Decision:
    """The deny of a person's page of which only a part came back and no refusal was in it (by a crawl and by
    ``consentcrawl check --fetch``): a refusal may be in the rest. Its message says what made it a part: a site
    that sends every page with no length (HTTP/1.0) has each of its people denied so, and is told why."""
    assert facts.platform is not None
    return deny(Stage.ERROR, "error.internal", subject=facts.subject, platform=facts.platform.name,
                evidence=(*prior.evidence, Evidence("error", url, {
                    "error": "PartialPage", "status": status, "while": "reading refusals",
                    "message": f"only part of the person's page came back ({partial_what(status, flags)}): a "
                               "refusal may be in the rest"})))


#: the origins a crawl was told send people's pages with no length (:func:`_told_no_length`), by crawl
_NO_LENGTH_TOLD: weakref.WeakKeyDictionary[ConsentRuntime, set[str]] = weakref.WeakKeyDictionary()


def _told_no_length(runtime: ConsentRuntime, response: Response) -> None:
    """A WARNING, once per origin and crawl, that an origin sends a person's page with no length: each such page
    is denied (``error.internal``), and the summary's count alone would not say why. The origin only, no URL."""
    if response.status == 206 or "partial" not in response.flags or {"dataloss", "download_stopped"} & set(
            response.flags):
        return
    parts = urlsplit(response.url)
    origin = f"{parts.scheme}://{parts.netloc}"
    told = _NO_LENGTH_TOLD.setdefault(runtime, set())
    if origin not in told:
        told.add(origin)
        logger.warning("consentcrawl: %s sends people's pages with no length (no Content-Length nor chunks, as "
                       "HTTP/1.0 servers do): a page cut by a dropped connection cannot be told from a whole one, so "
                       "each is denied as a part (error.internal, PartialPage; docs/refusals.md#limits)", origin)


def check_refusals(runtime: ConsentRuntime, request: Request, response: Response, prior: Decision) -> Decision:
    """The refusals on a person's page: recorded whatever ``prior`` says; a deny when ``prior`` allowed."""
    now = runtime.config.now()
    try:
        facts, _ = runtime.facts_for(request, response.url, now)
        if facts is None or facts.platform is None or facts.subject is None:
            return prior  # no one's profile (an unreadable URL was decided before the fetch)
        reading = _read(runtime, request, response, facts.platform.case_sensitive)
        mismatch = owner_mismatch(runtime.engine, runtime.config.purpose, facts, reading, now)
    except Exception as exc:  # noqa: BLE001 - a page we cannot read for its person's say is not used
        return runtime.record(unreadable_deny(prior, response.url, exc), response.url, None, "response", time=now)
    if mismatch is not None:
        return runtime.record(mismatch_deny(facts, reading, response.url, mismatch), response.url, None, "response",
                              time=now)
    refusals = [_add(runtime, facts, response.url, found, now)
                for found in refusing(runtime.engine, runtime.config.purpose, reading)]
    if not refusals:  # a refusal found on another of their pages after this request was sent stops it here
        known = runtime.engine.refusals.refusal(facts.platform.name, facts.subject,
                                                runtime.engine.refused_purposes(runtime.config.purpose))
        refusals = [known] if known is not None else []
    if not refusals and prior.allowed:  # a person whose linked actor could not be read since this was decided
        unread = runtime.engine.refusals.overrule(prior, runtime.engine.refused_purposes(runtime.config.purpose))
        if not unread.allowed:
            return runtime.record(unread, response.url, None, "response", time=now)
    if not refusals and prior.allowed and _partial(response):
        decision = runtime.record(partial_deny(prior, facts, response.url, response.status, response.flags),
                                  response.url, None, "response", time=now)
        _told_no_length(runtime, response)  # once denied: an origin that names its person is a denied one's
        return decision
    if not refusals or not prior.allowed:
        return prior
    return runtime.record(refused_deny(facts, prior, refusals), response.url, None, "response", time=now)
