"""Whose card a profile page shows: its microformats cards (microformats2 ``h-card`` and microformats1 ``vcard``)
and the fields of the ones that are the page's person's. Pure: no Scrapy, no I/O, no clock.

A page's person is the one its URL names (the adapter checks that); a card on it is theirs when it says so, or
when nothing else can be theirs:

- a top-level card whose URL (``u-url``/``u-uid``, microformats1 ``url``/``uid``) is the page's URL is the
  person's (every such card: a refusal in any of them is theirs), however either is spelled: scheme, case, the
  query parameters the spider added (:func:`_names_page`); a card whose URL lacks one of the page's query
  parameters may name the path's own page instead (``/profile.php`` on ``/profile.php?id=101``), so when no card
  names the page with its whole query, the cards that name no URL are read with those that name it;
- else, a top-level card that names no URL is the person's when it is the only one; with several and none naming
  the page, which one is the person's cannot be told, so all of them are read and a refusal in any of them denies
  the page (:attr:`Cards.certain` false: the page is not taken to show the person's profile);
- a card naming another URL is another person's, and anything inside a nested microformat (an ``h-entry`` the
  person quoted, the ``p-author h-card`` of someone else's post, a ``vcard`` inside a ``hentry``) is not a field
  of the card around it, nor a top-level card; a feed (``h-feed``, ``hfeed``) only gathers the page's posts, so a
  card inside one is still top-level, and an ``h-adr``/``h-geo`` is the card's own address or place;
- a nested card is read as the person's too when it says so or nothing else can be theirs (a spider's
  ``.css(".h-card .p-note")`` reads it wherever it is): it names the page (a post's author card linking the
  profile); it is the ``p-contact`` of a resume; no top-level card can be the person's (there is none, or only
  other people's) and it names no URL (the lone author card of the posts on a profile page); and a card with
  no property class nested in a card (a theme's ``h-card`` inside the platform's ``vcard``) is that card written
  again, its fields the card's.

Microformats1 is read as microformats2 parsers read it for backward compatibility: a ``vcard`` is an ``h-card``
(when the element carries no ``h-*`` class of its own), its ``fn``, ``nickname``, ``note``, ``n``, ``title``,
``role``, ``org``, ``label``, ``category``, ``adr`` and ``geo`` are its text fields. A spider's
``.css(".vcard .note")`` reads a bio written so, and an older platform (or theme) still writes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NamedTuple
from urllib.parse import urljoin

import lxml.etree

from ..urls import canonicalize

__all__ = ["Cards", "page_cards", "text_of", "text_properties"]

_BLOCK = frozenset("address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 h6 "
                   "header hr li main nav ol p pre section table td th tr ul".split())
_SKIP = frozenset({"script", "style", "template", "noscript"})

#: microformats1 roots (a nested one is another thing, as a nested ``h-*`` is)
_MF1_ROOTS = frozenset({"vcard", "hentry", "hreview", "hreview-aggregate", "vevent", "hproduct", "hrecipe",
                        "hresume", "hlisting"})
#: roots that only gather others (a feed of a profile's posts wrapping the page): a card inside one is as
#: top-level as without it, and a post's author card is still inside its post
_FEEDS = frozenset({"h-feed", "hfeed"})
#: roots that are a structured value of the card around them (its address, its place), not another thing
_PARTS = frozenset({"h-adr", "h-geo"})
#: microformats1 property classes a nested card is another thing's property by (a post's author, a resume's
#: contact...): microformats2's are the ``p-``/``u-``/``e-``/``dt-`` classes
_MF1_PROPERTIES = frozenset({"author", "contact", "reviewer", "agent", "attendee", "organizer", "member", "sender",
                             "location", "affiliation"})
#: a resume's roots: its ``p-contact`` card is the person the resume is of
_RESUMES = frozenset({"h-resume", "hresume"})
#: a ``vcard``'s text fields, as the microformats2 property each is read as
_MF1_FIELDS = {"fn": "p-name", "nickname": "p-nickname", "note": "p-note", "n": "p-n", "title": "p-job-title",
               "role": "p-role", "org": "p-org", "label": "p-label", "category": "p-category", "adr": "p-adr",
               "geo": "p-geo"}
_MF1_URLS = {"url": "u-url", "uid": "u-uid"}

#: the white space that separates classes for XPath's ``normalize-space`` (the spider's selectors)
_CLASS_SPACE = re.compile(r"[ \t\r\n]+")
#: elements whose class attribute mentions a card (the class list is checked in Python: a cheap C pre-filter)
_MAYBE_CARDS = lxml.etree.XPath('//*[contains(@class, "h-card") or contains(@class, "vcard")]')


class Card(NamedTuple):
    kind: str  #: ``h-card`` or ``vcard``
    props: list[tuple[str, Any]]  #: (microformats2 property, element)


class Cards(NamedTuple):
    """The cards whose fields are read as the page's person's."""

    cards: list[Card]
    certain: bool  #: they are the person's (a card naming the page, or the only card): the page shows the profile
    of: int  #: how many top-level cards the page has (for the evidence)


def text_of(element: Any) -> str:
    """The text a reader sees in ``element``: block elements apart, inline ones joined, scripts left out."""
    parts: list[str] = []

    def walk(e: Any) -> None:
        tag = e.tag.lower() if isinstance(e.tag, str) else ""
        if tag and tag not in _SKIP:
            block = tag in _BLOCK
            if block:
                parts.append("\n")
            if e.text:
                parts.append(e.text)
            for child in e:
                walk(child)
                if child.tail:
                    parts.append(child.tail)
            if block:
                parts.append("\n")

    walk(element)
    return "".join(parts)


def text_properties(props: list[tuple[str, Any]]) -> list[tuple[str, Any, list[Any]]]:
    """A card's text properties (``p-*``, ``e-*``) as (their classes, element, the properties whose text holds its
    text), outer ones first, read as :func:`text_of` reads them: each element once, whatever the number of its
    property classes (``p-note p-summary``). One inside another (a ``p-category`` inside the ``p-note``) is read on
    its own too: joined to the outer text's words (``driver#nobot``) a tag is no tag there, but a spider reading
    ``.p-category`` reads it; what the outer one already says is not said again (one refusal, one finding). One
    inside a script, a template... of the outer one (whose text :func:`text_of` leaves out) is not held by it."""
    classes: dict[Any, list[str]] = {}
    for cls, e in props:
        if cls.startswith(("p-", "e-")):
            classes.setdefault(e, []).append(cls)
    found = [(" ".join(names), e, _held_by(e, classes)) for e, names in classes.items()]
    return sorted(found, key=lambda prop: len(prop[2]))  # an outer one before those it holds


def _held_by(element: Any, read: dict[Any, list[str]]) -> list[Any]:
    """The elements among ``read`` whose text holds ``element``'s (its ancestors, up to a left-out one)."""
    held: list[Any] = []
    for outer in element.iterancestors():
        if isinstance(outer.tag, str) and outer.tag.lower() in _SKIP:
            break
        if outer in read:
            held.append(outer)
    return held


