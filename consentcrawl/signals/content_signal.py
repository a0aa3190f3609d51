"""Cloudflare Content Signals (``Content-Signal: search=yes, ai-input=no, ai-train=no``), resolved per purpose.

- robots.txt: lines inside the user-agent group RFC 9309 selects for our product token (a group naming our token
  overrides ``*``), plus lines written before any group, which apply to every crawler. Read leniently, as
  deployed files require: the misspelt ``Content-Signals:``, names and values in any case, no spaces after commas.
- The same line as a response header (``Content-Signal``), read on the response.
- ``search`` -> search-indexing, ``ai-input`` -> ai-input, ``ai-train`` -> ai-training; ``yes`` allows, ``no``
  denies, anything else (and an omitted signal) neither grants nor restricts.
- ``use=immediate|reference|full`` (2026 extension) limits what may be stored: ``immediate`` means nothing may
  be stored, so a crawl that stores items is denied for every purpose; ``reference`` and ``full`` are recorded.
- Several lines (in the group, before it, in headers) add up: any deny wins.

Decisions where the text is silent: ``y``/``n`` are read like ``yes``/``no``; ``;`` separates like ``,``;
``_`` in a name reads as ``-`` (``ai_train``); ``use=reference`` does not deny (only ``immediate`` is defined to
forbid storing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..robots.fetch import RobotsFile, RobotsStatus
from ._common import header_lines
from .base import Finding, Level, SignalResult, SignalVerdict, Statement
from .purposes import BASE_PURPOSES, VOCABULARY

__all__ = ["ContentSignals", "parse_content_signal", "response_content_signal", "site_content_signal"]

SIGNAL = "content-signal"
LABELS = VOCABULARY["content-signal"]
NAMES = ("content-signal", "content-signals")
_YES = frozenset({"yes", "y"})
_NO = frozenset({"no", "n"})
_SPLIT = re.compile(r"[,;]")
USES = frozenset({"immediate", "reference", "full"})


@dataclass(frozen=True)
class ContentSignals:
    """One parsed line: label -> True (yes), False (no) or None (another value); ``use`` when given."""

    labels: Mapping[str, bool | None] = field(default_factory=dict)
    use: str | None = None
    ignored: tuple[str, ...] = ()  #: parts that are not ``name=value`` or name no signal we know


def parse_content_signal(value: str) -> ContentSignals:
    """Parse a Content-Signal value. Never raises; later duplicates of a name are most-restrictive-combined."""
    labels: dict[str, bool | None] = {}
    use: str | None = None
    ignored: list[str] = []
    if not isinstance(value, str):
        return ContentSignals()
    for part in _SPLIT.split(value[:8192]):
        part = part.strip()
        if not part:
            continue
        name, eq, val = part.partition("=")
        name = name.strip().lower().replace("_", "-")
        val = val.strip().strip('"').strip().lower()
        if not eq or not name:
            ignored.append(part[:60])
            continue
        if name == "use":
            if val in USES:
                use = val if use != "immediate" else use
            else:
                ignored.append(part[:60])
            continue
        if name not in LABELS:
            ignored.append(part[:60])
            continue
        reading = True if val in _YES else False if val in _NO else None
        if name not in labels or labels[name] is None:
            labels[name] = reading
        elif reading is False:  # a repeated name: the most restrictive reading stands
            labels[name] = False
    return ContentSignals(labels, use, tuple(ignored))


def _findings(parsed: ContentSignals, statement: Statement, stores_items: bool) -> list[Finding]:
    out: list[Finding] = []
    for label, value in parsed.labels.items():
        for purpose in sorted(LABELS[label]):
            if value is None:
                out.append(Finding(purpose, SignalVerdict.UNKNOWN, statement, f"{label}: neither yes nor no"))
            else:
                verdict = SignalVerdict.ALLOW if value else SignalVerdict.DENY
                out.append(Finding(purpose, verdict, statement, f"{label}={'yes' if value else 'no'}"))
    if parsed.use == "immediate":
        for purpose in sorted(BASE_PURPOSES):
            if stores_items:
                out.append(Finding(purpose, SignalVerdict.DENY, statement,
                                   "use=immediate: nothing may be stored, and this crawl stores items"))
            else:
                out.append(Finding(purpose, SignalVerdict.UNKNOWN, statement,
                                   "use=immediate: this crawl stores nothing"))
    return out


def _detail(parsed: ContentSignals) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    if parsed.use:
        detail["use"] = parsed.use
    if parsed.ignored:
        detail["ignored"] = list(parsed.ignored)
    return detail


def site_content_signal(robots: RobotsFile | None, token: str, *, stores_items: bool = True) -> SignalResult:
    """The robots.txt Content-Signal lines that apply to product ``token`` (its group, and lines before any)."""
    if robots is None or robots.status is not RobotsStatus.OK:
        return SignalResult(SIGNAL, Level.SITE, source=robots.url if robots else "",
                            fetched_at=robots.fetched_at if robots else None)
    lines: list[tuple[int, str, str]] = []
    for name in NAMES:
        lines += [(n, v, "before any group") for n, v in robots.rules.preamble_lines(name)]
        lines += [(n, v, "group") for n, v in robots.rules.group_lines(token, name)]
    findings: list[Finding] = []
    for number, value, scope in sorted(lines):
        parsed = parse_content_signal(value)
        statement = Statement(SIGNAL, Level.SITE, robots.url, f"line {number}", f"Content-Signal: {value}",
                              robots.fetched_at, {"scope": scope, **_detail(parsed)})
        findings += _findings(parsed, statement, stores_items)
    return SignalResult(SIGNAL, Level.SITE, tuple(findings), source=robots.url, fetched_at=robots.fetched_at)


def response_content_signal(url: str, headers: Any, *, fetched_at: datetime | None = None,
                            stores_items: bool = True) -> SignalResult:
    """The ``Content-Signal`` header lines of a response (also the misspelt ``Content-Signals``)."""
    findings: list[Finding] = []
    for _l, name, value in header_lines(headers, frozenset(NAMES)):
        parsed = parse_content_signal(value)
        statement = Statement(SIGNAL, Level.RESPONSE, url, f"header {name}", value, fetched_at, _detail(parsed))
        findings += _findings(parsed, statement, stores_items)
    return SignalResult(SIGNAL, Level.RESPONSE, tuple(findings), source=url, fetched_at=fetched_at)
