"""``scrapy shell URL`` and ``scrapy parse URL`` choose the project spider that claims the URL's domain, and Scrapy
logs at ERROR, before anything is decided, ``More than one spider can handle: <GET url> - a, b`` (shell, when two
project spiders claim it) and ``Unable to find spider for: <url>`` (parse, when none does). In a project that uses
consentcrawl a refused URL is never named at INFO or above (docs/commands.md): those lines name the URL given
without it (it is in the audit log when the command decides it). Run in a subprocess against the lenient
``people`` site; judged by the site's served log and the command's own output."""

from __future__ import annotations

import textwrap
from pathlib import Path

from consentcrawl_demo.server import LocalServer
from tests.lenient import LenientPeople
from tests.test_hunt import BASE, _run_command
from tests.test_scrapy_commands import _shown, consent_spider_project

CLAIMING = """\
    from consentcrawl import ConsentSpider

    class First(ConsentSpider):
        name = "first"
        purpose = "research"
        allowed_domains = ["people.example"]

    class Second(ConsentSpider):
        name = "second"
        purpose = "research"
        allowed_domains = ["people.example"]
"""


def test_the_shell_names_no_refused_url_when_two_spiders_claim_it(tmp_path: Path) -> None:
    project = consent_spider_project(tmp_path)
    (project / "peopleproj" / "spiders" / "claiming.py").write_text(textwrap.dedent(CLAIMING))
    app = LenientPeople()
    with LocalServer(app) as server:
        _, output = _run_command(project, server.proxy, ["shell", "--loglevel", "INFO", "-c",
                                                            "response and response.status", f"{BASE}/u/107"],
                                    timeout=60)
    assert "107" not in app.people_served(), app.describe()
    shown = _shown(output)
    assert "More than one spider can handle" in shown, shown[-3000:]  # control: Scrapy's line, without the URL
    assert "/u/107" not in shown, shown[-3000:]


def test_parse_names_no_url_when_no_spider_claims_it(tmp_path: Path) -> None:
    project = consent_spider_project(tmp_path)
    app = LenientPeople()
    with LocalServer(app) as server:
        _, output = _run_command(project, server.proxy, ["parse", "--loglevel", "INFO", f"{BASE}/u/107"],
                                    timeout=60)
    assert "107" not in app.people_served(), app.describe()
    shown = _shown(output)
    assert "Unable to find spider for" in shown, shown[-3000:]
    assert "/u/107" not in shown, shown[-3000:]
