"""A page that is ASCII after a UTF-16 byte order mark reads as nothing in UTF-16, the encoding Scrapy reads it in,
and as its text in UTF-8, the encoding a spider that decodes ``response.body`` itself reads it in: its refusals and
meta robots were read in both readings, its operator signals (``<meta name="tdm-reservation">``) in Scrapy's alone,
so a callback reading the body itself got a page that reserved its text and data mining rights.

Real crawls against the lenient ``people`` site of :mod:`tests.lenient`, judged by the callbacks that ran and the
audit log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl_demo.server import LocalServer, Response
from tests.lenient import LenientPeople, crawl, make_spider, people_settings, record_yaml, write_config
from tests.test_binary_pages import RawLogic
from tests.test_gzip_pages import check_fetch_answers
from tests.test_hunt import AI_PLATFORMS_YAML, BASE


def _after_bom(reserved: str) -> Any:
    body = (b"\xff\xfe<html><head><meta name=\"tdm-reservation\" content=\"" + reserved.encode()
            + b"\"></head><body><h1>about us</h1></body></html>")

    def serve(request: Any) -> Response:
        return Response(200, {"Content-Type": "text/html"}, body)

    return serve


def _licensed_after_bom() -> Any:
    """A page ASCII after a UTF-16 byte order mark naming an RSL licence that prohibits AI training."""
    body = (b'\xff\xfe<html><head><link rel="license" type="application/rsl+xml" href="/licence.xml"></head>'
            b"<body><h1>about us</h1></body></html>")
    return lambda request: Response(200, {"Content-Type": "text/html"}, body)


LICENCE = ('<rsl xmlns="https://rslstandard.org/rsl"><content url="/"><license>'
           '<prohibits type="usage">ai-train</prohibits></license></content></rsl>')


@pytest.mark.parametrize("page", ["/reserved", "/licensed"])
@deferred_f_from_coro_f
async def test_a_signal_after_a_byte_order_mark_is_read_as_the_spider_reads_it(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = people_settings(tmp_path, CONSENTCRAWL_PURPOSE="ai-training",
                               records=[record_yaml("101", purposes="[research, ai-training]")])
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(AI_PLATFORMS_YAML)
    app = LenientPeople()
    app.pages["/reserved"] = _after_bom("1")
    app.pages["/licensed"] = _licensed_after_bom()
    app.pages["/licence.xml"] = lambda request: Response(200, {"Content-Type": "application/rsl+xml"}, LICENCE)
    app.pages["/open"] = _after_bom("0")  # control
    spidercls = type("Spider", (make_spider("ConsentSpider", RawLogic),), {"purpose": "ai-training"})
    with LocalServer(app) as server:
        result = await crawl(spidercls, settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/open", f"{BASE}{page}"])
    reason = "response.signal.tdmrep" if page == "/reserved" else "response.signal.rsl"
    assert f"{BASE}/open" in result.seen, f"control: a page reserving nothing was not read: {result.denies()}"
    assert f"{BASE}{page}" not in result.seen, f"the signal after a BOM did not drop it: {result.items}"
    assert any(e.get("reason") == reason and e.get("url", "").endswith(page) for e in result.audit), result.denies()


def test_check_fetch_reads_a_utf16_page_as_the_crawl_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``check --fetch`` read a page without a ``Content-Encoding`` in its header's charset alone (UTF-8 without
    one), not as Scrapy reads it (a byte order mark first): a UTF-16 page's meta robots ``noai`` was never read
    and ``check`` allowed what the crawl denies."""
    platforms, authorizations = write_config(tmp_path, [record_yaml("101", purposes="[research, ai-training]")])
    platforms.write_text(AI_PLATFORMS_YAML)
    page = '<html><head><meta name="robots" content="{}"></head><body><h1>about us</h1></body></html>'

    def utf16(content: str) -> Any:
        body = b"\xff\xfe" + page.format(content).encode("utf-16-le")
        return lambda request: Response(200, {"Content-Type": "text/html"}, body)

    app = LenientPeople()
    app.pages["/noai"] = utf16("noai")
    app.pages["/open"] = utf16("index")  # control
    answers = check_fetch_answers(app, (f"{BASE}/noai", f"{BASE}/open"), "ai-training", platforms,
                                  authorizations, capsys, monkeypatch)
    assert answers[f"{BASE}/open"][0] == 0, f"control: {answers}\n{app.describe()}"
    assert answers[f"{BASE}/noai"] == (1, "response.meta-robots"), f"{answers}\n{app.describe()}"


