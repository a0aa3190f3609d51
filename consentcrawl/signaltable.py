"""What ``consentcrawl signals`` prints, and the signals ``consentcrawl check --json`` cites: each built-in purpose's
verdict with what every signal said and where (:func:`signal_table`, :func:`signal_report`), decided by the same
pure code a crawl uses (:mod:`consentcrawl.signals.policy`). The files and the page are fetched by
:mod:`consentcrawl.signalcli`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from .errors import ConfigError
from .robots.fetch import RobotsFile
from .robots.hops import robots_rule
from .robots.meta import parse_meta_robots
from .robots.tags import denials, parse_robots_headers
from .signalcli import Page
from .signals.base import SignalResult
from .signals.combine import combine
from .signals.evaluate import SiteFiles, response_results, site_results
from .signals.policy import SignalPolicy, grant_of, spelled_response_decision
from .signals.purposes import BASE_PURPOSES

__all__ = ["robots_denied_table", "signal_report", "signal_table"]


def signal_table(spellings: tuple[tuple[str, str], ...], files: SiteFiles, policy: SignalPolicy, token: str,
                 host: str, platform: Any, purposes: list[str], now: datetime, page: Page | None = None
                 ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """``consentcrawl signals``: per purpose, the outcome a crawl applies to the page, and every signal read.

    Each spelling of the page (:func:`~consentcrawl.signals.evaluate.response_spellings`, the canonical one
    first) is decided as the crawl decides it: before the fetch, the site-level signals, where a deny of any
    spelling wins and, failing that, one spelling whose signals leave it to the default makes the purpose
    ``pending``; with ``page``, the response phase (:func:`spelled_response_decision`). A row decided by another
    spelling than the canonical one names it (``path``), one decided by reading the page in another encoding than
    Scrapy's names that (``encoding``: the page is read in each encoding a spider may read it in, as the crawl
    reads it); the report lists the canonical spelling's signals, then each signal another spelling or encoding
    that decides a row reads differently (with its ``path`` or ``encoding``)."""
    options = policy.options(token, host, platform)
    grant = grant_of(platform)
    per_spelling = [site_results(url, files, options) for _path, url in spellings]
    response: list[SignalResult] = []
    # every encoding the page may be read in (robots.body.reading_encodings), Scrapy's first, as the crawl reads it
    encodings = (page.encodings or (page.encoding,)) if page is not None else ()
    if page is not None:
        headers = list(page.headers.multi_items())
        response = response_results(page.url, headers, page.body, files, options, fetched_at=now,
                                    encoding=encodings[0])
    read_as: dict[str, list[SignalResult]] = {}  #: the readings in another encoding that decide a row
    table: dict[str, dict[str, Any]] = {}
    deciding: dict[int, list[SignalResult]] = {}
    custom = [c.name for c in policy.custom]  # declared purposes of the operator's own: a row each, after ours
    tags, tag_denials = _robots_tags(page, policy, token, purposes, custom, now)
    for purpose in [*purposes, *custom]:
        encoding = None
        if page is not None:
            decided, results, at, encoding = _read_page(spellings, page, encodings, host, headers, files, policy,
                                                        token, purpose, platform, now)
        else:
            decided, at = _before_fetch(per_spelling, purpose, grant, policy)
            results = per_spelling[at or 0]
        row = {"verdict": decided.verdict.value if decided.basis != "pending" else "pending",
               "reason": decided.reason, "basis": decided.basis, "conflicts": list(decided.conflicts)}
        tagged = tag_denials.get(purpose)
        if tagged and (decided.allowed or decided.basis == "default" or (decided.reason or "").startswith("response.")):
            # decided in the response phase: it reads the robots tags before the signals (as judge_page does)
            row.update(verdict="deny", reason=tagged, basis="robots tags")
        if encoding is not None:
            row["encoding"] = encoding
            read_as.setdefault(encoding, results)
        elif at:
            row["path"] = spellings[at][0]
            deciding.setdefault(at, results)
        if purpose in custom:
            row["counts_as"] = sorted(policy.bases(purpose))
        table[purpose] = row
    report = signal_report([*per_spelling[0], *response], purposes) + tags
    for at, results in sorted(deciding.items()):
        report += [{**entry, "path": spellings[at][0]} for entry in signal_report(results, purposes)
                   if entry not in report]
    for encoding, results in read_as.items():
        report += [{**entry, "encoding": encoding} for entry in signal_report(results, purposes)
                   if entry not in report]
    return table, report


def _read_page(spellings: tuple[tuple[str, str], ...], page: Page, encodings: tuple[str, ...], host: str,
               headers: Any, files: SiteFiles, policy: SignalPolicy, token: str, purpose: str, platform: Any,
               now: datetime) -> tuple[Any, list[SignalResult], int | None, str | None]:
    """A purpose's response-phase outcome as the crawl's (``signalphase.check_signals``): the page read in each
    encoding a spider may read it in, the first reading that denies, else Scrapy's; with the encoding that
    decided, where it is not Scrapy's."""
    first = None
    for encoding in encodings:
        decided, results, at = spelled_response_decision(spellings, page.url, host, headers, page.body, encoding,
                                                         files, policy, token, purpose, platform, now)
        if first is None:
            first = (decided, results, at, None)
        if not decided.allowed:
            return decided, results, at, encoding if encoding != encodings[0] else None
    assert first is not None, "a page is read in one encoding at the least"
    return first


