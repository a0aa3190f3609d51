"""Fresh-eyes leak hunt (hunt11): Scrapy features a real project uses (CrawlSpider rules, meta refresh, forms,
``Request.from_curl``, media pipelines) and how a page's own say is read whatever type the server gives it.

Each test runs a real crawl in this process, or ``consentcrawl check``, against the lenient people site of
:mod:`tests.lenient` and judges by the site's served log, by what reached a callback or an item, and by what the
user is shown. Tests marked "Fixed" failed on main (d0bc94d) and pass since their fix; tests marked PIN passed from
the start and cover an attack no other test covers.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl_demo.messages import LoggedRequest, Response
from consentcrawl_demo.server import LocalServer
from tests import lenient
from tests.lenient import KINDS, ListLogic, Robots, crawl, make_spider, people_settings, secret_name
from tests.test_leaks_hunt import BASE, TypedPeople, _refusing_profile, first_page_then_posts

# -- a page's meta robots, whatever type the server sends the page as -------------------------------------------


def _noindex_html(person: str, *, refusing: bool = False) -> str:
    """A profile whose only say is ``<meta name="robots" content="noindex">`` (Mastodon writes it on the profile of
    a person who opted out of search engines; for archiving it denies)."""
    return (f'<html><head><meta name="robots" content="noindex"></head><body><div class="profile">'
            f'<h1 class="name">{secret_name(person)}</h1></div></body></html>')


def _noindex_xhtml(person: str, *, refusing: bool = False) -> str:
    """The same profile as XHTML, which sites serve as XML (``application/xml``, ``text/xml``) too."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><head>'
            '<meta name="robots" content="noindex"/></head><body><div class="profile">'
            f'<h1 class="name">{secret_name(person)}</h1></div></body></html>')


#: types under which Scrapy still hands the callback a response whose ``.css()`` finds the profile's fields: an
#: XmlResponse (XML types), an HtmlResponse sniffed from the body (``image/*``), a JsonResponse (``.css()`` parses
#: it as HTML); and a control, HTML
ODD_TYPES = ["application/xml", "text/xml; charset=utf-8", "application/rss+xml", "image/svg+xml",
             "application/json", "text/html"]


#: a person's page that refuses the purpose in its meta robots is denied as their refusal (refusalphase.py)
REFUSED = "subject.refused-on-page"


def _archiving(tmp_path: Path) -> dict[str, Any]:
    """The people settings with the platform's grant and the people's records for archiving too, crawling for it."""
    settings = people_settings(tmp_path, CONSENTCRAWL_PURPOSE="archiving")
    for name in ("CONSENTCRAWL_PLATFORMS", "CONSENTCRAWL_AUTHORIZATIONS"):
        path = Path(settings[name])
        path.write_text(path.read_text().replace("[research]", "[research, archiving]"))
    return settings


def _archiver(kind: str) -> Any:
    """:class:`ListLogic` crawling for archiving (a ConsentSpider's ``purpose`` wins over the setting)."""
    spider = make_spider(kind, ListLogic)
    if kind == "ConsentSpider":
        spider.purpose = "archiving"  # type: ignore[attr-defined]
    return spider