def test_check_fetch_reads_a_signal_after_a_byte_order_mark_as_the_crawl_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The crawl's response phase reads a page's signals in each encoding a spider may read it in; ``check
    --fetch`` read them in Scrapy's alone (UTF-16 after the mark), and allowed the page reserving its rights."""
    platforms, authorizations = write_config(tmp_path, [record_yaml("101", purposes="[research, ai-training]")])
    platforms.write_text(AI_PLATFORMS_YAML)
    app = LenientPeople()
    app.pages["/reserved"] = _after_bom("1")
    app.pages["/open"] = _after_bom("0")  # control
    answers = check_fetch_answers(app, (f"{BASE}/reserved", f"{BASE}/open"), "ai-training", platforms,
                                  authorizations, capsys, monkeypatch)
    assert answers[f"{BASE}/open"][0] == 0, f"control: {answers}\n{app.describe()}"
    assert answers[f"{BASE}/reserved"] == (1, "response.signal.tdmrep"), f"{answers}\n{app.describe()}"


@pytest.mark.parametrize("page", ["/reserved", "/licensed"])
def test_signals_fetch_reads_a_page_in_each_encoding_as_the_crawl_does(
    page: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``consentcrawl signals --fetch``'s table read the page's signals in Scrapy's encoding alone (UTF-16 after
    the mark, where the page says nothing): it showed ``ai-training`` left to the default for a page that reserves
    its rights or names a licence prohibiting it, where the crawl (and ``check``) deny it. The licence the page
    names in its UTF-8 reading is fetched, as the crawl fetches it (the server's log)."""
    platforms, _ = write_config(tmp_path, [record_yaml("101", purposes="[research, ai-training]")])
    platforms.write_text(AI_PLATFORMS_YAML)
    monkeypatch.chdir(tmp_path)  # no project settings: the records are not read by ``signals``
    app = LenientPeople()
    app.pages["/reserved"] = _after_bom("1")
    app.pages["/licensed"] = _licensed_after_bom()
    app.pages["/licence.xml"] = lambda request: Response(200, {"Content-Type": "application/rsl+xml"}, LICENCE)
    app.pages["/open"] = _after_bom("0")  # control
    rows = {}
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        for url in (f"{BASE}{page}", f"{BASE}/open"):
            code = main(["signals", url, "--json", "--fetch", "--platforms", str(platforms)])
            out, err = capsys.readouterr()
            assert code == 0, err
            rows[url] = json.loads(out)
        code = main(["signals", f"{BASE}{page}", "--fetch", "--platforms", str(platforms)])
        text = capsys.readouterr().out
        assert code == 0, text
    reason = "response.signal.tdmrep" if page == "/reserved" else "response.signal.rsl"
    assert rows[f"{BASE}/open"]["purposes"]["ai-training"]["reason"] != reason, rows[f"{BASE}/open"]
    row = rows[f"{BASE}{page}"]["purposes"]["ai-training"]
    assert (row["verdict"], row["reason"], row.get("encoding")) == ("deny", reason, "utf-8"), row
    assert any(e.get("encoding") == "utf-8" for e in rows[f"{BASE}{page}"]["signals"]), rows[f"{BASE}{page}"]
    assert "read in utf-8" in text, text
    if page == "/licensed":
        assert "/licence.xml" in [s.path for s in app.served], app.describe()
