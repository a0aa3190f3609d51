"""A page whose body is gzip bytes without a ``Content-Encoding`` (served as ``application/x-gzip``, or by a server
that forgot the header) is read decompressed for the person's say and the page's head, as a spider that calls
``gzip.decompress(response.body)`` reads it; one that cannot be read that way (corrupt, a decompression bomb)
is denied.

Real crawls against the lenient ``people`` site of :mod:`tests.lenient`, judged by the site's served log, the
callbacks that ran, the items and the audit log.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.gz import gunzip

from consentcrawl.cli import main
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.lenient import (
    HOST,
    LenientPeople,
    ListLogic,
    crawl,
    make_spider,
    people_settings,
    record_yaml,
    secret_name,
    write_config,
)
from tests.test_hunt import AI_PLATFORMS_YAML

BASE = f"http://{HOST}"


def check_fetch_answers(app: Any, urls: tuple[str, ...], purpose: str, platforms: Path, authorizations: Path,
                        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                        *options: str) -> dict[str, tuple[int, str]]:
    """``consentcrawl check --fetch`` of each of ``urls`` against ``app``: its exit code and reason code (or what
    it wrote to stderr), by URL."""
    answers = {}
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        for url in urls:
            code = main(["check", url, "--purpose", purpose, "--json", "--fetch", "--platforms", str(platforms),
                         "--authorizations", str(authorizations), *options])
            out, err = capsys.readouterr()
            answers[url] = (code, json.loads(out)["reason"] if out.strip() else err)
    return answers


@dataclass
class GzipPeople(LenientPeople):
    """The people site, with some paths answered by gzip bytes and no ``Content-Encoding``."""

    gz: dict[str, tuple[str, bytes]] = field(default_factory=dict)  #: path -> (Content-Type, body as sent)

    def _answer(self, request: LoggedRequest, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        if path in self.gz:
            content_type, body = self.gz[path]
            return kind, Response(200, {"Content-Type": content_type}, body)
        return super()._answer(request, path, kind, person)


class GunzipLogic(ListLogic):
    """What a spider for such a site does: gunzips the body (as often as it is gzip), with Scrapy's ``gunzip``,
    which reads as much of a corrupt stream as it can, then reads the page."""

    follow_links = False

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        body = response.body
        while body[:2] == b"\x1f\x8b":
            body = gunzip(body)
        text = body.decode("utf-8", "replace")
        if text.lstrip().startswith("{"):
            yield {"url": response.url, "name": json.loads(text).get("name")}
            return
        name = scrapy.Selector(text=text).css(".name::text").get()
        if name:
            yield {"url": response.url, "name": name}


def _card(person: str, note: str = "", head: str = "") -> bytes:
    return (f'<html><head>{head}</head><body><div class="h-card profile"><h1 class="name p-name">'
            f'{secret_name(person)}</h1><p class="p-note">{note}</p></div></body></html>').encode()


def _actor(person: str, **flags: Any) -> bytes:
    doc = {"@context": "https://www.w3.org/ns/activitystreams", "type": "Person", "id": f"{BASE}/u/{person}",
           "name": secret_name(person), "indexable": True, "discoverable": True, **flags}
    return json.dumps(doc).encode()


#: case -> (purpose, path, Content-Type, body as sent, the deny's reason)
CASES: dict[str, tuple[str, str, str, bytes, str]] = {
    "nobot in the bio": ("research", "/u/101", "application/x-gzip",
                         gzip.compress(_card("101", "Please do not scrape me. #nobot")), "subject.refused-on-page"),
    "nobot, served as text/html": ("research", "/u/101", "text/html; charset=utf-8",
                                   gzip.compress(_card("101", "#nobot")), "subject.refused-on-page"),
    "suspended actor": ("research", "/u/101", "application/x-gzip", gzip.compress(_actor("101", suspended=True)),
                        "subject.refused-on-page"),
    "gzip in gzip": ("research", "/u/101", "application/gzip", gzip.compress(gzip.compress(_card("101", "#nobot"))),
                     "subject.refused-on-page"),
    "second member": ("research", "/u/101", "application/x-gzip",
                      gzip.compress(_card("101")[:40]) + gzip.compress(_card("101", "#nobot")[40:]),
                      "subject.refused-on-page"),
    "meta robots noai": ("ai-training", "/u/101", "application/x-gzip",
                         gzip.compress(_card("101", head='<meta name="robots" content="noai">')),
                         "subject.refused-on-page"),
    "meta robots noai, not a profile": ("ai-training", "/about", "application/x-gzip",
                                        gzip.compress(_card("about", head='<meta name="robots" content="noai">')),
                                        "response.meta-robots"),
    "tdm-reservation, not a profile": ("ai-training", "/about", "application/x-gzip",
                                       gzip.compress(_card("about", head='<meta name="tdm-reservation" content="1">')),
                                       "response.signal.tdmrep"),
    "corrupt stream": ("research", "/u/101", "application/x-gzip", gzip.compress(_card("101"))[:-30],
                       "error.internal"),
    "decompression bomb": ("research", "/u/101", "application/x-gzip",
                           gzip.compress(_card("101") + b" " * (40 * 1024 * 1024)), "error.internal"),
}
#: the crawl's DOWNLOAD_MAXSIZE in the bomb's case: below what it decompresses to (Scrapy's default, 1 GiB, is not)
BOMB_SETTINGS = {"DOWNLOAD_MAXSIZE": 16 * 1024 * 1024}


@pytest.mark.parametrize("case", sorted(CASES))
@deferred_f_from_coro_f
async def test_a_gzip_page_without_content_encoding_is_read_for_refusals(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: the response phase read the gzip bytes as they came (a plain ``Response``, no ``Content-Encoding``:
    nothing decompressed them), found no refusal, no meta tag, no signal, and the callback, which gunzips the
    body itself, got the refusing person's name as an item; their other page (``/@101``) was fetched too. A page
    that cannot be read so is denied ``error.internal``: their other page is then read on its own (the first-page
    gate lets the next page be first)."""
    purpose, path, content_type, body, reason = CASES[case]
    records = [record_yaml(p, purposes="[research, ai-training]") for p in ("101", "102")]
    settings = people_settings(tmp_path, records=records, CONSENTCRAWL_PURPOSE=purpose,
                               **(BOMB_SETTINGS if case == "decompression bomb" else {}))
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(AI_PLATFORMS_YAML)
    app = GzipPeople()
    app.gz[path] = (content_type, body)
    app.gz["/u/102"] = ("application/x-gzip", gzip.compress(_card("102")))  # control: a gzip page that says nothing
    spidercls = make_spider("ConsentSpider", GunzipLogic)
    spidercls = type(spidercls.__name__, (spidercls,), {"purpose": purpose})
    urls = [f"{BASE}{path}", f"{BASE}/u/102"] + ([f"{BASE}/@101"] if path == "/u/101" else [])
    with LocalServer(app) as server:
        result = await crawl(spidercls, settings, proxy=server.proxy, monkeypatch=monkeypatch, urls=urls)
    names = [item.get("name") for item in result.items]
    assert secret_name("102") in names, f"control: a gzip page is read by the spider\n{app.describe()}"
    assert f"{BASE}{path}" not in result.seen, f"the callback ran on the refused page: items {result.items}"
    assert not [item for item in result.items if item["url"] == f"{BASE}{path}"], result.items
    denies = [(phase, url, why) for phase, url, why in result.denies() if url == f"{BASE}{path}"]
    assert ("response", f"{BASE}{path}", reason) in denies, f"{denies}\n{app.describe()}"
    if path == "/u/101" and reason == "subject.refused-on-page":
        assert app.people_served().count("101") == 1, f"the refusing person's other page was fetched\n{app.describe()}"
        assert secret_name("101") not in names, result.items


