"""``consentcrawl audit explain ID``: why one request was fetched (or not), from the audit log alone.

ID is a ``decision_id``: the one an audit line carries, or the one an item's provenance field names (the
decision that let the item's page in). The answer is that decision's three authorizations (robots.txt, the
platform's terms with the agreement's reference, the person's authorization record with its id and where the
consent is kept), the operator signals behind it, and the other lines about the same request (its other phases:
the response, the items it produced, a link-check deny in report mode).

The log is read twice, one line at a time: once to find the decision, once for the lines related to it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from ..decision import Evidence
from ..errors import ConfigError
from ..evidence_text import evidence_line
from .report import read_entries, safe

EXIT_FOUND, EXIT_NOT_FOUND, EXIT_USAGE = 0, 1, 2

#: a decision id: 32 hex digits; a UUID's usual spelling with dashes is accepted too
_ID = re.compile(r"[0-9a-f]{32}")
#: the most related lines printed (a URL fetched again and again in a long crawl would otherwise flood)
RELATED = 20

LEGS = (("robots", "robots.txt"), ("platform terms", "platform-authorization"),
        ("person", "subject-authorization"))


def normalize_id(value: str) -> str | None:
    text = value.strip().lower().replace("-", "")
    return text if _ID.fullmatch(text) else None


def find(paths: list[str], decision_id: str) -> tuple[list[tuple[dict[str, Any], str, int]],
                                                      list[tuple[dict[str, Any], str, int]]]:
    """(the lines carrying ``decision_id``, up to :data:`RELATED` other lines about the same URL)."""
    own: list[tuple[dict[str, Any], str, int]] = []
    for entry, (path, line) in read_entries(paths):
        if isinstance(entry, dict) and entry.get("decision_id") == decision_id and "event" not in entry:
            own.append((entry, path, line))
    if not own:
        return [], []
    urls = {u for e, _, _ in own for u in (e.get("url"), e.get("canonical_url")) if isinstance(u, str) and u}
    related: list[tuple[dict[str, Any], str, int]] = []
    for entry, (path, line) in read_entries(paths):
        if not isinstance(entry, dict) or entry.get("decision_id") == decision_id or "event" in entry:
            continue
        if entry.get("url") in urls or entry.get("canonical_url") in urls:
            related.append((entry, path, line))
            if len(related) >= RELATED:
                break
    return own, related


def _evidence(entries: list[dict[str, Any]]) -> list[Evidence]:
    """Each evidence object of the decision's lines once, as :class:`Evidence` (in the order first seen)."""
    seen: list[Evidence] = []
    for entry in entries:
        for raw in entry.get("evidence") or []:
            if not isinstance(raw, dict):
                continue
            detail = {k: v for k, v in raw.items() if k not in ("kind", "source")}
            ev = Evidence(str(raw.get("kind")), str(raw.get("source")), detail)
            if ev not in seen:
                seen.append(ev)
    return seen


def _line(entry: dict[str, Any], path: str, number: int) -> str:
    return (f"  {safe(entry.get('time'))}  {safe(entry.get('phase')):<8} {safe(entry.get('verdict')):<5} "
            f"{safe(entry.get('reason'))}  {safe(entry.get('url'))}  ({safe(path)}:{number})")


