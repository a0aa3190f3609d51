"""Places where consentcrawl failed OPEN on its own side fetches (issues 13, 14, 16), found by a fresh-eyes hunt.
Each is a real crawl of the lenient ``people`` site (:mod:`tests.lenient`, its served log is the judge), for a
``ConsentSpider`` and for a plain spider with the ``ADDONS`` line, or a real ``consentcrawl check --fetch``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl_demo.server import LocalServer, Response
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, Robots, crawl, make_spider
from tests.test_leaks_sidefetch import ACTOR, ActorSite, _settings, _site, fetch_page_cli

BASE = f"http://{HOST}"
AP = "application/activity+json"

# --------------------------------------------------------------------------- an actor that could not be read

#: 101's profile links to an actor; then their posts, held back until the profile (and its actor) is read
ProfileThenPosts = type("ProfileThenPosts", (ListLogic,), {"urls": [f"{BASE}/u/101", f"{BASE}/u/101/posts"],
                                                           "follow_links": False})


def _actor(**fields: Any) -> Response:
    return Response(200, {"Content-Type": AP}, json.dumps({**ACTOR, **fields}))


#: what the actor URL answers, and the link the profile has to it: none of these says whether 101 is indexable
UNREAD: dict[str, tuple[str, Response | None]] = {
    "500": ("/u/101/actor", Response.text("oops", 500)),
    "503": ("/u/101/actor", Response.text("busy", 503)),
    "404": ("/u/101/actor", Response.text("no such actor", 404)),
    "410": ("/u/101/actor", Response.text("gone", 410)),
    "403": ("/u/101/actor", Response.text("forbidden", 403)),
    "redirect": ("/u/101/actor", Response.redirect("/u/101/actor-moved", 301)),
    "html": ("/u/101/actor", Response.html("<html><body>an actor page</body></html>")),
    "not-json": ("/u/101/actor", Response(200, {"Content-Type": AP}, "{not json")),
    "json-list": ("/u/101/actor", Response(200, {"Content-Type": AP}, "[1, 2]")),
    "another-id": ("/u/101/actor", _actor(id=f"{BASE}/u/104/actor")),
    "dropped": ("/u/101/actor", None),
    "timeout": ("/u/101/actor", Response(200, {"Content-Type": AP}, json.dumps(ACTOR), delay=30.0)),
    "another-person": ("/u/104", None),
    "off-platform": ("http://evil.example/u/101", None),
}

#: the crawl's download timeout in the ``timeout`` case (its actor answers only when the server stops). It bounds
#: every request of the crawl: at 1 s, a loaded machine's stall made the profile (or robots.txt) time out, and what
#: was then tested was not an unread actor (the profile unread, the posts went out as the person's first page). The
#: other cases keep ``people_settings``' 5 s.
ACTOR_TIMEOUT = 3


class UnreadActorSite(ActorSite):
    """:class:`ActorSite` whose actor answers ``answer`` (None: the connection is dropped)."""

    def __init__(self, href: str, answer: Response | None, **kwargs: Any) -> None:
        super().__init__(href, **kwargs)
        self.answer = answer

    def __call__(self, request: Any, headers: dict[str, str]) -> Response | None:
        response = super().__call__(request, headers)
        if request.path == "/u/101/actor" and self.href == "/u/101/actor":
            return self.answer
        return response


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(UNREAD))
@deferred_f_from_coro_f
async def test_an_actor_that_cannot_be_read_denies_what_it_would_have_decided(
        kind: str, case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FEP-5feb is opt-in: an actor that does not say ``indexable: true`` denies search-indexing and the TDM
    purposes. A profile that links to an actor we could not read (an error, a redirect, another person's actor,
    garbage) has said nothing more than an actor without the flag: the crawl's research purpose is denied for the
    person, with the cause, and neither the profile nor their posts reach a callback."""
    href, answer = UNREAD[case]
    app = UnreadActorSite(href, answer)
    settings = _settings(tmp_path)
    if case == "timeout":
        settings["DOWNLOAD_TIMEOUT"] = ACTOR_TIMEOUT
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ProfileThenPosts), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    served = [s.path for s in app.served if s.person == "101" or s.path.startswith("/u/101")]
    assert served[0] == "/u/101", app.describe()  # control: the profile was fetched
    assert "/u/101/posts" not in served, app.describe()
    assert not result.seen and not result.items, (result.seen, result.items)
    denies = [e for e in result.audit_for("/u/101/posts") if e["verdict"] == "deny"]
    assert [e["reason"] for e in denies] == ["error.internal"], result.audit
    assert "actor" in json.dumps(denies[0]["evidence"]), denies


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", ["indexable", "401"])
@deferred_f_from_coro_f
async def test_controls_an_actor_that_is_read_decides(kind: str, case: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Controls for the test above: an indexable actor lets the posts through; a 401 (authorized fetch) refuses."""
    answer = _actor() if case == "indexable" else Response.text("sign your request", 401)
    app = UnreadActorSite("/u/101/actor", answer)
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ProfileThenPosts), _settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    paths = [s.path for s in app.served if s.path.startswith("/u/101")]
    if case == "indexable":
        assert paths == ["/u/101", "/u/101/actor", "/u/101/posts"], app.describe()
        assert len(result.seen) == 2, result.seen
    else:
        assert paths == ["/u/101", "/u/101/actor"], app.describe()
        assert [e["reason"] for e in result.audit_for("/u/101/posts")] == ["subject.refused-on-page"], result.audit


def _check_profile(app: Any, settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> int:
    """``consentcrawl check {BASE}/u/101 --json --fetch`` for research, ``app`` on loopback as the HTTP proxy."""
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        return main(["check", f"{BASE}/u/101", "--json", "--fetch", "--purpose", "research",
                     "--platforms", settings["CONSENTCRAWL_PLATFORMS"],
                     "--authorizations", settings["CONSENTCRAWL_AUTHORIZATIONS"]])


@pytest.mark.parametrize("case", [c for c in UNREAD if c != "timeout"])
def test_check_fetch_denies_a_profile_whose_actor_cannot_be_read(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``consentcrawl check --fetch`` reads the linked actor as a crawl does, so it denies as a crawl does.
    (The timeout case is left out: ``check``'s client waits 10 s.)"""
    href, answer = UNREAD[case]
    settings = _settings(tmp_path)
    app = UnreadActorSite(href, answer)
    monkeypatch.chdir(tmp_path)
    code = _check_profile(app, settings, monkeypatch)
    out, err = capsys.readouterr()
    assert "/u/101" in [s.path for s in app.served], app.describe()  # control: the profile was fetched
    assert code == 1, out + err
    decision = json.loads(out)
    assert decision["reason"] in ("error.internal", "subject.mismatch"), decision
    if decision["reason"] == "error.internal":
        assert "actor" in json.dumps(decision["evidence"]), decision
    assert app.people_served() in (["101"], ["101", "101"]), app.describe()  # nobody else


@pytest.mark.parametrize(("href", "answer", "reason", "why"), [
    ("/u/101/actor", _actor(), "subject.authorized", None),
    ("/u/101/actor", Response.text("sign your request", 401), "subject.refused-on-page", None),
    (f"http://www.{HOST}/u/101/actor", _actor(), "error.internal", "on another origin"),
])
def test_check_fetch_controls_an_actor_that_is_read_or_on_another_origin(
        href: str, answer: Response, reason: str, why: str | None, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Controls for the test above: an indexable actor allows, a 401 refuses (authorized fetch: not public); an
    actor on another host of the platform is not fetched by ``check`` (it has the page's origin's robots.txt only),
    so it is not known, and denies."""
    settings = _settings(tmp_path)
    app = UnreadActorSite(href, answer)
    monkeypatch.chdir(tmp_path)
    code = _check_profile(app, settings, monkeypatch)
    out, err = capsys.readouterr()
    decision = json.loads(out)
    assert (code, decision["reason"]) == (0 if reason == "subject.authorized" else 1, reason), out + err
    if why is not None:
        assert decision["refusals_on_page"] == [{"actor": href, "fetched": False, "why": why}], decision
        assert "www." not in "".join(s.host for s in app.served), app.describe()
    elif reason == "subject.authorized":
        assert decision["refusals_on_page"] == [{"actor": f"{BASE}/u/101/actor", "fetched": True}]


# --------------------------------------------------------------------------- a site's file at a person's URL

#: where a site names a file of its own (robots.txt's redirect, a licence, a policy)
WHERES = ["robots-redirect", "robots-license", "tdmrep.json", "header", "rsl"]


def _naming_site(named: str, where: str, **kwargs: Any) -> LenientPeople:
    """The people site, whose own files (on every host) name ``named`` as ``where`` says."""
    if where == "robots-redirect":
        app = LenientPeople(any_host=True, **kwargs)
        app.robots["other.example"] = Robots(location=named)
        return app
    if where == "robots-license":
        app = LenientPeople(any_host=True, **kwargs)
        app.robots["other.example"] = Robots(body=f"User-agent: *\nAllow: /\nLicense: {named}\n")
        return app
    app = _site(named, where)
    for key, value in kwargs.items():
        setattr(app, key, value)
    return app


def _page_url(where: str) -> str:
    return "http://other.example/page" if where.startswith("robots") else f"{BASE}/page"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", WHERES)
@deferred_f_from_coro_f
async def test_a_sites_file_at_an_authorized_persons_url_is_not_fetched_past_robots_txt(
        kind: str, where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """people.example's robots.txt disallows ``/u/``; a site names 101's profile (authorized) as its robots.txt
    redirect, licence or policy. A fetch of 101's page through a side request is a fetch of their page: it may not
    pass where the spider's own request would be stopped."""
    app = _naming_site(f"{BASE}/u/101", where, robots={HOST: Robots(body="User-agent: *\nDisallow: /u/\n")})
    logic = type("NamingLogic", (ListLogic,), {"urls": [_page_url(where)], "follow_links": False})
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, logic), _settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert app.people_served() == [], app.describe()
    # control: the site did name 101's page, and the refused hop has its line
    assert [e["reason"] for e in result.audit_for("/u/101")] == ["subject.mismatch"], result.audit


@pytest.mark.parametrize("where", ["tdmrep.json", "header", "meta", "rsl"])
@pytest.mark.parametrize("command", ["check", "signals"])
def test_check_fetch_does_not_fetch_an_authorized_persons_page_a_site_names(
        command: str, where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)
    app = _site(f"{BASE}/u/101", where)
    monkeypatch.chdir(tmp_path)
    code = fetch_page_cli(command, app, settings, monkeypatch)
    _out, err = capsys.readouterr()
    assert code in (0, 1), err
    assert any(s.path in ("/.well-known/tdmrep.json", "/page") for s in app.served), app.describe()  # control
    assert app.people_served() == [], app.describe()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["header", "rsl"])
