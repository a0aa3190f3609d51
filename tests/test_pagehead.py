"""One scan of a page's head for every reader: meta robots and the operator signals read the same tags."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentcrawl import pagehead
from consentcrawl.pagehead import head_tags, meta_tags
from consentcrawl.robots.meta import parse_meta_robots
from consentcrawl.signals.evaluate import response_silent

RESERVED = '<html><head><meta name="tdm-reservation" content="1"><meta name="robots" content="noai"></head></html>'


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_head_in_utf16_or_utf32_is_read_by_every_reader(codec: str) -> None:
    body = RESERVED.encode(codec)
    assert [(t.tag, t.attrs.get("name")) for t in head_tags(body, codec)] == [
        ("meta", "tdm-reservation"), ("meta", "robots")]
    assert not response_silent({}, body, codec)  # the signals see the reservation (they did not before)
    assert [d.name for d in parse_meta_robots(body, "consentcrawl", codec)] == ["noai"]


def test_attribute_names_are_ascii_lower_cased_and_values_unescaped_as_html_reads_them() -> None:
    body = b'<head><META NAME="&#114;obots" Content="noindex" name="other"><link REL=license href="/l.xml"></head>'
    tags = head_tags(body)
    assert tags[0].attrs == {"name": "robots", "content": "noindex"}  # the first of repeated attributes
    assert tags[1].attrs == {"rel": "license", "href": "/l.xml"}
    assert [d.name for d in parse_meta_robots(body, "consentcrawl")] == ["noindex"]  # an escaped name counts


def test_a_body_is_scanned_once_however_many_readers_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[object] = []
    real = pagehead._scan

    def counting(body: object, encoding: str) -> tuple[pagehead.HeadTag, ...]:
        scans.append(body)
        return real(body, encoding)

    monkeypatch.setattr(pagehead, "_scan", counting)
    body = RESERVED.encode("utf-8") + b"<!-- one of a kind -->"
    parse_meta_robots(body, "consentcrawl")
    response_silent({}, body)
    head_tags(body)
    assert len(scans) == 1
    head_tags(body, "latin-1")  # another encoding is another reading
    assert len(scans) == 2


def test_the_shared_scan_cannot_be_changed_by_a_reader() -> None:
    tags = head_tags(b'<head><meta name="robots" content="noindex"></head><!-- read-only -->')
    with pytest.raises(TypeError):
        tags[0].attrs["content"] = "all"  # type: ignore[index]


def test_a_mutable_buffer_is_read_as_it_is_now() -> None:
    buffer = bytearray(b'<head><meta name="robots" content="all"></head>')
    assert head_tags(buffer)[0].attrs["content"] == "all"
    buffer[:] = b'<head><meta name="robots" content="noindex"></head>'
    assert head_tags(buffer)[0].attrs["content"] == "noindex"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    '<meta name="robots" content="noai">', '<meta name="tdm-reservation" content="1">', "<!--", "-->",
    "<script>", "</script>", "<body>", '<link rel="license" href="/x">', "<meta", ">", '"', "'", "&amp;", " ",
    "<title>", "</title>", '<meta http-equiv="X-Robots-Tag" content="noindex">']), max_size=12),
    st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_the_readers_agree_with_the_one_scan(pieces: list[str], codec: str) -> None:
    """Meta robots finds a directive only where the scan has a robots meta tag (head or body), and the signals are
    silent only where the head's scan has no tdm- meta and no licence link: no reader sees a page of its own."""
    body = "".join(pieces).encode(codec)
    tags = head_tags(body, codec)
    metas = meta_tags(body, codec)
    assert metas[:len([t for t in tags if t.tag == "meta"])] == tuple(t for t in tags if t.tag == "meta")
    robots = any(t.attrs.get("content") is not None and (
        t.attrs.get("name", "").strip().lower() == "robots"
        or t.attrs.get("http-equiv", "").strip().lower() == "x-robots-tag") for t in metas)
    assert bool(parse_meta_robots(body, "consentcrawl", codec)) == robots
    speaks = any((t.tag == "link" and "license" in t.attrs.get("rel", "").lower())
                 or (t.tag == "meta" and t.attrs.get("name", "").strip().lower().startswith("tdm-")) for t in tags)
    assert response_silent({}, body, codec) == (not speaks)


