"""Every cache on the decision path, and the rule that makes reusing a decision safe.

**Remembered consent decisions** (:class:`ConsentCache`). A consent decision (the consent checks of the list, no
site checks) is remembered under a key holding the identity of its inputs:

- a URL's decision: the canonical URL, the person named (and whether by a reading that is ambiguous, with its
  readings), the meta mismatch, the purpose and the product token (:func:`consent_key`);
- a person's decision (the item guard): the platform's name, the person's key and the purpose;
- a link's decision: the URL string as written and the purpose (the canonical URL is remembered with it).

A remembered decision is reused only while it would come out the same (:meth:`ConsentCache.still`):

1. the platform is the very same object it was decided with (a reloaded configuration is a new object);
2. the decision time is inside the span in which every time threshold compares the same as it did: the platform
   grant's ``valid_from``/``valid_until`` and the ``granted_at``/``expires_at``/``revoked_at`` of every record the
   decision looked up (the span runs from the latest threshold at or before the decision time, included, to the
   earliest one after it, excluded);
3. for every store answer the decision used (:meth:`~consentcrawl.checks.base.CheckContext.records`), the store
   is asked again — so a store that fails still denies with its cause — and its ``version`` is unchanged from
   the one read before the decision was made, and its answer is equal to the one the decision used (the same
   object, or equal records: a store that changes a list in place is caught because the answer the decision used
   was copied into a tuple).

A decision that ran a check that is not ``cacheable`` is not remembered. A URL's decision concluded by the
person's records is also remembered as that person's decision, when every check it ran is a built-in one (they
decide a profile URL exactly as they decide its person).

Every reused decision is handed out as a new decision with its own id (:func:`renew`), except the link memo's
repeats, which are the very decision handed out before (the runtime counts them as repeats).

**Memos of evidence** (:class:`ObjectMemo`): values worked out from an immutable input (a robots.txt file, a
platform, a record) once per object, keyed by ``id()`` and holding the object, so an entry is only used for it.

Pure: no Scrapy, no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .decision import Decision, Evidence, Stage, Verdict, new_decision_id
from .recent import Recent

if TYPE_CHECKING:
    from .checks.base import CheckContext
    from .consent.records import AuthorizationRecord
    from .consent.store import AuthorizationStore
    from .facts import RequestFacts
    from .terms.platforms import Platform

__all__ = ["ConsentCache", "Made", "ObjectMemo", "consent_key", "renew", "store_version"]

_O = TypeVar("_O")
_V = TypeVar("_V")

#: one part of a consent decision: the index of the check in the engine's list, and the evidence it cited
Part = tuple[int, tuple[Evidence, ...]]
Lookup = tuple[tuple[str, str], Sequence["AuthorizationRecord"]]


class Made:
    """A consent decision made, with its evidence by check (to put site checks' evidence in order) and what it
    rests on (for :meth:`ConsentCache.still`)."""

    __slots__ = ("by_check", "concluded", "decision", "lookups", "platform", "since", "until", "version")

    def __init__(self, decision: Decision, parts: tuple[Part, ...], platform: Platform | None,
                 lookups: tuple[Lookup, ...], version: Any, now: datetime, concluded: int | None) -> None:
        self.decision = decision
        #: the evidence each check that ran cited, by its index in the engine's list
        self.by_check: dict[int, tuple[Evidence, ...]] = dict(parts)
        self.concluded = concluded  #: the index of the check that concluded (None: none did)
        self.platform = platform
        self.lookups = lookups  #: the store's answers the decision used, as tuples
        self.version = version  #: the store's version, read before the decision was made
        self.since, self.until = _span(platform, lookups, now)


def _span(platform: Platform | None, lookups: tuple[Lookup, ...],
          now: datetime) -> tuple[datetime | None, datetime | None]:
    """The latest time threshold at or before ``now`` and the earliest one after it."""
    times: list[datetime | None] = []
    grant = platform.authorization if platform is not None else None
    if grant is not None:
        times += (grant.valid_from, grant.valid_until)
    for _, records in lookups:
        for record in records:
            times += (record.granted_at, record.expires_at, record.revoked_at)
    since, until = None, None
    for t in times:
        if t is None:
            continue
        if t <= now:
            since = t if since is None or t > since else since
        elif until is None or t < until:
            until = t
    return since, until


def store_version(store: AuthorizationStore | None) -> Any:
    """The store's version; equal versions mean equal answers. A store without one is compared by its answers."""
    return getattr(store, "version", None) if store is not None else None


def consent_key(facts: RequestFacts) -> tuple[Any, ...]:
    """What a URL's consent decision is a function of (the platform comes from the canonical URL's host)."""
    return (facts.canonical.url, facts.subject, facts.ambiguous, facts.mismatch, facts.purpose, facts.token)


class ConsentCache:
    """Remembered consent decisions (see the module's docstring for when one may be reused)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        #: URL decisions, by :func:`consent_key`
        self.decisions: Recent[tuple[Any, ...], Made] = Recent(4096)
        #: decisions about a person by platform, subject and purpose: the item guard's, and those the link check of
        #: their profile made (kept apart, so they do not push out the others)
        self.people: Recent[tuple[Any, ...], Made] = Recent(4096)
        #: link decisions by the URL string as written: what was made, the decision handed out, the canonical URL
        self.links: Recent[tuple[str, str], tuple[Made, Decision, str]] = Recent(4096)

    @staticmethod
    def made(ctx: CheckContext, decision: Decision, parts: tuple[Part, ...], version: Any,
             concluded: int | None) -> Made:
        """What a decision made on ``ctx`` rests on; the store's answers are copied (see rule 3)."""
        lookups = tuple((key, tuple(records)) for key, records in ctx.lookups)
        return Made(decision, parts, ctx.platform, lookups, version, ctx.now, concluded)

    def recall(self, memo: Recent[tuple[Any, ...], Made], key: tuple[Any, ...], platform: Platform | None,
               now: datetime, store: AuthorizationStore | None) -> Made | None:
        """The decision remembered under ``key``, if it would still come out the same."""
        if not self.enabled:
            return None
        made = memo.get(key)
        return made if made is not None and self.still(made, platform, now, store) else None

    def remember(self, memo: Recent[tuple[Any, ...], Made], key: tuple[Any, ...], made: Made) -> None:
        if self.enabled:
            memo.put(key, made)

    def recall_link(self, key: tuple[str, str], now: datetime,
                    store: AuthorizationStore | None) -> tuple[Decision, str] | None:
        """The link decision handed out last time for this URL string, if still valid; a store failure while
        checking is no answer (the caller decides anew, and denies with its cause)."""
        entry = self.links.get(key) if self.enabled else None
        if entry is None:
            return None
        made, decision, canonical = entry
        try:
            still = self.still(made, made.platform, now, store)
        except Exception:  # noqa: BLE001 - decided anew by the caller, which denies with the cause
            still = False
        return (decision, canonical) if still else None

    def remember_link(self, key: tuple[str, str], made: Made, decision: Decision, canonical: str) -> None:
        if self.enabled:
            self.links.put(key, (made, decision, canonical))

    @staticmethod
    def still(made: Made, platform: Platform | None, now: datetime, store: AuthorizationStore | None) -> bool:
        """Would a remembered decision come out the same? (the rule in the module's docstring)"""
        if made.platform is not platform:
            return False
        if (made.since is not None and now < made.since) or (made.until is not None and now >= made.until):
            return False
        for (platform_name, subject), records in made.lookups:
            if store is None:
                return False
            answer = store.lookup(platform_name, subject)  # asked first: a live store notices change here
            if store_version(store) != made.version:
                return False
            if answer is not records and tuple(answer) != records:
                return False
        return True


class ObjectMemo(Generic[_O, _V]):
    """Values worked out from immutable objects, once per object (and an optional extra key)."""

    def __init__(self, size: int) -> None:
        self._entries: Recent[tuple[int, Hashable], tuple[_O, _V]] = Recent(size)

    def get(self, obj: _O, compute: Callable[[_O], _V], extra: Hashable = None) -> _V:
        key = (id(obj), extra)
        entry = self._entries.get(key)
        if entry is None or entry[0] is not obj:
            entry = (obj, compute(obj))
            self._entries.put(key, entry)
        return entry[1]


def _renew_slow(decision: Decision) -> Decision:
    return replace(decision, decision_id=new_decision_id())


def _renew_fast(decision: Decision) -> Decision:
    """``replace(decision, decision_id=new)`` without re-running the dataclass machinery (~4 µs -> ~1 µs).

    Reads the fields one by one: ``vars(decision)`` would give the remembered decision a ``__dict__`` object of its
    own (CPython keeps instance attributes inline until asked for one), one more object for the GC to walk.
    """
    renewed = object.__new__(Decision)
    fields = vars(renewed)
    fields["verdict"] = decision.verdict
    fields["stage"] = decision.stage
    fields["reason"] = decision.reason
    fields["subject"] = decision.subject
    fields["platform"] = decision.platform
    fields["evidence"] = decision.evidence
    fields["decision_id"] = new_decision_id()
    fields["fields"] = decision.fields
    fields["crawl_delay"] = decision.crawl_delay
    return renewed


#: every decision made is a new decision with its own id, also when it is a remembered one
renew = (_renew_fast if hasattr(Decision(Verdict.DENY, Stage.ERROR, "error.internal"), "__dict__")
         and [f.name for f in dataclass_fields(Decision)] == ["verdict", "stage", "reason", "subject", "platform",
                                                              "evidence", "decision_id", "fields", "crawl_delay"]
         else _renew_slow)
