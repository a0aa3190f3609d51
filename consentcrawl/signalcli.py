"""Operator signals outside a crawl: what ``consentcrawl check`` and ``consentcrawl signals`` read (issue #13);
with ``check --fetch``, the refusals its person published on the page too (issue #14), read and judged by the
functions the crawl's response phase uses (:mod:`consentcrawl.refusalphase`).

The files are fetched with httpx through the proxy variables (:func:`consentcrawl.robots.httpfetch.side_request`,
the machinery that fetches robots.txt, each hop asked first), classified and decided by the same pure code a
crawl uses (:mod:`consentcrawl.signals.policy`), with the engine :func:`consentcrawl.config.build_decider` builds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import httpx

from .decision import Decision, Stage, deny
from .errors import ConfigError
from .refusalphase import (
    ACTIVITYPUB,
    actor_unread_cause,
    mismatch_deny,
    owner_mismatch,
    partial_deny,
    read_fetched,
    read_fetched_as,
    refused_deny,
    refusing,
    unreadable_deny,
)
from .refusals.book import Refusal, Unread, unread_deny
from .response import judge_response
from .robots.body import SCRAPY_MAXSIZE, page_body, page_encoding, reading_encodings, reads_as_html
from .robots.fetch import RobotsFile
from .robots.httpfetch import flags, side_request, tls_context
from .robots.meta import parse_meta_robots
from .robots.partial import is_partial, partial_page_error
from .robots.signalfetch import assemble, policy_urls, site_file_urls
from .robots.tags import parse_robots_headers
from .scheduling import error_cause
from .signals.base import SignalResult
from .signals.evaluate import SiteFiles, response_spellings
from .signals.fetch import SignalFile, from_response, unavailable
from .signals.odrl import SIGNAL as POLICY
from .signals.policy import SignalPolicy, response_decision
from .signals.rsl import licences_to_fetch, response_rsl_links
from .signals.tdmrep import response_policy_url

if TYPE_CHECKING:
    from .engine import PolicyEngine

__all__ = ["ACTIVITYPUB", "Page", "fetch_page", "fetch_site_files", "judge_linked_actor", "judge_page",
           "judge_refusals", "with_named_files"]

HopCheck = Callable[[str, bool], Awaitable["str | None"]]


async def fetch_file(signal: str, url: str, *, user_agent: str, now: datetime, may_fetch: HopCheck) -> SignalFile:
    def ok(status: int, body: bytes, final: str, hops: tuple[str, ...]) -> SignalFile:
        return from_response(signal, url, status, body, now)

    def fail(cause: str, status: int | None, final: str, hops: tuple[str, ...]) -> SignalFile:
        return unavailable(signal, url, now, cause, http_status=status)

    return await side_request(url, ok, fail, user_agent=user_agent, may_fetch=lambda hop: may_fetch(hop, hop == url))


async def fetch_site_files(origin: str, robots: RobotsFile | None, policy: SignalPolicy, *, user_agent: str,
                           now: datetime, may_fetch: HopCheck) -> SiteFiles:
    """The origin's signal files, as a crawl would fetch them."""
    files = {}
    for signal, url in site_file_urls(origin, robots, policy.conservative):
        files[url] = await fetch_file(signal, url, user_agent=user_agent, now=now, may_fetch=may_fetch)
    for signal, url in policy_urls(origin, files):  # the tdm-policy documents tdmrep.json names, for the evidence
        files[url] = await fetch_file(signal, url, user_agent=user_agent, now=now, may_fetch=may_fetch)
    return assemble(origin, robots, files, policy.conservative, None)


async def with_named_files(files: SiteFiles, url: str, headers: Any, body: bytes | None, encoding: str, *,
                           user_agent: str, now: datetime, may_fetch: HopCheck) -> SiteFiles:
    """``files`` with what the page names itself and a crawl fetches before releasing it: RSL licences (``Link``,
    ``<link rel="license">``) and its ``tdm-policy`` (header or meta)."""
    named = licences_to_fetch(link.url for link in response_rsl_links(url, headers, body, encoding)
                              if link.url not in files.licences)
    if named:
        extra = {u: await fetch_file("rsl", u, user_agent=user_agent, now=now, may_fetch=may_fetch) for u in named}
        files = replace(files, licences={**files.licences, **extra})
    policy = response_policy_url(url, headers, body, encoding)
    if policy is not None and policy not in files.policies:
        fetched = await fetch_file(POLICY, policy, user_agent=user_agent, now=now, may_fetch=may_fetch)
        files = replace(files, policies={**files.policies, policy: fetched})
    return files


