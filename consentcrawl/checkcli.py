"""``consentcrawl check URL``: one URL decided outside a crawl, as a crawl decides it.

The same engine (:func:`consentcrawl.config.build_decider`), the same order of checks, the site's files fetched
when a check needs them, each side request's hop decided first; with ``--fetch`` the page too, read for its
person's refusals and its response-level signals. Fetch-through services decide their embedded page through
:func:`check_signals` too (:mod:`consentcrawl.fetchthrough`).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from . import __version__
from .commandloop import run_async
from .config import ConsentConfig, build_decider, settings_crawler
from .decision import Decision
from .errors import ConfigError
from .evidence_text import decision_text

if TYPE_CHECKING:
    from datetime import datetime

    from .deciding import Decider
    from .robots.fetch import RobotsFile
    from .robots.hops import RobotsFor
    from .signalcli import HopCheck

EXIT_ALLOWED, EXIT_DENIED = 0, 1


def side_fetchers(config: ConsentConfig, decider: Decider, now: datetime,
                  known: dict[str, RobotsFile | None] | None = None) -> tuple[RobotsFor, HopCheck]:
    """What a command outside a crawl fetches a site's own files with: robots.txt once per origin (``known``: the
    files already in hand), and the check before each hop of a side request (a signal file, a policy, a page), each
    decided as the crawl decides its side requests."""
    from .robots.hops import hop_refusal, once_per_origin
    from .robots.httpfetch import fetch_robots

    user_agent = f"{config.token}/{__version__}"

    async def robots_hop(url: str) -> str | None:
        refused = await hop_refusal(decider, url, config.purpose, now)
        return refused.reason if refused is not None else None

    robots_for = once_per_origin(lambda origin: fetch_robots(origin, user_agent=user_agent, now=now,
                                                             may_fetch=robots_hop), known)

    async def may_fetch(url: str, own: bool = False) -> str | None:
        refused = await hop_refusal(decider, url, config.purpose, now, terms_file=own, robots_for=robots_for)
        return refused.reason if refused is not None else None

    return robots_for, may_fetch


async def robots_for_check(config: ConsentConfig, decider: Decider, origin: str, now: datetime) -> RobotsFile | None:
    """The origin's robots.txt as ``check`` fetches it: each redirect hop decided as the crawl decides it."""
    robots_for, _ = side_fetchers(config, decider, now)
    return await robots_for(origin)


def cmd_check(args: argparse.Namespace) -> int:
    from .cli import settings_for

    # every setting: the checks and a store named by import path are built with from_crawler, as in a crawl
    settings = settings_for(args, everything=True)
    crawler = settings_crawler(settings)
    if not args.purpose and not settings.get("CONSENTCRAWL_PURPOSE"):  # a spider's purpose is nothing to `check`
        raise ConfigError("no purpose: give --purpose (research, search-indexing, ...), or set CONSENTCRAWL_PURPOSE "
                          "in the settings", source="--purpose")
    config = ConsentConfig.from_settings(settings, purpose=args.purpose, crawler=crawler, purpose_source="--purpose")
    if not len(config.platforms):
        raise ConfigError("no platform configured: give --platforms FILE or --settings MODULE, or run inside a "
                          "project whose CONSENTCRAWL_PLATFORMS (or settings/platforms.yaml) names them",
                          source="CONSENTCRAWL_PLATFORMS")
    decider = build_decider(config, crawler)
    now = config.now()
    try:
        facts = decider.engine.facts(args.url, config.purpose, now, args.subject)
    except ValueError as exc:
        raise ConfigError(f"cannot check {args.url!r}: {exc}", source="URL") from None

    consulted: list[Any] = []
    refusals: list[dict[str, Any]] = []

    async def decide() -> Decision:
        robots = await robots_for_check(config, decider, facts.canonical.origin, now)
        return await check_signals(args, config, decider, facts, robots, now, consulted, refusals)

    decision = run_async(decide, decider.store)
    if args.json:
        out = decision.to_dict()
        out.update(url=args.url, canonical_url=facts.canonical.url, purpose=config.purpose,
                   time=now.isoformat(), token=config.token, signals=consulted)
        if args.fetch:
            out["refusals_on_page"] = refusals
        print(json.dumps(out, indent=2, default=str))
    else:
        print(decision_text(decision, args.url, facts.canonical.url, config.purpose,
                            as_of=config.fixed_now.isoformat() if config.fixed_now else None))
    return EXIT_ALLOWED if decision.allowed else EXIT_DENIED


