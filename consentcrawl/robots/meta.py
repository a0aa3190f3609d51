"""Robots directives in an HTML document's ``<meta name="robots">``, ``<meta name="TOKEN">`` and
``<meta http-equiv="X-Robots-Tag">`` tags: found wherever they stand, the head or the body (a spider's
``.css("meta[name=robots]")`` finds a tag a template put in the body, so a refusal there is one), read like an
``X-Robots-Tag`` header value (:mod:`consentcrawl.robots.tags`); the ``http-equiv`` form keeps the header's
``UA:`` scopes."""

from __future__ import annotations

from ..pagehead import meta_tags
from .tags import RAW_MAX, SOURCE_META, RobotsDirective, _directives, _parse_rules, product_token

__all__ = ["parse_meta_robots"]


def parse_meta_robots(body: bytes, token: str, encoding: str = "utf-8") -> list[RobotsDirective]:
    """``<meta name="robots">``, ``<meta name="TOKEN">`` and ``<meta http-equiv="X-Robots-Tag">`` directives in an
    HTML document, head and body, as :func:`consentcrawl.pagehead.meta_tags` reads them (the head's scan is the
    one the operator signals read too)."""
    token = product_token(token)
    found: list[RobotsDirective] = []
    for tag in meta_tags(body, encoding):
        attrs = tag.attrs
        content = attrs.get("content")
        if content is None:
            continue
        equiv = attrs.get("http-equiv")
        if equiv is not None and equiv.strip().lower() == "x-robots-tag":
            # <meta http-equiv="X-Robots-Tag" content="otherbot: noindex, noai">: the header's value, read as the
            # header (``UA:`` scopes included)
            found += _directives(_parse_rules(content, scoped=True), SOURCE_META, tag.raw[:RAW_MAX], token)
            continue
        name = attrs.get("name")
        if name is None:
            continue
        label = name.strip().lower()
        if label == "robots":
            scope = None
        elif token and product_token(label) == token:
            scope = token
        else:
            continue
        rules = _parse_rules(content, scoped=False)
        found += _directives([[scope, r[1], r[2]] for r in rules], SOURCE_META, tag.raw[:RAW_MAX], token)
    return list(dict.fromkeys(found))
