"""``OriginSpacing``: robots.txt's ``Crawl-delay`` kept per origin in one process, by the send-time handler
(:mod:`consentcrawl.handler`), whatever download slot a request came through."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

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
    async def turn(self, origin: str | None, delay: float | None, within: float | None = None,
                   holds: float | None = None) -> AsyncIterator[float]:
        """Hold the origin's turn while the request is decided and fetched; yields the seconds waited for it.
        ``within``: the longest one holder may hold the turn while this waits for it, else :class:`TurnNotFree`;
        ``holds``: the longest this request holds it, its delay and its own timeout (a waiter's bound for it).

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
            await self._acquire(turn, within)
            turn.since, turn.holds = self.clock(), holds
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

    @contextlib.contextmanager
    def off_the_clock(self, origin: str | None, delay: float | None) -> Iterator[None]:
        """The request holding the origin's turn (:meth:`turn`, with the same ``origin`` and ``delay``; only it may
        call this) waits on the clock alone: for a distributed crawl's schedule (its turn, another worker's fetch).
        That time does not count against its bound for a request waiting behind it, which starts again when the wait
        ends: with several workers on an origin the wait is several delays, and a holder in it is not one that does
        not let go. Nothing it waits for there needs this turn (robots.txt, which may hold the cluster's origin, goes
        without it)."""
        turn = self._turns.get(origin) if origin is not None and delay else None
        if turn is None:  # not held (no delay to keep)
            yield
            return
        turn.since = math.inf
        try:
            yield
        finally:
            turn.since = self.clock()

    async def _acquire(self, turn: _Turn, within: float | None) -> None:
        """Take the turn, in order; with ``within``, fail once one holder has held it that long while this waited.

        The bound is on each holder, not on the whole wait: the requests ahead take the turn one after another, each
        for its delay and its fetch, and behind a busy origin's queue of pages the wait is theirs added up. A
        holder past the bound is one that does not let go (waiting, maybe, for the very request that waits here)."""
        if within is None:
            await turn.lock.acquire()
            return
        acquiring = asyncio.ensure_future(turn.lock.acquire())
        started = self.clock()
        try:
            while True:
                # the holder's time counts from when it took the turn, or from when this began waiting
                # (off the clock: its bound starts when that wait ends; look again within the bound meanwhile)
                remaining = max(turn.since, started) + (turn.holds or within) - self.clock()
                if remaining <= 0:
                    raise TurnNotFree(f"the origin's Crawl-delay turn was not free within {within:g} s")
                done, _ = await asyncio.wait((acquiring,), timeout=min(remaining, turn.holds or within))
                if done:
                    acquiring.result()
                    return
        except BaseException:
            acquiring.cancel()
            # taken after all (it completed as it was given up): let the next waiter have it
            if acquiring.done() and not acquiring.cancelled() and acquiring.exception() is None:
                turn.lock.release()
            raise


class _Turn:
    """An origin's lock, how many requests hold or wait for it, when its holder took it and for how long at most."""

    __slots__ = ("holds", "lock", "since", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
        self.since = float("-inf")
        self.holds: float | None = None
