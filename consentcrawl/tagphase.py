"""The response phase's robots directives: ``X-Robots-Tag`` / ``Robots-Tag`` headers and meta robots, read
before any callback or the HTTP cache sees the page, and judged for the crawl's purpose (:mod:`.response`, pure).

The runtime calls this between the person's refusals (:mod:`.refusalphase`) and the page's operator signals
(:mod:`.signalphase`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .decision import Decision, Stage, deny
from .meta_keys import META_NOFOLLOW
from .response import judge_response, wants_nofollow
from .robots.meta import parse_meta_robots
from .robots.tags import parse_robots_headers
from .scheduling import error_cause
from .signalphase import body_readings, decode_limit

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.http import Response

    from .runtime import ConsentRuntime

__all__ = ["check_tags"]


def check_tags(runtime: ConsentRuntime, request: Request, response: Response, prior: Decision) -> Decision:
    """``prior`` (the request's allow), or the deny the page's robots directives make of it; a page whose
    directives cannot be read is denied (``error.internal``), not taken as saying nothing."""
    token = runtime.config.token
    now = runtime.config.now()
    try:
        directives = parse_robots_headers(response.headers, token)
        # Scrapy types a response with a Content-Encoding (or gzip bytes) as a plain Response until
        # HttpCompression (or the spider) decodes it: body_readings reads it decompressed, in each encoding
        # the spider may read it in
        body, encodings = body_readings(response, decode_limit(runtime, request))
        for encoding in encodings if body is not None else ():
            directives += parse_meta_robots(body or b"", token, encoding)
    except Exception as exc:  # noqa: BLE001 - a crash reading the signals must deny, not skip them
        decision = deny(Stage.ERROR, "error.internal", subject=prior.subject, platform=prior.platform,
                        evidence=(error_cause(exc, response.url),))
        return runtime.record(decision, response.url, None, "response", time=now)
    if not directives:
        return prior
    decision = judge_response(prior, directives, runtime.config.purpose, now, response.url, rules=runtime.tag_rules)
    if wants_nofollow(directives):
        runtime.nofollowed.add(request)
        request.meta[META_NOFOLLOW] = True  # for the spider to read; never read back
    # the signals are evidence either way; an allow was already counted when the request was decided
    runtime.count("consentcrawl/response/signals")
    return runtime.record(decision, response.url, None, "response", count=not decision.allowed, time=now)
