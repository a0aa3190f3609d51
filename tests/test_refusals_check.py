"""``consentcrawl check --fetch`` reads the refusals a person published on the fetched page, with the code the
crawl's response phase uses (issue 14, "Refusals on the page"), and lists them in ``--json``.

Against the fediverse demo server on loopback (every person there holds a live record, so only their own page can
stop them), judged by the server's request log: the page is fetched once, and nothing of the person after it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from consentcrawl.cli import main
from consentcrawl_demo.fediverse import HOST, FediverseSite
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from spiders.fediverse import SETTINGS

NOW = "2026-06-01T00:00:00Z"


def check(url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *extra: str,
          app: Any = None) -> tuple[int, dict[str, Any], list[LoggedRequest]]:
    """``consentcrawl check URL --fetch --json`` through the demo server; the exit code, the JSON, the server's
    log of the person's pages."""
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    with LocalServer(app or FediverseSite()) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        code = main(["check", url, "--purpose", "research", "--json", "--fetch", "--now", NOW,
                     "--platforms", str(SETTINGS / "fediverse.yaml"),
                     "--authorizations", str(SETTINGS / "fediverse-authorizations.jsonl"), *extra])
        served = [r for r in server.requests if r.host == HOST and r.decoded_path.startswith(("/@", "/users/"))]
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    return code, json.loads(out), served