def _classes(e: Any) -> list[str]:
    """An element's classes as the spider's ``.css(".h-card")`` tells them apart: split at XPath's white space
    (``normalize-space``: space, tab, CR, LF). ``str.split()`` splits at any Unicode space too, so
    ``class="h-card&nbsp;"`` (a no-break space after the class) was a card here and no card to the spider (nor
    to a microformats parser): naming the page, it hid the page's one real card and its refusal."""
    value = e.get("class") if isinstance(e.tag, str) else None
    value = value.strip(" \t\r\n") if value else ""
    return _CLASS_SPACE.split(value) if value else []


def _kind(classes: list[str]) -> str | None:
    """The card an element is the root of: ``h-card``, ``vcard`` (microformats1, on an element with no ``h-*``
    class), or None."""
    if "h-card" in classes:
        return "h-card"
    if "vcard" in classes and not any(c.startswith("h-") for c in classes):
        return "vcard"
    return None


def _is_root(classes: list[str]) -> bool:
    """A microformat root that holds a thing of its own: ``h-*`` (microformats2) or a microformats1 root class,
    a feed aside."""
    return any((c.startswith("h-") or c in _MF1_ROOTS) and c not in _FEEDS and c not in _PARTS for c in classes)


def _is_property(classes: list[str]) -> bool:
    """Whether a nested microformat is a property of the one around it (``p-author h-card``, ``author vcard``)."""
    return any(c.startswith(("p-", "u-", "e-", "dt-")) or c in _MF1_PROPERTIES for c in classes)


def _same_card(classes: list[str]) -> bool:
    """Whether a card nested in a card with no property class is the same card written again (a theme's ``h-card``
    inside the platform's ``vcard``): a child of it, not another person's property. A spider's
    ``.css(".h-card .p-note")`` reads its fields as the page's card's, so they are read as the outer card's."""
    return _kind(classes) is not None and not _is_property(classes)


def _props(card: Any, kind: str) -> Iterator[tuple[str, Any]]:
    """(microformats2 property, element) for each property of ``card``, neither inside nor being a nested
    microformat."""
    stack = list(card)[::-1]
    while stack:
        e = stack.pop()
        classes = _classes(e)
        if classes:
            if _is_root(classes):
                if _same_card(classes):  # its fields are the card's; its URL only where it names the page
                    yield from ((_INNER_URLS.get(c, c), f) for c, f in _props(e, _kind(classes) or kind))
                continue  # a nested microformat (``p-author h-card``) is another person's or another thing's
            read = False
            for c in classes:
                if kind == "h-card" and c.startswith(("p-", "e-", "u-")):
                    yield c, e
                    read = True
                elif kind == "vcard" and (c in _MF1_FIELDS or c in _MF1_URLS):
                    yield _MF1_FIELDS.get(c) or _MF1_URLS[c], e
                    read = True
            if read and not _PARTS.isdisjoint(classes):
                continue  # a ``p-adr h-adr`` is read as a whole: its text holds its own fields
        if len(e):
            stack.extend(list(e)[::-1])


