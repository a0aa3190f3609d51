"""Leaks hunted on the fetches consentcrawl makes itself (issues 13, 14): the ``tdm-policy`` a site names and the
ActivityPub actor a profile links to. Each a real crawl of the lenient ``people`` site (:mod:`tests.lenient`, its
served log is the judge) for a ``ConsentSpider`` and for a plain spider with the ``ADDONS`` line.

A site names the policy document (tdmrep.json, a ``tdm-policy`` header or meta, an RSL ``License``) and so can
point it at anyone's profile, on a platform we have no agreement with too: a terms-stage deny lets a site's own
terms files through, never a person's page.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.lenient import HOST, KINDS, PLATFORMS_YAML, LenientPeople, ListLogic, crawl, make_spider, people_settings
from tests.test_reuse_signals import NOW, PATHS, SITE, _rule_files

BASE = f"http://{HOST}"
CLOSED = "closed.example"  #: a platform we have no agreement with: every URL of it is a terms-stage deny
CLOSED_PLATFORM = f"""\
  closed:
    domains: [{CLOSED}]
    profiles: ["/u/{{subject}}"]
    subject: "[A-Za-z0-9_]+"
"""


def _settings(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    settings = people_settings(tmp_path, **overrides)
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(PLATFORMS_YAML + CLOSED_PLATFORM)
    return settings


def _site(named: str, where: str) -> LenientPeople:
    """The people site (any host answers) whose ``/page`` names ``named`` as its policy ``where`` says."""
    app = LenientPeople(any_host=True)
    if where == "tdmrep.json":
        app.pages["/.well-known/tdmrep.json"] = lambda _r: Response(200, {"Content-Type": "application/json"},
                                                                    json.dumps([{"location": "/", "tdm-reservation": 1,
                                                                                 "tdm-policy": named}]))
    elif where == "header":
        app.pages["/page"] = lambda _r: Response.html("<html><body>a page</body></html>", headers={
            "tdm-reservation": "1", "tdm-policy": named})
    elif where == "meta":
        app.page("/page", f'<html><head><meta name="tdm-reservation" content="1">'
                          f'<meta name="tdm-policy" content="{named}"></head><body>a page</body></html>')
    elif where == "rsl":
        app.pages["/page"] = lambda _r: Response.html("<html><body>a page</body></html>", headers={
            "Link": f'<{named}>; rel="license"; type="application/rsl+xml"'})
    app.pages.setdefault("/page", "<html><body>a page</body></html>")
    return app


def fetch_page_cli(command: str, app: Any, settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> int:
    """``consentcrawl check|signals {BASE}/page --json --fetch`` with ``app`` on loopback as the HTTP proxy (an
    operator's look at a page before a crawl)."""
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        extra = ["--purpose", "research", "--authorizations", settings["CONSENTCRAWL_AUTHORIZATIONS"]]
        return main([command, f"{BASE}/page", "--json", "--fetch", "--platforms", settings["CONSENTCRAWL_PLATFORMS"],
                     *(extra if command == "check" else [])])

Logic = type("PolicyLogic", (ListLogic,), {"urls": [f"{BASE}/page"], "follow_links": False})


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["tdmrep.json", "header", "meta", "rsl"])
@pytest.mark.parametrize("named", [f"http://{CLOSED}/u/104", f"http://{CLOSED}/u%2F104", "/u/104",
                                   f"http://www.{HOST}/u%2F104"])
@deferred_f_from_coro_f
async def test_a_policy_url_naming_a_persons_page_does_not_fetch_it(kind: str, where: str, named: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    app = _site(named, where)
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, Logic), _settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    control = "/.well-known/tdmrep.json" if where == "tdmrep.json" else "/page"  # reserved: /page is not fetched
    assert control in [s.path for s in app.served], app.describe()
    assert app.people_served() == [], app.describe()
    # the refused hop is in the audit log, as every side request's
    assert any("104" in (e.get("url") or "") and e["verdict"] == "deny" for e in result.audit), result.audit


@pytest.mark.parametrize("where", ["tdmrep.json", "header", "meta", "rsl"])
@pytest.mark.parametrize("named", [f"http://{CLOSED}/u/104", f"http://{CLOSED}/u%2F104", f"http://{CLOSED}/x/../u/104",
                                   "/u/104"])
