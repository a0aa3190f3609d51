"""The ``<meta>`` and ``<link>`` tags of an HTML document's head, read once for every reader of the page.

Meta robots (:mod:`consentcrawl.robots.meta`), the TDMRep meta tags and the RSL ``<link rel="license">``
(:mod:`consentcrawl.signals`) all read these tags. They read them from this one scan, so they can never disagree
about what a page's head says, and a page is scanned once however many readers ask (the scan of the last few
bodies is remembered by the body object's identity: a response's body is an immutable ``bytes``).

The scan is the HTML tokenizer's view, kept linear: it reads the document from its start, skips comments (bogus
ones too: ``<!x>``, ``<?x>``), the raw-text elements (``<script>``, ``<style>``, ...) and other tags' attribute
values as the tokenizer does (:data:`_PASS`), so a commented-out tag never counts and a comment opener the spider's
parser does not see as one hides nothing, and stops at ``<body``
(:func:`meta_tags` reads the ``<meta>`` tags after it too, for meta robots). It
scans the first :data:`HEAD_SCAN_BYTES`, then a window four times as long while it has not reached the ``<body``
(a head of inline styles, SVG sprites and JSON-LD runs past 64 KiB, and the spider's ``.css()`` reads the whole
page), so a page's usual head costs one short scan and no tag before the body is missed. Attribute names are ASCII-
lower-cased and the first of repeated attributes is kept (as HTML does); values are decoded with the page's encoding
and HTML-unescaped. A document in a charset whose ASCII bytes are not always ASCII text (UTF-16, UTF-32, EBCDIC,
ISO-2022, a CJK codec) is decoded first, as Scrapy decodes it for the spider, so the scan reads the head the spider
reads. Never raises.

Pure: no Scrapy, no I/O, no clock.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import html
import importlib
import re
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from .cache import ObjectMemo
from .recent import Recent

__all__ = ["HEAD_SCAN_BYTES", "HeadTag", "decode_value", "head_tags", "meta_tags", "scans_as_bytes", "without_nul"]

HEAD_SCAN_BYTES = 64 * 1024  #: the first window searched for a document's head (a longer head widens it)
RAW_BYTES = 1200  #: bytes of a tag kept in :attr:`HeadTag.raw` (its readers keep less)


if sys.version_info >= (3, 11):
    _possessive = re.compile
else:  # possessive quantifiers (``*+``, which keep the scan linear) reached ``re`` in Python 3.11; ``regex`` reads
    # them the same way, and is only installed for older Pythons (imported by name: no stubs needed to check this)
    _possessive = importlib.import_module("regex").compile


def _html(pattern: bytes) -> bytes:
    r"""``pattern`` with ``\s`` (written inside a character class) as HTML's white space: tab, LF, FF, CR and space.
    A vertical tab is white space to ``re`` but not to the HTML tokenizer (nor libxml2's): ``</script\v>`` ends no
    script for the spider's parser (a ``<!--`` after it hides nothing there), and ``<meta name="x"\vcontent="0">``
    has no ``content`` attribute there."""
    return pattern.replace(rb"\s", rb"\t\n\f\r ")


#: a tag's attributes, read as the HTML tokenizer reads them (a quoted value runs to its quote, an unclosed quote to
#: the end), and the ``>`` that closes it: a ``<!--`` or a ``<script>`` in an attribute value opens nothing
_ATTR_LIST = _html(rb"""(?:[\s/]*+[^\s/>][^\s/>=]*+(?:[\s]*+=[\s]*+(?:"[^"]*+(?:"|\Z)|'[^']*+(?:'|\Z)|[^\s>]*+))?)*+""")
_ATTRS = _ATTR_LIST + _html(rb"[\s/]*+>?")
#: a raw-text element's start tag closed by ``/>`` (not a ``/`` ending an unquoted value): libxml2, the parser of
#: Scrapy's selectors, takes ``<script/>``, ``<style x="y" />``, ``<title/>`` for empty elements, as it does any
#: ``<x/>``, and reads the markup after it as markup (the HTML tokenizer would read it as the element's text)
_SELF_CLOSED = (rb"<(?:style|title|textarea|xmp|iframe|noembed|noframes|script|plaintext)(?=[\t\n\f\r />])"
                + _ATTR_LIST + _html(rb"[\s/]++(?<=/)>"))
#: elements whose content is text up to their end tag (``</style`` followed by a space, ``/`` or ``>``), each
#: written out (no group and no back-reference: ``re`` cannot repeat those possessively); a ``<script>`` with
#: no ``<!--`` in it (one with one is read by :func:`_script_end`); and ``<plaintext>``, whose content is text to
#: the end of the document (a ``<meta name="tdm-reservation" content="0">`` after it lifts nothing)
_RAW = _html(rb"|".join([
    *(rb"<" + name + rb"(?=[\s/>])" + _ATTRS + rb".*?(?:</" + name + rb"(?=[\s/>])" + _ATTRS + rb"|\Z)"
      for name in (b"style", b"title", b"textarea", b"xmp", b"iframe", b"noembed", b"noframes")),
    rb"<script(?=[\s/>])" + _ATTRS + rb"(?:[^<]++|<(?!!--|/script[\s/>]))*+(?:</script(?=[\s/>])" + _ATTRS
    + rb"|\Z)", rb"<plaintext(?=[\s/>]).*"]))
#: what the scan passes over, in one match in C, as the HTML tokenizer does (WHATWG §13.2.5; libxml2 2.14, the
#: parser of Scrapy's selectors, tokenizes so): text; a ``<`` that opens no tag; a comment (``<!-->`` and
#: ``<!--->`` close at once, ``--!>`` closes too); a bogus comment (``<!x``, ``<![CDATA[``, ``<!DOCTYPE``, ``<?x``,
#: ``</`` and no letter) to the first ``>``; a raw-text element to its end tag; any other start or end tag with its
#: attributes. It stops at a ``<meta``, ``<link`` or ``<body`` start tag, or at the end.
_PASS = _possessive(_html(
    rb"(?:[^<]++|<(?![a-z!/?])|<!--(?:-?>|.*?(?:--!?>|\Z))|<![^>]*+>?|<\?[^>]*+>?|</(?![a-z])[^>]*+>?"
    rb"|" + _SELF_CLOSED + rb"|" + _RAW + rb"|</[a-z][^\s/>]*+" + _ATTRS
    + rb"|<(?!(?:meta|link|body|script)[\s/>])[a-z][^\s/>]*+" + _ATTRS
    + rb")*+"), re.DOTALL)
#: where :data:`_PASS` stops: ``<body`` (1), a ``<meta``/``<link`` (2), a ``<script>`` holding a ``<!--`` (3)
_STOP = re.compile(_html(rb"<(?:(body)|(meta|link)|(script))[\s/>]"))
#: what moves a script's content between the tokenizer's script data states (WHATWG §13.2.5.15-.32)
_SCRIPT_STATES = re.compile(_html(rb"<!---*>|<!--|-->|<script(?=[\s/>])|</script(?=[\s/>])"))
#: a tag's attributes and its ``>``, after its name
_AFTER_NAME = _possessive(_ATTRS)
#: one attribute; an unclosed quote runs to the end, as in HTML (and keeps the scan linear)
_ATTR = re.compile(_html(rb"""[\s/]*([^\s/>][^\s/>=]*)(?:[\s]*=[\s]*(?:"([^"]*)(?:"|\Z)|'([^']*)(?:'|\Z)"""
                         rb"""|([^\s>]*)))?"""))
#: a ``<meta`` anywhere, in any case: the one search (in C, no copy) a page's body costs when it holds none
_ANY_META = re.compile(rb"<meta[\s/>]", re.IGNORECASE)


class HeadTag(NamedTuple):
    """One ``<meta>`` or ``<link>`` of a document's head."""

    tag: str  #: ``"meta"`` or ``"link"``
    attrs: Mapping[str, str]  #: read-only (the scan is shared); names ASCII-lower-cased, values unescaped
    raw: str  #: the tag as written (its first :data:`RAW_BYTES` bytes), decoded and unescaped


class _Head(NamedTuple):
    tags: tuple[HeadTag, ...]
    body_at: int  #: where ``<body`` starts in the document as scanned (ASCII-compatible bytes); -1: no ``<body``


_scans: ObjectMemo[object, _Head] = ObjectMemo(4)  #: the last bodies scanned
_metas: ObjectMemo[object, tuple[HeadTag, ...]] = ObjectMemo(4)  #: their ``<meta>`` tags, head and body


def head_tags(body: object, encoding: str = "utf-8") -> tuple[HeadTag, ...]:
    """Every ``<meta>`` and ``<link>`` in the head of ``body`` (bytes in ``encoding``, or text), in order."""
    return _head(body, encoding).tags


def meta_tags(body: object, encoding: str = "utf-8") -> tuple[HeadTag, ...]:
    """Every ``<meta>`` of ``body``, its head's then its body's, in order: what a spider's
    ``.css("meta[name=robots]")`` finds wherever the tag stands (meta robots is read so; the operator signals'
    tags are read from the head only, as their specifications place them).

    The page costs one case-insensitive search for ``<meta`` in C, with no copy, counting its openers: where the
    head's scan read them all (most pages), that is all. Otherwise the part after ``<body`` is read with the head's
    tokenizer (comments and raw-text elements skipped, as the spider's parser skips them), so a large page with no
    ``<meta>`` in its body is not tokenized twice. Where the tokenizer still skipped one (in what it read as a
    comment, a raw-text element, a bogus comment...), its view and the spider's parser's may differ, so lxml, the
    parser of Scrapy's selectors, reads the page too and every ``<meta>`` it finds is added: reading a tag too many
    denies a page the spider could have had; missing one the spider reads would hand it a refusal."""
    if not isinstance(body, (bytes, bytearray, memoryview, str)):
        return ()
    if not isinstance(body, (bytes, str)):
        return _meta_tags(body, encoding)
    return _metas.get(body, lambda _b: _meta_tags(body, encoding), encoding)


def _head(body: object, encoding: str) -> _Head:
    if not isinstance(body, (bytes, bytearray, memoryview, str)):
        return _Head((), -1)
    if not isinstance(body, (bytes, str)):  # a mutable buffer is read as it is now, never remembered
        return _scan(body, encoding)
    return _scans.get(body, lambda b: _scan(b, encoding), encoding)


def _meta_tags(body: bytes | bytearray | memoryview | str, encoding: str) -> tuple[HeadTag, ...]:
    head = _head(body, encoding)
    metas = tuple(t for t in head.tags if t.tag == "meta")
    whole = _start(body, encoding, max(len(body), 1))
    if whole is None:
        return metas
    doc, codec, _ = whole
    openers = len(_ANY_META.findall(doc))
    if openers <= len(metas):
        return metas  # every <meta of the page is one the head's scan read (most pages)
    if head.body_at >= 0:
        metas += _body_metas(doc, head.body_at, codec)
    if openers > len(metas):
        # a <meta the scan skipped (in what it read as a comment or a raw-text element): the scan's view of the
        # markup and the spider's parser's may differ there, so the parser decides too (the union is read)
        seen = [dict(t.attrs) for t in metas]
        metas += tuple(t for t in _parsed_metas(doc, codec) if dict(t.attrs) not in seen)
    return metas


#: the ``<meta>`` tags of the last documents' parts from ``<body``, by a digest of those bytes and their codec
_body_memo: Recent[tuple[bytes, str], tuple[HeadTag, ...]] = Recent(2)


def _body_metas(doc: bytes, at: int, codec: str) -> tuple[HeadTag, ...]:
    """The ``<meta>`` tags of ``doc`` from its ``<body`` (at ``at``), remembered by a digest of those bytes: a page
    read in several encodings (``robots.body.reading_encodings``: a UTF-16 page is read in UTF-16 and as its bytes)
    is most often the same markup after its first bytes, and a body of microdata ``<meta itemprop>`` is tokenized
    once, not once per reading. The bytes themselves are not kept: only some pages come here, so a memo holding
    them kept the last large such page (a copy of its body) alive long after its response, to the crawl's end."""
    key = (hashlib.blake2b(memoryview(doc)[at:]).digest(), codec)
    found = _body_memo.get(key)
    if found is None:
        tags, _ = _scan_window(doc[at:], codec, 0, stop_at_body=False)
        found = tuple(t for t in tags if t.tag == "meta")
        _body_memo.put(key, found)
    return found


def _parsed_metas(doc: bytes, codec: str) -> tuple[HeadTag, ...]:
    """Every ``<meta>`` of ``doc`` as lxml's HTML parser reads it: the parser Scrapy's selectors use (``huge_tree``
    as they set it), so a tag the spider's ``.css("meta")`` finds is found here; the whole document's, as a
    spider's ``.xpath("//meta")`` reads it (libxml2 puts markup after ``</html>`` in a second root element)."""
    import lxml.etree

    text = doc.decode(codec, "replace").encode("utf-8", "surrogatepass")
    try:
        root = lxml.etree.fromstring(text, lxml.etree.HTMLParser(encoding="utf-8", huge_tree=True))
    except (lxml.etree.LxmlError, ValueError):
        return ()
    if root is None:
        return ()
    out = []
    elements: list[Any] = root.xpath("//meta")  # type: ignore[assignment]  # the document's: a second root too
    for element in elements:
        attrs = {str(k).lower(): str(v) for k, v in element.attrib.items()}
        raw = lxml.etree.tostring(element, encoding="unicode", with_tail=False)[:RAW_BYTES]
        out.append(HeadTag("meta", MappingProxyType(attrs), raw))
    return tuple(out)


def _start(body: object, encoding: str, limit: int) -> tuple[bytes, str, bool] | None:
    """The first ``limit`` characters of the document as ASCII-compatible bytes without NUL characters, the
    encoding to decode them with, and whether they are the whole document.

    NULs are dropped as parsel drops them before lxml parses the page for the spider's selectors: ``<met\0a
    name="rob\0ots">`` is a meta robots tag to ``.css("meta[name=robots]")``, so it is one here. A prefix of the
    document keeps its offsets in the whole document read so, the scan's ``body_at`` among them."""
    if isinstance(body, str):
        return without_nul(body[:limit].encode("utf-8", "surrogatepass")), "utf-8", len(body) <= limit
    if not isinstance(body, (bytes, bytearray, memoryview)):
        return None
    try:
        codec = codecs.lookup(encoding).name
    except (LookupError, TypeError, ValueError):
        codec = "utf-8"
    if not scans_as_bytes(codec):  # the markup is not ASCII bytes there: re-encode (rare, so the copy is fine)
        text = bytes(body[:limit * 4]).decode(codec, "replace")
        whole = len(body) <= limit * 4 and len(text) <= limit
        return without_nul(text[:limit].encode("utf-8", "surrogatepass")), "utf-8", whole
    return without_nul(bytes(body[:limit])), codec, len(body) <= limit


def without_nul(doc: bytes) -> bytes:
    """``doc`` (ASCII-compatible: a 0 byte is a NUL character) without its NULs, as parsel reads a page for the
    spider's selectors (the tag scan here, the refusal reader's cards); one search in C, and no copy for a page
    that has none (most)."""
    return doc.replace(b"\x00", b"") if b"\x00" in doc else doc


_ASCII = bytes(range(128)).decode("ascii")


@functools.lru_cache(maxsize=64)
def scans_as_bytes(encoding: str) -> bool:
    """Whether every ASCII byte of a document in ``encoding`` is that ASCII character wherever it stands, so its
    raw bytes can be searched for markup (this scan, the refusal reader's ``h-card``): UTF-8 (by design: no byte of
    a multi-byte sequence is ASCII), and a stateless single-byte codec that keeps ASCII (each byte decodes alone to
    one character, the same as in a run, the first 128 to themselves: ISO-8859-*, windows-125*, KOI8...). Any
    other codec (UTF-16/32, EBCDIC, a stateful ISO-2022 or UTF-7, a multi-byte CJK codec whose second bytes may be
    ASCII) is decoded first: scanned as bytes, its ``<!--`` or ``<meta`` is not the page's, and a tag the spider
    reads is missed. An unknown name: False (the caller's decoding then fails, and it denies)."""
    try:
        codec = codecs.lookup(encoding).name
    except (LookupError, TypeError, ValueError):
        return False
    if codec == "utf-8":
        return True
    try:
        alone = [bytes([b]).decode(codec, "replace") for b in range(256)]
        run = bytes(range(256)).decode(codec, "replace")
    except Exception:  # noqa: BLE001 - a codec that cannot decode its own bytes is not scanned as bytes
        return False
    return all(len(c) == 1 for c in alone) and "".join(alone) == run and run[:128] == _ASCII


def _scan(body: object, encoding: str) -> _Head:
    """The head's tags, from a window of the document widened (and scanned again) until it reaches ``<body`` or
    holds the whole document: linear in the head's length overall."""
    limit = HEAD_SCAN_BYTES
    while True:
        start = _start(body, encoding, limit)
        if start is None:
            return _Head((), -1)
        head, codec, whole = start
        found, body_at = _scan_window(head, codec)
        if body_at >= 0 or whole:
            return _Head(found, body_at)
        limit *= 4


def _scan_window(head: bytes, codec: str, pos: int = 0, stop_at_body: bool = True) -> tuple[tuple[HeadTag, ...], int]:
    """The tags in ``head`` (the start of a document) from ``pos``, and where the scan met its ``<body`` (-1: it
    did not, or was not asked to stop there)."""
    low = head.lower()  # bytes.lower() is ASCII-only, so offsets in `low` are offsets in `head`
    if b"<meta" not in low and b"<link" not in low and b"<body" not in low:
        return (), -1  # nothing to read yet, and the head goes on: a wider window
    found: list[HeadTag] = []
    n = len(low)
    while pos < n:
        pos = _PASS.match(low, pos).end()  # type: ignore[union-attr]  # it matches the empty string too
        m = _STOP.match(low, pos)
        if m is None:
            break  # the end
        if m.lastindex == 1:
            if stop_at_body:
                return tuple(found), m.start()
            pos = _AFTER_NAME.match(low, m.end() - 1).end()  # type: ignore[union-attr]
            continue
        if m.lastindex == 3:
            pos = _script_end(low, _AFTER_NAME.match(low, m.end() - 1).end())  # type: ignore[union-attr]
            continue
        end = _AFTER_NAME.match(low, m.end() - 1).end()  # type: ignore[union-attr]
        found.append(HeadTag(m.group(2).decode("ascii"), MappingProxyType(_attributes(head, m.end() - 1, end, codec)),
                             decode_value(head[m.start():min(end, m.start() + RAW_BYTES)], codec)))
        pos = max(end, m.start() + 1)
    return tuple(found), -1


def _script_end(low: bytes, pos: int) -> int:
    """Where the content of a ``<script>`` from ``pos`` ends (its end tag), as the tokenizer reads it: a ``<!--``
    in it escapes, and a ``<script`` inside that escapes twice, where ``</script`` ends only the inner one (until a
    ``-->``). Read otherwise, the scan would take an end tag the spider's parser does not for the script's, and the
    rest of the script for markup (a ``<!--`` there hides the tags after the script's real end)."""
    state = 0  # 0: script data; 1: escaped; 2: double escaped
    for m in _SCRIPT_STATES.finditer(low, pos):
        token = m.group()
        if token == b"</script":
            if state != 2:
                return m.start()
            state = 1
        elif token == b"<script":
            state = 2 if state == 1 else state
        elif token.endswith(b">"):  # ``-->``, and ``<!-->``, ``<!--->``: their dashes close what is open
            state = 0
        elif token == b"<!--" and state == 0:
            state = 1
    return len(low)


def _attributes(head: bytes, i: int, end: int, codec: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    while True:
        a = _ATTR.match(head, i, end)
        if a is None or a.end() == i:
            return attrs
        key = a.group(1).lower().decode("latin-1")  # names are ASCII-lower-cased, never unescaped (as in HTML)
        if key not in attrs:  # HTML keeps the first of repeated attributes
            value = a.group(2) if a.group(2) is not None else a.group(3) if a.group(3) is not None else a.group(4)
            attrs[key] = decode_value(value or b"", codec)
        i = a.end()


def decode_value(value: bytes, codec: str = "utf-8") -> str:
    """Bytes of the head as text: decoded with ``codec`` (latin-1 if it cannot be used), HTML-unescaped."""
    try:
        text = value.decode(codec, "replace")
    except (LookupError, ValueError, TypeError):
        text = value.decode("latin-1")
    return html.unescape(text) if "&" in text else text
