"""The robots tags' rows of the operator-signal conformance table (issue #13), through ``consentcrawl check --json
--fetch`` against a loopback server: ``noml``, ``<meta http-equiv="X-Robots-Tag">``, the ``Robots-Tag`` structured
form's edge cases, scoping, rules with a colon, union of lines. Every purpose's default is "allow" here, so an
allow row is the tags saying nothing and a deny row is the tags' own deny.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_signals_options import Site, _check

ALLOW_ALL = {"CONSENTCRAWL_PURPOSE_DEFAULTS": {p: "allow" for p in (
    "ai-training", "ai-input", "commercial-profiling", "search-indexing", "research", "archiving")}}
TAG = "response.robots-tag"
META = "response.meta-robots"


def head(tag: str) -> str:
    return f"<html><head>{tag}</head><body>text</body></html>"


#: (id, response headers, HTML or None, purpose, expected reason or None for an allow)
ROWS: list[tuple[str, list[tuple[str, str]], str | None, str, str | None]] = [
    ("noml-header", [("X-Robots-Tag", "noml")], None, "ai-training", TAG),
    ("noml-says-nothing-about-search", [("X-Robots-Tag", "noml")], None, "search-indexing", None),
    ("noml-scoped-to-us", [("X-Robots-Tag", "ConsentCrawl/2.0: noml")], None, "ai-training", TAG),
    ("noml-scoped-to-another-bot", [("X-Robots-Tag", "otherbot: noml")], None, "ai-training", None),
    ("noimageai", [("X-Robots-Tag", "noimageai")], None, "ai-training", TAG),
    ("noarchive-is-no-ai-use", [("X-Robots-Tag", "noarchive")], None, "ai-input", TAG),
    ("colon-rule-is-not-an-agent", [("X-Robots-Tag", "max-snippet: 50, noai")], None, "ai-training", TAG),
    ("unavailable-after-past", [("X-Robots-Tag", "unavailable_after: 25 Jun 2010 15:00:00 PST")], None,
     "search-indexing", TAG),
    ("unavailable-after-future", [("X-Robots-Tag", "unavailable_after: 2030-01-01")], None, "search-indexing",
     None),
    ("lines-are-unioned", [("X-Robots-Tag", "noindex"), ("X-Robots-Tag", "consentcrawl: index, follow")], None,
     "search-indexing", TAG),
    ("meta-http-equiv", [], head('<meta http-equiv="X-Robots-Tag" content="noai">'), "ai-training", META),
    ("meta-http-equiv-scoped-other", [], head('<meta http-equiv="x-robots-tag" content="otherbot: noai">'),
     "ai-training", None),
    ("meta-http-equiv-scoped-us", [], head('<meta http-equiv="X-Robots-Tag" content="consentcrawl: noml">'),
     "ai-training", META),
    ("meta-http-equiv-other-header", [], head('<meta http-equiv="refresh" content="noai">'), "ai-training", None),
    ("meta-in-body", [], '<html><head></head><body><meta name="robots" content="noai"></body></html>',
     "ai-training", META),  # a spider's .css("meta[name=robots]") finds it there
    ("meta-in-body-comment-ignored", [],
     '<html><head></head><body><!-- <meta name="robots" content="noai"> --></body></html>', "ai-training", None),
    ("meta-our-token", [], head('<meta name="ConsentCrawl" content="NOAI">'), "ai-training", META),
    ("robots-tag-star", [("Robots-Tag", "*;noai")], None, "ai-training", TAG),
    ("robots-tag-other-bot", [("Robots-Tag", "otherbot;noai")], None, "ai-training", None),
    ("robots-tag-inner-list", [("Robots-Tag", "(otherbot ConsentCrawl);noml")], None, "ai-training", TAG),
    ("robots-tag-string-token", [("Robots-Tag", '"consentcrawl";noai')], None, "ai-training", TAG),
    ("robots-tag-false-parameter", [("Robots-Tag", "consentcrawl;noai=?0")], None, "ai-training", None),
    ("robots-tag-bare-rule", [("Robots-Tag", "noai")], None, "ai-training", TAG),
    ("robots-tag-draft-trailing-semicolon", [("Robots-Tag", "*;noindex;nosnippet, ExampleBot;")], None,
     "search-indexing", TAG),
    ("robots-tag-malformed-line-keeps-others", [("Robots-Tag", "(a;noai"), ("Robots-Tag", "*;noml")], None,
     "ai-training", TAG),
    ("robots-tag-valued-rule", [("Robots-Tag", 'consentcrawl;max-snippet=50;unavailable_after="2010-06-25"')],
     None, "search-indexing", TAG),
    # the structured form's own date type, RFC 9651 §3.3.7: seconds since 1970 (2010-06-25, then 2100-01-01)
    ("robots-tag-sf-date-past", [("Robots-Tag", "consentcrawl;unavailable_after=@1277478000")], None,
     "search-indexing", TAG),
    ("robots-tag-sf-date-future", [("Robots-Tag", "*;unavailable_after=@4102444800")], None, "search-indexing",
     None),
    ("robots-tag-upper-case-key-read-leniently", [("Robots-Tag", "*;NoIndex")], None, "search-indexing", TAG),
    ("robots-tag-trailing-comma-read-leniently", [("Robots-Tag", "ConsentCrawl;noai,")], None, "ai-training", TAG),
    ("robots-tag-scoped-never-relaxes", [("Robots-Tag", "*;noindex, consentcrawl;index")], None,
     "search-indexing", TAG),
]


@pytest.mark.parametrize(("headers", "html", "purpose", "reason"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_robots_tag_row_through_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str], headers: list[tuple[str, str]],
                                      html: str | None, purpose: str, reason: str | None) -> None:
    site = Site(pages={"/a": headers})
    if html is not None:
        site.bodies = {"/a": html}
    code, decision, err, pages = _check(tmp_path, monkeypatch, capsys, site, "/a", purpose, ALLOW_ALL)
    assert decision is not None, err
    assert pages == ["/a"]  # response-level: decided after the fetch
    assert (decision["verdict"], decision["reason"] if reason else None) == ("deny" if reason else "allow", reason)
    assert code == (1 if reason else 0)
    if reason:  # the evidence names the directive and the raw header line or tag
        directives = [e for e in decision["evidence"] if "directive" in e]
        assert directives and all(e["raw"] for e in directives), decision["evidence"]
