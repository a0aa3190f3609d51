"""Review 18: leaks found attacking the session's head scan, compressed signal files, store checks and add-on."""

from __future__ import annotations

from pathlib import Path

import pytest
from scrapy.http.headers import Headers
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.middlewares import ConsentDownloaderMiddleware, ConsentScheduleGuard  # also a project's own names
from consentcrawl.pagehead import head_tags
from consentcrawl.purge.onclose import PurgeOnClose
from consentcrawl.signals.base import SignalVerdict
from consentcrawl.signals.tdmrep import response_tdmrep
from tests.test_leaks_perf import assert_reserved_pages_denied

RESERVED = '<meta name="tdm-reservation" content="1">'


@pytest.mark.parametrize("doc", [
    "<script></script\v><!--</script>" + RESERVED,   # a vertical tab ends no script: the <!-- is script text
    "<style></style\v><!--</style>" + RESERVED,
    "<title></title\v><!--</title>" + RESERVED,
    "<textarea></textarea\v><!--</textarea>" + RESERVED,
    "<script><!--<script></script\v></script><!--</script>" + RESERVED,  # double escaped: ends the inner
])
def test_a_vertical_tab_is_not_white_space_to_the_head_scan(doc: str) -> None:
    """The HTML tokenizer (and libxml2, the parser of Scrapy's selectors) has four white space characters and
    space; ``re``'s ``\\s`` has the vertical tab too. Read as white space, ``</script\\v>`` ended the script for
    the scan, and the ``<!--`` in the script's text hid the page's TDM reservation the spider's ``.css()`` reads."""
    from scrapy import Selector

    assert Selector(text=doc).xpath("//meta[@name='tdm-reservation']/@content").getall() == ["1"]
    assert [dict(t.attrs) for t in head_tags(doc.encode())] == [{"name": "tdm-reservation", "content": "1"}]


@pytest.mark.parametrize("meta", ['<meta name="tdm-reservation"\vcontent="0">',
                                  "<meta name=tdm-reservation\vcontent=0>",
                                  '<meta\vname="tdm-reservation" content="0">'])
def test_a_meta_with_a_vertical_tab_does_not_lift_the_reservation(meta: str) -> None:
    """``<meta name="tdm-reservation"\\vcontent="0">`` has no ``content`` to an HTML parser (the attribute is named
    ``\\vcontent``): read as 0, the page's meta (which takes precedence) lifted the header's reservation."""
    result = response_tdmrep("https://s.example/a", Headers({"TDM-Reservation": "1"}), f"<head>{meta}</head>".encode())
    assert result.verdict("research") is SignalVerdict.DENY


@pytest.mark.parametrize("opener", ["<script/>", '<script src="/a.js" />', "<style/>", "<title/>", "<textarea/>",
                                    "<iframe/>", "<xmp/>", "<noembed/>", "<noframes/>", "<plaintext/>"])
def test_a_raw_text_element_closed_by_its_start_tag_hides_no_signal_tag(opener: str) -> None:
    """libxml2 (the parser of Scrapy's selectors) takes ``<script/>`` for an empty element, as any ``<x/>``, and
    reads the tags after it: the scan read them as the script's text, and the page's TDM reservation and RSL licence
    link were not read while the spider's ``.css()`` finds them. A ``/`` ending an unquoted value closes nothing."""
    from scrapy.http import HtmlResponse

    close = "</" + opener[1:].split("/")[0].split(" ")[0] + ">"
    doc = f'<head>{opener}{RESERVED}<link rel="license" href="/l.xml">{close}</head>'.encode()
    spider = HtmlResponse("https://s.example/a", body=doc)
    assert spider.css("meta[name=tdm-reservation]::attr(content)").getall() == ["1"]
    assert [(t.tag, dict(t.attrs)) for t in head_tags(doc)] == [
        ("meta", {"name": "tdm-reservation", "content": "1"}), ("link", {"rel": "license", "href": "/l.xml"})]
    unclosed = f"<head><script x=a/>{RESERVED}</script></head>".encode()  # the value is "a/": the script is open
    assert HtmlResponse("https://s.example/a", body=unclosed).css("meta").getall() == []
    assert head_tags(unclosed) == ()


