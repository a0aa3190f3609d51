"""Authorization stores: where leg-3 records are looked up.

The policy core only calls :meth:`AuthorizationStore.lookup`; a store that cannot answer raises
:class:`~consentcrawl.errors.StoreUnavailable` and the decision becomes ``error.store-unavailable``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from .records import AuthorizationRecord


class AuthorizationStore(Protocol):
    def lookup(self, platform: str, subject: str) -> Sequence[AuthorizationRecord]:
        """All records for one person on one platform (empty if none)."""
        ...


class MemoryStore:
    """Records held in a dict keyed by (platform, subject): what YAML/CSV/JSONL files load into."""

    def __init__(self, records: Iterable[AuthorizationRecord] = (), source: str = "memory") -> None:
        self.source = source
        self._records: dict[tuple[str, str], list[AuthorizationRecord]] = {}
        self._order = list(records)
        for record in self._order:
            self._records.setdefault((record.platform, record.subject), []).append(record)

    def lookup(self, platform: str, subject: str) -> Sequence[AuthorizationRecord]:
        return self._records.get((platform, subject), ())

    def __iter__(self) -> Iterator[AuthorizationRecord]:
        """Every record, in the order they were given (``authorizations import`` copies them this way)."""
        return iter(self._order)

    def __len__(self) -> int:
        return sum(len(v) for v in self._records.values())
