"""robots.txt outside a crawl (the CLI, other crawlers): fetched with httpx, classified like inside a crawl."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from urllib.parse import urljoin

import httpx

from .fetch import MAX_REDIRECTS, REDIRECT_STATUSES, RobotsFile, from_response, robots_url, unreachable


async def fetch_robots(origin: str, *, user_agent: str, now: datetime, timeout: float = 10.0,
                       client: httpx.AsyncClient | None = None,
                       may_fetch: Callable[[str], Awaitable[str | None]] | None = None) -> RobotsFile:
    """Fetch ``origin``/robots.txt. Honours the standard proxy environment variables, as Scrapy does.

    Redirects are followed across hosts (RFC 9309 §2.3.1.2), hop by hop: ``may_fetch`` is asked before each hop
    is sent (None to fetch it, else the reason not to), as in a crawl; the rules found apply to ``origin``.
    """
    url = robots_url(origin)
    own = client is None
    client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=True,
                                         headers={"User-Agent": user_agent})
    current, hops = url, list[str]()
    try:
        while True:
            refused = await may_fetch(current) if may_fetch is not None else None
            if refused is not None:
                return unreachable(url, now, f"a redirect to a URL we may not fetch ({refused})", final_url=current,
                                   redirects=tuple(hops))
            response = await client.get(current, follow_redirects=False)
            location = response.headers.get("Location")
            if response.status_code in REDIRECT_STATUSES and location:
                hops.append(current)
                if len(hops) > MAX_REDIRECTS:
                    return unreachable(url, now, f"more than {MAX_REDIRECTS} redirects", final_url=current,
                                       redirects=tuple(hops))
                current = urljoin(current, location.strip())
                if not current.startswith(("http://", "https://")):
                    return unreachable(url, now, "a redirect to a non-HTTP URL", final_url=current,
                                       redirects=tuple(hops))
                continue
            return from_response(url, response.status_code, response.content, now, final_url=current,
                                 redirects=tuple(hops))
    except Exception as exc:  # noqa: BLE001 - any failure is "unreachable": deny the whole origin
        return unreachable(url, now, f"{type(exc).__name__}: {exc}".rstrip(": "), final_url=current,
                           redirects=tuple(hops))
    finally:
        if own:
            await client.aclose()
