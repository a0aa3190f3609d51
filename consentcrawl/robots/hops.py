"""Which robots.txt redirect hops may be fetched: the rule the crawl and ``consentcrawl check`` share.

A robots.txt request is a request like any other: a site can redirect it to a person's profile. A hop is fetched
only if we would fetch that URL. A terms-stage deny does not stop a hop to a ``/robots.txt`` (reading a site's
terms is not collecting its data), nor to a site's signal file (``terms_file``), except for a host we do not fetch
from at all (``terms.ip-host``), nor to a URL that is, or may be read as, a person's page: the site names its
policy, licence and redirect targets, so it could name anyone's profile on a platform we hold no agreement with.

Nor is a person's page fetched as a site's file when we may collect the person (``subject.mismatch``): a side
request is not one of the person's requests (no robots.txt rule of the person's origin, no site signal, no wait for
their first page to be read for refusals, no reading of it), and a site's terms are not a person's page.

robots.txt and an origin's well-known signal files (tdmrep.json, ai.txt) are read whatever robots.txt says: that is
how a site's rules are known. Any other document a site names (a ``tdm-policy``, an RSL licence, on its own origin
or anyone's) is a request to that origin like any other: its robots.txt is asked first (``robots_for``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from ..decision import Decision, Evidence, Stage, deny
from ..reasons import ERROR_ROBOTS_MISSING, SUBJECT_MISMATCH
from ..signals.fetch import WELL_KNOWN
from ..signals.policy import SignalsNeeded

if TYPE_CHECKING:
    from ..deciding import Decider
    from ..facts import RequestFacts
    from .fetch import RobotsFile

#: an origin's robots.txt, fetched if need be (None: it could not be had, which denies)
RobotsFor = Callable[[str], Awaitable["RobotsFile | None"]]

#: the paths read whatever robots.txt says: how a site's rules are known
SITE_FILES = frozenset({"/robots.txt", *WELL_KNOWN.values()})


async def hop_decision(decider: Decider, url: str, purpose: str, now: datetime, *, terms_file: bool = False,
                       robots_for: RobotsFor | None = None) -> tuple[Decision, bool]:
    """The decision about ``url`` as a side request's hop, and whether to fetch it. ``terms_file``: ``url`` is
    a site's signal file itself (tdmrep.json, ai.txt, an RSL licence): a terms-stage deny does not stop it either,
    as for ``/robots.txt``. ``robots_for``: ask the URL's origin's robots.txt too, unless it is one of
    :data:`SITE_FILES` (the adapters pass it for signal files, not for robots.txt's own hops)."""
    try:
        facts = decider.engine.facts(url, purpose, now)
    except Exception as exc:  # noqa: BLE001 - an URL we cannot read is not fetched
        cause = Evidence("error", url, {"error": type(exc).__name__, "message": str(exc)[:500]})
        return deny(Stage.ERROR, "error.bad-url", evidence=(cause,)), False
    decision = await decider.decide_consent(facts)
    if decision.allowed and facts.subject is not None:
        return _persons_page(decision, url), False
    fetch = decision.allowed or (decision.stage is Stage.TERMS and decision.reason != "terms.ip-host"
                                 and facts.subject is None and facts.ambiguous is None
                                 and (facts.canonical.path == "/robots.txt" or terms_file))
    if fetch and robots_for is not None and facts.canonical.path not in SITE_FILES:
        ruled = await robots_rule(decider, facts, await robots_for(facts.canonical.origin))
        if ruled is not None:
            return ruled, False
    return decision, fetch


async def robots_rule(decider: Decider, facts: RequestFacts, robots: RobotsFile | None) -> Decision | None:
    """The deny robots.txt gives the URL (the engine's own robots check: ``Disallow``, unreachable, a
    ``Crawl-delay`` over the bound), or None when it lets it through. A URL it denies makes nothing else of the
    site be fetched: not its signal files (the decision never reaches the signals check), not the page."""
    try:
        full = await decider.decide(facts, robots)
    except SignalsNeeded:  # the walk got past robots.txt to the site's signals: robots.txt let it through
        return None
    if not full.allowed and (full.stage is Stage.ROBOTS or full.reason == ERROR_ROBOTS_MISSING):
        return full
    return None


def once_per_origin(fetch: RobotsFor, known: dict[str, RobotsFile | None] | None = None) -> RobotsFor:
    """``fetch`` remembered per origin (outside a crawl, which has its own robots.txt cache); ``known``: the files
    already fetched."""
    known = dict(known or {})

    async def robots_for(origin: str) -> RobotsFile | None:
        if origin not in known:
            known[origin] = await fetch(origin)
        return known[origin]

    return robots_for


def _persons_page(allowed: Decision, url: str) -> Decision:
    """The deny of a side request's hop to a person's page (one we may collect: others are denied as they are)."""
    cause = Evidence("side-request", url, {"cause": "a site's own file (robots.txt, a signal file, a policy or "
                                                    "licence it names) at a URL that names a person"})
    return deny(Stage.SUBJECT, SUBJECT_MISMATCH, subject=allowed.subject, platform=allowed.platform,
                evidence=(*allowed.evidence, cause))


async def hop_refusal(decider: Decider, url: str, purpose: str, now: datetime, *, terms_file: bool = False,
                      robots_for: RobotsFor | None = None) -> Decision | None:
    """The deny that stops fetching ``url`` as a side request's hop, or None to fetch it (:func:`hop_decision`)."""
    decision, fetch = await hop_decision(decider, url, purpose, now, terms_file=terms_file, robots_for=robots_for)
    return None if fetch else decision
