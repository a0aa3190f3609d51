"""scrapy-playwright with Debian's Chromium: what the browser fetches by itself is decided before it is sent.

The browser reaches ``people.example`` through the LocalServer as its HTTP proxy, so the server's request log is the
truth about what left the browser: a redirect hop or a subresource naming a person who did not authorize us must
never appear in it.
"""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import scrapy
import yaml
from scrapy.settings import Settings
from scrapy.utils.defer import deferred_f_from_coro_f
from scrapy.utils.test import get_crawler

import consentcrawl.browser as browser_module
from consentcrawl import ConsentSpider
from consentcrawl.browser import (
    DEFAULT_PROVIDER,
    PLAYWRIGHT_HANDLER,
    PROVIDER_SETTING,
    PlaywrightAddon,
    configure_playwright,
)
from consentcrawl.errors import ConfigError
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.conftest import consent_settings, run_crawl

pytest.importorskip("scrapy_playwright", reason="scrapy-playwright is not installed (pip install -e '.[test]')")
from scrapy_playwright.page import PageMethod

CHROMIUM = Path("/usr/bin/chromium")
HOST = "people.example"
AUTHORIZED = "101"
#: what the browser tries to fetch about people who did not authorize us, and how it gets there
DENIED = {
    "/u/107/avatar.png": "an <img> on the listing",
    "/u/107": "the navigation to /redirect?to=/u/107, redirected",
    "/u/108": "an <iframe>",
    "/u/109": "fetch() from the page's script",
    "/u/110/avatar.png": "an <img> through a redirect",
    "/u/111": "an <iframe> through two redirects",
    "/u/112": "a popup the page opens",
}

LISTING = """<!doctype html>
<html><head><title>People</title></head><body>
<h1>People</h1>
<img src="/u/107/avatar.png" alt="">
<iframe src="/u/108"></iframe>
<img src="/redirect?to=/u/110/avatar.png" alt="">
<iframe src="/redirect?to=%2Fredirect%3Fto%3D%2Fu%2F111"></iframe>
<a class="person" href="/u/101">Person 101</a>
<script>
  const done = (what) => document.body.setAttribute("data-" + what, "done");
  fetch("/u/109").catch(() => null).finally(() => done("fetch"));
  const popup = window.open("/u/112");
  const timer = setInterval(() => {
    try { if (popup.location.href === "about:blank") return; } catch (e) { /* navigated away, or blocked */ }
    clearInterval(timer);
    done("popup");
  }, 20);
</script>
</body></html>"""
#: the listing is read once its fetch() and its popup have been answered, so neither can race the page's closing
LISTING_READY = "body[data-fetch][data-popup]"


def profile_page(subject: str) -> str:
    return (f'<!doctype html><html><body><div data-subject="{subject}"><span class="name">Person {subject}</span>'
            f'<img src="/u/{subject}/avatar.png" alt=""></div></body></html>')


