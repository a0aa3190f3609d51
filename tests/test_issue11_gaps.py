"""Issue 11 bullets that had no crawl-level test yet: each against the lenient ``people`` site
(:mod:`tests.lenient`), judged by what it served, for a ``ConsentSpider`` and a plain spider with the ``ADDONS``
line.

- the audit log is fdatasync'ed by default, each allow's line before its request reaches the server;
- report mode's closing summary says "would deny";
- ``consentcrawl check`` outside a project (no platform) is a usage error, not an allow, and fetches nothing;
- ``consentcrawl check`` and a crawl built from the same settings agree on ``CONSENTCRAWL_MAX_CRAWL_DELAY``;
- a withdrawal appended to a CSV store mid-crawl stops the fetches within 2 s (case 9, third format);
- the add-on says, truthfully, that it took Scrapy's RobotsTxtMiddleware out;
- an item-phase `terms.*` deny names the person and carries its evidence.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

import consentcrawl.audit.log as audit_log
from consentcrawl.cli import main
from consentcrawl_demo.server import LocalServer
from tests.lenient import (
    HOST,
    KINDS,
    LenientPeople,
    ListLogic,
    Robots,
    crawl,
    iso,
    make_spider,
    once_served,
    people_settings,
)
from tests.test_send_time import GRACE, RepeatLogic, went_on

BASE = f"http://{HOST}"


# --------------------------------------------------------------------------- the audit log is fdatasync'ed


@pytest.mark.parametrize("fsync", ["default", "off"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_each_allow_line_is_synced_before_its_request_reaches_the_server(
    kind: str, fsync: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """By default every group write is followed by fdatasync: for each profile the server served, the file had
    been synced, with that request's allow line in it, before the request arrived. With
    ``CONSENTCRAWL_AUDIT_FSYNC = False`` nothing is synced (the README says what that mode can lose)."""
    real = audit_log._sync
    synced: list[tuple[float, int]] = []  # (time after the sync, bytes in the file then)

    def counting_sync(fd: int) -> None:
        real(fd)  # the real fdatasync: this only records when it ran and how much of the file it covered
        synced.append((time.time(), os.fstat(fd).st_size))

    monkeypatch.setattr(audit_log, "_sync", counting_sync)
    overrides: dict[str, Any] = {} if fsync == "default" else {"CONSENTCRAWL_AUDIT_FSYNC": False}
    settings = people_settings(tmp_path, **overrides)
    app = LenientPeople()
    with LocalServer(app) as server:
        await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                    urls=[f"{BASE}/u/101", f"{BASE}/u/102", f"{BASE}/u/107"], follow_links=False)
    served = [s for s in app.served if s.person in ("101", "102")]
    assert len(served) == 2, app.describe()
    if fsync == "off":
        assert not synced, f"CONSENTCRAWL_AUDIT_FSYNC = False, yet {len(synced)} syncs"
        return
    data = Path(settings["CONSENTCRAWL_AUDIT_LOG"]).read_bytes()
    offset = 0
    ends: dict[str, int] = {}  # URL -> end offset of its send-time allow line
    for line in data.splitlines(keepends=True):
        offset += len(line)
        entry = json.loads(line)
        if entry.get("phase") == "request" and entry.get("verdict") == "allow":
            ends.setdefault(entry["url"], offset)
    for arrival in served:
        url = f"{BASE}{arrival.target.removeprefix(BASE)}"
        assert url in ends, f"no request-phase allow line for {url}"
        before = [size for at, size in synced if at <= arrival.time]
        assert before and max(before) >= ends[url], (
            f"{url} reached the server before its allow line was synced: syncs {synced}, line ends at {ends[url]}, "
            f"arrival {arrival.time}")


# --------------------------------------------------------------------------- report mode says "would deny"


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_report_mode_summary_says_would_deny(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Report mode fetches what consent would deny (that is what it is for) but not what robots.txt disallows, and
    its closing summary counts the first as "would deny", the second as denied."""
    app = LenientPeople(default_robots=Robots("User-agent: *\nDisallow: /u/102\n"))
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report", LOG_LEVEL="INFO")
    with caplog.at_level(logging.INFO), LocalServer(app) as server:
        await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                    urls=[f"{BASE}/u/101", f"{BASE}/u/102", f"{BASE}/u/107"], follow_links=False)
    assert sorted(app.people_served()) == ["101", "107"], app.describe()  # 107: report mode; 102: robots.txt
    closing = [r.getMessage() for r in caplog.records if "closing (" in r.getMessage()]
    assert len(closing) == 1, closing
    assert re.search(r"would deny \d+ \(subject \d+\)", closing[0]), closing[0]  # decisions about 107
    assert re.search(r"\b1 denied \(robots 1\)", closing[0]), closing[0]
    assert "would drop 1" in closing[0], closing[0]  # 107's item


# --------------------------------------------------------------------------- consentcrawl check