async def check_signals(args: argparse.Namespace, config: ConsentConfig, decider: Any, facts: Any, robots: Any,
                        now: Any, consulted: list[Any], refusals: list[dict[str, Any]] | None = None) -> Decision:
    """The full decision as a crawl makes it: the site's signal files fetched when the decision reaches the
    signals check; with ``--fetch`` the page too, and, in the crawl's order, the refusals its person published
    there, its robots tags and its response-level signals. ``consulted`` gets every signal read, with its
    verdict; ``refusals`` every refusal read on the page."""
    from .fetchthrough import checked_through
    from .signalcli import (
        ACTIVITYPUB,
        fetch_page,
        fetch_site_files,
        judge_linked_actor,
        judge_page,
        judge_refusals,
        refuse_fetch,
    )
    from .signals.evaluate import spelled_urls
    from .signals.policy import SignalsNeeded, spelled_site_decision
    from .signaltable import signal_report

    user_agent = f"{config.token}/{__version__}"
    _robots_for, may_fetch = side_fetchers(config, decider, now, {facts.canonical.origin: robots})

    policy = config.signal_policy
    try:
        return await checked_through(config, decider, facts, await decider.decide(facts, robots), now)
    except SignalsNeeded as need:
        files = await fetch_site_files(need.origin, robots, policy, user_agent=user_agent, now=now,
                                       may_fetch=may_fetch)
    decision: Decision = await checked_through(config, decider, facts, await decider.decide(facts, robots, files), now)
    # what each signal said, for the spelling of the page that decided (the first one denied, else the canonical)
    _decided, results, _at = spelled_site_decision(spelled_urls(facts.canonical, facts.robots_paths),
                                                   facts.canonical.host, files, policy, config.token,
                                                   config.purpose, facts.platform)
    if decision.allowed and getattr(args, "fetch", False):
        await refuse_fetch(decider, args.url, config.purpose, getattr(args, "subject", None))  # now, not --now's
        try:
            page = await fetch_page(facts.canonical.url, user_agent=user_agent,
                                    accept=ACTIVITYPUB if getattr(args, "activitypub", False) else None,
                                    limit=config.download_maxsize)
        except Exception as exc:  # noqa: BLE001 - a page we could not read is reported, not judged
            raise ConfigError(f"cannot fetch {facts.canonical.url}: {type(exc).__name__}: {exc}",
                              source="--fetch") from None
        decision, found, actor = judge_refusals(decision, page, decider.engine, config.token, config.purpose, facts,
                                                now)
        if actor is not None and decision.allowed:  # as a crawl does: the actor the profile links to
            decision, more = await judge_linked_actor(decision, actor, decider, robots, files, config.token,
                                                      config.purpose, facts, now, user_agent=user_agent,
                                                      limit=config.download_maxsize)
            found += more
        if refusals is not None:
            refusals += found
        if decision.allowed:
            decision, read = await judge_page(decision, page, files, policy, config.token, config.purpose,
                                              facts, now, user_agent=user_agent, may_fetch=may_fetch)
            results = read or results  # none read: the robots tags denied first, the site's signals stand
    consulted += signal_report(results, sorted(_base_purposes(config)))
    return decision


def _base_purposes(config: ConsentConfig) -> set[str]:
    from .signals.purposes import base_purposes

    return set(base_purposes(config.purpose, config.signal_policy.custom))
