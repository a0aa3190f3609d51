"""One adapter for every store: :func:`as_async_store` gives the asynchronous protocol to any store.

A store of the protocol (:class:`~consentcrawl.consent.store.AuthorizationStore`) has ``async def lookup``; the
built-in stores and many of your own answer without waiting and have a plain ``def lookup``
(:class:`~consentcrawl.consent.store.SyncAuthorizationStore`). Rather than every caller telling them apart, the
adapters ask every store through this one wrapper, which also holds the rules every answer must meet:

- an answer is a tuple, copied from whatever the store returned: a store that later changes a list it handed out
  cannot change the answer a decision was made on;
- any exception from a lookup is a :class:`~consentcrawl.errors.StoreUnavailable` naming the store and the cause
  (``error.store-unavailable``), and it changes the version: a store that fails without saying so still makes
  every remembered decision that used its records stale;
- a store without a ``version`` gets one that changes every time it is read: nothing it answered is reused;
- a ``version`` that is not a plain value (a dict, a list, a set, a tuple holding one, an object of the store's
  own class) is copied as it is read: a store that changes it in place would otherwise hand out one object that
  always compares equal to itself;
- a store whose ``version`` raises cannot say whether its answers changed: the read gets a version equal to
  nothing, and every lookup fails (``StoreUnavailable``, with the cause) until the version reads again, so a
  decision that needs a person's records denies and is recorded like one whose lookup failed.
- every record of an answer must be of the person asked for (the platform, and the subject key under that
  platform's rule): a store whose query lost its ``WHERE`` clause, or whose cache is keyed by the wrong thing,
  would otherwise grant one person's page on another's record. Such an answer is a failure like any other
  (the remote stores check the same when they read an answer off the network: ``remote.records_from_json``).

A plain ``def lookup`` is called inline, on the event loop's thread: the built-in stores answer from memory, or
from a local SQLite file through an LRU and a Bloom filter, in less time than a hop to a worker thread and back
costs. A store whose lookups block for long (a network call made synchronously) should be written with
``async def lookup`` instead.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import itertools
from collections.abc import Hashable
from typing import Any

from ..errors import StoreUnavailable
from .keys import KeyFunction, key_function, platform_objects
from .records import AuthorizationRecord

__all__ = ["AsyncStore", "as_async_store"]

_unversioned = itertools.count(1)


class _Copied:
    """A copy of a version that is not a plain value (:func:`_value`), taken when it was read: a store that keeps
    its version in a dict (a change-feed consumer's offsets, say) and advances it in place hands out the same
    object every time, which would compare equal to the version a remembered decision was made at, whatever
    changed since. Copies compare by what they held (an object compared by identity: never equal)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Copied) and bool(self.value == other.value)

    def __hash__(self) -> int:
        return 0  # equal copies must hash equal; nothing keys a table by versions

    def __repr__(self) -> str:
        return f"<version {self.value!r}>"


#: the types whose instances cannot change once made and compare by what they hold
_VALUES = frozenset({int, float, complex, str, bytes, bool, type(None)})


def _value(version: object) -> bool:
    """Whether ``version`` is a value that cannot change in place: a number, a string, bytes, None, or a tuple or
    frozenset of those. A tuple holding a list (``(epoch, offsets)``) is hashable by type and yet changes when its
    list does; an object of a class of the store's compares by identity unless it says otherwise, and advanced in
    place it stays equal to itself. Anything else is copied as it is read (:class:`_Copied`)."""
    kind = type(version)
    if kind in _VALUES:
        return True
    if kind is tuple or kind is frozenset:
        return all(_value(v) for v in version)  # type: ignore[attr-defined]
    return False


