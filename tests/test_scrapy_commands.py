"""``scrapy fetch URL``, ``scrapy shell URL`` and ``fetch(url)`` typed in ``scrapy shell``, in a project that plugs
consentcrawl in through ``ConsentSpider`` alone (no ``ADDONS`` in its settings, the README's other way in).

Before: each used Scrapy's ``DefaultSpider`` (or the plain spider ``--spider`` named), which no check guards, and
fetched the profile of a person who has not authorized the crawl; ``fetch`` printed it. Now the spider a command
uses is guarded (``consentcrawl.commands``): the URL is decided as a crawl decides it (robots, terms, subject, at
send time), a refused URL is named by its reason code only, and ``fetch`` exits 1.

Each command runs in a subprocess against the lenient ``people`` site; judged by the site's served log and the
command's own output.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from consentcrawl_demo.server import LocalServer
from tests.lenient import LenientPeople, Robots, secret_name
from tests.test_hunt import BASE, ROOT, _project, _run_command
from tests.test_scrapy_view import _settings_without
from tests.test_scrapy_view_own_settings import PLAIN

#: how each command is asked for a page, and what it prints for it (the page's status)
COMMANDS = {
    "fetch": lambda url: ["fetch", url],
    "shell URL": lambda url: ["shell", "-c", "response and response.status", url],
    "fetch() in the shell": lambda url: ["shell", "-c", f"fetch({url!r}) or (response and response.status)"],
}
#: the spider the command uses: Scrapy's DefaultSpider (no project spider claims the domain), the project's
#: ConsentSpider, a plain ``scrapy.Spider`` of the project
SPIDERS = {"DefaultSpider": (), "--spider people": ("--spider", "people"), "--spider plain": ("--spider", "plain")}


def consent_spider_project(tmp_path: Path) -> Path:
    project = _project(tmp_path, "ConsentSpider")
    _settings_without(project, "ADDONS")
    (project / "peopleproj" / "spiders" / "plain.py").write_text(textwrap.dedent(PLAIN))
    return project


def _shown(output: str) -> str:
    """What the command shows at INFO or above (and prints): every line but DEBUG ones."""
    return "\n".join(line for line in output.splitlines() if "DEBUG" not in line)


def _run(project: Path, proxy: str, command: str, spider: tuple[str, ...], url: str) -> tuple[int | None, str]:
    args = COMMANDS[command](url)
    return _run_command(project, proxy, [args[0], "--loglevel", "INFO", *spider, *args[1:]], timeout=60)


@pytest.mark.parametrize("spider", sorted(SPIDERS))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_does_not_fetch_or_show_a_refused_persons_page(command: str, spider: str, tmp_path: Path) -> None:
    """107 has no authorization: nothing is sent for their page, the command says why (the reason code) and
    shows neither the page nor its URL; 101's page (the control) is fetched and shown."""
    project = consent_spider_project(tmp_path)
    app = LenientPeople()
    with LocalServer(app) as server:
        code, output = _run(project, server.proxy, command, SPIDERS[spider], f"{BASE}/u/107")
        refused_served = list(app.people_served())
        control_code, control = _run(project, server.proxy, command, SPIDERS[spider], f"{BASE}/u/101")
    assert "101" in app.people_served(), f"control: an allowed page is fetched\n{control[-2000:]}\n{app.describe()}"
    assert control_code == 0, control[-2000:]
    if command == "fetch":
        assert secret_name("101") in control, control[-2000:]
    else:
        assert "200" in control.splitlines(), control[-2000:]
    assert "107" not in refused_served, f"the refused page was downloaded\n{app.describe()}\n{output[-3000:]}"
    shown = _shown(output)
    assert "subject.no-authorization: the " in shown and "was not fetched" in shown, shown[-2000:]
    assert secret_name("107") not in output and "/u/107" not in shown, shown[-3000:]
    assert code == (1 if command == "fetch" else 0), shown[-2000:]
    assert "subject.no-authorization" in (tmp_path / "audit.jsonl").read_text()


#: a check other than the person's, each refusing an authorized person's page: (robots.txt, URL, reason, person)
STAGES = {
    "robots": ("User-agent: *\nDisallow: /u/101\n", f"{BASE}/u/101", "robots.disallowed", "101"),
    "terms": ("User-agent: *\nAllow: /\n", "http://127.0.0.1/u/106", "terms.ip-host", "106"),
}


@pytest.mark.parametrize("stage", sorted(STAGES))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_decides_every_stage_as_a_crawl_does(command: str, stage: str, tmp_path: Path) -> None:
    """An authorized person's page that robots.txt disallows, or named by an IP-address host no platform lists:
    the command refuses it as a crawl does (the control, 102, is fetched)."""
    robots, url, reason, person = STAGES[stage]
    project = consent_spider_project(tmp_path)
    app = LenientPeople(default_robots=Robots(robots))
    with LocalServer(app) as server:
        code, output = _run(project, server.proxy, command, (), url)
        _, control = _run(project, server.proxy, command, (), f"{BASE}/u/102")
    assert "102" in app.people_served(), f"control: an allowed page is fetched\n{control[-2000:]}\n{app.describe()}"
    assert person not in app.people_served(), f"a refused page was fetched\n{app.describe()}"
    shown = _shown(output)
    assert f"{reason}: the " in shown and secret_name(person) not in output, shown[-2000:]
    assert code == (1 if command == "fetch" else 0), shown[-2000:]


