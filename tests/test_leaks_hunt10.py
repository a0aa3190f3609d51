"""Fresh-eyes leak hunt (hunt10): ``scrapy parse``, and requests to fetch-through services (Splash, scraping APIs,
archives) that embed a platform page in their query or body.

Each test runs ``scrapy`` in a subprocess (as a user would), a real crawl in this process, or ``consentcrawl check``,
against the lenient people site of :mod:`tests.lenient` (behind a fetch-through service where it says so), and
judges by the site's served log and by what the user is shown (stdout, log lines at INFO or above). Each test
failed on main (6f04666) and passes since its fix; the parameters marked as controls passed on main too.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import (
    AUTHORIZED,
    HOST,
    KINDS,
    LenientPeople,
    ListLogic,
    crawl,
    make_spider,
    people_settings,
    secret_name,
)
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


# -- a platform URL in a JSON body, written with JSON's escapes ---------------------------------------------------


def fetch_api(app: LenientPeople, api_host: str = "render.example") -> Any:
    """A fetch-through service that takes its target in a JSON body (``POST /render.html {"url": ...}``, as
    Splash, headless-browser services and scraping APIs do), or in an XML one (``<r><url>...</url></r>``): the
    body is read with a JSON or XML parser, so every JSON escape (``\\/``, ``\\u002f``, ``\\u0068ttp``) and XML
    character reference (``&#47;``) is undone, and the host is mapped by IDNA as a WHATWG URL parser maps it,
    before the URL is fetched from the people site."""

    def serve(request: Any, headers: dict[str, str]) -> Any:
        from consentcrawl_demo.server import Response

        if request.host != api_host:
            return app(request, headers)
        if request.path == "/robots.txt":
            return Response.text("User-agent: *\nAllow: /\n")
        if request.path != "/render.html":
            return Response.text("not found\n", 404)
        try:
            body = request.body
            for coding in reversed(headers.get("content-encoding", "").split(",")):  # as services that take
                if coding.strip() == "gzip":  # compressed bodies do
                    body = gzip.decompress(body)
            if body.lstrip().startswith(b"<"):  # XML, as XML-RPC and SOAP services take it
                target = urlsplit(ElementTree.fromstring(body).findtext("url") or "")
            else:
                target = urlsplit(json.loads(body)["url"])
        except (ValueError, KeyError, TypeError, ElementTree.ParseError, OSError):
            return Response.text("bad request\n", 400)
        # IDNA, as WHATWG URL parsers map hosts; a trailing dot dropped, as DNS and servers do
        host = (target.hostname or "").encode("idna").decode("ascii").rstrip(".")
        fetched = dataclasses.replace(request, host=host, target=target.path or "/",
                                      path=target.path or "/", query=target.query, body=b"")
        return app(fetched, {})

    return serve


@pytest.mark.parametrize(("body", "person"), [
    ('{"url": "http://people.example/u/104"}', "104"),  # control: a plain platform URL in the body is read
    ('{"url": "http:\\/\\/people.example\\/u\\/105"}', "105"),  # PHP's json_encode escapes every slash
    ('{"url": "http://people.example\\u002fu\\u002f106"}', "106"),
    ('{"url": "http:\\u002f\\u002fpeople.example/u/107"}', "107"),
    ('{"url": "http://\\u0070eople.example/u/108"}', "108"),
    ('{"url": "http://people\\u002Eexample/u/109"}', "109"),
    ('{"url": "http://people.example/u/110"}'.encode("utf-16"), "110"),  # JSON parsers detect UTF-16 and -32
    ('{"url": "http://people.example/u/110"}'.encode("utf-16-be"), "110"),
    ('{"url": "http://people.example/u/110"}'.encode("utf-32-le"), "110"),
    ("<r><url>http://people&#46;example/u/111</url></r>", "111"),
    ("<r><url>http:&#x2F;&#x2F;people.example&#x2f;u&#47;112</url></r>", "112"),
    ("<r><url>http://&#112;eople.example/u/113</url></r>", "113"),
    ('{"url": "http://people\u3002example/u/114"}', "114"),  # an ideographic full stop, written as is
    ('{"url": "http://\uff50eople.example/u/115"}', "115"),  # a fullwidth letter: IDNA maps it (NFKC)
    ('{"url": "http://people\\uff0eexample/u/116"}', "116"),  # a fullwidth full stop, as a JSON escape
    ('{"url": "http://people.example./u/117"}', "117"),  # the fully qualified name: the same host
    ('{"url": "http://www.people.example.:80/u/118"}', "118"),
], ids=["plain", "escaped-slashes", "u002f-path", "u002f-scheme", "escaped-host-letter", "escaped-dot", "utf-16",
        "utf-16-be-no-bom", "utf-32-le-no-bom", "xml-dot", "xml-slashes", "xml-letter", "ideographic-dot",
        "fullwidth-letter", "fullwidth-dot-escaped", "trailing-dot", "trailing-dot-port"])
@deferred_f_from_coro_f
async def test_a_platform_url_in_a_json_or_xml_body_is_read_with_its_escapes_undone(
        body: str | bytes, person: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request to a fetch-through service (off-platform) whose JSON body names a platform page is decided as
    that page. JSON lets any character of a string be written as ``\\uXXXX`` (and ``/`` as ``\\/``): the service's
    JSON parser reads ``http:\\u002f\\u002fpeople.example/u/107`` as the profile URL, while the search for
    embedded platform URLs read the body as it was written, found no platform host in it, and let the request
    through as ``terms.off-platform``: the service fetched the person's profile. So did a body in UTF-16 or
    UTF-32, which a JSON parser detects by itself (RFC 8259, Python's ``json.loads`` of bytes) and the search read
    as Latin-1, an XML body spelling the URL with character references (``people&#46;example``), and a host
    that IDNA (as WHATWG URL parsers apply it) maps to the platform's: ``people\u3002example``,
    ``\uff50eople.example``."""
    app = LenientPeople()
    raw = body if isinstance(body, bytes) else body.encode()
    kind = "application/xml" if raw.startswith(b"<") else "application/json"
    request = scrapy.Request("http://render.example/render.html", method="POST", body=raw,
                             headers={"Content-Type": kind}, dont_filter=True)
    with LocalServer(fetch_api(app)) as server:
        result = await crawl(make_spider("ADDONS", ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[request], follow_links=False)
    assert_not_served(app, {person}, f"(POST {body} to http://render.example/render.html)")
    assert secret_name(person) not in str(result.items)
    assert [e["verdict"] for e in result.audit_for("/render.html") if e.get("phase") == "request"] == ["deny"]


@pytest.mark.parametrize(("coding", "person"), [("gzip", "104"), ("gzip, identity", "105"), ("x-unknown", None)])
@deferred_f_from_coro_f
async def test_a_compressed_body_is_read_as_its_reader_decompresses_it(
        coding: str, person: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request body sent with ``Content-Encoding: gzip`` (which services that take large bodies accept) is
    decompressed by the service before it reads the URL in it; the search for embedded platform URLs read the
    compressed bytes, found no host, and the service fetched the profile (``terms.off-platform``). A body whose
    coding cannot be undone is a request we cannot read: denied, with its cause (``error.bad-url``)."""
    app = LenientPeople()
    payload = json.dumps({"url": f"{BASE}/u/{person or 106}"}).encode()
    request = scrapy.Request("http://render.example/render.html", method="POST", body=gzip.compress(payload),
                             headers={"Content-Type": "application/json", "Content-Encoding": coding},
                             dont_filter=True)
    with LocalServer(fetch_api(app)) as server:
        result = await crawl(make_spider("ADDONS", ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[request], follow_links=False)
    assert_not_served(app, DENIED, f"(POST a {coding} body naming {person} to http://render.example/render.html)")
    denies = [e["reason"] for e in result.audit_for("/render.html") if e.get("verdict") == "deny"]
    assert denies == ["subject.no-authorization" if person else "error.bad-url"], result.audit


def json_profiles(app: LenientPeople) -> Any:
    """The people site with a JSON API at ``/profile.php``: a JSON body's ``id`` names the profile served (the
    query's otherwise), read with a JSON parser (every escape undone, UTF-16 detected)."""

    def serve(request: Any, headers: dict[str, str]) -> Any:
        if request.path == "/profile.php" and headers.get("content-type", "").startswith("application/json"):
            try:
                ident = json.loads(request.body).get("id")
            except (ValueError, AttributeError):
                ident = None
            if ident is not None:
                request = dataclasses.replace(request, query=f"id={ident}", body=b"")
        return app(request, headers)

    return serve


@pytest.mark.parametrize(("body", "person"), [
    ('{"id": "107"}', "107"),  # control: a body that is not a form but names the parameter is ambiguous
    ('{"\\u0069d": "108"}', "108"),
    ('{"i\\u0064": 109}', "109"),
    ('{"id": "110"}'.encode("utf-16"), "110"),
], ids=["plain", "escaped-i", "escaped-d", "utf-16"])
@deferred_f_from_coro_f
async def test_a_json_body_naming_a_query_templates_parameter_in_escapes_is_ambiguous(
        body: str | bytes, person: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a platform with a query template (``/profile.php?id={subject}``), a body that is not a form but mentions
    the template's parameter is ambiguous: a server may read the person from it. ``{"\\u0069d": 108}`` is that
    body to a JSON parser, but the search read it as written and found no ``id``: an authorized person's URL
    (``/profile.php?id=101``) with that body was allowed, and the server answered with 108's profile."""
    app = LenientPeople()
    raw = body if isinstance(body, bytes) else body.encode()
    request = scrapy.Request(f"{BASE}/profile.php?id=101", method="POST", body=raw,
                             headers={"Content-Type": "application/json"}, dont_filter=True)
    with LocalServer(json_profiles(app)) as server:
        result = await crawl(make_spider("ADDONS", ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[request, f"{BASE}/u/102"], follow_links=False)
    assert "102" in app.people_served(), f"control: 102 is fetched\n{app.describe()}"
    assert_not_served(app, {person}, f"(POST {body!r} to /profile.php?id=101)")
    assert [e["reason"] for e in result.audit_for("/profile.php?id=101")] == ["subject.ambiguous-url"]


# -- an IP-address host inside a fetch-through request ------------------------------------------------------------


@pytest.mark.parametrize(("url", "person"), [
    ("http://127.0.0.1/u/104", "104"),  # control: the same page asked directly is terms.ip-host
    ("http://api.example/fetch?url=http://127.0.0.1/u/105", "105"),
    ("http://api.example/fetch?url=http%3A%2F%2F%5B%3A%3Affff%3A127.0.0.1%5D%2Fu%2F106", "106"),
    ("http://api.example/fetch?url=//localhost/u/107", "107"),
    ("http://api.example/fetch?url=http://2130706433/u/108", "108"),
    ("http://api.example/fetch?url=127.0.0.1/u/109", "109"),  # no scheme: the service's URL parser adds one
    ("http://api.example/web/2024/127.0.0.1:80/u/110", "110"),  # the Wayback Machine's form
], ids=["direct", "ipv4", "ipv6-encoded", "localhost", "decimal-ipv4", "scheme-less", "wayback"])
@deferred_f_from_coro_f
async def test_a_fetch_through_request_for_an_ip_address_host_is_denied(
        url: str, person: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL whose host is an IP address (or ``localhost``) no platform lists is ``terms.ip-host``: whose server
    it is cannot be told, and a platform's server answers its pages by their path at its address. Asked through a
    fetch-through service (``/fetch?url=http://127.0.0.1/u/105``), the service fetched that address for us, and the
    request was ``terms.off-platform``: the people site, answering at any host, served 105's profile."""
    from tests.test_hunt import whatwg_fetch_api

    app = LenientPeople(any_host=True)
    with LocalServer(whatwg_fetch_api(app)) as server:
        result = await crawl(make_spider("ADDONS", ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[url, f"{BASE}/u/102"], follow_links=False)
    assert "102" in app.people_served(), f"control: 102 is fetched\n{app.describe()}"
    assert_not_served(app, {person}, f"(through {url})")
    path = url.split("/", 3)[3]
    assert [e["reason"] for e in result.audit_for(path)] == ["terms.ip-host"], result.audit


# -- robots.txt of the page a fetch-through service fetches --------------------------------------------------------


@pytest.mark.parametrize("url", [
    f"{BASE}/u/101",  # control: asked directly, robots.txt disallows it
    "http://api.example/fetch?url=http://people.example/u/101",
    "http://api.example/web/2024/people.example/u/101",
])
@deferred_f_from_coro_f
async def test_a_page_robots_txt_disallows_is_not_fetched_through_a_fetch_through_service(
        url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request that embeds a platform page is decided as that page: its platform and person. It must meet that
    page's robots.txt too, not only the service's: the service fetches the page from its site, which disallows
    it. 101 (authorized) was fetched through the service although people.example's robots.txt disallows
    ``/u/101``: the request met the service's robots.txt only."""
    from tests.lenient import Robots
    from tests.test_hunt import whatwg_fetch_api

    app = LenientPeople(robots={HOST: Robots(body="User-agent: *\nDisallow: /u/101\n")})
    with LocalServer(whatwg_fetch_api(app)) as server:
        result = await crawl(make_spider("ADDONS", ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, follow_links=False,
                             urls=[url, "http://api.example/fetch?url=http://people.example/u/103"])
    assert "103" in app.people_served(), f"control: 103, allowed, is fetched through it\n{app.describe()}"
    assert_not_served(app, {"101"}, f"(through {url}, which the site's robots.txt disallows)")
    assert any(e.get("reason", "").startswith("robots.") for e in result.audit), result.denies()


@pytest.mark.parametrize(("url", "verdict"), [
    ("http://api.example/fetch?url=http://people.example/u/101", "deny"),  # robots.txt disallows /u/101
    ("http://api.example/fetch?url=http://people.example/u/103", "allow"),
])
def test_consentcrawl_check_decides_a_fetch_through_url_as_a_crawl_does(
        url: str, verdict: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``consentcrawl check --fetch`` on a fetch-through URL reads the embedded page's origin's robots.txt too,
    before it fetches anything: it says what the crawl does, and does not have the service fetch a page the
    site disallows."""
    from consentcrawl.cli import main
    from tests.lenient import Robots
    from tests.test_hunt import whatwg_fetch_api

    settings = people_settings(tmp_path)
    app = LenientPeople(robots={HOST: Robots(body="User-agent: *\nDisallow: /u/101\n")})
    with LocalServer(whatwg_fetch_api(app)) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        code = main(["check", url, "--json", "--fetch", "--purpose", "research", "--platforms",
                     settings["CONSENTCRAWL_PLATFORMS"], "--authorizations", settings["CONSENTCRAWL_AUTHORIZATIONS"]])
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == verdict, out
    assert (code == 0) == (verdict == "allow"), code
    assert_not_served(app, {"101"}, f"(consentcrawl check --fetch {url})")
    if verdict == "deny":
        assert out["reason"].startswith("robots."), out
    else:
        assert "103" in app.people_served(), f"control: check --fetch fetched it\n{app.describe()}"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
@deferred_f_from_coro_f
async def test_a_utf16_body_without_a_content_type_is_read_as_a_json_parser_reads_it(
        encoding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A body without a ``Content-Type`` is read as a form (urlencoded), byte for byte; one in UTF-16 or UTF-32 is
    no form, and a service that parses it as JSON whatever its type detects the encoding: the URL in it was not
    found and the service fetched the profile."""
    app = LenientPeople()
    body = json.dumps({"url": f"{BASE}/u/107"}).encode(encoding)
    request = scrapy.Request("http://render.example/render.html", method="POST", body=body, dont_filter=True)
    with LocalServer(fetch_api(app)) as server:
        result = await crawl(make_spider("ADDONS", ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[request, f"{BASE}/u/102"], follow_links=False)
    assert "102" in app.people_served(), f"control: 102 is fetched\n{app.describe()}"
    assert_not_served(app, {"107"}, f"(POST a {encoding} body without a type to http://render.example/render.html)")
    assert [e["reason"] for e in result.audit_for("/render.html")] == ["subject.no-authorization"], result.audit
