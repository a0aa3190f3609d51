"""The runtime's recording half: every decision goes to the audit log and the stats, the same way.

Allows that let something happen are on disk before they take effect (group commit per event-loop turn); the
counts go to Scrapy's stats as they happen. A line the log does not take turns an allow into
``error.audit-unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from scrapy.utils.asyncio import call_later

from .audit.log import AuditLog
from .config import ConsentConfig
from .decision import Decision, Evidence, Stage, deny
from .errors import AuditUnavailable

if TYPE_CHECKING:
    from .deciding import Decider
    from .deniedpeople import DeniedPeople
    from .refusallog import RefusalLog
    from .withdrawals import WithdrawalWatch

logger = logging.getLogger("consentcrawl")

#: phases whose allow lets something happen (a fetch, a callback, a kept item, a side request that fetches a
#: person's page): their lines are written at once
_EFFECT_PHASES = frozenset({"request", "response", "item", "browser", "robots"})


class DecisionRecording:
    """Audit log and stats for :class:`~consentcrawl.runtime.ConsentRuntime` (which sets these attributes)."""

    config: ConsentConfig
    audit: AuditLog
    stats: Any
    _debug: bool
    _turn_scheduled: bool
    _waiters: list[asyncio.Future[None]]
    decider: Decider
    withdrawals: WithdrawalWatch
    refusal_log: RefusalLog | None
    #: called with every decision recorded and its phase (the purge on close learns who withdrew, who refused and
    #: whose data went through); None: no one
    watch: Callable[[Decision, str], None] | None = None
    denied_people: DeniedPeople

    def drops(self, decision: Decision) -> bool:
        """Whether a deny is enforced: always in enforce mode; robots denies in report mode too.

        Report mode is for trying consentcrawl on a crawler that already obeyed robots.txt: it must not make that
        crawler less compliant than it was.
        """
        return not decision.allowed and (self.config.enforce or decision.stage is Stage.ROBOTS)

    def record(self, decision: Decision, url: str | None, canonical_url: str | None, phase: str,
               count: bool = True, *, time: datetime | None = None) -> Decision:
        """Write the decision to the audit log and the stats; returns the decision that stands.

        A decision that lets something happen (a request sent, a response used, an item kept; in report mode,
        every one of those phases) is on disk before this returns; the others are written at the end of the
        event-loop turn. If the audit log cannot be written, an allow becomes ``error.audit-unavailable``: data
        we could not account for is not collected.
        """
        time = time or self.config.now()  # the decision's own time where the caller has it
        durable = self._lets_something_happen(decision, phase)
        try:
            self.audit.record(
                decision, time=time, phase=phase, url=url,
                canonical_url=canonical_url, purpose=self.config.purpose,
                mode=self.config.mode, durable=durable, extra=self._because(decision, time),
            )
        except AuditUnavailable as exc:
            self.count("consentcrawl/audit/write_errors")
            return self._unaccounted(decision, url, canonical_url, phase, str(exc), time)
        if not durable:
            self._soon()
        return self._counted(decision, url, phase) if count else decision

    def send_deferred(self, decision: Decision, request: Any, wait: float) -> None:
        """Say in the audit log that the send-time allow just written did not lead to a send (another worker took
        the origin's turn, or the request changed while it was decided): the request is decided again, so one
        request has several send-time allows, and ``consentcrawl audit report`` counts a send only for the one
        that went."""
        try:
            fields = {"decision_id": decision.decision_id, "platform": decision.platform, "url": request.url,
                      "wait": round(wait, 3)}
            self.audit.event("send-deferred", fields, time=self.config.now(), durable=False)
        except AuditUnavailable:  # pragma: no cover - a non-durable event is only queued
            pass

    def record_event(self, kind: str, fields: dict[str, Any], *, time: datetime, durable: bool) -> bool:
        """Add an event line (docs/audit-log.md, Events); whether the log took it (``durable``: it is in the file).
        A line the log cannot take is counted, as a decision's is."""
        try:
            self.audit.event(kind, fields, time=time, durable=durable)
        except AuditUnavailable:
            self.count("consentcrawl/audit/write_errors")
            return False
        if not durable:
            self._soon()
        return True

    def note_person(self, decision: Decision, time: datetime) -> str | None:
        """A decision about a person that has no line of its own (a mention in an item, whose item's event lists
        it): the withdrawal watch, the denied people and the purge on close (``watch``, phase ``mention``) learn
        from it as from a recorded one; the event a deny of it is because of (a withdrawal seen first here gets its
        ``withdrawal-seen`` event now)."""
        because = (self._because(decision, time) or {}).get("because")
        if not decision.allowed:
            self.denied_people.saw(decision)
        if self.watch is not None:  # the purge on close: a person mentioned in an output may withdraw before the end
            self.watch(decision, "mention")
        return because

    async def record_grouped(self, decision: Decision, url: str | None, canonical_url: str | None,
                             phase: str, *, time: datetime | None = None) -> Decision:
        """:meth:`record` for the request and item phases: the line goes out with the rest of this turn's lines.

        Group commit. Instead of a write of its own, a line that must be on disk first is queued, and the caller
        waits for the end-of-turn write that takes every line of the turn in one system call (a crawl decides about
        seven requests and items per turn). The evidence rule holds: this returns only once the line is in the
        file, and a line the file did not take turns an allow into ``error.audit-unavailable``. Outside an asyncio
        event loop (another Twisted reactor) it is :meth:`record`.
        """
        time = time or self.config.now()
        if not self._lets_something_happen(decision, phase):
            return self.record(decision, url, canonical_url, phase, time=time)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self.record(decision, url, canonical_url, phase, time=time)
        try:
            ticket = self.audit.queue(decision, time=time, phase=phase, url=url, canonical_url=canonical_url,
                                      purpose=self.config.purpose, mode=self.config.mode,
                                      extra=self._because(decision, time))
        except AuditUnavailable as exc:
            self.count("consentcrawl/audit/write_errors")
            return self._unaccounted(decision, url, canonical_url, phase, str(exc), time)
        if ticket is not None:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            self._soon()
            await waiter
            if not self.audit.written(ticket):
                return self._unaccounted(decision, url, canonical_url, phase, self.audit.error or "not written",
                                         time)
        return self._counted(decision, url, phase)

    def _because(self, decision: Decision, time: datetime) -> dict[str, Any] | None:
        """``{"because": event id}`` for a deny caused by a refusal found on a page or a withdrawal seen in the
        store (docs/audit-log.md); a withdrawal's ``withdrawal-seen`` event is written first, the first time."""
        if decision.subject is None:
            return None
        if not decision.allowed:
            for evidence in decision.evidence:
                if evidence.kind == "refusal-on-page":
                    return {"because": evidence.detail.get("event")}
        store = self.decider.store
        because, event = self.withdrawals.observe(decision, store.version if store is not None else None)
        if event is not None:
            self.count("consentcrawl/withdrawals/seen")
            try:
                self.audit.event("withdrawal-seen", event, time=time, durable=False)
            except AuditUnavailable:  # pragma: no cover - a non-durable event is only queued
                pass
        return {"because": because} if because is not None else None

    def _lets_something_happen(self, decision: Decision, phase: str) -> bool:
        """Whether the decision's line must be on disk before it takes effect (in report mode every one does)."""
        return phase in _EFFECT_PHASES and (decision.allowed or not self.drops(decision))

    def _unaccounted(self, decision: Decision, url: str | None, canonical_url: str | None, phase: str,
                     why: str, time: datetime) -> Decision:
        """The decision that stands when its line could not be written: an allow becomes a deny."""
        logger.error("consentcrawl: %s; denying", why)
        if decision.allowed:
            cause = Evidence("error", "audit log", {"error": "AuditUnavailable", "message": why})
            decision = deny(Stage.ERROR, "error.audit-unavailable", subject=decision.subject,
                            platform=decision.platform, evidence=(*decision.evidence, cause))
        # the deny that stands waits with the other lines for the log to take writes again
        self.audit.record(decision, time=time, phase=phase, url=url, canonical_url=canonical_url,
                          purpose=self.config.purpose, mode=self.config.mode, durable=False)
        self._soon()
        return self._counted(decision, url, phase)

    def _counted(self, decision: Decision, url: str | None, phase: str) -> Decision:
        prefix = "consentcrawl/items/" if phase == "item" else "consentcrawl/"
        self.count(prefix + decision.stat_key)
        if self.watch is not None:
            self.watch(decision, phase)
        if not decision.allowed:
            self.count(prefix + "denied")
            self.denied_people.saw(decision)
            if self._debug:
                logger.debug("consentcrawl: %s %s (%s, %s)", "denied" if self.drops(decision) else "would deny",
                             url, decision.reason, phase)
        return decision

    def count(self, key: str, n: int = 1) -> None:
        """Add to a ``consentcrawl/`` stat."""
        self.stats.inc_value(key, n)

    def _soon(self) -> None:
        if self._turn_scheduled:
            return
        self._turn_scheduled = True
        try:
            asyncio.get_running_loop().call_soon(self.end_of_turn)
        except RuntimeError:  # no asyncio loop running (another Twisted reactor)
            call_later(0, self.end_of_turn)

    def end_of_turn(self) -> None:
        """Write the waiting audit lines (also called at close)."""
        self._turn_scheduled = False
        waiters, self._waiters = self._waiters, []
        try:
            self.audit.flush()
        except AuditUnavailable as exc:
            self.stats.inc_value("consentcrawl/audit/write_errors")
            logger.error("consentcrawl: %s", exc)
        finally:
            for waiter in waiters:  # each asks the log whether its line made it
                if not waiter.done():
                    waiter.set_result(None)

    def summary(self) -> dict[str, Any]:
        self.end_of_turn()
        return {k: v for k, v in self.stats.get_stats().items() if k.startswith("consentcrawl/")}

    def _spider_closed(self, spider: Any = None, reason: str = "") -> None:
        self.end_of_turn()
        if self.refusal_log is not None:
            self.refusal_log.close()
        try:
            self.audit.close()
        except AuditUnavailable as exc:
            self.stats.inc_value("consentcrawl/audit/write_errors")
            logger.error("consentcrawl: %s", exc)
        self._anchor()

    def _anchor(self) -> None:
        """Say where the log's chain ends, for an operator to publish or timestamp (``audit verify --end``)."""
        if self.audit.chain is None:
            return
        self.stats.set_value("consentcrawl/audit_chain_end", self.audit.end)
        logger.info("consentcrawl: audit log %s: chain %s ends at line %d with hash %s (check it with "
                    "`consentcrawl audit verify %s --end %s`)", self.audit.path, self.audit.chain, self.audit.seq,
                    self.audit.end, self.audit.path, self.audit.end)
