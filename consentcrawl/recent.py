"""A small bounded map for the caches on the decision path."""

from __future__ import annotations

from typing import Generic, TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")


class Recent(Generic[_K, _V]):
    """A bounded map that keeps about the ``size`` to ``2 * size`` most recently used entries.

    Two generations: new entries go to the young one; when it is full it becomes the old one and the previous old
    one is dropped; an old entry that is used again moves back to the young one. An approximate LRU at the cost
    of one or two dict lookups, where ``OrderedDict.move_to_end`` on every hit would cost more than it saves.
    """

    __slots__ = ("old", "size", "young")

    def __init__(self, size: int) -> None:
        self.size = size
        self.young: dict[_K, _V] = {}
        self.old: dict[_K, _V] = {}

    def get(self, key: _K) -> _V | None:
        value = self.young.get(key)
        if value is None:
            value = self.old.pop(key, None)
            if value is not None:
                self.put(key, value)
        return value

    def put(self, key: _K, value: _V) -> None:
        young = self.young
        young[key] = value
        if len(young) >= self.size:
            self.old, self.young = young, {}

    def __len__(self) -> int:
        return len(self.young) + len(self.old)