@pytest.mark.parametrize("case", ["nobot in the bio", "suspended actor", "second member", "corrupt stream",
                                  "decompression bomb"])
def test_check_fetch_reads_a_gzip_page_as_the_crawl_does(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``consentcrawl check --fetch`` decides such a page as the crawl's response phase does (same reason), with
    the project's ``DOWNLOAD_MAXSIZE`` (a ``--settings`` module's) as the crawl's."""
    purpose, path, content_type, body, reason = CASES[case]
    platforms, authorizations = write_config(tmp_path, [record_yaml(p) for p in ("101", "102")])
    options = []
    if case == "decompression bomb":
        (tmp_path / "bomb_settings.py").write_text(f"DOWNLOAD_MAXSIZE = {BOMB_SETTINGS['DOWNLOAD_MAXSIZE']}\n")
        monkeypatch.chdir(tmp_path)
        options = ["--settings", "bomb_settings"]
    app = GzipPeople()
    app.gz[path] = (content_type, body)
    app.gz["/u/102"] = ("application/x-gzip", gzip.compress(_card("102")))
    answers = check_fetch_answers(app, (f"{BASE}{path}", f"{BASE}/u/102"), purpose, platforms, authorizations,
                                  capsys, monkeypatch, *options)
    assert answers[f"{BASE}/u/102"] == (0, "subject.authorized"), f"control: {answers}\n{app.describe()}"
    assert answers[f"{BASE}{path}"] == (1, reason), f"{answers}\n{app.describe()}"
    assert [s.person for s in app.served if s.person] == ["101", "102"], app.describe()
