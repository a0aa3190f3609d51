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
3. when it read anyone's records (:meth:`~consentcrawl.checks.base.CheckContext.records`): the store's version
   now equals the version read before those records were looked up. A store promises equal answers at equal
   versions, and changes its version when it fails, so the store is never asked again to check a remembered
   decision: the check is a comparison, and the cache answers before any lookup (or ``await``) is made. A decision
   that read no records (a platform's terms, a page that is no one's profile) does not depend on the store.

A decision that ran a check that is not ``cacheable`` is not remembered. A URL's decision concluded by the
person's records is also remembered as that person's decision, when every check it ran is a built-in one (they
decide a profile URL exactly as they decide its person).

Every reused decision is handed out as a new decision with its own id (:func:`renew`), except the link memo's
repeats, which are the very decision handed out before (the runtime counts them as repeats).

**Remembered answers** (:meth:`ConsentCache.answer`). The records a store gave for a person, with the version read
before they were looked up, are used for the next decision about that person (another URL of theirs, their item)
while the store's version is the same: equal versions promise equal answers. So a person is looked up once per
version of the store, however many of their URLs are decided, and a check that cannot wait (scheduling) can decide
on them. A store's failure is never remembered.

**Memos of evidence** (:class:`ObjectMemo`): values worked out from an immutable input (a robots.txt file, a
platform, a record) once per object, keyed by ``id()`` and holding the object, so an entry is only used for it.
The tags of a page's head (:func:`consentcrawl.pagehead.head_tags`) are one: scanned once per body (immutable
``bytes`` or ``str``) and encoding, for meta robots and the signals alike; a mutable buffer is never remembered.

**The site signals' decisions** (:class:`SignalMemo`, used by the site check of ``consentcrawl.checks.signals``):
what combining an origin's site-level signals gives, per (signal files, robots.txt, platform, policy, URL,
purpose). Validity rule: an entry is used only while every input object is the *very same object* it was computed
from (identity, checked with ``is``; the entry holds them, so an id is never reused for another object while it is
kept). Every input is immutable: the adapters build a new :class:`~consentcrawl.signals.evaluate.SiteFiles` when
any file is fetched again, a reloaded configuration is a new platform and policy, so a changed input is a miss,
never a stale hit. The decision time is not an input: a signal file's freshness (TTL) is the adapter's, which
hands in a new object when it refetches. When none of the files says anything that depends on the path (no
tdmrep.json entries, no robots.txt ``Content-Usage`` or ``License`` lines, no ai.txt rules) the URL is left out of
the key: one entry serves every page of the origin; when tdmrep.json is the only such file, the key holds the
entry the URL selects instead of the URL (``signals.evaluate.path_key``): one entry per entry of the file.

**A request's own site-signals outcome** (:class:`RequestSignals`): a request is decided more than once (the
request phase, then send time), so the site check keeps each request's outcome by its canonical URL's identity
and hands it back without making its key again. Validity rule: the same canonical object and spellings tuple
(the fact reader hands out one of each per URL), the very same files, robots.txt, policy and platform objects, and
an equal purpose and token; anything else is a miss. The entry holds the objects, so a reused id is never a hit.

Pure: no Scrapy, no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .decision import Decision, Evidence, new_decision_id
from .recent import Recent

if TYPE_CHECKING:
    from .checks.base import CheckContext
    from .consent.records import AuthorizationRecord
    from .facts import RequestFacts
    from .terms.platforms import Platform

__all__ = ["ConsentCache", "Made", "ObjectMemo", "RequestSignals", "SignalMemo", "consent_key", "renew"]

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
        self.lookups = lookups  #: the records the decision read, by person, as tuples
        self.version = version  #: the store's version, read before those records were looked up
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


