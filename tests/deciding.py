"""The engine asked together with a store, without an event loop: for tests of the decision path.

:class:`Engine` asks what :class:`~consentcrawl.engine.PolicyEngine` is asked, through a
:class:`~consentcrawl.deciding.Decider` (the cache first, the store's lookup when the engine needs a person's
records). A store that answers without waiting (the built-in ones, or an ``async def lookup`` that never awaits)
never suspends the decider's coroutines, so they are driven to their end here directly.
"""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import datetime
from typing import Any, TypeVar

from consentcrawl.deciding import Decider
from consentcrawl.decision import Decision
from consentcrawl.engine import PolicyEngine
from consentcrawl.facts import RequestFacts
from consentcrawl.robots.fetch import RobotsFile
from consentcrawl.signals.evaluate import SiteFiles
from consentcrawl.terms.platforms import PlatformRegistry

_T = TypeVar("_T")


def run_now(coro: Coroutine[Any, Any, _T]) -> _T:
    """The result of a coroutine that never waits; fails the test if it does."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the decision waited for something: use an event loop for this store")


#: the files handed out per robots.txt object, so that the same robots.txt gets the same SiteFiles object
_NO_SIGNALS: dict[int, tuple[RobotsFile | None, SiteFiles]] = {}


def no_signals(robots: RobotsFile | None) -> SiteFiles:
    """An origin that publishes no signal file (robots.txt may still carry signal lines): the same object for the
    same robots.txt object, as a crawl's signal fetcher hands out (the site check's memo is keyed by identity)."""
    entry = _NO_SIGNALS.get(id(robots))
    if entry is None or entry[0] is not robots:
        if len(_NO_SIGNALS) > 1024:
            _NO_SIGNALS.clear()
        entry = _NO_SIGNALS[id(robots)] = (robots, SiteFiles(robots))
    return entry[1]


class Engine:
    """``PolicyEngine(platforms, token, ...)`` and ``store``, asked as the adapters ask them."""

    def __init__(self, platforms: PlatformRegistry, store: Any, token: str = "consentcrawl", **options: Any) -> None:
        self.engine = PolicyEngine(platforms, token, **options)
        self.decider = Decider(self.engine, store)
        self.platforms = platforms
        self.store = store
        self.token = token
        self.cache = self.engine.cache
        self.checks = self.engine.checks
        self.checks = self.engine.checks

    def facts(self, url: str, purpose: str, now: datetime, subject: str | None = None, **kwargs: Any) -> RequestFacts:
        return self.engine.facts(url, purpose, now, subject, **kwargs)

    def decide(self, facts: RequestFacts, robots: RobotsFile | None, signals: SiteFiles | None = None) -> Decision:
        """With no signal files given, the origin serves none (every one a 404)."""
        return run_now(self.decider.decide(facts, robots, signals or no_signals(robots)))

    def decide_consent(self, facts: RequestFacts) -> Decision:
        return run_now(self.decider.decide_consent(facts))

    def decide_link(self, url: str, purpose: str, now: datetime) -> tuple[Decision, str, bool]:
        return run_now(self.decider.decide_link(url, purpose, now))

    def decide_subject(self, platform: str | None, subject: str, purpose: str, now: datetime) -> Decision:
        return run_now(self.decider.decide_subject(platform, subject, purpose, now))

    def decide_url(self, url: str, purpose: str, now: datetime, robots: RobotsFile | None,
                   subject: str | None = None) -> tuple[RequestFacts | None, Decision]:
        return run_now(self.decider.run(
            lambda answers: self.engine.decide_url(url, purpose, now, robots, answers, subject)))
