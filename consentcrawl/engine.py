"""The decision engine: runs one ordered list of checks — pure, no Scrapy, no I/O, no clock.

The list (:data:`~consentcrawl.checks.DEFAULT_CHECKS`, or ``CONSENTCRAWL_CHECKS``) is the one place the stage
order is written. :meth:`PolicyEngine.decide` runs every check in order, site checks (robots.txt) included;
:meth:`PolicyEngine.decide_consent`, :meth:`~PolicyEngine.decide_link` and :meth:`~PolicyEngine.decide_subject`
run the consent checks only. The first check to conclude wins: a deny, or a concluding allow such as
``terms.off-platform``. Consent decisions are remembered by :mod:`consentcrawl.cache`.

The engine never calls a store. Every way to ask takes a :class:`~consentcrawl.consent.answers.StoreAnswers`: the
store's version, read by the adapter, and the records it has looked up so far. A remembered decision still valid at
that version is answered at once; a decision that needs a person's records not looked up yet raises
:class:`~consentcrawl.consent.answers.RecordsNeeded`, and the adapter (:class:`~consentcrawl.deciding.Decider`)
awaits the lookup and asks again. It raises before any consent check runs, and a link check hands the facts and
the consent key it made along with the exception (``RecordsNeeded.carried``), which come back with the records: a
new link's facts are made once, its consent memo asked once and its checks run once.

Anything that goes wrong while deciding is a deny with an ``error.*`` reason: a check that crashes must never let a
request through.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .cache import ConsentCache, Made, Part, consent_key, renew
from .checks import default_checks
from .checks.base import CheckContext, Outcome
from .consent.answers import RecordsNeeded, StoreAnswers
from .decision import Decision, Evidence, Stage, Verdict, deny
from .errors import StoreUnavailable
from .facts import FactReader, RequestFacts
from .recent import Recent
from .refusals.book import RefusalBook
from .refusals.purposes import ALL_PURPOSES
from .resolve import Resolved
from .robots.fetch import RobotsFile
from .signals.evaluate import SiteFiles
from .signals.policy import ResponseSignals, SignalPolicy
from .signals.purposes import base_purposes
from .terms.platforms import PlatformRegistry

__all__ = ["PolicyEngine", "RequestFacts"]

_BUILTIN = "consentcrawl.checks."


class PolicyEngine:
    """Decides requests for one configuration: platforms (leg 2), the product token, the checks. The records of
    leg 3 come with each question (``answers``), looked up by the adapters.

    ``checks`` are check objects in the order they run (default: the built-ins); ``cache=False`` makes every
    decision anew (what the cached engine is tested against).
    """

    def __init__(self, platforms: PlatformRegistry, token: str, max_crawl_delay: float | None = None,
                 checks: Iterable[Any] | None = None, cache: bool = True,
                 signal_policy: SignalPolicy | None = None, refusals: RefusalBook | None = None) -> None:
        self.platforms = platforms
        self.token = token
        #: a Crawl-delay above this denies the origin (``robots.crawl-delay``) instead of stalling the crawl
        self.max_crawl_delay = max_crawl_delay
        #: how site and response signals are read (settings): handed to the checks with each full decision
        self.signal_policy = signal_policy or SignalPolicy()
        #: the response phase's signal decisions, the site-level part remembered per origin
        self.response_signals = ResponseSignals()
        self.checks: tuple[Any, ...] = tuple(default_checks() if checks is None else checks)
        self._site = tuple(bool(getattr(c, "site", False)) for c in self.checks)
        self._cacheable = tuple(bool(getattr(c, "cacheable", False)) for c in self.checks)
        self._builtin = tuple(type(c).__module__.startswith(_BUILTIN) for c in self.checks)
        self._consent_checks = tuple(i for i, site in enumerate(self._site) if not site)
        site_checks = [i for i, site in enumerate(self._site) if site]
        #: every site check comes before every consent check (the default list): a full decision is the site
        #: checks' evidence followed by the consent decision's, without walking the list
        self._sites_first = not site_checks or not self._consent_checks or max(site_checks) < self._consent_checks[0]
        self._site_checks = tuple(self.checks[i] for i in site_checks)
        self._reader = FactReader(platforms, token)
        self.cache = ConsentCache(enabled=cache)
        #: the refusals people published on their own pages (refusals/book.py): the adapters add to it; every
        #: decision that would let a refused person's data in is turned into ``subject.refused-on-page`` on its way
        #: out, after the cache, so a remembered allow never outlives a refusal
        self.refusals = refusals if refusals is not None else RefusalBook()
        self._purposes: dict[str, frozenset[str]] = {}
        #: the deny handed out for a remembered link allow of a person who refused since, by the allow's id
        self._refused_links: Recent[str, Decision] = Recent(4096)

    def facts(self, url: str, purpose: str, now: datetime, subject: str | None = None, *,
              form: str | None = None, is_form: bool = True, host: str | None = None,
              rewrites: tuple[tuple[str, str], ...] = (), proxy: str | None = None,
              values: tuple[str, ...] | None = ()) -> RequestFacts:
        """Resolve a URL into facts (:meth:`consentcrawl.facts.FactReader.facts`). Raises ``ValueError`` for a URL
        that cannot be canonicalised; :meth:`decide_url` turns that into a deny."""
        return self._reader.facts(url, purpose, now, subject, form=form, is_form=is_form, host=host,
                                  rewrites=rewrites, proxy=proxy, values=values)

    def resolved(self, url: str) -> Resolved:
        """What ``url`` resolves to (its platform, whose page it is), from the cache the decisions use. Raises
        ``ValueError`` for a URL that cannot be canonicalised."""
        return self._reader._resolve(url)

    # -- the public ways to ask ----------------------------------------------------------------------------

    def decide_url(self, url: str, purpose: str, now: datetime, robots: RobotsFile | None, answers: StoreAnswers,
                   subject: str | None = None, signals: SiteFiles | None = None
                   ) -> tuple[RequestFacts | None, Decision]:
        """Facts and decision in one call; an unparseable URL is a deny, never an exception."""
        try:
            facts = self.facts(url, purpose, now, subject)
        except Exception as exc:  # noqa: BLE001 - any failure to understand a URL must deny
            return None, deny(Stage.ERROR, "error.bad-url", evidence=(_error_evidence(exc, url),))
        return facts, self.decide(facts, robots, answers, signals)

    def decide(self, facts: RequestFacts, robots: RobotsFile | None, answers: StoreAnswers,
               signals: SiteFiles | None = None) -> Decision:
        """Every check in order, site checks with ``robots`` and ``signals`` (the origin's files); the first to
        conclude wins. Raises RecordsNeeded (see the module's docstring), and SignalsNeeded when the walk reaches
        the signals check without ``signals``: the adapter fetches them and asks again."""
        try:
            return self._overrule(self._full(facts, robots, answers, signals), facts.purpose)
        except Exception as exc:  # noqa: BLE001 - fail closed on anything unexpected
            return _failed(facts, exc)

    def decide_consent(self, facts: RequestFacts, answers: StoreAnswers) -> Decision:
        """The consent checks only: what can be decided before robots.txt is known (at scheduling).
        Raises RecordsNeeded."""
        try:
            made, remembered, _ = self._consent(facts, answers)
            return self._overrule(renew(made.decision) if remembered else made.decision, facts.purpose)
        except Exception as exc:  # noqa: BLE001
            return _failed(facts, exc)

    def decide_link(self, url: str, purpose: str, now: datetime, answers: StoreAnswers) -> tuple[Decision, str, bool]:
        """:meth:`decide_consent` for a URL as a page links it, remembered by the URL string as written.

        Returns the decision, the canonical URL and whether this is a repeat: the very decision (same object,
        same id) returned for this URL last time, because nothing it rests on has changed. A crawl meets the
        same links on page after page; a repeat costs a dict lookup and the cache's validity check.
        Raises ``ValueError`` for a URL that cannot be canonicalised, like :meth:`facts`, and RecordsNeeded.
        """
        key = (url, purpose)
        # asked each time: a link decision remembered while this one awaited the person's lookup is a repeat
        hit = self.cache.recall_link(key, now, answers.version)
        if hit is not None:
            refused, first = self._overrule_link(hit[0], purpose)
            return refused, hit[1], not first
        carried = answers.carried
        if type(carried) is _LinkFacts and carried.engine is self and carried.now is now and carried.key == key:
            # asked again with the records the first ask found missing: its facts and consent key, and the consent
            # memo, which missed for them, not asked again
            facts, consent, recall = carried.facts, carried.consent, False
        else:
            facts = self.facts(url, purpose, now)
            consent, recall = consent_key(facts), True
        try:
            made, remembered, cacheable = self._consent(facts, answers, consent, recall)
        except RecordsNeeded as need:  # asked again with the records: what was worked out here comes with them
            need.carried = _LinkFacts(self, key, now, facts, consent)
            raise
        except Exception as exc:  # noqa: BLE001 - decided anew next time
            return _failed(facts, exc), consent[0], False
        decision = renew(made.decision) if remembered else made.decision
        canonical = consent[0]  # the canonical URL string, made once for the key
        if cacheable:
            self.cache.remember_link(key, made, decision, canonical)
        return self._overrule_link(decision, purpose)[0], canonical, False

    def decide_subject(self, platform_name: str | None, subject: str, purpose: str, now: datetime,
                       answers: StoreAnswers) -> Decision:
        """Whether data about one person may be kept (the item guard): the consent checks, for a person.
        Raises RecordsNeeded."""
        try:
            platform = self.platforms.get(platform_name) if platform_name else None
            if platform is None:
                return deny(Stage.SUBJECT, "subject.unknown-platform", subject=subject, platform=platform_name,
                            evidence=(Evidence("item", "item", {"platform": platform_name}),))
            conflict = platform.subject_conflict(subject)
            subject = platform.subject_key(subject)
            if conflict:  # the item's id may be another account than the key's (straße, strasse): decided as a URL
                return deny(Stage.SUBJECT, "subject.ambiguous-url", subject=subject, platform=platform.name,
                            evidence=(Evidence("item", "item", {"platform": platform.name, "cause": conflict}),))
            key = (platform.name, subject, purpose)
            made = self.cache.recall(self.cache.people, key, platform, now, answers.version)
            if made is not None:
                return self._overrule(renew(made.decision), purpose)
            ctx = CheckContext(None, platform, subject, purpose, now, self.token, answers,
                               signal_policy=self.signal_policy)
            made, cacheable, _ = self._run_consent(ctx)
            if cacheable:
                self.cache.remember(self.cache.people, key, made)
            return self._overrule(made.decision, purpose)
        except StoreUnavailable as exc:
            return deny(Stage.ERROR, "error.store-unavailable", subject=subject, platform=platform_name,
                        evidence=(_error_evidence(exc, "store"),))
        except Exception as exc:  # noqa: BLE001
            return deny(Stage.ERROR, "error.internal", subject=subject, platform=platform_name,
                        evidence=(_error_evidence(exc, "decide_subject"),))

    def refused_purposes(self, purpose: str) -> frozenset[str]:
        """The built-in purposes a refusal must name to refuse ``purpose`` (a custom purpose: what it counts as)."""
        purposes = self._purposes.get(purpose)
        if purposes is None:
            try:
                purposes = base_purposes(purpose, self.signal_policy.custom) | {purpose}
            except ValueError:  # a purpose with no meaning here: every refusal refuses it (fail closed)
                purposes = ALL_PURPOSES
            self._purposes[purpose] = purposes
        return purposes

    def _overrule(self, decision: Decision, purpose: str) -> Decision:
        """The decision, or ``subject.refused-on-page`` when it would let in a person who refused the purpose."""
        if not self.refusals or not decision.allowed:
            return decision
        return self.refusals.overrule(decision, self.refused_purposes(purpose))

    def _overrule_link(self, decision: Decision, purpose: str) -> tuple[Decision, bool]:
        """:meth:`_overrule` for the link memo: the same deny object for the same remembered allow, so a link met
        again is a repeat of it (not a new line); and whether this deny is handed out for the first time."""
        if not self.refusals or not decision.allowed:
            return decision, False
        known = self._refused_links.get(decision.decision_id)
        if known is not None:
            return known, False
        refused = self._overrule(decision, purpose)
        if refused is not decision:
            self._refused_links.put(decision.decision_id, refused)
            return refused, True
        return decision, False

    # -- running the list ----------------------------------------------------------------------------------

    def _consent(self, facts: RequestFacts, answers: StoreAnswers, key: tuple[Any, ...] | None = None,
                 recall: bool = True) -> tuple[Made, bool, bool]:
        """The consent decision: what was made, whether it was remembered, and whether it may be remembered.
        Raises what deciding raises. ``key``: ``consent_key(facts)``, when the caller made it; ``recall`` False: the
        memo already missed for this very question (a new link asked again with its records), so it is not asked
        again: deciding anew is always right (a decision remembered in between would have been handed out renewed,
        as a new decision, all the same), and this decision replaces it.
        """
        if key is None:
            key = consent_key(facts)
        if recall:
            made = self.cache.recall(self.cache.decisions, key, facts.platform, facts.now, answers.version)
            if made is not None:
                return made, True, True
        ctx = CheckContext(facts, facts.platform, facts.subject, facts.purpose, facts.now, facts.token, answers,
                           max_crawl_delay=self.max_crawl_delay, signal_policy=self.signal_policy)
        made, cacheable, builtin = self._run_consent(ctx)
        if cacheable:
            self.cache.remember(self.cache.decisions, key, made)
            if (builtin and made.lookups and made.decision.stage is Stage.SUBJECT and facts.platform is not None
                    and facts.subject is not None):
                # the person's records decided it, with built-in checks only: exactly what decide_subject gives
                # for this person, so the item guard reuses it for the profile's item
                self.cache.remember(self.cache.people, (facts.platform.name, facts.subject, facts.purpose), made)
        return made, False, cacheable

    def _run_consent(self, ctx: CheckContext) -> tuple[Made, bool, bool]:
        """Run the consent checks on ``ctx``; the decision made, whether every check that ran is cacheable, and
        whether every one is built in.

        The records of the person the decision names are found before any check runs: looked up for this
        decision, or remembered at the store's version; else RecordsNeeded is raised, so that the checks run once,
        with the records, rather than up to the records, then again with them."""
        answers = ctx.answers
        if ctx.subject is not None and ctx.platform is not None and answers.source is not None and not answers.final:
            person = (ctx.platform.name, ctx.subject)
            given = answers.answers.get(person)
            if given is None:
                known = self.cache.answer(person, answers.version)
                if known is None:
                    raise RecordsNeeded(*person)
                ctx.answers = answers.with_answer(*person, known, answers.version)
            elif type(given) is tuple:
                self.cache.remember_answer(person, answers.version, given)
        parts: list[Part] = []
        outcome: Outcome | None = None
        cacheable = builtin = True
        for i in self._consent_checks:
            start = len(ctx.evidence)
            outcome = self.checks[i].check(ctx)
            parts.append((i, tuple(ctx.evidence[start:])))
            cacheable = cacheable and self._cacheable[i]
            builtin = builtin and self._builtin[i]
            if outcome is not None:
                break
        decision = _decision(ctx, outcome, ctx.evidence)
        concluded = parts[-1][0] if outcome is not None else None
        return self.cache.made(ctx, decision, tuple(parts), ctx.answers.version, concluded), cacheable, builtin

    def _full(self, facts: RequestFacts, robots: RobotsFile | None, answers: StoreAnswers,
              signals: SiteFiles | None = None) -> Decision:
        """Every check in list order: site checks run now; the consent checks' part comes from the consent
        decision (usually remembered from when the link was checked), asked for only when the walk reaches it."""
        ctx = CheckContext(facts, facts.platform, facts.subject, facts.purpose, facts.now, facts.token, answers,
                           robots, self.max_crawl_delay, signals, self.signal_policy)
        if self._sites_first:
            for check in self._site_checks:
                outcome = check.check(ctx)
                if outcome is not None:
                    return _decision(ctx, outcome, ctx.evidence)
            if not self._consent_checks:
                return _decision(ctx, None, ctx.evidence)
            consent = self._consent(facts, answers)[0].decision  # only its verdict and evidence are used: not renewed
            return _with_site(consent, ctx)
        evidence: list[Evidence] = []
        made: Made | None = None
        for i, check in enumerate(self.checks):
            if self._site[i]:
                start = len(ctx.evidence)
                outcome = check.check(ctx)
                evidence.extend(ctx.evidence[start:])
                if outcome is not None:
                    return _decision(ctx, outcome, evidence)
                continue
            if made is None:
                made = self._consent(facts, answers)[0]  # only its verdict and evidence are used: not renewed
            evidence.extend(made.by_check.get(i, ()))
            if i == made.concluded:
                return _with_site(made.decision, ctx, evidence)
        return _decision(ctx, None, evidence)


class _LinkFacts:
    """A link's facts and consent key, carried from the ask that raised RecordsNeeded to the next (see
    :attr:`~consentcrawl.consent.answers.RecordsNeeded.carried`), with what that ask found: no consent decision
    remembered for them. Facts are a function of the URL, the purpose and the time alone, for one
    engine (its platforms and token), so they are used only for that very question: the same engine and time object
    (an equal time in another zone would be written differently), an equal URL and purpose."""

    __slots__ = ("consent", "engine", "facts", "key", "now")

    def __init__(self, engine: PolicyEngine, key: tuple[str, str], now: datetime, facts: RequestFacts,
                 consent: tuple[Any, ...]) -> None:
        self.engine = engine
        self.key = key
        self.now = now
        self.facts = facts
        self.consent = consent  #: ``consent_key(facts)``


def _with_site(consent: Decision, ctx: CheckContext, evidence: list[Evidence] | None = None) -> Decision:
    """The consent decision as the full decision: after the site checks' evidence (or ``evidence``, in list
    order), with the crawl delay they found when it allows."""
    delay = ctx.crawl_delay if consent.allowed else None
    cited = (*ctx.evidence, *consent.evidence) if evidence is None else tuple(evidence)
    return Decision(consent.verdict, consent.stage, consent.reason, subject=consent.subject,
                    platform=consent.platform, evidence=cited, fields=consent.fields, crawl_delay=delay or None)


def _decision(ctx: CheckContext, outcome: Outcome | None, evidence: list[Evidence]) -> Decision:
    """The decision a check's outcome makes, citing ``evidence``; no check concluding is a deny (fail closed)."""
    if outcome is None:
        evidence = [*evidence, Evidence("error", "checks", {"error": "NoConclusion",
                                                            "message": "no check concluded"})]
        return deny(Stage.ERROR, "error.internal", subject=ctx.subject, platform=ctx.platform_name,
                    evidence=tuple(evidence))
    return Decision(outcome.verdict, outcome.stage, outcome.reason, subject=ctx.subject,
                    platform=ctx.platform_name, evidence=tuple(evidence),
                    fields=outcome.fields if outcome.verdict is Verdict.ALLOW else None)


def _failed(facts: RequestFacts, exc: Exception) -> Decision:
    """The deny for a decision that raised: ``error.store-unavailable`` or ``error.internal``, with the cause."""
    platform = facts.platform.name if facts.platform is not None else None
    if isinstance(exc, StoreUnavailable):
        return deny(Stage.ERROR, "error.store-unavailable", subject=facts.subject, platform=platform,
                    evidence=(_error_evidence(exc, "store"),))
    return deny(Stage.ERROR, "error.internal", subject=facts.subject, platform=platform,
                evidence=(_error_evidence(exc, facts.url),))


def _error_evidence(exc: BaseException, where: str) -> Evidence:
    return Evidence("error", where, {"error": type(exc).__name__, "message": str(exc)[:500]})
