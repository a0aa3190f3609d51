"""The README's table "The same cases elsewhere", Scrapy's column computed: each row's conformance cases
(``tests/signals_conformance.py``, the rows ``check --json`` is held to) served by a loopback server and crawled
by plain Scrapy 2.19 with ``ROBOTSTXT_OBEY`` (its ``RobotsTxtMiddleware`` and Protego parser, our product token as
``ROBOTSTXT_USER_AGENT``); what the server saw decides the cell:

- ``obeys``: the page was never requested;
- ``ignores``: the page was fetched and its item kept, though the statement was in the robots.txt Scrapy read;
- ``—``: the page was fetched and kept, and the file that holds the statement (if it is not robots.txt) was never
  requested: Scrapy does not read it at all.

datadiligence's column is computed the same way when datadiligence is installed (it is no dependency of this
project; each of its tests skips without it): its HTTP evaluator (the TDMRep header and ``X-Robots-Tag`` rules) is
asked about each case's page and fetches the page itself, through the same loopback proxy:

- ``reads it``: it answers that the page may not be used;
- ``—``: it answers yes, having asked the server for the page only (no robots.txt, no signal file).

crawler-commons is Java and cannot be run here (no Debian package; Maven Central is out of reach): its column is
read from its source, and the README says so; the last test holds it to saying so.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.conftest import run_crawl
from tests.test_robots_crawl import ListSpider
from tests.test_signals_check_cli import HTTP_SITE, _app

from .signals_conformance import CASES, Case, robots

README = Path(__file__).resolve().parent.parent / "README.md"
BY_ID = {case.id: case for case in CASES}

#: each row of the README table (its first cell) and the conformance cases that show it; two rows need a case the
#: signals table does not have (robots.txt access rules and robots tags have conformance tables of their own)
ROWS: dict[str, list[Case]] = {
    "robots.txt `Disallow`": [Case("robots-disallow", "robots", "RFC 9309 §2.2.2", "/a", "research", "deny",
                                   "robots.disallowed", {"/robots.txt": robots("User-agent: *", "Disallow: /a")})],
    "robots.txt `Content-Signal: ai-train=no`": [BY_ID["cs-default-train"], BY_ID["cs-misspelt"]],
    "robots.txt `Content-Usage: / train-ai=n`": [BY_ID["cu-robots-longest-deny"], BY_ID["cu-robots-pathless-deny"]],
    "`/.well-known/tdmrep.json` reservation": [BY_ID["tdm-file-1-training"], BY_ID["tdm-file-denies-before-fetch"]],
    "`tdm-reservation: 1` header": [BY_ID["tdm-header-1"]],
    "`X-Robots-Tag: noai`": [Case("xrt-noai", "robots-tag", "de-facto noai", "/a", "ai-training", "deny",
                                  "response.robots-tag", headers=(("X-Robots-Tag", "noai"),))],
    "`Content-Usage` / `Content-Signal` headers": [BY_ID["cu-header-n"], BY_ID["cs-header"]],
    "RSL licence (`License:`, `Link`, `<link>`)": [BY_ID["rsl-prohibits-train"], BY_ID["rsl-link-header"],
                                                   BY_ID["rsl-html-link"]],
    "5xx on a signal file": [BY_ID["tdm-unreachable"], BY_ID["rsl-licence-unreachable"], BY_ID["aitxt-unreachable"]],
}


def readme_table() -> dict[str, list[str]]:
    """The table under "The same cases elsewhere": first cell -> the other cells."""
    text = README.read_text(encoding="utf-8").partition("### The same cases elsewhere")[2]
    rows = {}
    for line in text.splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] not in ("a site publishes", "---"):
            rows[cells[0]] = cells[1:]
    return rows


async def scrapy_cell(case: Case, monkeypatch: pytest.MonkeyPatch) -> str:
    ListSpider.urls = [HTTP_SITE + case.path]
    settings = {"ROBOTSTXT_OBEY": True, "ROBOTSTXT_USER_AGENT": case.token, "TELNETCONSOLE_ENABLED": False,
                "REMOTE_CONTROL_ENABLED": False, "RETRY_ENABLED": False, "DOWNLOAD_TIMEOUT": 2, "LOG_LEVEL": "INFO"}
    with LocalServer(_app(case)) as server:
        result = await run_crawl(ListSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        asked = [r.path + (f"?{r.query}" if r.query else "") for r in server.requests if r.host == "site.example"]
    if case.path not in asked:
        return "obeys"
    assert [i["url"] for i in result.items] == [HTTP_SITE + case.path]  # fetched and kept
    elsewhere = set(case.files) - {"/robots.txt"}
    if not elsewhere and not case.headers and not case.html:
        return "ignores"  # the statement was in robots.txt, which Scrapy read
    return "reads it" if elsewhere & set(asked) else "—"


@pytest.mark.parametrize("row", list(ROWS))
@deferred_f_from_coro_f
async def test_the_scrapy_column_is_what_scrapy_does(row: str, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    table = readme_table()
    assert row in table, sorted(table)
    computed = {await scrapy_cell(case, monkeypatch) for case in ROWS[row]}
    assert len(computed) == 1, (row, computed)  # every case of the row behaves alike
    written = table[row][0]
    assert written == computed.pop(), (row, written)
    # and the consentcrawl column: each of the row's cases is a deny in the conformance table (held by check)
    assert all(case.expect == "deny" for case in ROWS[row]) and re.match(r"(denies|reads it)", table[row][3])


def datadiligence_cell(case: Case, monkeypatch: pytest.MonkeyPatch) -> str:
    """What datadiligence's HTTP evaluator says of the case's page, asked as its documentation shows (the URL: it
    fetches the page with ``requests``, which takes the loopback proxy from ``http_proxy``)."""
    datadiligence = pytest.importorskip("datadiligence")
    evaluator = datadiligence.HttpEvaluator(user_agent=case.token)
    for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with LocalServer(_app(case)) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        allowed = evaluator.is_allowed(url=HTTP_SITE + case.path)
        asked = [r.path + (f"?{r.query}" if r.query else "") for r in server.requests if r.host == "site.example"]
    assert case.path in asked  # it asked the server for the page itself
    if not allowed:
        return "reads it"
    assert set(asked) == {case.path}, asked  # nothing else read: no robots.txt, no signal file (0.1.7 fetches
    # the page once for each of its two rules)
    return "—"


@pytest.mark.parametrize("row", list(ROWS))
def test_the_datadiligence_column_is_what_datadiligence_does(row: str, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    """Skipped unless datadiligence is installed (``pip install datadiligence`` in a venv of its own, with this
    project installed beside it: it is not a dependency)."""
    monkeypatch.chdir(tmp_path)
    table = readme_table()
    computed = {datadiligence_cell(case, monkeypatch) for case in ROWS[row]}
    assert len(computed) == 1, (row, computed)  # every case of the row behaves alike
    assert table[row][1] == computed.pop(), row


def test_every_row_of_the_table_is_computed_and_the_rest_is_said_to_be_read_from_source() -> None:
    table = readme_table()
    assert set(table) == set(ROWS)
    assert all(len(cells) == 4 for cells in table.values())
    note = README.read_text(encoding="utf-8").partition("### The same cases elsewhere")[2].partition("\n## ")[0]
    assert "tests/test_conformance_comparison.py" in note
    said = " ".join(note.split())
    assert "datadiligence's column is computed too" in said and "datadiligence 0.1.7" in said
    assert "crawler-commons is Java" in said and "its column is read from its source, not run" in said
    assert "libcrawler-commons-java" in said  # why it is not run: no Debian package, Maven Central out of reach


def test_the_column_not_run_is_what_its_source_says() -> None:
    """What the README credits crawler-commons with, from its source (not run): the rows it reads, nothing more
    (robots.txt itself, and the Content-Signal line of robots.txt); and datadiligence's column, computed above
    where it is installed, reads the TDMRep header and X-Robots-Tag only."""
    table = readme_table()
    parses = {row for row, cells in table.items() if cells[2] != "—"}
    assert parses == {"robots.txt `Disallow`", "robots.txt `Content-Signal: ai-train=no`"}
    reads = {row for row, cells in table.items() if cells[1] != "—"}
    assert reads == {"`tdm-reservation: 1` header", "`X-Robots-Tag: noai`"}
