"""Hunt: further ways a denied person's page is fetched, their data leaks, or the add-on fails, found by a
fresh-eyes review of branch ``hunt`` (a copy of main at b9db50f).

Each test runs a real crawl (in-process, or ``scrapy`` in a subprocess where the crawl can hang) against the
lenient ``people`` site of :mod:`tests.lenient` and judges by the site's own served log, by the log lines a user
sees, or by whether the crawl ends. Each test marked "Fixed" failed on the code it was found on and passes since its
fix (the docstring keeps the attack and the cause it had); tests marked PIN passed from the start and cover an
attack no other test covers (kept as regression guards).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import (
    HOST,
    KINDS,
    LenientPeople,
    ListLogic,
    Robots,
    crawl,
    make_spider,
    people_settings,
    record_yaml,
    secret_name,
)

BASE = f"http://{HOST}"
ROOT = Path(__file__).resolve().parent.parent


def assert_not_served(app: LenientPeople, people: set[str], why: str = "") -> None:
    leaked = sorted(set(app.people_served()) & people)
    assert not leaked, f"denied people served: {leaked} {why}\nserved log:\n{app.describe()}"


def shown_lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    return [formatter.format(r) for r in caplog.records if r.levelno >= level]


# --------------------------------------------------------------------------- 1. robots.txt 5xx + Scrapy's retry

SPIDER_PROJECT = {
    "ConsentSpider": """\
        from consentcrawl import ConsentSpider

        class PeopleSpider(ConsentSpider):
            name = "people"
            purpose = "research"
            start_urls = ["http://people.example/u/101", "http://people.example/u/107"]

            def parse(self, response):
                yield {"url": response.url}
    """,
    "ADDONS": """\
        import scrapy

        class PeopleSpider(scrapy.Spider):
            name = "people"
            start_urls = ["http://people.example/u/101", "http://people.example/u/107"]

            def parse(self, response):
                yield {"url": response.url}
    """,
}


def _project(tmp_path: Path, kind: str, extra_settings: str = "") -> Path:
    """A Scrapy project as ``scrapy startproject`` leaves it (``RETRY_ENABLED`` not touched: Scrapy's default,
    True), with the add-on in its settings."""
    settings = people_settings(tmp_path)
    project = tmp_path / "project"
    (project / "peopleproj" / "spiders").mkdir(parents=True)
    (project / "scrapy.cfg").write_text("[settings]\ndefault = peopleproj.settings\n")
    (project / "peopleproj" / "__init__.py").write_text("")
    (project / "peopleproj" / "spiders" / "__init__.py").write_text("")
    (project / "peopleproj" / "spiders" / "people.py").write_text(textwrap.dedent(SPIDER_PROJECT[kind]))
    (project / "peopleproj" / "settings.py").write_text(textwrap.dedent(f"""\
        BOT_NAME = "peopleproj"
        SPIDER_MODULES = ["peopleproj.spiders"]
        ADDONS = {{"consentcrawl.Addon": 0}}
        CONSENTCRAWL_PURPOSE = "research"
        CONSENTCRAWL_PLATFORMS = {settings["CONSENTCRAWL_PLATFORMS"]!r}
        CONSENTCRAWL_AUTHORIZATIONS = {settings["CONSENTCRAWL_AUTHORIZATIONS"]!r}
        CONSENTCRAWL_AUDIT_LOG = {settings["CONSENTCRAWL_AUDIT_LOG"]!r}
        CONSENTCRAWL_LOGSTATS_INTERVAL = 0
        TELNETCONSOLE_ENABLED = False
        REMOTE_CONTROL_ENABLED = False
        DOWNLOAD_TIMEOUT = 3
        CLOSESPIDER_TIMEOUT = 15
        LOG_LEVEL = "DEBUG"
    """) + textwrap.dedent(extra_settings))
    return project


def _run_scrapy(project: Path, proxy: str, timeout: float) -> tuple[int | None, str]:
    """``scrapy crawl people`` in a subprocess; (exit code, output), exit code None when killed at ``timeout``."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("SCRAPY_")}
    env.update(http_proxy=proxy, PYTHONPATH=os.pathsep.join([str(project), str(ROOT)]))
    try:
        proc = subprocess.run([sys.executable, "-m", "scrapy", "crawl", "people"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"") + (exc.stderr or b"")
        return None, out.decode("utf-8", "replace") if isinstance(out, bytes) else out
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("status", [503])
@pytest.mark.parametrize("kind", KINDS)
def test_robots_txt_5xx_with_scrapys_retry_denies_the_origin_and_ends(
    kind: str, status: int, tmp_path: Path,
) -> None:
    """Fixed (availability; fail-closed, no leak). With Scrapy's default ``RETRY_ENABLED = True`` (every test
    of the robots stage sets it to False), a robots.txt that answers 5xx (or times out) hangs the crawl forever:
    ``CLOSESPIDER_TIMEOUT`` fires ("Closing spider (closespider_timeout)") but the spider never closes.

    Cause: consentcrawl's robots.txt request (``robots/scrapyfetch.py`` ``_download``) carries no ``dont_retry``;
    RetryMiddleware answers the 5xx with ``request.copy()``, and ``ExecutionEngine.download_async`` downloads that
    copy in its loop. The copy is a new object, not in ``ScrapyRobotsFetcher.own``, so
    ``ConsentDownloaderMiddleware.process_request`` -> ``ConsentRuntime.prefilter`` -> ``_robots_for`` ->
    ``robots.get(origin)`` awaits the in-flight robots.txt task for the same origin — which is awaiting this very
    copy: a deadlock. Every request to the origin waits on it, and ``close_spider`` waits for them."""
    app = LenientPeople(default_robots=Robots(status=status))
    project = _project(tmp_path, kind)
    with LocalServer(app) as server:
        code, output = _run_scrapy(project, server.proxy, timeout=45)
    assert_not_served(app, {"107"})
    assert code is not None, ("the crawl did not end within 60 s (CLOSESPIDER_TIMEOUT = 15):\n"
                              + "\n".join(output.splitlines()[-15:]))
    assert "robots.unreachable" in Path(tmp_path / "audit.jsonl").read_text(), "robots.txt 5xx denies the origin"


def test_robots_txt_timeout_with_scrapys_retry_ends(tmp_path: Path) -> None:
    """Fixed (availability), the same deadlock for a robots.txt that times out (``DOWNLOAD_TIMEOUT = 3``, the
    server answers after 10 s): RetryMiddleware retries ``TimeoutError`` with a copy, which deadlocks as above."""
    from consentcrawl_demo.server import Response

    app = LenientPeople()

    def slow_robots(request: Any, headers: dict[str, str]) -> Any:
        if request.path == "/robots.txt":
            return dataclasses.replace(Response.text("User-agent: *\nAllow: /\n"), delay=10.0)
        return app(request, headers)

    project = _project(tmp_path, "ADDONS")
    with LocalServer(slow_robots) as server:
        code, output = _run_scrapy(project, server.proxy, timeout=45)
    assert_not_served(app, {"107"})
    assert code is not None, ("the crawl did not end within 45 s (CLOSESPIDER_TIMEOUT = 15):\n"
                              + "\n".join(output.splitlines()[-6:]))


def test_one_link_to_a_dead_host_does_not_hang_the_crawl(tmp_path: Path) -> None:
    """Fixed (availability), the same deadlock as above reached from an ordinary crawl: the people site's
    robots.txt is fine, but one start URL is on a host that is down (the proxy answers 502 for it, as a real
    proxy or CDN does; a DNS failure or a refused connection is retried the same way). Its robots.txt request is
    retried, the retry deadlocks, and the crawl of everything else never finishes."""
    app = LenientPeople()
    spider = SPIDER_PROJECT["ADDONS"].replace(
        '"http://people.example/u/107"]', '"http://people.example/u/107", "http://gone.example/page"]')
    project = _project(tmp_path, "ADDONS")
    (project / "peopleproj" / "spiders" / "people.py").write_text(textwrap.dedent(spider))
    with LocalServer(app) as server:
        code, output = _run_scrapy(project, server.proxy, timeout=45)
    assert "101" in app.people_served(), f"control: the people site is crawled\n{app.describe()}"
    assert_not_served(app, {"107"})
    assert code is not None, ("the crawl did not end within 45 s (CLOSESPIDER_TIMEOUT = 15):\n"
                              + "\n".join(output.splitlines()[-8:]))


# --------------------------------------------------------------------------- 2. Scrapy's own log lines


class MetaCopyLogic(ListLogic):
    """The ``meta=response.meta`` idiom (docs/meta.md calls it "very common"): follow every link of a page with
    the page's meta."""

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        name = response.css(".name::text").get()
        if name:
            yield {"url": response.url, "name": name}
        for href in response.css("a.link::attr(href)").getall():
            yield response.follow(href, callback=self.parse, meta=response.meta)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_denied_link_with_copied_meta_is_not_logged_at_warning(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """Fixed (data leak into the log: a denied person's URL at WARNING). Scrapy 2.19's
    ``MetaCopyDetectionMiddleware`` (spider middleware, priority 1000) warns once per crawl about a yielded
    request that carries ``download_latency`` & co. copied from ``response.meta``, and the warning quotes the
    target request: ``target request: <GET http://people.example/u/107>``. It runs on the callback's output before
    ``ConsentSpiderMiddleware`` (priority 5, nearest the engine: its ``process_spider_output`` runs last), so the
    link is logged at WARNING before it is denied and dropped (at DEBUG).

    Cause: ``addon.py`` ``SPIDER_PRIORITY = 5``: the link check runs after every other spider middleware has seen
    (and may have logged) the denied link; nothing makes Scrapy's INFO+ lines about links pass the check first."""
    app = LenientPeople().links_page("/friends", ["/u/107", "/u/101"])
    with caplog.at_level(logging.DEBUG), LocalServer(app) as server:
        result = await crawl(make_spider(kind, MetaCopyLogic), people_settings(tmp_path, LOG_LEVEL="INFO"),
                             proxy=server.proxy, monkeypatch=monkeypatch, urls=[f"{BASE}/friends"])
    assert_not_served(app, {"107"})
    assert f"{BASE}/u/101" in result.seen, "control: the authorized person is crawled"
    leaked = [line for line in shown_lines(caplog) if "/u/107" in line]
    assert not leaked, f"a denied person's URL logged at INFO or above: {leaked}"


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_long_denied_link_is_not_logged_at_info(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """Fixed (data leak into the log, cosmetic: a denied person's URL at INFO). ``UrlLengthMiddleware``
    (priority 800) logs ``Ignoring link (url length > 2083): http://people.example/u/107?...`` at INFO, before
    ``ConsentSpiderMiddleware`` (priority 5) has denied the link. Same cause as the test above."""
    long_link = "/u/107?utm_source=" + "x" * 2100
    app = LenientPeople().links_page("/friends", [long_link, "/u/101"])
    with caplog.at_level(logging.DEBUG), LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path, LOG_LEVEL="INFO"),
                             proxy=server.proxy, monkeypatch=monkeypatch, urls=[f"{BASE}/friends"])
    assert_not_served(app, {"107"})
    assert f"{BASE}/u/101" in result.seen, "control: the authorized person is crawled"
    leaked = [line[:160] for line in shown_lines(caplog) if "/u/107" in line]
    assert not leaked, f"a denied person's URL logged at INFO or above: {leaked}"


# --------------------------------------------------------------------------- 3. a store that stops reading cleanly

WITHDRAWAL_WITH_A_NOTE = """\
  - platform: people
    subject: "103"
    purposes: [research]
    granted_at: 2026-01-01T00:00:00Z
    revoked_at: 2026-03-01 (by email from Jane Roe, jane.roe@mail.example)
    evidence: "withdrawal email"
"""


class EditStoreLogic(ListLogic):
    """Crawls 101, then appends ``append`` to the authorizations file (an operator recording a withdrawal during
    the crawl, with a typo), waits for the store to notice, then crawls 102 and 103."""

    store: str = ""
    append: str = ""

    async def start(self) -> Any:
        import asyncio

        yield scrapy.Request(f"{BASE}/u/101", callback=self.parse, dont_filter=True)
        await asyncio.sleep(1)
        with open(self.store, "a", encoding="utf-8") as f:
            f.write(self.append)
        await asyncio.sleep(3)
        for person in ("102", "103"):
            yield scrapy.Request(f"{BASE}/u/{person}", callback=self.parse, dont_filter=True)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_store_error_mid_crawl_does_not_log_record_values_at_error(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """Fixed (data leak into the log: a withdrawing person's record values at ERROR). A withdrawal appended
    during a crawl with a malformed value makes the file store fail closed (good: 102 and 103 are not fetched),
    but its ERROR line quotes the value: ``'revoked_at': '2026-03-01 (by email from Jane Roe,
    jane.roe@mail.example)' is not an ISO-8601 date``.

    Cause: ``consent/load.py`` ``FileStore._look``: the message kept by the store is redacted
    (``_redact(exc.message)``: "they may be subject ids or evidence"), but ``_fail`` logs the unredacted
    ``str(exc)`` (``detail``) with ``logger.error``."""
    settings = people_settings(tmp_path, LOG_LEVEL="INFO")
    store = settings["CONSENTCRAWL_AUTHORIZATIONS"]
    app = LenientPeople()
    with caplog.at_level(logging.DEBUG), LocalServer(app) as server:
        await crawl(make_spider(kind, EditStoreLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                    store=store, append=WITHDRAWAL_WITH_A_NOTE)
    assert "101" in app.people_served(), app.describe()
    assert_not_served(app, {"102", "103"}, "(an unreadable store denies)")
    leaked = [line for line in shown_lines(caplog) if "Jane Roe" in line or "jane.roe@" in line]
    assert not leaked, f"a record's personal values logged at INFO or above: {leaked}"


# --------------------------------------------------------------------------- 4. meta robots in a compressed body

AI_PLATFORMS_YAML = f"""\
platforms:
  people:
    domains: [{HOST}]
    authorization: {{purposes: [research, ai-training], reference: "test agreement", valid_from: 2026-01-01,
                    valid_until: 2030-01-01}}
    profiles: ["/u/{{subject}}", "/@{{subject}}", "/profile.php?id={{subject}}"]
    subject: "[A-Za-z0-9_]+"
"""


def _noai_page(person: str) -> str:
    return (f'<html><head><meta name="robots" content="noai, noimageai"></head><body>'
            f'<h1 class="name">{secret_name(person)}</h1></body></html>')


def _gzipped(html_body: str) -> Any:
    import gzip

    from consentcrawl_demo.server import Response

    def serve(request: Any) -> Response:
        return Response(200, {"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip"},
                        gzip.compress(html_body.encode("utf-8")))

    return serve


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_meta_robots_in_a_gzip_body_is_read(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed (data leak: a response that must be dropped reaches the callback, the items and the cache).
    For an ``ai-training`` crawl, ``<meta name="robots" content="noai">`` drops the page (``response.meta-robots``)
    — when it is served uncompressed. Served with ``Content-Encoding: gzip`` (what most servers do: Scrapy sends
    ``Accept-Encoding: gzip, deflate, br, zstd``), the same page reaches the callback and its data is an item.

    Cause: the response phase (``ConsentResponseMiddleware``, priority 950, ``tagphase.check_tags`` ->
    ``parse_meta_robots(response.body, ...)``) reads the body *before* ``HttpCompressionMiddleware`` (590)
    decompresses it: it searches gzip bytes for a meta tag. (``addon.py`` chose 950 to be above
    ``HttpCacheMiddleware``, and says so: "above HttpCacheMiddleware (900) and HttpCompression (590)".)"""
    cache = tmp_path / "httpcache"
    settings = people_settings(tmp_path, CONSENTCRAWL_PURPOSE="ai-training",
                               records=[record_yaml("101", purposes="[research, ai-training]")],
                               HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(cache))
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(AI_PLATFORMS_YAML)
    app = LenientPeople()
    app.pages["/plain"] = _noai_page("plain-page")
    app.pages["/gz"] = _gzipped(_noai_page("gzip-page"))
    spidercls = make_spider(kind, ListLogic)
    if kind == "ConsentSpider":
        spidercls = type(spidercls.__name__, (spidercls,), {"purpose": "ai-training"})
    with LocalServer(app) as server:
        result = await crawl(spidercls, settings, proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/plain", f"{BASE}/gz", f"{BASE}/u/101"])
    assert f"{BASE}/u/101" in result.seen, f"control: an ordinary page is crawled\n{app.describe()}"
    assert f"{BASE}/plain" not in result.seen, "control: noai in an uncompressed page drops it"
    assert not any("/plain" in p.read_text() for p in cache.rglob("meta")), "control: and it is not cached"
    cached = [p.read_text() for p in cache.rglob("meta")]
    assert any("/u/101" in m for m in cached), "control: the HTTP cache is used"
    problems = []
    if f"{BASE}/gz" in result.seen:
        problems.append(f"the callback ran: items {result.items}")
    if any("/gz" in m for m in cached):
        problems.append("the HTTP cache stored it")
    assert not problems, f"a noai page served with Content-Encoding: gzip: {problems}"


# --------------------------------------------------------------------------- 5. the grant's fields, no subject field

FIELDS_PLATFORMS_YAML = f"""\
platforms:
  people:
    domains: [{HOST}]
    authorization: {{purposes: [research], reference: "test agreement", valid_from: 2026-01-01,
                    valid_until: 2030-01-01, fields: [name]}}
    profiles: ["/u/{{subject}}", "/@{{subject}}", "/profile.php?id={{subject}}"]
    subject: "[A-Za-z0-9_]+"
"""


class ProfileFieldsLogic(ListLogic):
    """A profile callback as the README writes it, plus one field the platform's grant does not cover;
    ``with_subject`` decides whether the item names its person in the ``subject`` field."""

    with_subject: bool = True

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        item = {"name": response.css(".name::text").get(), "email": "jane.roe@mail.example"}
        if self.with_subject:
            item["subject"] = response.css("[data-subject]").attrib["data-subject"]
        yield item


@pytest.mark.parametrize("with_subject", [True, False], ids=["subject-field", "no-subject-field"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_fields_outside_the_grant_are_removed_from_a_profile_item_without_subject(
    kind: str, with_subject: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed (data leak: fields the platform's grant does not cover reach the feed/pipelines). The platform
    grants ``fields: [name]``. An item from a profile page that names its person in ``subject`` loses ``email``
    (control, passes); the same item without a ``subject`` field keeps it, although the page's decision (stamped
    in the item's provenance: ``subject: "101"``, ``platform: "people"``, ``reason: subject.authorized``) says
    whose page it came from and which grant applies.

    Cause: ``pipelines.py`` ``ConsentGuardPipeline._guard`` returns an item with no subject field unchecked,
    before it looks at the provenance; the fields of the grant are only applied after a subject decision."""
    settings = people_settings(tmp_path)
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(FIELDS_PLATFORMS_YAML)
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ProfileFieldsLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/u/101"], with_subject=with_subject)
    assert [i["name"] for i in result.items] == [secret_name("101")], result.items
    assert result.items[0]["consentcrawl"]["subject"] == "101", "the provenance names the page's person"
    assert "email" not in result.items[0], f"a field outside the grant's fields was kept: {result.items[0]}"


# ---------------------------------------------------------------- 6. an HTTP cache filled before a withdrawal


@pytest.mark.parametrize("policy", ["scrapy.extensions.httpcache.DummyPolicy"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_pin_a_cache_filled_before_a_withdrawal_does_not_serve_the_page(
    kind: str, policy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PIN (defended; no other test crawls twice over one cache). Crawl 1 fetches 101..104 (all authorized) with
    ``HTTPCACHE_ENABLED``; 104 then withdraws; crawl 2 over the same cache, with ``HTTPCACHE_IGNORE_MISSING``
    (answer only from the cache): 104's cached page reaches no callback and no item."""
    cache = tmp_path / "httpcache"
    people = ["101", "102", "103", "104"]
    (tmp_path / "a").mkdir()
    first = people_settings(tmp_path / "a",
                            records=[record_yaml(p) for p in people],
                            HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(cache), HTTPCACHE_POLICY=policy)
    urls = [f"{BASE}/u/{p}" for p in people]
    app = LenientPeople()
    with LocalServer(app) as server:
        one = await crawl(make_spider(kind, ListLogic), first, proxy=server.proxy, monkeypatch=monkeypatch,
                          urls=urls, follow_links=False)
    assert f"{BASE}/u/104" in one.seen, "control: 104 was crawled and cached while authorized"
    (tmp_path / "b").mkdir()
    second = people_settings(tmp_path / "b", records=[
        *(record_yaml(p) for p in people),
        record_yaml("104", granted_at="2026-01-01T00:00:00Z", revoked_at="2026-02-01T00:00:00Z"),
    ], HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(cache), HTTPCACHE_POLICY=policy, HTTPCACHE_IGNORE_MISSING=True)
    app2 = LenientPeople()
    with LocalServer(app2) as server:
        two = await crawl(make_spider(kind, ListLogic), second, proxy=server.proxy, monkeypatch=monkeypatch,
                          urls=urls, follow_links=False)
    assert f"{BASE}/u/101" in two.seen, "control: the cache answers crawl 2"
    assert f"{BASE}/u/104" not in two.seen, "a withdrawn person's cached page reached a callback"
    assert secret_name("104") not in str(two.items)
    assert_not_served(app2, {"104"})


# --------------------------------------------------------------------------- 7. a platform host over another scheme

IP_PLATFORMS_YAML = f"""\
platforms:
  people:
    domains: [{HOST}, 127.0.0.1]
    authorization: {{purposes: [research], reference: "test agreement", valid_from: 2026-01-01,
                    valid_until: 2030-01-01}}
    profiles: ["/u/{{subject}}", "/@{{subject}}", "/profile.php?id={{subject}}"]
    subject: "[A-Za-z0-9_]+"
"""


def _ftp_server(root: Path, retrieved: list[str]) -> Any:
    """An anonymous FTP server on loopback serving ``root``; ``retrieved`` logs each RETR (the server's log)."""
    from twisted.cred.checkers import AllowAnonymousAccess
    from twisted.cred.portal import Portal
    from twisted.internet import reactor
    from twisted.protocols.ftp import FTP, FTPFactory, FTPRealm

    class LoggingFTP(FTP):
        def ftp_RETR(self, path: str) -> Any:
            retrieved.append(path)
            return super().ftp_RETR(path)

    factory = FTPFactory(Portal(FTPRealm(anonymousRoot=str(root)), [AllowAnonymousAccess()]))
    factory.protocol = LoggingFTP
    return reactor.listenTCP(0, factory, interface="127.0.0.1")


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_platform_host_over_ftp_is_denied(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed (fetch of a denied person, fail-open by scheme). The platform lists its host (here ``127.0.0.1``)
    and the profile template ``/u/{subject}``; 107 has no authorization. ``http://127.0.0.1/u/107`` is denied,
    but ``ftp://127.0.0.1:PORT/u/107`` is fetched by Scrapy's default ``ftp`` handler with no robots, terms or
    subject decision and no audit line, and the page reaches the callback and the items.

    Cause: ``runtime.is_checked_url`` treats every scheme other than http(s) as local ("data: and file: URLs are
    local"), so the pre-filters and the response phase skip it, and ``addon.py`` wraps only the ``http`` and
    ``https`` download handlers; Scrapy 2.19 ships network handlers for ``ftp`` (and ``s3``) as well."""
    root = tmp_path / "ftproot"
    (root / "u").mkdir(parents=True)
    (root / "u" / "107").write_text(f"<html><body><h1 class='name'>{secret_name('107')}</h1></body></html>")
    settings = people_settings(tmp_path)
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(IP_PLATFORMS_YAML)
    retrieved: list[str] = []
    port = _ftp_server(root, retrieved)
    try:
        number = port.getHost().port
        result = await crawl(make_spider(kind, ListLogic), settings, proxy=None, monkeypatch=monkeypatch,
                             urls=[f"ftp://127.0.0.1:{number}/u/107"], follow_links=False)
    finally:
        from scrapy.utils.defer import maybe_deferred_to_future
        await maybe_deferred_to_future(port.stopListening())
    assert not retrieved, (f"the FTP server served {retrieved}; callback saw {result.seen}; "
                           f"audit lines: {[(e['url'], e['reason']) for e in result.audit]}")
    assert secret_name("107") not in str(result.items)


# --------------------------------------------------------------------------- 8. Crawl-delay and meta["download_slot"]


class SlotPerRequestLogic(ListLogic):
    """Each request in a download slot of its own (``meta["download_slot"]``: per proxy, per session...)."""

    async def start(self) -> Any:
        for i, person in enumerate(("101", "102", "103")):
            yield scrapy.Request(f"{BASE}/u/{person}", callback=self.parse, dont_filter=True,
                                 meta={"download_slot": f"session-{i}"})


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_crawl_delay_is_kept_per_origin_across_download_slots(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FIXED (was: robots compliance, fail-open by a meta key). robots.txt asks ``Crawl-delay: 1`` (the README's
    example is 2: "requests to the origin 2 s apart"; 1 s tells the same apart in half the time). A spider that
    puts requests in download slots of its own (``meta["download_slot"]``, a common way to pin a session or a
    proxy) got the three profiles fetched at once.

    Cause: ``_scrapy_internals.apply_crawl_delay`` sets the delay on the *request's* download slot
    (``downloader.get_slot_key(request)``, which honours ``meta["download_slot"]``), not on anything shared by the
    origin. Now the send-time handler keeps the delay per origin (``handler.OriginSpacing``), whatever the slot."""
    app = LenientPeople(default_robots=Robots(crawl_delay=1))
    with LocalServer(app) as server:
        await crawl(make_spider(kind, SlotPerRequestLogic), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch, follow_links=False)
    times = sorted(s.time for s in app.served if s.kind == "profile")
    assert len(times) == 3, app.describe()
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.95, f"profile fetches {gaps} s apart under Crawl-delay: 1\n{app.describe()}"


@dataclasses.dataclass
class LateFirstProfile(LenientPeople):
    """A server the first profile request reaches 0.4 s after it was sent (a new connection through a slow proxy)."""

    def __call__(self, request: Any, headers: dict[str, str]) -> Any:
        if request.path == "/u/101":
            time.sleep(0.4)
            request = dataclasses.replace(request, time=time.time())
        return super().__call__(request, headers)


@deferred_f_from_coro_f
async def test_crawl_delay_holds_at_the_server_when_a_request_arrives_late(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FIXED (CI saw profiles 0.86 s apart under ``Crawl-delay: 1``). The delay was counted between *sends*: a
    request that reached the server late brought the next one closer than the delay, at the server. It now counts
    from the end of the previous fetch from the origin (Yandex's definition of the directive), which the server is
    sure to see: the next request starts after the previous one's response came back."""
    app = LateFirstProfile(default_robots=Robots(crawl_delay=1))
    with LocalServer(app) as server:
        await crawl(make_spider("ADDONS", SlotPerRequestLogic), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch, follow_links=False)
    times = sorted(s.time for s in app.served if s.kind == "profile")
    assert len(times) == 3, app.describe()
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1.0, f"profile fetches {gaps} s apart at the server under Crawl-delay: 1\n{app.describe()}"


# --------------------------------------------------------------------------- 9. robots.txt read strictly only


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_robots_rules_are_matched_against_every_lenient_reading(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed (robots leg; fetch of a page robots.txt disallows, including a person's profile the site
    keeps out of crawlers). robots.txt says ``Disallow: /@alice`` (a platform that honours a user's "hide my
    profile from crawlers" setting this way) and ``Disallow: /private/``. The lenient site reads ``/@Alice`` as
    alice (handles are case-insensitive: the subject leg agrees, and alice's record allows), and
    ``/private%2Fx``, ``/private;a/x`` and ``/x/..%2Fprivate/x`` as ``/private/x``. All are fetched
    (``robots.disallowed`` only for the strict spellings ``/%70rivate/x``, ``//private/x``, ``/y/../private/x``).

    Cause: the subject leg reads every lenient reading (``terms/readings.py``, "when unsure whose page it is,
    deny"), but the robots leg matches the canonical RFC 3986 path only (``robots/matcher.py``, "RFC 9309-exactly":
    case-sensitive, ``%2F`` and ``;`` as data). A reading that robots.txt disallows is not treated as unsure."""
    app = LenientPeople(default_robots=Robots(body="User-agent: *\nDisallow: /@alice\nDisallow: /private/\n"))
    app.page("/private/x", "<html><body><h1 class='name'>private page</h1></body></html>")
    urls = [f"{BASE}/@Alice", f"{BASE}/private%2Fx", f"{BASE}/private;a/x", f"{BASE}/x/..%2Fprivate/x",
            f"{BASE}/u/101"]
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert f"{BASE}/u/101" in result.seen, "control"
    served = [(s.target, s.path) for s in app.served if s.person == "alice" or s.path == "/private/x"]
    assert not served, f"paths robots.txt disallows were fetched: {served}"


# --------------------------------------------------------------------------- 10. pins: redirect shapes no test covers


def _redirect_to(location: str, status: int) -> Any:
    from consentcrawl_demo.server import Response

    return lambda request: Response.redirect(location, status)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_pin_redirect_shapes_to_denied_people_are_not_followed(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PIN (defended). A ``<meta http-equiv="refresh">`` to ``/u/107`` (MetaRefreshMiddleware); a 307 that keeps a
    POST body ``id=108`` on its way to ``/profile.php``; a 308 to a protocol-relative ``//people.example/u/109``; a
    301 to ``http://PEOPLE.EXAMPLE./u/110`` (upper case, trailing dot); a 302 to ``http://user@people.example/u/111``;
    a ``FormRequest`` GET whose formdata names 112. None is served; 101 (control) is. The 307's own POST is not
    sent either: a body that names a person makes the request theirs, wherever its URL points."""
    app = LenientPeople()
    app.page("/refresh", '<html><head><meta http-equiv="refresh" content="0; url=/u/107"></head></html>')
    app.pages["/r307"] = _redirect_to("/profile.php", 307)
    app.pages["/r308"] = _redirect_to(f"//{HOST}/u/109", 308)
    app.pages["/r301"] = _redirect_to("http://PEOPLE.EXAMPLE./u/110", 301)
    app.pages["/r302"] = _redirect_to(f"http://user@{HOST}/u/111", 302)
    urls: list[Any] = [
        f"{BASE}/refresh",
        scrapy.FormRequest(f"{BASE}/r307", formdata={"id": "108"}, dont_filter=True),
        f"{BASE}/r308", f"{BASE}/r301", f"{BASE}/r302",
        scrapy.FormRequest(f"{BASE}/profile.php", method="GET", formdata={"id": "112"}, dont_filter=True),
        f"{BASE}/u/101",
    ]
    with LocalServer(app) as server:
        await crawl(make_spider(kind, ListLogic), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch, urls=urls, follow_links=False)
    assert "101" in app.people_served(), app.describe()
    assert_not_served(app, {"107", "108", "109", "110", "111", "112"})
    assert {s.target.split("?")[0] for s in app.served} >= {f"{BASE}/r308", f"{BASE}/refresh"}, \
        f"control: the redirecting pages were fetched\n{app.describe()}"
    # the POST whose body names 108 is 108's request wherever it points (bodyreading.py): not sent at all
    assert f"{BASE}/r307" not in {s.target for s in app.served}, app.describe()


class SitemapLogic:
    """A ``SitemapSpider`` that starts from robots.txt (``Sitemap:`` lines) and collects every profile."""

    sitemap_urls = [f"{BASE}/robots.txt"]
    seen: list[str]

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        yield {"url": response.url, "name": response.css(".name::text").get()}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_pin_a_sitemap_spider_does_not_fetch_denied_people(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PIN (defended). A ``SitemapSpider`` reads robots.txt's ``Sitemap:`` lines (one of them a profile URL
    itself), then a sitemap listing 101 and 107: only 101 is served."""
    from scrapy.spiders import SitemapSpider

    from consentcrawl import ConsentSpider
    from consentcrawl_demo.server import Response

    robots = Robots(body=f"User-agent: *\nAllow: /\nSitemap: {BASE}/sitemap.xml\nSitemap: {BASE}/u/108\n")
    app = LenientPeople(default_robots=robots)
    sitemap = ('<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
               f"<url><loc>{BASE}/u/107</loc></url><url><loc>{BASE}/u/101</loc></url></urlset>")
    app.pages["/sitemap.xml"] = lambda request: Response(200, {"Content-Type": "application/xml"}, sitemap)
    if kind == "ConsentSpider":
        spidercls = type("SitemapPeople", (SitemapLogic, SitemapSpider, ConsentSpider),
                         {"name": "sitemap", "purpose": "research"})
    else:
        spidercls = type("SitemapPeople", (SitemapLogic, SitemapSpider),
                         {"name": "sitemap", "custom_settings": {"ADDONS": {"consentcrawl.Addon": 0}}})
    with LocalServer(app) as server:
        result = await crawl(spidercls, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert f"{BASE}/u/101" in result.seen, f"control: the sitemap is followed\n{app.describe()}"
    assert_not_served(app, {"107", "108"})


# --------------------------------------------------------------------------- 11. pins: scrapy fetch / shell / parse


def _run_command(project: Path, proxy: str, args: list[str], timeout: float = 60) -> tuple[int | None, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("SCRAPY_")}
    env.update(http_proxy=proxy, PYTHONPATH=os.pathsep.join([str(project), str(ROOT)]))
    try:
        proc = subprocess.run([sys.executable, "-m", "scrapy", *args], cwd=project, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"") + (exc.stderr or b"")
        return None, out.decode("utf-8", "replace") if isinstance(out, bytes) else out
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("command", [
    ["fetch", "--nolog"],
    ["parse", "--nolog", "--spider", "people", "--pipelines"],
])
def test_pin_scrapy_commands_with_project_settings_do_not_fetch_denied_people(
    command: list[str], tmp_path: Path,
) -> None:
    """PIN (defended). ``scrapy fetch``, ``scrapy shell -c`` and ``scrapy parse`` in a project whose settings hold
    the ``ADDONS`` line (as the README says) fetch 101 and not 107, and print nothing of 107."""
    project = _project(tmp_path, "ADDONS", extra_settings="CLOSESPIDER_TIMEOUT = 0\n")
    app = LenientPeople()
    with LocalServer(app) as server:
        _, control = _run_command(project, server.proxy, [*command, f"{BASE}/u/101"])
        _, output = _run_command(project, server.proxy, [*command, f"{BASE}/u/107"])
    assert "101" in app.people_served(), f"control: 101 is fetched\n{app.describe()}\n{control[-2000:]}"
    assert_not_served(app, {"107"})
    assert secret_name("107") not in output


def test_scrapy_shell_on_a_denied_url_returns_and_names_the_reason(tmp_path: Path) -> None:
    """FIXED (was: availability; fail-closed, no leak). ``scrapy shell -c EXPR http://people.example/u/107`` in a
    project with the ``ADDONS`` line never returned (101, the control, returns at once). The audit log had the
    deny (phase ``schedule``), but the shell waits for the request's callback or errback, and neither was ever
    called. Now the errback is called with ``ConsentDenied``: the shell returns with ``response`` None, and
    says why (one WARNING line with the reason code, without the URL or the person's data).

    Cause: ``ConsentScheduleGuard.request_scheduled`` drops a denied request by raising ``ConsentDenied`` inside
    the ``request_scheduled`` signal; Scrapy's engine then returns without calling the request's errback (it only
    does so for download errors). The same holds for links dropped by ``ConsentSpiderMiddleware`` (``continue``).
    docs/meta.md promises "A request dropped by consentcrawl fails with ConsentDenied ...; an errback can read it
    from ``failure.value.decision``" (see the errback test below)."""
    project = _project(tmp_path, "ADDONS", extra_settings="CLOSESPIDER_TIMEOUT = 0\n")
    app = LenientPeople()
    command = ["shell", "--nolog", "-c", "response and response.status"]
    with LocalServer(app) as server:
        control, _ = _run_command(project, server.proxy, [*command, f"{BASE}/u/101"], timeout=45)
        code, output = _run_command(project, server.proxy, [*command, f"{BASE}/u/107"], timeout=45)
        _, logged = _run_command(project, server.proxy, ["shell", "--loglevel", "INFO", "-c", "response",
                                                         f"{BASE}/u/107"], timeout=45)
    assert control == 0 and "101" in app.people_served(), f"control\n{app.describe()}"
    assert_not_served(app, {"107"})
    assert code == 0, f"scrapy shell on a denied URL did not return (within 45 s) or failed\n{output[-1500:]}"
    assert "consentcrawl: subject.no-authorization: the request was not fetched" in logged, logged[-1500:]
    for shown in (output, logged):
        assert secret_name("107") not in shown
        assert "/u/107" not in "\n".join(line for line in shown.splitlines() if "DEBUG" not in line)


class ErrbackLogic(ListLogic):
    """Requests the profiles of ``people`` with an errback that keeps the failure, as docs/meta.md shows for
    reading a deny."""

    failures: list[Any]
    people: tuple[str, ...] = ("101", "107")

    async def start(self) -> Any:
        for person in self.people:
            yield scrapy.Request(f"{BASE}/u/{person}", callback=self.parse, errback=self.failed, dont_filter=True)

    def failed(self, failure: Any) -> None:
        self.failures.append(failure)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_denied_request_reaches_its_errback_with_the_decision(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FIXED (was: documented behaviour missing; fail-closed). docs/meta.md: "A request dropped by consentcrawl
    fails with ``ConsentDenied`` (an ``IgnoreRequest``) whose ``.decision`` is the deny ...; an errback can read it
    from ``failure.value.decision``". A start request for 107 was denied (phase ``schedule``) and its errback never
    called. Cause: as above, ``ConsentScheduleGuard.request_scheduled`` (and ``ConsentSpiderMiddleware`` for
    links) dropped the request without failing it. Now both hand the failure to the errback through Scrapy's
    scraper (``_scrapy_internals.fail_request``), as Scrapy does for a downloader middleware's ``IgnoreRequest``."""
    failures: list[Any] = []
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ErrbackLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, failures=failures)
    assert f"{BASE}/u/101" in result.seen, "control"
    assert_not_served(app, {"107"})
    assert any(getattr(getattr(f, "value", None), "decision", None) is not None for f in failures), \
        f"the errback got {failures}; audit: {result.denies()}"


class ErrbackOutputLogic(ListLogic):
    """A link to a denied person with an errback; the errback yields a link to another denied person and an item
    naming a third: the errback's output goes through the same checks as a callback's."""

    failures: list[Any]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.parse, dont_filter=True)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        if response.url.endswith("/u/101"):
            yield scrapy.Request(f"{BASE}/u/107", callback=self.parse, errback=self.failed, dont_filter=True)

    def failed(self, failure: Any) -> Any:
        self.failures.append(failure)
        if len(self.failures) == 1:
            yield scrapy.Request(f"{BASE}/u/108", callback=self.parse, errback=self.failed, dont_filter=True)
            yield {"subject": "109", "platform": "people", "name": secret_name("109")}
            yield {"subject": "102", "platform": "people", "name": secret_name("102")}  # control: authorized


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_denied_link_reaches_its_errback_and_the_errbacks_output_is_checked(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A link a callback yields for 107 is dropped by the spider middleware's link check; its errback gets
    ``ConsentDenied`` with the decision. What the errback yields is checked like any output: its link to 108 is
    denied at ``request_scheduled`` (and reaches the errback in turn), its item naming 109 is dropped by the guard
    pipeline, the item naming 102 (authorized) is kept."""
    failures: list[Any] = []
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ErrbackOutputLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, failures=failures)
    assert f"{BASE}/u/101" in result.seen, "control"
    assert_not_served(app, {"107", "108"})
    denied = [f.value.decision for f in failures if getattr(f.value, "decision", None) is not None]
    assert {d.subject for d in denied} == {"107", "108"}, failures
    names = [i["name"] for i in result.items]
    assert secret_name("109") not in names and secret_name("102") in names, names


# --------------------------------------------------------------------------- 12. embedded URLs a URL parser repairs


def whatwg_fetch_api(app: LenientPeople, api_host: str = "api.example") -> Any:
    """A fetch-through service (a scraping API, a "save page now", an archive) whose URL parser is WHATWG-like, as
    Node's ``new URL()`` and browsers are: ``\\`` is ``/`` in an http URL, any number of slashes may follow
    ``http:``, and a URL given without a scheme (``people.example/u/107``, ``//people.example/u/107``) is
    taken as http. ``/fetch?url=U`` and ``/web/<timestamp>/U`` (the Wayback Machine's form) fetch U from the
    people site; the site's served log records whom it served."""
    import dataclasses
    import re
    from urllib.parse import parse_qs, urlsplit

    def parse(url: str) -> Any:
        url = url.strip().replace("\\", "/")
        url = re.sub(r"(?i)^https?:/*", "", url).lstrip("/")
        return urlsplit("http://" + url)

    def serve(request: Any, headers: dict[str, str]) -> Any:
        from consentcrawl_demo.server import Response

        if request.host != api_host:
            return app(request, headers)
        if request.path == "/robots.txt":
            return Response.text("User-agent: *\nAllow: /\n")
        if request.path == "/fetch":
            params = parse_qs(request.query)
            params.update(parse_qs(request.body.decode("latin-1")))  # a form POST, as the APIs accept too
            target = parse((params.get("url") or [""])[-1])
        elif request.path.startswith("/web/"):
            raw = request.target.split("/web/", 1)[1].partition("/")[2]
            target = parse(raw)
        else:
            return Response.text("not found\n", 404)
        fetched = dataclasses.replace(request, host=target.hostname or "", target=target.path or "/",
                                      path=target.path or "/", query=target.query)
        return app(fetched, {})

    return serve


@pytest.mark.parametrize(("url", "person"), [
    ("http://api.example/fetch?url=//people.example/u/107", "107"),
    ("http://api.example/fetch?url=http:/people.example/u/108", "108"),
    ("http://api.example/fetch?url=http:%5C%5Cpeople.example%5Cu%5C109", "109"),
    ("http://api.example/fetch?url=people.example/u/110", "110"),
    ("http://api.example/web/2024/people.example/u/111", "111"),
    ("http://api.example/fetch?url=http://people.example/u/112", "112"),  # control: caught today
], ids=["protocol-relative", "one-slash", "backslashes", "scheme-less", "wayback-scheme-less", "control-full-url"])
@deferred_f_from_coro_f
async def test_an_embedded_platform_url_without_a_full_scheme_is_read(
    url: str, person: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed (fetch of a denied person through a fetch-through service). The README: "A URL that embeds a
    platform's URL (``https://api.example/fetch?url=...``, an open redirect, a fetch-through service) is that
    page's person's." That holds for ``url=http://people.example/u/112`` (denied), but not for the spellings
    every WHATWG URL parser (and every classic open-redirect bypass) repairs: ``//people.example/u/107``,
    ``http:/people.example/u/108``, ``http:\\\\people.example\\u\\109``, and scheme-less ``people.example/u/110``
    (the Wayback Machine's ``/web/2024/people.example/u/111`` too). Each is ``terms.off-platform`` and the service
    fetches the profile.

    Cause: ``resolve.py``'s search for embedded platform URLs recognises only ``scheme://host`` forms; it does not
    read what a lenient URL parser would (the principle "when unsure whose page it is, deny" applied to the
    embedded URL)."""
    app = LenientPeople()
    with LocalServer(whatwg_fetch_api(app)) as server:
        result = await crawl(make_spider("ADDONS", ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[url], follow_links=False)
    assert_not_served(app, {person}, f"(through {url})")
    assert secret_name(person) not in str(result.items)


@deferred_f_from_coro_f
async def test_a_platform_url_in_a_form_body_to_a_fetch_api_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed (fetch of a denied person through a fetch-through service). The same full URL that is denied in
    the query (``/fetch?url=http://people.example/u/112``, the control above) is ``terms.off-platform`` when it is
    POSTed as a form field (``FormRequest("http://api.example/fetch", formdata={"url": ...})``), which scraping
    APIs accept as well; the service fetches 107's profile.

    Cause: ``resolve.py`` looks for embedded platform URLs in the request URL only; the body is read
    (``form_text`` / ``with_body``) only against the templates of the URL's own platform, and an off-platform
    request has none."""
    app = LenientPeople()
    request = scrapy.FormRequest("http://api.example/fetch", formdata={"url": f"{BASE}/u/107"}, dont_filter=True)
    with LocalServer(whatwg_fetch_api(app)) as server:
        result = await crawl(make_spider("ADDONS", ListLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[request], follow_links=False)
    assert_not_served(app, {"107"}, "(POST url=http://people.example/u/107 to http://api.example/fetch)")
    assert secret_name("107") not in str(result.items)


# --------------------------------------------------------------------------- 13. the guard's place, set by the project


class RecordingPipeline:
    """A project's own pipeline (a database writer): what it is given is stored."""

    stored: list[dict[str, Any]] = []

    def process_item(self, item: Any) -> Any:
        RecordingPipeline.stored.append(dict(item))
        return item


class ListingItemsLogic(ListLogic):
    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        for person in ("101", "107"):
            yield {"subject": person, "platform": "people", "name": secret_name(person)}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_project_that_lists_the_guard_after_its_own_pipeline_gets_it_moved_first(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed (fail-open configuration). A project that lists the guard in its own ``ITEM_PIPELINES`` the way
    Scrapy's docs number pipelines (``{"consentcrawl.pipelines.ConsentGuardPipeline": 300, "...Db": 100}``)
    gets its database pipeline run first: it stores the item naming 107 (who is then dropped, too late). No
    warning or configuration error says the guard is not first.

    Cause: ``addon.py`` installs the guard with ``setdefault_in_component_priority_dict`` (the project's number
    wins) and never checks that it runs first, unlike ``DOWNLOAD_HANDLERS`` (``runtime._check_handlers`` refuses to
    start) and ``RobotsTxtMiddleware`` (taken out whatever its priority). The same holds for a project that lists
    ``ConsentResponseMiddleware`` below ``HttpCacheMiddleware`` (900) or ``ConsentSpiderMiddleware``."""
    RecordingPipeline.stored = []
    pipelines = {"consentcrawl.pipelines.ConsentGuardPipeline": 300,
                 f"{__name__}.RecordingPipeline": 100}
    settings = people_settings(tmp_path, ITEM_PIPELINES=pipelines)
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ListingItemsLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=[f"{BASE}/people?page=1"], follow_links=False)
    assert [i["name"] for i in result.items] == [secret_name("101")], "control: the guard still drops 107 at the end"
    leaked = [i for i in RecordingPipeline.stored if i.get("subject") == "107"]
    assert not leaked, f"the project's pipeline stored a denied person's item before the guard ran: {leaked}"


class PipelineAddon:
    """An add-on applied after consentcrawl's that puts its own (storing) pipeline before every other one."""

    def update_settings(self, settings: Any) -> None:
        settings["ITEM_PIPELINES"].set(f"{__name__}.RecordingPipeline", -5000, "addon")


class GuardOutAddon:
    """An add-on applied after consentcrawl's that takes the guard pipeline out."""

    def update_settings(self, settings: Any) -> None:
        settings["ITEM_PIPELINES"].set("consentcrawl.pipelines.ConsentGuardPipeline", None, "addon")


@pytest.mark.parametrize("addon", [PipelineAddon, GuardOutAddon])
@deferred_f_from_coro_f
async def test_a_later_add_on_that_puts_a_pipeline_before_the_guard_stops_the_crawl(
    addon: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """An add-on applied after consentcrawl's (a higher number in ``ADDONS``) that adds a pipeline before the guard,
    or takes the guard out, would let that pipeline store items the guard drops: the crawl refuses to start, with
    one CRITICAL line naming ``ITEM_PIPELINES``, and nothing is fetched or stored."""
    RecordingPipeline.stored = []
    spider = make_spider("ADDONS", ListingItemsLogic)
    spider.custom_settings = {"ADDONS": {"consentcrawl.Addon": 0, f"{__name__}.{addon.__name__}": 500}}
    app = LenientPeople()
    with caplog.at_level(logging.INFO), LocalServer(app) as server:
        result = await crawl(spider, people_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch,
                             urls=[f"{BASE}/people?page=1"], follow_links=False)
    assert app.served == [], app.describe()
    assert RecordingPipeline.stored == []
    assert result.stats.get("finish_reason") == "consentcrawl_config_error"
    critical = [line for line in shown_lines(caplog, logging.CRITICAL) if "consentcrawl" in line]
    assert len(critical) == 1 and "ITEM_PIPELINES" in critical[0], shown_lines(caplog)


@deferred_f_from_coro_f
async def test_a_request_that_cannot_be_decided_at_scheduling_reaches_its_errback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A start request whose scheduling decision needs a lookup is decided asynchronously; when deciding raises,
    the request is dropped, recorded as ``error.internal`` and its errback gets ``ConsentDenied`` (``scrapy shell``
    would otherwise wait for it forever). The exception's text, which may hold the URL, is not logged at INFO or
    above: the ERROR line names its type, the audit line its message."""
    from consentcrawl.runtime import ConsentRuntime

    async def broken(self: Any, request: Any) -> Any:
        raise RuntimeError(f"store exploded on {request.url}")

    monkeypatch.setattr(ConsentRuntime, "decide_scheduled", broken)
    failures: list[Any] = []
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", ErrbackLogic), people_settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch, failures=failures)
    assert_not_served(app, {"101", "107"})
    reasons = sorted(f.value.decision.reason for f in failures if getattr(f.value, "decision", None) is not None)
    assert reasons == ["error.internal", "error.internal"], failures
    assert [e["reason"] for e in result.audit if e["phase"] == "schedule"] == ["error.internal"] * 2
    errors = [line for line in shown_lines(caplog, logging.ERROR) if "could not decide" in line]
    assert len(errors) == 2 and all("RuntimeError" in line for line in errors), shown_lines(caplog)
    assert not [line for line in shown_lines(caplog) if "/u/1" in line], shown_lines(caplog)
