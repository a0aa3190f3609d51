"""``scrapy view URL`` in a project with the add-on: a page consentcrawl refuses is not downloaded and no browser
opens; a page it allows opens, and the browser's own loads (its images, scripts, frames) are outside the crawl.

``scrapy view`` in a subprocess, in a Scrapy project as ``scrapy startproject`` leaves it with the add-on in its
settings, against the lenient ``people`` site; the "browser" is a command (``BROWSER``) that records what it was
asked to open. Judged by the site's served log and the browser's record.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from consentcrawl.viewing import NO_LOADS
from consentcrawl_demo.server import LocalServer
from tests.lenient import LenientPeople, secret_name
from tests.test_hunt import ROOT, _project

BROWSER = """\
import sys
from pathlib import Path

url = sys.argv[1]
path = Path(url.removeprefix("file://"))
page = path.read_text(encoding="utf-8", errors="replace") if url.startswith("file://") else ""
with open(sys.argv[2], "a", encoding="utf-8") as f:
    f.write(url + "\\n" + page + "\\n")
"""


def _view(project: Path, proxy: str, url: str, opened: Path, *extra: str) -> tuple[int, str]:
    browser = project / "browser.py"
    browser.write_text(BROWSER)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("SCRAPY_")}
    env.update(http_proxy=proxy, PYTHONPATH=os.pathsep.join([str(project), str(ROOT)]),
               BROWSER=f"{sys.executable} {browser} %s {opened}")
    proc = subprocess.run([sys.executable, "-m", "scrapy", "view", *extra, url], cwd=project, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _settings_without(project: Path, *names: str) -> None:
    settings = project / "peopleproj" / "settings.py"
    settings.write_text("".join(line for line in settings.read_text().splitlines(keepends=True)
                                if not line.startswith(names)))


#: (spider kind, the project's ADDONS left out, ``scrapy view`` options)
VARIANTS = {
    "ADDONS in the settings": ("ADDONS", False, ()),
    "ConsentSpider, --spider": ("ConsentSpider", True, ("--spider", "people")),
    "ConsentSpider, DefaultSpider": ("ConsentSpider", True, ()),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_scrapy_view_does_not_download_or_open_a_page_consentcrawl_refuses(variant: str, tmp_path: Path) -> None:
    """107 has no authorization: ``scrapy view`` sends nothing for their page and opens no browser; 101's opens,
    with a policy that forbids the browser's own loads.

    Before: in a project that plugs consentcrawl in through ``ConsentSpider`` alone, ``scrapy view URL`` (no
    ``--spider``; no project spider claims the domain) downloaded 107's page with Scrapy's ``DefaultSpider``,
    unguarded, and opened it."""
    kind, no_addons, extra = VARIANTS[variant]
    project = _project(tmp_path, kind)
    if no_addons:
        _settings_without(project, "ADDONS")
    app = LenientPeople()
    opened = tmp_path / "opened.txt"
    with LocalServer(app) as server:
        _code, output = _view(project, server.proxy, "http://people.example/u/107", opened, *extra)
        refused_served = list(app.people_served())
        _code, output_ok = _view(project, server.proxy, "http://people.example/u/101", opened, *extra)
    assert "101" in app.people_served(), f"control: an allowed page is fetched\n{output_ok}\n{app.describe()}"
    record = opened.read_text(encoding="utf-8") if opened.exists() else ""
    assert secret_name("101") in record, f"control: and opened in the browser\n{output_ok}"
    assert "107" not in refused_served, f"the refused page was downloaded\n{app.describe()}\n{output}"
    assert secret_name("107") not in record and "/u/107" not in record, record
    assert "subject.no-authorization" in (tmp_path / "audit.jsonl").read_text(), output
    assert f'content="{NO_LOADS}"' in record, record


def test_scrapy_view_without_a_purpose_fetches_nothing(tmp_path: Path) -> None:
    """A ConsentSpider project without ``CONSENTCRAWL_PURPOSE``: the DefaultSpider ``view`` guards has no purpose,
    so the crawl refuses to start (one line saying so) and nothing is fetched, not even an allowed page."""
    project = _project(tmp_path, "ConsentSpider")
    _settings_without(project, "ADDONS", "CONSENTCRAWL_PURPOSE")
    app = LenientPeople()
    opened = tmp_path / "opened.txt"
    with LocalServer(app) as server:
        code, output = _view(project, server.proxy, "http://people.example/u/101", opened)
    assert not app.served, app.describe()
    assert not opened.exists()
    assert code != 0 and "purpose" in output.lower(), output[-2000:]


def test_scrapy_view_in_a_project_without_consentcrawl_is_scrapys(tmp_path: Path) -> None:
    """Control: the command registered for ``view`` is Scrapy's own where the project does not use consentcrawl:
    the page is fetched and opened as Scrapy opens it (no policy added)."""
    project = _project(tmp_path, "ADDONS")
    _settings_without(project, "ADDONS")
    app = LenientPeople()
    opened = tmp_path / "opened.txt"
    with LocalServer(app) as server:
        _code, output = _view(project, server.proxy, "http://people.example/u/101", opened)
    record = opened.read_text(encoding="utf-8") if opened.exists() else ""
    assert secret_name("101") in record, output
    assert "Content-Security-Policy" not in record, record
