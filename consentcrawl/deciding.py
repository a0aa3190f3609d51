"""The adapters' one way to ask for a decision: the cache first, the store only when needed, then the engine.

The engine (:mod:`consentcrawl.engine`) is pure: it is given the store's version and the records looked up so far
(:class:`~consentcrawl.consent.answers.StoreAnswers`), never the store. :class:`Decider` is what the adapters (the
pre-filters, the send-time decision, the response phase, the item guard, ``consentcrawl check``) call instead:

1. it reads the store's version (cheap, no waiting) and asks the engine; a remembered decision still valid at that
   version, or one that needs nobody's records (a page that is no one's profile, a site check that denies first),
   is the answer, with no lookup and no ``await`` that waits;
2. when the engine needs a person's records, it raises
   :class:`~consentcrawl.consent.answers.RecordsNeeded`; the decider awaits the store's lookup (the version read in
   step 1 is the read before it: nothing was awaited in between), reads the version again after it, and asks the
   engine again with the answer, and with what the engine worked out before it found the records missing
   (``RecordsNeeded.carried``: a link's facts and consent key), so the second ask does not do that work again.
   The engine raises before any consent check has run, so the checks run once, with the records.

A code path that cannot wait (Scrapy's ``request_scheduled`` signal) uses :meth:`Decider.now`: step 1 only, and no
decision when the records are needed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from .consent.adapt import AsyncStore, as_async_store
from .consent.answers import NO_STORE, RecordsNeeded, StoreAnswers
from .errors import StoreDamaged, StoreUnavailable

if TYPE_CHECKING:
    from .decision import Decision
    from .engine import PolicyEngine
    from .facts import RequestFacts
    from .robots.fetch import RobotsFile
    from .signals.evaluate import SiteFiles

__all__ = ["MAX_PEOPLE", "UNDECIDED", "Decider", "Undecided"]

_T = TypeVar("_T")

#: the most people whose records one decision may look up (the built-in checks read one person's)
MAX_PEOPLE = 8


class Undecided:
    """What :meth:`Decider.now` gives when the decision needs a lookup."""

    __slots__ = ()


UNDECIDED = Undecided()


class _Changed:
    """The version of answers given while the store changed: equal to nothing, so nothing made from them is
    reused."""

    __slots__ = ()


class Decider:
    """An engine and the store it decides with (any store: it is adapted by
    :func:`~consentcrawl.consent.adapt.as_async_store`), asked in the order the module's docstring gives."""

    def __init__(self, engine: PolicyEngine, store: Any | None) -> None:
        self.engine = engine
        self.store: AsyncStore | None = as_async_store(store, engine.platforms) if store is not None else None
        #: called when a lookup finds the store's file damaged (the crawl counts it in its stats)
        self.on_damaged: Callable[[StoreDamaged], None] | None = None

    def answers(self) -> StoreAnswers:
        """What is known without asking the store: its version now, and no records."""
        store = self.store
        return NO_STORE if store is None else StoreAnswers(store.version, store.source)

    def now(self, ask: Callable[[StoreAnswers], _T]) -> _T | Undecided:
        """``ask(answers)`` with nothing looked up: its result, or :data:`UNDECIDED` when it needs a person's
        records that are not remembered at the store's version."""
        try:
            return ask(self.answers())
        except RecordsNeeded:
            return UNDECIDED

    async def run(self, ask: Callable[[StoreAnswers], _T]) -> _T:
        """``ask(answers)``, looking up each person whose records it needs and asking again with them, and with
        what the engine carried over from the ask that needed them (:attr:`RecordsNeeded.carried`)."""
        answers = self.answers()
        read = True  # the answers' version was read with nothing awaited since: it is the read before a lookup
        for _ in range(MAX_PEOPLE):
            try:
                return ask(answers)
            except RecordsNeeded as need:
                answers = await self.look_up(answers, need.platform, need.subject, need.carried, read=read)
                read = False
        try:
            return ask(answers.finished())
        except RecordsNeeded:  # pragma: no cover - finished answers never raise it
            raise AssertionError("finished answers asked for more records") from None

    async def look_up(self, answers: StoreAnswers, platform: str, subject: str, carried: object = None, *,
                      read: bool = False) -> StoreAnswers:
        """``answers`` plus the store's answer for one person (and ``carried``, for the next ask).

        The version is read before the lookup and again after it. The answers keep their version only when it
        stayed the same (and is the one their earlier lookups were made at); otherwise they get a version equal to
        nothing: the decision is made on the freshest answers, and nothing is remembered from it. ``read``: the
        answers' own version is that read before, made by :meth:`answers` with nothing awaited since (the first
        lookup of :meth:`run`), so the store is not asked for it twice.
        """
        store = self.store
        assert store is not None  # without a store no records are ever needed
        before = answers.version if read else store.version
        answer: Any
        try:
            answer = await store.lookup(platform, subject)
        except StoreUnavailable as exc:
            answer = exc
            if isinstance(exc, StoreDamaged) and self.on_damaged is not None:
                self.on_damaged(exc)
        after = store.version
        steady = before == after and (not answers.answers or before == answers.version)
        return answers.with_answer(platform, subject, answer, before if steady else _Changed(), carried)

    # -- the engine's ways to ask, with the store -----------------------------------------------------------------

    async def decide(self, facts: RequestFacts, robots: RobotsFile | None,
                     signals: SiteFiles | None = None) -> Decision:
        """Raises SignalsNeeded when the decision needs the origin's signal files and ``signals`` is None."""
        return await self.run(lambda answers: self.engine.decide(facts, robots, answers, signals))

    async def decide_consent(self, facts: RequestFacts) -> Decision:
        return await self.run(lambda answers: self.engine.decide_consent(facts, answers))

    async def decide_link(self, url: str, purpose: str, now: datetime) -> tuple[Decision, str, bool]:
        return await self.run(lambda answers: self.engine.decide_link(url, purpose, now, answers))

    async def decide_subject(self, platform: str | None, subject: str, purpose: str, now: datetime) -> Decision:
        return await self.run(lambda answers: self.engine.decide_subject(platform, subject, purpose, now, answers))
