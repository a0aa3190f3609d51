"""``scrapy parse <url>`` for a URL consentcrawl refuses: Scrapy's parse command ends with ``No response downloaded
for: <url>`` at ERROR, the refused person's URL in a log that is kept and shipped. At INFO and above the line says
the request was refused, with the reason code; the URL is in the audit log (and at DEBUG). Real ``scrapy parse``
runs in a project with the add-on, against the lenient people site, judged by its served log and the output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from consentcrawl_demo.server import LocalServer
from tests.lenient import LenientPeople, Robots
from tests.test_hunt import BASE, _project, _run_command, assert_not_served


def _loud(output: str) -> list[str]:
    """The lines Scrapy's log format writes at INFO and above (``date [logger] LEVEL: message``)."""
    return [line for line in output.splitlines() if re.search(r"\] (?:INFO|WARNING|ERROR|CRITICAL): ", line)]


@pytest.mark.parametrize(("person", "reason"), [("107", "subject.no-authorization"), ("102", "robots.disallowed")])
def test_scrapy_parse_of_a_refused_url_names_the_reason_not_the_url(person: str, reason: str, tmp_path: Path) -> None:
    project = _project(tmp_path, "ADDONS", extra_settings="CLOSESPIDER_TIMEOUT = 0\n")
    app = LenientPeople(default_robots=Robots("User-agent: *\nDisallow: /u/102\n"))
    command = ["parse", "--loglevel", "DEBUG", "--spider", "people"]
    with LocalServer(app) as server:
        _, control = _run_command(project, server.proxy, [*command, f"{BASE}/u/101"])
        _, output = _run_command(project, server.proxy, [*command, f"{BASE}/u/{person}"])
    assert "101" in app.people_served(), f"control: 101 is parsed\n{app.describe()}\n{control[-2000:]}"
    assert_not_served(app, {person})
    named = [line for line in _loud(output) if f"/u/{person}" in line]
    assert named == [], named
    said = [line for line in _loud(output) if "No response downloaded" in line]
    assert len(said) == 1 and f"refused ({reason}" in said[0] and "ERROR" in said[0], _loud(output)
    # the URL typed is not lost: at DEBUG
    assert [line for line in output.splitlines() if "DEBUG" in line and "No response downloaded" in line
            and f"/u/{person}" in line], output[-3000:]
    # the control's run downloads its page: no such line
    assert not [line for line in _loud(control) if "No response downloaded" in line], _loud(control)
