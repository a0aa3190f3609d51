"""Fresh-eyes leak hunt (hunt10): what Scrapy's own commands and components do with a denied person's data.

Each test runs ``scrapy`` in a subprocess (as a user would) or a real crawl in this process, against the lenient
people site of :mod:`tests.lenient`, and judges by the site's served log and by what the user is shown (stdout, log
lines at INFO or above). Each test failed on main (6f04666) and passes since its fix.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from consentcrawl_demo.server import LocalServer
from tests.lenient import AUTHORIZED, HOST, KINDS, LenientPeople, secret_name
from tests.test_hunt import _project, _run_command, assert_not_served

BASE = f"http://{HOST}"
#: people on the site who did not authorize the crawl
DENIED = {str(i) for i in range(104, 111)}

#: a page of cards, one per person (a listing, a search result), each naming its person
CARDS = "".join(f'<div class="card" data-id="{i}"><span class="name">{secret_name(str(i))}</span>'
                f'<a class="profile-link" href="/u/{i}">profile</a></div>' for i in range(101, 111))

CARDS_SPIDER = {
    "ConsentSpider": """\
        from consentcrawl import ConsentSpider

        class PeopleSpider(ConsentSpider):
            name = "people"
            purpose = "research"
    """,
    "ADDONS": """\
        import scrapy

        class PeopleSpider(scrapy.Spider):
            name = "people"
    """,
}

CARDS_CALLBACKS = """\
def parse(self, response):
    for card in response.css(".card"):
        yield {"platform": "people", "subject": card.attrib["data-id"], "name": card.css(".name::text").get()}
    for href in response.css("a.profile-link::attr(href)").getall():
        yield response.follow(href, callback=self.parse_profile)

def parse_profile(self, response):
    yield {"name": response.css(".name::text").get()}
"""


def _cards_project(tmp_path: Path, kind: str) -> Path:
    """The project of :func:`tests.test_hunt._project` with a spider that reads the cards page."""
    project = _project(tmp_path, kind, extra_settings="CLOSESPIDER_TIMEOUT = 0\n")
    (project / "peopleproj" / "spiders" / "people.py").write_text(
        textwrap.dedent(CARDS_SPIDER[kind]) + "\n" + textwrap.indent(textwrap.dedent(CARDS_CALLBACKS), "    "))
    return project


# -- scrapy parse prints a callback's output without the guard -----------------------------------------------------


@pytest.mark.parametrize("options", [[], ["--pipelines"], ["--depth", "2"]])
@pytest.mark.parametrize("kind", KINDS)
def test_scrapy_parse_shows_no_item_or_link_of_a_denied_person(kind: str, options: list[str],
                                                               tmp_path: Path) -> None:
    """``scrapy parse URL`` runs the callback itself and prints the items it yields (``# Scraped Items``) and the
    requests (``# Requests``) without the item pipelines or the spider middlewares' verdict: on a page of cards,
    the name of every person who did not authorize the crawl was printed, which ``scrapy crawl`` drops in the
    guard pipeline (``--pipelines`` runs the pipelines but prints every item all the same). Now what the command
    shows has been through the spider middleware's link check and the guard: the cards of 101-103 and the links to
    their profiles only, as ``scrapy crawl`` would keep."""
    project = _cards_project(tmp_path, kind)
    app = LenientPeople().page("/cards", f"<html><body>{CARDS}</body></html>")
    with LocalServer(app) as server:
        code, output = _run_command(project, server.proxy, ["parse", "-L", "INFO", "--spider", "people", "-c", "parse",
                                                            *options, f"{BASE}/cards"])
    assert code == 0, output[-3000:]
    assert secret_name("101") in output, f"control: the authorized person's card is shown\n{output[-3000:]}"
    shown = [person for person in sorted(DENIED) if secret_name(person) in output]
    assert not shown, f"cards of denied people shown: {shown}\n{output[-3000:]}"
    named = set(re.findall(r"/u/(\d+)", output))
    assert "101" in named, f"control: the link to the authorized person's profile is shown\n{output[-3000:]}"
    named = sorted(named & DENIED)
    assert not named, f"links to denied people shown: {named}\n{output[-3000:]}"
    assert_not_served(app, DENIED)
    if "--depth" in options:
        assert sorted(set(app.people_served())) == sorted(p for p in AUTHORIZED if p.isdigit()), app.describe()
