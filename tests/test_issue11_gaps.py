"""Issue 11 bullets that had no crawl-level test yet: each against the lenient ``people`` site
(:mod:`tests.lenient`), judged by what it served, for a ``ConsentSpider`` and a plain spider with the ``ADDONS``
line.

- the audit log is fdatasync'ed by default, each allow's line before its request reaches the server;
- report mode's closing summary says "would deny";
- ``consentcrawl check`` outside a project (no platform) is a usage error, not an allow, and fetches nothing;
- ``consentcrawl check`` and a crawl built from the same settings agree on ``CONSENTCRAWL_MAX_CRAWL_DELAY``.
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
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, Robots, crawl, make_spider, people_settings

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