def test_plaintext_makes_the_rest_text_and_a_meta_there_lifts_no_reservation() -> None:
    """After ``<plaintext>`` every byte is text, to the spider's parser as to a browser: a ``tdm-reservation`` of 0
    there is no meta, and it must not lift the header's reservation."""
    body = b"<head><plaintext><meta name=tdm-reservation content=0></head>"
    assert head_tags(body) == ()
    result = response_tdmrep("https://s.example/a", Headers({"TDM-Reservation": "1"}), body)
    assert result.verdict("research") is SignalVerdict.DENY


def test_a_profiles_og_description_after_its_html_end_tag_is_read() -> None:
    """libxml2 puts markup after ``</html>`` in a second root element, where a spider's ``.xpath("//meta")`` reads
    it and the root's ``.iter("meta")`` did not: the bio's #nobot was not read and the profile page was allowed."""
    from scrapy.http import HtmlResponse

    from consentcrawl.refusals.forms import read_html_profile

    page = (b'<html><head><meta property="og:type" content="profile"><title>A</title></head><body><p>hi</p></body>'
            b'</html><meta property="og:description" content="Alice. #nobot">')
    spider = HtmlResponse("https://social.example/@alice", body=page)
    assert spider.xpath("//meta[@property='og:description']/@content").get() == "Alice. #nobot"
    assert [f.field for f in read_html_profile(page, "https://social.example/@alice", "nobot")] == ["og:description"]


def test_a_component_taken_out_under_another_import_path_is_put_back() -> None:
    """Scrapy tells a component dict's entries apart by the object they load: ``myproject.ConsentScheduleGuard:
    None`` (imported there from consentcrawl) made the add-on's ``setdefault`` add nothing, while its put-back
    compared paths as text and found nothing taken out: the request phase, the schedule guard and PurgeOnClose
    stayed out of the crawl."""
    from scrapy.settings import Settings
    from scrapy.utils.conf import build_component_list
    from scrapy.utils.misc import load_object

    from consentcrawl.addon import Addon

    here = __name__
    settings = Settings({"DOWNLOADER_MIDDLEWARES": {f"{here}.ConsentDownloaderMiddleware": None},
                         "EXTENSIONS": {f"{here}.ConsentScheduleGuard": None, f"{here}.PurgeOnClose": None}})
    Addon().update_settings(settings)
    middlewares = [load_object(c) for c in build_component_list(settings.getwithbase("DOWNLOADER_MIDDLEWARES"))]
    extensions = [load_object(c) for c in build_component_list(settings.getwithbase("EXTENSIONS"))]
    assert ConsentDownloaderMiddleware in middlewares
    assert ConsentScheduleGuard in extensions and PurgeOnClose in extensions


class _Offsets:
    """A change-feed consumer's position, an object of the store's own class (compared by identity)."""

    def __init__(self) -> None:
        self.read = 0


class _InPlaceStore:
    """A store whose version is advanced in place: a tuple holding a list, or an object of its own class."""

    def __init__(self, version: object) -> None:
        self.version = version

    def lookup(self, platform: str, subject: str) -> list[object]:
        return []


@pytest.mark.parametrize("make, advance", [
    (lambda: ("epoch-1", [0]), lambda v: v[1].__setitem__(0, 1)),
    (_Offsets, lambda v: setattr(v, "read", v.read + 1)),
], ids=["tuple-holding-a-list", "object"])
def test_a_version_changed_in_place_is_not_the_same_however_it_is_held(make: object, advance: object) -> None:
    """A tuple is hashable by type, yet ``("epoch-1", offsets)`` changes when its list does; an object of the store's
    class is hashable and equal to itself whatever it holds. Either, advanced in place, compared equal to the
    version a decision was remembered at (only a type that is not hashable was copied), so a withdrawal read since
    changed nothing the cache could see. Both are now copied as read (an object compared by identity is then a
    change at every read: nothing it answered is reused, as for a store without a version)."""
    from consentcrawl.consent.adapt import as_async_store

    version = make()  # type: ignore[operator]
    store = as_async_store(_InPlaceStore(version))
    before = store.version
    if isinstance(version, tuple):  # compared by what it holds: unchanged, the remembered decision holds
        assert store.version == before
    advance(version)  # type: ignore[operator]
    assert store.version != before