async def robots_denied_table(decider: Any, args: Any, facts: Any, robots: RobotsFile | None, config: Any,
                              now: datetime) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]] | None:
    """``consentcrawl signals`` for a URL robots.txt denies (``Disallow``, unreachable, a ``Crawl-delay`` over the
    bound), None for one it lets through. As in a crawl, nothing else of the site is fetched for such a URL (the
    decision never reaches the site's signal files, and the page is not sent), so every purpose is that deny, and
    only what robots.txt itself says is listed. ``--fetch`` stops with the reason (exit 2), as for a page the
    consent checks deny."""
    denied = await robots_rule(decider, facts, robots)
    if denied is None:
        return None
    if args.fetch:
        raise ConfigError(f"not fetched: {denied.reason} (a crawl would not fetch {facts.canonical.url}, nor read the "
                          f"site's signal files for it; `consentcrawl check {args.url}` explains why)",
                          source="--fetch")
    table, report = signal_table(((facts.canonical.path, facts.canonical.url),), SiteFiles(robots),
                                 config.signal_policy, config.token, facts.canonical.host, facts.platform,
                                 sorted(BASE_PURPOSES), now)
    for row in table.values():
        row.update(verdict="deny", reason=denied.reason, basis="robots.txt", conflicts=[])
        row.pop("path", None)
    return table, report


def _robots_tags(page: Page | None, policy: SignalPolicy, token: str, purposes: list[str], custom: list[str],
                 now: datetime) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The page's robots tags (``X-Robots-Tag``, ``Robots-Tag``, meta robots) as a ``signals`` report entry (for
    the built-in ``purposes``, as every entry), and the reason each purpose they deny, declared ``custom`` ones
    included, is denied with (the crawl's ``response.robots-tag`` / ``response.meta-robots``). No page, no entry."""
    if page is None:
        return [], {}
    directives = parse_robots_headers(list(page.headers.multi_items()), token)
    for encoding in page.encodings or (page.encoding,) if page.body is not None else ():
        directives += parse_meta_robots(page.body or b"", token, encoding)
    verdicts: dict[str, str] = {}
    statements: list[dict[str, Any]] = []
    reasons: dict[str, str] = {}
    for purpose in [*purposes, *custom]:
        denied = denials(directives, purpose, now, rules=policy.tag_rules(purpose))
        if denied:
            reasons[purpose] = "response.meta-robots" if denied[0].source == "meta" else "response.robots-tag"
        if purpose in custom:
            continue
        verdicts[purpose] = "deny" if denied else "unknown"
        if denied:
            for raw in dict.fromkeys(d.raw for d in denied):  # one line per header line or tag
                rules = ", ".join(d.name for d in denied if d.raw == raw)
                where = next(d.source for d in denied if d.raw == raw)
                statements.append({"purpose": purpose, "verdict": "deny", "where": where, "raw": raw,
                                   "note": f"denied by {rules}"})
    entry = {"signal": "robots-tags", "level": "response", "source": page.url, "verdicts": verdicts,
             "statements": statements}
    if directives:
        entry["directives"] = sorted({d.name for d in directives})
    return [entry], reasons


def _before_fetch(per_spelling: list[list[SignalResult]], purpose: str, grant: Any,
                  policy: SignalPolicy) -> tuple[Any, int | None]:
    """The site-level outcome of the spellings for one purpose: the first denied, else the first left to the
    default (``pending``: the response phase applies it), else the canonical one's allow."""
    chosen: tuple[Any, int | None] | None = None
    for at, results in enumerate(per_spelling):
        decided = combine(purpose, results, platform=grant, defaults=policy.defaults, custom=policy.custom,
                          before_fetch=True)
        if decided.basis == "pending":
            if chosen is None or chosen[0].basis != "pending":
                chosen = (decided, at or None)
        elif not decided.allowed:
            return decided, at or None
        elif chosen is None:
            chosen = (decided, None)
    assert chosen is not None, "a page has at least one spelling"
    return chosen


def signal_report(results: list[SignalResult], purposes: list[str]) -> list[dict[str, Any]]:
    """Every signal consulted, with its verdict for each purpose and where it was read (JSON-ready)."""
    out = []
    for r in results:
        entry: dict[str, Any] = {
            "signal": r.signal, "level": r.level.value, "source": r.source or None,
            "verdicts": {p: r.verdict(p).value for p in purposes},
            "statements": [{"purpose": f.purpose, "verdict": f.verdict.value, "where": f.statement.where,
                            "raw": f.statement.raw, "note": f.note} for f in r.findings if f.purpose in purposes],
        }
        if r.unavailable is not None:
            entry["unavailable"] = r.unavailable
            entry["covers"] = sorted(r.covers)
        if r.notes:
            entry["notes"] = list(r.notes)
        policies = _cited(r, purposes, "tdm_policy", "url")
        if policies:
            entry["policies"] = policies
        licences = _cited(r, purposes, "licence_held", "reference")
        if licences:
            entry["licences_held"] = licences
        out.append(entry)
    return out


def _cited(result: SignalResult, purposes: list[str], prefix: str, name: str) -> list[dict[str, Any]]:
    """The distinct ``prefix*`` evidence fields of a result's statements (a tdm-policy and what it says, a recorded
    licence and where): the field ``prefix`` itself as ``name``, the others without the prefix."""
    found: dict[str, dict[str, Any]] = {}
    for f in result.findings:
        detail = f.statement.detail
        if f.purpose in purposes and prefix in detail:
            cited = {(name if k == prefix else k[len(prefix) + 1:]): v for k, v in detail.items()
                     if k.startswith(prefix)}
            found.setdefault(json.dumps(cited, sort_keys=True, default=str), cited)
    return list(found.values())
