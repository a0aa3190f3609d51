"""``consentcrawl audit report`` and ``audit explain`` on the audit logs of real crawls, the HTML report drawn by
headless Chromium and looked at pixel by pixel, and the crawl's own consent log lines."""

from __future__ import annotations

import html
import json
import logging
import re
import shlex
import shutil
import subprocess
import time
import tracemalloc
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.audit import html as report_html
from consentcrawl.audit.log import read_audit_log
from consentcrawl.audit.report import summarize
from consentcrawl.audit.terminal import terminal
from consentcrawl.cli import main
from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from spiders.microblog import MicroblogSpider
from tests.conftest import CrawlResult, consent_settings, jsonl, run_crawl
from tests.png import Image, read_png

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WINDOW_WIDTH = 940
CHARTS = ("timeline", "denials", "platforms", "people")
#: the colours bars are drawn in (a bar's inside is exactly its colour); text, axes and the empty state are greys
PALETTE = {tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))
           for c in {report_html.ALLOW, report_html.DENY, report_html.OTHER, *report_html.STAGE_COLOURS.values()}}


class SlowSite:
    """The demo site, answering each request after a short pause, so the crawl lasts a few log intervals."""

    def __init__(self, site: MicroblogSite, pause: float) -> None:
        self.site, self.pause = site, pause

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        time.sleep(self.pause)
        return self.site(request, headers)


async def crawl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pause: float = 0.0,
                **overrides: Any) -> tuple[CrawlResult, Path, list[LoggedRequest]]:
    site = MicroblogSite(n_profiles=60)
    settings = consent_settings(tmp_path, LOG_LEVEL="INFO",
                                FEEDS={str(tmp_path / "items.jsonl"): {"format": "jsonlines"}}, **overrides)
    with LocalServer(SlowSite(site, pause) if pause else site) as server:
        result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        served = server.requests
    return result, tmp_path / "audit.jsonl", served


def profile_subjects(requests: list[LoggedRequest]) -> set[str]:
    """The people whose profile page the server itself answered."""
    return {m.group(1) for r in requests for m in [re.fullmatch(r"/(?:u|profile)/([0-9]+)/?", r.decoded_path)] if m}


# -- the terminal summary and the crawl's log lines, from one real crawl ----------------------------------------