class AsyncStore:
    """A store, sync or async, behind the asynchronous protocol (see the module's docstring)."""

    __slots__ = ("_failures", "_keys", "_platforms", "_unreadable", "_versioned", "source", "store")

    def __init__(self, store: Any, platforms: Any = None) -> None:
        self.store = store  #: the store as it was opened (a FileStore, an SQLiteStore, one of your own)
        self.source: str = str(getattr(store, "source", None) or f"{type(store).__module__}.{type(store).__qualname__}")
        self._versioned = hasattr(type(store), "version") or hasattr(store, "version")
        self._failures = 0  #: lookups that failed: part of the version, so a failure is a change
        self._unreadable: str | None = None  #: why the last read of the store's version failed, or None
        self._platforms = platform_objects(platforms)  #: each platform's subject key rule, by name
        self._keys: dict[str, KeyFunction] = {}

    @property
    def version(self) -> Hashable:
        if not self._versioned:
            return ("unversioned", next(_unversioned))  # never equal to an earlier read
        try:
            version = self.store.version
            if not _value(version):  # a dict, a list, an object: changed in place, it is the same object
                version = _Copied(copy.deepcopy(version))
        except Exception as exc:  # noqa: BLE001 - whether its answers changed is unknown: nothing it says is used
            self._failures += 1
            self._unreadable = f"authorization store {self.source} cannot read its version: {type(exc).__name__}: {exc}"
            return ("unreadable", next(_unversioned))
        self._unreadable = None
        return version if not self._failures else (version, self._failures)

    async def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        try:
            if self._unreadable is not None:
                raise StoreUnavailable(self._unreadable)
            answer = self.store.lookup(platform, subject)
            if inspect.isawaitable(answer):
                answer = await answer
            records = tuple(answer)
            self._of_person(records, platform, subject)
            return records
        except StoreUnavailable:
            self._failures += 1
            raise
        except Exception as exc:  # a store that cannot answer, whatever the cause, is unavailable
            self._failures += 1
            raise StoreUnavailable(f"authorization store {self.source} failed: {type(exc).__name__}: {exc}") from exc

    def _of_person(self, records: tuple[AuthorizationRecord, ...], platform: str, subject: str) -> None:
        """Raise StoreUnavailable when a record is not of (``platform``, ``subject``) (the module's docstring)."""
        if not records:
            return
        key = self._keys.get(platform)
        if key is None:
            key = self._keys[platform] = key_function(self._platforms.get(platform))
        asked = key(subject)
        for number, record in enumerate(records, start=1):
            if record.platform != platform or key(record.subject) != asked:
                raise StoreUnavailable(f"authorization store {self.source} answered with record {number} of "
                                       "another person than the one asked for")

    def __repr__(self) -> str:
        return f"<AsyncStore {self.store!r}>"


def as_async_store(store: Any, platforms: Any = None) -> AsyncStore:
    """The store behind the asynchronous protocol: ``async def lookup`` and a ``version`` (see the module's
    docstring); ``platforms`` (a ``PlatformRegistry``) gives each platform's subject key rule, by which the
    records answered are checked to be the person's (the default rule for a platform it does not name). A
    store that is already adapted is returned as it is."""
    return store if isinstance(store, AsyncStore) else AsyncStore(store, platforms)


async def aclose_store(store: Any) -> None:
    """Close a store opened outside a crawl (a command). A store that follows a change feed (Redis, a consent API)
    runs a task a crawl stops at ``engine_stopped``; left running, it outlives the command's ``asyncio.run``, whose
    own cancelling of it can be lost (:mod:`consentcrawl.tasks`), and the command never exits."""
    close = getattr(store.store if isinstance(store, AsyncStore) else store, "aclose", None)
    if close is not None:
        await close()



def close_store_now(store: Any) -> None:
    """Close a store from code that cannot wait (a crawl whose start failed): its ``close`` at once, or its
    ``aclose`` as a task of the running event loop (none running: the process is ending, and takes it along)."""
    inner = store.store if isinstance(store, AsyncStore) else store
    close = getattr(inner, "close", None)
    if callable(close):
        close()
        return
    aclose = getattr(inner, "aclose", None)
    if aclose is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(aclose())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


#: closes scheduled by :func:`close_store_now`, kept until done (the loop keeps only weak references to tasks)
_CLOSING: set[asyncio.Task[Any]] = set()
