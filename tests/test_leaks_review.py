"""Review: ways a denied person's page is still served, found at HEAD by an outside review.

Every test runs a real in-process crawl (a plain ``scrapy.Spider`` with ``ADDONS``) against the lenient ``people``
site of :mod:`tests.lenient`, sometimes behind a thin wrapper that models one more real-world server behaviour,
and judges by the site's own served log: the person it actually served. Each test fails at the commit it was
written against (all but the pins at the end, which hold and guard against a regression); each docstring says
why, and where in consentcrawl the decision goes wrong.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.lenient import HOST, LenientPeople, ListLogic, crawl, make_spider, people_settings, secret_name

BASE = f"http://{HOST}"
KIND = "ADDONS"
App = Callable[[LoggedRequest, dict[str, str]], "Response | None"]


def assert_not_served(app: LenientPeople, people: set[str], why: str) -> None:
    leaked = sorted(set(app.people_served()) & people)
    assert not leaked, f"denied people served: {leaked} {why}\nserved log:\n{app.describe()}"


def assert_served(app: LenientPeople, person: str) -> None:
    assert person in app.people_served(), f"control: {person} was not served\nserved log:\n{app.describe()}"


def _robots_only(request: LoggedRequest) -> Response:
    if request.path == "/robots.txt":
        return Response.text("User-agent: *\nAllow: /\n")
    return Response.text("nothing here\n", 404)


def with_default_vhost(app: LenientPeople, name: str = "localhost") -> App:
    """A server with virtual hosts: ``name`` is its default site (a permissive robots.txt, nothing else); requests
    whose Host names the people site are the people site's."""

    def serve(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        return _robots_only(request) if request.host == name else app(request, headers)

    return serve


# --------------------------------------------------------------------------- 1. the Host header


@deferred_f_from_coro_f
async def test_a_host_header_naming_the_platform_is_decided_as_the_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scrapy sends a Host header the spider sets (Twisted adds one only when there is none), and a server routes
    by it. consentcrawl decides by the URL's host alone (policy.py ``_resolve_url``): ``localhost`` is on no
    platform and no IP literal, so the people site's ``/u/107`` is ``terms.off-platform``, robots.txt is the
    default site's, and no terms or person check is made. (Domain fronting through a CDN is the same request.)"""
    app = LenientPeople()
    with LocalServer(with_default_vhost(app)) as server:
        # control: this server does route by the Host header (a plain client is served 107's page)
        routed = httpx.get(f"http://127.0.0.1:{server.port}/u/107", headers={"Host": HOST}, trust_env=False)
        assert routed.status_code == 200 and [s.person for s in app.served] == ["107"], app.describe()
        app.served.clear()
        urls = [scrapy.Request(f"http://localhost:{server.port}/u/107", headers={"Host": HOST}, dont_filter=True),
                scrapy.Request(f"http://localhost:{server.port}/u/101", headers={"Host": HOST}, dont_filter=True)]
        result = await crawl(make_spider(KIND, ListLogic), people_settings(tmp_path), proxy=None,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert_not_served(app, {"107"}, "(URL host localhost, Host: people.example)")
    # a Host header naming another host than the URL's is denied outright, whoever the URL names
    reasons = {e["reason"] for e in result.audit if e["verdict"] == "deny" and "/u/107" in (e["url"] or "")}
    assert reasons & {"subject.mismatch", "terms.ip-host"}, result.audit


@deferred_f_from_coro_f
async def test_two_host_headers_are_decided_by_each_of_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spider can give ``Host`` two values, and a server that gets two ``Host`` lines routes by one of them (most
    by the first). Scrapy's default download handler refuses to send two (Twisted: "Exactly one Host header
    required"), but another handler may not: the decision reads every value, so the URL's own host written last
    (where a reader of the last value sees nothing odd) cannot hide the platform's named first."""
    app = LenientPeople()
    elsewhere = "elsewhere.example"
    with LocalServer(with_default_vhost(app, elsewhere)) as server:
        urls = [scrapy.Request(f"http://{elsewhere}/u/107", headers={"Host": [HOST, elsewhere]}, dont_filter=True),
                scrapy.Request(f"http://{elsewhere}/u/106", headers={"Host": [elsewhere, HOST]}, dont_filter=True)]
        result = await crawl(make_spider(KIND, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert_not_served(app, {"107", "106"}, "(two Host headers, one the platform's)")
    for person in ("107", "106"):
        lines = [e for e in result.audit if (e["url"] or "").endswith(f"/u/{person}")]
        assert lines and all(e["verdict"] == "deny" and e["reason"] == "subject.mismatch" for e in lines), lines


def _forwarded_host(headers: dict[str, str]) -> str | None:
    """The host a front end that trusts its clients reads from ``X-Forwarded-Host`` or ``Forwarded: host=``."""
    if headers.get("x-forwarded-host"):
        return headers["x-forwarded-host"].split(",")[0].strip()
    for element in headers.get("forwarded", "").split(","):
        for pair in element.split(";"):
            key, _, value = pair.partition("=")
            if key.strip().lower() == "host":
                return value.strip().strip('"')
    return None


@pytest.mark.parametrize("header", [{"X-Forwarded-Host": HOST}, {"x-forwarded-host": HOST},
                                    {"Forwarded": f'for=192.0.2.60;proto=http;host="{HOST}"'},
                                    {"Forwarded": f"for=192.0.2.60, host={HOST}"}])
@deferred_f_from_coro_f
async def test_a_forwarded_host_naming_the_platform_is_decided_as_the_platform(
        header: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A front end configured to trust ``X-Forwarded-Host`` or ``Forwarded: host=`` (Django's
    ``USE_X_FORWARDED_HOST``, many reverse proxies) picks the site by it, as a server picks it by ``Host``: a
    request to another host naming the platform there reaches the platform's pages, so it is decided as a ``Host``
    header is."""
    app = LenientPeople()
    elsewhere = "elsewhere.example"

    def serve(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if _forwarded_host(headers) == HOST:  # the front end hands the request on as the platform's
            return app(dataclasses.replace(request, host=HOST), headers)
        return _robots_only(request)

    with LocalServer(serve) as server:
        # control: this server does route by the header (a plain client is served 107's page)
        routed = httpx.get(f"http://127.0.0.1:{server.port}/u/107", headers=header, trust_env=False)
        assert routed.status_code == 200 and [s.person for s in app.served] == ["107"], app.describe()
        app.served.clear()
        urls = [scrapy.Request(f"http://{elsewhere}/u/107", headers=header, dont_filter=True)]
        result = await crawl(make_spider(KIND, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert_not_served(app, {"107"}, f"(URL host {elsewhere}, {header})")
    lines = [e for e in result.audit if (e["url"] or "").endswith("/u/107")]
    assert lines and all(e["verdict"] == "deny" and e["reason"] == "subject.mismatch" for e in lines), lines


# --------------------------------------------------------------------------- 2. a host name for an IP address


@deferred_f_from_coro_f
async def test_a_host_name_for_an_unlisted_address_is_denied_like_the_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``terms.ip-host`` denies ``127.0.0.1`` because a server that answers any host serves the platform there
    (tests/test_leaks.py::test_ip_literal_hosts_are_denied). ``localhost`` is that address under a name, as is
    every ``127.0.0.1.nip.io`` / sslip.io / CNAME / hosts-file name: policy.py ``_is_ip`` only looks at the
    literal, and a name with no registrable domain (``registered_domain() == ""``) is simply off-platform."""
    app = LenientPeople(any_host=True)
    with LocalServer(app) as server:
        urls = [f"http://127.0.0.1:{server.port}/u/107", f"http://localhost:{server.port}/u/106"]
        await crawl(make_spider(KIND, ListLogic), people_settings(tmp_path), proxy=None, monkeypatch=monkeypatch,
                    urls=urls, follow_links=False)
    assert "127.0.0.1" not in {s.host for s in app.served}, f"control: the IP literal is denied\n{app.describe()}"
    assert_not_served(app, {"106"}, "(http://localhost:PORT/u/106, the same server as 127.0.0.1)")


# --------------------------------------------------------------------------- 3. decoders stranger than one pass


def decoding(app: LenientPeople, how: str) -> App:
    """The people site behind one more decoding step, before its own single decoding pass:

    - ``double``: a front end decodes the path and the application decodes it again (IIS, a proxy that normalises
      before ``proxy_pass``, many framework stacks): ``%252F`` is ``/``;
    - ``%u``: IIS / ASP.NET ``%uXXXX`` escapes;
    - ``overlong``: a UTF-8 decoder that accepts overlong forms (``%C0%AF`` is ``/``, ``%C0%AE`` is ``.``).
    """

    def serve(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        path = request.path
        if how == "double":
            path = unquote(path)
        elif how == "%u":
            path = re.sub(r"%u([0-9A-Fa-f]{4})", lambda m: quote(chr(int(m[1], 16)), safe=""), path)
        elif how == "overlong":
            path = re.sub(r"(?i)%c0%af", "/", re.sub(r"(?i)%c0%ae", ".", path))
        return app(dataclasses.replace(request, path=path), headers)

    return serve


@pytest.mark.parametrize(("how", "href"), [
    ("double", "/u/101/..%252F107"),  # allowed as 101 (subject.authorized)
    ("double", "/u%252F107"),  # allowed as no one (subject.not-a-profile)
    ("%u", "/u/101/..%u002F107"),  # allowed as 101
    ("overlong", "/u/101/..%c0%af107"),  # allowed as 101
    ("overlong", "/u/101/%c0%ae%c0%ae/107"),  # allowed as 101
])
@deferred_f_from_coro_f
async def test_a_url_another_decoder_reads_as_another_person_is_denied(
    how: str, href: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """terms/readings.py ``readings`` decodes once (``decode``), does not know ``%u`` and keeps bytes that are not
    UTF-8 as surrogates that only the id segment is checked for (platforms.py ``_resolves``). A ``%25``, a ``%u`` or
    an undecodable byte anywhere in a profile path is something no site links to; it should be ambiguous."""
    app = LenientPeople()
    with LocalServer(decoding(app, how)) as server:
        await crawl(make_spider(KIND, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch, urls=[f"{BASE}{href}", f"{BASE}/u/101"], follow_links=False)
    assert_served(app, "101")
    assert_not_served(app, {"107"}, f"({href} on a server that decodes {how})")


# --------------------------------------------------------------------------- 4. a multipart form body


def php_multipart(app: LenientPeople) -> App:
    """PHP fills ``$_POST`` (and so ``$_REQUEST``) from ``multipart/form-data`` bodies as from urlencoded ones."""

    def serve(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        body = request.body
        if "multipart/form-data" in headers.get("content-type", ""):
            fields = re.findall(rb'name="([^"]*)"\r\n\r\n(.*?)\r\n--', body, re.S)
            body = b"&".join(name + b"=" + value for name, value in fields)
        return app(dataclasses.replace(request, body=body), headers)

    return serve


@deferred_f_from_coro_f
async def test_a_multipart_form_body_naming_a_person_is_read_like_a_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README says "a form body is read like a query", but policy.py ``_with_body`` appends every body to the URL as
    if it were urlencoded: a multipart body has no ``id`` parameter that way, so ``POST /profile.php`` naming 107
    in a ``form-data`` part is ``subject.not-a-profile``."""
    body = b'--XyZ\r\nContent-Disposition: form-data; name="id"\r\n\r\n107\r\n--XyZ--\r\n'
    urls = [scrapy.Request(f"{BASE}/profile.php", method="POST", body=body, dont_filter=True,
                           headers={"Content-Type": "multipart/form-data; boundary=XyZ"}), f"{BASE}/u/101"]
    app = LenientPeople()
    with LocalServer(php_multipart(app)) as server:
        await crawl(make_spider(KIND, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert_served(app, "101")
    assert_not_served(app, {"107"}, "(POST /profile.php, id=107 in a multipart/form-data part)")


# --------------------------------------------------------------------------- 5. a fetch-through API


def fetch_api(app: LenientPeople, api_host: str = "api.example") -> App:
    """A fetch-through service (ScraperAPI, ScrapingBee, a 'save page now'): ``/fetch?url=U`` fetches U and
    returns what it got."""

    def serve(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.host != api_host:
            return app(request, headers)
        if request.path != "/fetch":
            return _robots_only(request)
        target = urlsplit((parse_qs(request.query).get("url") or [""])[-1])
        fetched = dataclasses.replace(request, host=target.hostname or "", target=target.path or "/",
                                      path=target.path or "/", query=target.query)
        return app(fetched, {})

    return serve


@deferred_f_from_coro_f
async def test_a_fetch_api_url_carrying_a_profile_url_is_decided_as_that_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The URL decided is the API's (``terms.off-platform``); the profile URL it carries in its query is never
    looked at, though the service fetches it from the platform and the callback gets the page."""
    app = LenientPeople()
    with LocalServer(fetch_api(app)) as server:
        urls = [f"http://api.example/fetch?url={quote(f'{BASE}/u/107', safe='')}"]
        result = await crawl(make_spider(KIND, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert_not_served(app, {"107"}, "(through http://api.example/fetch?url=...people.example/u/107)")
    assert not result.items, result.items


# --------------------------------------------------------------------------- 6. no platform configured


@pytest.mark.parametrize("platforms", ["empty", "unset"])
@deferred_f_from_coro_f
async def test_a_crawl_with_no_platform_configured_does_not_start(
    platforms: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``CONSENTCRAWL_PLATFORMS = ""`` (say ``-s CONSENTCRAWL_PLATFORMS=$PLATFORMS`` with the variable unset), or
    the setting left out where ``settings/platforms.yaml`` is not in the working directory, gives a crawl with no
    platform (config.py ``from_settings``: ``_paths("")`` is ``()``, and the default path is relative): every URL is
    ``terms.off-platform`` and only robots.txt and the sites' signals are checked, with one INFO line to show for it.
    It goes unnoticed while the authorizations name no one yet (a new deployment; records would fail validation
    against no platform).
    ``consentcrawl check`` calls no platform a usage error; a misspelt setting already stops the crawl."""
    monkeypatch.chdir(tmp_path)
    settings = people_settings(tmp_path)
    empty = tmp_path / "no-one-yet.yaml"
    empty.write_text("authorizations: []\n")  # nobody has authorized anything yet
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = str(empty)
    if platforms == "empty":
        settings["CONSENTCRAWL_PLATFORMS"] = ""
    else:
        del settings["CONSENTCRAWL_PLATFORMS"]
    app = LenientPeople()
    with LocalServer(app) as server:
        await crawl(make_spider(KIND, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                    urls=[f"{BASE}/u/107"], follow_links=False)
    assert_not_served(app, {"107"}, f"(CONSENTCRAWL_PLATFORMS {platforms})")



# --------------------------------------------------------------------------- 7. an item the guard cannot decide


class ListedPeopleLogic(ListLogic):
    """A listing page shows people's data; the platform field is scraped with ``getall()`` (a list)."""

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        platform = response.css("body::attr(data-platform)").getall()
        for person in ("101", "107"):
            yield {"subject": person, "platform": platform, "name": secret_name(person)}


@deferred_f_from_coro_f
async def test_an_item_with_an_odd_platform_value_is_dropped_without_logging_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """pipelines.py passes the item's ``platform`` value as it is to ``decide_item``; policy.py ``decide_subject``
    turns the ``TypeError`` of an unhashable one into a deny that carries that value as ``platform``, and the audit
    log (audit/log.py ``_line``: ``few.get(decision.platform)``) raises on it. The exception leaves the guard, so
    Scrapy logs ``Error processing {item}`` at ERROR: the denied person's data, in the log."""
    app = LenientPeople().page("/listing", '<html><body data-platform="people">people</body></html>')
    settings = people_settings(tmp_path, LOG_LEVEL="INFO")
    with caplog.at_level(logging.DEBUG), LocalServer(app) as server:
        result = await crawl(make_spider(KIND, ListedPeopleLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/listing"], follow_links=False)
    assert result.seen, "control: the listing's callback ran"
    assert secret_name("107") not in str(result.items)
    formatter = logging.Formatter()
    shown = [formatter.format(r) for r in caplog.records if r.levelno >= logging.INFO]
    leaked = [line.splitlines()[0][:200] for line in shown if secret_name("107") in line]
    assert not leaked, f"a denied person's item logged at INFO or above: {leaked}"


# --------------------------------------------------------------------------- pins: these hold at HEAD


class RewriteInPlace:
    """A downloader middleware after consentcrawl's (priority 543) that rewrites a request's URL in place."""

    def process_request(self, request: scrapy.Request, spider: Any = None) -> None:
        if request.url.endswith("/people?page=9"):
            request._set_url(f"{BASE}/u/107")


class DownloadAsyncLogic(ListLogic):
    """A callback that fetches another page itself through the engine (no scheduler, no spider middleware)."""

    async def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        assert self.crawler.engine is not None
        try:
            page = await self.crawler.engine.download_async(scrapy.Request(f"{BASE}/u/107"))
        except Exception:  # noqa: BLE001 - denied: nothing to yield
            return
        yield {"name": page.css(".name::text").get()}


@pytest.mark.parametrize("how", ["meta-refresh", "download_async", "rewritten-in-place"])
@deferred_f_from_coro_f
async def test_pin_requests_no_link_check_saw_are_decided_at_send_time(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pinned (passes at HEAD): requests that reach the downloader without the spider middleware's link check, or
    whose URL changes after the request phase, are decided by the send-time handler on the URL actually sent."""
    app = LenientPeople().page("/refresh", '<html><head><meta http-equiv="refresh" content="0; url=/u/107">'
                                           "</head></html>")
    logic: type[ListLogic] = DownloadAsyncLogic if how == "download_async" else ListLogic
    first = {"meta-refresh": "/refresh", "download_async": "/u/101", "rewritten-in-place": "/people?page=9"}[how]
    settings = people_settings(tmp_path)
    if how == "rewritten-in-place":
        settings["DOWNLOADER_MIDDLEWARES"] = {f"{__name__}.RewriteInPlace": 543}
    with LocalServer(app) as server:
        result = await crawl(make_spider(KIND, logic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}{first}", f"{BASE}/u/101"], follow_links=False)
    assert_served(app, "101")
    denied = [e for e in result.audit if (e.get("url") or "").endswith("/u/107") and e.get("verdict") == "deny"]
    assert denied, f"control: /u/107 was asked for and denied ({how})"
    assert_not_served(app, {"107"}, f"({how})")
    assert secret_name("107") not in str(result.items)


# --------------------------------------------------------------------------- a header stored past Headers' checks


@pytest.mark.parametrize("name, value", [(b"Host", b"people.example"), (b"Host", "people.example"),
                                         (b"Cookie", b"id=107"), (b"Content-Type", ["text/plain"])])
@deferred_f_from_coro_f
async def test_a_header_stored_past_headers_checks_is_denied_and_recorded(
        name: bytes, value: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A spider can put a value into ``request.headers`` past ``Headers``' normalising (``dict.__setitem__``): a
    bare ``bytes`` or ``str`` rather than a list of ``bytes``. A handler may still send it, and how it spells it is
    the handler's own: the request is denied as unreadable, with the cause in the audit log (``error.bad-url``),
    without a traceback and without the person's URL in the log at INFO or above. 101 is authorized, so nothing
    else denies it."""
    app = LenientPeople(any_host=True)
    request = scrapy.Request(f"http://{HOST}/u/101", method="POST" if name == b"Content-Type" else "GET",
                             body=b"a=1" if name == b"Content-Type" else b"", dont_filter=True)
    dict.__setitem__(request.headers, name, value)
    with caplog.at_level(logging.INFO), LocalServer(app) as server:
        result = await crawl(make_spider(KIND, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[request], follow_links=False)
    assert_not_served(app, {"101"}, f"({name!r} stored as {value!r})")
    lines = [e for e in result.audit if (e["url"] or "").endswith("/u/101")]
    assert lines and all(e["verdict"] == "deny" and e["reason"] == "error.bad-url" for e in lines), lines
    assert any(ev.get("kind") == "error" for e in lines for ev in e.get("evidence", ())), lines
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [m for m in loud if "/u/101" in m or "Traceback" in m], loud