def app(request: LoggedRequest, headers: dict[str, str]) -> Response:
    path = request.decoded_path
    if request.host != HOST:
        return Response.text("unknown host\n", 404)
    if path == "/robots.txt":
        return Response.text("User-agent: *\nAllow: /\n")
    if path == "/":
        return Response.html(LISTING)
    if path == "/redirect":
        return Response.redirect(parse_qs(request.query)["to"][0])
    match = re.fullmatch(r"/u/([0-9]+)(/avatar\.png)?", path)
    if match and match.group(2):
        return Response(200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n")
    if match:
        return Response.html(profile_page(match.group(1)))
    return Response.text("not found\n", 404)


def write_config(tmp_path: Path) -> tuple[Path, Path]:
    platforms = {"platforms": {"people": {
        "domains": [HOST],
        "authorization": {"purposes": ["research"], "reference": "test agreement",
                          "valid_from": "2000-01-01", "valid_until": "2100-01-01"},
        "profiles": ["/u/{subject}"],
        "subject": "[0-9]+",
    }}}
    authorizations = {"authorizations": [{
        "platform": "people", "subject": AUTHORIZED, "purposes": ["research"],
        "granted_at": "2000-01-01T00:00:00Z", "revoked_at": None, "evidence": "test consent form",
    }]}
    platforms_path, authorizations_path = tmp_path / "platforms.yaml", tmp_path / "authorizations.yaml"
    platforms_path.write_text(yaml.safe_dump(platforms))
    authorizations_path.write_text(yaml.safe_dump(authorizations))
    return platforms_path, authorizations_path


class BrowserPeopleSpider(ConsentSpider):
    name = "browser-people"
    purpose = "research"
    custom_settings = {"ADDONS": {"consentcrawl.Addon": 0, "consentcrawl.browser.PlaywrightAddon": 10}}

    async def start(self) -> Any:
        yield scrapy.Request(f"http://{HOST}/", errback=self.failed, meta={
            "playwright": True, "playwright_page_methods": [PageMethod("wait_for_selector", LISTING_READY)]})
        for subject in ("107", AUTHORIZED):  # navigations the browser is redirected in
            yield scrapy.Request(f"http://{HOST}/redirect?to=/u/{subject}", self.parse_profile, errback=self.failed,
                                 meta={"playwright": True})

    def parse(self, response: scrapy.http.Response) -> Any:
        for href in response.css("a.person::attr(href)").getall():
            yield response.follow(href, self.parse_profile, errback=self.failed, meta={"playwright": True})

    def parse_profile(self, response: scrapy.http.Response) -> Any:
        yield {"url": response.url, "subject": response.css("[data-subject]").attrib["data-subject"]}

    def failed(self, failure: Any) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.set_value(f"test/failed/{failure.request.url}", str(failure.value))


def requested_subjects(requests: list[LoggedRequest]) -> set[str]:
    """People whose profile, or anything under it, reached the server."""
    return {m.group(1) for r in requests if r.host == HOST
            for m in [re.match(r"/u/([0-9]+)", r.decoded_path)] if m}


@deferred_f_from_coro_f
async def test_a_browser_crawl_fetches_no_redirect_hop_or_subresource_of_a_denied_person(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian: apt-get install chromium)")
    platforms, authorizations = write_config(tmp_path)
    started = time.monotonic()
    with LocalServer(app) as server:
        settings = consent_settings(
            tmp_path,
            CONSENTCRAWL_PLATFORMS=str(platforms),
            CONSENTCRAWL_AUTHORIZATIONS=str(authorizations),
            DOWNLOAD_HANDLERS={"http": PLAYWRIGHT_HANDLER, "https": PLAYWRIGHT_HANDLER},
            PLAYWRIGHT_LAUNCH_OPTIONS={"executable_path": str(CHROMIUM), "args": ["--no-sandbox"],
                                       "proxy": {"server": server.proxy}},
            PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT=20_000,
            LOG_LEVEL="INFO",
        )
        result = await run_crawl(BrowserPeopleSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        requests = server.requests
        errors = server.errors
    elapsed = time.monotonic() - started

    assert not errors
    people = [r for r in requests if r.host == HOST]
    paths = [r.decoded_path + (f"?{r.query}" if r.query else "") for r in people]
    # the truth: nobody who did not authorize us was asked for, however the browser got there
    assert requested_subjects(people) == {AUTHORIZED}, paths
    # controls: the authorized person's page and its image were fetched, directly and through a redirect
    assert paths.count("/u/101") == 2
    assert "/u/101/avatar.png" in paths
    assert "/redirect?to=/u/107" in paths  # the first hop was allowed; the hop to /u/107 was not
    assert "/redirect?to=%2Fredirect%3Fto%3D%2Fu%2F111" in paths and "/redirect?to=/u/111" in paths
    assert sorted(i["url"] for i in result.items) == [f"http://{HOST}/u/101"] * 2

    # each denied person was really attempted by the browser, and blocked by a decision on record
    browser = [e for e in result.audit if e["phase"] == "browser"]
    blocked = sorted(e["url"] for e in browser if e["verdict"] == "deny")
    assert blocked == sorted(f"http://{HOST}{path}" for path in DENIED)
    assert {e["reason"] for e in browser if e["verdict"] == "deny"} == {"subject.no-authorization"}
    # every request the browser sent was allowed first: the server saw nothing the audit log does not account for
    allowed = {e["url"] for e in result.audit if e["verdict"] == "allow"}
    side = {"/robots.txt", "/.well-known/tdmrep.json", "/ai.txt"}  # consentcrawl's own reads of the site's terms
    assert [r.url for r in people if r.path not in side and r.url not in allowed] == []

    failures = {k.removeprefix("test/failed/"): v for k, v in result.stats.items() if k.startswith("test/failed/")}
    assert list(failures) == [f"http://{HOST}/redirect?to=/u/107"]
    assert "ERR_BLOCKED_BY_CLIENT" in failures[f"http://{HOST}/redirect?to=/u/107"]
    assert result.stats["consentcrawl/browser/blocked"] == len(DENIED)
    assert result.stats["consentcrawl/browser/request_count"] == len(browser)
    assert result.stats["consentcrawl/browser/redirect_count"] == 5  # /u/107, /u/101, /u/110/avatar.png, two to /u/111
    assert elapsed < 60


def test_configure_playwright_changes_nothing_without_scrapy_playwright() -> None:
    settings = Settings({"DOWNLOAD_HANDLERS": {"http": "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler"}})
    crawler = get_crawler(settings_dict={})
    assert configure_playwright(settings, crawler) is False
    assert settings.get(PROVIDER_SETTING) is None


def test_configure_playwright_wraps_the_projects_provider_once() -> None:
    project_provider = "myproject.providers.Custom"
    settings = Settings({PROVIDER_SETTING: project_provider,
                         "CONSENTCRAWL_HTTPS_HANDLER": PLAYWRIGHT_HANDLER}, priority="project")
    crawler = get_crawler(settings_dict={})
    assert configure_playwright(settings, crawler) is True
    factory = settings.get(PROVIDER_SETTING)
    assert factory.crawler is crawler and factory.inner == project_provider
    assert configure_playwright(settings, crawler) is True
    assert settings.get(PROVIDER_SETTING) is factory
    assert copy.deepcopy(settings).get(PROVIDER_SETTING) is factory  # settings copies do not copy the crawler

    default = Settings({"DOWNLOAD_HANDLERS": {"http": PLAYWRIGHT_HANDLER}})
    configure_playwright(default, crawler)
    assert default.get(PROVIDER_SETTING).inner == DEFAULT_PROVIDER


@pytest.mark.parametrize(("name", "value"), [
    ("PLAYWRIGHT_BROWSER_TYPE", "firefox"),
    ("PLAYWRIGHT_CONTEXTS", {"default": {"user_data_dir": "/tmp/profile"}}),
    ("_PLAYWRIGHT_THREADED_LOOP", True),
])
def test_a_browser_that_cannot_be_guarded_is_a_configuration_error(name: str, value: Any) -> None:
    settings = Settings({"DOWNLOAD_HANDLERS": {"http": PLAYWRIGHT_HANDLER}, name: value})
    with pytest.raises(ConfigError, match=name):
        configure_playwright(settings, get_crawler(settings_dict={}))


def test_the_addon_warns_when_there_is_no_browser(caplog: pytest.LogCaptureFixture) -> None:
    PlaywrightAddon(get_crawler(settings_dict={})).update_settings(Settings())
    assert "no browser to guard" in caplog.text


class FakeSession:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, method: str, params: dict[str, Any]) -> None:
        self.sent.append((method, params))


class ExplodingRuntime:
    async def decide_url_now(self, url: str, *, phase: str = "browser") -> Any:
        raise RuntimeError("store on fire")


def paused(url: str) -> dict[str, Any]:
    return {"requestId": "interception-1", "request": {"url": url, "method": "GET"}}


@deferred_f_from_coro_f
async def test_the_gate_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    crawler = get_crawler(settings_dict={})
    session = FakeSession()
    gate = browser_module._RequestGate(crawler, session)
    monkeypatch.setattr(browser_module, "get_runtime", lambda crawler: ExplodingRuntime())
    await gate.answer(paused(f"http://{HOST}/u/101"))  # an exception while deciding: blocked
    monkeypatch.setattr(browser_module, "get_runtime", lambda crawler: None)
    await gate.answer(paused(f"http://{HOST}/u/101"))  # no runtime (a configuration error): blocked
    await gate.answer(paused("data:text/plain,hello"))  # not a fetch of anybody: continued
    blocked = {"requestId": "interception-1", "errorReason": "BlockedByClient"}
    assert session.sent == [("Fetch.failRequest", blocked), ("Fetch.failRequest", blocked),
                            ("Fetch.continueRequest", {"requestId": "interception-1"})]