def explain_text(own: list[tuple[dict[str, Any], str, int]], related: list[tuple[dict[str, Any], str, int]]) -> str:
    first = own[0][0]
    entries = [e for e, _, _ in own]
    # the send-time line is the authoritative one; a response line with the same id adds the page's robots tags
    main = next((e for e in entries if e.get("phase") == "request"), first)
    verdict = "ALLOWED" if main.get("verdict") == "allow" else "DENIED"
    out = [
        f"decision {safe(main.get('decision_id'))}: {verdict}, {safe(main.get('reason'))} "
        f"(stage {safe(main.get('stage'))}, phase {safe(main.get('phase'))}, mode {safe(main.get('mode'))})",
        f"  time:      {safe(main.get('time'))}",
        f"  url:       {safe(main.get('url'))}",
        f"  canonical: {safe(main.get('canonical_url'))}",
        f"  platform:  {safe(main.get('platform') or '(off platform)')}",
        f"  subject:   {safe(main.get('subject') or '(not a profile URL)')}",
        f"  purpose:   {safe(main.get('purpose'))}",
        "",
        "authorizations",
    ]
    evidence = _evidence(entries)
    for n, (label, kind) in enumerate(LEGS, 1):
        found = [ev for ev in evidence if ev.kind == kind]
        if not found:
            out.append(f"  {n}. {label}: {_missing(kind, main)}")
            continue
        out.append(f"  {n}. {label}:")
        for ev in found:
            out.append("    " + safe(evidence_line(ev).strip(), limit=2000))
        if kind == "subject-authorization":  # a store's own id for the record, when it has one
            out += [f"    record id {safe(ev.detail['record_id'])}" for ev in found if ev.detail.get("record_id")]
    legs = {kind for _, kind in LEGS}
    signals = [ev for ev in evidence if ev.kind not in legs]
    out += ["", "signals and other evidence" if signals else "signals: none cited by this decision"]
    for ev in signals:
        out.append("  " + safe(evidence_line(ev).strip(), limit=2000))
    out += ["", f"lines of this decision ({len(own)})"]
    out += [_line(e, p, n) for e, p, n in own]
    if related:
        out += ["", f"related lines (same URL){' (first ' + str(RELATED) + ')' if len(related) >= RELATED else ''}"]
        out += [_line(e, p, n) for e, p, n in related]
    return "\n".join(out)


def _missing(kind: str, entry: dict[str, Any]) -> str:
    stage = entry.get("stage")
    order = ["robots", "terms", "subject"]
    leg = {"robots.txt": "robots", "platform-authorization": "terms", "subject-authorization": "subject"}[kind]
    if entry.get("verdict") == "deny" and stage in order and order.index(stage) < order.index(leg):
        return f"not reached (denied at {safe(stage)})"
    if leg == "terms" and not entry.get("platform"):
        return "none needed (off platform: robots and the site's signals decide)"
    if leg == "subject" and not entry.get("subject"):
        return "none needed (not a profile URL)"
    return "not in this line's evidence"


def add_explain_parser(audit_subparsers: Any) -> argparse.ArgumentParser:
    """Add ``explain`` to the ``consentcrawl audit`` subcommands."""
    explain = audit_subparsers.add_parser(
        "explain", help="the three authorizations and the signals behind one decision or item")
    explain.add_argument("id", metavar="ID", help="a decision_id, or the decision_id of an item's provenance")
    explain.add_argument("--log", metavar="LOG", action="append",
                         help="audit log to search (repeatable; default: the project's CONSENTCRAWL_AUDIT_LOG)")
    explain.add_argument("--settings", metavar="MODULE", help="Scrapy settings module to read CONSENTCRAWL_* from")
    explain.set_defaults(func=cmd_explain)
    return explain


def cmd_explain(args: argparse.Namespace) -> int:
    import sys

    decision_id = normalize_id(args.id)
    if decision_id is None:
        print(f"consentcrawl: {safe(args.id)!r} is not a decision id (32 hex digits)", file=sys.stderr)
        return EXIT_USAGE
    logs = args.log or [_default_log(args.settings)]
    own, related = find(logs, decision_id)
    if not own:
        print(f"consentcrawl: decision {decision_id} is not in {', '.join(safe(p) for p in logs)}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(explain_text(own, related))
    return EXIT_FOUND


def _default_log(settings_module: str | None) -> str:
    from ..cli import load_settings
    from ..settings import as_settings, read

    path = read(as_settings(load_settings(settings_module)), "CONSENTCRAWL_AUDIT_LOG")
    if not path:
        raise ConfigError("the audit log is off (CONSENTCRAWL_AUDIT_LOG is empty): name one with --log",
                          source="CONSENTCRAWL_AUDIT_LOG")
    if not Path(str(path)).is_file():
        raise ConfigError(f"no audit log at {path}: name one with --log", source="CONSENTCRAWL_AUDIT_LOG")
    return str(path)
