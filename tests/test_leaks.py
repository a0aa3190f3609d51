"""Leaks: ways a denied person's page could still be fetched, or their data still surface, in a real crawl.

Every crawl runs in-process against the lenient ``people`` site (:mod:`tests.lenient`), which reads URLs the way
lenient real servers do. Fetching is judged by the site's own served log (the person it actually served after its
lenient decoding), never by our audit log. Each test runs for a ``ConsentSpider`` subclass and for a plain
``scrapy.Spider`` with ``ADDONS = {"consentcrawl.Addon": 0}``.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import pytest
import scrapy
from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler
from scrapy.http import HtmlResponse
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.decision import Decision, Stage, Verdict
from consentcrawl_demo.server import LocalServer
from tests.lenient import (
    AUTHORIZED,
    HOST,
    KINDS,
    Crawl,
    LenientPeople,
    ListLogic,
    Robots,
    crawl,
    make_spider,
    people_settings,
    person_of_url,
    record_yaml,
    secret_name,
)

BASE = f"http://{HOST}"
ROOT = Path(__file__).resolve().parent.parent


def scrapy_url(href: str, base: str = f"{BASE}/spellings") -> str:
    """The URL Scrapy makes of ``href`` on a page at ``base`` (what the audit log names)."""
    return HtmlResponse(base, body=b"<html></html>", encoding="utf-8").follow(href).url


def person_seen(url: str) -> str | None:
    parts = urlsplit(url)
    return person_of_url(parts.path + (f"?{parts.query}" if parts.query else ""))


def deny_lines(result: Crawl, url: str) -> list[dict[str, Any]]:
    return [e for e in result.audit if e.get("url") == url and e.get("verdict") == "deny"]


def assert_not_served(app: LenientPeople, people: set[str] | list[str], why: str = "") -> None:
    leaked = sorted(set(app.people_served()) & set(people))
    assert not leaked, f"denied people served: {leaked} {why}\nserved log:\n{app.describe()}"


def assert_served(app: LenientPeople, person: str) -> None:
    assert person in app.people_served(), f"control: {person} was not served\nserved log:\n{app.describe()}"


# --------------------------------------------------------------------------- 1. spellings

#: spelling -> the person the lenient site serves for it (none of them authorized)
SPELLINGS = {
    "/u/101/..%2F107": "107",
    "/u/101/%2e%2e%2f108": "108",
    "/u/101/..;/104": "104",
    "/u%2F110": "110",
    "/u/109%2F": "109",
    "/u/104;jsessionid=1": "104",
    "/u/\uff11\uff10\uff15": "105",  # fullwidth digits
    "/u/101\\..\\106": "106",
}
#: found while writing the tests: more spellings the lenient site reads as another person
MORE_SPELLINGS = {
    "/u/+111": "111",  # int() accepts a sign
    "/u/%20112": "112",  # int() strips spaces
    "/u/\u0661\u0661\u0663": "113",  # Arabic-Indic digits: int() reads them, NFKC does not turn them into ASCII
    "/u/101/..%5C114": "114",  # %5C decoded to "\", then "\" read as "/"
    "/profile.php?id=115": "115",  # a query profile template
    "/profile.php?id=101&id=116": "116",  # PHP reads the last of repeated parameters
    "/profile.php?%69d=117": "117",  # an escaped parameter name
    "/profile.php?id=+118": "118",  # "+" is a space in a query, and int() strips spaces
    "/u/119.json": "119",  # a format suffix
}
SPELLING_DENY_REASONS = {"subject.ambiguous-url", "subject.no-authorization"}


async def _crawl_spellings(kind: str, how: str, spellings: dict[str, str], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> tuple[LenientPeople, Crawl]:
    for href, person in spellings.items():
        assert person_of_url(scrapy_url(href)[len(BASE):]) == person, href  # what the site reads Scrapy's URL as
    hrefs = [*spellings, "/u/101"]
    app = LenientPeople()
    if how == "links":
        app.links_page("/spellings", hrefs)
        urls: list[Any] = [f"{BASE}/spellings"]
    else:
        urls = [scrapy_url(h) for h in hrefs]
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls)
    return app, result


def _check_spellings(app: LenientPeople, result: Crawl, spellings: dict[str, str]) -> None:
    assert_served(app, "101")
    assert_not_served(app, set(spellings.values()) - {"101"}, "(a lenient server read the URL as them)")
    for href in spellings:
        url = scrapy_url(href)
        reasons = {e["reason"] for e in deny_lines(result, url)}
        assert reasons & SPELLING_DENY_REASONS, f"no deny line for {url}: {reasons}"


@pytest.mark.parametrize("how", ["start-urls", "links"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_lenient_spellings_of_other_people_are_not_fetched(
    kind: str, how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, result = await _crawl_spellings(kind, how, SPELLINGS, tmp_path, monkeypatch)
    _check_spellings(app, result, SPELLINGS)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_more_lenient_spellings_are_not_fetched(kind: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    app, result = await _crawl_spellings(kind, "links", MORE_SPELLINGS, tmp_path, monkeypatch)
    _check_spellings(app, result, MORE_SPELLINGS)


# --------------------------------------------------------------------------- 2. redirects


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_redirect_to_a_denied_person_is_not_followed(kind: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    urls = [f"{BASE}/redirect?to={quote('/u/101/..%2F107', safe='')}", f"{BASE}/redirect?to=/u/107", f"{BASE}/u/101"]
    app = LenientPeople()
    with LocalServer(app) as server:
        await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch, urls=urls)
    assert_served(app, "101")
    assert sum(s.kind == "redirect" for s in app.served) == 2, app.describe()
    assert_not_served(app, {"107"}, "(through a redirect)")


# --------------------------------------------------------------------------- 3. meta naming another person


class MetaCopyLogic(ListLogic):
    """On a profile, follows ``/u/107`` with ``meta=response.meta`` (a common idiom to carry state along)."""

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        if response.url.endswith("/u/101"):
            yield response.follow("/u/107", callback=self.parse, meta=response.meta)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_meta_subject_naming_another_person_is_a_mismatch(kind: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    named = {"consentcrawl_subject": "people:101"}
    urls = [scrapy.Request(f"{BASE}/u/107", meta=dict(named), dont_filter=True),
            scrapy.Request(f"{BASE}/u/101", meta=dict(named), dont_filter=True)]
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls)
    assert_served(app, "101")  # naming the person the URL names is fine
    assert_not_served(app, {"107"}, "(meta named people:101)")
    reasons = {e["reason"] for e in deny_lines(result, f"{BASE}/u/107")}
    assert "subject.mismatch" in reasons, result.denies()


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_meta_copied_from_a_response_does_not_carry_its_person(kind: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    urls = [scrapy.Request(f"{BASE}/u/101", meta={"consentcrawl_subject": "people:101"}, dont_filter=True)]
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, MetaCopyLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls)
    assert_served(app, "101")
    assert_not_served(app, {"107"}, "(followed with meta=response.meta of /u/101)")
    assert deny_lines(result, f"{BASE}/u/107"), result.denies()


# --------------------------------------------------------------------------- 4. forged internal meta


class ForgeLogic(ListLogic):
    """On /u/101, requests /u/107 with forged consentcrawl meta (``forge``: which keys)."""

    forge: tuple[str, ...] = ()

    def parse(self, response: scrapy.http.Response) -> Any:
        yield from super().parse(response)
        if not response.url.endswith("/u/101"):
            return
        meta: dict[str, Any] = {}
        if "robots" in self.forge:
            meta["consentcrawl_robots"] = True
        if "decision" in self.forge:
            copied = response.meta.get("consentcrawl_decision")
            if not (isinstance(copied, Decision) and copied.allowed):  # nothing to copy: forge one
                copied = Decision(Verdict.ALLOW, Stage.SUBJECT, "subject.authorized", subject="107", platform="people")
            meta["consentcrawl_decision"] = copied
        yield scrapy.Request(f"{BASE}/u/107", callback=self.parse, meta=meta, dont_filter=True)


@pytest.mark.parametrize("forge", [("robots",), ("decision",), ("robots", "decision")], ids="+".join)
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_forged_consentcrawl_meta_does_not_bypass_the_checks(
    kind: str, forge: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "httpcache"
    settings = people_settings(tmp_path, HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(cache))
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ForgeLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/101"], forge=forge, follow_links=False)
    assert_served(app, "101")
    assert_not_served(app, {"107"}, f"(request meta forged: {forge})")
    assert deny_lines(result, f"{BASE}/u/107"), f"no deny line for /u/107: {result.denies()}"
    cached = b"".join(p.read_bytes() for p in cache.rglob("*") if p.is_file())
    assert secret_name("101").encode() in cached, "control: the HTTP cache was used"
    assert secret_name("107").encode() not in cached and b"/u/107" not in cached, "107 is in the HTTP cache"


# --------------------------------------------------------------------------- 5. robots.txt redirected to a profile


@pytest.mark.parametrize("where", ["same-host", "same-host-spelling", "other-host"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_robots_txt_redirected_to_a_profile_does_not_fetch_it(
    kind: str, where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = LenientPeople()
    if where.startswith("same-host"):
        app.robots[HOST] = Robots(location="/u/101/..%2F107" if where.endswith("spelling") else "/u/107")
        origin = BASE
    else:
        app.robots["other.example"] = Robots(location=f"{BASE}/u/107")
        app.page("/page", "<html><body>a page</body></html>")
        origin = "http://other.example"
    urls = [f"{origin}/page", f"{origin}/u/101"]
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls)
    robots_host = urlsplit(origin).hostname
    assert any(s.host == robots_host for s in app.robots_fetches()), f"control: no robots.txt\n{app.describe()}"
    assert_not_served(app, {"107"}, "(as the target of a robots.txt redirect)")
    fetched = [s.target for s in app.served if s.host == robots_host and s.kind != "robots"]
    assert not fetched, f"the origin's pages were fetched: {fetched}"
    for url in urls:
        reasons = {e["reason"] for e in deny_lines(result, url)}
        assert "robots.unreachable" in reasons, f"{url}: {reasons}"


# --------------------------------------------------------------------------- 6. dropped items are not logged


class ListingItemsLogic(ListLogic):
    """A listing page carries people's data: yields one item per person on it."""

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        for person in ("101", "107"):
            yield {"subject": person, "platform": "people", "name": secret_name(person)}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_dropped_items_are_not_logged_at_info(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    settings = people_settings(tmp_path, LOG_LEVEL="INFO")
    with caplog.at_level(logging.DEBUG), LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListingItemsLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/people?page=1"])
    assert [i["name"] for i in result.items] == [secret_name("101")], "control: the authorized item is kept"
    assert secret_name("107") not in str(result.items)
    formatter = logging.Formatter()
    shown = [formatter.format(r) for r in caplog.records if r.levelno >= logging.INFO]
    leaked = [line for line in shown if secret_name("107") in line]
    assert not leaked, f"a dropped person's data logged at INFO or above: {leaked}"


# --------------------------------------------------------------------------- 7. a misspelt setting

MISSPELT = re.compile(r"CONSENTCRAWL_PLATFORM(?!S)")


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_misspelt_setting_stops_the_crawl(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)  # no settings/platforms.yaml to fall back on
    settings = people_settings(tmp_path)
    settings["CONSENTCRAWL_PLATFORM"] = settings.pop("CONSENTCRAWL_PLATFORMS")
    app = LenientPeople()
    raised: BaseException | None = None
    with caplog.at_level(logging.DEBUG), LocalServer(app) as server:
        try:
            await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                        urls=[f"{BASE}/u/101", f"{BASE}/u/107"])
        except Exception as exc:  # noqa: BLE001 - refusing to start by raising is fine too
            raised = exc
    assert not app.served, f"the crawl started:\n{app.describe()}"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    naming = [r.getMessage() for r in errors if MISSPELT.search(r.getMessage())]
    if raised is not None and MISSPELT.search(str(raised)):
        naming.append(str(raised))
    assert naming, f"no error names CONSENTCRAWL_PLATFORM: {[r.getMessage() for r in errors]} {raised!r}"
    assert len([r for r in errors if MISSPELT.search(r.getMessage())]) <= 1, naming
    assert "CONSENTCRAWL_PLATFORMS" in naming[0], f"no suggestion: {naming[0]}"


