"""``scrapy view URL``: the page it opens must not make the browser go anywhere by itself. The policy it writes
into the page forbids the browser's loads, but a ``<meta http-equiv="refresh">`` is a navigation, which no
``Content-Security-Policy`` directive governs: the browser would leave the allowed page for the URL the page
names (another person's, refused) once the page's delay is over, outside the crawl and its checks.

``scrapy view`` in a subprocess (``tests.test_scrapy_view``), the browser a command recording what it was asked
to open. Judged by the page the browser was given and the site's served log.
"""

from __future__ import annotations

from pathlib import Path

import lxml.html
import pytest

from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.lenient import LenientPeople, secret_name
from tests.test_hunt import _project
from tests.test_scrapy_view import _view

#: what the allowed page's head says, by case: a delay longer than ``METAREFRESH_MAXDELAY``, so that Scrapy's
#: MetaRefreshMiddleware does not follow it in the crawl (the browser waits it out)
HEADS = {
    "quoted": '<meta http-equiv="refresh" content="120; url=http://people.example/u/107">',
    "unquoted, capitals": "<META HTTP-EQUIV=Refresh CONTENT='300;URL=http://people.example/u/107'>",
    "content first": '<meta content="150;url=/u/107" http-equiv = "REFRESH" >',
    "an entity in the value": '<meta http-equiv="&#114;efresh" content="150;url=/u/107">',
}


def refreshes(page: str) -> list[str]:
    """The refreshes of a page as an HTML parser reads them (attribute names lowercased, entities decoded)."""
    document = lxml.html.fromstring(page)
    return [meta.get("content", "") for meta in document.iter("meta")
            if (meta.get("http-equiv") or "").strip().lower() == "refresh"]


class RefreshingPeople(LenientPeople):
    """The people site, 101's page telling the browser to go to 107's."""

    head = ""

    def _answer(self, request: LoggedRequest, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        if path == "/u/101":
            body = (f"<!DOCTYPE html><html><head>{self.head}</head><body><h1 class='name'>{secret_name('101')}"
                    "</h1></body></html>")
            return kind, Response(200, {"Content-Type": "text/html; charset=utf-8"}, body.encode())
        return super()._answer(request, path, kind, person)


@pytest.mark.parametrize("case", sorted(HEADS))
def test_scrapy_view_opens_no_page_that_refreshes_elsewhere(case: str, tmp_path: Path) -> None:
    """Before: the page opened kept its refresh, and the browser went to 107's page (no authorization) by
    itself."""
    project = _project(tmp_path, "ADDONS")
    app = RefreshingPeople()
    app.head = HEADS[case]
    opened = tmp_path / "opened.txt"
    with LocalServer(app) as server:
        _code, output = _view(project, server.proxy, "http://people.example/u/101", opened)
    record = opened.read_text(encoding="utf-8") if opened.exists() else ""
    assert secret_name("101") in record, f"control: the allowed page opens\n{output}\n{app.describe()}"
    assert record.startswith("file://") and not refreshes(record.split("\n", 1)[1]), record
