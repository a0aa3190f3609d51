"""Reading the refusals a person publishes on their own profile: hashtags, ActivityPub actor flags, Bluesky
self-labels, meta robots. Pure: no Scrapy, no I/O, no clock; the response phase hands in the page.

Whose say counts is the heart of it: only the profile's own fields are read, never a post, a quote or another
person's card on the same page.

- HTML: the page's person's cards (:mod:`consentcrawl.refusals.cards`: microformats2 ``h-card`` and
  microformats1 ``vcard``): a top-level card whose URL is the page's, else the cards that name no URL (when there
  are several, a refusal in any of them denies: whose it is cannot be told). Their ``p-*`` and ``e-*``
  properties are the profile's fields (``p-name``, ``p-note``, ...); anything inside a nested microformat (an
  ``h-entry`` the person quoted, the ``p-author h-card`` of someone else's post) is not. A page that says it is a
  profile (``og:type`` ``profile``) is read by its ``og:title``, ``og:description`` and ``description`` meta tags
  too, card or not: the server fills them with the display name and the bio (Mastodon does; on a post's page,
  ``og:type`` is ``article`` and ``og:description`` is the post, which is not read). A ``<meta name="robots">`` of
  the profile page is the person's too (Mastodon sets ``noindex`` for people who opt out of search engines).
- ActivityPub: the top-level actor object only; an embedded object (another actor, an attachment) never counts.
  The actor's ``id`` is returned so the adapter can check it is the page's person.
- Bluesky: a self-label is the person's only when its ``src`` is their DID (a record's ``labels`` are its author's).

Hashtags are found in each field's text by :mod:`consentcrawl.refusals.hashtags`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import lxml.etree

from ..pagehead import scans_as_bytes, without_nul
from .cards import page_cards, text_of, text_properties
from .hashtags import hashtags
from .purposes import purposes_of

__all__ = ["Found", "PageReading", "html_profile", "is_activitypub", "read_actor", "read_bluesky", "read_html_profile",
           "read_meta_robots"]

RAW_MAX = 300


@dataclass(frozen=True)
class Found:
    """One refusal read on a page: its form (a key of the purposes table), the field it was in, the raw text."""

    form: str
    field: str
    raw: str

    @property
    def purposes(self) -> frozenset[str]:
        return purposes_of(self.form)


@dataclass(frozen=True)
class PageReading:
    """What a page says about its person: the refusals found, and whose page it says it is (an actor's ``id``,
    a DID), for the adapter to compare with the person the URL names. ``kind``: html, activitypub, bluesky."""

    found: tuple[Found, ...] = ()
    owner: str | None = None
    kind: str | None = None
    #: the page shows the person's profile (an actor, a representative h-card, an ``og:type`` profile, a Bluesky
    #: profile, an authorized-fetch 401): what it says about refusals is known, found or not
    profile: bool = False
    #: an HTML profile's ActivityPub actor (``<link rel="alternate" type="application/activity+json">``, absolute),
    #: where the person's ``indexable`` and the other actor flags are; the adapter may fetch it
    actor: str | None = None


def _found_in(field: str, text: str, token: str) -> list[Found]:
    return [Found(form, field, excerpt) for form, excerpt in hashtags(text, token)]


# -- HTML ------------------------------------------------------------------------------------------------------

_PARSERS: dict[str, Any] = {}


#: the words that mark a page worth parsing: a card's class, or an og:type (read in any case, as the parse reads it)
_MARKS = (b"h-card", b"vcard")
_OG_TYPE = b"og:type"
_OG_TYPE_ANY_CASE = re.compile(rb":(?<=[oO][gG]:)[tT][yY][pP][eE]")  # from its ":", which re finds fast
#: a character reference of a letter, ``-`` or ``:`` (what those words are written with), as the parser reads it:
#: numeric, with or without its ``;``, or ``&colon;``. ``class="h&#45;card"`` is a card to the spider's selectors
_REFERENCE = re.compile(rb"&(?:#(?:[xX]0*(2[dD]|3[aA]|[4-7][0-9a-fA-F])(?![0-9a-fA-F])"
                        rb"|0*(45|58|6[5-9]|[7-9][0-9]|1[01][0-9]|12[0-2])(?![0-9]));?|colon;)")


def _marked(body: bytes) -> bool:
    """Whether the page may hold a card or an og:type (what the parse reads), its character references read."""
    if any(mark in body for mark in _MARKS) or _OG_TYPE in body:
        return True
    if b"&" in body and _REFERENCE.search(body) is not None:  # rare: text written as references
        body = _REFERENCE.sub(_referenced, body)
        if any(mark in body for mark in _MARKS):
            return True
    return _OG_TYPE_ANY_CASE.search(body) is not None


def _referenced(found: re.Match[bytes]) -> bytes:
    if found[0] == b"&colon;":
        return b":"
    return bytes([int(found[1], 16) if found[1] else int(found[2])])


def _parse(body: bytes | str, encoding: str) -> Any:
    """The document's root element (lxml's C HTML parser, one parser per encoding, comments dropped).

    ``huge_tree`` as Scrapy's selectors (parsel) parse a page: past libxml2's default limits (nesting deeper than
    256, a text node over 10 MB) a card the spider's selectors read would otherwise not be read here."""
    key = encoding if isinstance(body, bytes) else ""
    parser = _PARSERS.get(key)
    if parser is None:
        parser = lxml.etree.HTMLParser(encoding=key or None, remove_comments=True, huge_tree=True)
        _PARSERS[key] = parser
    return lxml.etree.fromstring(body, parser)


