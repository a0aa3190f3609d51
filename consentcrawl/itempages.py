"""Which page an item came from, for items that cannot carry their provenance: held by identity for the guard.

The guard pipeline ties an item that does not name its person (no ``subject`` field) to the person of the page it
was yielded from, through the provenance the spider middleware stamps on it: their grant's fields apply to it,
and it is dropped if they have withdrawn since the page was fetched. An ``Item`` class (or dataclass) without the
provenance field cannot be stamped, and neither can any item when ``CONSENTCRAWL_PROVENANCE_FIELD`` is off; the
page's provenance is then kept here, by the item object, until the guard takes it. Without it such an item would
pass the guard untouched, whoever's page it came from.

**How long.** An entry lives while its item can still reach the guard. It goes when the guard has taken it as
many times as it was yielded, or when no one but this class holds the item any more (a later spider middleware
dropped it): an item that can be weakly referenced is watched by a finalizer; one that cannot (a plain ``dict``,
a class with ``__slots__``) is held here, and a sweep, run each time the number held has doubled, lets go of
those whose only reference is ours (``sys.getrefcount``, measured against an object only the sweep holds). An
item still held elsewhere (the spider kept it, a middleware holds it back to yield it later) keeps its page: were
it let go, the item would reach the guard as no one's. On an interpreter without reference counts, nothing is let
go before the guard takes it.

**One object from two pages.** A spider may yield one object from several pages (a dict it keeps and fills in).
Passes that are on their way to the guard together share one entry, judged as the stricter of the pages: a page
of no one's (a listing) adds nobody, the same person twice is that person, and two different people's pages make
it no one's for sure (:meth:`ItemPages.conflicting`): the guard drops it, as it denies a URL two people can be
read from. Each pass is judged that way. The spider middleware applies the same rule to an item that carries its
page in the provenance field (:meth:`ItemPages.stamp`): stamping it again must not replace a page the guard has
not judged it on yet. Only a stamp made here counts as a page: it is known by identity (:class:`PageStamp`,
weakly referenced), so a dict the spider put in the field itself, however it is spelt (one loaded from an earlier
crawl's output, say), is replaced by the page's stamp and never stands for its URL, agreement or ``expires_at``.

Such an item reaches the outputs naming no one, so no purge can find it there. The guard counts, per person, the
items it kept that way (:attr:`ItemPages.unfindable`): the purge on close says, in the receipts of those people,
that their items cannot be erased by it.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import Any

#: the provenance key under which the pages of two different people are listed (in the field of an item stamped
#: from both: the guard drops it, so it reaches no output in enforce mode)
_CONFLICT = "consentcrawl.pages"
#: the fewest held items a sweep runs for: below it, holding them costs less than looking
_FIRST_SWEEP = 256


def stricter(held: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The page provenance an item yielded from the pages ``held`` and ``new`` is judged by (see the module doc)."""
    if _person(new) is None or (_person(new) == _person(held) and _CONFLICT not in held):
        return held
    if _person(held) is None:
        return new
    pages = held.get(_CONFLICT) or [held]
    return {**held, _CONFLICT: [*pages, new]}


class PageStamp(dict):  # type: ignore[type-arg]
    """A page's provenance as the spider middleware stamps it into an item's provenance field: a dict that can be
    weakly referenced, so that :meth:`ItemPages.stamp` knows the stamps it made from any other dict."""

    __slots__ = ("__weakref__",)


def _person(provenance: dict[str, Any]) -> tuple[Any, str] | None:
    subject = provenance.get("subject")
    return None if subject in (None, "") else (provenance.get("platform"), str(subject))


class _Entry:
    __slots__ = ("finalizer", "pending", "provenance", "ref")

    def __init__(self, ref: Callable[[], Any], provenance: dict[str, Any], finalizer: weakref.finalize | None) -> None:
        self.ref = ref
        self.provenance = provenance
        self.finalizer = finalizer
        self.pending = 1  #: passes yielded and not taken by the guard yet


class ItemPages:
    """Page provenance by item identity (see the module doc)."""

    def __init__(self) -> None:
        self._by_id: dict[int, _Entry] = {}
        #: items that cannot be weakly referenced, by id: held here until the guard takes them or a sweep
        self._held: dict[int, Any] = {}
        self._sweep_at = _FIRST_SWEEP
        #: the stamps made and still in an item, by id
        self._stamps: weakref.WeakValueDictionary[int, PageStamp] = weakref.WeakValueDictionary()
        #: (platform, subject key) -> how many items the guard kept of that person that name no one in the output
        self.unfindable: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def put(self, item: Any, provenance: dict[str, Any]) -> None:
        key = id(item)
        entry = self._by_id.get(key)
        if entry is not None and entry.ref() is item:  # yielded again before the guard took it
            entry.provenance = stricter(entry.provenance, provenance)
            entry.pending += 1
            return
        try:
            ref: Callable[[], Any] = weakref.ref(item)
        except TypeError:  # no weak references (a dict, a class with __slots__): held here
            self._held[key] = item
            self._by_id[key] = _Entry(lambda: self._held.get(key), provenance, None)
            if len(self._held) >= self._sweep_at:
                self.sweep()
        else:
            self._by_id[key] = _Entry(ref, provenance, weakref.finalize(item, self._by_id.pop, key, None))

    def stamp(self, held: Any, provenance: dict[str, Any]) -> PageStamp:
        """What to stamp into an item whose provenance field holds ``held``: its page's ``provenance``, or the
        stricter of it and a stamp made here that the guard has not judged the item on yet (the guard's judgement
        adds ``item_decision_id``). Anything else in the field is the spider's, and is replaced."""
        made_here = self._stamps.get(id(held))
        if made_here is not None and made_here is held and "item_decision_id" not in made_here:
            provenance = stricter(made_here, provenance)
        made = PageStamp(provenance)
        self._stamps[id(made)] = made
        return made

    def sweep(self) -> None:
        """Let go of the held items no one else holds: they can never reach the guard."""
        if hasattr(sys, "getrefcount"):
            probe: dict[str, Any] = {}  # held here alone: the count of an item no one else holds
            probe_key = id(probe)
            self._held[probe_key] = probe
            del probe
            counts = [(key, sys.getrefcount(item)) for key, item in self._held.items()]
            del self._held[probe_key]
            alone = dict(counts)[probe_key]
            for key, count in counts:
                if count <= alone and key != probe_key:
                    del self._held[key]
                    self._by_id.pop(key, None)
        self._sweep_at = max(_FIRST_SWEEP, 2 * len(self._held))

    def kept(self, platform: str, subject: str) -> None:
        """The guard kept an item of this person that names no one in the output (see the module doc)."""
        self.unfindable[(platform, subject)] = self.unfindable.get((platform, subject), 0) + 1

    def take(self, item: Any) -> dict[str, Any] | None:
        """The provenance of the page(s) ``item`` was yielded from, once per pass; None when it was not kept here."""
        key = id(item)
        entry = self._by_id.get(key)
        if entry is None or entry.ref() is not item:
            return None
        entry.pending -= 1
        if entry.pending <= 0:
            del self._by_id[key]
            self._held.pop(key, None)
            if entry.finalizer is not None:
                entry.finalizer.detach()
        return entry.provenance

    @staticmethod
    def conflicting(provenance: dict[str, Any]) -> list[dict[str, Any]]:
        """The pages of different people ``provenance`` was yielded from; empty when it is one person's or none's."""
        pages: list[dict[str, Any]] = provenance.get(_CONFLICT) or []
        return pages
