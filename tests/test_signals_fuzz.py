"""Hypothesis fuzzing of every signal parser: arbitrary bytes and text never raise and never allow.

"Never allow from garbage": an ALLOW may only come from input that really says allow (the token, the value, the
licence), so each property names what an allow needs and checks that it was there.
"""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentcrawl.pagehead import head_tags
from consentcrawl.robots.fetch import from_response as robots_response
from consentcrawl.signals import Level, SignalResult, SignalVerdict, combine
from consentcrawl.signals.ai_txt import parse_ai_txt, site_ai_txt
from consentcrawl.signals.content_signal import parse_content_signal, response_content_signal, site_content_signal
from consentcrawl.signals.content_usage import parse_content_usage, response_content_usage, site_content_usage
from consentcrawl.signals.fetch import from_response
from consentcrawl.signals.purposes import BASE_PURPOSES
from consentcrawl.signals.rsl import RslLink, parse_rsl, response_rsl_links, site_rsl
from consentcrawl.signals.tdmrep import parse_tdmrep_file, response_tdmrep, site_tdmrep

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
URL = "https://site.example/some/page.html?q=1"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: text that looks like what the parsers read, so the fuzzer reaches past the first check
_PIECES = st.sampled_from([
    "train-ai", "search", "ai-train", "ai-input", "=", "y", "n", "yes", "no", ",", ";", " ", "\t", '"', "?1", "(",
    ")", "ai", "all", "use=immediate", "Content-Usage:", "Content-Signal:", "User-agent: *", "User-agent: consentcrawl",
    "Allow: /", "Disallow: /", "\n", "/", "*", "$", "#", "tdm-reservation", "0", "1", "<meta", "<link", ">", "/>",
    "name=", "content=", "rel=license", "type=application/rsl+xml", "<head>", "<body>", "<!--", "-->", "\x00", "é",
    "\udc80", "License: https://site.example/l.xml",
])
texty = st.one_of(st.text(max_size=300), st.lists(_PIECES, max_size=40).map("".join))
bytesy = st.one_of(st.binary(max_size=400), texty.map(lambda t: t.encode("utf-8", "surrogatepass")))
headers = st.lists(st.tuples(st.sampled_from(["Content-Usage", "content-usage", "Content-Signal", "Content-Signals",
                                              "tdm-reservation", "TDM-Policy", "Link", "X-Other"]), texty),
                   max_size=5)


def _allows(result: SignalResult) -> set[str]:
    return {p for p in BASE_PURPOSES if result.verdict(p) is SignalVerdict.ALLOW}


@FUZZ
@given(bytesy)
def test_tdmrep_file_never_raises_and_allows_only_on_a_matching_zero(body: bytes) -> None:
    parsed = parse_tdmrep_file(body)
    result = site_tdmrep(from_response("tdmrep", "https://site.example/.well-known/tdmrep.json", 200, body, NOW), URL)
    if _allows(result):
        entry = parsed.match(URL)
        assert parsed.valid and entry is not None and entry.reservation == 0


@FUZZ
@given(headers, st.one_of(st.none(), bytesy, texty))
def test_tdmrep_response_allows_only_on_a_zero(lines: list[tuple[str, str]], body: bytes | str | None) -> None:
    result = response_tdmrep(URL, lines, body, fetched_at=NOW)
    if _allows(result):
        assert any(v.strip() == "0" for _k, v in lines) or (body is not None and "0" in str(body))


@FUZZ
@given(st.one_of(bytesy, texty))
def test_content_usage_value_never_raises_and_y_needs_the_token(value: bytes | str) -> None:
    prefs = parse_content_usage(value)
    for label, answer in prefs.labels.items():
        assert answer in ("y", "n", None)
        if answer == "y":
            raw = value.decode("latin-1") if isinstance(value, bytes) else value
            assert label in raw and "=y" in raw.replace(" ", "")


@FUZZ
@given(headers)
def test_content_usage_header_allows_only_with_y(lines: list[tuple[str, str]]) -> None:
    result = response_content_usage(URL, lines, fetched_at=NOW)
    if _allows(result):
        assert any(k.lower() == "content-usage" and "=y" in v for k, v in lines)


@FUZZ
@given(texty)
def test_content_signal_never_raises_and_yes_needs_a_yes(value: str) -> None:
    parsed = parse_content_signal(value)
    if any(parsed.labels.values()):
        assert "=y" in value.lower().replace(" ", "").replace("\t", "")
    result = response_content_signal(URL, [("Content-Signal", value)], fetched_at=NOW)
    assert _allows(result) <= {"search-indexing", "ai-input", "ai-training"}


@FUZZ
@given(bytesy, st.sampled_from(["consentcrawl", "ExampleBot", ""]))
def test_robots_embedded_signals_never_raise_on_any_robots_txt(body: bytes, token: str) -> None:
    robots = robots_response("https://site.example/robots.txt", 200, body, NOW)
    usage = site_content_usage(robots, URL, token or "consentcrawl")
    signal = site_content_signal(robots, token or "consentcrawl")
    text = body.decode("utf-8", "replace").lower()
    if _allows(usage):
        assert "content-usage" in text and "=y" in text
    if _allows(signal):
        assert "content-signal" in text and "=y" in text


