"""Case folding against a server that compares handles by ``lower()``: a grant for one spelling fetches no other.

On a case-insensitive platform consentcrawl keys an id by its full case folding, under which ``straße`` is
``strasse``. The site here (:meth:`tests.lenient.LenientPeople.lowering`) compares handles as many real servers do,
with ``str.lower``: ``straße`` and ``strasse`` are two accounts, two people. Before the fix a grant for ``strasse``
fetched ``/@straße`` (the other person's page) and a grant for ``straße`` fetched ``/@strasse``. Each crawl is judged
by the site's served log; the controls (an authorized person's page is served) show the crawl did run. Each test
failed on lead (d44b17e) and passes since the fix.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl_demo.server import LocalServer
from tests.lenient import (
    HOST,
    KINDS,
    PLATFORMS_YAML,
    LenientPeople,
    ListLogic,
    crawl,
    make_spider,
    people_settings,
    record_yaml,
    secret_name,
)
from tests.test_hunt import assert_not_served

SHARP = "stra\u00dfe"
PLAIN = "strasse"
#: the platform with ids in any script (``\w``): the people platform's ASCII-only regex would deny ``/@straße``
#: whatever its case
UNICODE_PLATFORMS = PLATFORMS_YAML.replace('"[A-Za-z0-9_]+"', r"'\w+'")
#: links to the person whose handle is written with a sharp s, every way a page may write them
SHARP_LINKS = ["/@stra%C3%9Fe", "/@STRA%C3%9FE", "/@Stra%C3%9Fe/posts", f"/@{SHARP}", "/profile.php?id=stra%C3%9Fe"]
#: links to the person whose handle is written with ss
PLAIN_LINKS = ["/@strasse", "/@STRASSE", "/@Strasse/posts", "/profile.php?id=STRASSE"]


def unicode_settings(tmp_path: Path, *grants: str) -> dict[str, Any]:
    settings = people_settings(tmp_path, [record_yaml(s) for s in grants])
    Path(settings["CONSENTCRAWL_PLATFORMS"]).write_text(UNICODE_PLATFORMS, encoding="utf-8")
    return settings


class Links(ListLogic):
    urls = [f"http://{HOST}/links"]


def served_to(app: LenientPeople) -> set[str]:
    return set(app.people_served())


def loud_lines_naming(caplog: pytest.LogCaptureFixture, *spellings: str) -> list[str]:
    """Log lines at INFO or above that name a denied person (``spellings``: how a URL or an id writes them)."""
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    return [line for line in lines if any(s in line.casefold() for s in spellings)]


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_grant_for_strasse_fetches_no_page_of_the_sharp_s_account(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Grant ``strasse`` (and alice). A page links ``/@straße`` in every spelling: to the site that is another
    account, whose page must not be served; ``/@strasse`` and alice are (controls)."""
    app = LenientPeople.lowering(PLAIN, SHARP).links_page("/links", [*SHARP_LINKS, "/@strasse", "/@alice"])
    with LocalServer(app) as server, caplog.at_level(logging.INFO):
        result = await crawl(make_spider(kind, Links), unicode_settings(tmp_path, PLAIN, "alice"),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert_not_served(app, {SHARP}, "(a grant for strasse fetched straße's page)")
    assert {PLAIN, "alice"} <= served_to(app), app.describe()
    assert not [i for i in result.items if secret_name(SHARP) in json.dumps(i, ensure_ascii=False)], result.items
    denied = [e for e in result.audit if e.get("verdict") == "deny" and e.get("reason") == "subject.ambiguous-url"]
    assert denied and all("lower-cased" in json.dumps(e["evidence"]) for e in denied), result.denies()
    named = loud_lines_naming(caplog, "stra%c3%9f", SHARP)
    assert not named, named


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_grant_for_strasse_with_sharp_s_fetches_no_page_of_the_strasse_account(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Grant ``straße`` (and alice). ``/@strasse`` has the same key but is another account to the site: its page
    must not be served. ``/@straße`` cannot be told to be the grant's person either (a server comparing by case
    folding would serve the same page for both spellings), so it is not fetched; alice is (control)."""
    app = LenientPeople.lowering(PLAIN, SHARP).links_page("/links", [*PLAIN_LINKS, *SHARP_LINKS, "/@alice"])
    with LocalServer(app) as server, caplog.at_level(logging.INFO):
        result = await crawl(make_spider(kind, Links), unicode_settings(tmp_path, SHARP, "alice"),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    assert_not_served(app, {PLAIN, SHARP}, "(a grant for straße fetched a page of another spelling)")
    assert "alice" in served_to(app), app.describe()
    plain = [e for e in result.audit if e.get("verdict") == "deny" and e.get("subject") == PLAIN
             and e.get("reason") == "subject.no-authorization"]
    assert plain and all('"grants": false' in json.dumps(e["evidence"]) for e in plain), result.denies()
    named = loud_lines_naming(caplog, "stra%c3%9f", SHARP, f"@{PLAIN}", f"={PLAIN}", f"'{PLAIN}'")
    assert not named, named


class Cards(ListLogic):
    """A page of cards whose items name their person as the page writes them."""

    urls = [f"http://{HOST}/cards"]

    def parse(self, response: Any) -> Any:
        for card in response.css(".card"):
            yield {"platform": "people", "subject": card.attrib["data-id"], "name": card.css(".name::text").get()}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_item_naming_the_sharp_s_spelling_is_dropped(kind: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The item guard reads an item's subject by the same rule: with a grant for ``strasse`` an item naming
    ``straße`` (another account to the site) is dropped, one naming ``STRASSE`` kept (control)."""
    cards = "".join(f'<div class="card" data-id="{who}"><span class="name">{secret_name(who)}</span></div>'
                    for who in ("STRASSE", "Stra\u00dfe"))
    app = LenientPeople.lowering(PLAIN, SHARP).page("/cards", f"<html><body>{cards}</body></html>")
    with LocalServer(app) as server:
        result = await crawl(make_spider(kind, Cards), unicode_settings(tmp_path, PLAIN),
                             proxy=server.proxy, monkeypatch=monkeypatch)
    names = [i.get("name") for i in result.items]
    assert names == [secret_name("STRASSE")], result.items
    [line] = [e for e in result.audit if e.get("phase") == "item" and e.get("verdict") == "deny"]
    assert line["reason"] == "subject.ambiguous-url", line


def test_consentcrawl_check_follows_the_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``consentcrawl check --fetch`` decides as a crawl does, against the same site: nothing of the other
    account is fetched in either direction; the authorized spelling is (control)."""
    app = LenientPeople.lowering(PLAIN, SHARP)
    for grant, url, reason in ((PLAIN, "/@stra%C3%9Fe", "subject.ambiguous-url"),
                               (SHARP, "/@strasse", "subject.no-authorization"),
                               (PLAIN, "/@STRASSE", "subject.authorized")):
        settings = unicode_settings(tmp_path, grant)
        with LocalServer(app) as server:
            monkeypatch.setenv("http_proxy", server.proxy)
            code = main(["check", f"http://{HOST}{url}", "--purpose", "research", "--json", "--fetch",
                         "--platforms", settings["CONSENTCRAWL_PLATFORMS"],
                         "--authorizations", settings["CONSENTCRAWL_AUTHORIZATIONS"], "--now", "2026-12-02T00:00:00Z"])
        decision = json.loads(capsys.readouterr().out)
        assert (code, decision["reason"]) == ((0 if reason == "subject.authorized" else 1), reason), decision
    assert served_to(app) == {PLAIN}, app.describe()


@pytest.mark.parametrize("store", ["yaml", "sqlite-new", "sqlite-added", "redis"])
@deferred_f_from_coro_f
async def test_every_store_hands_back_the_spelling_the_rule_needs(store: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  request: pytest.FixtureRequest) -> None:
    """The stores keep their key format, and each hands back the subject as written: imported into a new SQLite
    store (the bulk importer), added to one that holds records (one by one) and into a real Redis, a grant written
    ``straße`` still lets a crawl fetch nothing of ``/@strasse``; alice's page is fetched (control)."""
    settings = unicode_settings(tmp_path, SHARP, "alice")
    platforms, source = settings["CONSENTCRAWL_PLATFORMS"], settings["CONSENTCRAWL_AUTHORIZATIONS"]
    if store.startswith("sqlite"):
        settings["CONSENTCRAWL_AUTHORIZATIONS"] = f"sqlite:///{tmp_path / 'consent.db'}"
        if store == "sqlite-added":
            first = tmp_path / "first.yaml"
            first.write_text("authorizations:\n" + record_yaml("bob"), encoding="utf-8")
            assert main(["authorizations", "import", str(first), settings["CONSENTCRAWL_AUTHORIZATIONS"],
                         "--platforms", platforms]) == 0
    elif store == "redis":
        settings["CONSENTCRAWL_AUTHORIZATIONS"] = request.getfixturevalue("redis_server").url
    if store != "yaml":
        assert main(["authorizations", "import", source, settings["CONSENTCRAWL_AUTHORIZATIONS"],
                     "--platforms", platforms]) == 0
    app = LenientPeople.lowering(PLAIN, SHARP).links_page("/links", [*PLAIN_LINKS, "/@alice"])
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", Links), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert_not_served(app, {PLAIN, SHARP}, f"(a grant for straße in the {store} store fetched strasse's page)")
    assert "alice" in served_to(app), app.describe()
    plain = [e for e in result.audit if e.get("verdict") == "deny" and e.get("subject") == PLAIN]
    assert plain and all(e["reason"] == "subject.no-authorization" for e in plain), result.denies()
    assert all(SHARP in json.dumps(e["evidence"], ensure_ascii=False) for e in plain), plain
