"""The scheduling check: each link a page yields, and each request ``request_scheduled`` sees, decided before it
reaches the scheduler (terms and the person; robots.txt is the request phase's). A pre-filter: what it allows is
decided again at send time. Part of :class:`~consentcrawl.runtime.ConsentRuntime`."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from scrapy import Request

from .consent.answers import StoreAnswers
from .deciding import Decider, Undecided
from .decision import Decision, Evidence, Stage, deny
from .meta_keys import META_SUBJECT

if TYPE_CHECKING:
    from .config import ConsentConfig
    from .engine import PolicyEngine
    from .facts import RequestFacts

__all__ = ["LinkScheduling", "bad_url", "error_cause"]

logger = logging.getLogger("consentcrawl")


class LinkScheduling:
    """The scheduling check of :class:`~consentcrawl.runtime.ConsentRuntime` (which sets these attributes)."""

    config: ConsentConfig
    decider: Decider
    engine: PolicyEngine

    if TYPE_CHECKING:  # the runtime's own, and its recording half's
        def facts_for(self, request: Request | None, url: str,
                      now: datetime) -> tuple[RequestFacts | None, Decision | None]: ...

        def record(self, decision: Decision, url: str | None, canonical_url: str | None, phase: str,
                   count: bool = True, *, time: datetime | None = None) -> Decision: ...

        def count(self, key: str, n: int = 1) -> None: ...

    def scheduling_failed(self, request: Request, exc: Exception) -> Decision:
        """The deny, recorded, of a request whose scheduling check raised: a failure to decide never schedules it."""
        # the exception's text may hold the URL (a person's): at ERROR its type only, the traceback at DEBUG
        logger.error("consentcrawl: could not decide a request at scheduling (%s); it is dropped, its URL and the "
                     "cause are in the audit log", type(exc).__name__)
        logger.debug("consentcrawl: the scheduling check raised", exc_info=exc)
        failed = deny(Stage.ERROR, "error.internal", evidence=(
            Evidence("error", request.url, {"error": type(exc).__name__, "message": str(exc)}),))
        return self.record(failed, request.url, None, "schedule", time=self.config.now())

    def decide_scheduled_now(self, request: Request) -> Decision | Undecided | None:
        """The scheduling check, for a code path that cannot wait (``request_scheduled``): what the engine decides
        without a lookup, or :data:`UNDECIDED` when it needs a person's records it has no valid answer for.

        Returns a deny (recorded, or a repeat), or None when nothing denies.
        """
        now = self.config.now()
        made = self.decider.now(lambda answers: self._schedule_decision(request, now, answers))
        return made if isinstance(made, Undecided) else self._scheduled(request, now, made)

    async def decide_scheduled(self, request: Request) -> Decision | None:
        """The scheduling check (the link check in the spider middleware, and deferred ``request_scheduled``
        checks): terms and the person, the records looked up when needed. A deny (recorded, or a repeat), or None.

        A page links the same people again and again, and a denied link never reaches Scrapy's dupefilter: a
        link whose decision the engine hands back unchanged (:meth:`PolicyEngine.decide_link`) is that same
        decision again, counted in ``consentcrawl/schedule/repeated`` but not recorded or counted as a new one.
        """
        now = self.config.now()
        made = await self.decider.run(lambda answers: self._schedule_decision(request, now, answers))
        return self._scheduled(request, now, made)

    def _schedule_decision(self, request: Request, now: datetime,
                           answers: StoreAnswers) -> tuple[Decision, str | None, bool]:
        """The scheduling decision, the canonical URL and whether it is a repeat; raises RecordsNeeded."""
        url = request.url
        if request.meta.get(META_SUBJECT) is not None:
            facts, bad = self.facts_for(request, url, now)
            if facts is None:
                assert bad is not None
                return bad, None, False
            return self.engine.decide_consent(facts, answers), facts.canonical.url, False
        try:
            return self.engine.decide_link(url, self.config.purpose, now, answers)
        except Exception as exc:  # noqa: BLE001 - an URL we cannot read is denied, not waved through
            return bad_url(url, exc), None, False

    def _scheduled(self, request: Request, now: datetime,
                   made: tuple[Decision, str | None, bool]) -> Decision | None:
        decision, canonical, repeat = made
        if decision.allowed:
            return None
        if repeat:
            self.count("consentcrawl/schedule/repeated")
            return decision
        return self.record(decision, request.url, canonical, "schedule", time=now)


def error_cause(exc: BaseException, where: str) -> Evidence:
    return Evidence("error", where, {"error": type(exc).__name__, "message": str(exc)})


def bad_url(url: str, exc: BaseException) -> Decision:
    """The deny for a URL we cannot read (``error.bad-url``), with the reason in its evidence."""
    return deny(Stage.ERROR, "error.bad-url", evidence=(error_cause(exc, url),))
