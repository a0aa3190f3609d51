"""robots.txt outside a crawl (the CLI, other crawlers): fetched with httpx, classified like inside a crawl."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar
from urllib.parse import urljoin

import httpx

from .fetch import MAX_REDIRECTS, REDIRECT_STATUSES, RobotsFile, from_response, robots_url, unreachable
from .partial import partial_cause, unknown_length

_T = TypeVar("_T")


def flags(response: httpx.Response) -> tuple[str, ...]:
    """The flags Scrapy would put on ``response`` for its length (``partial``: a body that ends where the
    connection did, which httpx reads to the end without a word), so that outside a crawl a part is read as the
    crawl reads it (:func:`~consentcrawl.robots.partial.is_partial`)."""
    headers = response.headers
    unknown = unknown_length(response.http_version, response.status_code, response.request.method,
                             headers.get("content-length"), headers.get("transfer-encoding"))
    return ("partial",) if unknown else ()


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every request consentcrawl makes outside a crawl. httpx builds a new one for each client
    (and one more for each proxy it finds in the environment), which costs more than the request itself on a
    local network: ``consentcrawl check --fetch`` makes a client per side request. Built as httpx would
    (certifi's roots, ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` honoured)."""
    return httpx.create_ssl_context(trust_env=True)


async def fetch_robots(origin: str, *, user_agent: str, now: datetime, timeout: float = 10.0,
                       client: httpx.AsyncClient | None = None,
                       may_fetch: Callable[[str], Awaitable[str | None]] | None = None) -> RobotsFile:
    """Fetch ``origin``/robots.txt. Honours the standard proxy environment variables, as Scrapy does.

    Redirects are followed across hosts (RFC 9309 §2.3.1.2), hop by hop: ``may_fetch`` is asked before each hop
    is sent (None to fetch it, else the reason not to), as in a crawl; the rules found apply to ``origin``.
    """
    url = robots_url(origin)

    def ok(status: int, body: bytes, final: str, hops: tuple[str, ...]) -> RobotsFile:
        return from_response(url, status, body, now, final_url=final, redirects=hops)

    def fail(cause: str, status: int | None, final: str, hops: tuple[str, ...]) -> RobotsFile:
        return unreachable(url, now, cause, http_status=status, final_url=final, redirects=hops)

    return await side_request(url, ok, fail, user_agent=user_agent, timeout=timeout, client=client,
                              may_fetch=may_fetch)


async def side_request(url: str, ok: Callable[[int, bytes, str, tuple[str, ...]], _T],
                       fail: Callable[[str, int | None, str, tuple[str, ...]], _T], *, user_agent: str,
                       timeout: float = 10.0, client: httpx.AsyncClient | None = None,
                       may_fetch: Callable[[str], Awaitable[str | None]] | None = None) -> _T:
    """One of consentcrawl's own side requests outside a crawl (robots.txt, a site's signal files), hop by hop
    like :meth:`~consentcrawl.robots.scrapyfetch.ScrapyRobotsFetcher.side_request`: ``ok(status, body, final,
    hops)`` classifies the answer, ``fail(cause, status, final, hops)`` every way of not getting one."""
    own = client is None
    client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=True,
                                         headers={"User-Agent": user_agent}, verify=tls_context())
    current, hops = url, list[str]()
    try:
        while True:
            refused = await may_fetch(current) if may_fetch is not None else None
            if refused is not None:
                what = "a redirect to a URL" if hops else "a URL"  # the file's own URL may be refused too
                return fail(f"{what} we may not fetch ({refused})", None, current, tuple(hops))
            response = await client.get(current, follow_redirects=False)
            location = response.headers.get("Location")
            if response.status_code in REDIRECT_STATUSES and location:
                hops.append(current)
                if len(hops) > MAX_REDIRECTS:
                    return fail(f"more than {MAX_REDIRECTS} redirects", response.status_code, current, tuple(hops))
                current = urljoin(current, location.strip())
                if not current.startswith(("http://", "https://")):
                    return fail("a redirect to a non-HTTP URL", response.status_code, current, tuple(hops))
                continue
            partial = partial_cause(response.status_code, flags(response))
            if partial is not None:  # the missing part may hold the rule that applies, as in a crawl
                return fail(partial, response.status_code, current, tuple(hops))
            return ok(response.status_code, response.content, current, tuple(hops))
    except Exception as exc:  # noqa: BLE001 - any failure to fetch fails closed
        return fail(f"{type(exc).__name__}: {exc}".rstrip(": "), None, current, tuple(hops))
    finally:
        if own:
            await client.aclose()