#: page -> the meta robots directives a spider's ``.css("meta[name=robots]")`` (lxml) would find there too
IN_THE_BODY = {
    '<html><head></head><body><p>x</p><meta name="robots" content="noindex"></body></html>': ["noindex"],
    '<html><head><meta name="robots" content="noai"></head><body><div><META NAME=robots CONTENT=noindex></div>':
        ["noai", "noindex"],
    '<html><body><noscript><meta name="robots" content="noindex"></noscript></body></html>': ["noindex"],
    '<html><body><svg><meta name="robots" content="noindex"></svg></body></html>': ["noindex"],
    '<html><body><p>x</p></body></html><meta name="robots" content="noindex">': ["noindex"],
    # not tags to the spider's parser either
    '<html><body><!-- <meta name="robots" content="noindex"> --></body></html>': [],
    '<html><body><script>"<meta name=robots content=noindex>"</script></body></html>': [],
    '<html><body><textarea><meta name="robots" content="noindex"></textarea></body></html>': [],
    '<html><body><p>&lt;meta name="robots" content="noindex"&gt;</p></body></html>': [],
}


@pytest.mark.parametrize("page", sorted(IN_THE_BODY))
@pytest.mark.parametrize("codec", ["utf-8", "utf-16", "latin-1"])
def test_meta_robots_in_the_body_is_read_as_the_spiders_selector_finds_it(page: str, codec: str) -> None:
    from scrapy import Selector

    found = [d.name for d in parse_meta_robots(page.encode(codec), "consentcrawl", codec)]
    assert found == IN_THE_BODY[page]
    spider = Selector(text=page).xpath(
        "//meta[translate(@name, 'ROBTS', 'robts')='robots']/@content").getall()  # what lxml finds, in any case
    assert sorted(c.strip().lower() for c in spider) == sorted(IN_THE_BODY[page])


def test_a_body_with_no_meta_is_searched_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """After ``<body``, one search for ``<meta`` decides whether the rest is read with the tokenizer: a large
    page with none is not tokenized a second time."""
    windows: list[tuple[bool, bytes]] = []  # (a head's scan, the start of what it read)
    real = pagehead._scan_window

    def counting(head: bytes, codec: str, pos: int = 0, stop_at_body: bool = True) -> object:
        windows.append((stop_at_body, head[pos:pos + 5]))
        return real(head, codec, pos, stop_at_body)

    monkeypatch.setattr(pagehead, "_scan_window", counting)
    page = b"<html><head><title>t</title></head><body>" + b"<p><a href='/x'>link</a></p>" * 40000
    assert parse_meta_robots(page, "consentcrawl") == []
    assert windows == [(True, b"<html")]  # the head's scan only
    later = page + b'<meta name="robots" content="noindex"></body></html>'
    assert [d.name for d in parse_meta_robots(later, "consentcrawl")] == ["noindex"]
    # the head's scan, then the body's from where it stopped
    assert windows[1:] == [(True, b"<html"), (False, b"<body")]


#: markup the scan may read otherwise than the spider's parser (bogus comments, comment and raw-text openers
#: inside attribute values, unclosed elements)
TRICKY = ['<meta name="robots" content="noindex">', "<!--", "-->", "<script>", "</script>", "<body>", "</body>",
          "<head>", "</head>", "<title>", "</title>", "<textarea>", "</textarea>", "<p>", "x", "<style>", "</style>",
          "<svg>", "</svg>", "<noscript>", "</noscript>", '"', "'", "<div class='", ">", "<template>", "</template>",
          "<iframe>", "</iframe>", "<plaintext>", "<![CDATA[", "]]>", "<?", "<!-->", "<!--->", "--!>", "</ ", "<!x>",
          '<div title="<!--">', "<div title='<script>'>", "</>", "<META NAME=robots content=noindex>", "<xmp>",
          "</xmp>", "<script/>", "<title x=y />", "</script\v>", "</style\v>", "<script x=a/>", "</html>"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TRICKY), max_size=14))