@dataclass
class Page:
    url: str
    status: int
    headers: httpx.Headers
    body: bytes | None  #: decoded HTML, or None for another type
    encoding: str
    content: bytes = b""  #: the decoded body, whatever its type (an ActivityPub actor is JSON)
    accept: str = ""  #: the Accept header it was asked with
    #: why the body could not be decoded (gzip bytes that do not gunzip within the bound): judged as a crawl
    #: judges it, a deny (``error.internal``)
    unreadable: ValueError | None = None
    #: every encoding the page is read in for refusals: ``encoding``, and the others a spider may decode it in
    #: (``robots.body.reading_encodings``)
    encodings: tuple[str, ...] = ()
    #: the flags Scrapy would give the response for its length (``partial``: a body sent with no length): with a
    #: 206, only a part of the page may have come back (``robots.partial.is_partial``), and a refusal or a meta tag
    #: may be in the rest, as in a crawl
    flags: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        return is_partial(self.status, self.flags, len(self.body or b""))


async def refuse_fetch(decider: Any, url: str, purpose: str, subject: str | None = None) -> None:
    """Raise ConfigError (``--fetch``) unless a crawl could fetch ``url`` now: the consent checks (the platform's
    terms, the person's records) at the clock's time. The page is fetched now, whatever time a decision is replayed
    as of (``--now``), and ``signals`` decides nothing else before it fetches."""
    facts = decider.engine.facts(url, purpose, datetime.now(timezone.utc), subject)
    consent = await decider.decide_consent(facts)
    if not consent.allowed:
        raise ConfigError(f"not fetched: {consent.reason} now (a crawl for {purpose!r} would not fetch "
                          f"{facts.canonical.url} now; `consentcrawl check URL` explains why)", source="--fetch")


async def fetch_page(url: str, *, user_agent: str, accept: str | None = None, limit: int = SCRAPY_MAXSIZE) -> Page:
    """The page itself (``--fetch``), through the proxy variables; a redirect is not followed (its own
    response's signals are read). Raises on a network error. The body is decoded as the crawl's response phase
    decodes it (``robots.body.page_body``: its ``Content-Encoding`` undone as Scrapy undoes it for the callback,
    every gzip member, then gzip bytes gunzipped), within ``limit`` (the settings' ``DOWNLOAD_MAXSIZE``: what a
    crawl with these settings reads); one that cannot be is denied as a crawl denies it. httpx's own decoding is
    not used: its gzip decoder stops at the first member, where the callback reads them all."""
    headers = {"User-Agent": user_agent, **({"Accept": accept} if accept else {})}
    async with httpx.AsyncClient(timeout=10.0, follow_redirects=False, trust_env=True, headers=headers,
                                 verify=tls_context()) as client:
        async with client.stream("GET", url) as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
    content_type = response.headers.get("content-type", "")
    declared = content_type.encode("latin-1")
    coded = b",".join(v.encode("latin-1") for v in response.headers.get_list("content-encoding")) or None
    unreadable = None
    try:  # as the crawl's response phase reads it
        content = page_body(raw, coded, limit)
    except ValueError as exc:
        content, unreadable = raw, exc
    body = content if unreadable is None and reads_as_html(content_type, content) else None  # as the crawl reads it
    # as Scrapy reads it (a byte order mark first), and as a spider decoding the body itself may
    encodings = reading_encodings(page_encoding(declared, content), declared)
    return Page(url, response.status_code, response.headers, body, encodings[0], content, accept or "", unreadable,
                encodings, flags(response))


def judge_refusals(prior: Decision, page: Page, engine: PolicyEngine, token: str, purpose: str, facts: Any,
                   now: datetime, *, linked_actor: bool = False) -> tuple[Decision, list[dict[str, Any]], str | None]:
    """The refusals on a person's page, as the crawl's response phase judges them (nothing is recorded: ``check``
    keeps no audit or refusal log); every refusal read, for the report; and the ActivityPub actor an HTML profile
    links to. A page that names no person is not read; one whose body cannot be decoded is denied, whoever's.
    ``linked_actor``: ``page`` is the actor a profile links to, whose part is judged unread by the caller, as in a
    crawl."""
    if page.unreadable is not None:
        return unreadable_deny(prior, page.url, page.unreadable), [], None
    if facts.platform is None or facts.subject is None:
        return prior, [], None
    content_type = page.headers.get("content-type", "")
    try:
        reading = read_fetched_as(token, page.url, page.status, content_type, page.content,
                                  page.encodings or (page.encoding,), page.accept, facts.platform.case_sensitive)
    except Exception as exc:  # noqa: BLE001 - as in a crawl: a page we cannot read for its person's say is not used
        return unreadable_deny(prior, page.url, exc), [], None
    mismatch = owner_mismatch(engine, purpose, facts, reading, now)
    if mismatch is not None:
        report: list[dict[str, Any]] = [{"url": page.url, "owner": reading.owner, "mismatch": mismatch}]
        return mismatch_deny(facts, reading, page.url, mismatch), report, None
    refusing_purpose = refusing(engine, purpose, reading)
    report = [{"form": f.form, "field": f.field, "raw": f.raw, "purposes": sorted(f.purposes), "url": page.url,
               "refuses_purpose": f in refusing_purpose} for f in reading.found]
    actor = reading.actor if reading.profile else None
    if not refusing_purpose and prior.allowed and page.partial and not linked_actor:  # an actor's part: unread
        return partial_deny(prior, facts, page.url, page.status, page.flags), report, None
    if not refusing_purpose or not prior.allowed:
        return prior, report, actor
    refusals = [Refusal(facts.platform.name, facts.subject, page.url, f.form, f.field, f.raw, f.purposes, now)
                for f in refusing_purpose]
    return refused_deny(facts, prior, refusals), report, None


