"""What the request phase found for a request, handed to the later phases of the same request while still valid.

The request phase decides each request (robots.txt and the site's signal files included) before it waits in its
download slot; the send-time handler decides it again after the wait, with the clock read then. Usually nothing the
decision rests on changed in between and the second walk through the engine comes out the same. The send-time
decision is still made at send time, with that time and the store's version at that time, but when every input is
unchanged it is the request phase's decision, checked, instead of a second one.

Kept per request *object* (a weak map, like the runtime's other per-request state), never in ``request.meta``. The
validity rule: the decision is reused only when

- the request is the same object at the same URL with the same ``consentcrawl_subject`` meta value, the same body
  object and the same ``Host`` header (a downloader middleware between the two phases may change headers and meta;
  the URL and body of a Scrapy request cannot change);
- the robots.txt and the signal files the send-time decision would use are the very objects it was decided with
  (the fetchers hand out a new object whenever a file is fetched again);
- the engine would recall the very same remembered consent decision at the send time and the store's version now
  (:meth:`consentcrawl.cache.ConsentCache.still`: the same platform object, a time in the same span of validity
  dates, the same store version when it read anyone's records); a decision the engine did not remember (a check
  that is not ``cacheable``, a store that changed during the lookup) is not reused;
- the engine's refusal book has the version it had (no refusal found on a page since);
- every site check is a built-in one (a check of the project's own may read the clock or anything else).

Otherwise the send-time decision is made anew. A decision is used once: the send-time decision takes it out. A
reused deny (report mode lets a request-phase deny go on, and its line is written) gets a new id.

The request's facts (whose page its URL is) are handed on too, under the first condition alone: the send-time
handler's person gate, the first page's refusal reading and the response phase (refusals on the page, its signals)
read whose page it is, which depends on the request and its URL, not on the time.
"""

from __future__ import annotations

import weakref
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .cache import Made, consent_key, renew
from .meta_keys import META_SUBJECT

if TYPE_CHECKING:
    from scrapy import Request

    from .decision import Decision
    from .engine import PolicyEngine
    from .facts import RequestFacts
    from .robots.fetch import RobotsFile
    from .signals.evaluate import SiteFiles

__all__ = ["Handoff"]

_BUILTIN = "consentcrawl.checks."


class _Entry:
    __slots__ = ("body", "book", "decision", "facts", "host", "made", "robots", "signals", "subject", "url")

    def __init__(self, request: Request, facts: RequestFacts, decision: Decision | None, robots: RobotsFile | None,
                 signals: SiteFiles | None, made: Made | None, book: int) -> None:
        self.url = request.url
        self.subject = request.meta.get(META_SUBJECT)
        self.body = request.body
        self.host = request.headers.get(b"Host")
        self.facts = facts
        self.decision = decision
        self.robots = robots
        self.signals = signals
        self.made = made
        self.book = book

    def same_request(self, request: Request) -> bool:
        """The same URL, body, ``consentcrawl_subject`` and ``Host`` header (a meta value that is not a string could
        change in place, or compare equal to anything: such a request is never handed on)."""
        subject = request.meta.get(META_SUBJECT)
        return (request.url == self.url and request.body is self.body and (subject is None or type(subject) is str)
                and subject == self.subject and request.headers.get(b"Host") == self.host)


class Handoff:
    """Full decisions of the request phase by request object, for the send-time decision (the module's rule)."""

    def __init__(self, engine: PolicyEngine) -> None:
        self.engine = engine
        #: a check of the project's own among the site checks: nothing is handed on
        self.enabled = all(type(c).__module__.startswith(_BUILTIN) for c in engine.checks
                           if getattr(c, "site", False))
        self._entries: weakref.WeakKeyDictionary[Request, _Entry] = weakref.WeakKeyDictionary()

    def keep_facts(self, request: Request, facts: RequestFacts) -> None:
        """Hand on the facts of ``request`` at its URL (with no decision)."""
        self._entries[request] = _Entry(request, facts, None, None, None, None, 0)

    def keep(self, request: Request, facts: RequestFacts, decision: Decision, robots: RobotsFile | None,
             signals: SiteFiles | None, version: Any) -> None:
        """Hand on the full decision just made for ``request`` on ``facts`` with these files, at store ``version``
        (read after the decision: a store that changed meanwhile makes the consent part fail to be recalled)."""
        if not self.enabled:
            self.keep_facts(request, facts)
            return
        made = self._made(facts, facts.now, version)
        if made is None:
            self.keep_facts(request, facts)
            return
        self._entries[request] = _Entry(request, facts, decision, robots, signals, made, self.engine.refusals.version)

    def facts(self, request: Request) -> RequestFacts | None:
        """The facts the request phase decided ``request`` on, while the request is unchanged (their time is the
        request phase's: for what does not depend on it, such as whose page the URL is)."""
        entry = self._entries.get(request)
        return entry.facts if entry is not None and entry.same_request(request) else None

    def take(self, request: Request, now: datetime, version: Any, robots: RobotsFile | None,
             signals: SiteFiles | None) -> tuple[RequestFacts, Decision] | None:
        """The request phase's facts and decision, if it is the decision the engine would make now with these
        files at store ``version`` (the module's rule); the entry is used up either way."""
        entry = self._entries.get(request)
        if entry is None or entry.decision is None:
            return None
        decision, entry.decision = entry.decision, None
        if (entry.robots is not robots or entry.signals is not signals
                or entry.book != self.engine.refusals.version or not entry.same_request(request)
                or self._made(entry.facts, now, version) is not entry.made):
            return None
        return entry.facts, decision if decision.allowed else renew(decision)

    def _made(self, facts: RequestFacts, now: datetime, version: Any) -> Made | None:
        cache = self.engine.cache
        return cache.recall(cache.decisions, consent_key(facts), facts.platform, now, version)
