"""The HTML audit report: one self-contained page, charts drawn as inline SVG here in Python.

No script, no stylesheet or font from elsewhere: the page works offline and from an e-mail attachment, and its
Content-Security-Policy forbids every fetch and every script, so even a mistake in escaping could not run code.
Every string that comes from a log (URLs, subject ids, reasons, file names) goes through :func:`esc`.

Each chart is a ``<figure class="chart" data-chart="NAME">`` whose ``<svg class="plot">`` holds the bars
(``<rect class="bar">``) or, when there is nothing to draw, an explicit empty state (``data-empty="true"`` and a
sentence saying so): a chart never silently shows a blank box.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

from .report import OFF_PLATFORM, Summary, format_time, replay_warning, safe

#: verdict colours, and a colour per stage (the stage of a reason is the part before its first dot)
ALLOW, DENY = "#2e7d32", "#c62828"
STAGE_COLOURS = {"robots": "#6a1b9a", "terms": "#ef6c00", "subject": "#c62828", "response": "#1565c0",
                 "error": "#37474f"}
OTHER = "#00838f"
#: what the page is allowed to load: nothing, and its own inline style
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

WIDTH = 880
LABEL = 300  #: width of the label column of a bar chart
ROW = 22  #: height of one bar chart row
MAX_ROWS = 30  #: rows of a bar chart; the rest are summed in a last grey row
FONT = "font-family:DejaVu Sans,Liberation Sans,Arial,sans-serif"


def esc(value: Any) -> str:
    """Text from a log, safe in HTML text and in a quoted attribute (and without control characters)."""
    return html.escape(safe(value, limit=300), quote=True)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _fmt(n: float) -> str:
    return f"{int(n):,}".replace(",", " ")


def _empty(name: str, message: str, height: int = 120) -> str:
    return (f'<svg class="plot" data-chart="{name}" data-bars="0" data-empty="true" width="{WIDTH}" '
            f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{esc(message)}">'
            f'<rect x="0.5" y="0.5" width="{WIDTH - 1}" height="{height - 1}" fill="none" stroke="#bbb" '
            f'stroke-dasharray="4 4"/>'
            f'<text x="{WIDTH // 2}" y="{height // 2 + 5}" text-anchor="middle" fill="#777" font-size="15">'
            f'{esc(message)}</text></svg>')


def bar_chart(name: str, rows: list[tuple[str, list[tuple[int, str, str]]]], empty: str) -> str:
    """Horizontal bars: one row per label (the first :data:`MAX_ROWS`), each a stack of (value, colour, what)."""
    rows = [r for r in rows if sum(v for v, _, _ in r[1]) > 0]
    if not rows:
        return _empty(name, empty)
    if len(rows) > MAX_ROWS:
        rest = sum(v for _, segs in rows[MAX_ROWS - 1:] for v, _, _ in segs)
        rows = [*rows[:MAX_ROWS - 1], (f"{len(rows) - MAX_ROWS + 1} more", [(rest, "#9e9e9e", "together")])]
    top = max(sum(v for v, _, _ in segs) for _, segs in rows)
    span = WIDTH - LABEL - 70
    height = ROW * len(rows) + 10
    parts = [f'<svg class="plot" data-chart="{name}" data-bars="{len(rows)}" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" role="img">']
    for i, (label, segs) in enumerate(rows):
        y = 5 + i * ROW
        parts.append(f'<text x="{LABEL - 8}" y="{y + 15}" text-anchor="end" font-size="12" fill="#222">'
                     f'<title>{esc(label)}</title>{esc(_short(label))}</text>')
        x = float(LABEL)
        for value, colour, what in segs:
            if value <= 0:
                continue
            w = max(value / top * span, 1.5)
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{ROW - 6}" '
                         f'fill="{colour}"><title>{esc(label)}: {esc(what)} {_fmt(value)}</title></rect>')
            x += w
        total = sum(v for v, _, _ in segs)
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}" font-size="12" fill="#444">{_fmt(total)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def timeline_chart(summary: Summary) -> str:
    """Decisions over time, a stacked column per time bucket: allows below, denies on top."""
    width, rows = summary.timeline()
    if not rows:
        return _empty("timeline", "No decisions with a readable time in these logs")
    height, left, bottom, top_pad = 260, 60, 40, 12
    plot_w, plot_h = WIDTH - left - 20, height - bottom - top_pad
    peak = max(a + d for _, a, d in rows) or 1
    step = plot_w / len(rows)
    parts = [f'<svg class="plot" data-chart="timeline" data-bars="{len(rows)}" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" role="img">']
    for frac in (0, 0.5, 1):
        y = top_pad + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{WIDTH - 20}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#555">'
                     f'{_fmt(peak * frac)}</text>')
    for i, (start, allows, denies) in enumerate(rows):
        x = left + i * step + step * 0.1
        w = max(step * 0.8, 1.0)
        base = float(top_pad + plot_h)
        when = _stamp(start, width)
        for value, colour, what in ((allows, ALLOW, "allowed"), (denies, DENY, "denied")):
            if not value:
                continue
            h = max(value / peak * plot_h, 1.0)
            base -= h
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{base:.1f}" width="{w:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{when}: {what} {_fmt(value)}</title></rect>')
    parts.append(f'<line x1="{left}" x2="{WIDTH - 20}" y1="{top_pad + plot_h}" y2="{top_pad + plot_h}" '
                 f'stroke="#888"/>')
    for i in sorted({0, len(rows) // 2, len(rows) - 1}):
        x = left + i * step + step / 2
        anchor = "start" if i == 0 else "end" if i == len(rows) - 1 and len(rows) > 1 else "middle"
        parts.append(f'<text x="{x:.1f}" y="{height - 20}" text-anchor="{anchor}" font-size="11" fill="#555">'
                     f'{_stamp(rows[i][0], width)}</text>')
    parts.append(f'<text x="{WIDTH - 20}" y="{height - 4}" text-anchor="end" font-size="11" fill="#777">'
                 f'one column = {_duration(width)} (UTC)</text>')
    parts.append("</svg>")
    return "".join(parts)


def _stamp(ts: float, width: float) -> str:
    try:
        when = datetime.fromtimestamp(ts, timezone.utc)
    except (ValueError, OverflowError, OSError):  # a slice starting before year 1 (an edited log)
        return f"{ts:.0f} s"
    if width < 1:
        return when.strftime("%H:%M:%S.") + f"{when.microsecond // 10000:02d}"
    if width < 60:
        return when.strftime("%H:%M:%S")
    if width < 86400:
        return when.strftime("%m-%d %H:%M")
    return when.strftime("%Y-%m-%d")


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds * 1000:g} ms"


def _legend(entries: list[tuple[str, str]]) -> str:
    return '<p class="legend">' + " ".join(
        f'<span><i style="background:{colour}"></i>{esc(label)}</span>' for label, colour in entries) + "</p>"


def _figure(name: str, title: str, svg: str, legend: str = "", note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return (f'<figure class="chart" id="chart-{name}" data-chart="{name}"><h2>{esc(title)}</h2>{legend}{svg}'
            f'{note_html}</figure>')


def _table(head: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def render(summary: Summary) -> str:
    """The whole page."""
    s = summary
    cards = [
        ("decisions", s.decisions), ("requests sent", s.sent), ("requests denied", s.denied_requests),
        ("responses denied after fetching", sum(s.responses_denied.values())),
        ("items kept", s.phases[("item", "allow")]), ("people collected", len(s.collected_people)),
        ("platforms", len(s.per_platform())), ("withdrawals seen", len(s.withdrawals)),
    ]
    cards_html = "".join(f'<div class="card"><b>{_fmt(v)}</b><span>{esc(k)}</span></div>' for k, v in cards)
    span = f"{format_time(s.first)} to {format_time(s.last)}" if s.first is not None else ""

    stages = sorted({st for st, _ in s.denied})
    denial_rows = [(f"{reason}", [(n, STAGE_COLOURS.get(stage, OTHER), f"stage {stage}")])
                   for (stage, reason), n in s.denials()]
    platform_rows = [(p, [(a, ALLOW, "sent"), (d, DENY, "denied")]) for p, a, d in s.per_platform()]
    people_rows = [(f"{p}:{sub}" if p != OFF_PLATFORM else sub, [(n, DENY, "denied")])
                   for (p, sub), n in s.top_denied_people()]

    charts = [
        _figure("timeline", "Decisions over time, by verdict", timeline_chart(s),
                _legend([("allowed", ALLOW), ("denied", DENY)])),
        _figure("denials", "Denials by stage and reason", bar_chart("denials", denial_rows, "No denials"),
                _legend([(st, STAGE_COLOURS.get(st, OTHER)) for st in stages]),
                note="Requests and links denied before they were sent, each once (responses denied after "
                     "fetching and item decisions are listed below)." if denial_rows else ""),
        _figure("platforms", "Requests per platform", bar_chart("platforms", platform_rows, "No requests"),
                _legend([("sent", ALLOW), ("denied before sending", DENY)])),
        _figure("people", "People with the most denied requests",
                bar_chart("people", people_rows, "No denied request named a person"),
                note="Subject ids only: the audit log never holds a person's data."),
    ]

    tables = []
    if s.responses_denied:
        tables.append("<h2>Responses denied after fetching</h2>" + _table(
            ["stage", "reason", "responses"],
            [[st, r, n] for (st, r), n in sorted(s.responses_denied.items(), key=lambda kv: -kv[1])]))
    if s.items_denied:
        tables.append("<h2>Items dropped by the guard pipeline</h2>" + _table(
            ["stage", "reason", "items"],
            [[st, r, n] for (st, r), n in sorted(s.items_denied.items(), key=lambda kv: -kv[1])]))
    tables.append("<h2>Signals met</h2>" + (_table(
        ["signal", "verdict", "decisions citing it"],
        [[sig, v, n] for (sig, v), n in sorted(s.signals.items())]) if s.signals
        else "<p>No decision cited an operator signal or a robots tag.</p>"))
    withdrawals = sorted(s.withdrawals)[:50]
    tables.append(f"<h2>Withdrawals seen</h2><p>{len(s.withdrawals)} people withdrew while the crawl ran "
                  f"({s.events['withdrawal-seen']} event lines); {s.denied[('subject', 'subject.revoked')]} "
                  f"requests denied as revoked.</p>"
                  + (_table(["platform", "subject"], [list(w) for w in withdrawals]) if withdrawals else ""))
    if s.events:
        tables.append("<h2>Events</h2>" + _table(["event", "lines"], [[k, v] for k, v in sorted(s.events.items())]))
    if s.bad:
        tables.append(f"<h2>Unreadable lines: {s.bad}</h2>" + _table(
            ["file", "line", "why"], [[b.path, b.line, b.why] for b in s.bad_lines]))
    files = ", ".join(esc(f) for f in s.files)
    purposes = ", ".join(esc(p) for p, _ in s.purposes.most_common())
    mode = (f"<p class='warn'>Report mode: {_fmt(s.not_enforced)} denies were recorded but not enforced.</p>"
            if s.not_enforced else "")
    if (replay := replay_warning(s)) is not None:
        mode = f"<p class='warn'>{esc(replay)}</p>" + mode
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>consentcrawl audit report</title>
<style>
body{{{FONT};margin:24px auto;padding:0 16px;max-width:{WIDTH + 40}px;color:#222;background:#fff}}
h1{{font-size:22px;margin:0 0 4px}} h2{{font-size:16px;margin:18px 0 6px}}
.meta{{color:#555;font-size:13px;margin:0 0 12px;word-break:break-all}}
.cards{{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0 4px}}
.card{{border:1px solid #ddd;border-radius:6px;padding:6px 12px;min-width:96px}}
.card b{{display:block;font-size:20px}} .card span{{font-size:12px;color:#555}}
figure{{margin:10px 0 0;padding:0}} svg{{display:block;{FONT}}}
.legend{{font-size:12px;margin:0 0 4px}} .legend span{{margin-right:14px}}
.legend i{{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}}
.note{{font-size:12px;color:#666;margin:2px 0}} .warn{{color:#8a4b00}}
table{{border-collapse:collapse;font-size:13px}} td,th{{border:1px solid #ddd;padding:3px 8px;text-align:left}}
</style></head>
<body>
<h1>consentcrawl audit report</h1>
<p class="meta">{files}<br>{span} · purpose {purposes or "-"}</p>
{mode}<div class="cards">{cards_html}</div>
{"".join(charts)}
{"".join(tables)}
</body></html>
"""