@pytest.mark.parametrize("command", ["check", "signals"])
def test_check_fetch_does_not_fetch_a_persons_page_a_policy_url_names(
        command: str, where: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``consentcrawl check --fetch`` (and ``signals --fetch``) fetches the site's files and what the page names,
    without the crawl's send-time handler: its own hop check is all that stands between a site and a person's
    page."""
    settings = _settings(tmp_path)
    app = _site(named, where)
    monkeypatch.chdir(tmp_path)
    code = fetch_page_cli(command, app, settings, monkeypatch)
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    assert any(s.path in ("/.well-known/tdmrep.json", "/page") for s in app.served), app.describe()  # control
    assert app.people_served() == [], app.describe()
    assert "104" not in json.dumps(json.loads(out).get("refusals_on_page", []))


# --------------------------------------------------------------------------- the actor a profile links to

ACTOR = {"@context": "https://www.w3.org/ns/activitystreams", "type": "Person", "id": f"{BASE}/u/101/actor",
         "indexable": True, "discoverable": True}


class ActorSite(LenientPeople):
    """101's profile (an h-card, no refusal) links to ``href`` as its ActivityPub actor; ``/u/101/actor`` answers
    with ``actor`` (a JSON actor by default, or a redirect a test sets)."""

    def __init__(self, href: str, actor: Response | None = None, **kwargs: Any) -> None:
        super().__init__(any_host=True, **kwargs)
        self.href, self.actor = href, actor

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        answer = super().__call__(request, headers)  # the served log: whose page the lenient site served
        if request.path == "/u/101":
            return Response.html(
                '<html><head><link rel="alternate" type="application/activity+json" '
                f'href="{self.href}"></head><body><div class="h-card"><h1 class="p-name name">One Oh One</h1>'
                '<p class="p-note">hello</p></div></body></html>')
        if request.path == "/u/101/actor":
            return self.actor or Response(200, {"Content-Type": "application/activity+json"}, json.dumps(ACTOR))
        return answer


ActorLogic = type("ActorLogic", (ListLogic,), {"urls": [f"{BASE}/u/101"], "follow_links": False})
ANOTHERS = ["/u/104", "/u/101%2F..%2F104", "/u/101/..%2F104", "/u/101/actor/../../104", "/u/101;/../104",
            "/profile.php?id=101&id=104", f"http://www.{HOST}/u/104", "/u/%EF%BC%91%EF%BC%90%EF%BC%94",
            "http://evil.example/u/101", "/redirect?to=/u/104"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("href", ANOTHERS)
@deferred_f_from_coro_f
async def test_an_actor_link_naming_another_person_in_any_spelling_fetches_nobody_else(
        kind: str, href: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = ActorSite(href)
    with LocalServer(app) as server:
        await crawl(make_spider(kind, ActorLogic), _settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.people_served() == ["101"], app.describe()  # the profile; nothing of 104, nothing off-platform
    assert not [s for s in app.served if s.host == "evil.example"], app.describe()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("location", ["/u/104", "/redirect?to=/u/104", f"http://www.{HOST}/u/104"])
@deferred_f_from_coro_f
async def test_an_actor_url_that_redirects_to_another_person_is_not_followed(
        kind: str, location: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = ActorSite("/u/101/actor", Response.redirect(location, 301))
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ActorLogic), _settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert "/u/101/actor" in [s.path for s in app.served], app.describe()  # control: the actor was asked for
    assert app.people_served() == ["101", "101"], app.describe()  # the profile and the actor URL, nothing more
    assert result.audit_for("/u/101/actor", phase="request"), result.audit  # the actor fetch is audited


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_the_actor_fetch_keeps_crawl_delay_robots_and_stays_out_of_the_cache(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.lenient import Robots

    app = ActorSite("/u/101/actor", default_robots=Robots(crawl_delay=1.0))
    cache = tmp_path / "httpcache"
    settings = _settings(tmp_path, HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(cache))
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ActorLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    (page,) = [s for s in app.served if s.path == "/u/101"]
    (actor,) = [s for s in app.served if s.path == "/u/101/actor"]
    assert actor.time - page.time >= 0.95, app.describe()  # Crawl-delay: 1 between the page and its actor
    assert [e["verdict"] for e in result.audit_for("/u/101/actor", phase="request")] == ["allow"], result.audit
    cached = b"".join(p.read_bytes() for p in cache.rglob("*") if p.is_file())
    assert b"One Oh One" in cached and b"indexable" not in cached  # control: the page is cached, its actor not
    assert result.seen == [f"{BASE}/u/101"] and len(result.items) == 1, (result.seen, result.items)  # no callback

    (tmp_path / "2").mkdir()
    app = ActorSite("/u/101/actor", default_robots=Robots(body="User-agent: *\nDisallow: /u/101/actor\n"))
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ActorLogic), _settings(tmp_path / "2"), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert [s.path for s in app.served if s.path.startswith("/u/")] == ["/u/101"], app.describe()
    assert [e["reason"] for e in result.audit_for("/u/101/actor")] == ["robots.disallowed"], result.audit


# --------------------------------------------------------------------------- the policy's assigner in the logs

#: a policy whose assigner is a natural person: their contact is evidence for the audit log, never a log line
PRIVATE = {"name": "Jane Quincy Private", "email": "jane.private@home.example", "phone": "+44-555-0199"}
PERSONAL_POLICY = json.dumps({
    "@context": ["http://www.w3.org/ns/odrl.jsonld", {"vcard": "http://www.w3.org/2006/vcard/ns#"}],
    "@type": "Offer", "profile": "http://www.w3.org/ns/tdmrep", "uid": f"{BASE}/policy.json",
    "assigner": {"uid": f"{BASE}/about", "vcard:fn": PRIVATE["name"], "vcard:hasEmail": f"mailto:{PRIVATE['email']}",
                 "vcard:hasTelephone": f"tel:{PRIVATE['phone']}"},
    "permission": [{"target": f"{BASE}/", "action": "tdm:mine"}]})


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["tdmrep.json", "header"])
@pytest.mark.parametrize("status", [200, 500])
@deferred_f_from_coro_f
async def test_a_policys_assigner_contact_reaches_no_log_at_info_or_above(
        kind: str, where: str, status: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    app = _site("/policy.json", where)
    app.pages["/policy.json"] = lambda _r: Response(status, {"Content-Type": "application/ld+json"}, PERSONAL_POLICY)
    with caplog.at_level("DEBUG"), LocalServer(app) as server:
        result = await crawl(make_spider(kind, Logic), _settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert "/policy.json" in [s.path for s in app.served], app.describe()  # control: the policy was fetched
    if status == 200:  # control: the audit log cites the assigner (that is where it belongs)
        assert PRIVATE["email"] in json.dumps(result.audit), result.audit
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    for value in (PRIVATE["name"], PRIVATE["email"], PRIVATE["phone"], "Quincy"):
        assert value not in logged, logged


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_tdmrep_json_naming_many_policies_gets_at_most_max_policies_fetches(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from consentcrawl.signals.odrl import MAX_POLICIES

    entries = [{"location": f"/p{i}/", "tdm-reservation": 1, "tdm-policy": f"/policy-{i}.json"} for i in range(200)]
    entries += [{"location": "/", "tdm-reservation": 1, "tdm-policy": bad}
                for bad in ("file:///etc/passwd", "ftp://people.example/u/104", "data:,x", "javascript:alert(1)",
                            "//closed.example/u/104", "http://[::1", "http:/u/104")]
    app = LenientPeople(any_host=True)
    app.pages["/.well-known/tdmrep.json"] = lambda _r: Response(200, {"Content-Type": "application/json"},
                                                                json.dumps(entries))
    with LocalServer(app) as server:
        await crawl(make_spider(kind, Logic), _settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    policies = [s for s in app.served if s.path.startswith("/policy-")]
    assert 0 < len(policies) <= MAX_POLICIES, app.describe()
    assert app.people_served() == [], app.describe()


# --------------------------------------------------------------------------- every spelling only adds denials


@settings(max_examples=60, deadline=None)
@given(paths=st.lists(PATHS, min_size=1, max_size=8), usage=st.booleans(), licence=st.booleans(),
       ai_txt=st.booleans(), tdmrep=st.booleans())
def test_deciding_every_spelling_never_allows_what_the_canonical_url_alone_denied(
        paths: list[str], usage: bool, licence: bool, ai_txt: bool, tdmrep: bool) -> None:
    """The oracle is the decision before spellings were decided: the site signals of the canonical URL alone
    (``site_decision``). A remembering engine, its pages interleaved with their other spellings, denies each page
    that oracle denies on the signals, for the same reason."""
    from consentcrawl.consent.answers import NO_STORE
    from consentcrawl.engine import PolicyEngine
    from consentcrawl.signals.policy import DEFAULT_POLICY, site_decision
    from consentcrawl.terms.platforms import PlatformRegistry

    files = _rule_files(usage, licence, ai_txt, tdmrep)
    engine = PolicyEngine(PlatformRegistry({}), "consentcrawl")
    for path in ["/private", "/private/", "/private%2F", "/private/?q=1", "/open/", "/a.html/", *paths] * 2:
        for purpose in ("search-indexing", "ai-training", "research"):
            facts = engine.facts(SITE + path, purpose, NOW)
            before, _ = site_decision(facts.canonical.url, facts.canonical.host, files, DEFAULT_POLICY,
                                      "consentcrawl", purpose, None)
            now = engine.decide(facts, files.robots, NO_STORE, files)
            if not before.allowed and before.basis == "signals" and now.stage.value != "robots":
                assert not now.allowed and now.reason == before.reason, (path, purpose, before, now)


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_actor_on_another_host_of_the_platform_is_asked_of_that_hosts_robots_txt(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.lenient import Robots

    www = f"www.{HOST}"
    app = ActorSite(f"http://{www}/u/101/actor", robots={www: Robots(body="User-agent: *\nDisallow: /u/\n")})
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, ActorLogic), _settings(tmp_path), proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert [(s.host, s.path) for s in app.served if s.host == www] == [(www, "/robots.txt")], app.describe()
    assert [e["reason"] for e in result.audit_for("/u/101/actor")] == ["robots.disallowed"], result.audit


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["header", "rsl"])
@deferred_f_from_coro_f
async def test_a_policy_url_naming_a_person_who_refused_on_their_page_does_not_fetch_it_again(
        kind: str, where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """101 holds a record but refused on their profile (#nobot), read first: a site naming their profile as its
    policy or licence afterwards does not get it fetched again."""
    app = _site(f"{BASE}/u/101", where)
    app.refusing.add("101")
    logic = type("RefusedLogic", (ListLogic,), {"urls": [f"{BASE}/u/101", 1.0, f"{BASE}/page"],
                                                "follow_links": False})
    with LocalServer(app) as server:
        await crawl(make_spider(kind, logic), _settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert "/page" in [s.path for s in app.served], app.describe()  # control: the naming page was fetched
    assert app.people_served() == ["101"], app.describe()