@pytest.mark.parametrize("spider", ["people", "plain"])
def test_scrapy_parse_with_a_plain_spider_is_guarded(spider: str, tmp_path: Path) -> None:
    """``scrapy parse --spider plain URL``: the plain spider's crawl is guarded as the other commands' are; before,
    in a ConsentSpider-only project, it fetched and printed 107's page."""
    project = consent_spider_project(tmp_path)
    app = LenientPeople()
    command = ["parse", "--loglevel", "INFO", "--spider", spider]
    with LocalServer(app) as server:
        _, output = _run_command(project, server.proxy, [*command, f"{BASE}/u/107"], timeout=60)
        refused_served = list(app.people_served())
        _, control = _run_command(project, server.proxy, [*command, f"{BASE}/u/101"], timeout=60)
    assert "101" in app.people_served(), f"control: an allowed page is fetched\n{control[-2000:]}\n{app.describe()}"
    assert "107" not in refused_served, f"the refused page was downloaded\n{app.describe()}\n{output[-3000:]}"
    shown = _shown(output)
    assert "subject.no-authorization" in shown and "/u/107" not in shown, shown[-2000:]


def test_scrapy_fetch_without_a_purpose_fetches_nothing(tmp_path: Path) -> None:
    """The DefaultSpider ``fetch`` guards has no purpose in a project without ``CONSENTCRAWL_PURPOSE``: the crawl
    refuses to start (fail closed) and nothing is fetched, not even an allowed page."""
    project = consent_spider_project(tmp_path)
    _settings_without(project, "CONSENTCRAWL_PURPOSE")
    app = LenientPeople()
    with LocalServer(app) as server:
        code, output = _run(project, server.proxy, "fetch", (), f"{BASE}/u/101")
    assert not app.served, app.describe()
    assert code != 0 and "purpose" in output.lower(), output[-2000:]


def test_scrapy_fetch_in_a_project_without_consentcrawl_is_scrapys(tmp_path: Path) -> None:
    """Control: where the project does not use consentcrawl, ``fetch`` is Scrapy's own: it fetches and prints the
    page, and writes no audit log."""
    project = _project(tmp_path, "ADDONS")
    _settings_without(project, "ADDONS")
    app = LenientPeople()
    with LocalServer(app) as server:
        code, output = _run(project, server.proxy, "fetch", (), f"{BASE}/u/107")
    assert code == 0 and secret_name("107") in output, output[-2000:]
    assert not (tmp_path / "audit.jsonl").exists()


#: what ``scrapy version`` imports in a project that uses consentcrawl, and prints
PROBE = """\
import sys
from scrapy.cmdline import execute

sys.argv = ["scrapy", *sys.argv[1:]]
try:
    execute()
except SystemExit:
    pass
from scrapy.cmdline import _get_commands_from_entry_points
print("COMMANDS", sorted(f"{name}={type(c).__module__}" for name, c in _get_commands_from_entry_points(True).items()))
print("LOADED", sorted(name for name in sys.modules if name.split(".")[0] == "consentcrawl"))
"""


def _loaded(project: Path, proxy: str, *args: str) -> tuple[list[str], str]:
    """The consentcrawl modules ``scrapy ARGS`` loaded, and the modules of the entry point's commands."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("SCRAPY_")}
    env.update(http_proxy=proxy, PYTHONPATH=os.pathsep.join([str(project), str(ROOT)]))
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("COMMANDS ", "LOADED ")))
    assert proc.returncode == 0 and "LOADED" in lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    return ast.literal_eval(lines["LOADED"]), lines["COMMANDS"]


def test_a_scrapy_command_that_does_not_crawl_loads_no_consentcrawl_runtime(tmp_path: Path) -> None:
    """The ``scrapy.commands`` entry point (fetch, shell, view) is loaded by every ``scrapy`` command: it loads
    ``consentcrawl.commands`` and what that needs (the package's lazy ``__init__``, the internals module), never
    the crawl's modules. Control: ``scrapy fetch`` in the same project loads them (it decides)."""
    project = consent_spider_project(tmp_path)
    loaded, commands = _loaded(project, "http://127.0.0.1:9", "version")
    internals = {name for name in loaded if name.startswith("consentcrawl._scrapy_internals")}  # a module by job
    assert set(loaded) - internals == {"consentcrawl", "consentcrawl.commands"}, loaded
    assert "consentcrawl._scrapy_internals" in internals, loaded
    for name in ("fetch", "parse", "shell", "view"):
        assert f"{name}=consentcrawl.commands" in commands, commands
    app = LenientPeople()
    with LocalServer(app) as server:
        fetched, _ = _loaded(project, server.proxy, "fetch", "--nolog", f"{BASE}/u/101")
    assert "101" in app.people_served(), app.describe()
    assert {"consentcrawl.runtime", "consentcrawl.addon", "consentcrawl.engine"} <= set(fetched), fetched