async def judge_linked_actor(prior: Decision, actor: str, decider: Any, robots: RobotsFile | None, files: SiteFiles,
                             token: str, purpose: str, facts: Any, now: datetime, *, user_agent: str,
                             limit: int = SCRAPY_MAXSIZE) -> tuple[Decision, list[dict[str, Any]]]:
    """The actor an HTML profile links to, as a crawl reads it (docs/refusals.md, "The actor a profile links
    to"): only the page's person's, decided in full before it is fetched, read for refusals. An actor that is not
    fetched or not read denies the person (``error.internal``), as in a crawl. ``check`` has the page's origin's
    robots.txt and files only: an actor on another origin is not fetched, and so not known."""

    def unread(cause: str, fetched: bool) -> tuple[Decision, list[dict[str, Any]]]:
        denied = unread_deny(prior, Unread(facts.platform.name, facts.subject, actor, cause, now))
        return denied, [{"actor": actor, "fetched": fetched, "why": cause}]

    try:
        actor_facts = decider.engine.facts(actor, purpose, now)
    except Exception:  # noqa: BLE001 - an actor URL we cannot read is not fetched
        return unread("its URL cannot be read", False)
    if (actor_facts.platform, actor_facts.subject) != (facts.platform, facts.subject):
        return unread("another person's (or no one's) actor", False)
    if actor_facts.canonical.origin != facts.canonical.origin:
        return unread("on another origin", False)
    decision = await decider.decide(actor_facts, robots, files)
    if not decision.allowed:
        return unread(decision.reason, False)
    try:
        page = await fetch_page(actor_facts.canonical.url, user_agent=user_agent, accept=ACTIVITYPUB, limit=limit)
    except Exception as exc:  # noqa: BLE001 - as in a crawl: an actor that did not come back is not known
        return unread(f"{type(exc).__name__}: {str(exc)[:200]}", True)
    # a part of the actor: its refusals read, and then unread (below), as in a crawl
    judged, report, _ = judge_refusals(prior, page, decider.engine, token, purpose, actor_facts, now,
                                       linked_actor=True)
    if judged.allowed:  # no refusal in it: was it the person's actor at all?
        try:
            reading = read_fetched(token, page.url, page.status, page.headers.get("content-type", ""),
                                   page.content, page.encoding, page.accept)
            cause = actor_unread_cause(page.status, reading, page.partial)
        except Exception as exc:  # noqa: BLE001 - judge_refusals denied it already; kept for the types
            cause = type(exc).__name__
        if cause is not None:
            return unread(cause, True)[0], [{"actor": actor, "fetched": True, "why": cause}, *report]
    return judged, [{"actor": actor, "fetched": True}, *report]


async def judge_page(prior: Decision, page: Page, files: SiteFiles, policy: SignalPolicy, token: str, purpose: str,
                     facts: Any, now: datetime, *, user_agent: str,
                     may_fetch: HopCheck) -> tuple[Decision, list[SignalResult]]:
    """The response phase, as a crawl runs it: robots tags, then the signals with the defaults."""
    partial = partial_page_error(page.status, page.flags, len(page.body)) if page.body is not None else None
    if partial is not None:  # as the crawl's response phase: a meta tag in the rest is not known
        return deny(Stage.ERROR, "error.internal", subject=prior.subject, platform=prior.platform,
                    evidence=(error_cause(partial, page.url),)), []
    directives = parse_robots_headers(list(page.headers.multi_items()), token)
    for encoding in page.encodings or (page.encoding,) if page.body is not None else ():
        directives += parse_meta_robots(page.body or b"", token, encoding)
    decision = (judge_response(prior, directives, purpose, now, page.url, rules=policy.tag_rules(purpose))
                if directives else prior)
    if not decision.allowed:
        return decision, []
    headers = list(page.headers.multi_items())
    # in each encoding the page may be read in, as the crawl's response phase reads it: the first that denies
    encodings = page.encodings or (page.encoding,)
    for encoding in encodings:
        named = await with_named_files(files, page.url, headers, page.body, encoding, user_agent=user_agent,
                                       now=now, may_fetch=may_fetch)
        reading = response_decision(decision, page.url, facts.canonical.host, headers, page.body, encoding, named,
                                    policy, token, purpose, facts.platform, now,
                                    response_spellings(page.url, facts.canonical, facts.robots_paths))
        if encoding == encodings[0]:
            first = reading
        if not reading[0].allowed:
            return reading
    return first
