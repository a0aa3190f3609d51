"""A fresh-eyes leak hunt against the cheaper decision paths (hunt7): each shortcut must decide as deciding afresh
would, judged by what the server did (its own request log) and the items that came out, or, for the pure parts,
against a runtime or engine that never took the shortcut.

- ``pagehead``: the one scan of a page's head must read the head the spider reads. Scrapy decodes a page with its
  declared charset, whatever that is: a charset in which ASCII bytes are not the ASCII text (EBCDIC, a stateful
  ISO-2022 whose shifted bytes look like ``<!--``) hid a ``<meta name="robots">`` or a TDM reservation from a scan
  of the raw bytes.
- the facts a request is read into at each phase equal fresh facts after any change of the request (the guard for
  any hand-off of facts between phases: ``RequestFactsMemo`` was one, since reverted as not worth its cost).
- the send-time decision: a request changed while it waits (for the store, the audit write, the cluster's
  schedule) is decided again as it now is.
- ``RecordsNeeded.carried`` / the version read once: a store written during the lookup is never remembered.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import pytest
import scrapy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scrapy import Request
from scrapy.utils.defer import deferred_f_from_coro_f

import tests.lenient as lenient
import tests.test_between_phases as between
from consentcrawl.audit.log import read_decisions
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.store import MemoryStore
from consentcrawl.meta_keys import META_SUBJECT
from consentcrawl.pagehead import head_tags
from consentcrawl.robots.meta import parse_meta_robots
from consentcrawl.terms.platforms import PlatformRegistry
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.conftest import jsonl, run_crawl
from tests.deciding import Engine
from tests.lenient import HOST as PEOPLE_HOST
from tests.lenient import KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings, secret_name
from tests.test_leaks_hunt import _actor, _refusing_profile, first_page_then_posts
from tests.test_policy import NOW as POLICY_NOW
from tests.test_policy import make_platform, record, t
from tests.test_robots_crawl import HOST, ConsentListSpider
from tests.test_signals_crawl import SignalSite, _denied, _pages, _settings

# --------------------------------------------------------------------------- the page head, in its own charset

_ROBOTS_META = '<meta name="robots" content="noai, noimageai, noindex">'
_RESERVED_META = '<meta name="tdm-reservation" content="1">'


def _ebcdic(meta: str) -> bytes:
    return f"<html><head>{meta}</head><body>x</body></html>".encode("cp037")


def _iso2022_hidden(meta: str) -> bytes:
    """A head whose ``<!--`` and ``-->`` are bytes of kanji (shifted in by ``ESC $ B``): the decoded page has no
    comment, so the tag between them is in the head; a byte scan sees a comment around it."""
    return (b"<html><head>\x1b$B<!--\x1b(B" + meta.encode("ascii") + b"\x1b$B-->!\x1b(B</head><body>x</body></html>")


#: (path, charset, body): pages whose head says what the spider reads in that charset
_HIDDEN = {
    "/ebcdic": ("cp037", _ebcdic),
    "/iso2022": ("iso-2022-jp", _iso2022_hidden),
}


@pytest.mark.parametrize("path", list(_HIDDEN))
def test_the_head_scan_reads_the_head_the_spider_reads(path: str) -> None:
    """The pure part: the tags the scan finds are those in the page as decoded with its charset."""
    from scrapy.http import HtmlResponse

    charset, make = _HIDDEN[path]
    response = HtmlResponse(f"http://{HOST}{path}", body=make(_ROBOTS_META),
                            headers={"Content-Type": f"text/html; charset={charset}"})
    assert _ROBOTS_META in response.text  # what the spider reads
    tags = head_tags(response.body, response.encoding)
    assert [t.attrs.get("name") for t in tags if t.tag == "meta"] == ["robots"]
    assert {d.name for d in parse_meta_robots(response.body, "consentcrawl", response.encoding)} >= {"noai"}


@deferred_f_from_coro_f
async def test_a_tdm_reservation_in_a_page_of_a_non_ascii_charset_denies_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crawl for AI training of pages whose head reserves TDM, each in a charset whose bytes a raw scan misreads:
    the server served them (the decision is the response phase's), no callback ran, no item came out."""
    await assert_reserved_pages_denied({path: (f"text/html; charset={charset}", make(_RESERVED_META))
                                        for path, (charset, make) in _HIDDEN.items()}, tmp_path, monkeypatch)


