"""An id with white space around it: ``/u/%20bob`` is bob's page to a server that trims its ids.

With a template's default subject regex (``[^/]+``) the id of ``/u/%20bob`` reads as ``" bob"``, a key of its own;
a lenient server (``tests/lenient.py``, and ``int()``, ``str.strip``, PHP's ``trim``) serves bob there. So a grant
a store keeps for ``" bob"`` as written must not fetch bob's page: the URL is ambiguous (``subject.ambiguous-url``),
at both ends of the id (``bob%09``, like ``bob%20``), wherever a URL's person is read: the crawl, ``consentcrawl
check``, the mentions of an item, the purge. Judged by the server's request log, the audit log, the feed, and the
files the purge rewrites."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl.terms.platforms import Platform, ProfileTemplate
from consentcrawl.urls import canonicalize
from consentcrawl_demo.server import LocalServer
from tests.conftest import consent_settings
from tests.lenient import HOST, PLATFORMS_YAML, LenientPeople, crawl, make_spider

BASE = f"http://{HOST}"
PROJECT_LOGGER = logging.getLogger(__name__)
#: bob's page as a server that trims ids reads it; each names the key ``" bob"`` (or ``"bob\t"``) to a strict reader
PADDED = [f"{BASE}/u/%20bob", f"{BASE}/u/bob%09", f"{BASE}/@%C2%A0bob"]


class PaddedStore:
    """A store of the project's own whose service keeps ids as written: it grants ``" bob"``, ``"bob\\t"``,
    ``" bob"`` after NFKC, and alice; bob himself has no grant."""

    source = "tests.test_padded_ids.PaddedStore"
    version = 1

    def lookup(self, platform: str, subject: str) -> tuple[Any, ...]:
        from consentcrawl import AuthorizationRecord

        if subject not in (" bob", "bob\t", "alice"):
            return ()
        return (AuthorizationRecord(platform, subject, frozenset({"research"}),
                                    datetime(2026, 1, 1, tzinfo=timezone.utc), evidence="api"),)


def _platforms(tmp_path: Path) -> Path:
    platforms = tmp_path / "platforms.yaml"
    platforms.write_text(PLATFORMS_YAML.replace('    subject: "[A-Za-z0-9_]+"\n', ""))  # ids: anything but a /
    return platforms


class PaddedLogic:
    """Fetches each padded spelling of bob's page and alice's; alice's item names bob by a padded URL."""

    seen: list[str]

    async def start(self) -> Any:
        for url in [*PADDED, f"{BASE}/u/alice"]:
            yield scrapy.Request(url, callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        PROJECT_LOGGER.info("friends of %s: %s and %s/u/alice", response.url, PADDED[0], BASE)
        yield {"url": response.url, "name": response.css(".name::text").get(), "friends": [PADDED[0], "/u/alice"]}


@deferred_f_from_coro_f
async def test_a_grant_for_an_id_with_a_leading_space_does_not_fetch_bobs_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    feed = tmp_path / "items.jsonl"
    settings = consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=str(_platforms(tmp_path)),
                                CONSENTCRAWL_AUTHORIZATIONS=f"{__name__}.PaddedStore", DOWNLOAD_TIMEOUT=5,
                                FEEDS={str(feed): {"format": "jsonlines"}})
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", PaddedLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    sent = [s.target.split(HOST, 1)[-1] for s in app.served if s.kind != "robots"]
    assert "/u/alice" in sent, app.describe()  # control: the crawl ran and fetched the one who granted
    assert not [t for t in sent if "bob" in t], app.describe()
    assert app.people_served() == ["alice"], app.describe()
    reasons = {e["url"].split(HOST, 1)[-1]: e.get("reason") for e in result.audit if "bob" in e.get("url", "")}
    assert reasons == {"/u/%20bob": "subject.ambiguous-url", "/u/bob%09": "subject.ambiguous-url",
                       "/@%C2%A0bob": "subject.ambiguous-url"}, result.audit
    # the mention finder reads alice's friend the same way: withheld, not kept as the granted " bob"
    (item,) = [json.loads(line) for line in feed.read_text(encoding="utf-8").splitlines()]
    assert item["friends"] == ["/u/alice"], item
    audit = Path(settings["CONSENTCRAWL_AUDIT_LOG"]).read_text(encoding="utf-8").splitlines()
    (event,) = [e for e in map(json.loads, audit) if e.get("event") == "mentions-withheld"]
    assert event.get("unread") == ["subject.ambiguous-url"], event
    # the log filter, which shares the finder: the project's line at INFO loses bob's URL, keeps alice's
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and r.name == __name__]
    assert loud and all(f"{BASE}/u/alice" in line for line in loud), loud
    assert not [line for line in loud if "bob" in line], loud


@pytest.mark.parametrize("url", PADDED)
def test_check_denies_a_padded_id_as_ambiguous(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = LenientPeople()
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        code = main(["check", url, "--purpose", "research", "--platforms", str(_platforms(tmp_path)),
                     "--authorizations", f"{__name__}.PaddedStore", "--json"])
    out = capsys.readouterr().out
    assert (code, json.loads(out)["reason"]) == (1, "subject.ambiguous-url"), out
    assert app.people_served() == [], app.describe()


def test_the_purge_of_bob_erases_his_padded_urls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Erasing bob withholds the mentions of the URLs a server serves as bob's page."""
    platforms = _platforms(tmp_path)
    provenance = {"platform": "people", "subject": "alice", "url": f"{BASE}/u/alice"}
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"consentcrawl": provenance, "friends": [*PADDED, "/u/alice"]}) + "\n")
    code = main(["purge", "--platforms", str(platforms), "--subject", "people:bob", "--audit-log",
                 str(tmp_path / "audit.jsonl"), str(items)])
    assert code == 0, capsys.readouterr()
    (line,) = [json.loads(text) for text in items.read_text().splitlines()]
    assert line["friends"] == ["/u/alice"], line


@pytest.mark.parametrize(("path", "keys"), [
    ("/u/%20bob", {" bob", "bob"}),
    ("/u/bob%09", {"bob\t", "bob"}),
    ("/u/%0Abob%0D", {"\nbob\r", "bob"}),
    ("/u/%C2%A0bob", {" bob", "bob"}),
    ("/u/%00bob", {"\x00bob", "bob"}),  # Java's String.trim and PHP's trim take a NUL
    ("/u/%20", {" ", None}),  # trimmed, no one
])
def test_a_padded_id_is_ambiguous_with_both_keys(path: str, keys: set[str | None]) -> None:
    platform = Platform("people", frozenset({HOST}), None, (ProfileTemplate.compile("/u/{subject}", "[^/]+"),),
                        "[^/]+")
    url = f"{BASE}{path}"
    reading = platform.read_subject(url, canonicalize(url))
    assert reading.ambiguous and reading.subject is None, reading
    assert {key for _, key in reading.readings} >= keys, reading


@pytest.mark.parametrize("path", ["/u/a%20b", "/u/bob", "/u/.bob"])
def test_white_space_inside_an_id_is_part_of_it(path: str) -> None:
    platform = Platform("people", frozenset({HOST}), None, (ProfileTemplate.compile("/u/{subject}", "[^/]+"),),
                        "[^/]+")
    url = f"{BASE}{path}"
    reading = platform.read_subject(url, canonicalize(url))
    assert not reading.ambiguous and reading.subject is not None, reading
