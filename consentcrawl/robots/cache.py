"""Per-origin robots.txt cache with a TTL (RFC 9309 §2.4: no longer than 24 hours)."""

from __future__ import annotations

from datetime import datetime, timedelta

from .fetch import RobotsFile, RobotsStatus

MAX_TTL = timedelta(hours=24)


class RobotsCache:
    """Holds the last :class:`RobotsFile` per origin; the adapters decide when to fetch again.

    An unreachable result is kept only for ``retry_after`` so the origin is tried again and recovers when the
    file comes back; a good file is kept for ``ttl``.
    """

    def __init__(self, ttl: timedelta = MAX_TTL, retry_after: timedelta = timedelta(seconds=60)) -> None:
        self.ttl = min(ttl, MAX_TTL)
        self.retry_after = retry_after
        self._files: dict[str, RobotsFile] = {}

    def get(self, origin: str, now: datetime) -> RobotsFile | None:
        file = self._files.get(origin)
        if file is None:
            return None
        life = self.retry_after if file.status is RobotsStatus.UNREACHABLE else self.ttl
        if now - file.fetched_at >= life:
            return None
        return file

    def put(self, origin: str, file: RobotsFile) -> None:
        self._files[origin] = file

    def __len__(self) -> int:
        return len(self._files)
