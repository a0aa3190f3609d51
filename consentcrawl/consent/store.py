"""Authorization stores: where leg-3 records are looked up, and the protocol every store implements.

The protocol is asynchronous (:class:`AuthorizationStore`): a consent API or a Redis store answers over the network,
and the crawl must not stop while it does. The adapters (never the pure core) await
:meth:`AuthorizationStore.lookup` with the platform's name and the person's *subject key*
(:mod:`consentcrawl.consent.keys`), and pass the records into the engine. A store reports change explicitly: its
:attr:`~AuthorizationStore.version`, read before every decision, says whether what the engine remembered may be
stale, so a remembered decision never needs a lookup to be checked. A store that cannot answer raises
:class:`~consentcrawl.errors.StoreUnavailable` and the decision becomes ``error.store-unavailable``.

A store whose ``lookup`` is a plain ``def`` (:class:`SyncAuthorizationStore`: the built-in ones, and any of your
own that answers from memory or a local file) is adapted by :func:`~consentcrawl.consent.adapt.as_async_store`,
in one place.

Every store is live (design doc, "Live stores"): a change to its records (a withdrawal above all) shows in its
answers and its version within 2 seconds. :class:`MemoryStore` holds records given to it in code;
:class:`~consentcrawl.consent.load.FileStore` reloads a YAML, CSV or JSONL file when it changes;
:class:`~consentcrawl.consent.sqlite.SQLiteStore` follows an SQLite file.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from .keys import KeyFunction, casefold_key, key_function, platform_objects
from .records import AuthorizationRecord

__all__ = ["AuthorizationStore", "MemoryStore", "SyncAuthorizationStore", "new_version"]

_versions = itertools.count(1)


def new_version() -> int:
    """A version no store in this process has had: equal versions mean the same store in the same state."""
    return next(_versions)  # itertools.count is atomic under the GIL


class AuthorizationStore(Protocol):
    """What consentcrawl needs of a store.

    ``version`` is read before every decision that could reuse a remembered one, so it must be cheap and must
    never wait for the network: keep it current from what the store learns (a change feed, a poll of its own, each
    lookup's answer). A store that can only learn of a change by looking (a file) may look when ``version`` is
    read, at most every so often, within the 2-second bound.
    """

    source: str  #: the file path or URL, named in evidence (never a secret)

    @property
    def version(self) -> Hashable:
        """Changes whenever any lookup's answer may have changed (a write, a reload, the store failing or coming
        back), within 2 seconds; equal versions promise equal answers. Compare versions of the same store only."""
        ...

    async def lookup(self, platform: str, subject: str) -> Sequence[AuthorizationRecord]:
        """All records of one person on one platform (empty if none).

        ``subject`` is the subject key (``platform.subject_key(subject_as_written)``); a store normalises it again,
        which changes nothing for a key. Raises StoreUnavailable when the store cannot answer; any other exception
        is taken the same way. A lookup that may hang must time out by itself: the request waits for it.
        """
        ...


class SyncAuthorizationStore(Protocol):
    """A store that answers without waiting (in memory, or from a local file): :class:`AuthorizationStore` with
    a plain ``def lookup``. Adapted by :func:`~consentcrawl.consent.adapt.as_async_store`."""

    source: str

    @property
    def version(self) -> Hashable:
        ...

    def lookup(self, platform: str, subject: str) -> Sequence[AuthorizationRecord]:
        ...


class MemoryStore:
    """Records held in a dict keyed by (platform, subject key): for records given in code, and what a
    :class:`~consentcrawl.consent.load.FileStore` swaps in each time its file is read.

    ``platforms`` (a ``PlatformRegistry`` or a mapping of name to platform) gives each platform's key rule; a
    platform not given uses the default (NFKC, case-folded). :meth:`lookup` hands back the same tuple for a person
    until their records change; :meth:`add` makes a new tuple and a new :attr:`version`.
    """

    def __init__(self, records: Iterable[AuthorizationRecord] = (), source: str = "memory",
                 platforms: Any = None) -> None:
        self.source = source
        self._platforms = platform_objects(platforms)
        self._keys: dict[str, KeyFunction] = {}
        self._order: list[AuthorizationRecord] = list(records)
        grouped: dict[tuple[str, str], list[AuthorizationRecord]] = {}
        for record in self._order:
            grouped.setdefault((record.platform, self.key(record.platform, record.subject)), []).append(record)
        self._records: dict[tuple[str, str], tuple[AuthorizationRecord, ...]] = {
            key: tuple(group) for key, group in grouped.items()}
        self._version = new_version()

    @property
    def version(self) -> int:
        return self._version

    def key(self, platform: str, subject: str) -> str:
        """The subject key this store indexes ``subject`` of ``platform`` by."""
        function = self._keys.get(platform)
        if function is None:
            known = self._platforms.get(platform)
            function = self._keys[platform] = key_function(known) if known is not None else casefold_key
        return function(subject)

    def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        return self._records.get((platform, self.key(platform, subject)), ())

    def add(self, record: AuthorizationRecord) -> None:
        """Add one record (a grant, or a withdrawal: a record of its own); the store's version changes."""
        key = (record.platform, self.key(record.platform, record.subject))
        self._records[key] = (*self._records.get(key, ()), record)
        self._order.append(record)
        self._version = new_version()

    def __iter__(self) -> Iterator[AuthorizationRecord]:
        """Every record, in the order they were given (``authorizations import`` copies them this way)."""
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)
