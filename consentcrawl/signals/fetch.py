"""What fetching a site-level signal file produced (``/.well-known/tdmrep.json``, ``/ai.txt``, an RSL licence).

The adapters (phase 2: Scrapy's engine in a crawl, httpx for ``consentcrawl check``) report what happened on the
wire; :func:`from_response` classifies it with robots.txt's rules, so a signal file fails closed like robots.txt:

- 2xx: the body is the statement (:attr:`SignalFileStatus.OK`);
- 4xx (404 above all): the site makes no statement (:attr:`SignalFileStatus.ABSENT`);
- 429 (a rate limit: "not now", not "no file"), 5xx, a timeout, a network error, an unfollowed redirect: the
  signal is unavailable (:attr:`SignalFileStatus.UNAVAILABLE`), and every purpose the signal covers is denied with
  ``terms.signal-unavailable.<signal>``.

Caching follows robots.txt too: one fetch in flight per origin and file, kept at most :data:`MAX_TTL`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..robots.body import file_start
from ..robots.fetch import RATE_LIMITED

__all__ = ["MAX_BYTES", "MAX_TTL", "SignalFile", "SignalFileCache", "SignalFileStatus", "from_response", "unavailable"]

MAX_TTL = timedelta(hours=24)  #: never use a fetched signal file for longer (RFC 9309 §2.4, for robots.txt)
MAX_BYTES = 512 * 1024  #: the part of a body that is read, as for robots.txt (RFC 9309 §2.5)

#: where each site-level file lives on an origin
WELL_KNOWN = {"tdmrep": "/.well-known/tdmrep.json", "ai-txt": "/ai.txt"}


class SignalFileStatus(str, enum.Enum):
    OK = "ok"  #: 2xx: the body is the site's statement
    ABSENT = "absent"  #: 4xx: no statement
    UNAVAILABLE = "unavailable"  #: 5xx, timeout, network error: the signal could not be read


@dataclass(frozen=True)
class SignalFile:
    """One fetch of one signal file, as the adapters hand it in."""

    signal: str  #: "tdmrep", "ai-txt", "rsl"
    url: str
    status: SignalFileStatus
    fetched_at: datetime
    body: bytes = b""
    http_status: int | None = None
    cause: str = ""  #: why it is absent or unavailable, in words
    content_type: str | None = None
    cut: bool = False  #: the body goes on past :data:`MAX_BYTES`: ``body`` is its start

    def fresh(self, now: datetime, ttl: timedelta = MAX_TTL) -> bool:
        """Whether this copy may still be used at ``now`` (``ttl`` is capped at :data:`MAX_TTL`)."""
        return self.fetched_at <= now < self.fetched_at + min(ttl, MAX_TTL)

    def evidence(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"file_status": self.status.value, "http_status": self.http_status,
                                  "fetched_at": self.fetched_at.isoformat()}
        if self.cause:
            detail["cause"] = self.cause
        if self.status is SignalFileStatus.OK:
            detail["size"] = len(self.body)
            if self.cut:
                detail["cut"] = True
        return detail


def from_response(signal: str, url: str, http_status: int, body: bytes, fetched_at: datetime,
                  content_type: str | None = None) -> SignalFile:
    """Classify a received response. Only a 2xx body is a statement: an error page is not. Its first
    :data:`MAX_BYTES` are the statement, gzip or zstd bytes sent without a ``Content-Encoding`` decompressed first
    as far as that (as robots.txt's are: read as they are, they would be no statement, allow); bytes that cannot
    be decompressed make the signal unavailable. A longer file is marked ``cut``: a line-based file (``ai.txt``)
    is read up to the cut, as robots.txt is, while a JSON one whose start does not parse is unavailable (its
    reader's part: the statement is past the cut, not missing)."""
    if 200 <= http_status < 300:
        try:
            start = file_start(bytes(body), MAX_BYTES)
        except ValueError as exc:
            return unavailable(signal, url, fetched_at, f"a compressed body that cannot be read ({exc})",
                               http_status=http_status)
        return SignalFile(signal, url, SignalFileStatus.OK, fetched_at, start[:MAX_BYTES], http_status,
                          content_type=content_type, cut=len(start) > MAX_BYTES)
    if 400 <= http_status < 500 and http_status != RATE_LIMITED:
        return SignalFile(signal, url, SignalFileStatus.ABSENT, fetched_at, http_status=http_status,
                          cause=f"HTTP {http_status}")
    expected = http_status >= 500 or http_status == RATE_LIMITED
    cause = f"HTTP {http_status}" if expected else f"unexpected HTTP {http_status}"
    return unavailable(signal, url, fetched_at, cause, http_status=http_status)


def unavailable(signal: str, url: str, fetched_at: datetime, cause: str, *,
                http_status: int | None = None) -> SignalFile:
    """The file could not be had (timeout, network error, 5xx): the signal is unavailable."""
    return SignalFile(signal, url, SignalFileStatus.UNAVAILABLE, fetched_at, http_status=http_status, cause=cause)


class SignalFileCache:
    """The signal files to use, by URL (one per origin and file), for the adapters of phase 2. Pure: ``now`` is
    passed in; single flight (one fetch in progress per URL) is the adapter's part, since it owns the fetches.

    - A fetched file (a statement or a 4xx) is used for ``ttl``, at most :data:`MAX_TTL`.
    - An unavailable result is kept for ``retry_after``, doubled after each further failure up to ``retry_max``:
      the signal stays unavailable (and denies what it covers) until a retry succeeds. Unlike robots.txt, no older
      good copy stands in: a site whose statement cannot be read now is not taken to mean what it said before.
    """

    def __init__(self, ttl: timedelta = MAX_TTL, retry_after: timedelta = timedelta(seconds=60),
                 retry_max: timedelta = timedelta(hours=1), max_entries: int = 100_000) -> None:
        self.ttl = min(ttl, MAX_TTL)
        self.retry_after = retry_after
        self.retry_max = max(retry_max, retry_after)
        self.max_entries = max_entries
        self._files: dict[str, tuple[SignalFile, datetime]] = {}
        self._failures: dict[str, int] = {}

    def get(self, url: str, now: datetime) -> SignalFile | None:
        """The file to use, or None when it must be fetched (again)."""
        entry = self._files.get(url)
        if entry is None or not entry[0].fetched_at <= now < entry[1]:
            return None
        return entry[0]

    def put(self, file: SignalFile, now: datetime) -> SignalFile:
        """Record a fetch result and return it."""
        if len(self._files) >= self.max_entries and file.url not in self._files:
            self._files.clear()
            self._failures.clear()
        if file.status is SignalFileStatus.UNAVAILABLE:
            failures = self._failures[file.url] = self._failures.get(file.url, 0) + 1
            self._files[file.url] = (file, now + min(self.retry_after * (2 ** min(failures - 1, 30)), self.retry_max))
        else:
            self._failures.pop(file.url, None)
            self._files[file.url] = (file, now + self.ttl)
        return file

    def __len__(self) -> int:
        return len(self._files)
