"""Per-origin robots.txt cache: TTL, retry backoff and stale use, by RFC 9309 §2.4 and §2.3.1.4.

Pure: the adapters fetch; this decides when a file is fresh, when to try an unreachable origin again (a bounded
exponential schedule, so an origin recovers when its file comes back without being hammered while it is down),
and when a good copy may stand in for a file that has become unreachable.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from .fetch import RobotsFile, RobotsStatus

MAX_TTL = timedelta(hours=24)


class RobotsCache:
    """The file to use per origin.

    - A fetched file (ok or unavailable) is fresh for ``ttl`` (at most 24 hours).
    - An unreachable result is kept for ``retry_after``, doubled after each further failure up to ``retry_max``.
    - When a refetch finds the file unreachable but a good copy was fetched less than ``ttl + stale_max`` ago,
      the good copy keeps applying, marked stale (the RFC lets a crawler keep a cached copy while the file is
      unreachable); after that the origin is disallowed.
    """

    def __init__(self, ttl: timedelta = MAX_TTL, retry_after: timedelta = timedelta(seconds=60),
                 retry_max: timedelta = timedelta(hours=1), stale_max: timedelta = timedelta(days=7)) -> None:
        self.ttl = min(ttl, MAX_TTL)
        self.retry_after = retry_after
        self.retry_max = max(retry_max, retry_after)
        self.stale_max = stale_max
        self._files: dict[str, tuple[RobotsFile, datetime]] = {}  # origin -> (file in use, expires)
        self._good: dict[str, RobotsFile] = {}  # origin -> last good (2xx/4xx) file
        self._failures: dict[str, int] = {}

    def get(self, origin: str, now: datetime) -> RobotsFile | None:
        """The file to use, or None when it must be fetched (again)."""
        entry = self._files.get(origin)
        if entry is None or now >= entry[1]:
            return None
        return entry[0]

    def put(self, origin: str, file: RobotsFile, now: datetime) -> RobotsFile:
        """Record a fetch result; returns the file that now applies to the origin."""
        if file.status is not RobotsStatus.UNREACHABLE:
            self._failures.pop(origin, None)
            self._good[origin] = file
            self._files[origin] = (file, now + self.ttl)
            return file
        failures = self._failures[origin] = self._failures.get(origin, 0) + 1
        retry = min(self.retry_after * (2 ** (failures - 1)), self.retry_max)
        good = self._good.get(origin)
        if good is not None and now - good.fetched_at < self.ttl + self.stale_max:
            use = replace(good, stale_cause=f"robots.txt unreachable since {file.fetched_at.isoformat()} "
                                            f"({file.cause}); using the copy fetched {good.fetched_at.isoformat()}")
        else:
            use = file
        self._files[origin] = (use, now + retry)
        return use

    def failures(self, origin: str) -> int:
        return self._failures.get(origin, 0)

    def __len__(self) -> int:
        return len(self._files)
