"""robots.txt outside a crawl (the CLI, other crawlers): fetched with httpx, classified like inside a crawl."""

from __future__ import annotations

from datetime import datetime

import httpx

from .fetch import MAX_REDIRECTS, RobotsFile, from_response, robots_url, unreachable


def fetch_robots(origin: str, *, user_agent: str, now: datetime, timeout: float = 10.0,
                 client: httpx.Client | None = None) -> RobotsFile:
    """Fetch ``origin``/robots.txt. Honours the standard proxy environment variables, as Scrapy does.

    Redirects are followed across hosts (RFC 9309 §2.3.1.2); the rules found apply to ``origin``.
    """
    url = robots_url(origin)
    own = client is None
    client = client or httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS,
                                    trust_env=True, headers={"User-Agent": user_agent})
    try:
        response = client.get(url)
        hops = tuple(str(r.url) for r in response.history)
        return from_response(url, response.status_code, response.content, now, final_url=str(response.url),
                             redirects=hops)
    except httpx.TooManyRedirects:
        return unreachable(url, now, f"more than {MAX_REDIRECTS} redirects")
    except Exception as exc:  # noqa: BLE001 - any failure is "unreachable": deny the whole origin
        return unreachable(url, now, f"{type(exc).__name__}: {exc}".rstrip(": "))
    finally:
        if own:
            client.close()