@deferred_f_from_coro_f
async def test_a_sites_file_at_a_persons_url_waits_for_their_first_page(
        kind: str, where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """101 (authorized) refuses on their profile (#nobot); the spider fetches it first, and it is slow to come.
    Meanwhile a page names another of 101's pages as its policy or licence: fetching it while 101's first page is
    not read yet is the race the first-page gate exists to prevent."""
    app = _site(f"{BASE}/u/101/licence", where)
    app.refusing.add("101")
    slow = LenientPeople._answer

    def answer(self: LenientPeople, request: Any, path: str, kind: str, person: str | None) -> Any:
        kind, response = slow(self, request, path, kind, person)
        if path == "/u/101":
            response = dataclasses.replace(response, delay=1.5)
        return kind, response

    monkeypatch.setattr(LenientPeople, "_answer", answer)
    logic = type("RaceLogic", (ListLogic,), {"urls": [f"{BASE}/u/101", 0.3, f"{BASE}/page"],
                                             "follow_links": False})
    with LocalServer(app) as server:
        await crawl(make_spider(kind, logic), _settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert "/page" in [s.path for s in app.served], app.describe()  # control: the naming page was fetched
    assert [s.path for s in app.served if s.person] == ["/u/101"], app.describe()


# --------------------------------------------------------------------------- Crawl-delay for a site's files


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_sites_signal_files_and_policies_keep_its_crawl_delay(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """robots.txt says ``Crawl-delay: 1``. robots.txt itself is fetched at once (by convention it is how the delay
    is known); every other request to the origin, consentcrawl's own side requests included (tdmrep.json, ai.txt,
    the ``tdm-policy`` and licence the files and the page name), comes at least the delay after the one before."""
    app = LenientPeople(any_host=True, default_robots=Robots(
        body=f"User-agent: *\nAllow: /\nLicense: {BASE}/licence.xml\n", crawl_delay=1.0))
    app.pages["/.well-known/tdmrep.json"] = lambda _r: Response(200, {"Content-Type": "application/json"}, json.dumps(
        [{"location": "/", "tdm-reservation": 0, "tdm-policy": f"{BASE}/policy.json"}]))
    app.pages["/policy.json"] = lambda _r: Response(404, {"Content-Type": "text/plain"}, "none")
    app.pages["/licence.xml"] = lambda _r: Response(404, {"Content-Type": "text/plain"}, "none")
    app.page("/page", "<html><body>a page</body></html>").page("/other", "<html><body>another</body></html>")
    logic = type("DelayLogic", (ListLogic,), {"urls": [f"{BASE}/page", f"{BASE}/other"], "follow_links": False})
    with LocalServer(app) as server:
        await crawl(make_spider(kind, logic), _settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    origin = [s for s in app.served if s.host == HOST]
    assert {"/robots.txt", "/.well-known/tdmrep.json", "/ai.txt", "/policy.json", "/licence.xml"} <= {
        s.path for s in origin}, app.describe()  # control: every file was asked for
    gaps = [round(b.time - a.time, 2) for a, b in itertools.pairwise(origin)]
    assert min(gaps) >= 0.95, f"{gaps}\n{app.describe()}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", ["500", "dropped", "another-person", "not-json"])
@deferred_f_from_coro_f
async def test_a_person_denied_for_an_unread_actor_reaches_no_cache_and_no_log_line(
        kind: str, case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The person denied because their actor could not be read: their profile is denied in its response phase,
    above the HTTP cache; neither their page nor their URL reaches the cache or a log line at INFO or above."""
    href, answer = UNREAD[case]
    app = UnreadActorSite(href, answer)
    cache = tmp_path / "httpcache"
    settings = _settings(tmp_path, HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(cache))
    with caplog.at_level("DEBUG"), LocalServer(app) as server:
        result = await crawl(make_spider(kind, ProfileThenPosts), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert [e["reason"] for e in result.audit_for("/u/101", phase="response")] == ["error.internal"], result.audit
    assert "/u/101/posts" not in [s.path for s in app.served], app.describe()
    cached = b"".join(p.read_bytes() for p in cache.rglob("*") if p.is_file())
    assert b"One Oh One" not in cached and b"/u/101" not in cached
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "/u/101" not in logged and "One Oh One" not in logged, logged
    assert any("/u/101" in r.getMessage() for r in caplog.records), "control: DEBUG lines name the URL"


# --------------------------------------------------------------------------- a fetch storm of licences

MANY = 120


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["robots.txt", "Link", "<link>"])
@deferred_f_from_coro_f
async def test_a_site_naming_many_licences_gets_a_bounded_number_of_fetches_and_denies(
        kind: str, where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A robots.txt or a page naming 120 RSL licences (on a third party's host) would make the crawler send 120
    requests at once: a page can aim the crawler at anyone. At most ``MAX_LICENCES`` are fetched; the others are
    not read, and a licence not read denies what RSL covers, as an unavailable one does."""
    from consentcrawl.signals.rsl import MAX_LICENCES

    urls = [f"http://victim.example/licence-{i}.xml" for i in range(MANY)]
    app = LenientPeople(any_host=True)
    if where == "robots.txt":
        app.robots[HOST] = Robots(body="User-agent: *\nAllow: /\n" + "".join(f"License: {u}\n" for u in urls))
        app.page("/page", "<html><body>a page</body></html>")
    elif where == "Link":
        app.pages["/page"] = lambda _r: Response.html("<html><body>a page</body></html>", headers=[
            ("Link", f'<{u}>; rel="license"; type="application/rsl+xml"') for u in urls])
    else:
        links = "".join(f'<link rel="license" type="application/rsl+xml" href="{u}">' for u in urls)
        app.page("/page", f"<html><head>{links}</head><body>a page</body></html>")
    logic = type("StormLogic", (ListLogic,), {"urls": [f"{BASE}/page"], "follow_links": False})
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, logic), _settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    victim = [s for s in app.served if s.host == "victim.example" and s.path.startswith("/licence-")]
    assert 0 < len(victim) <= MAX_LICENCES, app.describe()
    assert not result.seen, result.seen
    reasons = {e["reason"] for e in result.audit_for("/page") if e["verdict"] == "deny"}
    assert reasons and all("rsl" in r for r in reasons), result.audit


# --------------------------------------------------------------------------- robots.txt of a named file's origin


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["header", "rsl", "robots-license"])
@deferred_f_from_coro_f
async def test_a_file_a_site_names_on_another_origin_obeys_that_origins_robots_txt(
        kind: str, where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page (or robots.txt) names a policy or licence on victim.example, whose robots.txt disallows everything.
    A site's own robots.txt and well-known files are read whatever robots.txt says (that is how its rules are
    known); a document another site points at is a request to victim.example like any other."""
    named = "http://victim.example/terms/licence.xml"
    app = _naming_site(named, where)
    app.robots["victim.example"] = Robots(body="User-agent: *\nDisallow: /\n")
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, type("NamedLogic", (ListLogic,), {
            "urls": [_page_url(where)], "follow_links": False})), _settings(tmp_path), proxy=server.proxy,
            monkeypatch=monkeypatch)
    assert any(s.path == "/page" or s.host == "other.example" for s in app.served), app.describe()  # control
    assert "/terms/licence.xml" not in [s.path for s in app.served if s.host == "victim.example"], app.describe()
    assert any(e.get("url") == named and e["verdict"] == "deny" for e in result.audit), result.audit


@pytest.mark.parametrize("where", ["header", "rsl", "tdmrep.json"])
@pytest.mark.parametrize("command", ["check", "signals"])
def test_check_fetch_asks_the_robots_txt_of_a_named_documents_origin(
        command: str, where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    named = "http://victim.example/terms/licence.xml"
    settings = _settings(tmp_path)
    app = _site(named, where)
    app.robots["victim.example"] = Robots(body="User-agent: *\nDisallow: /\n")
    monkeypatch.chdir(tmp_path)
    code = fetch_page_cli(command, app, settings, monkeypatch)
    _out, err = capsys.readouterr()
    assert code in (0, 1), err
    victim = [s.path for s in app.served if s.host == "victim.example"]
    assert victim == ["/robots.txt"], app.describe()  # asked, and obeyed