PROJECT_SPIDERS = {
    "ConsentSpider": """\
        from consentcrawl import ConsentSpider

        class PeopleSpider(ConsentSpider):
            name = "people"
            purpose = "research"
            start_urls = ["http://people.example/u/101", "http://people.example/u/107"]
    """,
    "ADDONS": """\
        import scrapy

        class PeopleSpider(scrapy.Spider):
            name = "people"
            custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}}
            start_urls = ["http://people.example/u/101", "http://people.example/u/107"]
    """,
}


@pytest.mark.parametrize("kind", KINDS)
def test_misspelt_setting_stops_scrapy_crawl(kind: str, tmp_path: Path) -> None:
    platforms = people_settings(tmp_path)["CONSENTCRAWL_PLATFORMS"]
    project = tmp_path / "project"
    (project / "peopleproj" / "spiders").mkdir(parents=True)
    (project / "scrapy.cfg").write_text("[settings]\ndefault = peopleproj.settings\n")
    (project / "peopleproj" / "__init__.py").write_text("")
    (project / "peopleproj" / "spiders" / "__init__.py").write_text("")
    (project / "peopleproj" / "spiders" / "people.py").write_text(textwrap.dedent(PROJECT_SPIDERS[kind]))
    (project / "peopleproj" / "settings.py").write_text(textwrap.dedent(f"""\
        BOT_NAME = "peopleproj"
        SPIDER_MODULES = ["peopleproj.spiders"]
        CONSENTCRAWL_PURPOSE = "research"
        CONSENTCRAWL_PLATFORM = {platforms!r}
        CONSENTCRAWL_AUTHORIZATIONS = {str(tmp_path / "authorizations.yaml")!r}
        CONSENTCRAWL_AUDIT_LOG = {str(tmp_path / "audit.jsonl")!r}
        TELNETCONSOLE_ENABLED = False
        REMOTE_CONTROL_ENABLED = False
        RETRY_ENABLED = False
        LOG_LEVEL = "INFO"
    """))
    app = LenientPeople()
    with LocalServer(app) as server:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("SCRAPY_")}
        # the consentcrawl this test process imports, not whichever one is installed
        env.update(http_proxy=server.proxy, PYTHONPATH=os.pathsep.join([str(project), str(ROOT)]))
        proc = subprocess.run([sys.executable, "-m", "scrapy", "crawl", "people"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    output = proc.stdout + proc.stderr
    assert not app.served, f"the crawl started:\n{app.describe()}\n{output}"
    assert proc.returncode != 0, f"exit code 0\n{output}"
    assert "Traceback (most recent call last)" not in output, output
    naming = [line for line in output.splitlines() if MISSPELT.search(line)]
    assert len(naming) == 1, f"expected one line naming CONSENTCRAWL_PLATFORM, got {naming}\n{output}"
    assert "CONSENTCRAWL_PLATFORMS" in naming[0], naming[0]


# --------------------------------------------------------------------------- 8. a withdrawal under another case


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_withdrawal_recorded_under_another_case_applies(kind: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    records = [record_yaml(s) for s in AUTHORIZED]
    records.append(record_yaml("Alice", revoked_at="2026-03-01T00:00:00Z", evidence="withdrawn by e-mail"))
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path, records), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/@alice", f"{BASE}/u/101"])
    assert_served(app, "101")
    assert_not_served(app, {"alice"}, "(withdrawn as 'Alice'; the site's handles are case-insensitive)")
    reasons = {e["reason"] for e in deny_lines(result, f"{BASE}/@alice")}
    assert "subject.revoked" in reasons, result.denies()


# --------------------------------------------------------------------------- 9. IP-literal hosts


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_ip_literal_hosts_are_denied(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = LenientPeople(any_host=True)
    monkeypatch.setenv("no_proxy", "127.0.0.1,::ffff:127.0.0.1,::ffff:7f00:1")  # IP literals: straight to the server
    with LocalServer(app) as server:
        ip_urls = [f"http://127.0.0.1:{server.port}/u/106", f"http://[::ffff:127.0.0.1]:{server.port}/u/107"]
        urls = [*ip_urls, f"{BASE}/u/101"]
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    direct = [s for s in app.served if s.host != HOST]
    assert all(s.target.startswith("/") for s in direct), f"control: IP hosts not reached directly\n{app.describe()}"
    assert_served(app, "101")
    assert_not_served(app, {"106", "107"}, "(through an IP-literal host)")
    for url in ip_urls:
        lines = [e for e in result.audit if e.get("verdict") == "deny" and "/u/10" in (e.get("url") or "")
                 and urlsplit(e["url"]).port == urlsplit(url).port and urlsplit(e["url"]).path == urlsplit(url).path]
        assert "terms.ip-host" in {e["reason"] for e in lines}, f"{url}: {result.denies()}"


# --------------------------------------------------------------------------- 10. robots.txt in report mode


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_robots_is_enforced_in_report_mode(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = LenientPeople(default_robots=Robots("User-agent: *\nDisallow: /u/102\n"))
    settings = people_settings(tmp_path, CONSENTCRAWL_MODE="report")
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/101", f"{BASE}/u/102"], follow_links=False)
    assert_served(app, "101")
    assert_not_served(app, {"102"}, "(robots.txt disallows /u/102; report mode)")
    assert "robots.disallowed" in {e["reason"] for e in deny_lines(result, f"{BASE}/u/102")}, result.denies()


# ---------------------------------------------------- 11. Scrapy's own robots handling and RemoteControl

ROBOTS_MW = "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware"
REMOTE_CONTROL = "scrapy.extensions.remote_control.RemoteControl"


@pytest.mark.parametrize("remote_control", ["unset", "explicit-true"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_project_robotstxt_obey_and_remote_control(
    kind: str, remote_control: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = people_settings(tmp_path, ROBOTSTXT_OBEY=True, REMOTE_CONTROL_JOBS_DIR=str(tmp_path / "jobs"))
    del settings["REMOTE_CONTROL_ENABLED"]
    if remote_control == "explicit-true":
        settings["REMOTE_CONTROL_ENABLED"] = True
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/u/101", f"{BASE}/u/102"], follow_links=False)
    assert_served(app, "101")
    middlewares = result.components.get("downloader_middlewares")
    assert middlewares, "control: the downloader middlewares were seen"
    assert ROBOTS_MW not in middlewares, "Scrapy's RobotsTxtMiddleware is active next to ours"
    fetches = [s.host for s in app.robots_fetches()]
    assert fetches == [HOST], f"robots.txt fetched {len(fetches)} times: {fetches}"
    extensions = result.components.get("extensions", [])
    if remote_control == "explicit-true":
        assert REMOTE_CONTROL in extensions, f"control: explicitly enabled, so on: {extensions}"
    else:
        assert REMOTE_CONTROL not in extensions, "RemoteControl (runs code sent to a local port) is enabled"


# ---------------------------------------------------------------- 12. a download handler that follows redirects


class FollowingHandler(HTTP11DownloadHandler):
    """A download handler that follows 3xx itself: the response's URL is the final one."""

    async def download_request(self, request: scrapy.Request) -> scrapy.http.Response:
        for _ in range(5):
            response = await super().download_request(request)
            location = response.headers.get(b"Location")
            if response.status not in (301, 302, 303, 307, 308) or not location:
                break
            request = request.replace(url=urljoin(response.url, location.decode("latin-1")))
        return response


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_response_from_a_handler_that_followed_a_redirect_is_decided(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = people_settings(tmp_path, DOWNLOAD_HANDLERS={"http": "tests.test_leaks.FollowingHandler"})
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/redirect?to=/u/107", f"{BASE}/u/101"], follow_links=False)
    assert any(s.kind == "redirect" for s in app.served), app.describe()
    assert any(person_seen(u) == "101" for u in result.seen), f"control: the callback of 101 ran: {result.seen}"
    leaked = [u for u in result.seen if person_seen(u) == "107"]
    assert not leaked, f"a callback ran for 107's page: {leaked}"
    assert secret_name("107") not in str(result.items), result.items
    assert deny_lines(result, f"{BASE}/u/107"), f"no deny line for the response URL: {result.denies()}"


# --------------------------------------------------------------------------- found while writing: a form body


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_profile_named_in_a_form_body_is_not_fetched(kind: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``/profile.php`` with no ``id`` in its query names nobody by its URL; a PHP site reads ``id`` from the body."""
    urls = [scrapy.FormRequest(f"{BASE}/profile.php", formdata={"id": "107"}, callback=None, dont_filter=True),
            f"{BASE}/u/101"]
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert_served(app, "101")
    assert_not_served(app, {"107"}, "(POST /profile.php with id=107 in the form body)")
    assert deny_lines(result, f"{BASE}/profile.php"), result.denies()
