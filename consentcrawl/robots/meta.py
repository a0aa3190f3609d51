"""Robots directives in an HTML document's ``<meta name="robots">``, ``<meta name="TOKEN">`` and
``<meta http-equiv="X-Robots-Tag">`` tags: found in the start of the document, read like an ``X-Robots-Tag`` header
value (:mod:`consentcrawl.robots.tags`); the ``http-equiv`` form keeps the header's ``UA:`` scopes."""

from __future__ import annotations

import codecs
import html
import re

from .tags import META_SCAN_BYTES, RAW_MAX, SOURCE_META, RobotsDirective, _directives, _parse_rules, product_token

__all__ = ["parse_meta_robots"]


# what the head scan stops at: comments and raw-text elements to skip, <body> to stop, <meta> to read
_SCAN = re.compile(
    rb"<(?:(!--)|(script|style|title|textarea|xmp|iframe|noembed|noframes)[\s/>]|(body)[\s/>]|meta[\s/>])")
#: an unclosed quote runs to the end, as in HTML (and keeps the scan linear)
_ATTR = re.compile(rb"""[\s/]*([^\s/>][^\s/>=]*)(?:\s*=\s*(?:"([^"]*)(?:"|\Z)|'([^']*)(?:'|\Z)|([^\s>]*)))?""")
#: a whole ``<meta>`` tag read attribute by attribute like :data:`_ATTR`, so a ``>`` in a quoted value stays inside
_META_TAG = re.compile(
    rb"""<meta(?:[\s/]*[^\s/>][^\s/>=]*(?:\s*=\s*(?:"[^"]*(?:"|\Z)|'[^']*(?:'|\Z)|[^\s>]*))?)*[\s/]*>?""")


def _head_bytes(body: object, encoding: str) -> tuple[bytes, str] | None:
    """The start of the document as ASCII-compatible bytes and the encoding to decode them with."""
    if isinstance(body, str):
        return body[:META_SCAN_BYTES].encode("utf-8", "surrogatepass"), "utf-8"
    if not isinstance(body, (bytes, bytearray, memoryview)):
        return None
    try:
        codec = codecs.lookup(encoding).name
    except (LookupError, TypeError, ValueError):
        codec = "utf-8"
    if codec.startswith(("utf-16", "utf-32")):  # "<meta" is not ASCII there: re-encode (rare, so the copy is fine)
        text = bytes(body[:META_SCAN_BYTES * 4]).decode(codec, "replace")[:META_SCAN_BYTES]
        return text.encode("utf-8", "surrogatepass"), "utf-8"
    return bytes(body[:META_SCAN_BYTES]), codec


def parse_meta_robots(body: bytes, token: str, encoding: str = "utf-8") -> list[RobotsDirective]:
    """``<meta name="robots">`` and ``<meta name="TOKEN">`` directives in an HTML document's head.

    Runs on every HTML response, so a bytes pre-check (no ``<meta``, or neither ``robots`` nor the token anywhere
    in the first 64 KiB) returns before any parsing.
    """
    token = product_token(token)
    start = _head_bytes(body, encoding)
    if start is None:
        return []
    head, codec = start
    low = head.lower()  # bytes.lower() is ASCII-only, so offsets in `low` are offsets in `head`
    if b"<meta" not in low:
        return []
    tok = token.encode("ascii")
    if b"robots" not in low and (not tok or tok not in low):
        return []
    found: list[RobotsDirective] = []
    pos, n = 0, len(low)
    while pos < n:
        m = _SCAN.search(low, pos)
        if m is None:
            break
        kind = m.lastindex  # 1 comment, 2 raw-text element, 3 body, None meta
        if kind == 1:
            end = low.find(b"-->", m.end())
            if end < 0:
                break
            pos = end + 3
        elif kind == 2:
            end = low.find(b"</" + m.group(2), m.end())
            if end < 0:
                break
            pos = end + 2
        elif kind == 3:
            break
        else:
            end = _META_TAG.match(low, m.start()).end()  # type: ignore[union-attr]  # "<meta" is there
            tag = low[m.start():end]
            if b"robots" in tag or (tok and tok in tag):  # most meta tags are og:, viewport...: skip them cheaply
                _read_meta(head, m.start(), end, codec, token, found)
            pos = end
    return list(dict.fromkeys(found))


def _read_meta(head: bytes, start: int, end: int, codec: str, token: str, found: list[RobotsDirective]) -> None:
    """Read the ``<meta`` tag at ``head[start:end]`` into ``found`` when it is for robots or for us."""
    i = start + 5
    attrs: dict[bytes, bytes] = {}
    while True:
        m = _ATTR.match(head, i, end)
        if m is None or m.end() == i:
            break
        key = m.group(1).lower()
        if key not in attrs:  # HTML keeps the first of repeated attributes
            value = m.group(2) if m.group(2) is not None else m.group(3) if m.group(3) is not None else m.group(4)
            attrs[key] = value or b""
        i = m.end()
    name, content = attrs.get(b"name"), attrs.get(b"content")
    equiv = attrs.get(b"http-equiv")
    if content is not None and equiv is not None and _decode(equiv).strip().lower() == "x-robots-tag":
        # <meta http-equiv="X-Robots-Tag" content="otherbot: noindex, noai">: the header's value, read as the header
        # (``UA:`` scopes included)
        rules = _parse_rules(_decode(content, codec), scoped=True)
        raw = _decode(head[start:min(end, start + 4 * RAW_MAX)], codec)
        found += _directives(rules, SOURCE_META, raw, token)
        return
    if name is None or content is None:
        return
    label = _decode(name).strip().lower()
    if label == "robots":
        scope = None
    elif token and product_token(label) == token:
        scope = token
    else:
        return
    rules = _parse_rules(_decode(content, codec), scoped=False)
    raw = _decode(head[start:min(end, start + 4 * RAW_MAX)], codec)
    found += _directives([[scope, r[1], r[2]] for r in rules], SOURCE_META, raw, token)


def _decode(value: bytes, codec: str = "utf-8") -> str:
    try:
        text = value.decode(codec, "replace")
    except (LookupError, ValueError, TypeError):
        text = value.decode("latin-1")
    return html.unescape(text) if "&" in text else text