@pytest.mark.parametrize("page", [_noindex_html, _noindex_xhtml])
@pytest.mark.parametrize("profile_type", ODD_TYPES)
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_meta_robots_on_a_page_sent_as_xml_or_json_is_read(
    kind: str, profile_type: str, page: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. 101's profile says ``noindex`` in its meta robots, which denies archiving, but the site sends it as
    XML (XHTML is served so), as ``image/svg+xml`` or as JSON. The response phase read meta robots only on pages
    whose type was neither XML nor JSON, while Scrapy hands the callback an XmlResponse, an HtmlResponse sniffed
    from the body, or a JsonResponse, and ``.css()`` finds the name on each: the callback got 101's name for a
    purpose the page refuses, and 101's next page was fetched. Now the tags are read on every body that is not a
    JSON document, whatever its type claims."""
    settings = _archiving(tmp_path)
    monkeypatch.setattr(lenient, "_profile_html", page)
    app = TypedPeople(profile_type=profile_type)
    with LocalServer(app) as server:
        result = await crawl(_archiver(kind), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/101", 1.0, f"{BASE}/u/101/posts"], follow_links=False)
    assert not result.seen and secret_name("101") not in str(result.items), f"a callback got it: {result.seen}"
    assert app.people_served() == ["101"], f"101's next page was fetched after they refused\n{app.describe()}"
    assert any(e.get("reason") == REFUSED and e.get("phase") == "response" for e in result.audit), result.denies()


@pytest.mark.parametrize("profile_type", ["application/xml", "text/plain", "text/html"])
def test_check_fetch_reads_meta_robots_on_a_page_sent_as_xml_or_text(
        profile_type: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. ``consentcrawl check --fetch`` read meta robots only on a page typed HTML (or untyped): a page sent
    as XML or text allowed archiving where the crawl's response phase denies it. Now it reads the page as the crawl
    does."""
    settings = _archiving(tmp_path)
    monkeypatch.setattr(lenient, "_profile_html", _noindex_xhtml)
    monkeypatch.chdir(tmp_path)
    with LocalServer(TypedPeople(profile_type=profile_type)) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        code = main(["check", f"{BASE}/u/101", "--json", "--fetch", "--purpose", "archiving",
                     "--platforms", settings["CONSENTCRAWL_PLATFORMS"],
                     "--authorizations", settings["CONSENTCRAWL_AUTHORIZATIONS"]])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert json.loads(out)["reason"] == REFUSED, out


def _noindex_after_a_long_head(person: str, *, refusing: bool = False) -> str:
    """The profile of :func:`_noindex_html`, its head first holding 80 KB of inline style (critical CSS, inline SVG
    sprites and JSON-LD make heads that long)."""
    style = "<style>" + ".c{color:#123456}" * 5000 + "</style>"
    return (f'<html><head>{style}<meta name="robots" content="noindex"></head><body><div class="profile">'
            f'<h1 class="name">{secret_name(person)}</h1></div></body></html>')


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_meta_robots_after_a_long_head_is_read(kind: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed. 101's profile says ``noindex`` (denying archiving) in a meta robots tag that comes after 80 KB of
    inline style in its head. The head scan stopped after the first 64 KiB of the page, while the spider's
    ``.css()`` (and a search engine) reads the whole page: the callback got 101's name and 101's next page was
    fetched. Now the head is scanned to its end (the ``<body>``), however long."""
    monkeypatch.setattr(lenient, "_profile_html", _noindex_after_a_long_head)
    app = TypedPeople(profile_type="text/html; charset=utf-8")
    with LocalServer(app) as server:
        result = await crawl(_archiver(kind), _archiving(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/101", 1.0, f"{BASE}/u/101/posts"], follow_links=False)
    assert not result.seen and secret_name("101") not in str(result.items), f"a callback got it: {result.seen}"
    assert app.people_served() == ["101"], f"101's next page was fetched after they refused\n{app.describe()}"


# -- a page compressed twice, each coding in a header of its own -----------------------------------------------


def _deflate(body: bytes) -> bytes:
    return zlib.compress(body)


#: codings applied in order, each named in a ``Content-Encoding`` header of its own (a proxy that compresses an
#: already compressed answer again adds its header after the application's), and a control with one header
CODINGS = {
    "gzip twice": [("gzip", gzip.compress), ("gzip", gzip.compress)],
    "deflate then gzip": [("deflate", _deflate), ("gzip", gzip.compress)],
    "gzip, then identity": [("gzip", gzip.compress), ("identity", lambda body: body)],
    "one header (control)": [("gzip", gzip.compress)],
}


@dataclass
class TwiceEncodedPeople(lenient.LenientPeople):
    """The lenient site, its profile pages compressed once per coding, one ``Content-Encoding`` header each."""

    codings: tuple[str, ...] = ()

    def _answer(self, request: Any, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        kind, response = super()._answer(request, path, kind, person)
        if kind == "profile":
            body = response.body_bytes()
            headers = [("Content-Type", "text/html; charset=utf-8")]
            for name, encode in CODINGS[self.codings[0]]:
                body = encode(body)
                headers.append(("Content-Encoding", name))
            response = Response(response.status, headers, body)
        return kind, response


@pytest.mark.parametrize("case", list(CODINGS))
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_refusal_on_a_page_compressed_twice_with_two_headers_is_read(
    kind: str, case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. 101 refuses in their bio, on a page compressed twice whose two codings come in two
    ``Content-Encoding`` headers. Scrapy's HttpCompressionMiddleware undoes every coding of every header
    (``getlist``) and the callback got the page, while the response phase and the send-time reading took the last
    header only (``headers.get``), read a body still compressed, found no refusal and fetched 101's next page. Now
    every header's codings are undone, as Scrapy does."""
    result = await first_page_then_posts(kind, TwiceEncodedPeople(codings=(case,)), _refusing_profile, tmp_path,
                                         monkeypatch)
    assert not result.seen and secret_name("101") not in str(result.items), f"a callback got it: {result.seen}"


async def crawl_with_101(kind: str, app: lenient.LenientPeople, served_by: Any, urls: list[Any], denied: set[str],
                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Any:
    """A crawl of ``urls`` against ``served_by`` (``app``, or an app wrapping it): the crawl, once the server's log
    shows 101's page (the control: authorized) and none of the ``denied`` people's."""
    with LocalServer(served_by) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, **options)
    assert "101" in app.people_served(), app.describe()
    served = sorted(set(app.people_served()) & denied)
    assert not served, f"denied people served: {served}\n{app.describe()}"
    return result


# -- a query parameter's name cut at a NUL, as PHP reads it --------------------------------------------------------

#: spellings PHP 8.2 reads as ``id=107`` (or 108, 109): its parameter names are C strings, cut at the first NUL
NUL_NAMES = {
    "/profile.php?id%00=107": "107",
    "/profile.php?id%00x=108": "108",
    "/profile.php?id=101&id%00=109": "109",  # PHP: the last ``id`` wins; it was read as 101's
    "/profile.php?%20id%00=110": "110",
}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_query_parameter_name_cut_at_a_nul_is_read_as_php_reads_it(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. PHP registers a query parameter under its name up to the first NUL, so ``?id%00=107`` is its ``id``
    and ``?id=101&id%00=109`` serves 109 (the last ``id``). They were read as no profile (so fetched) and as 101's
    (authorized, so fetched): the site served 107-110. Now a name is read up to its NUL too."""
    for href, person in NUL_NAMES.items():
        assert lenient.person_of_url(href) == person, href  # what the site reads
    app = lenient.LenientPeople().links_page("/spellings", [*NUL_NAMES, "/u/101"])
    result = await crawl_with_101(kind, app, app, [f"{BASE}/spellings"], set(NUL_NAMES.values()), tmp_path,
                                  monkeypatch)
    denied = {e["url"] for e in result.audit if e.get("verdict") == "deny" and "profile.php" in e.get("url", "")}
    assert len(denied) == len(NUL_NAMES), result.denies()


# -- a multipart part's name as PHP reads it --------------------------------------------------------------------

#: a part's ``name`` as PHP 8.2 reads its ``Content-Disposition``: the last ``name=`` of the header, its value
#: in double quotes, single quotes or none
_PHP_NAME = re.compile(rb"""(?:^|;)\s*name\s*=\s*(?:"([^"]*)"|'([^']*)'|([^;\s]*))""", re.I)


def php_form_parts(app: lenient.LenientPeople) -> Any:
    """The lenient site behind PHP's reading of ``multipart/form-data`` bodies into ``$_POST`` (and so
    ``$_REQUEST``): each part under the last ``name`` its ``Content-Disposition`` gives, quotes of either kind
    stripped (checked against PHP 8.2's built-in server)."""

    def serve(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        body = request.body
        found = re.search(r"boundary=([^;\s]+)", headers.get("content-type", ""))
        if "multipart/form-data" in headers.get("content-type", "") and found:
            fields = []
            for part in body.split(b"--" + found.group(1).encode())[1:]:
                head, _, value = part.partition(b"\r\n\r\n")
                disposition = next((line.split(b":", 1)[1] for line in head.split(b"\r\n")
                                    if line.lower().startswith(b"content-disposition:")), b"")
                names = [next(g for g in m.groups() if g is not None) for m in _PHP_NAME.finditer(disposition.strip())]
                if names:
                    fields.append(names[-1] + b"=" + value.removesuffix(b"\r\n"))
            body = b"&".join(fields)
        return app(dataclasses.replace(request, body=body), headers)

    return serve


#: Content-Disposition parameters PHP reads as ``id`` (the person it then serves) where Python's email parser,
#: which consentcrawl read form parts with, reads another name (the first ``name``; ``'id'`` with its quotes)
PART_NAMES = {
    b'form-data; name="x"; name="id"': "107",
    b"form-data; name='id'": "108",
}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_multipart_part_named_as_php_reads_it_is_read_so(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. ``POST /profile.php?id=101`` with a ``multipart/form-data`` part PHP registers as ``id`` (the last of
    two ``name`` parameters; a name in single quotes) serves 107 and 108: ``$_REQUEST`` prefers the body. The part
    was read by its first ``name`` (``x``), or as ``'id'`` with its quotes, so the request was decided as 101's
    and sent. Now every name a server may give a part is read, and the request is ``subject.ambiguous-url``."""
    requests = []
    for disposition, person in PART_NAMES.items():
        body = b"--XyZ\r\nContent-Disposition: " + disposition + b"\r\n\r\n" + person.encode() + b"\r\n--XyZ--\r\n"
        requests.append(scrapy.Request(f"{BASE}/profile.php?id=101", method="POST", body=body, dont_filter=True,
                                       headers={"Content-Type": "multipart/form-data; boundary=XyZ"}))
    app = lenient.LenientPeople()
    result = await crawl_with_101(kind, app, php_form_parts(app), [*requests, f"{BASE}/u/101"],
                                  set(PART_NAMES.values()), tmp_path, monkeypatch, follow_links=False)
    assert len([e for e in result.audit if e.get("reason") == "subject.ambiguous-url"]) >= len(PART_NAMES), \
        result.denies()


# -- a form body's type as PHP reads it ----------------------------------------------------------------------------

#: Content-Type spellings PHP 8.2 reads as a form (it cuts the type at ``;``, ``,`` or a space), each with a body
#: whose ``id`` is written with an escape (``%69d``): what the ``id`` names, PHP serves
FORM_TYPES = {
    "application/x-www-form-urlencoded, charset=UTF-8": "107",
    "application/x-www-form-urlencoded charset=UTF-8": "108",
    "Application/X-WWW-Form-Urlencoded,": "109",
}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_form_body_whose_type_php_reads_as_a_form_is_read_as_one(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. PHP takes a request's media type up to the first ``;``, ``,`` or space, so a body sent as
    ``application/x-www-form-urlencoded, charset=UTF-8`` fills ``$_POST`` (and ``$_REQUEST``, body first):
    ``POST /profile.php?id=101`` with ``%69d=107`` serves 107. consentcrawl cut the type at ``;`` only, read the body
    as no form, and searched it for the word ``id``, which the escape hides: the request was sent as 101's. Now the
    type is read as PHP reads it, and the body as the form it is."""
    requests = [scrapy.Request(f"{BASE}/profile.php?id=101", method="POST", body=f"%69d={person}", dont_filter=True,
                               headers={"Content-Type": content_type})
                for content_type, person in FORM_TYPES.items()]
    app = lenient.LenientPeople()
    result = await crawl_with_101(kind, app, app, [*requests, f"{BASE}/u/101"], set(FORM_TYPES.values()), tmp_path,
                                  monkeypatch, follow_links=False)
    assert len([e for e in result.audit if e.get("reason") == "subject.ambiguous-url"]) >= len(FORM_TYPES), \
        result.denies()


# -- a path after a PHP script, as a front controller routes it ----------------------------------------------------

#: spellings a PHP front controller serves as a person's page (``PATH_INFO`` routed as the site's own path)
FRONT_CONTROLLER = {
    "/index.php/u/107": "107",
    "/INDEX.PHP/@bob": "bob",
    "/index.php/profile.php?id=108": "108",
    "/index.php/u/101/../109": "109",
}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_path_after_a_php_front_controller_is_read_as_the_route_it_serves(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. WordPress, Laravel and Symfony serve ``/index.php/<route>`` as ``/<route>`` (the script routes the
    path after it, ``PATH_INFO``; PHP hands it over as such), so ``/index.php/u/107`` is 107's profile. It was read
    as no profile (its first segment matches no template) and fetched. Now a path after a ``.php`` segment is read
    as the route too: the route's person is the page's (``subject.no-authorization`` here), or the URL is
    ``subject.ambiguous-url`` when the script's own reading names another."""
    for href, person in FRONT_CONTROLLER.items():
        assert lenient.person_of_url(href) == person, href  # what the site reads
    app = lenient.LenientPeople().links_page("/spellings", [*FRONT_CONTROLLER, "/u/101"])
    result = await crawl_with_101(kind, app, app, [f"{BASE}/spellings"], set(FRONT_CONTROLLER.values()), tmp_path,
                                  monkeypatch)
    denied = {e["url"] for e in result.audit if e.get("verdict") == "deny" and ".php" in e.get("url", "").lower()}
    assert len(denied) == len(FRONT_CONTROLLER), result.denies()


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_robots_rules_are_matched_against_a_front_controllers_route(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed (robots leg). robots.txt says ``Disallow: /@alice`` and ``Disallow: /u/102`` (people who asked the
    platform to keep their profile from crawlers; both authorized this crawl). ``/index.php/@alice`` and
    ``/index.php/u/102`` are those pages to a front controller, but robots.txt was matched against the path as
    written only: both were fetched. Now the route is matched too."""
    app = lenient.LenientPeople(default_robots=Robots(body="User-agent: *\nDisallow: /@alice\nDisallow: /u/102\n"))
    urls = [f"{BASE}/index.php/@alice", f"{BASE}/index.php/u/102", f"{BASE}/u/101"]
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert f"{BASE}/u/101" in result.seen, "control"
    served = sorted({p for p in app.people_served() if p in ("alice", "102")})
    assert not served, f"pages robots.txt disallows were fetched: {served}\n{app.describe()}"
    assert len([e for e in result.audit if e.get("reason") == "robots.disallowed"]) >= 2, result.denies()


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_multipart_boundary_php_finds_elsewhere_in_the_type_is_read(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed. PHP takes a multipart body's boundary from the first ``boundary`` in the type, wherever it stands:
    ``multipart/form-data; xboundary=XyZ; boundary=other`` is split on ``XyZ``, and PHP 8.2 serves 109 for
    ``POST /profile.php?id=101`` with a part ``id=109``. The body was split on the ``boundary`` parameter only
    (``other``), found no part, and the request was sent as 101's. Now every boundary a server may read is tried."""
    body = b'--XyZ\r\nContent-Disposition: form-data; name="id"\r\n\r\n109\r\n--XyZ--\r\n'
    request = scrapy.Request(f"{BASE}/profile.php?id=101", method="POST", body=body, dont_filter=True,
                             headers={"Content-Type": "multipart/form-data; xboundary=XyZ; boundary=other"})
    app = lenient.LenientPeople()
    with LocalServer(php_form_parts(app)) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[request, f"{BASE}/u/101"], follow_links=False)
    assert "101" in app.people_served(), app.describe()
    assert "109" not in app.people_served(), app.describe()
    assert any(e.get("reason") == "subject.ambiguous-url" for e in result.audit), result.denies()
