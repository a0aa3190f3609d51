"""``open_in_browser`` in a project that uses consentcrawl: a spider's callback that calls Scrapy's
``scrapy.utils.response.open_in_browser(response)`` opened the page as it came, and the browser then loaded what it
names (other people's pages and images) and followed its refresh, outside the crawl and its checks. Now Scrapy's
function opens nothing in such a crawl (one ERROR line says what to call); ``consentcrawl.viewing.open_in_browser``
opens the page as ``scrapy view`` does (its loads forbidden, its refresh renamed), and so does ``view(response)``
in ``scrapy shell``.

Crawls and the shell in subprocesses (``tests.test_scrapy_view``: the browser is a command that records what it was
asked to open), against the lenient people site whose 101 page refreshes to 107's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from consentcrawl.viewing import NO_LOADS
from consentcrawl_demo.server import LocalServer
from tests.lenient import secret_name
from tests.test_hunt import ROOT, _project
from tests.test_scrapy_view import BROWSER, _settings_without
from tests.test_scrapy_view_refresh import HEADS, RefreshingPeople, refreshes

SPIDER = """\
    from consentcrawl import ConsentSpider

    class PeopleSpider(ConsentSpider):
        name = "people"
        purpose = "research"
        start_urls = ["http://people.example/u/101"]
        how = "scrapy"

        def parse(self, response):
            if self.how == "scrapy":
                from scrapy.utils.response import open_in_browser
            else:
                from consentcrawl.viewing import open_in_browser
            open_in_browser(response)
            yield {"url": response.url}
"""


def _scrapy(project: Path, proxy: str, opened: Path, *args: str) -> str:
    browser = project / "browser.py"
    browser.write_text(BROWSER)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("SCRAPY_")}
    env.update(http_proxy=proxy, PYTHONPATH=os.pathsep.join([str(project), str(ROOT)]),
               BROWSER=f"{sys.executable} {browser} %s {opened}")
    proc = subprocess.run([sys.executable, "-m", "scrapy", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    return proc.stdout + proc.stderr


def _people_project(tmp_path: Path) -> Path:
    project = _project(tmp_path, "ConsentSpider")
    _settings_without(project, "ADDONS")
    (project / "peopleproj" / "spiders" / "people.py").write_text(textwrap.dedent(SPIDER))
    return project


def test_scrapys_open_in_browser_opens_nothing_in_a_crawl(tmp_path: Path) -> None:
    project = _people_project(tmp_path)
    app = RefreshingPeople()
    app.head = HEADS["quoted"]
    opened = tmp_path / "opened.txt"
    with LocalServer(app) as server:
        output = _scrapy(project, server.proxy, opened, "crawl", "people")
    assert "101" in app.people_served(), f"control: the page is crawled\n{output[-2000:]}"
    assert "'item_scraped_count': 1" in output, output[-2000:]  # the callback ran to its end
    assert not opened.exists(), opened.read_text()
    assert "ERROR: consentcrawl: scrapy.utils.response.open_in_browser opens nothing" in output, output[-2000:]


@pytest.mark.parametrize("where", ["callback", "shell"])
def test_consentcrawls_open_in_browser_opens_the_page_without_loads_or_refresh(where: str, tmp_path: Path) -> None:
    project = _people_project(tmp_path)
    app = RefreshingPeople()
    app.head = HEADS["quoted"]
    opened = tmp_path / "opened.txt"
    with LocalServer(app) as server:
        if where == "callback":
            output = _scrapy(project, server.proxy, opened, "crawl", "people", "-a", "how=consentcrawl")
        else:
            output = _scrapy(project, server.proxy, opened, "shell", "-c", "view(response)",
                             "http://people.example/u/101")
    record = opened.read_text(encoding="utf-8") if opened.exists() else ""
    assert secret_name("101") in record, f"the page opens\n{output[-2000:]}"
    assert f'content="{NO_LOADS}"' in record, record
    assert record.startswith("file://") and not refreshes(record.split("\n", 1)[1]), record