def test_a_card_written_again_inside_a_card_names_the_page_with_its_url() -> None:
    """A theme's ``h-card`` inside the platform's ``vcard`` is that card written again, its fields the card's; its
    URL was dropped, so the ``vcard`` named no URL and, beside a sidebar card naming the page, was not read: the
    bio's #nobot the spider's ``.css(".h-card .p-note")`` reads was not. Its URL naming the page makes the card
    the page's; one naming another page still makes it no one else's."""
    from scrapy.http import HtmlResponse

    from consentcrawl.refusals.forms import read_html_profile

    url = "https://people.example/u/alice"
    page = (b'<html><body><div class="h-card"><a class="u-url p-name" href="/u/alice">Alice</a></div>'
            b'<div class="vcard"><div class="h-card"><a class="u-url" href="/u/alice"></a>'
            b'<p class="p-note">Bio #nobot</p></div></div></body></html>')
    assert HtmlResponse(url, body=page).css(".h-card .p-note::text").getall() == ["Bio #nobot"]
    assert [f.field for f in read_html_profile(page, url, "nobot")] == ["vcard p-note"]
    alone = (b'<html><body><div class="vcard"><div class="h-card"><a class="u-url" href="/u/bob"></a>'
             b'<p class="p-note">#nobot</p></div></div></body></html>')  # the only card: read, whatever it names
    assert [f.field for f in read_html_profile(alone, url, "nobot")] == ["vcard p-note"]


@deferred_f_from_coro_f
async def test_a_crawl_for_training_denies_the_pages_whose_reservation_the_scan_missed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crawl for AI training of pages reserving TDM in their head after ``</script\\v>`` and a ``<!--`` in the
    script's text, after a ``<script src=... />`` and after a ``<title/>``: each reached the callback (the scan read
    its reservation as script or title text, the spider's parser as a tag). Now the server served them (the decision
    is the response phase's), no callback ran and each is denied ``response.signal.tdmrep``; ``/ok`` is the control."""
    heads = {"/vt": "<script>var a;</script\v><!--</script>", "/selfclosed": '<script src="/a.js" />',
             "/title": "<title/>"}
    await assert_reserved_pages_denied(
        {path: ("text/html; charset=utf-8",
                f"<html><head>{head}{RESERVED}</head><body><p class=name>x</p></body></html>".encode())
         for path, head in heads.items()}, tmp_path, monkeypatch)


@pytest.mark.parametrize("space", ["\xa0", "\v", "\f", "\u2003"])
def test_a_class_split_at_a_space_the_spider_does_not_split_at_makes_no_card(space: str) -> None:
    """``class="h-card\\xa0"`` is no card to the spider's ``.css(".h-card")`` (XPath's ``normalize-space`` splits at
    space, tab, CR and LF only), but ``str.split()`` made it one: naming the page, it was taken for the person's
    card, and the page's one real card, naming no URL, with its #nobot, was not read."""
    from scrapy.http import HtmlResponse

    from consentcrawl.refusals.forms import read_html_profile

    url = "https://people.example/u/alice"
    page = (f'<html><body><div class="h-card{space}"><a class="u-url p-name" href="/u/alice">Alice</a></div>'
            '<div class="h-card"><p class="p-note">Bio #nobot</p></div></body></html>').encode()
    assert HtmlResponse(url, body=page).css(".h-card .p-note::text").getall() == ["Bio #nobot"]
    assert len(HtmlResponse(url, body=page).css(".h-card")) == 1
    assert [f.field for f in read_html_profile(page, url, "nobot")] == ["h-card p-note"]
