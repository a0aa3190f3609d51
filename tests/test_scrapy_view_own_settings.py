"""``scrapy view --spider NAME`` in a project that plugs consentcrawl in through ``ConsentSpider`` alone, NAME a
plain ``scrapy.Spider`` of the project whose ``update_settings`` applies its settings itself without calling
``super()`` (as Scrapy's own implementation reads, a common copy): the spider ``view`` guards is a subclass of it
and of ``ConsentSpider``, and the project's method, first in its MRO, never reached ``ConsentSpider``'s, so the
add-on was never installed: a page consentcrawl refuses was downloaded and opened.

``scrapy view`` in a subprocess (``tests.test_scrapy_view``), judged by the site's served log and the browser's
record."""

from __future__ import annotations

import textwrap
from pathlib import Path

from consentcrawl_demo.server import LocalServer
from tests.lenient import LenientPeople, secret_name
from tests.test_hunt import _project
from tests.test_scrapy_view import _settings_without, _view

PLAIN = """\
    import scrapy

    class PlainSpider(scrapy.Spider):
        name = "plain"
        custom_settings = {"DOWNLOAD_DELAY": 0}

        @classmethod
        def update_settings(cls, settings):
            settings.setdict(cls.custom_settings or {}, priority="spider")

        def parse(self, response):
            yield {"url": response.url}
"""


def test_scrapy_view_guards_a_spider_whose_update_settings_does_not_call_super(tmp_path: Path) -> None:
    project = _project(tmp_path, "ConsentSpider")
    _settings_without(project, "ADDONS")
    (project / "peopleproj" / "spiders" / "plain.py").write_text(textwrap.dedent(PLAIN))
    app = LenientPeople()
    opened = tmp_path / "opened.txt"
    with LocalServer(app) as server:
        _code, output = _view(project, server.proxy, "http://people.example/u/107", opened, "--spider", "plain")
        refused_served = list(app.people_served())
        _code, output_ok = _view(project, server.proxy, "http://people.example/u/101", opened, "--spider", "plain")
    assert "101" in app.people_served(), f"control: an allowed page is fetched\n{output_ok}\n{app.describe()}"
    record = opened.read_text(encoding="utf-8") if opened.exists() else ""
    assert secret_name("101") in record, f"control: and opened\n{output_ok}"
    assert "107" not in refused_served, f"the refused page was downloaded\n{app.describe()}\n{output}"
    assert secret_name("107") not in record and "/u/107" not in record, record