@FUZZ
@given(bytesy)
def test_ai_txt_never_raises_and_never_allows(body: bytes) -> None:
    parse_ai_txt(body)
    result = site_ai_txt(from_response("ai-txt", "https://site.example/ai.txt", 200, body, NOW), URL, "consentcrawl")
    assert not _allows(result)
    assert {f.verdict for f in result.findings} <= {SignalVerdict.DENY}


_LINK = RslLink("https://site.example/license.xml", Level.SITE, "https://site.example/robots.txt", "line 1", "")


@FUZZ
@given(bytesy)
def test_rsl_garbage_never_raises_and_never_allows(body: bytes) -> None:
    document = parse_rsl(body)
    result = site_rsl(from_response("rsl", _LINK.url, 200, body, NOW), URL, _LINK)
    if document.error is not None:
        assert result.unavailable is not None  # unreadable terms deny as unavailable
    assert not _allows(result) or b"rslstandard.org/rsl" in body or b"<rsl" in body


_TOKENS = st.lists(st.sampled_from(["all", "ai-all", "ai-train", "ai-input", "ai-index", "search", "commercial",
                                    "education", "junk", ",", " "]), max_size=6).map(" ".join)


_PAYMENTS = st.sampled_from(["", '<payment type="purchase"/>', '<payment type="free"/>', "<payment/>"])


@FUZZ
@given(st.sampled_from(["permits", "prohibits"]), st.sampled_from(["usage", "user", "geo", "", "USAGE"]), _TOKENS,
       st.sampled_from(["", ' server="https://lic.example/"']), _PAYMENTS)
def test_rsl_documents_allow_only_what_they_permit(element: str, kind: str, tokens: str, server: str,
                                                   payment: str) -> None:
    body = (f'<rsl xmlns="https://rslstandard.org/rsl"><content url="/"{server}><license>'
            f'<{element} type="{kind}">{tokens}</{element}>{payment}</license></content></rsl>').encode()
    result = site_rsl(from_response("rsl", _LINK.url, 200, body, NOW), URL, _LINK)
    allowed = _allows(result)
    if server or payment in ('<payment type="purchase"/>', "<payment/>"):
        assert not allowed
    if element == "prohibits" and kind.lower() in ("usage", "") and "all" in tokens.split():
        assert not allowed & {"ai-training", "ai-input", "search-indexing"}
    assert "commercial-profiling" not in allowed


@FUZZ
@given(headers, st.one_of(st.none(), bytesy, texty))
def test_discovery_and_head_scan_never_raise(lines: list[tuple[str, str]], body: bytes | str | None) -> None:
    for link in response_rsl_links(URL, lines, body):
        assert link.url.startswith(("http://", "https://"))
    list(head_tags(body))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(sorted(BASE_PURPOSES)), st.sampled_from(list(SignalVerdict))),
                max_size=6), st.sampled_from(sorted(BASE_PURPOSES)), st.booleans())
def test_combine_always_concludes(said: list[tuple[str, SignalVerdict]], purpose: str, before: bool) -> None:
    from consentcrawl.signals.base import Finding, Statement

    statement = Statement("content-signal", Level.SITE, "https://site.example/robots.txt", "line 1", "x", NOW)
    result = SignalResult("content-signal", Level.SITE, tuple(Finding(p, v, statement) for p, v in said))
    decision = combine(purpose, [result], before_fetch=before)
    assert decision.verdict in (SignalVerdict.ALLOW, SignalVerdict.DENY)
    if any(p == purpose and v is SignalVerdict.DENY for p, v in said):
        assert decision.reason == "terms.signal.content-signal"


_PATHS = st.one_of(st.text(max_size=40).map(lambda t: "/" + t), st.lists(_PIECES, max_size=8).map("".join))


@FUZZ
@given(bytesy, bytesy, bytesy, bytesy, st.lists(_PATHS, min_size=1, max_size=4))
def test_the_memo_key_never_raises_on_any_files(robots: bytes, tdmrep: bytes, ai_txt: bytes, licence: bytes,
                                                paths: list[str]) -> None:
    """:class:`PathKey` parses every path-scoped file once and selects in each for any URL: never raises, and the
    same URL always gets the same key."""
    from consentcrawl.signals.evaluate import PathKey, SiteFiles

    body = b"License: https://site.example/l.xml\n" + robots
    files = SiteFiles(robots_response("https://site.example/robots.txt", 200, body, NOW),
                      from_response("tdmrep", "https://site.example/.well-known/tdmrep.json", 200, tdmrep, NOW),
                      from_response("ai-txt", "https://site.example/ai.txt", 200, ai_txt, NOW),
                      {"https://site.example/l.xml": from_response("rsl", "https://site.example/l.xml", 200, licence,
                                                                   NOW)})
    keyer = PathKey(files, "consentcrawl")
    for path in paths:
        url = "https://site.example" + path
        key = keyer.key(url)
        hash(key)
        assert PathKey(files, "consentcrawl").key(url) == key
