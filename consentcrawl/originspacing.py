"""``OriginSpacing``: robots.txt's ``Crawl-delay`` kept per origin in one process, by the send-time handler
(:mod:`consentcrawl.handler`), whatever download slot a request came through."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["OriginSpacing", "TurnNotFree"]


class TurnNotFree(Exception):
    """An origin's turn was not free within the time a caller may wait for it (:meth:`OriginSpacing.turn`)."""


class OriginSpacing:
    """Each origin's ``Crawl-delay``, kept from the *end* of one fetch from the origin to the start of the next.

    That is the directive's definition where one is written down (Yandex: "the minimum interval between the end of
    loading one page and the start of loading the next"), and the only spacing the server is sure to see: counted
    between sends, a request that reached the server late (a new connection, a slow proxy) brought the next one
    closer than the delay. So requests to an origin with a delay go one at a time, in the order they asked
    (``asyncio.Lock`` serves its waiters first come, first served), each after the delay since the previous fetch
    ended; origins without a delay are not held. A request denied after its wait was never sent and does not move
    the origin's clock. robots.txt goes at once (it is how the delay is known), but its end counts like any other.
    """

    def __init__(self, horizon: float, clock: Any = time.monotonic) -> None:
        #: the longest delay it may be asked to keep (``CONSENTCRAWL_MAX_CRAWL_DELAY``: a longer one denies): a fetch
        #: that ended longer ago than that holds no origin back, and is forgotten, so that a broad crawl's state is
        #: the origins fetched within the horizon, not every origin it ever saw
        self.horizon = horizon
        self.clock = clock
        self._ended: OrderedDict[str, float] = OrderedDict()  # oldest end first
        self._turns: dict[str, _Turn] = {}  # origins whose turn is held or waited for

    def __len__(self) -> int:
        """The number of origins it keeps anything for."""
        return len(self._ended.keys() | self._turns.keys())

    def ended(self, origin: str) -> None:
        """A fetch from ``origin`` (sent with or without a delay to keep) has ended now."""
        now = self.clock()
        self._ended[origin] = now
        self._ended.move_to_end(origin)
        while self._ended:  # the ends past the horizon, oldest first: each is dropped once, O(1) a fetch
            oldest, at = next(iter(self._ended.items()))
            if now - at < self.horizon:
                break
            del self._ended[oldest]

    def wait(self, origin: str, delay: float | None) -> float:
        """The seconds until the origin's next request may start (0: now)."""
        ended = self._ended.get(origin)
        return 0.0 if ended is None or not delay else max(0.0, ended + delay - self.clock())

    @contextlib.asynccontextmanager
    async def turn(self, origin: str | None, delay: float | None,
                   within: float | None = None) -> AsyncIterator[float]:
        """Hold the origin's turn while the request is decided and fetched; yields the seconds waited for it.
        ``within``: the longest wait for the turn (the delay after it apart), else :class:`TurnNotFree`.

        The origin's lock lives while a request holds or waits for it, and is dropped with the last one: a lock
        dropped while one waited would let the next request in beside the holder."""
        if origin is None or not delay:
            yield 0.0
            return
        turn = self._turns.get(origin)
        if turn is None:
            turn = self._turns[origin] = _Turn()
        turn.users += 1
        try:
            try:
                await asyncio.wait_for(turn.lock.acquire(), within)
            except asyncio.TimeoutError:
                raise TurnNotFree(f"the origin's Crawl-delay turn was not free within {within:g} s") from None
            try:
                wait = self.wait(origin, delay)
                if wait > 0:
                    await asyncio.sleep(wait)
                yield wait
            finally:
                turn.lock.release()
        finally:
            turn.users -= 1
            if not turn.users:
                del self._turns[origin]


class _Turn:
    """An origin's lock, and how many requests hold or wait for it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
