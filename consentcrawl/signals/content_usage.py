"""IETF AIPREF usage preferences (draft-ietf-aipref-vocab-07, draft-ietf-aipref-attach-05): the ``Content-Usage``
header and the robots.txt ``Content-Usage`` rule, resolved per purpose.

- The header is an RFC 9651 Dictionary, parsed with ``http-sf`` (the maintained parser; ``http-sfv`` is
  deprecated). Several header lines are one field, joined with commas as RFC 9110 §5.3 says. Keys are
  case-sensitive; a value is the token ``y`` (allow) or ``n`` (disallow), anything else is unknown (a string
  ``"n"``, a boolean, an inner list); unknown keys and all parameters are ignored; the last duplicate key wins
  (RFC 9651 §4.2.2). A field that does not parse (an upper-case key, a trailing comma) is unknown as a whole.
- The robots.txt rule ``Content-Usage: PATH PREFS`` lives in a group: the group RFC 9309 selects for our product
  token (:meth:`~consentcrawl.robots.rules.RobotsRules.group_lines`). For a path, the rule with the longest
  matching path pattern applies (robots matching: ``*``, ``$``, length of the encoded pattern); rules of the same
  length apply together and the most restrictive wins (vocab §7.1); rules apply only to paths the group lets us
  crawl.
- Categories: ``train-ai`` (ai-training), ``search`` (search-indexing). Older drafts' labels (``ai``, ``all``,
  ``bots``, ``train-genai``, ``ai-use``) deny in conservative mode only, say so in the evidence, and never allow.
- Header and robots rule combine like any two statements: any deny wins.

Decisions where the drafts are silent: a robots rule without a path (``Content-Usage: train-ai=n``) is read as
path ``/`` for its denials only, with a note (a malformed line never allows); a longest rule that does not parse
makes the preferences unknown, as the draft says, and the evidence says which line did it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import http_sf

from ..robots.fetch import RobotsFile, RobotsStatus
from ._common import PagePath, PathPattern, header_lines, normal_path, url_path
from .base import Finding, Level, SignalResult, SignalVerdict, Statement
from .purposes import VOCABULARY

__all__ = ["UsagePreferences", "parse_content_usage", "response_content_usage", "selected_rules",
           "site_content_usage", "usage_rules"]

SIGNAL = "content-usage"
CATEGORIES = VOCABULARY["content-usage"]
LEGACY = VOCABULARY["content-usage-legacy"]
_WS = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class UsagePreferences:
    """One parsed preference expression: label -> ``"y"``, ``"n"`` or None (unknown), for the labels we read."""

    labels: Mapping[str, str | None] = field(default_factory=dict)
    valid: bool = True
    error: str | None = None


def parse_content_usage(value: bytes | str) -> UsagePreferences:
    """Parse an AIPREF preference expression (vocab §6). Never raises; invalid -> ``valid=False``, all unknown."""
    try:
        data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)
        parsed = http_sf.parse(data, tltype="dictionary")
    except Exception as exc:  # noqa: BLE001 - http_sf raises its own error, and anything else is no statement
        return UsagePreferences(valid=False, error=f"not a structured-field dictionary ({str(exc)[:120]})")
    if not isinstance(parsed, dict):
        return UsagePreferences(valid=False, error="not a structured-field dictionary")
    labels: dict[str, str | None] = {}
    for key in (*CATEGORIES, *LEGACY):
        if key not in parsed:
            continue
        member = parsed[key]
        item = member[0] if isinstance(member, tuple) else member
        labels[key] = str(item) if isinstance(item, http_sf.Token) and str(item) in ("y", "n") else None
    return UsagePreferences(labels)


def _findings(prefs: UsagePreferences, statement: Statement, conservative: bool, *,
              deny_only: bool = False) -> list[Finding]:
    out: list[Finding] = []
    if not prefs.valid:
        return out
    for label, value in prefs.labels.items():
        if label in CATEGORIES:
            if value is None:
                note = f"{label}: not the token y or n (unknown)"
                out += [Finding(p, SignalVerdict.UNKNOWN, statement, note) for p in sorted(CATEGORIES[label])]
            elif value == "y" and deny_only:
                out += [Finding(p, SignalVerdict.UNKNOWN, statement, f"{label}=y on a rule without a path: ignored")
                        for p in sorted(CATEGORIES[label])]
            else:
                verdict = SignalVerdict.ALLOW if value == "y" else SignalVerdict.DENY
                out += [Finding(p, verdict, statement, f"{label}={value}") for p in sorted(CATEGORIES[label])]
            continue
        purposes = sorted(LEGACY[label])
        if value == "n" and conservative:
            note = f"legacy label {label}=n (older AIPREF drafts): a denial in conservative mode"
            out += [Finding(p, SignalVerdict.DENY, statement, note) for p in purposes]
        elif value == "n":
            note = f"legacy label {label}=n ignored: conservative mode is off"
            out += [Finding(p, SignalVerdict.UNKNOWN, statement, note) for p in purposes]
        else:
            note = f"legacy label {label}={value or '?'}: never an allow"
            out += [Finding(p, SignalVerdict.UNKNOWN, statement, note) for p in purposes]
    return out


def response_content_usage(url: str, headers: Any, *, fetched_at: datetime | None = None,
                           conservative: bool = True) -> SignalResult:
    """The ``Content-Usage`` header(s) of a response."""
    lines = [(name, value) for _l, name, value in header_lines(headers, frozenset({"content-usage"}))]
    if not lines:
        return SignalResult(SIGNAL, Level.RESPONSE, source=url, fetched_at=fetched_at)
    joined = ", ".join(value for _n, value in lines)
    prefs = parse_content_usage(joined)
    statement = Statement(SIGNAL, Level.RESPONSE, url, "header Content-Usage", joined, fetched_at,
                          {"lines": len(lines)} if len(lines) > 1 else {})
    notes = (f"header Content-Usage ignored as a whole: {prefs.error}",) if not prefs.valid else ()
    return SignalResult(SIGNAL, Level.RESPONSE, tuple(_findings(prefs, statement, conservative)), source=url,
                        fetched_at=fetched_at, notes=notes)


@dataclass(frozen=True)
class _Rule:
    line: int
    raw: str
    pattern: PathPattern
    prefs: UsagePreferences
    pathless: bool


def _rules(robots: RobotsFile, token: str) -> tuple[list[_Rule], list[str]]:
    rules: list[_Rule] = []
    notes: list[str] = []
    for line, value in robots.rules.group_lines(token, "content-usage"):
        value = value.strip()
        if value[:1] in ("/", "*"):
            parts = _WS.split(value, maxsplit=1)
            path, prefs_text = parts[0], (parts[1] if len(parts) > 1 else "")
            pathless = False
        else:
            path, prefs_text, pathless = "/", value, True
            notes.append(f"line {line}: Content-Usage without a path, read as '/' for its denials only")
        prefs = parse_content_usage(prefs_text)
        if not prefs.valid:
            notes.append(f"line {line}: preferences ignored: {prefs.error}")
        rules.append(_Rule(line, f"Content-Usage: {value}", PathPattern(path), prefs, pathless))
    return rules, notes


def usage_rules(robots: RobotsFile, token: str) -> list[_Rule]:
    """The ``Content-Usage`` rules of the group robots.txt selects for ``token`` (robots.txt read already)."""
    return _rules(robots, token)[0]


def selected_rules(rules: list[_Rule], path: str | PagePath) -> list[_Rule]:
    """The rules that apply to ``path`` (on a crawlable path): those with the longest matching pattern, together.
    Nothing else of the path counts, so two paths that select the same rules have the same outcome."""
    normal = path.normal if isinstance(path, PagePath) else normal_path(path)
    longest, chosen = -1, []
    for rule in rules:  # one pass: this runs for every new URL of a site with rules
        pattern = rule.pattern
        if pattern.matches_normal(normal):
            if pattern.length > longest:
                longest, chosen = pattern.length, [rule]
            elif pattern.length == longest:
                chosen.append(rule)
    return chosen


def site_content_usage(robots: RobotsFile | None, url: str, token: str, *, conservative: bool = True) -> SignalResult:
    """The robots.txt ``Content-Usage`` rules that apply to ``url`` for product ``token``."""
    if robots is None or robots.status is not RobotsStatus.OK:
        return SignalResult(SIGNAL, Level.SITE, source=robots.url if robots else "",
                            fetched_at=robots.fetched_at if robots else None)
    rules, notes = _rules(robots, token)
    base = SignalResult(SIGNAL, Level.SITE, source=robots.url, fetched_at=robots.fetched_at, notes=tuple(notes))
    if not rules:
        return base
    path = url_path(url)
    crawl = robots.rules.match(path, token)
    if not crawl.allowed:
        return SignalResult(SIGNAL, Level.SITE, source=robots.url, fetched_at=robots.fetched_at,
                            notes=(*notes, f"{path} may not be crawled: no usage preferences apply"))
    chosen = selected_rules(rules, path)
    if not chosen:
        return base
    findings: list[Finding] = []
    for rule in chosen:
        detail: dict[str, Any] = {"rule_path": rule.pattern.pattern}
        if len(chosen) > 1:
            detail["same_path_rules"] = [r.line for r in chosen]
        statement = Statement(SIGNAL, Level.SITE, robots.url, f"line {rule.line}", rule.raw, robots.fetched_at,
                              detail)
        findings += _findings(rule.prefs, statement, conservative, deny_only=rule.pathless)
    return SignalResult(SIGNAL, Level.SITE, tuple(findings), source=robots.url, fetched_at=robots.fetched_at,
                        notes=tuple(notes))
