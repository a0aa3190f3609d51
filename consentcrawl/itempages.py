"""Which page an item came from, for items that cannot carry their provenance: held by identity for the guard.

The guard pipeline ties an item that does not name its person (no ``subject`` field) to the person of the page it
was yielded from, through the provenance the spider middleware stamps on it: their grant's fields apply to it,
and it is dropped if they have withdrawn since the page was fetched. An ``Item`` class (or dataclass) without the
provenance field cannot be stamped, and neither can any item when ``CONSENTCRAWL_PROVENANCE_FIELD`` is off; the
page's provenance is then kept here, by the item object, until the guard takes it. Without it such an item would
pass the guard untouched, whoever's page it came from.

An entry lives as long as its item: it goes when the guard takes it, or when the item is garbage-collected (an item
a later spider middleware dropped). An item that cannot be weakly referenced is held until the guard takes it.

Such an item reaches the outputs naming no one, so no purge can find it there. The guard counts, per person, the
items it kept that way (:attr:`ItemPages.unfindable`): the purge on close says, in the receipts of those people,
that their items cannot be erased by it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any


class ItemPages:
    """Page provenance by item identity (see the module doc)."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Callable[[], Any], dict[str, Any], weakref.finalize | None]] = {}
        #: (platform, subject key) -> how many items the guard kept of that person that name no one in the output
        self.unfindable: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def put(self, item: Any, provenance: dict[str, Any]) -> None:
        key = id(item)
        try:
            ref: Callable[[], Any] = weakref.ref(item)
        except TypeError:  # no weak references (a class with __slots__): held until the guard takes it
            finalizer = None

            def ref(item: Any = item) -> Any:
                return item
        else:
            finalizer = weakref.finalize(item, self._by_id.pop, key, None)
        self._by_id[key] = (ref, provenance, finalizer)

    def kept(self, platform: str, subject: str) -> None:
        """The guard kept an item of this person that names no one in the output (see the module doc)."""
        self.unfindable[(platform, subject)] = self.unfindable.get((platform, subject), 0) + 1

    def take(self, item: Any) -> dict[str, Any] | None:
        """The provenance of the page ``item`` was yielded from, once; None when it was not kept here."""
        entry = self._by_id.get(id(item))
        if entry is None or entry[0]() is not item:
            return None
        del self._by_id[id(item)]
        if entry[2] is not None:
            entry[2].detach()
        return entry[1]