_META_FIELDS = {("property", "og:title"): "og:title", ("property", "og:description"): "og:description",
                ("name", "description"): "meta description"}


def read_html_profile(body: bytes | str, url: str, token: str, encoding: str = "utf-8") -> list[Found]:
    """The hashtag refusals in an HTML profile page's own fields (see the module's docstring)."""
    return html_profile(body, url, token, encoding)[0]


def html_profile(body: bytes | str, url: str, token: str, encoding: str,
                 case_sensitive: bool = False) -> tuple[list[Found], bool, str | None]:
    """The refusals, whether the page shows a profile at all, and the actor it links to (when it does).
    ``case_sensitive``: the platform's people differ by case (:func:`~consentcrawl.refusals.cards.page_cards`)."""
    if isinstance(body, bytes) and not scans_as_bytes(encoding or "utf-8"):
        # its ASCII bytes are not its text: the byte search below would miss. Read as parsel reads response.text
        # (UTF-8 bytes, parsed as UTF-8 whatever an XML declaration says, which a str may not hold for lxml)
        body, encoding = body.decode(encoding, "replace").encode("utf-8", "surrogatepass"), "utf-8"
    # NULs dropped as parsel drops them: `class="h-c\0ard"` is a card to the spider's selectors, `#no\0bot` a tag
    body = without_nul(body) if isinstance(body, bytes) else body.replace("\x00", "")
    if not _marked(body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")):
        return [], False, None  # no card and no og:type: nothing to parse (most pages; a byte search, no parse)
    if not body.strip():
        return [], False, None
    doc = _parse(body, encoding or "utf-8")
    if doc is None:
        return [], False, None
    found: list[Found] = []
    chosen = page_cards(doc, url, case_sensitive)
    for card in chosen.cards:
        which = card.kind if chosen.certain else f"{card.kind} (one of {chosen.of}, none naming the page)"
        said: dict[Any, set[str]] = {}  # each property's refusals, by element
        for classes, e, outers in text_properties(card.props):
            here = _found_in(f"{which} {classes}", text_of(e), token)
            said[e] = {f.form for f in here}
            known = set().union(*(said.get(outer, set()) for outer in outers))
            found += [f for f in here if f.form not in known]
    # an og:type profile page's og:title and og:description are its person's too, card or not: the server fills
    # them with the display name and the bio (a post's page says og:type article: its description is the post)
    # the document's, as a spider's ``.xpath("//meta")``: libxml2 puts markup after ``</html>`` in a second root
    metas = list(doc.xpath("//meta"))
    profile = any((m.get("property") or "").strip().lower() == "og:type"
                  and (m.get("content") or "").strip().lower() == "profile" for m in metas)
    if profile:
        for meta in metas:
            for (attr, value), field in _META_FIELDS.items():
                if (meta.get(attr) or "").strip().lower() == value:
                    found += _found_in(field, meta.get("content") or "", token)
    if chosen.certain or profile:
        return found, True, _actor_link(doc, url)
    return found, False, None


def _actor_link(doc: Any, url: str) -> str | None:
    """The first ``<link rel="alternate">`` to an ActivityPub document, as an absolute http(s) URL (Mastodon
    links a profile page to its actor so). Whose actor it is, the adapter checks against the page's person. Read
    document-wide, as a spider's ``.xpath("//link")``: libxml2 puts markup after ``</html>`` in a second root."""
    for link in doc.xpath("//link"):
        rels = (link.get("rel") or "").lower().split()
        href = (link.get("href") or "").strip()
        if "alternate" in rels and href and is_activitypub(link.get("type") or ""):
            absolute = urljoin(url, href)
            return absolute if urlsplit(absolute).scheme in ("http", "https") else None
    return None


def _html_fragment_text(value: str) -> str:
    if "<" not in value and "&" not in value:
        return value
    try:
        doc = _parse(f"<div>{value}</div>", "")
    except (lxml.etree.ParserError, ValueError):
        return value
    return text_of(doc) if doc is not None else value


def read_meta_robots(directives: Iterable[Any]) -> list[Found]:
    """The profile page's ``<meta name="robots">`` (or ``<meta name="TOKEN">``) rules that refuse a purpose;
    ``directives`` as :func:`consentcrawl.robots.meta.parse_meta_robots` gives them."""
    out = []
    for d in directives:
        if getattr(d, "source", None) != "meta":
            continue
        form = f"meta-robots.{d.name}"
        if purposes_of(form):
            out.append(Found(form, "meta robots" if d.scope is None else f"meta {d.scope}", d.raw[:RAW_MAX]))
    return out


# -- ActivityPub -----------------------------------------------------------------------------------------------

_ACTOR_TYPES = frozenset({"Person", "Service", "Application", "Group", "Organization"})
_TOOT = "http://joinmastodon.org/ns#"


def _aliases(name: str, ns: str = _TOOT) -> tuple[str, ...]:
    return (name, f"toot:{name}", f"{ns}{name}", f"as:{name}")


def _values(doc: dict[str, Any], name: str) -> list[Any]:
    return [doc[k] for k in _aliases(name) if k in doc]


def _raw(name: str, values: Sequence[Any]) -> str:
    if not values:
        return f'"{name}" missing'
    return json.dumps({name: values[0]}, ensure_ascii=False, default=str)[:RAW_MAX]


def _types(doc: dict[str, Any]) -> set[str]:
    kind = doc.get("type", doc.get("@type"))
    kinds = kind if isinstance(kind, list) else [kind]
    return {k.rpartition("#")[2].rpartition("/")[2] for k in kinds if isinstance(k, str)}


def read_actor(doc: Any, token: str) -> PageReading | None:
    """The refusals of an ActivityPub actor document (top-level object only), or None when it is no actor."""
    if not isinstance(doc, dict) or not (_types(doc) & _ACTOR_TYPES):
        return None
    found: list[Found] = []
    for name in ("indexable", "discoverable"):  # opt-in: only a literal true, everywhere it is given, opts in
        values = _values(doc, name)
        if not values or any(v is not True for v in values):
            found.append(Found(f"activitypub.{name}", name, _raw(name, values)))
    for name, form in (("suspended", "activitypub.suspended"), ("memorial", "activitypub.memorial")):
        values = _values(doc, name)
        if any(v is True or (isinstance(v, str) and v.strip().lower() == "true") for v in values):
            found.append(Found(form, name, _raw(name, values)))
    moved = [v for v in _values(doc, "movedTo") if v]
    if moved:
        found.append(Found("activitypub.moved", "movedTo", _raw("movedTo", moved)))
    for field in ("name", "summary"):
        for value in _values(doc, field):
            if isinstance(value, str):
                found += _found_in(field, _html_fragment_text(value), token)
    attachments = doc.get("attachment")
    for i, item in enumerate(attachments if isinstance(attachments, list) else [attachments]):
        if isinstance(item, dict) and "PropertyValue" in _types(item):
            for part in ("name", "value"):
                value = item.get(part)
                if isinstance(value, str):
                    found += _found_in(f"attachment[{i}].{part}", _html_fragment_text(value), token)
    owner = doc.get("id") if isinstance(doc.get("id"), str) else None
    return PageReading(tuple(found), owner, "activitypub", profile=True)


def is_activitypub(content_type: str) -> bool:
    ct = content_type.lower()
    return "application/activity+json" in ct or ("application/ld+json" in ct and "activitystreams" in ct)


# -- Bluesky ---------------------------------------------------------------------------------------------------

NO_UNAUTHENTICATED = "!no-unauthenticated"


def read_bluesky(doc: Any, token: str) -> PageReading | None:
    """The refusals of a Bluesky profile: a ``ProfileView`` (``did``, ``labels`` with ``src``), a ``getRecord``
    answer (``uri``, ``value``) or a bare ``app.bsky.actor.profile`` record; None when it is none of these."""
    if not isinstance(doc, dict):
        return None
    found: list[Found] = []
    owner: str | None = None
    record: Any = None
    if isinstance(doc.get("did"), str) and doc["did"].startswith("did:"):
        owner = doc["did"]
        labels = doc.get("labels")
        for label in labels if isinstance(labels, list) else []:
            if (isinstance(label, dict) and label.get("val") == NO_UNAUTHENTICATED and label.get("src") == owner
                    and not label.get("neg")):
                found.append(Found("bluesky.no-unauthenticated", "labels", _raw("label", [label])))
        record = doc
    elif isinstance(doc.get("uri"), str) and doc["uri"].startswith("at://") and isinstance(doc.get("value"), dict):
        owner = doc["uri"][5:].partition("/")[0]
        record = doc["value"]
    elif doc.get("$type") == "app.bsky.actor.profile":
        record = doc
    else:
        return None
    labels = record.get("labels") if isinstance(record, dict) else None
    if isinstance(labels, dict) and "selfLabels" in str(labels.get("$type", "")):
        for label in labels.get("values") or []:
            if isinstance(label, dict) and label.get("val") == NO_UNAUTHENTICATED:
                found.append(Found("bluesky.no-unauthenticated", "labels (self)", _raw("label", [label])))
    for field in ("displayName", "description"):
        value = record.get(field) if isinstance(record, dict) else None
        if isinstance(value, str):
            found += _found_in(field, value, token)
    return PageReading(tuple(found), owner, "bluesky", profile=True)