def _names_page(card_url: str, page_url: str, case_sensitive: bool = False) -> bool | None:
    """Whether a card's URL names the page: the same host and path (canonical, in any case), whatever the scheme,
    and no query parameter the page's URL lacks. The site writes its card's URL as it likes (absolute, https, the
    profile without the query a spider added): a card taken for another person's is a card whose refusal is not
    read, so a spelling the spider chose never makes the person's own card someone else's. True: with each of the
    page's query parameters; False: without some (``/profile.php`` on ``/profile.php?id=101``: the path's own page,
    perhaps, not this one); None: it does not name the page. On a ``case_sensitive`` platform a path the same but
    for case may name another person (``/u/Alice`` on ``/u/alice``): it is False too, so the card is read (a
    refusal in it denies) and so are the cards that name no URL, among which the person's own may be: taken for
    the page's one card, it would hide theirs."""
    try:
        card, page = canonicalize(card_url), canonicalize(page_url)
    except ValueError:
        return None
    if card.host != page.host or card.path.lower() != page.path.lower():
        return None
    have, want = set(card.query.split("&")) - {""}, set(page.query.split("&")) - {""}
    if not have <= want:
        return None
    return have == want and not (case_sensitive and card.path != page.path)


#: the URL of a card written again inside the card (:func:`_same_card`), as :func:`_props` yields it
_INNER_URLS = {"u-url": "inner-u-url", "u-uid": "inner-u-uid", "inner-u-url": "inner-u-url",
               "inner-u-uid": "inner-u-uid"}


def _card_urls(props: list[tuple[str, Any]], base: str) -> list[str]:
    """The card's URLs; a card written again inside it adds its URL when it names the page (``base``): the card
    names the page then, and is the person's beside another naming it (``.css(".h-card .p-note")`` reads both),
    while a URL of another page there makes the card no one else's."""
    urls = []
    for cls, e in props:
        if cls in ("u-url", "u-uid", "inner-u-url", "inner-u-uid"):
            value = e.get("href") or e.get("src") or e.get("value") or text_of(e)
            if value:
                url = urljoin(base, value.strip())
                if not cls.startswith("inner-") or _names_page(url, base) is not None:
                    urls.append(url)
    return urls


def page_cards(doc: Any, url: str, case_sensitive: bool = False) -> Cards:
    """The cards of ``doc`` (a parsed page fetched as ``url``) read as its person's (see the module's docstring);
    ``case_sensitive``: the platform's people differ by case (:func:`_names_page`)."""
    found: list[Any] = _MAYBE_CARDS(doc)  # type: ignore[assignment]  # an element-set XPath: a list of elements
    cards: list[tuple[Card, list[str]]] = []
    nested: list[tuple[Card, list[str], bool]] = []  # (card, its URLs, a resume's contact)
    for element in found:
        classes = _classes(element)
        kind = _kind(classes)
        if kind is None:
            continue
        outer = next((a for a in element.iterancestors() if _is_root(_classes(a))), None)
        props = list(_props(element, kind))
        if outer is None:
            cards.append((Card(kind, props), _card_urls(props, url)))
        elif not (_same_card(classes) and _kind(_classes(outer)) is not None):  # else read with the card around it
            contact = ("p-contact" in classes or "contact" in classes) and bool(_RESUMES & set(_classes(outer)))
            nested.append((Card(kind, props), _card_urls(props, url), contact))
    chosen = _top_level(cards, url, case_sensitive)
    # a nested card is another thing's (a post's author, a quoted card) unless it says it is the page's: it names
    # the page; or it is the contact of a resume (of the page's person); or, on a page with no top-level card that
    # can be its person's (none, or only other people's), it names no URL (whose it is cannot be told: a refusal
    # in it denies)
    also = [card for card, urls, contact in nested
            if any(_names_page(u, url) is not None for u in urls) or (not urls and (contact or not chosen.cards))]
    if not also:
        return chosen
    naming = any(_names_page(u, url) is not None for _, urls, _ in nested for u in urls)
    return Cards(chosen.cards + also, chosen.certain or naming, chosen.of + len(also))


def _top_level(cards: list[tuple[Card, list[str]]], url: str, case_sensitive: bool) -> Cards:
    named = [(card, [_names_page(u, url, case_sensitive) for u in urls]) for card, urls in cards]
    naming = [card for card, how in named if any(h is not None for h in how)]
    unnamed = [card for card, urls in cards if not urls]
    if naming and not any(h for _, how in named for h in how):  # none with the page's whole query: which page
        return Cards(naming + unnamed, True, len(cards))  # it names is not sure, so the unnamed cards are read too
    if naming:
        return Cards(naming, True, len(cards))
    return Cards(unnamed, len(cards) == 1 and len(unnamed) == 1, len(cards))
