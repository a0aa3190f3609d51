"""The policy core: three stages, in order, first deny wins — pure, no Scrapy, no I/O, no clock.

``PolicyEngine.decide`` takes what adapters already fetched (the origin's robots.txt) and the time, and returns a
:class:`~consentcrawl.decision.Decision`. Anything that goes wrong while deciding is a deny with an ``error.*``
reason: a consent check that crashes must never let a request through.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any

from .consent.records import AuthorizationRecord, RecordStatus
from .consent.store import AuthorizationStore
from .decision import Decision, Evidence, Stage, Verdict, deny, new_decision_id
from .errors import StoreUnavailable
from .recent import Recent
from .resolve import resolve, with_body
from .robots.fetch import RobotsFile, RobotsStatus
from .robots.rules import RobotsMatch
from .terms.platforms import Platform, PlatformRegistry, SubjectReading
from .urls import CanonicalURL, canonicalize


@dataclass(frozen=True)
class RequestFacts:
    """Everything the core needs to know about one request, resolved once by :meth:`PolicyEngine.facts`."""

    url: str
    canonical: CanonicalURL
    purpose: str
    token: str
    now: datetime
    platform: Platform | None
    subject: str | None
    subject_source: str | None = None  #: "url" (a profile template matched) or "meta" (named by the request)
    robots_paths: tuple[str, ...] = ()  #: the path+query spellings checked against robots.txt
    #: the readings of an URL that a lenient server could take for another person (``subject.ambiguous-url``)
    ambiguous: SubjectReading | None = None
    #: why the person or platform named in meta, or the Host header, is not the URL's (``subject.mismatch``)
    mismatch: str | None = None
    #: the host is an IP address, or a name with no registrable domain (``localhost``), no platform lists
    ip_host: bool = False


def _robots_paths(url: str, canonical: CanonicalURL) -> tuple[str, ...]:
    """The spellings robots rules are checked against: the canonical path with the trailing slash as written.

    The canonical form drops a trailing slash for subject matching, but ``Disallow: /private/`` must still
    match ``/private/``; when the two spellings differ, both are checked and either one disallowing denies.
    """
    path = canonical.path_query
    if "/?" not in url and "/#" not in url and url[-1:] != "/":
        return (path,)  # no trailing slash written: the common case, without splitting the URL
    before_query = url.split("#", 1)[0].split("?", 1)[0]
    if before_query.endswith("/") and canonical.path != "/":
        return (canonical.path + "/" + (f"?{canonical.query}" if canonical.query else ""), path)
    return (path,)


class PolicyEngine:
    """Decides requests for one configuration: platforms (leg 2) and an authorization store (leg 3)."""

    def __init__(self, platforms: PlatformRegistry, store: AuthorizationStore | None, token: str,
                 max_crawl_delay: float | None = None) -> None:
        self.platforms = platforms
        self.store = store
        self.token = token
        #: a Crawl-delay above this denies the origin (``robots.crawl-delay``) instead of stalling the crawl
        self.max_crawl_delay = max_crawl_delay
        # Evidence that only depends on an immutable input is built once per input, not once per decision:
        # robots.txt (its evidence and crawl delay), the platform grant, an authorization record. Keyed by id()
        # and holding the object itself, so an entry is only ever used for that very object.
        self._robots_memo: dict[tuple[int, str], tuple[RobotsFile, dict[str, Any], float | None,
                                                       dict[str, RobotsMatch]]] = {}
        self._terms_memo: dict[int, tuple[Platform, Evidence]] = {}
        #: bounded, not kept on the record: an in-memory store holds every record for the whole crawl
        self._record_memo: Recent[int, tuple[AuthorizationRecord, Evidence]] = Recent(8192)
        self._no_record_memo: Recent[tuple[str, str, str], Evidence] = Recent(8192)
        #: what a URL resolves to (a crawl decides the same URL when it is linked, scheduled and fetched)
        self._resolve = functools.lru_cache(maxsize=8192)(functools.partial(resolve, platforms))
        #: decisions already made, reused while nothing they rest on has changed (see :meth:`_still`)
        self._decisions: Recent[tuple[Any, ...], _Made] = Recent(4096)
        #: decisions about a person (terms, then their records) by platform, subject and purpose: the item guard's,
        #: and those the link check of their profile made (kept apart, so they do not push out the others)
        self._people: Recent[tuple[Any, ...], _Made] = Recent(4096)
        #: link decisions by the URL string as written (see :meth:`decide_link`)
        self._links: Recent[tuple[str, str], tuple[_Made, Decision, str]] = Recent(4096)

    # -- facts ---------------------------------------------------------------------------------------------

    def facts(self, url: str, purpose: str, now: datetime, subject: str | None = None, *,
              form: str | None = None, is_form: bool = True, host: str | None = None) -> RequestFacts:
        """Resolve a URL into facts: its platform and whose page it is (:mod:`consentcrawl.resolve`).

        ``subject`` is the request's ``consentcrawl_subject`` (``platform:id`` or id): it may name the person only
        where the URL names none or the same one. ``form`` is the request body as form text (``is_form`` False for
        a body of another type); ``host`` the request's own ``Host`` header, if it sets one.
        Raises ``ValueError`` for a URL that cannot be canonicalised; :meth:`decide_url` turns that into a deny.
        """
        if type(url) is not str:
            raise ValueError(f"URL must be a str, not {type(url).__name__}")
        resolved = self._resolve(url)
        canonical, platform, reading = resolved.canonical, resolved.platform, resolved.reading
        paths = _robots_paths(url, canonical)
        if form and platform is not None and reading is not None:
            reading = with_body(platform, url, form, is_form, reading)
        mismatch = _host_mismatch(canonical, host) if host is not None else None
        ambiguous = reading if reading is not None and reading.ambiguous else None
        from_url = reading.subject if reading is not None and ambiguous is None else None
        if subject is None or mismatch is not None:
            return RequestFacts(url, canonical, purpose, self.token, now, platform, from_url,
                                "url" if from_url is not None else None, paths, ambiguous, mismatch,
                                resolved.unlisted_host)
        # meta may name the person only where the URL names none or the same one: it never replaces the URL's
        named_platform, sep, ident = str(subject).partition(":")
        if not sep or named_platform not in self.platforms:
            named_platform, ident = "", str(subject)
        if named_platform and platform is None:
            # an URL on no platform (a CDN, say) named as a platform's person: only ever stricter than off-platform
            platform = self.platforms.get(named_platform)
        elif named_platform and platform is not None and platform.name != named_platform:
            mismatch = f"meta names platform {named_platform!r}, the URL's host is on {platform.name!r}"
        key = platform.subject_key(ident) if platform is not None else ident
        if mismatch is None and from_url is not None and from_url != key:
            mismatch = "meta names another person than the URL"
        return RequestFacts(url, canonical, purpose, self.token, now, platform,
                            from_url if mismatch is not None and from_url is not None else key,
                            "url" if from_url is not None else "meta", paths, ambiguous, mismatch,
                            resolved.unlisted_host)

    # -- deciding ------------------------------------------------------------------------------------------

    def decide_url(self, url: str, purpose: str, now: datetime, robots: RobotsFile | None,
                   subject: str | None = None) -> tuple[RequestFacts | None, Decision]:
        """Facts and decision in one call; an unparseable URL is a deny, never an exception."""
        try:
            facts = self.facts(url, purpose, now, subject)
        except Exception as exc:  # noqa: BLE001 - any failure to understand a URL must deny
            return None, deny(Stage.ERROR, "error.bad-url", evidence=(_error_evidence(exc, url),))
        return facts, self.decide(facts, robots)

    def decide(self, facts: RequestFacts, robots: RobotsFile | None) -> Decision:
        """Run robots, terms and subject stages; the first deny wins."""
        return self._guarded(facts, robots, check_robots=True)

    def decide_consent(self, facts: RequestFacts) -> Decision:
        """Terms and subject stages only: what can be decided before robots.txt is known (at scheduling)."""
        return self._guarded(facts, None, check_robots=False)

    def decide_link(self, url: str, purpose: str, now: datetime) -> tuple[Decision, str, bool]:
        """:meth:`decide_consent` for a URL as a page links it, remembered by the URL string as written.

        Returns the decision, the canonical URL and whether this is a repeat: the very decision (same object,
        same id) returned for this URL last time, because nothing it rests on has changed. A crawl meets the
        same links on page after page; a repeat costs a dict lookup and the checks of :meth:`_still`.
        Raises ``ValueError`` for a URL that cannot be canonicalised, like :meth:`facts`.
        """
        key = (url, purpose)
        entry = self._links.get(key)
        if entry is not None:
            made, decision, canonical = entry
            try:
                still = self._still(made, made.platform, now, decision.subject)
            except Exception:  # noqa: BLE001 - e.g. the store failed: decided anew below, which denies with its cause
                still = False
            if still:
                return decision, canonical, True
        facts = self.facts(url, purpose, now)
        decision, made_now = self._guarded_made(facts, None, check_robots=False)
        if made_now is not None:
            self._links.put(key, (made_now, decision, facts.canonical.url))
        return decision, facts.canonical.url, False

    def decide_subject(self, platform_name: str | None, subject: str, purpose: str, now: datetime) -> Decision:
        """Decide whether data about one person may be kept (the item guard): terms and subject stages."""
        try:
            platform = self.platforms.get(platform_name) if platform_name else None
            if platform is None:
                return deny(Stage.SUBJECT, "subject.unknown-platform", subject=subject, platform=platform_name,
                            evidence=(Evidence("item", "item", {"platform": platform_name}),))
            subject = platform.subject_key(subject)
            key = (platform.name, subject, purpose)
            made = self._recall(key, platform, now, subject, self._people)
            if made is not None:
                return _renew(made.decision)
            evidence: list[Evidence] = []
            lookups: list[Sequence[AuthorizationRecord]] = []
            version = self._store_version()
            verdict = self._terms(platform, purpose, now, evidence)
            if verdict is not None:  # the item phase's terms deny carries its evidence and the person, as elsewhere
                verdict = deny(verdict.stage, verdict.reason, subject=subject, platform=platform.name,
                               evidence=tuple(evidence))
            else:
                verdict = self._subject(platform, subject, purpose, now, evidence, lookups)
            self._remember(key, verdict, platform, lookups, now, self._people, version=version)
            return verdict
        except StoreUnavailable as exc:
            return deny(Stage.ERROR, "error.store-unavailable", subject=subject, platform=platform_name,
                        evidence=(_error_evidence(exc, "store"),))
        except Exception as exc:  # noqa: BLE001
            return deny(Stage.ERROR, "error.internal", subject=subject, platform=platform_name,
                        evidence=(_error_evidence(exc, "decide_subject"),))

    def _guarded(self, facts: RequestFacts, robots: RobotsFile | None, *, check_robots: bool) -> Decision:
        return self._guarded_made(facts, robots, check_robots=check_robots)[0]

    def _guarded_made(self, facts: RequestFacts, robots: RobotsFile | None, *,
                      check_robots: bool) -> tuple[Decision, _Made | None]:
        """The decision, and what it rests on when it may be reused (None for errors: they are decided anew)."""
        try:
            if check_robots:
                return self._with_robots(facts, robots), None
            made, remembered = self._consent(facts)
            return (_renew(made.decision) if remembered else made.decision), made
        except StoreUnavailable as exc:
            return self._deny_facts(facts, Stage.ERROR, "error.store-unavailable",
                                    [_error_evidence(exc, "store")]), None
        except Exception as exc:  # noqa: BLE001 - fail closed on anything unexpected
            return self._deny_facts(facts, Stage.ERROR, "error.internal", [_error_evidence(exc, facts.url)]), None

    def _consent(self, facts: RequestFacts) -> tuple[_Made, bool]:
        """The terms-and-subject decision as remembered (True) or just made (False); raises what deciding raises.

        Only the consent part is remembered: a crawl asks it again for every link to a URL and once more when the
        URL is fetched, while the full decision is made once per fetch (Scrapy's dupefilter), so remembering it
        too would only keep a decision per fetched URL alive for the garbage collector to walk.
        """
        # the consent decision is a function of these (the platform comes from the canonical URL's host)
        key = (facts.canonical.url, facts.subject, facts.ambiguous is not None, facts.mismatch, facts.purpose,
               facts.token)
        made = self._recall(key, facts.platform, facts.now, facts.subject)
        if made is not None:
            return made, True
        lookups: list[Sequence[AuthorizationRecord]] = []
        version = self._store_version()  # read before the lookup: a change during it makes the entry stale
        decision = self._decide(facts, None, False, lookups)
        made = self._remember(key, decision, facts.platform, lookups, facts.now, version=version)
        if lookups and decision.stage is Stage.SUBJECT and facts.platform is not None:
            # the terms and the person's records decided it: exactly what decide_subject gives for this person,
            # so the item guard reuses it for the profile's item instead of deciding the person again
            self._people.put((facts.platform.name, facts.subject, facts.purpose), made)
        return made, False

    def _with_robots(self, facts: RequestFacts, robots: RobotsFile | None) -> Decision:
        """The full decision: the robots stage, then the terms-and-subject decision (usually remembered from when
        the link was checked) with the robots evidence in front — what :meth:`_decide` gives with robots.
        A failure to decide consent propagates to :meth:`_guarded_made`, which denies with its cause."""
        evidence: list[Evidence] = []
        decision = self._robots_stage(facts, robots, evidence)
        if decision is not None:
            return decision
        consent = self._consent(facts)[0].decision  # only its verdict and evidence are used: not renewed
        delay = self._robots_info(robots, facts.token)[1] if consent.allowed and robots is not None else None
        return Decision(consent.verdict, consent.stage, consent.reason, subject=consent.subject,
                        platform=consent.platform, evidence=(*evidence, *consent.evidence), fields=consent.fields,
                        crawl_delay=delay or None)

    def _remember(self, key: tuple[Any, ...], decision: Decision, platform: Platform | None,
                  lookups: list[Sequence[AuthorizationRecord]], now: datetime,
                  memo: Recent[tuple[Any, ...], _Made] | None = None, *, version: Any = None) -> _Made:
        """Keep a decision with what it rests on and the time span in which its time checks come out the same."""
        times: list[datetime | None] = []
        grant = platform.authorization if platform is not None else None
        if grant is not None:
            times += (grant.valid_from, grant.valid_until)
        for records in lookups:
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
        made = _Made(decision, platform, lookups[0] if lookups else None, bool(lookups), since, until, version)
        (self._decisions if memo is None else memo).put(key, made)
        return made

    def _recall(self, key: tuple[Any, ...], platform: Platform | None, now: datetime, subject: str | None,
                memo: Recent[tuple[Any, ...], _Made] | None = None) -> _Made | None:
        """The decision remembered under ``key``, if it would still come out the same (:meth:`_still`)."""
        made = (self._decisions if memo is None else memo).get(key)
        return made if made is not None and self._still(made, platform, now, subject) else None

    def _still(self, made: _Made, platform: Platform | None, now: datetime, subject: str | None) -> bool:
        """Would a remembered (terms-and-subject) decision come out the same? Then it may be reused.

        The very same platform object (a reloaded configuration is a new object); a time in the span
        where every ``valid_from``/``valid_until``, ``granted_at``/``expires_at``/``revoked_at`` comparison comes
        out the same; and, when the decision looked the person up, the store handing back the very same records
        object (stores return cached objects; a reload or a change returns new ones). The store is asked exactly
        when the first decision asked it, so a store failure still denies with ``error.store-unavailable``.
        """
        if made.platform is not platform:
            return False
        if (made.since is not None and now < made.since) or (made.until is not None and now >= made.until):
            return False
        if made.looked_up:
            if self.store is None or platform is None or subject is None:
                return False
            records = self.store.lookup(platform.name, subject)  # asked first: a live store notices change here
            if self._store_version() != made.version:
                return False
            if records is not made.records and records != made.records:
                return False
        return True

    def _store_version(self) -> Any:
        """The store's version (see :class:`~consentcrawl.consent.store.AuthorizationStore`); equal versions mean
        equal answers. A store without one is compared by its answers alone."""
        return getattr(self.store, "version", None) if self.store is not None else None

    def _deny_facts(self, facts: RequestFacts, stage: Stage, reason: str, evidence: list[Evidence]) -> Decision:
        platform = facts.platform.name if facts.platform else None
        return deny(stage, reason, subject=facts.subject, platform=platform, evidence=tuple(evidence))

    def _decide(self, facts: RequestFacts, robots: RobotsFile | None, check_robots: bool,
                lookups: list[Sequence[AuthorizationRecord]] | None = None) -> Decision:
        evidence: list[Evidence] = []
        platform = facts.platform
        platform_name = platform.name if platform else None
        if check_robots:
            denied_by_robots = self._robots_stage(facts, robots, evidence)
            if denied_by_robots is not None:
                return denied_by_robots
        if facts.ip_host:
            evidence.append(Evidence("platform", "platforms", {
                "platform": None, "host": facts.canonical.host,
                "cause": "an IP address, or a name with no registrable domain, that no platform lists"}))
            return self._deny_facts(facts, Stage.TERMS, "terms.ip-host", evidence)
        if platform is None:
            if facts.mismatch is not None:
                evidence.append(_mismatch_evidence(facts.mismatch))
                return self._deny_facts(facts, Stage.SUBJECT, "subject.mismatch", evidence)
            if facts.ambiguous is not None:  # e.g. a service URL embedding profiles of two platforms
                evidence.append(_readings_evidence(facts))
                return self._deny_facts(facts, Stage.SUBJECT, "subject.ambiguous-url", evidence)
            if facts.subject is not None:
                return self._deny_facts(facts, Stage.SUBJECT, "subject.unknown-platform", evidence)
            evidence.append(Evidence("platform", "platforms", {"platform": None, "host": facts.canonical.host}))
            return Decision(Verdict.ALLOW, Stage.TERMS, "terms.off-platform", evidence=tuple(evidence))
        denied = self._terms(platform, facts.purpose, facts.now, evidence)
        if denied is not None:
            return Decision(denied.verdict, denied.stage, denied.reason, subject=facts.subject,
                            platform=platform_name, evidence=tuple(evidence))
        if facts.mismatch is not None:
            evidence.append(_mismatch_evidence(facts.mismatch))
            return self._deny_facts(facts, Stage.SUBJECT, "subject.mismatch", evidence)
        if facts.ambiguous is not None:
            evidence.append(_readings_evidence(facts))
            return self._deny_facts(facts, Stage.SUBJECT, "subject.ambiguous-url", evidence)
        if facts.subject is None:
            return Decision(Verdict.ALLOW, Stage.SUBJECT, "subject.not-a-profile", platform=platform_name,
                            evidence=tuple(evidence),
                            fields=platform.authorization.fields if platform.authorization else None)
        return self._subject(platform, facts.subject, facts.purpose, facts.now, evidence, lookups)

    # -- stage 1: robots -----------------------------------------------------------------------------------

    def _robots_stage(self, facts: RequestFacts, robots: RobotsFile | None,
                      evidence: list[Evidence]) -> Decision | None:
        """The robots stage's deny (``robots.*``, or ``error.robots-missing``), or None when it allows."""
        reason = self._robots(facts, robots, evidence)
        if reason is None:
            return None
        stage = Stage.ERROR if reason.startswith("error.") else Stage.ROBOTS
        return self._deny_facts(facts, stage, reason, evidence)

    def _robots(self, facts: RequestFacts, robots: RobotsFile | None, evidence: list[Evidence]) -> str | None:
        if robots is None:
            evidence.append(Evidence("robots.txt", facts.canonical.origin, {"cause": "robots.txt not fetched"}))
            return "error.robots-missing"
        base, delay, matches = self._robots_info(robots, facts.token)
        if robots.status is RobotsStatus.UNREACHABLE:
            evidence.append(Evidence("robots.txt", robots.url, dict(base)))
            return "robots.unreachable"
        if robots.status is RobotsStatus.UNAVAILABLE:
            evidence.append(Evidence("robots.txt", robots.url, dict(base)))
            return None
        for path in facts.robots_paths:
            match = matches.get(path)
            if match is None:
                if len(matches) >= 16384:
                    matches.clear()
                match = matches[path] = robots.rules.match(path, facts.token)
            if not match.allowed:
                detail: dict[str, Any] = {**base, "path": path, "rule": match.rule, "line": match.line,
                                          "group": match.group, "group_line": match.group_line}
                evidence.append(Evidence("robots.txt", robots.url, detail))
                return "robots.disallowed"
        assert match is not None  # robots_paths is never empty
        detail = {**base, "path": facts.robots_paths[0], "rule": match.rule, "line": match.line,
                  "group": match.group, "group_line": match.group_line}
        if delay:
            detail["crawl_delay"] = delay
        evidence.append(Evidence("robots.txt", robots.url, detail))
        if delay and self.max_crawl_delay is not None and delay > self.max_crawl_delay:
            detail["max_crawl_delay"] = self.max_crawl_delay
            return "robots.crawl-delay"
        return None

    def _robots_info(self, robots: RobotsFile, token: str) -> tuple[dict[str, Any], float | None,
                                                                    dict[str, RobotsMatch]]:
        """The file's own evidence, its crawl delay for ``token`` and the paths matched so far: a fetched file
        never changes, so all of it is worked out once per file (a crawl asks about a URL more than once)."""
        key = (id(robots), token)
        memo = self._robots_memo.get(key)
        if memo is None or memo[0] is not robots:
            if len(self._robots_memo) >= 4096:
                self._robots_memo.clear()
            memo = self._robots_memo[key] = (robots, robots.evidence(), crawl_delay(robots, token), {})
        return memo[1], memo[2], memo[3]

    # -- stage 2: the platform's terms ---------------------------------------------------------------------

    def _terms(self, platform: Platform, purpose: str, now: datetime, evidence: list[Evidence]) -> Decision | None:
        grant = platform.authorization
        if grant is None:
            evidence.append(Evidence("platform-authorization", platform.source, {"platform": platform.name,
                                                                                 "authorization": None}))
            return deny(Stage.TERMS, "terms.not-authorized", platform=platform.name)
        memo = self._terms_memo.get(id(platform))
        if memo is None or memo[0] is not platform:
            detail = {
                "platform": platform.name,
                "reference": grant.reference,
                "purposes": tuple(sorted(grant.purposes)),
                "valid_from": grant.valid_from.isoformat() if grant.valid_from else None,
                "valid_until": grant.valid_until.isoformat() if grant.valid_until else None,
            }
            if len(self._terms_memo) >= 1024:
                self._terms_memo.clear()
            memo = self._terms_memo[id(platform)] = (platform, Evidence("platform-authorization", platform.source,
                                                                        detail))
        evidence.append(memo[1])
        if purpose not in grant.purposes:
            return deny(Stage.TERMS, "terms.purpose", platform=platform.name)
        if grant.valid_from is not None and now < grant.valid_from:
            return deny(Stage.TERMS, "terms.not-yet-valid", platform=platform.name)
        if grant.valid_until is not None and now >= grant.valid_until:
            return deny(Stage.TERMS, "terms.expired", platform=platform.name)
        return None

    # -- stage 3: the person's authorization ---------------------------------------------------------------

    def _subject(self, platform: Platform, subject: str, purpose: str, now: datetime,
                 evidence: list[Evidence], lookups: list[Sequence[AuthorizationRecord]] | None = None) -> Decision:
        if self.store is None:
            evidence.append(Evidence("subject-authorization", "none", {"cause": "no authorization store"}))
            return deny(Stage.SUBJECT, "subject.no-authorization", subject=subject, platform=platform.name,
                        evidence=tuple(evidence))
        records = self.store.lookup(platform.name, subject)
        if lookups is not None:
            lookups.append(records)
        live, reason = _judge_records(records, purpose, now)
        if live is not None:
            evidence.append(self._record_evidence(live))
            grant = platform.authorization
            fields = _intersect(grant.fields if grant else None, live.fields)
            return Decision(Verdict.ALLOW, Stage.SUBJECT, "subject.authorized", subject=subject,
                            platform=platform.name, evidence=tuple(evidence), fields=fields)
        evidence.extend(self._record_evidence(r) for r in records)
        if not records:
            source = getattr(self.store, "source", "store")
            key = (source, platform.name, subject)
            none = self._no_record_memo.get(key)
            if none is None:  # the same object for the link, the fetch and the item: its JSON is written once
                none = Evidence("subject-authorization", source, {"platform": platform.name, "subject": subject,
                                                                  "records": 0})
                self._no_record_memo.put(key, none)
            evidence.append(none)
        return deny(Stage.SUBJECT, reason, subject=subject, platform=platform.name, evidence=tuple(evidence))

    def _record_evidence(self, record: AuthorizationRecord) -> Evidence:
        """A record's evidence, built once per record object (stores hand out the same objects again)."""
        memo = self._record_memo.get(id(record))
        if memo is None or memo[0] is not record:
            memo = (record, _record_evidence(record))
            self._record_memo.put(id(record), memo)
        return memo[1]


class _Made:
    """A decision made, and what it rested on (for :meth:`PolicyEngine._still`)."""

    __slots__ = ("decision", "looked_up", "platform", "records", "since", "until", "version")

    def __init__(self, decision: Decision, platform: Platform | None, records: Sequence[AuthorizationRecord] | None,
                 looked_up: bool, since: datetime | None, until: datetime | None, version: Any = None) -> None:
        self.version = version  #: the store's version when it was decided
        self.decision = decision
        self.platform = platform
        self.records = records
        self.looked_up = looked_up
        self.since = since  #: the latest time threshold at or before the decision time
        self.until = until  #: the earliest time threshold after it


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
_renew = (_renew_fast if hasattr(Decision(Verdict.DENY, Stage.ERROR, "error.internal"), "__dict__")
          and [f.name for f in dataclass_fields(Decision)] == ["verdict", "stage", "reason", "subject", "platform",
                                                               "evidence", "decision_id", "fields", "crawl_delay"]
          else _renew_slow)


_STATUS_REASON = {
    RecordStatus.REVOKED: "subject.revoked",
    RecordStatus.EXPIRED: "subject.expired",
    RecordStatus.NOT_YET_VALID: "subject.not-yet-valid",
}
#: when no record is live, the reason names the most telling record: a withdrawal beats an expiry, etc.
_REASON_RANK = ["subject.revoked", "subject.expired", "subject.not-yet-valid", "subject.purpose",
                "subject.no-authorization"]


def _judge_records(records: Sequence[AuthorizationRecord], purpose: str,
                   now: datetime) -> tuple[AuthorizationRecord | None, str]:
    """A live record for the purpose, or the reason none is.

    A withdrawal for the purpose overrides any grant for it that is older than the withdrawal.
    """
    revoked_at = [r.revoked_at for r in records if purpose in r.purposes and r.revoked_at and r.revoked_at <= now]
    last_revocation = max(revoked_at) if revoked_at else None
    best = "subject.no-authorization"
    for record in records:
        if purpose not in record.purposes:
            reason = "subject.purpose"
        else:
            status = record.status(now)
            if status is RecordStatus.LIVE:
                if last_revocation is None or record.granted_at > last_revocation:
                    return record, ""
                reason = "subject.revoked"
            else:
                reason = _STATUS_REASON[status]
        if _REASON_RANK.index(reason) < _REASON_RANK.index(best):
            best = reason
    return None, best


def crawl_delay(robots: RobotsFile, token: str) -> float | None:
    """Seconds between requests the origin asks of us: the larger of Crawl-delay and Request-rate."""
    if robots.status is not RobotsStatus.OK:
        return None
    delay = robots.rules.crawl_delay(token) or 0.0
    rate = robots.rules.request_rate(token)
    if rate and rate[0] > 0:
        delay = max(delay, rate[1] / rate[0])
    return delay or None


def _record_evidence(record: AuthorizationRecord) -> Evidence:
    return Evidence("subject-authorization", record.source, {
        "platform": record.platform,
        "subject": record.subject,
        "record_id": record.record_id or None,
        "purposes": tuple(sorted(record.purposes)),
        "granted_at": record.granted_at.isoformat(),
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
        "evidence": record.evidence,
    })


def _intersect(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _mismatch_evidence(cause: str) -> Evidence:
    """What the spider wrote that disagrees with the URL: its Host header, or ``consentcrawl_subject``."""
    if "Host header" in cause:
        return Evidence("request-header", "Host", {"cause": cause})
    return Evidence("request-meta", "consentcrawl_subject", {"cause": cause})


def _readings_evidence(facts: RequestFacts) -> Evidence:
    assert facts.ambiguous is not None
    return Evidence("url-readings", facts.canonical.url, {
        "readings": [list(r) for r in facts.ambiguous.readings],
        "cause": "a lenient server could read this URL as another person, or as no one person"})


def _host_mismatch(canonical: CanonicalURL, host: str) -> str | None:
    """Why a request's own ``Host`` header makes it go to another site than its URL's host, or None.

    Scrapy sends the spider's ``Host`` header instead of its own, and a server picks the site by it: the page
    served is then the header's host's, not the one decided."""
    try:
        named = canonicalize(f"{canonical.scheme}://{host.strip()}/").host
    except ValueError:
        return "the request's Host header cannot be read"
    return None if named == canonical.host else "the request's Host header names another host than its URL"


def _error_evidence(exc: BaseException, where: str) -> Evidence:
    return Evidence("error", where, {"error": type(exc).__name__, "message": str(exc)[:500]})
