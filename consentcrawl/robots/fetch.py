"""What fetching a robots.txt produced, classified by RFC 9309 §2.3.1 — shared by the crawl and the CLI.

The adapters (Scrapy's engine inside a crawl, httpx outside one) only report what happened on the wire; this
module turns that into a :class:`RobotsFile`, so both paths fail closed in exactly the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .body import file_start
from .rules import MAX_BYTES, RobotsRules
from .widetext import narrow


class RobotsStatus(str, enum.Enum):
    OK = "ok"  #: 2xx: the rules apply
    UNAVAILABLE = "unavailable"  #: 4xx: the RFC lets a crawler access anything
    UNREACHABLE = "unreachable"  #: 5xx, timeout, network error: complete disallow


@dataclass(frozen=True)
class RobotsFile:
    url: str
    status: RobotsStatus
    rules: RobotsRules
    fetched_at: datetime
    http_status: int | None = None
    final_url: str | None = None
    cause: str = ""  #: why it is unavailable/unreachable, in words
    redirects: tuple[str, ...] = ()  #: the URLs redirected through, in order
    stale_cause: str = ""  #: set when a good copy stands in for a file that is now unreachable

    def evidence(self) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "robots_url": self.url,
            "robots_status": self.status.value,
            "http_status": self.http_status,
            "fetched_at": self.fetched_at.isoformat(),
        }
        if self.final_url and self.final_url != self.url:
            detail["final_url"] = self.final_url
        if self.cause:
            detail["cause"] = self.cause
        if self.redirects:
            detail["redirects"] = list(self.redirects)
        if self.stale_cause:
            detail["stale"] = self.stale_cause
        if self.status is RobotsStatus.OK:
            detail["size"] = self.rules.size
            if self.rules.warnings:
                detail["warnings"] = list(self.rules.warnings)
        return detail


def robots_url(origin: str) -> str:
    return f"{origin}/robots.txt"


#: 429 Too Many Requests: a 4xx that says "not now", not "no file" (RFC 9309 §2.3.1.3's case). Read as a 4xx it
#: would open the origin for a whole TTL, and put an allow-all in place of a good copy the site still publishes;
#: it is unreachable instead, as Google's crawlers read it too
RATE_LIMITED = 429

#: RFC 9309 §2.3.1.2 asks for at least five; more than this many consecutive redirects deny the origin
MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


#: how much of a compressed robots.txt is decompressed: enough for its first MAX_BYTES once narrowed to UTF-8 from
#: UTF-32 (four bytes a character, and a byte order mark), which is what is parsed of a plain file
COMPRESSED_KEEP = 4 * (MAX_BYTES + 1) + 4


def from_response(url: str, http_status: int, body: bytes, fetched_at: datetime,
                  final_url: str | None = None, redirects: tuple[str, ...] = ()) -> RobotsFile:
    """Classify a received response. Only a 2xx body is ever parsed: an error page is not rules. A 2xx body of
    gzip or zstd bytes (a ``robots.txt.gz`` served as the file, no ``Content-Encoding``) is decompressed first, as
    a spider reading it would, as far as it is parsed (:data:`COMPRESSED_KEEP`): a larger one is read as a plain
    file that large is, its first :data:`~consentcrawl.robots.rules.MAX_BYTES` parsed.

    Anything that is neither 2xx nor 4xx (5xx, an unfollowed 3xx, 1xx), and a 429 (:data:`RATE_LIMITED`), is
    "unreachable": complete disallow.
    """
    if 200 <= http_status < 300:
        try:  # compressed bytes without a Content-Encoding: read as rules they say nothing (allow-all)
            start: bytes | None = file_start(body, COMPRESSED_KEEP)
            if start is not body and start is not None and len(start) > COMPRESSED_KEEP:  # cut in a whole character
                start = narrow(start[:COMPRESSED_KEEP], whole=False)
            if start is None:
                raise ValueError("its first bytes do not decode in the encoding its byte order mark names")
        except ValueError as exc:
            return unreachable(url, fetched_at, f"a compressed body that cannot be read ({exc})",
                               http_status=http_status, final_url=final_url, redirects=redirects)
        body = start
        return RobotsFile(url, RobotsStatus.OK, RobotsRules.parse(body), fetched_at, http_status, final_url,
                          redirects=redirects)
    if 400 <= http_status < 500 and http_status != RATE_LIMITED:
        return RobotsFile(url, RobotsStatus.UNAVAILABLE, RobotsRules.allow_all(), fetched_at, http_status,
                          final_url, cause=f"HTTP {http_status}", redirects=redirects)
    expected = http_status >= 500 or http_status == RATE_LIMITED
    cause = f"HTTP {http_status}" if expected else f"unexpected HTTP {http_status}"
    return unreachable(url, fetched_at, cause, http_status=http_status, final_url=final_url, redirects=redirects)


def unreachable(url: str, fetched_at: datetime, cause: str, *, http_status: int | None = None,
                final_url: str | None = None, redirects: tuple[str, ...] = ()) -> RobotsFile:
    """The file could not be had: RFC 9309 says assume complete disallow."""
    return RobotsFile(url, RobotsStatus.UNREACHABLE, RobotsRules.disallow_all(cause), fetched_at, http_status,
                      final_url, cause=cause, redirects=redirects)
