"""Issue #13's additions to the robots tags already read: ``noml`` and ``<meta http-equiv="X-Robots-Tag">``."""

from __future__ import annotations

from datetime import datetime, timezone

from consentcrawl.robots.meta import parse_meta_robots
from consentcrawl.robots.tags import denials, parse_robots_headers

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
TOKEN = "consentcrawl"


def test_noml_denies_ai_training_only() -> None:
    found = parse_robots_headers([("X-Robots-Tag", "noml")], TOKEN)
    assert [d.name for d in denials(found, "ai-training", NOW)] == ["noml"]
    for purpose in ("ai-input", "search-indexing", "research", "archiving", "commercial-profiling"):
        assert denials(found, purpose, NOW) == []


def test_noml_scoped_to_us_or_to_another_bot() -> None:
    ours = parse_robots_headers([("X-Robots-Tag", "consentcrawl: noml")], TOKEN)
    assert denials(ours, "ai-training", NOW)
    other = parse_robots_headers([("X-Robots-Tag", "otherbot: noml")], TOKEN)
    assert not denials(other, "ai-training", NOW)


def page(*tags: str) -> bytes:
    return f"<html><head>{''.join(tags)}</head><body>x</body></html>".encode()


def test_meta_http_equiv_x_robots_tag_is_read_like_the_header() -> None:
    found = parse_meta_robots(page('<meta http-equiv="X-Robots-Tag" content="noindex, noai">'), TOKEN)
    assert [(d.name, d.scope, d.source) for d in found] == [("noindex", None, "meta"), ("noai", None, "meta")]
    assert denials(found, "search-indexing", NOW)


def test_meta_http_equiv_keeps_user_agent_scopes() -> None:
    found = parse_meta_robots(page('<meta http-equiv="x-robots-tag" content="otherbot: noindex, consentcrawl: noml">'),
                              TOKEN)
    assert [(d.name, d.scope) for d in found] == [("noml", "consentcrawl")]
    assert not denials(found, "search-indexing", NOW)
    assert denials(found, "ai-training", NOW)


def test_meta_http_equiv_of_another_header_or_in_a_comment_is_ignored() -> None:
    assert parse_meta_robots(page('<meta http-equiv="refresh" content="noindex">'), TOKEN) == []
    # in the body it is read as in the head (a spider's selector finds it there)
    body = b'<html><head></head><body><meta http-equiv="X-Robots-Tag" content="noindex"></body></html>'
    assert [d.name for d in parse_meta_robots(body, TOKEN)] == ["noindex"]
    assert parse_meta_robots(page('<!-- <meta http-equiv="X-Robots-Tag" content="noindex"> -->'), TOKEN) == []