def consent_key(facts: RequestFacts) -> tuple[Any, ...]:
    """What a URL's consent decision is a function of (the platform comes from the canonical URL's host); its first
    item is the canonical URL string."""
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
        #: each person's records as the store gave them, with the version read before the lookup
        self.answers: Recent[tuple[str, str], tuple[Hashable, tuple[AuthorizationRecord, ...]]] = Recent(8192)

    @staticmethod
    def made(ctx: CheckContext, decision: Decision, parts: tuple[Part, ...], version: Any,
             concluded: int | None) -> Made:
        """What a decision made on ``ctx`` rests on."""
        lookups = tuple((key, tuple(records)) for key, records in ctx.lookups)
        return Made(decision, parts, ctx.platform, lookups, version, ctx.now, concluded)

    def recall(self, memo: Recent[tuple[Any, ...], Made], key: tuple[Any, ...], platform: Platform | None,
               now: datetime, version: Hashable) -> Made | None:
        """The decision remembered under ``key``, if it would still come out the same at store ``version``."""
        if not self.enabled:
            return None
        made = memo.get(key)
        return made if made is not None and self.still(made, platform, now, version) else None

    def remember(self, memo: Recent[tuple[Any, ...], Made], key: tuple[Any, ...], made: Made) -> None:
        if self.enabled:
            memo.put(key, made)

    def recall_link(self, key: tuple[str, str], now: datetime, version: Hashable) -> tuple[Decision, str] | None:
        """The link decision handed out last time for this URL string, if still valid at store ``version``."""
        entry = self.links.get(key) if self.enabled else None
        if entry is None:
            return None
        made, decision, canonical = entry
        return (decision, canonical) if self.still(made, made.platform, now, version) else None

    def remember_link(self, key: tuple[str, str], made: Made, decision: Decision, canonical: str) -> None:
        if self.enabled:
            self.links.put(key, (made, decision, canonical))

    def answer(self, person: tuple[str, str], version: Hashable) -> tuple[AuthorizationRecord, ...] | None:
        """The records the store gave for ``person`` at ``version``, if remembered."""
        entry = self.answers.get(person) if self.enabled else None
        return entry[1] if entry is not None and entry[0] == version else None

    def remember_answer(self, person: tuple[str, str], version: Hashable,
                        records: tuple[AuthorizationRecord, ...]) -> None:
        if self.enabled:
            self.answers.put(person, (version, records))

    @staticmethod
    def still(made: Made, platform: Platform | None, now: datetime, version: Hashable) -> bool:
        """Would a remembered decision come out the same? (the rule in the module's docstring)"""
        if made.platform is not platform:
            return False
        if (made.since is not None and now < made.since) or (made.until is not None and now >= made.until):
            return False
        return not made.lookups or made.version == version


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


class SignalMemo(Generic[_V]):
    """The site check's decisions by the identity of their inputs (the rule in the module's docstring).

    ``inputs`` are the four objects (signal files, robots.txt, platform, policy), compared by identity; ``extra``
    are values (``path_key``, purpose, token), compared by equality. The key holds the objects' ids; the entry holds
    the objects themselves, so an id reused by a new object after the old one was freed is never a hit."""

    __slots__ = ("_entries",)

    def __init__(self, size: int) -> None:
        self._entries: Recent[tuple[Any, ...], tuple[Any, Any, Any, Any, _V]] = Recent(size)

    def get(self, files: Any, robots: Any, platform: Any, policy: Any, extra: tuple[Hashable, ...],
            compute: Callable[[], _V]) -> _V:
        key = (id(files), id(robots), id(platform), id(policy), extra)
        entry = self._entries.get(key)
        if (entry is not None and entry[0] is files and entry[1] is robots and entry[2] is platform
                and entry[3] is policy):
            return entry[4]
        value = compute()
        self._entries.put(key, (files, robots, platform, policy, value))
        return value


class RequestSignals(Generic[_V]):
    """The site check's outcome for one request, by the identity of its inputs (the rule in the module's
    docstring): ``inputs`` are the canonical URL, the spellings tuple, files, robots.txt, policy and platform,
    compared by identity; ``purpose`` and ``token`` by equality."""

    __slots__ = ("_entries",)

    def __init__(self, size: int) -> None:
        self._entries: Recent[int, tuple[tuple[Any, Any, Any, Any, Any, Any], str, str, _V]] = Recent(size)

    def get(self, inputs: tuple[Any, Any, Any, Any, Any, Any], purpose: str, token: str) -> _V | None:
        entry = self._entries.get(id(inputs[0]))
        if entry is None:
            return None
        kept = entry[0]  # six objects, compared one by one: this is the hot path of a request's second decision
        if (kept[0] is inputs[0] and kept[1] is inputs[1] and kept[2] is inputs[2] and kept[3] is inputs[3]
                and kept[4] is inputs[4] and kept[5] is inputs[5] and entry[1] == purpose and entry[2] == token):
            return entry[3]
        return None

    def put(self, inputs: tuple[Any, Any, Any, Any, Any, Any], purpose: str, token: str, value: _V) -> None:
        self._entries.put(id(inputs[0]), (inputs, purpose, token, value))


def renew(decision: Decision) -> Decision:
    """Every decision made is a new decision with its own id, also when it is a remembered one."""
    return replace(decision, decision_id=new_decision_id())
