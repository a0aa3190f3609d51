"""``scrapy view URL`` on a UTF-16 page: the page it opens must still forbid the browser's own loads and carry no
navigation. Before: the rewriting matched ASCII bytes, which a UTF-16 page has none of; the policy was inserted as
ASCII bytes into UTF-16 text (read by the browser as garbage, not as a ``<meta>``) and the page's refresh was kept,
so the browser loaded 107's avatar and went to 107's page by itself.

``scrapy view`` in a subprocess (``tests.test_scrapy_view``), the browser a command that keeps the bytes it was
asked to open. The file is then read as a browser reads it (its byte order mark, else the first ``<meta>``
charset in its first 1024 bytes, UTF-16 there meaning UTF-8, else windows-1252) and parsed as HTML; no reading
of it, that one or UTF-16, may hold a refresh.
"""

from __future__ import annotations

import codecs
import os
import re
import subprocess
import sys
from pathlib import Path

import lxml.html
import pytest

from consentcrawl.viewing import NO_LOADS
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.lenient import LenientPeople, secret_name
from tests.test_hunt import ROOT, _project

#: the page: a refresh to 107's page and 107's avatar
PAGE = ('<!DOCTYPE html><html><head><meta charset="utf-16">'
        '<meta http-equiv="refresh" content="120; url=http://people.example/u/107"></head>'
        f"<body><h1 class='name'>{secret_name('101')}</h1><img src='http://people.example/u/107/avatar'></body></html>")
#: how 101's page is sent: its Content-Type, and its bytes
CASES = {
    "BOM, charset in the header": ("text/html; charset=utf-16", codecs.BOM_UTF16_LE + PAGE.encode("utf-16-le")),
    "little-endian, no BOM": ("text/html; charset=utf-16le", PAGE.encode("utf-16-le")),
    "big-endian BOM, no charset": ("text/html", codecs.BOM_UTF16_BE + PAGE.encode("utf-16-be")),
}
BROWSER = """\
import shutil, sys
shutil.copyfile(sys.argv[1].removeprefix("file://"), sys.argv[2])
"""


class Utf16People(LenientPeople):
    case = ""

    def _answer(self, request: LoggedRequest, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        if path == "/u/101":
            content_type, body = CASES[self.case]
            return kind, Response(200, {"Content-Type": content_type}, body)
        return super()._answer(request, path, kind, person)


def as_a_browser_reads(data: bytes) -> str:
    """The WHATWG encoding sniffing, in short: a byte order mark, else the first ``<meta>`` charset (or
    ``http-equiv`` Content-Type charset) in the first 1024 bytes (UTF-16 there means UTF-8), else windows-1252."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                          (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return data[len(bom):].decode(encoding, "replace")
    declared = re.search(rb"<meta[^>]*?charset\s*=\s*[\"']?([\w-]+)", data[:1024], re.IGNORECASE)
    encoding = declared[1].decode().lower() if declared else "windows-1252"
    encoding = "utf-8" if encoding.startswith("utf-16") else encoding
    return data.decode(encoding, "replace")


def refreshes_in_any_reading(data: bytes) -> list[str]:
    """The refreshes of the page read every way a browser might: as above, or as the UTF-16 the page was sent in
    (a browser that detects it; from either byte, as anything written before the page shifts its alignment)."""
    readings = [as_a_browser_reads(data)] + [data[start:].decode(encoding, "replace") for start in (0, 1)
                                             for encoding in ("utf-16-le", "utf-16-be")]
    return [meta.get("content", "") for page in readings for meta in lxml.html.fromstring(page).iter("meta")
            if (meta.get("http-equiv") or "").strip().lower() == "refresh"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_scrapy_view_rewrites_a_utf16_page(case: str, tmp_path: Path) -> None:
    project = _project(tmp_path, "ADDONS")
    app = Utf16People()
    app.case = case
    opened = tmp_path / "opened.html"
    browser = project / "browser.py"
    browser.write_text(BROWSER)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("SCRAPY_")}
    with LocalServer(app) as server:
        env.update(http_proxy=server.proxy, PYTHONPATH=os.pathsep.join([str(project), str(ROOT)]),
                   BROWSER=f"{sys.executable} {browser} %s {opened}")
        proc = subprocess.run([sys.executable, "-m", "scrapy", "view", "http://people.example/u/101"], cwd=project,
                              env=env, capture_output=True, text=True, timeout=60, check=False)
    output = proc.stdout + proc.stderr
    assert "101" in app.people_served() and opened.exists(), f"control: the page opens\n{output[-2000:]}"
    assert refreshes_in_any_reading(opened.read_bytes()) == []
    page = as_a_browser_reads(opened.read_bytes())
    document = lxml.html.fromstring(page)
    assert secret_name("101") in document.text_content(), page
    metas = [(meta.get("http-equiv"), meta.get("charset"), meta.get("content")) for meta in document.iter("meta")]
    policies = [content for equiv, _, content in metas if (equiv or "").lower() == "content-security-policy"]
    assert policies == [NO_LOADS], metas
    # nothing else the browser acts on: no refresh, no charset that would make it read the bytes again otherwise
    assert [equiv for equiv, _, _ in metas if equiv] == ["Content-Security-Policy"], metas
    assert {charset.lower() for _, charset, _ in metas if charset} <= {"utf-8"}, metas