@deferred_f_from_coro_f
async def test_a_real_crawl_logs_consent_counts_and_where_its_report_is_and_the_report_agrees_with_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with caplog.at_level(logging.INFO):  # CONSENTCRAWL_LOGSTATS_INTERVAL unset: Scrapy's LOGSTATS_INTERVAL
        result, audit, served = await crawl(tmp_path, monkeypatch, pause=0.02, LOGSTATS_INTERVAL=0.1,
                                            CONSENTCRAWL_LOGSTATS_INTERVAL=None)
    messages = [r.getMessage() for r in caplog.records if r.name == "consentcrawl"]
    stats = result.consent_stats()
    # the periodic line: several during the crawl, at the pace of Scrapy's own (which also logs once at the start)
    periodic = [m for m in messages if re.fullmatch(r"consentcrawl: consent: \d+ allowed, \d+ denied.*", m)]
    crawled = [r for r in caplog.records if r.getMessage().startswith("Crawled ")]
    assert len(periodic) >= 2 and abs(len(crawled) - 1 - len(periodic)) <= 1, (len(crawled), messages)
    # the closing summary: the final counts, by stage and by reason, and the command that makes the report
    robots = sum(v for k, v in stats.items() if k.startswith("consentcrawl/denied/robots/"))
    subject = sum(v for k, v in stats.items() if k.startswith("consentcrawl/denied/subject/"))
    assert robots and subject
    closing = next(m for m in messages if m.startswith("consentcrawl: closing (finished): "))
    assert closing.startswith(f"consentcrawl: closing (finished): consent: {stats['consentcrawl/allowed']} allowed, "
                              f"{stats['consentcrawl/denied']} denied (")
    assert f"robots {robots}" in closing and f"subject {subject}" in closing
    assert f"items kept {stats['consentcrawl/items/kept']}, dropped 0" in closing
    reasons = next(m for m in messages if m.startswith("consentcrawl: denied by reason: "))
    assert f"subject/no-authorization {stats['consentcrawl/denied/subject/no-authorization']}" in reasons
    where = next(m for m in messages if "the report: consentcrawl audit report" in m)
    assert f"audit log {audit}" in where
    command = shlex.split(where.split("the report: ", 1)[1])
    assert command[:3] == ["consentcrawl", "audit", "report"] and command[3] == str(audit)

    # the command it names works, and what it prints is what the server and the outputs say
    capsys.readouterr()
    assert main(command[1:]) == 0
    out = capsys.readouterr().out
    html_path = Path(command[command.index("--html") + 1])
    assert html_path.is_file() and html_path.parent == audit.parent
    items = jsonl(tmp_path / "items.jsonl")
    fetched = profile_subjects(served)
    assert fetched and {i["subject"] for i in items} <= fetched
    # requests, each counted once: sent (what the server answered, besides robots.txt and the signal files) or
    # denied before sending; a page fetched and then refused (a refusal on it) is a response denied, not a request
    pages = [r for r in served if r.decoded_path != "/robots.txt" and not r.decoded_path.startswith("/.well-known/")
             and r.decoded_path != "/ai.txt"]
    refusals = [e for e in read_audit_log(audit) if e.get("event") == "refusal-found"]
    after = stats.get("consentcrawl/denied/subject/refused-on-page", 0)
    assert refusals and after >= len(refusals)
    denied = stats["consentcrawl/denied"] - len(refusals)
    assert f"requests: {len(pages) + denied} (each counted once" in out
    assert f"requests allowed at send time:   {len(pages)}" in out and len(pages) == stats["consentcrawl/allowed"]
    assert f"responses denied after fetching: {len(refusals)}" in out
    assert f"people whose pages were fetched: {len(fetched)}" in out
    assert f"items kept:                      {len(items)}, of {len({i['subject'] for i in items})} people" in out
    assert f"denied before sending: {denied} requests" in out
    assert re.search(rf"^    subject\.no-authorization +{stats['consentcrawl/denied/subject/no-authorization']}$",
                     out, re.MULTILINE)
    assert re.search(rf"^  microblog +{len(pages)} / {denied}$", out, re.MULTILINE)
    # no denied person was fetched; the people with the most denies are people the server never served, except
    # those who refused on their own page (that one page was fetched to read the refusal, then nothing more)
    refused = {e["subject"] for e in read_audit_log(audit) if e.get("event") == "refusal-found"}
    top = re.findall(r"^  microblog:([0-9]+) +[0-9]+$", out, re.MULTILINE)
    assert top and not (set(top) & fetched) - refused