def test_every_meta_robots_the_spiders_selector_finds_is_read(pieces: list[str]) -> None:
    """Where the scan and lxml (the parser of Scrapy's selectors) read the markup differently, the tag lxml finds is
    read all the same: a ``<meta`` the scan skipped makes the parser decide too. Reading more is allowed (a denial
    too many), reading less is not."""
    from scrapy import Selector

    doc = "".join(pieces)
    spider = Selector(text=doc or " ").xpath("//meta[translate(@name, 'ROBTS', 'robts')='robots']/@content").getall()
    if spider:
        assert parse_meta_robots(doc.encode(), "consentcrawl"), (doc, spider)


#: the tags the operator signals read in a head (a TDM reservation, an RSL licence link), among markup the scan may
#: read otherwise than the spider's parser (:data:`TRICKY`, with no ``<body>``: the head is then the whole page)
SIGNAL_TAGS = ['<meta name="tdm-reservation" content="1">', '<link rel="license" href="/l.xml">',
               "<META NAME=tdm-reservation CONTENT=1>", "<LINK REL=license HREF=/l.xml>"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([t for t in TRICKY if t != "<body>"] + SIGNAL_TAGS + ["</script x='", "<!x"]),
                max_size=14))
def test_every_signal_tag_the_spiders_selector_finds_is_read(pieces: list[str]) -> None:
    """The head's scan tokenizes as lxml (the parser of Scrapy's selectors, libxml2's HTML5 tokenizer) does: every
    ``<meta name="tdm-reservation">`` and ``<link rel="license">`` the spider's ``.css()`` finds is a tag of the
    scan (bogus comments, ``<!-->``, comment openers in attribute values and in end tags open nothing, a
    ``</script`` inside a doubly escaped script ends nothing). There is no parser to fall back on here, as there
    is for meta robots."""
    from scrapy import Selector

    doc = "".join(pieces)
    selector = Selector(text=doc or " ")
    spider = ([("meta", m) for m in selector.xpath("//meta[@name='tdm-reservation']/@content").getall()]
              + [("link", h) for h in selector.xpath("//link[@rel='license']/@href").getall()])
    ours = [(t.tag, t.attrs.get("content" if t.tag == "meta" else "href")) for t in head_tags(doc.encode())
            if t.attrs.get("name") == "tdm-reservation" or t.attrs.get("rel") == "license"]
    assert len(ours) >= len(spider), (doc, spider, ours)


def test_a_body_of_microdata_read_in_several_encodings_is_tokenized_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A UTF-16 page is read for meta robots in each encoding a spider may read it in (UTF-16, and its bytes as
    UTF-8 without their NULs): its part from ``<body`` is the same markup in each, so a body of microdata
    ``<meta itemprop>`` is tokenized once, not once per reading (each reading still finds every tag)."""
    from consentcrawl.robots.body import reading_encodings

    monkeypatch.setattr(pagehead, "_body_memo", pagehead.Recent(2))
    bodies: list[int] = []
    real = pagehead._scan_window

    def counting(head: bytes, codec: str, pos: int = 0, stop_at_body: bool = True) -> object:
        if not stop_at_body:
            bodies.append(pos)
        return real(head, codec, pos, stop_at_body)

    monkeypatch.setattr(pagehead, "_scan_window", counting)
    page = ("<html><head><title>once</title></head><body>" + '<div itemscope><meta itemprop="a" content="b"></div>' * 50
            + '<meta name="robots" content="noindex"></body></html>').encode("utf-16")
    encodings = reading_encodings("utf-16", b"text/html; charset=utf-16")
    assert len(encodings) > 1
    for encoding in encodings:
        assert [d.name for d in parse_meta_robots(page, "consentcrawl", encoding)] == ["noindex"], encoding
    assert len(bodies) == 1
