"""A store of your own: records kept by a consent service, asked over the network (docs/architecture.md)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from consentcrawl import AuthorizationRecord, StoreUnavailable


class ConsentServiceStore:
    """Each person's records as a consent service gives them; the service's change feed calls ``on_change``."""

    def __init__(self, platforms: Any, source: str = "consent-service:example") -> None:
        self.source = source                  # named in the evidence of every decision it answers
        self._platforms = platforms           # the PlatformRegistry: its subject_key is the index
        self._records: dict[tuple[str, str], tuple[AuthorizationRecord, ...]] = {}
        self._versions = itertools.count(1)   # versions of this store only: that is all consentcrawl compares
        self._version = next(self._versions)
        self._down: str | None = None
        self.lookups = 0

    @property
    def version(self) -> int:
        return self._version                  # read before every decision: cheap, and it never waits

    async def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        await asyncio.sleep(0.01)             # the round trip (a real client also bounds it with a timeout)
        self.lookups += 1
        if self._down is not None:
            raise StoreUnavailable(self._down)
        return self._records.get((platform, subject), ())  # ``subject`` is already the subject key

    def on_change(self, record: AuthorizationRecord) -> None:
        """A grant, or a withdrawal (a record of its own, with ``revoked_at``): new answers, then a new version."""
        known = self._platforms.get(record.platform)
        key = (record.platform, known.subject_key(record.subject) if known is not None else record.subject)
        self._records[key] = (*self._records.get(key, ()), record)
        self._version = next(self._versions)

    def went_down(self, why: str) -> None:
        """The service stopped answering: every lookup fails, and the version says so (nothing is reused)."""
        self._down = why
        self._version = next(self._versions)
