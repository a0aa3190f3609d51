"""What the site publishes about use (issue #13): the site-level operator signals, decided before the fetch.

A site check: it needs the origin's signal files (``/.well-known/tdmrep.json``, the RSL licences robots.txt names,
``/ai.txt`` in conservative mode) and robots.txt's extension lines (``Content-Usage``, ``Content-Signal``,
``License``), which the adapters fetch and hand in as :attr:`CheckContext.signals`. A decision that reaches this
check without them raises :class:`~consentcrawl.signals.policy.SignalsNeeded`: the adapter fetches them once per
origin and asks again.

Reasons: ``terms.signal.<name>`` (a statement denies the purpose) and ``terms.signal-unavailable.<name>`` (a file
that had to be read could not be). Unknown passes: on a platform the platform's terms check decides, off any
platform the per-purpose default is applied in the response phase, after the response-level signals.
Evidence, when the site says anything about the purpose: one ``site-signals`` entry (what each signal said), each
finding (``signal.<name>``), conflicts, and the
platform's grant when it overrides a signal's deny (``overrides_signals``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..cache import RequestSignals, SignalMemo
from ..decision import Evidence
from ..signals.evaluate import PathKeys, SiteFiles, path_free, spelled_urls
from ..signals.policy import DEFAULT_POLICY, SignalsNeeded, spelled_site_decision
from .base import CheckContext, Outcome

__all__ = ["SiteSignalsCheck", "path_free"]


class SiteSignalsCheck:
    """The origin's site-level signals, combined per purpose (``docs/signals.md``)."""

    site = True
    cacheable = True

    def __init__(self) -> None:
        #: (evidence, outcome, the index of the spelling that denies): the spelling's text is the request's own
        self._memo: SignalMemo[tuple[tuple[Evidence, ...], Outcome | None, int | None]] = SignalMemo(8192)
        #: what of a URL each origin's files make the outcome depend on
        self._keys = PathKeys()
        #: the request's own outcome: a request is decided more than once (the request phase, then send time)
        self._requests: RequestSignals[tuple[tuple[Evidence, ...], Outcome | None]] = RequestSignals(2048)

    def check(self, ctx: CheckContext) -> Outcome | None:
        facts = ctx.facts
        assert facts is not None  # site checks only run on URLs
        files = ctx.signals
        if files is None:
            raise SignalsNeeded(facts.canonical.origin)
        robots = ctx.robots
        policy = ctx.signal_policy or DEFAULT_POLICY
        platform = ctx.platform
        token = ctx.token
        purpose = ctx.purpose
        # the fact reader hands out one canonical object and one spellings tuple per URL (its resolver is cached),
        # so a request's later decision finds its entry; the objects are kept, so a reused id is no hit
        canonical, paths = facts.canonical, facts.robots_paths
        inputs = (canonical, paths, files, robots, policy, platform)
        seen = self._requests.get(inputs, purpose, token)
        if seen is not None:
            evidence, outcome = seen
        else:
            keyer = self._keys.of(files, token, robots)  # the files as decided: with the robots.txt in force
            # same robots.txt and token as the robots check; every spelling of the path it matched
            key = keyer.canonical_key(canonical, ctx.robots_allowed, paths)
            evidence, outcome, at = self._memo.get(files, robots, platform, policy, (key, purpose, token),
                                                   lambda: self._decide(files, robots, policy, ctx))
            if at is not None:  # name the spelling that denies: the request's own text, so not in the memo
                summary = evidence[0]
                path = spelled_urls(canonical, paths)[at][0]
                evidence = (Evidence(summary.kind, summary.source, {**summary.detail, "path": path}), *evidence[1:])
            self._requests.put(inputs, purpose, token, (evidence, outcome))
        if evidence:
            ctx.evidence.extend(evidence)
        return outcome

    @staticmethod
    def _decide(files: SiteFiles, robots: Any, policy: Any, ctx: CheckContext) -> tuple[tuple[Evidence, ...],
                                                                                       Outcome | None, int | None]:
        facts = ctx.facts
        assert facts is not None
        if files.robots is not robots:
            files = replace(files, robots=robots)  # the robots.txt in force is the one the robots check read
        decided, results, at = spelled_site_decision(spelled_urls(facts.canonical, facts.robots_paths),
                                                     facts.canonical.host, files, policy, ctx.token, ctx.purpose,
                                                     ctx.platform)
        summary = Evidence("site-signals", facts.canonical.origin, {
            "purpose": ctx.purpose, "basis": decided.basis,
            "signals": {k: v.value for k, v in decided.signals.items()},
            "files": {r.source: ("unavailable: " + r.unavailable) if r.unavailable else "read"
                      for r in results if r.source},
        })
        cited = tuple(e for e in decided.evidence
                      if e.kind != "platform-authorization" or decided.basis == "agreement")
        if not cited:
            return (), None, None  # the site says nothing about this purpose here: nothing to cite (files read)
        outcome = None
        if at is not None and decided.reason is not None:
            outcome = Outcome.deny(decided.reason)
        return (summary, *cited), outcome, at if outcome is not None else None
