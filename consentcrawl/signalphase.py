"""Operator signals in a crawl (issue #13): the site-level files gathered for a full decision, and the
response-level signals read in the response phase, before the HTTP cache and any callback.

The runtime calls these; what is decided is pure (:mod:`consentcrawl.signals.policy`), so ``consentcrawl check``
(:mod:`consentcrawl.signalcli`) decides the same way.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import TYPE_CHECKING

from scrapy.http import Response, TextResponse

from .decision import Decision, Evidence, Stage, deny
from .robots.body import content_encoding, page_body, page_encoding, reading_encodings, reads_as_html
from .robots.partial import partial_page_error
from .signals.evaluate import response_silent, response_spellings
from .signals.odrl import SIGNAL as POLICY
from .signals.policy import ResponseSignals, SignalsNeeded
from .signals.rsl import response_rsl_links
from .signals.tdmrep import response_policy_url

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from scrapy import Request

    from .facts import RequestFacts
    from .robots.fetch import RobotsFile
    from .runtime import ConsentRuntime
    from .signals.evaluate import SiteFiles
    from .signals.policy import Added

logger = logging.getLogger("consentcrawl")


async def decide_full(runtime: ConsentRuntime, facts: RequestFacts, robots: RobotsFile | None) -> Decision:
    """The full decision; the origin's signal files are fetched when the walk reaches the signals check (a URL
    robots.txt disallows never makes them be fetched). Files cached and fresh are handed in at once."""
    try:
        return await runtime.decider.decide(facts, robots, runtime.site_signals.fresh(facts.canonical.origin, robots))
    except SignalsNeeded as need:
        files = await runtime.site_signals.get(need.origin, robots)
    return await runtime.decider.decide(facts, robots, files)


def decode_limit(runtime: ConsentRuntime, request: Request) -> int:
    """How much of a response to ``request`` is decompressed to read it: what Scrapy decompresses for the spider
    (``HttpCompressionMiddleware``, ``SitemapSpider``), so a page the callback gets whole is read whole and one
    Scrapy drops for its size is denied. Read as they read it: the request's ``download_maxsize`` meta, else the
    spider's ``download_maxsize`` attribute, else ``DOWNLOAD_MAXSIZE``; ``0`` is no limit, as for Scrapy (the
    spider gets the whole body then, so the page it reads is read whole too). A limit that is not a number
    raises ValueError (the response is denied; Scrapy fails on it too)."""
    spider = runtime.crawler.spider
    if "download_maxsize" in request.meta:
        limit, source = request.meta["download_maxsize"], "the request's download_maxsize meta"
    elif hasattr(spider, "download_maxsize"):
        limit, source = getattr(spider, "download_maxsize"), "the spider's download_maxsize"  # noqa: B009
    else:
        limit, source = runtime.config.download_maxsize, "DOWNLOAD_MAXSIZE"
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit):
        raise ValueError(f"{source} is not a number of bytes: {limit!r}")
    return int(limit)


def body_readings(response: Response, limit: int) -> tuple[bytes | None, tuple[str, ...]]:
    """The page as HTML for meta and link tags (decompressed like meta robots, gzip bytes without a
    ``Content-Encoding`` too, within ``limit``: ``robots.body.page_body``), or None for a non-HTML body, with every
    encoding it is read in for refusals, meta robots and signals (``robots.body.reading_encodings``: one, but for
    a page a spider may decode otherwise than Scrapy does). Raises ValueError for a body that cannot be decoded,
    and for an HTML page of which only a part was received (``robots.partial.is_partial``): a part is never read as
    the whole.

    A response Scrapy types as binary is read too: a page of a type Scrapy does not map, with a control byte
    (a form feed) in its first bytes, is a plain ``Response`` whose callback reads ``response.body`` itself."""
    encoded = content_encoding(response.headers)
    content_type = response.headers.get(b"Content-Type")
    body = page_body(response.body, encoded, limit)
    if not reads_as_html(content_type, body):
        return None, ("utf-8",)
    partial = partial_page_error(response.status, response.flags, len(response.body))
    if partial is not None:  # a meta tag in the bytes not sent (a 206, a cut) is not known
        raise partial
    encoding = (response.encoding if isinstance(response, TextResponse) and body is response.body
                else page_encoding(content_type, body))
    return body, reading_encodings(encoding, content_type)


async def _signals_read(runtime: ConsentRuntime, response: Response, facts: RequestFacts, files: SiteFiles,
                        body: bytes | None, encoding: str, spellings: Sequence[tuple[str, str]],
                        now: datetime) -> Added:
    """What the response's signals add, its body read in ``encoding`` (a licence or policy it names fetched)."""
    config = runtime.config
    silent = response_silent(response.headers, body, encoding)
    if not silent:
        named = [link.url for link in response_rsl_links(response.url, response.headers, body, encoding)
                 if link.url not in files.licences]
        if named:
            files = replace(files, licences={**files.licences, **await runtime.site_signals.licences(named)})
        policy = response_policy_url(response.url, response.headers, body, encoding)
        if policy is not None and policy not in files.policies:
            files = replace(files, policies={**files.policies,
                                             **await runtime.site_signals.licences([policy], POLICY)})
    return runtime.engine.response_signals.added(
        response.url, facts.canonical.host, response.headers, body, encoding, files,
        runtime.engine.signal_policy, config.token, config.purpose, facts.platform, now, silent=silent,
        spellings=spellings)


async def check_signals(runtime: ConsentRuntime, request: Request, response: Response, prior: Decision) -> Decision:
    """The response-level signals (headers, meta, ``Link``) combined with the site-level ones of every spelling of
    the page the request phase decided (any one's deny wins), and the per-purpose default where none speaks: a
    deny is recorded and stops the response before the HTTP cache and
    the callbacks. Any failure denies (``error.internal``) with its cause."""
    config = runtime.config
    now = config.now()
    try:
        facts, bad = runtime.facts_for(request, response.url, now)
        if facts is None:
            assert bad is not None
            return runtime.record(bad, response.url, None, "response", time=now)
        origin = facts.canonical.origin
        robots = runtime.robots.cached(origin)
        files = runtime.site_signals.fresh(origin, robots)
        if files is None:
            files = await runtime.site_signals.get(origin, robots)
        body, encodings = body_readings(response, decode_limit(runtime, request))
        spellings = response_spellings(response.url, facts.canonical, facts.robots_paths)
        # in each encoding the page may be read in (robots.body.reading_encodings): the first reading that denies,
        # else Scrapy's
        for encoding in encodings:
            reading = await _signals_read(runtime, response, facts, files, body, encoding, spellings, now)
            if encoding == encodings[0]:
                added = reading
            if reading[1] is not None:
                added = reading
                break
    except Exception as exc:  # noqa: BLE001 - a crash reading the signals must deny, not skip them
        decision = deny(Stage.ERROR, "error.internal", subject=prior.subject, platform=prior.platform,
                        evidence=(*prior.evidence, Evidence("error", response.url, {
                            "error": type(exc).__name__, "message": str(exc)[:500], "while": "reading signals"})))
        return runtime.record(decision, response.url, None, "response", time=now)
    extra, reason = added
    if reason is None and not any(e.kind.startswith("signal.") for e in extra):
        return prior  # nothing the site said: the allow stands as it was recorded
    decision = ResponseSignals.apply(prior, added)
    if decision.allowed:
        runtime.count("consentcrawl/response/signals")
        return runtime.record(decision, response.url, None, "response", count=False, time=now)
    return runtime.record(decision, response.url, None, "response", time=now)

