"""Log lines at INFO or above that still named a person the crawl may not collect (logs14):

- a denied person's id written as a project writes it into free text: ``profile_107``, ``u107``, ``user-107``,
  fullwidth digits, ``0107``, ``107.0``, ``%31%30%37``, a handle in fullwidth letters; a link relative to the
  page's folder (``./108``) of a person not decided yet;
- lines written before the filter was put on (the spider's ``__init__``), by loggers made after the spider opened,
  and by loggers of other libraries (a database library echoing a pipeline's query of a denied person's item);
- a line two filters rewrote had two DEBUG copies;
- ``scrapy parse`` of a URL in a project whose configuration is invalid named the URL at ERROR.

Real crawls against the lenient people site, judged by every log record at INFO and above (as caplog sees them:
the root logger's handlers) and by what the server was asked; 101 and alice authorized the crawl and are the
controls: their lines keep what the project wrote.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.linecheck import COPY
from consentcrawl_demo.server import LocalServer, Response
from tests.lenient import HOST, LenientPeople, crawl, make_spider, people_settings
from tests.test_hunt import _project, _run_command
from tests.test_parse_command import _loud as _loud_output
from tests.test_person_lines import _WRITTEN, ErrorsFiles, _loud
from tests.test_report_mode_lines import Answering

BASE = f"http://{HOST}"
#: how the project writes a denied person's id into its lines, and what is left at INFO (``<>``: the stand-in)
SPELLED = {"107": ["profile_107", "u107", "user-107", "107.0", "0107", "[107]", "\uff11\uff10\uff17", "%31%30%37",
                   "%2531%2530%2537",  # fullwidth digits, percent-escaped (twice too)
                   "1_07"],  # int() reads digits grouped by underscores (review21)
           "bob": ["user-bob", "@BOB", "[bob]", "\uff22\uff2f\uff22", "%62ob", "%42%4F%42", "./bob"]}
LEFT = {"107": "profile_<> u<> user-<> <> <> [<>] <> <> <> <>", "bob": "user-<> @<> [<>] <> <> <> <URL>"}
#: what must survive: an allowed person's ids, and numbers that are not 107
KEPT = "kept: profile_101 u101 user-101 0101 101.0 ./101 alice ALICE 1070 2107 10.7 1.07 port 8107 %31%30%31"


class FreeText:
    """Asks for 101, 107 and bob (107 and bob did not authorize the crawl: refused); each errback writes the
    person's id the ways a project does, and a link relative to a profile page of 108 (never decided)."""

    seen: list[str]

    async def start(self) -> Any:
        for person in ("101", "107", "bob"):
            yield scrapy.Request(f"{BASE}/u/{person}", callback=self.profile, errback=self.failed)

    def profile(self, response: Any) -> None:
        self.seen.append(response.url)

    def failed(self, failure: Any) -> None:
        person = failure.request.url.rsplit("/", 1)[1]
        self.logger.warning("gave up on %s", " ".join(SPELLED[person]))  # type: ignore[attr-defined]
        self.logger.info("next: ./108, then %s", KEPT)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["ConsentSpider", "ADDONS"])