async def assert_reserved_pages_denied(pages: dict[str, tuple[str, bytes]], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A crawl for AI training of ``pages`` (path: Content-Type and body), each reserving TDM in its head, and of
    ``/ok`` on a site that allows training: the server served every page (the decision is the response phase's),
    only ``/ok`` reached the callback, and each page is denied ``response.signal.tdmrep``."""
    plain = SignalSite(robots="User-agent: *\nContent-Usage: / train-ai=y\nAllow: /\n")  # the site allows training

    def site(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.path in pages:
            content_type, body = pages[request.path]
            return Response(200, {"Content-Type": content_type}, body)
        return plain(request, headers)

    ConsentListSpider.urls = [f"http://{HOST}{p}" for p in (*pages, "/ok")]
    with LocalServer(site) as server:
        result = await run_crawl(ConsentListSpider, _settings(tmp_path, "ai-training"), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
        assert _pages(server) == sorted([*pages, "/ok"])
    assert [i["url"] for i in result.items] == [f"http://{HOST}/ok"]
    denied = _denied(result)
    assert {p.lstrip("/"): denied.get(p.lstrip("/")) for p in pages} == {
        p.lstrip("/"): "response.signal.tdmrep" for p in pages}


def _codecs() -> list[str]:
    import codecs
    import encodings.aliases

    names = set()
    for name in {*encodings.aliases.aliases.values(), "utf_8", "latin_1", "cp037", "iso2022_jp"}:
        try:
            info = codecs.lookup(name)
        except LookupError:
            continue
        if getattr(info, "_is_text_encoding", True):
            names.add(info.name)
    return sorted(names)


def test_a_charset_is_scanned_as_bytes_only_where_every_ascii_byte_is_that_character() -> None:
    """Every codec Python has: where the head is scanned as raw bytes, an ASCII byte after any byte decodes to
    itself (nothing the markup is made of is part of another character); the charsets of the crawl above are not
    scanned as bytes. Catches a rule that lets a multi-byte, stateful or EBCDIC codec through."""
    from consentcrawl.pagehead import scans_as_bytes as _ascii_bytes

    fast = [name for name in _codecs() if _ascii_bytes(name)]
    assert {"utf-8", "cp1252", "iso8859-1", "iso8859-15"} <= set(fast)
    for name in ("cp037", "iso2022_jp", "shift_jis", "utf-16-le", "utf-7", "hz", "gb18030"):
        assert not _ascii_bytes(name), name
    markup = b"\t\n\x0c\r !\"'-/<=>abcdeiklmnoprstxyABCDEIKLMNOPRSTXY"  # what the markup is made of
    for name in fast:
        for lead in range(256):
            for ascii_byte in markup:
                assert bytes([lead, ascii_byte]).decode(name, "replace")[-1] == chr(ascii_byte), (name, lead)


@dataclasses.dataclass
class EbcdicPeople(LenientPeople):
    """The lenient site, its profile pages in EBCDIC (``charset=cp037``), which Scrapy decodes for the spider."""

    media_type: str = "text/html"

    def _answer(self, request: Any, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        kind, response = super()._answer(request, path, kind, person)
        if kind == "profile":
            body = response.body_bytes().decode("utf-8").encode("cp037")
            response = Response(response.status, {"Content-Type": f"{self.media_type}; charset=cp037"}, body)
        return kind, response


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_refusal_on_a_profile_in_ebcdic_is_read(kind: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """101's profile card says ``#nobot``, in a page sent in EBCDIC: the callback reads the card (Scrapy decodes
    the page with its charset), so the refusal must be read too; 101's next page is not fetched, no callback ran."""
    result = await first_page_then_posts(kind, EbcdicPeople(), _refusing_profile, tmp_path, monkeypatch)
    assert not result.seen and secret_name("101") not in str(result.items), f"a callback got it: {result.seen}"


@pytest.mark.parametrize("media_type", ["application/json", "text/plain"])
@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_an_actor_in_ebcdic_is_read_as_response_text_reads_it(kind: str, media_type: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """101's ActivityPub actor says ``"indexable": false``, sent as JSON in EBCDIC: a callback's
    ``json.loads(response.text)`` reads it (Scrapy decodes it with its charset), so it must be read as an actor:
    101's next page is not fetched."""
    result = await first_page_then_posts(kind, EbcdicPeople(media_type=media_type), _actor, tmp_path, monkeypatch)
    assert not result.seen and secret_name("101") not in str(result.items), f"a callback got it: {result.seen}"


# --------------------------------------------------------------------------- the facts handed from phase to phase

#: what a downloader middleware or a redirect may change on the request object between two phases
_NAMES = ["Host", "host", "HOST", "Cookie", "cookie", "X-Original-URL", "x-rewrite-url", "X-Original-URI",
          "X-Forwarded-Uri", "Transfer-Encoding", "Content-Length", "content-length", "Content-Type"]
_VALUES = [b"microblog.example", b"elsewhere.example", b"id=3002", b"next=microblog.example/u/3002", b"/u/3001",
           b"/u/3002", b"chunked", b"0", b"29", b"application/x-www-form-urlencoded", b"application/json"]
_change = st.one_of(
    st.tuples(st.just("header"), st.sampled_from(_NAMES), st.lists(st.sampled_from(_VALUES), max_size=2)),
    st.tuples(st.just("meta"), st.sampled_from([META_SUBJECT, "proxy"]),
              st.sampled_from([None, "microblog:3001", "microblog:3002", "3002", 3002, "http://elsewhere.example",
                               "http://microblog.example:80", "http://[bad"])),
    st.tuples(st.just("body"), st.sampled_from([b"", b"next=microblog.example/u/3002", b"id=3001",
                                               b'{"url": "http://microblog.example/u/3002"}'])),
    st.tuples(st.just("url"), st.sampled_from(["/u/3001", "/u/3002", "/u/3001/", "/people", "/u/3001?id=3002"])),
    st.tuples(st.just("read"), st.sampled_from(["request", "send", "person", "later"])),
)


def _apply(request: Request, change: tuple[Any, ...]) -> None:
    kind = change[0]
    if kind == "header":
        name, values = change[1], change[2]
        if values:
            dict.__setitem__(request.headers, name.encode(), list(values))  # as put, unnormalised too
        else:
            for key in [k for k in dict.keys(request.headers) if k.lower() == name.lower().encode()]:
                dict.__delitem__(request.headers, key)
    elif kind == "meta":
        if change[2] is None:
            request.meta.pop(change[1], None)
        else:
            request.meta[change[1]] = change[2]
    elif kind == "body":
        request._set_body(change[1])
    else:
        request._set_url(f"{between.ORIGIN}{change[1]}")


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(changes=st.lists(_change, min_size=1, max_size=12))
@example(changes=[("read", "request"), ("meta", "proxy", "http://[bad"), ("read", "send")])
@example(changes=[("read", "person"), ("meta", META_SUBJECT, "microblog:3002"), ("read", "person")])
@example(changes=[("read", "person"), ("url", "/u/3002"), ("read", "send")])
@example(changes=[("read", "request"), ("header", "host", [b"elsewhere.example"]), ("read", "send")])
@example(changes=[("read", "request"), ("header", "Cookie", [b"id=3002"]), ("read", "send")])
@example(changes=[("read", "request"), ("header", "X-Forwarded-Uri", [b"/u/3002"]), ("read", "send")])
@example(changes=[("read", "request"), ("header", "Content-Length", [b"0"]), ("read", "send")])
@example(changes=[("body", b"id=3001"), ("read", "request"),
                  ("header", "Content-Type", [b"application/x-www-form-urlencoded"]), ("read", "send")])
@example(changes=[("read", "request"), ("body", b"next=microblog.example/u/3002"), ("read", "send")])
@example(changes=[("read", "request"), ("read", "later"), ("read", "send")])
def test_facts_handed_on_are_the_facts_read_afresh_after_any_change(tmp_path: Path,
                                                                     changes: list[tuple[Any, ...]]) -> None:
    """One request object read at the phases in any order, changed in between in any of the ways a middleware can
    (a header in any spelling, put in unnormalised, several values; meta subject of any type; the proxy; the body;
    the URL in place): each reading equals a reading by a runtime that never read it before. Catches an input left
    out of what the memo compares (each is changed here), and facts of another time handed to a decision."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as one, tempfile.TemporaryDirectory(dir=tmp_path) as two:
        with between._opened(Path(one)) as runtime, between._opened(Path(two)) as never_read:
            request = Request(between.URL, method="POST")
            times = {"request": between.NOW, "send": between.NOW, "later": between.EXPIRES}
            for change in changes:
                if change[0] != "read":
                    _apply(request, change)
                    continue
                if change[1] == "person":
                    assert runtime.person_of(request) == never_read.person_of(request)
                else:
                    now = times[change[1]]
                    got, bad = runtime.facts_for(request, request.url, now)
                    fresh, fresh_bad = never_read.facts_for(request, request.url, now)
                    assert got == fresh and (bad is None) == (fresh_bad is None), change
                    assert got is None or (got.now == now and got.now.tzinfo is now.tzinfo)


# --------------------------------------------------------------------------- the store's version, read once


class _WrittenDuringLookup(MemoryStore):
    """A store another process writes while a lookup reads it: the lookup answers what was there before (the
    grant), and the store's version is already the new one (the withdrawal) when it returns."""

    def __init__(self, records: list[AuthorizationRecord], then: AuthorizationRecord) -> None:
        super().__init__(records)
        self.then: AuthorizationRecord | None = then

    def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        answer = super().lookup(platform, subject)
        if self.then is not None:
            self.add(self.then)
            self.then = None
        return tuple(answer)


@pytest.mark.parametrize("ask", ["link", "consent", "subject"])
def test_a_decision_made_while_the_store_was_written_is_not_remembered(ask: str) -> None:
    """The first decision of a new link reads the version before its lookup once (the decider's own read) and after
    it again: a write in between (a withdrawal) makes the answers a version equal to nothing, so the next decision
    looks the person up again and denies. Catches a version read after the lookup taken as the one before it, and
    a decision remembered at the version read after a write."""
    store = _WrittenDuringLookup([record("1001")], record("1001", revoked_at=t("2026-10-01")))
    engine = Engine(PlatformRegistry({"microblog": make_platform()}), store, "consentcrawl")
    url = "http://microblog.example/u/1001"

    def decide() -> Any:
        if ask == "link":
            return engine.decide_link(url, "research", POLICY_NOW)[0]
        if ask == "subject":
            return engine.decide_subject("microblog", "1001", "research", POLICY_NOW)
        return engine.decide_consent(engine.facts(url, "research", POLICY_NOW))

    first = decide()
    assert first.allowed, first.reason  # decided on what the lookup read
    second = decide()
    assert not second.allowed and second.reason == "subject.revoked", second.reason


# --------------------------------------------------------------------------- a change after the request phase, crawled


class _LateRewrite:
    """A downloader middleware between the request phase (priority 10) and the send-time handler: it makes a
    request for 101 route to 107 after the request phase allowed it, in the way the test names."""

    how = "header"

    async def process_request(self, request: scrapy.Request, spider: Any = None) -> None:
        if request.url.endswith("/u/101") and not request.meta.get("late_done"):
            request.meta["late_done"] = True
            if self.how == "header":
                request.headers["X-Original-URL"] = "/u/107"
            elif self.how == "unnormalised":
                dict.__setitem__(request.headers, b"x-rewrite-url", [b"/u/107"])
            elif self.how == "subject":
                request.meta[META_SUBJECT] = "people:107"


@pytest.mark.parametrize("how", ["header", "unnormalised", "subject"])
@deferred_f_from_coro_f
async def test_a_request_changed_after_the_request_phase_is_decided_as_changed(
        how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """101 is authorized, 107 is not. A middleware after the request phase makes 101's request route to 107's
    page (a rewrite header a front end honours, set normally or put in unnormalised) or name 107 in meta: the
    send-time decision reads the request as it now is, not the facts handed on from the request phase. The server
    never serves 107; 102's unchanged request (the control) is served. Catches a memo that hands on the request
    phase's facts for the same request object without comparing what they were read from."""
    from tests.test_leaks_fresh import RewritingServer

    middleware = type("LateRewrite", (_LateRewrite,), {"how": how})
    logic = type("LateLogic", (ListLogic,), {"follow_links": False, "urls": [
        f"http://{PEOPLE_HOST}/u/101", f"http://{PEOPLE_HOST}/u/102"]})
    app = RewritingServer()
    # one decision time for both phases (CONSENTCRAWL_NOW): the request phase's facts are of the send time's time
    settings = people_settings(tmp_path, DOWNLOADER_MIDDLEWARES={middleware: 500},
                               CONSENTCRAWL_NOW="2026-12-01T12:00:00+00:00")
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", logic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    served = app.people_served()
    assert "107" not in served and "101" not in served, f"the changed request was sent:\n{app.describe()}"
    assert "102" in served, app.describe()
    assert secret_name("107") not in str(result.items)
    assert any(e["verdict"] == "deny" and e["reason"] == "subject.mismatch" for e in result.audit), result.denies()


# --------------------------------------------------------------------------- what a lenient server reads

def _tdm(*entries: tuple[str, int]) -> str:
    return "[" + ", ".join(f'{{"location": "{loc}", "tdm-reservation": {res}}}' for loc, res in entries) + "]"


#: (tdmrep.json, the paths requested in order, the paths a server that decodes ``%2F`` and drops ``;`` parameters
#: may serve for them): each reserved spelling comes after a primer whose canonical path selects the same entry, so
#: a site decision remembered by the canonical selection alone would be reused for it. One rule of SpellingSight
#: each (a case whose file also held another rule's pattern would be told apart by that one)
_LENIENT_CASES = {
    # a first piece reaching past the part before the escape (C = /b/0)
    "first piece": (_tdm(("/b/0/1", 1), ("/", 0)), ["/b/0%2F2", "/b/0%2F1"], ["/b/0/2"]),
    # the same, cut at a ;parameter (C = /a)
    "first piece, ;": (_tdm(("/a/b", 1), ("/", 0)), ["/a;x/c", "/a;x/b"], ["/a/c"]),
    # a later piece holding a character of the reading (/)
    "later piece": (_tdm(("*/secret", 1), ("/", 0)), ["/x%2Fpublic", "/x%2Fsecret"], ["/x/public"]),
    # a later piece of characters the reading has (x/) and the written path has not after the cut
    "later piece, reading only": (_tdm(("*x/", 1), ("/", 0)), ["/y%2Fpublic", "/x%2Fsecret"], ["/y/public"]),
    # a later piece holding the escape itself: the written path is exempt, what the server reads is reserved (no
    # primer can be allowed here, so this one holds the decision on a miss to every spelling, not the sight)
    "escape in a piece": (_tdm(("*%2F", 0), ("/", 1)), ["/x%2Fy"], []),
}


@pytest.mark.parametrize("case", list(_LENIENT_CASES))
@deferred_f_from_coro_f
async def test_a_spelling_a_lenient_server_reads_as_a_reserved_path_is_not_sent(
        case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crawl for AI training of a site whose tdmrep.json reserves paths as its lenient server reads them. Judged
    by the paths the server served: no reserved one. Checked by hand against SpellingSight with a rule left out:
    without the first pieces' prefixes both "first piece" cases fail; without the later pieces' characters taken
    out of what the reading may hold, "later piece, reading only"; without that and the test of the written
    path's characters after the cut, "later piece" too."""
    tdmrep, written, expected = _LENIENT_CASES[case]
    site = SignalSite(robots="User-agent: *\nAllow: /\n", tdmrep=tdmrep)
    served: list[str] = []

    def app(request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.path not in ("/robots.txt", "/.well-known/tdmrep.json", "/ai.txt"):
            served.append(lenient.lenient_path(request.path))
            return Response.html(f"<html><body>{served[-1]}</body></html>")
        return site(request, headers)

    ConsentListSpider.urls = [f"http://{HOST}{path}" for path in written]
    with LocalServer(app) as server:
        result = await run_crawl(ConsentListSpider, _settings(tmp_path, "ai-training"), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
    assert served == expected, served
    assert len(result.items) == len(expected)
    denied = [e["reason"] for e in result.audit if e["verdict"] == "deny"]
    assert denied == ["terms.signal.tdmrep"], denied  # the reserved spelling, decided before it was sent


@pytest.mark.parametrize("charset", ["shift_jis", "utf-16", "cp037", "iso-2022-jp"])
def test_a_profile_decoded_for_its_charset_is_read_with_an_xml_declaration(charset: str) -> None:
    """A profile decoded before its card is looked for (its charset's bytes are not its text) is parsed as parsel
    parses ``response.text``, also where it opens with an XML declaration naming its charset (lxml refuses such a
    declaration in a str): its ``#nobot`` is read, not an error."""
    from consentcrawl.refusals.page import read_page

    page = (f'<?xml version="1.0" encoding="{charset}"?><html><body><div class="h-card">'
            '<p class="p-note">my notes #nobot</p></div></body></html>')
    reading = read_page("http://people.example/u/101", 200, f"text/html; charset={charset}",
                        page.encode(charset), "consentcrawl", encoding=charset)
    assert [f.form for f in reading.found] == ["hashtag.nobot"]


class _MovesTheRequest(MemoryStore):
    """A store whose lookup is the moment something else moves a request to another person's URL (in place: the
    scheduling check reads the request again when it asks the engine again after the lookup)."""

    request: Request | None = None

    def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        if self.request is not None:
            self.request._set_url(f"{between.ORIGIN}/u/3002")
            self.request = None
        return tuple(super().lookup(platform, subject))


@deferred_f_from_coro_f
async def test_a_links_facts_carried_over_a_lookup_are_used_only_for_the_same_link(tmp_path: Path) -> None:
    """The link check of 3001's URL needs 3001's records; while they are looked up the request is moved to 3002's
    URL (no grant). The check asks again for the URL it now has: the facts carried over from the first ask are
    3001's and must not be used for it, or 3001's grant is remembered as 3002's link decision. Catches the carried
    facts used without checking they are the same link's."""
    from consentcrawl.consent.adapt import as_async_store

    store = _MovesTheRequest([between._grant()])
    with between._opened(tmp_path) as runtime:
        runtime.decider.store = as_async_store(store)
        request = Request(between.URL)
        store.request = request
        await runtime.decide_scheduled(request)
        assert request.url.endswith("/u/3002")  # moved during the lookup
        decision, _, _ = await runtime.decider.decide_link(request.url, runtime.config.purpose, between.NOW)
        assert not decision.allowed and decision.reason == "subject.no-authorization", decision.reason


class _ChangesTheRequest(MemoryStore):
    """A store whose lookup is the moment a spider callback, run by the event loop while the send-time decision
    waits for it, changes a request it kept: ``change`` is applied on each of the first ``times`` lookups."""

    def __init__(self, records: list[AuthorizationRecord], request: Request, change: Any, times: int = 1) -> None:
        super().__init__(records)
        self.request, self.change, self.times = request, change, times

    def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        if self.times > 0:
            self.times -= 1
            self.change(self.request)
        return tuple(super().lookup(platform, subject))


@pytest.mark.parametrize("what", ["a rewrite header", "meta subject", "the URL"])
@deferred_f_from_coro_f
async def test_a_request_changed_while_its_send_time_decision_waits_is_decided_as_sent(tmp_path: Path,
                                                                                         what: str) -> None:
    """3001's request is decided at send time; while the decision waits for the store, something holding the
    request changes it to reach 3002's page. What goes to the network is the request as it is when the decision
    returns, so that is what must have been decided: the send-time decision is not an allow for the request as it
    was."""
    from consentcrawl.consent.adapt import as_async_store

    change = {"a rewrite header": between._set(b"X-Original-URL", b"/u/3002"),
              "meta subject": between._set_meta(META_SUBJECT, "microblog:3002"),
              "the URL": between._set_url}[what]
    request = Request(between.URL)
    with between._opened(tmp_path) as runtime:
        runtime.decider.store = as_async_store(_ChangesTheRequest([between._grant()], request, change))
        decision = await runtime.decide_send(request)
    assert not decision.allowed, f"{what}: {decision.reason} for a request that now reaches 3002"
    assert decision.reason == "subject.mismatch" if what != "the URL" else "subject.no-authorization"
    lines = [(e["verdict"], e["reason"]) for e in read_decisions(tmp_path / "audit.jsonl") if e["phase"] == "request"]
    assert lines == [("allow", "subject.authorized"), ("deny", decision.reason)]  # each decision made is recorded
    deferred = [e["decision_id"] for e in jsonl(tmp_path / "audit.jsonl") if e.get("event") == "send-deferred"]
    allowed = [e["decision_id"] for e in read_decisions(tmp_path / "audit.jsonl") if e["verdict"] == "allow"]
    assert deferred == allowed  # the allow that did not go is named, so the report counts no send for it


@deferred_f_from_coro_f
async def test_a_request_that_changes_while_each_send_time_decision_waits_is_denied(tmp_path: Path) -> None:
    """A request changed anew during every decision of it is denied after a few, with the cause, not decided
    forever; one change that does not alter its facts (a header no one routes by) is no change."""
    from consentcrawl.consent.adapt import as_async_store
    from consentcrawl.runtime import SEND_TRIES

    count = iter(range(100))

    def rewrite(request: Request) -> None:
        request.headers[b"X-Trace"] = str(next(count)).encode()  # no fact: the same request to the decision
        request._set_url(f"{between.URL}?page={next(count)}")  # 3001's own page, another URL each time
        store.add(dataclasses.replace(between._grant(), subject=str(4000 + next(count))))  # so it is looked up again

    request = Request(between.URL)
    store = _ChangesTheRequest([between._grant()], request, rewrite, times=99)
    with between._opened(tmp_path) as runtime:
        runtime.decider.store = as_async_store(store)
        decision = await runtime.decide_send(request)
    assert not decision.allowed and decision.reason == "error.internal"
    assert any(ev.detail.get("error") == "RequestChanged" for ev in decision.evidence)
    lines = [e["reason"] for e in read_decisions(tmp_path / "audit.jsonl") if e["phase"] == "request"]
    assert lines == ["subject.authorized"] * SEND_TRIES + ["error.internal"]


class _Spacing:
    """The cluster's schedule of a distributed crawl, as :func:`send_shared` asks it: no wait, and the moment the
    send is recorded (a Redis round trip) is when code holding the request changes it, the first ``times`` times."""

    def __init__(self, request: Request, change: Any, times: int = 1) -> None:
        self.request, self.change, self.times = request, change, times

    async def reserve(self, origin: str, delay: float | None) -> float:
        return 0.0

    async def send(self, origin: str, delay: float | None, *token_and_hold: Any) -> float:
        if self.times > 0:
            self.times -= 1
            self.change(self.request)
        return 0.0


class _Refusals:
    async def check(self, platform: str, subject: str) -> None:
        return None


@deferred_f_from_coro_f
async def test_a_request_changed_while_a_distributed_send_is_recorded_is_decided_again(tmp_path: Path) -> None:
    """A distributed crawl's send-time step awaits the cluster's schedule after the allow: a request changed
    meanwhile to reach 3002's page is decided again as it now is (denied), not sent on the allow; an unchanged one
    is sent on its one allow (the control)."""
    import types

    from consentcrawl.distributed.send import send_shared
    from consentcrawl.middlewares import ConsentDenied

    for changed in (False, True):
        request = Request(between.URL)
        with between._opened(tmp_path / str(changed)) as runtime:
            spacing = _Spacing(request, between._set(b"X-Original-URL", b"/u/3002"), times=int(changed))
            runtime.distributed = types.SimpleNamespace(  # type: ignore[assignment]
                spacing=spacing, refusals=_Refusals(), shared=types.SimpleNamespace(source="test"))
            try:
                await send_shared(runtime, request, (between.ORIGIN, None))
                denied = None
            except ConsentDenied as exc:
                denied = exc.args[0] if exc.args else exc
            finally:
                runtime.distributed = None
        lines = [e["reason"] for e in read_decisions(tmp_path / str(changed) / "audit.jsonl")
                 if e["phase"] == "request"]
        if changed:
            assert denied is not None, "sent on the allow of the request as it was"
            assert lines == ["subject.authorized", "subject.mismatch"], lines
        else:
            assert denied is None and lines == ["subject.authorized"], lines