def test_a_nobot_in_the_bio_of_the_fetched_profile_denies_and_is_listed(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, decision, served = check(f"http://{HOST}/@bob", capsys, monkeypatch)
    assert code == 1 and decision["verdict"] == "deny" and decision["reason"] == "subject.refused-on-page"
    # fetched once: the refusal is read from the page, and a person who refused has their actor left alone
    assert [r.decoded_path for r in served] == ["/@bob"]
    (found,) = decision["refusals_on_page"]
    assert found["form"] == "hashtag.nobot" and found["field"] == "h-card p-note" and "#nobot" in found["raw"]
    assert found["refuses_purpose"] is True and found["url"] == f"http://{HOST}/@bob"
    evidence = [e for e in decision["evidence"] if e["kind"] == "refusal-on-page"]
    assert [e["form"] for e in evidence] == ["hashtag.nobot"] and evidence[0]["event"] is None
    assert any(e["kind"] == "subject-authorization" for e in decision["evidence"])  # the record, overruled


def test_indexable_false_on_the_fetched_actor_denies(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    site, accepts = FediverseSite(), []

    def app(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        accepts.append((request.decoded_path, headers.get("accept")))
        return site(request, headers)

    code, decision, served = check(f"http://{HOST}/users/carol", capsys, monkeypatch, "--activitypub", app=app)
    assert code == 1 and decision["reason"] == "subject.refused-on-page"
    assert [r.decoded_path for r in served] == ["/users/carol"]
    assert ("/users/carol", "application/activity+json") in accepts
    assert [f["form"] for f in decision["refusals_on_page"]] == ["activitypub.indexable"]
    assert decision["refusals_on_page"][0]["field"] == "indexable"


@pytest.mark.parametrize(("url", "extra"), [("/@alice", ()), ("/users/alice", ("--activitypub",)),
                                            ("/@grace", ()), ("/@heidi", ()), ("/@kim", ())])
def test_pages_without_a_refusal_of_their_own_are_allowed(
        url: str, extra: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # grace: #nobotanicalgardens; heidi: a pinned post quoting someone else's #nobot; kim: a URL with #nobot
    code, decision, served = check(f"http://{HOST}{url}", capsys, monkeypatch, *extra)
    assert (code, decision["verdict"]) == (0, "allow"), decision["evidence"]
    name = url.rpartition("/")[2].lstrip("@")
    if extra:  # the actor itself
        assert decision["refusals_on_page"] == [] and [r.decoded_path for r in served] == [url]
    else:  # the profile, then the actor it links to, as a crawl reads them
        actor = f"http://{HOST}/users/{name}"
        assert decision["refusals_on_page"] == [{"actor": actor, "fetched": True}]
        assert [r.decoded_path for r in served] == [url, f"/users/{name}"]


def test_indexable_false_in_the_actor_a_profile_links_to_denies_the_profile(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, decision, served = check(f"http://{HOST}/@carol", capsys, monkeypatch)
    assert code == 1 and decision["reason"] == "subject.refused-on-page"
    assert [r.decoded_path for r in served] == ["/@carol", "/users/carol"]
    assert decision["refusals_on_page"][0] == {"actor": f"http://{HOST}/users/carol", "fetched": True}
    assert [(f["form"], f["url"]) for f in decision["refusals_on_page"][1:]] == [
        ("activitypub.indexable", f"http://{HOST}/users/carol")]


def test_an_actor_link_to_another_person_is_reported_not_fetched(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    site = FediverseSite()

    def app(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        answer = site(request, headers)
        if answer is not None and request.decoded_path == "/@heidi":
            answer = dataclasses.replace(answer, body=str(answer.body).replace("/users/heidi", "/users/carol"))
        return answer

    code, decision, served = check(f"http://{HOST}/@heidi", capsys, monkeypatch, app=app)
    assert code == 1 and [r.decoded_path for r in served] == ["/@heidi"]
    assert decision["refusals_on_page"] == [{"actor": f"http://{HOST}/users/carol", "fetched": False,
                                             "why": "another person's (or no one's) actor"}]
    # heidi's own actor is not known: as in a crawl, she is denied, with the cause
    assert decision["reason"] == "error.internal" and "ActorUnread" in json.dumps(decision["evidence"])


def test_noindex_meta_is_listed_but_does_not_refuse_research(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    code, decision, _ = check(f"http://{HOST}/@dave", capsys, monkeypatch)
    assert code == 0
    # dave's page says <meta name="robots" content="noindex, noarchive">: search and archiving, not research
    forms = {f["form"]: f["refuses_purpose"] for f in decision["refusals_on_page"] if "form" in f}
    assert forms and not any(forms.values()) and all(f.startswith("meta-robots.") for f in forms), forms


def test_an_actor_of_another_person_and_garbage_deny(capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    site = FediverseSite()

    def app(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.decoded_path == "/users/alice":  # alice's URL answers with bob's actor
            return site(dataclasses.replace(request, path="/users/bob"), headers)
        if request.decoded_path == "/users/kim":
            return Response(200, {"Content-Type": "application/activity+json"}, "{not json")
        return site(request, headers)

    code, decision, _ = check(f"http://{HOST}/users/alice", capsys, monkeypatch, "--activitypub", app=app)
    assert code == 1 and decision["reason"] == "subject.mismatch"
    assert decision["refusals_on_page"][0]["owner"] == f"http://{HOST}/users/bob"
    code, decision, _ = check(f"http://{HOST}/users/kim", capsys, monkeypatch, "--activitypub", app=app)
    assert code == 1 and decision["reason"] == "error.internal"
    assert any("not JSON" in e.get("message", "") for e in decision["evidence"])


@pytest.mark.parametrize("card", [
    '<div class="p-note">Bus driver. <span class="p-category">#nobot</span></div>',  # a p-* inside a p-*
    '<p class="p-note p-summary">Bus driver. #nobot</p>',  # one element, two p-* classes
])
def test_a_refusal_in_a_property_inside_another_is_read_once(
        card: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The outer property's text holds the inner one's: the refusal is one finding, and the audit's evidence
    lists it once (not once per property class that holds it)."""
    site = FediverseSite()
    page = (f'<html><body><div class="h-card"><a class="u-url" href="http://{HOST}/@bob">bob</a>'
            f'<h1 class="p-name">Bob</h1>{card}</div></body></html>')

    def app(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        return Response.html(page) if request.decoded_path == "/@bob" else site(request, headers)

    code, decision, served = check(f"http://{HOST}/@bob", capsys, monkeypatch, app=app)
    assert code == 1 and decision["reason"] == "subject.refused-on-page"
    assert [r.decoded_path for r in served] == ["/@bob"]
    assert [f["form"] for f in decision["refusals_on_page"]] == ["hashtag.nobot"], decision["refusals_on_page"]
    assert decision["refusals_on_page"][0]["field"].startswith("h-card p-note")
    evidence = [e for e in decision["evidence"] if e["kind"] == "refusal-on-page"]
    assert [e["form"] for e in evidence] == ["hashtag.nobot"], evidence


@pytest.mark.parametrize("card", [
    '<div class="p-note">Bus driver<span class="p-category">#nobot</span></div>',  # no space before the tag
    '<div class="p-note">Tags:<ul><li>x</li></ul>bus<span class="p-category">#nobot</span>ing</div>',
])
def test_a_refusal_in_a_property_inside_another_is_read_where_the_outer_text_hides_it(
        card: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner property's text, joined to the outer's words, is no hashtag in the outer property's text
    (``driver#nobot``), but a spider reading ``.p-category`` reads ``#nobot``: the refusal is still found (once)."""
    site = FediverseSite()
    page = (f'<html><body><div class="h-card"><a class="u-url" href="http://{HOST}/@bob">bob</a>'
            f'<h1 class="p-name">Bob</h1>{card}</div></body></html>')

    def app(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        return Response.html(page) if request.decoded_path == "/@bob" else site(request, headers)

    code, decision, served = check(f"http://{HOST}/@bob", capsys, monkeypatch, app=app)
    assert code == 1 and decision["reason"] == "subject.refused-on-page", decision
    assert [r.decoded_path for r in served] == ["/@bob"]
    assert [f["form"] for f in decision["refusals_on_page"]] == ["hashtag.nobot"], decision["refusals_on_page"]
    assert decision["refusals_on_page"][0]["field"].startswith("h-card p-category")