@deferred_f_from_coro_f
async def test_several_logs_add_up_events_and_chain_fields_are_read_and_a_torn_line_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, audit, _ = await crawl(tmp_path, monkeypatch)
    whole = summarize([audit])
    # the crawl's decisions (its own chain-start and chain-end lines left out), split between two made-up workers
    lines = [line for line in audit.read_text(encoding="utf-8").splitlines() if "event" not in json.loads(line)]
    # two workers' chains: a header, seq/prev on every line, events between decisions, a torn last line
    parts = []
    for worker in (0, 1):
        path = tmp_path / f"worker{worker}.jsonl"
        out = [json.dumps({"event": "chain-start", "time": "2026-12-01T00:00:00+00:00", "seq": 0, "prev": None})]
        for seq, line in enumerate(lines[worker::2], 1):
            out.append(json.dumps({**json.loads(line), "seq": seq, "prev": "ab" * 32}))
        out.append(json.dumps({"event": "withdrawal-seen", "time": "2026-12-01T00:00:01+00:00",
                               "platform": "microblog", "subject": f"10{worker}9"}))
        path.write_text("\n".join(out) + "\n" + ('{"decision_id": "torn' if worker else ""), encoding="utf-8")
        parts.append(path)
    both = summarize(parts)
    for name in ("decisions", "verdicts", "phases", "denied", "platforms", "fetched_people", "collected_people",
                 "denied_people", "first", "last"):
        assert getattr(both, name) == getattr(whole, name), name
    assert both.events == {"chain-start": 2, "withdrawal-seen": 2}
    assert both.withdrawals == {("microblog", "1009"), ("microblog", "1019")}
    assert both.bad == 1 and (both.bad_lines[0].path, both.bad_lines[0].line) == (str(parts[1]), len(lines) // 2 + 3)
    text = terminal(both)
    assert "withdrawals seen: 2 people (2 event lines)" in text
    assert f"{parts[1]}:{len(lines) // 2 + 3}: not JSON" in text
    assert "other events: chain-start 2" in text


def test_the_report_reads_a_log_streaming(tmp_path: Path) -> None:
    """10 000 lines read through a pipe (never a whole file in memory), with the memory of a few counters."""
    import os
    import threading

    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    line = json.dumps({"decision_id": "0" * 32, "time": "2026-12-01T00:00:00+00:00", "phase": "schedule",
                       "url": "http://microblog.example/u/1", "canonical_url": "http://microblog.example/u/1",
                       "platform": "microblog", "subject": "1", "purpose": "research", "verdict": "deny",
                       "stage": "subject", "reason": "subject.no-authorization", "mode": "enforce",
                       "evidence": [{"kind": "platform-authorization", "source": "p.yaml:1", "x": "y" * 200}]})
    n = 10_000

    def write() -> None:
        with fifo.open("w", encoding="utf-8") as f:
            for i in range(n):
                f.write(line.replace('"1"', f'"{i % 500}"').replace("00:00:00", f"00:{i // 500 % 60:02d}:00")
                        + "\n")

    writer = threading.Thread(target=write)
    writer.start()
    tracemalloc.start()
    try:
        summary = summarize([fifo])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        writer.join()
    assert summary.decisions == n and len(summary.denied_people) == 500
    assert sum(d for _, _, d in summary.timeline()[1]) == n
    assert peak < 2_000_000, f"{peak} bytes: the report holds lines (the log itself is {n * len(line)} bytes)"


def test_a_log_that_cannot_be_read_or_a_report_that_cannot_be_written_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["audit", "report", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: cannot read the audit log" in capsys.readouterr().err
    log = tmp_path / "a.jsonl"
    log.write_text("", encoding="utf-8")
    assert main(["audit", "report", str(log), "--html", str(tmp_path / "no" / "such" / "dir.html")]) == 2
    assert "cannot write the HTML report" in capsys.readouterr().err


# -- the HTML report in a real browser --------------------------------------------------------------------------


def chromium(tmp_path: Path, *args: str, height: int = 1200) -> subprocess.CompletedProcess[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    profile = tmp_path / "chromium-profile"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               "--force-device-scale-factor=1", f"--user-data-dir={profile}", f"--window-size={WINDOW_WIDTH},{height}",
               *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)


#: what the probe copy of the page records: each chart's box on the page, and the page's height
PROBE = """<script>
const boxes = [...document.querySelectorAll("svg.plot")].map(s => { const r = s.getBoundingClientRect();
  return {chart: s.dataset.chart, x: r.left, y: r.top, w: r.width, h: r.height, empty: s.dataset.empty || "",
          bars: s.querySelectorAll("rect.bar").length}; });
document.documentElement.setAttribute("data-probe", JSON.stringify(
  {boxes: boxes, height: document.documentElement.scrollHeight, title: document.title}));
</script>"""


def probe(page: Path, tmp_path: Path, *, keep_csp: bool = True, height: int = 1600) -> dict[str, Any]:
    """Lay the page out in Chromium, take a screenshot, and read back where each chart is.

    The page Chromium loads is a copy with the probe's script added; its Content-Security-Policy stays as it is but
    for letting that one inline script run (``keep_csp``), or is taken out to see what escaping alone does.
    """
    text = page.read_text(encoding="utf-8")
    if keep_csp:
        assert text.count("default-src 'none';") == 1
        text = text.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
    else:
        text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
    copy = tmp_path / "probe.html"
    copy.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    shot = tmp_path / "shot.png"
    dom = chromium(tmp_path, "--dump-dom", f"--screenshot={shot}", copy.as_uri(), height=height).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, dom[:500]
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    if result["height"] > height:  # the page is longer than the window: once more, tall enough
        return probe(page, tmp_path, keep_csp=keep_csp, height=int(result["height"]) + 10)
    result["dom"] = dom
    result["image"] = read_png(shot)
    return result


def bar_pixels(image: Image, box: dict[str, Any]) -> int:
    """How many pixels inside the chart's box are in a bar colour (text, axes and the empty state are grey)."""
    count = 0
    c = image.channels
    left, right = (int(box["x"]) + 1) * c, min(int(box["x"] + box["w"]) - 1, image.width) * c
    for y in range(int(box["y"]) + 1, min(int(box["y"] + box["h"]) - 1, image.height)):
        row = image.rows[y][left:right]
        count += sum(1 for px in zip(row[0::c], row[1::c], row[2::c], strict=True) if px in PALETTE)
    return count


def drawn(page: Path, tmp_path: Path) -> tuple[dict[str, int], dict[str, Any]]:
    """{chart: bar-coloured pixels in its box on a real screenshot}, and what the probe read."""
    layout = probe(page, tmp_path)
    assert [b["chart"] for b in layout["boxes"]] == list(CHARTS)
    return {b["chart"]: bar_pixels(layout["image"], b) for b in layout["boxes"]}, layout


@deferred_f_from_coro_f
async def test_every_chart_of_a_real_crawls_report_draws_in_chromium_and_an_empty_one_is_seen_as_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, audit, _ = await crawl(tmp_path, monkeypatch)
    page = tmp_path / "report.html"
    assert main(["audit", "report", str(audit), "--html", str(page)]) == 0
    pixels, layout = drawn(page, tmp_path)
    boxes = {b["chart"]: b for b in layout["boxes"]}
    for chart in CHARTS:
        assert boxes[chart]["bars"] > 0 and boxes[chart]["empty"] == "", chart
        assert pixels[chart] > 200, (chart, pixels)

    # the same crawl's log without its denials: two charts have nothing to draw, say so, and the check sees it
    allows = tmp_path / "allows" / "audit.jsonl"
    allows.parent.mkdir()
    allows.write_text("".join(line + "\n" for line in audit.read_text(encoding="utf-8").splitlines()
                              if json.loads(line).get("verdict") == "allow"), encoding="utf-8")
    page = allows.parent / "report.html"
    assert main(["audit", "report", str(allows), "--html", str(page)]) == 0
    pixels, layout = drawn(page, allows.parent)
    boxes = {b["chart"]: b for b in layout["boxes"]}
    assert pixels["timeline"] > 200 and pixels["platforms"] > 200
    assert pixels["denials"] == 0 and pixels["people"] == 0, pixels
    assert boxes["denials"]["empty"] == "true" and boxes["denials"]["bars"] == 0
    assert boxes["people"]["empty"] == "true" and boxes["people"]["bars"] == 0
    assert ">No denials</text>" in layout["dom"]
    assert boxes["denials"]["h"] >= 100, "the empty state has a visible box, not a collapsed one"


PAYLOADS = [
    '"><script>document.title="pwned-1"</script>',
    "<img src=x onerror=\"document.title='pwned-2'\">",
    "</text></svg><svg onload=\"document.title='pwned-3'\"><text>",
    "</title><style>*{display:none}</style><script>document.title='pwned-4'</script>",
    "javascript:document.title='pwned-5'",
    "\x1b[2J\x1b]0;pwned-6\x07",
]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on") or name in ("href", "src")]


def test_nothing_from_a_log_line_becomes_markup_script_or_a_terminal_escape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "audit.jsonl"
    lines = []
    for i, payload in enumerate(PAYLOADS):
        for verdict in ("allow", "deny", "deny"):
            lines.append({"decision_id": f"{i:032x}", "time": f"2026-12-01T00:00:0{i}+00:00", "phase": "request",
                          "url": payload, "canonical_url": payload, "platform": payload, "subject": payload,
                          "purpose": payload, "verdict": verdict, "stage": payload, "reason": payload,
                          "mode": "enforce", "evidence": [{"kind": f"signal.{payload}", "source": payload,
                                                           "verdict": payload}]})
        lines.append({"event": "withdrawal-seen", "time": "2026-12-01T00:00:00+00:00", "platform": payload,
                      "subject": payload})
        lines.append({"event": payload, "time": "2026-12-01T00:00:00+00:00"})
    log.write_text("".join(json.dumps(e) + "\n" for e in lines), encoding="utf-8")
    page = tmp_path / "report.html"
    assert main(["audit", "report", str(log), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J" in out

    text = page.read_text(encoding="utf-8")
    parser = Tags()
    parser.feed(text)
    allowed = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "br", "div", "b", "span",
               "figure", "svg", "rect", "text", "line", "i", "table", "thead", "tbody", "tr", "th", "td"}
    assert parser.tags <= allowed, parser.tags - allowed
    assert parser.handlers == []
    assert text.count("<script") == 0 and text.count("<style") == 1
    assert "default-src 'none'" in text

    # and in a browser, with the Content-Security-Policy taken out: the escaping alone holds
    layout = probe(page, tmp_path, keep_csp=False)  # the probe's own script runs: nothing blocks scripts here
    assert layout["title"] == "consentcrawl audit report"
    assert "pwned" not in layout["title"]
    dom = layout["dom"]
    assert "<img" not in dom and dom.count("<script") == 1  # the probe's
    assert [b["chart"] for b in layout["boxes"]] == list(CHARTS)


# -- audit explain -----------------------------------------------------------------------------------------------


@deferred_f_from_coro_f
async def test_explain_an_item_and_a_denial_from_a_real_crawl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    _, audit, _ = await crawl(tmp_path, monkeypatch)
    items = jsonl(tmp_path / "items.jsonl")
    item = items[0]
    decision_id = item["consentcrawl"]["decision_id"]
    entries = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    line = next(e for e in entries if e.get("decision_id") == decision_id)
    record = next(ev for ev in line["evidence"] if ev["kind"] == "subject-authorization")
    grant = next(ev for ev in line["evidence"] if ev["kind"] == "platform-authorization")
    robots = next(ev for ev in line["evidence"] if ev["kind"] == "robots.txt")

    capsys.readouterr()
    dashed = f"{decision_id[:8]}-{decision_id[8:12]}-{decision_id[12:16]}-{decision_id[16:20]}-{decision_id[20:]}"
    assert main(["audit", "explain", dashed.upper(), "--log", str(audit)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"decision {decision_id}: ALLOWED, subject.authorized (stage subject, phase request")
    assert f"  subject:   {item['subject']}" in out
    assert f"1. robots:\n    [robots]   robots.txt {robots['source']}: ok" in out and f"rule '{robots['rule']}'" in out
    assert f"2. platform terms:\n    [terms]    platform microblog ({grant['source']}): {grant['reference']!r}" in out
    # the purposes the record grants (research among them: 1011's record also grants archiving)
    person = rf"3\. person:\n    \[subject\]  record {re.escape(record['source'])}: purposes ([a-z, -]+)"
    granted = re.search(person, out)
    assert granted and "research" in granted.group(1).split(", "), out
    assert f"evidence {record['evidence']!r}" in out
    # the same request's other lines: the item decided on its page
    related = out.split("related lines (same URL)", 1)[1]
    assert re.search(r"  \S+  item +allow subject\.authorized  " + re.escape(item["consentcrawl"]["url"]), related)

    denied = next(e for e in entries if e.get("reason") == "robots.disallowed")
    assert main(["audit", "explain", denied["decision_id"], "--log", str(audit)]) == 0
    out = capsys.readouterr().out
    assert "DENIED, robots.disallowed (stage robots" in out
    assert "2. platform terms: not reached (denied at robots)" in out
    assert "3. person: not reached (denied at robots)" in out

    assert main(["audit", "explain", "f" * 32, "--log", str(audit)]) == 1
    assert f"decision {'f' * 32} is not in {audit}" in capsys.readouterr().err
    assert main(["audit", "explain", "not-an-id", "--log", str(audit)]) == 2
    assert "is not a decision id" in capsys.readouterr().err


def test_explain_reads_the_projects_audit_log_by_default_and_escapes_what_it_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    project = tmp_path / "project"
    (project / "proj").mkdir(parents=True)
    (project / "scrapy.cfg").write_text("[settings]\ndefault = proj.settings\n", encoding="utf-8")
    (project / "proj" / "__init__.py").write_text("", encoding="utf-8")
    (project / "proj" / "settings.py").write_text('CONSENTCRAWL_AUDIT_LOG = "logs/audit.jsonl"\n', encoding="utf-8")
    (project / "logs").mkdir()
    decision_id = "a" * 32
    url = "http://microblog.example/u/1\x1b]0;pwned\x07"
    entry = {"decision_id": decision_id, "time": "2026-12-01T00:00:00+00:00", "phase": "schedule", "url": url,
             "canonical_url": url, "platform": "microblog", "subject": "1", "purpose": "research", "verdict": "deny",
             "stage": "subject", "reason": "subject.no-authorization", "mode": "enforce",
             "evidence": [{"kind": "subject-authorization", "source": "authorizations.yaml", "platform": "microblog",
                           "subject": "1", "records": 0}]}
    (project / "logs" / "audit.jsonl").write_text(json.dumps(entry) + "\n", encoding="utf-8")
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    assert main(["audit", "explain", decision_id]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b]0;pwned\\x07" in out
    assert "no authorization record for microblog:1 in authorizations.yaml" in out
    assert "1. robots: not in this line's evidence" in out

    (project / "logs" / "audit.jsonl").unlink()
    assert main(["audit", "explain", decision_id]) == 2
    assert "no audit log at logs/audit.jsonl" in capsys.readouterr().err


@deferred_f_from_coro_f
async def test_signals_met_in_a_real_crawl_are_in_the_report_and_behind_the_decision_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.test_robots_crawl import HOST, ConsentListSpider
    from tests.test_signals_crawl import SignalSite

    site = SignalSite(tdmrep='[{"location": "/reserved/*", "tdm-reservation": 1}, {"location": "/", '
                             '"tdm-reservation": 0}]')
    monkeypatch.setattr(ConsentListSpider, "urls", [f"http://{HOST}/reserved/a", f"http://{HOST}/open"])
    settings = consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=[], CONSENTCRAWL_AUTHORIZATIONS=None)
    with LocalServer(site) as server:
        result = await run_crawl(ConsentListSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        assert "/reserved/a" not in {r.path for r in server.requests}
    audit = tmp_path / "audit.jsonl"
    denied = next(e for e in result.audit if e["verdict"] == "deny")
    assert denied["reason"] == "terms.signal.tdmrep"

    page = tmp_path / "report.html"
    capsys.readouterr()
    assert main(["audit", "report", str(audit), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    # the allowed page's send-time line and its response line (robots tags read) both cite tdmrep's allow
    assert re.search(r"^signals met \(decisions citing them\)\n  tdmrep +allow +2\n  tdmrep +deny +1$", out,
                     re.MULTILINE)
    # requests, each once: /open sent (its response line is not a request of its own), /reserved/a denied
    assert re.search(r"^  \(off platform\) +1 / 1$", out, re.MULTILINE)
    assert "requests: 2 (each counted once" in out
    assert "<td>tdmrep</td><td>deny</td><td>1</td>" in page.read_text(encoding="utf-8")

    assert main(["audit", "explain", denied["decision_id"], "--log", str(audit)]) == 0
    out = capsys.readouterr().out
    assert "DENIED, terms.signal.tdmrep (stage terms" in out
    assert "2. platform terms: none needed (off platform: robots and the site's signals decide)" in out
    assert "3. person: not reached (denied at terms)" in out
    signals = out.split("signals and other evidence\n", 1)[1]
    assert re.search(rf"^  \[signal\.tdmrep\] http://{re.escape(HOST)}/\.well-known/tdmrep\.json: .*verdict=deny",
                     signals.split("\n\n", 1)[0], re.MULTILINE)


def test_the_readme_shows_a_screenshot_of_the_demo_report_whose_charts_drew() -> None:
    root = Path(__file__).resolve().parent.parent
    png = root / "docs" / "audit-report.png"
    assert "](docs/audit-report.png)" in (root / "README.md").read_text(encoding="utf-8")
    assert png.stat().st_size < 150_000
    image = read_png(png)
    colours: dict[tuple[int, int, int], int] = {}
    for row in image.rows:
        c = image.channels
        for px in zip(row[0::c], row[1::c], row[2::c], strict=True):
            if px in PALETTE:
                colours[px] = colours.get(px, 0) + 1
    allow, deny = (tuple(int(h[i:i + 2], 16) for i in (1, 3, 5)) for h in (report_html.ALLOW, report_html.DENY))
    assert colours.get(allow, 0) > 5000 and colours.get(deny, 0) > 20000, colours


def test_an_edited_log_with_times_at_the_ends_of_the_calendar_and_many_reasons_still_makes_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "audit.jsonl"
    times = ["0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00", "2026-01-01T00:00:00Z", "yesterday", None]
    entries = [{"decision_id": f"{i:032x}", "time": times[i % len(times)], "phase": "schedule", "verdict": "deny",
                "stage": "subject", "reason": f"subject.reason-{i}", "platform": "microblog", "subject": str(i)}
               for i in range(60)]
    log.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    page = tmp_path / "report.html"
    assert main(["audit", "report", str(log), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "from 0001-01-01T00:00:00+00:00 to 9999-12-31T23:59:59+00:00" in out
    assert "24 decisions without a readable time" in out
    text = page.read_text(encoding="utf-8")
    denials = re.search(r'<svg class="plot" data-chart="denials" data-bars="(\d+)"', text)
    assert denials and int(denials.group(1)) == report_html.MAX_ROWS
    assert f"{60 - report_html.MAX_ROWS + 1} more" in text
    timeline = re.search(r'<svg class="plot" data-chart="timeline" data-bars="(\d+)"', text)
    assert timeline and 0 < int(timeline.group(1)) <= 61