def test_check_outside_a_project_is_a_usage_error_and_fetches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Run where there is no project (no ``scrapy.cfg``, no ``settings/platforms.yaml``): no platform is configured,
    so ``check`` cannot tell whose page a URL is. Exit 2 with a line saying so, never 0, and no request sent."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCRAPY_SETTINGS_MODULE", raising=False)
    app = LenientPeople()
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        code = main(["check", f"{BASE}/u/107", "--purpose", "research"])
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert "no platform configured" in err and "Traceback" not in out + err, err
    assert not app.served, app.describe()


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_check_and_the_crawl_agree_on_max_crawl_delay(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """robots.txt asks a ``Crawl-delay`` of 4 s; the project allows at most 1 s. The crawl denies the origin
    (``robots.crawl-delay``) and fetches no profile; ``check --settings`` with the same project denies it too."""
    settings = people_settings(tmp_path, CONSENTCRAWL_MAX_CRAWL_DELAY=1)
    module = tmp_path / "hunt_gap_settings.py"
    module.write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items() if k.startswith("CONSENTCRAWL_")))
    monkeypatch.syspath_prepend(str(tmp_path))
    app = LenientPeople(default_robots=Robots(crawl_delay=4))
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/101"], follow_links=False)
        code = main(["check", f"{BASE}/u/101", "--purpose", "research", "--settings", "hunt_gap_settings",
                     "--json"])
    out, err = capsys.readouterr()
    assert not app.people_served(), app.describe()
    crawl_reasons = {e["reason"] for e in result.audit if e.get("url") == f"{BASE}/u/101"}
    assert crawl_reasons == {"robots.crawl-delay"}, crawl_reasons
    assert code == 1, (out, err)
    assert json.loads(out)["reason"] == "robots.crawl-delay", out


# --------------------------------------------------------------------------- a CSV store is live too


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_withdrawal_appended_to_a_csv_store_mid_crawl_stops_the_fetches(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 11, case 9, for CSV (YAML: tests/test_send_time.py; JSONL: tests/test_file_stores.py): a withdrawal
    row appended to the authorizations CSV while the crawl requests 101 and 102 again and again; no fetch of 101
    more than 2 s after the write."""
    path = tmp_path / "authorizations.csv"
    rows = ["platform,subject,purposes,granted_at,revoked_at,evidence"]
    rows += [f"people,{s},research,2026-01-01T00:00:00Z,,consent form" for s in ("101", "102", "103")]
    path.write_text("\n".join(rows) + "\n")
    settings = people_settings(tmp_path)
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = str(path)
    written: list[float] = []

    def withdraw() -> None:
        with path.open("a") as f:  # one write, as another process appending a row
            f.write(f"people,101,research,2026-01-01T00:00:00Z,{iso(time.time())},withdrawn mid-crawl\n")
            f.flush()
            os.fsync(f.fileno())
        written.append(time.time())

    app = LenientPeople()
    with LocalServer(app) as server, once_served(app, "101", withdraw, after=1.0):
        result = await crawl(make_spider(kind, RepeatLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, follow_links=False, enough=went_on(app, written, GRACE + 2))
    assert written, "the withdrawal was not written during the crawl"
    write = written[0]
    assert any(t < write for t in app.times_served("101")), f"control: 101 not served before\n{app.describe()}"
    assert any(t > write + GRACE + 1 for t in app.times_served("102")), f"control: the crawl went on\n{app.describe()}"
    late = [round(t - write, 2) for t in app.times_served("101") if t > write + GRACE]
    assert not late, f"101 fetched after withdrawing (s after the write): {late}"
    assert any(e["reason"] == "subject.revoked" for e in result.audit if e.get("subject") == "101")


# --------------------------------------------------------------------------- the add-on says what it did


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_the_addon_says_it_took_scrapys_robots_middleware_out(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """``ROBOTSTXT_OBEY = True`` in the project (as ``scrapy startproject`` writes it): the add-on takes Scrapy's
    fail-open RobotsTxtMiddleware out, says so in one INFO line, and that is what the crawl ran with (one
    robots.txt fetch, ours)."""
    settings = people_settings(tmp_path, ROBOTSTXT_OBEY=True, LOG_LEVEL="INFO")
    app = LenientPeople()
    with caplog.at_level(logging.INFO), LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/101"], follow_links=False)
    said = [r.getMessage() for r in caplog.records if "RobotsTxtMiddleware" in r.getMessage()]
    assert len(said) == 1 and "removed" in said[0] and "ROBOTSTXT_OBEY set to False" in said[0], said
    assert "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware" not in result.components[
        "downloader_middlewares"]
    assert len(app.robots_fetches()) == 1 and app.people_served() == ["101"], app.describe()


# --------------------------------------------------------------------------- item-phase terms denies carry evidence

CLOSED_PLATFORM = """  closed:
    domains: [closed.example]
    authorization: {purposes: [archiving], reference: "archive agreement", valid_from: 2026-01-01,
                    valid_until: 2030-01-01}
    profiles: ["/u/{subject}"]
"""


class OffPlatformItemLogic(ListLogic):
    """An off-platform page yields an item about a person of a platform whose grant does not cover the purpose."""

    def parse(self, response: Any) -> Any:
        self.seen.append(response.url)
        yield {"platform": "closed", "subject": "5", "name": "SECRET-NAME-closed-5"}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_item_phase_terms_deny_names_the_person_and_carries_its_evidence(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The item is dropped (``terms.purpose``: the platform grants archiving, the crawl is for research) and its
    audit line, phase ``item``, names the platform and the person and cites the platform's grant."""
    settings = people_settings(tmp_path)
    platforms = Path(settings["CONSENTCRAWL_PLATFORMS"])
    platforms.write_text(platforms.read_text() + CLOSED_PLATFORM)
    app = LenientPeople(hosts=(HOST, "other.example")).page("/page", "<html><body>a page</body></html>")
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, OffPlatformItemLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=["http://other.example/page"], follow_links=False)
    assert result.seen == ["http://other.example/page"], "control: the page was used"
    assert not result.items and "SECRET-NAME-closed-5" not in str(result.items)
    lines = [e for e in result.audit if e.get("phase") == "item"]
    assert len(lines) == 1, lines
    line = lines[0]
    assert (line["verdict"], line["reason"], line["platform"], line["subject"]) == ("deny", "terms.purpose", "closed",
                                                                                     "5"), line
    assert any(e.get("kind") == "platform-authorization" for e in line["evidence"]), line["evidence"]