@deferred_f_from_coro_f
async def test_a_denied_persons_id_in_free_text_is_read_as_a_server_reads_it(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        await crawl(make_spider(kind, FreeText), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch)
    assert app.people_served() == ["101"], app.describe()
    loud = _loud(caplog)
    stand = "<a person consentcrawl did not allow (subject.no-authorization); at DEBUG>"
    gave_up = sorted(line for line in loud if "gave up on" in line)
    url = "<a URL consentcrawl did not allow (subject.no-authorization); at DEBUG>"
    assert gave_up == [f"WARNING freetext: gave up on {LEFT[person].replace('<>', stand).replace('<URL>', url)}"
                       for person in ("107", "bob")], gave_up
    nexts = [line for line in loud if "next:" in line]
    assert nexts == ["INFO freetext: next: <a URL consentcrawl did not allow (undecided); at DEBUG>, "
                     f"then {KEPT}"] * 2, nexts  # 108 was never asked for: whether they allow is not known
    debug = [_WRITTEN.format(r) for r in caplog.records if r.levelno == logging.DEBUG]
    assert [line for line in debug if "gave up on profile_107 u107" in line], "nothing lost: at DEBUG"


# -- lines before the filter was put on, on loggers made later, on other libraries' loggers --------------------------

#: a logger of another library, made when it is first used (as SQLAlchemy's ``echo`` logger), outside the
#: project's packages
LIBRARY_LOGGER = "somedb.engine"
#: a logger of another library with a handler of its own
ECHO_LOGGER = "otherdb.echo"


class Early:
    """Writes, in its ``__init__`` (before the crawl's settings are applied: no one is decided), a person's URL and
    a link on the spider's logger and the root logger."""

    seen: list[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger.info("seeding %s, then ../u/115", f"{BASE}/u/107")  # type: ignore[attr-defined]
        logging.warning("seeds from %s/u/109", BASE)

    async def start(self) -> Any:
        for person in ("101", "107"):
            yield scrapy.Request(f"{BASE}/u/{person}", callback=self.profile)

    def profile(self, response: Any) -> Any:
        self.seen.append(response.url)
        logging.getLogger(f"{__name__}.late.{len(self.seen)}").warning("read %s", response.url)  # made now
        yield {"url": response.url, "name": response.css(".name::text").get()}


#: what the library's own echo handler wrote (SQLAlchemy's ``echo=True`` puts a handler on its logger, which
#: writes each line before the root logger's handlers see it)
ECHOED: list[str] = []


class Echo(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        ECHOED.append(self.format(record))


class Stores:
    """A project's pipeline whose database library echoes each query at INFO: on its own handler, turned on as the
    pipeline opens, and on a logger it makes on first use (through the root logger's handlers)."""

    def open_spider(self) -> None:
        ECHOED.clear()
        logging.getLogger(ECHO_LOGGER).addHandler(Echo())
        logging.getLogger(ECHO_LOGGER).setLevel(logging.INFO)  # as echo=True does

    def close_spider(self) -> None:
        logging.getLogger(ECHO_LOGGER).handlers.clear()
        logging.getLogger(ECHO_LOGGER).setLevel(logging.NOTSET)

    def process_item(self, item: Any) -> Any:
        for name in (LIBRARY_LOGGER, ECHO_LOGGER):
            logging.getLogger(name).info("INSERT INTO people VALUES (%r, %r)", item["name"], item["url"])
        return item


@deferred_f_from_coro_f
async def test_lines_of_a_spiders_init_of_loggers_made_later_and_of_other_libraries_name_no_denied_person(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report", ITEM_PIPELINES={f"{__name__}.Stores": 500})
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        await crawl(make_spider("ConsentSpider", Early), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert sorted(app.people_served()) == ["101", "107"], app.describe()  # report mode sent 107
    loud = _loud(caplog)
    assert [line for line in loud if re.search(r"(?:/u/|SECRET-NAME-)1(?:07|09|15)", line)] == [], loud
    stand = "<a URL consentcrawl did not allow ({}); at DEBUG>"
    for line in (f"INFO early: seeding {stand.format('undecided')}, then {stand.format('undecided')}",
                 f"WARNING root: seeds from {stand.format('undecided')}",
                 f"INFO {LIBRARY_LOGGER}: a line written while the pipelines processed an item consentcrawl did not "
                 "allow (subject.no-authorization; its data at DEBUG)",
                 # the control: 101's lines, written as they were
                 f"INFO {LIBRARY_LOGGER}: INSERT INTO people VALUES ('SECRET-NAME-101', '{BASE}/u/101')"):
        assert line in loud, (line, loud)
    # a logger made as each response comes (late.1, late.2: in the order the two arrive), the control written as it was
    late = sorted(line.split(": ", 1)[1] for line in loud if line.startswith(f"WARNING {__name__}.late."))
    assert late == [f"read {stand.format('subject.no-authorization')}", f"read {BASE}/u/101"], loud
    assert ECHOED == ["INSERT INTO people VALUES ('SECRET-NAME-101', 'http://people.example/u/101')",
                      "a line written while the pipelines processed an item consentcrawl did not allow "
                      "(subject.no-authorization; its data at DEBUG)"], ECHOED
    debug = [_WRITTEN.format(r) for r in caplog.records if r.levelno == logging.DEBUG]
    for text in (f"seeding {BASE}/u/107", "SECRET-NAME-107"):
        assert [line for line in debug if text in line], f"nothing lost: {text} at DEBUG"


# -- one DEBUG copy of a line two filters rewrote -------------------------------------------------------------------


class FileOf107:
    """101's page yields an item with a file on 107's page (report mode sends it: a 404), referred by 107's page."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.profile)

    def profile(self, response: Any) -> Any:
        self.seen.append(response.url)
        yield {"url": response.url, "file_urls": [f"{BASE}/u/107/avatar.png"], "about": f"{BASE}/u/107"}


@deferred_f_from_coro_f
async def test_a_line_two_filters_rewrite_has_one_debug_copy_of_the_line_as_logged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = Answering(LenientPeople(), {"/u/107/avatar.png": Response.text("no such file\n", 404)})
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report", FILES_STORE=str(tmp_path / "files"),
                               ITEM_PIPELINES={f"{ErrorsFiles.__module__}.ErrorsFiles": 300})
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        await crawl(make_spider("ADDONS", FileOf107), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert [s.path for s in app.site.served if s.path == "/u/107/avatar.png"], app.site.describe()
    loud = [line for line in _loud(caplog) if "Error downloading file" in line]
    # Scrapy's line with the request among its arguments, and the one written as text (``media_failed``)
    assert len(loud) == 2 and not [line for line in loud if "/u/107" in line], loud
    assert all(" referred in <<a URL consentcrawl did not allow" in line or " referred in <a request consentcrawl "
               "did not allow" in line for line in loud), loud
    copies = [r.getMessage() for r in caplog.records if getattr(r, COPY, False) and "Error downloading file" in
              r.getMessage()]
    assert len(copies) == 2, copies
    assert [copy for copy in copies if copy.startswith(f"File (code: 404): Error downloading file from <GET {BASE}"
                                                       f"/u/107/avatar.png> referred in <{BASE}/u/107>")], copies
    assert [copy for copy in copies if copy.startswith(f"File (unknown-error): Error downloading file from <GET "
                                                       f"{BASE}/u/107/avatar.png> referred in <{BASE}/u/107>")], copies


# -- scrapy parse in a project whose configuration is invalid --------------------------------------------------------


def test_scrapy_parse_with_an_invalid_configuration_does_not_name_the_url(tmp_path: Path) -> None:
    """ParseCommandLine's fail-closed path: no runtime (the configuration is invalid), nothing decided, nothing
    fetched; Scrapy's last line named the URL typed at ERROR."""
    bad = tmp_path / "bad-platforms.yaml"
    bad.write_text("platforms:\n  people: [\n")
    project = _project(tmp_path, "ADDONS", extra_settings=f"CLOSESPIDER_TIMEOUT = 0\nCONSENTCRAWL_PLATFORMS = "
                                                           f"{str(bad)!r}\n")
    app = LenientPeople()
    with LocalServer(app) as server:
        _, output = _run_command(project, server.proxy, ["parse", "--loglevel", "DEBUG", "--spider", "people",
                                                         f"{BASE}/u/107"])
    assert app.served == [], app.describe()
    loud = _loud_output(output)
    assert [line for line in loud if "/u/107" in line] == [], loud
    said = [line for line in loud if "No response downloaded" in line]
    assert len(said) == 1 and "ERROR" in said[0] and "did not start (configuration error" in said[0], loud
    assert [line for line in output.splitlines() if "DEBUG" in line and f"No response downloaded for: {BASE}/u/107"
            in line], output[-3000:]


# -- scrapy crawl: Scrapy's own root handler, replaced as the crawl's settings are applied ---------------------------

CRAWL_SPIDER = """\
import logging

from consentcrawl import ConsentSpider


class PeopleSpider(ConsentSpider):
    name = "people"
    purpose = "research"
    start_urls = ["http://people.example/u/101"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.logger.info("seeding http://people.example/u/107")

    def parse(self, response):
        yield {"url": response.url}
"""

CRAWL_PIPELINE = """\
import logging


class Opens:
    def open_spider(self):
        logging.getLogger("somedb.pool").info("pool ready for http://people.example/u/109")

    def process_item(self, item):
        logging.getLogger("peopleproj.later").info("stored %s, next ../u/115", item["url"])
        return item
"""


def test_scrapy_crawl_log_names_no_denied_person_from_init_open_spider_or_later_loggers(tmp_path: Path) -> None:
    """``scrapy crawl`` logs through Scrapy's root handler, which the crawler replaces (with the crawl's settings)
    after the spider is made and before the engine: a pipeline's ``open_spider`` line came between it and the
    spider opening, on a handler no filter was on."""
    from tests.test_hunt import _run_scrapy

    project = _project(tmp_path, "ConsentSpider", extra_settings='ITEM_PIPELINES = {"peopleproj.pipelines.Opens": '
                                                                  '500}\nCLOSESPIDER_TIMEOUT = 0\n')
    (project / "peopleproj" / "spiders" / "people.py").write_text(CRAWL_SPIDER)
    (project / "peopleproj" / "pipelines.py").write_text(CRAWL_PIPELINE)
    app = LenientPeople()
    with LocalServer(app) as server:
        _, output = _run_scrapy(project, server.proxy, 60)
    assert app.people_served() == ["101"], f"{app.describe()}\n{output[-3000:]}"
    loud = _loud_output(output)
    assert [line for line in loud if re.search(r"/u/1(?:07|09|15)", line)] == [], loud
    stand = "<a URL consentcrawl did not allow ({}); at DEBUG>"
    for said in (f"[people] INFO: seeding {stand.format('undecided')}",
                 f"[somedb.pool] INFO: pool ready for {stand.format('undecided')}",
                 f"[peopleproj.later] INFO: stored {BASE}/u/101, next {stand.format('undecided')}"):
        assert [line for line in loud if said in line], (said, loud)
