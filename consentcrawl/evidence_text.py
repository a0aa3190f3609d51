"""Decisions and their evidence as text a person reads: ``consentcrawl check`` prints a decision this way, and
``consentcrawl audit explain`` prints the evidence of logged decisions with the same lines, so both commands
describe a robots.txt rule, a platform agreement or a person's record in the same words."""

from __future__ import annotations

from typing import Any

from .decision import Decision


def decision_text(decision: Decision, url: str, canonical: str, purpose: str, as_of: str | None = None) -> str:
    """A human-readable account of a decision, stage by stage; ``as_of``, the fixed time it was decided at (a
    replay), heads it, so that a pasted account of a replay is not read as today's."""
    lines = [
        *([f"as of:      {as_of} (a fixed time, --now or CONSENTCRAWL_NOW: not the clock)"] if as_of else []),
        f"URL:        {url}",
        f"canonical:  {canonical}",
        f"purpose:    {purpose}",
        f"platform:   {decision.platform or '(none configured for this host)'}",
        f"subject:    {decision.subject or '(not a profile URL)'}",
        "",
    ]
    for ev in decision.evidence:
        lines.append(evidence_line(ev))
    verdict = "ALLOWED" if decision.allowed else "DENIED"
    lines += ["", f"{verdict}: {decision.reason} (stage {decision.stage.value}, decision {decision.decision_id})"]
    return "\n".join(lines)


def evidence_line(ev: Any) -> str:
    d = ev.detail
    if ev.kind == "robots.txt" and "robots_status" in d:
        where = f"robots.txt {ev.source}"
        if d.get("final_url"):
            where += f" -> {d['final_url']}"
        status = f"HTTP {d['http_status']}" if d.get("http_status") is not None else "no answer"
        parts = [f"{where}: {d['robots_status']} ({status}, fetched {d.get('fetched_at')}"
                 + (f", {d['size']} bytes" if "size" in d else "") + ")"]
        if d.get("group") is not None:
            parts.append(f"group 'User-agent: {d['group']}' (line {d.get('group_line')})")
        if d.get("rule"):
            parts.append(f"rule '{d['rule']}' (line {d.get('line')}) for {d.get('path')}")
        elif d.get("robots_status") == "ok":
            parts.append(f"no rule matches {d.get('path')}")
        for key in ("cause", "stale", "crawl_delay", "redirects", "warnings"):
            if d.get(key):
                parts.append(f"{key.replace('_', '-')}: {d[key]}")
        return "  [robots]   " + "; ".join(parts)
    if ev.kind == "platform-authorization":
        if d.get("authorization") is None and "reference" not in d:
            return f"  [terms]    platform {d.get('platform')} ({ev.source}): no authorization"
        return (f"  [terms]    platform {d.get('platform')} ({ev.source}): {d.get('reference')!r}, purposes "
                f"{', '.join(d.get('purposes') or [])}, valid {d.get('valid_from')} .. {d.get('valid_until')}")
    if ev.kind == "subject-authorization":
        if d.get("records") == 0:
            return f"  [subject]  no authorization record for {d.get('platform')}:{d.get('subject')} in {ev.source}"
        state = f"revoked {d['revoked_at']}" if d.get("revoked_at") else f"expires {d.get('expires_at') or 'never'}"
        return (f"  [subject]  record {ev.source}: purposes {', '.join(d.get('purposes') or [])}, granted "
                f"{d.get('granted_at')}, {state}; evidence {d.get('evidence')!r}")
    detail = ", ".join(f"{k}={v}" for k, v in d.items() if v not in (None, "", []))
    return f"  [{ev.kind}] {ev.source}: {detail}"
