"""The plain-text summary ``consentcrawl audit report`` prints (the figures are :class:`~.report.Summary`'s; what
each means is in docs/audit-report.md). Every text from a log goes through :func:`~.report.safe`."""

from __future__ import annotations

from .report import OFF_PLATFORM, Summary, format_time, replay_warning, safe

__all__ = ["terminal"]


def _person(person: tuple[str, str]) -> str:
    platform, subject = person
    return safe(f"{platform}:{subject}" if platform != OFF_PLATFORM else subject)


def terminal(summary: Summary) -> str:
    """The plain-text summary ``audit report`` prints."""
    s = summary
    out = [f"audit report: {s.decisions} decisions, {sum(s.events.values())} event lines, in "
           f"{len(s.files)} log(s): {', '.join(safe(f) for f in s.files)}"]
    if (replay := replay_warning(s)) is not None:
        out.append(f"  {replay}")
    if s.first is not None and s.last is not None:
        out.append(f"  from {format_time(s.first)} to {format_time(s.last)} ({s.last - s.first:.1f} s)")
    if s.untimed:
        out.append(f"  {s.untimed} decisions without a readable time (left out of the chart over time)")
    if s.purposes:
        out.append("  purpose: " + ", ".join(f"{safe(p or '-')} ({n})" for p, n in s.purposes.most_common()))
    if s.modes.get("report"):
        out.append(f"  report mode: {s.not_enforced} denies recorded but not enforced (only robots.* is)")
    out.append("")
    out.append(f"requests: {s.sent + s.denied_requests} (each counted once: sent, or denied before it was sent)")
    out.append("")
    out.append("fetched")
    out.append(f"  requests allowed at send time:   {s.sent}")
    out.append(f"  responses allowed (cache hits, redirects, robots tags): {s.phases[('response', 'allow')]}")
    out.append(f"  responses denied after fetching: {sum(s.responses_denied.values())}")
    for (_, reason), n in sorted(s.responses_denied.items(), key=lambda kv: (-kv[1], kv[0])):
        out.append(f"    {safe(reason):<36} {n}")
    out.append(f"  people whose pages were fetched: {len(s.fetched_people)}")
    out.append(f"  items kept:                      {s.phases[('item', 'allow')]}, of "
               f"{len(s.collected_people)} people (people collected)")
    out.append("")
    total = s.denied_requests
    out.append(f"denied before sending: {total} requests")
    if not total:
        out.append("  (no denials)")
    for stage in sorted({st for st, _ in s.denied}):
        by_stage = [(r, n) for (st, r), n in s.denials() if st == stage]
        out.append(f"  {safe(stage):<9} {sum(n for _, n in by_stage)}")
        for reason, n in by_stage:
            out.append(f"    {safe(reason):<36} {n}")
    if s.items_denied:
        out.append(f"  items dropped by the guard: {sum(s.items_denied.values())}")
        for (_, reason), n in sorted(s.items_denied.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"    {safe(reason):<36} {n}")
    out.append("")
    out.append("platforms (requests sent / denied before sending)")
    for platform, allowed, denied in s.per_platform():
        out.append(f"  {safe(platform):<24} {allowed:>8} / {denied}")
    top = s.top_denied_people()
    if top:
        out.append("")
        out.append("people with the most denied requests")
        for person, n in top:
            out.append(f"  {_person(person):<32} {n}")
    out.append("")
    subject_revoked = s.denied[("subject", "subject.revoked")]
    out.append(f"withdrawals seen: {len(s.withdrawals)} people ({s.events['withdrawal-seen']} event lines); "
               f"requests denied as revoked: {subject_revoked}")
    if s.signals:
        out.append("signals met (decisions citing them)")
        for (signal, verdict), n in sorted(s.signals.items(), key=lambda kv: (kv[0][0], -kv[1])):
            out.append(f"  {safe(signal):<20} {safe(verdict):<12} {n}")
    else:
        out.append("signals met: none")
    others = {k: v for k, v in s.events.items() if k != "withdrawal-seen"}
    if others:
        out.append("other events: " + ", ".join(f"{safe(k)} {v}" for k, v in sorted(others.items())))
    if s.bad:
        out.append("")
        out.append(f"unreadable lines: {s.bad}")
        for bad in s.bad_lines:
            out.append(f"  {safe(bad.path)}:{bad.line}: {bad.why}")
    return "\n".join(out)
