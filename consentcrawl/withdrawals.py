"""Noticing a withdrawal in a crawl: the store change that turns a person's answer from allowed to denied.

The store tells of a change only by a new version; which person it concerns shows when that person is decided
again. :class:`WithdrawalWatch` remembers, per person, the store version their last allow was made at; the first
records-based deny for them at another version is the withdrawal *seen*: the runtime writes a ``withdrawal-seen``
event, and this and every later deny of the person (the requests it stopped, waiting in the scheduler or a
download slot, and the links found afterwards) carry ``"because": <its event id>`` in their audit lines.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from .decision import Decision, new_decision_id
from .recent import Recent

__all__ = ["WITHDRAWN_REASONS", "WithdrawalWatch"]

#: the denies a store change can make: a withdrawal, a record deleted, a purpose taken off (an expiry is the clock's)
WITHDRAWN_REASONS = frozenset({"subject.revoked", "subject.no-authorization", "subject.purpose"})
_ALLOWED = "subject.authorized"


class WithdrawalWatch:
    """Per person: the version of their last allow, and the event of the withdrawal seen since (if any)."""

    def __init__(self, size: int = 65536) -> None:
        self._allowed: Recent[tuple[str, str], tuple[Hashable]] = Recent(size)  # (version,): None is one
        self._withdrawn: Recent[tuple[str, str], str] = Recent(size)

    def observe(self, decision: Decision, version: Hashable) -> tuple[str | None, dict[str, Any] | None]:
        """The event a deny of ``decision`` is because of, and the fields of a new ``withdrawal-seen`` event to
        write before its line (None when it is not new)."""
        if decision.subject is None or decision.platform is None:
            return None, None
        person = (decision.platform, decision.subject)
        if decision.allowed:
            if decision.reason == _ALLOWED:
                self._allowed.put(person, (version,))
                _drop(self._withdrawn, person)
            return None, None
        if decision.reason not in WITHDRAWN_REASONS:
            return None, None
        known = self._withdrawn.get(person)
        if known is not None:
            return known, None
        allowed = self._allowed.get(person)
        if allowed is None or allowed[0] == version:
            return None, None
        allowed_at = allowed[0]
        event_id = new_decision_id()
        self._withdrawn.put(person, event_id)
        _drop(self._allowed, person)
        return event_id, {"event_id": event_id, "platform": decision.platform, "subject": decision.subject,
                          "store_version": version, "allowed_at_version": allowed_at, "reason": decision.reason}


def _drop(memo: Recent[Any, Any], key: Any) -> None:
    memo.young.pop(key, None)
    memo.old.pop(key, None)
