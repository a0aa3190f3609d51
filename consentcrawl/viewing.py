"""A page opened in a browser shows what the crawl collected, and makes the browser fetch nothing by itself.

``scrapy view`` (and ``view(response)`` in ``scrapy shell``, and :func:`open_in_browser` from a callback) opens a
page the crawl was allowed to fetch; Scrapy's own ``open_in_browser`` opens nothing in a crawl with the add-on
(:func:`refuse_to_open`). The browser then loads what the page names (images, styles, scripts, frames,
other people's avatars) by itself, outside the crawl and its checks. The page is therefore written with a
``Content-Security-Policy`` that forbids every load but inline styles and ``data:`` images. A ``<meta
http-equiv="refresh">`` is a navigation, which no policy directive governs (the browser would go to the URL it
names, another person's page, once its delay is over): every ``http-equiv`` of the page is renamed so that the
browser ignores it (by the attribute's name, which an entity cannot spell, unlike its value).

The rewriting works on the page's text as Scrapy decoded it, and the page is written back as UTF-8 with a
``<meta charset>`` of its own first: a UTF-16 page (whose bytes no ASCII pattern matches) is rewritten like any
other, and the browser decodes exactly the text that was rewritten. The page's own charset declarations are
renamed too (a later one would make the browser decode the bytes again another way, in which a sequence the
rewriting did not read as an attribute could become one). The names are matched as text, not parsed: the same
words in the page's text are renamed too, which costs a page shown for inspection nothing that matters, while a
parser that read the page differently from the browser would let one through.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from scrapy.http import HtmlResponse, Response

__all__ = ["NO_LOADS", "open_in_browser", "refuse_to_open", "without_loads"]

logger = logging.getLogger("consentcrawl")

#: what the browser may load for the page: nothing but inline styles and ``data:`` images
NO_LOADS = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
#: what goes first in the page (after its doctype, where Scrapy puts its ``<base>``: the parser places them all in
#: the head)
_HEAD = f'<meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{NO_LOADS}">'
_DOCTYPE = re.compile(r"\s*<!doctype[^>]*>", re.IGNORECASE)
#: an ``http-equiv`` or ``charset`` attribute (a name, after the tag's or another attribute's end)
_DECLARING = re.compile(r"(?<=[\s/\"'])(http-equiv|charset)(?=\s*=)", re.IGNORECASE)


def without_loads(response: Response) -> Response:
    """An HTML page, as UTF-8, with a ``<meta>`` CSP that forbids the browser's own loads and none of its own
    ``http-equiv`` or ``charset`` attributes (a refresh navigates; a charset re-decodes); any other response as it
    is (Scrapy opens a text or XML response as plain text, which loads nothing)."""
    if not isinstance(response, HtmlResponse):
        return response
    text = _DECLARING.sub(lambda match: f"data-consentcrawl-ignored-{match[1].lower()}", response.text)
    text = text.removeprefix("\ufeff")
    doctype = _DOCTYPE.match(text)
    at = doctype.end() if doctype else 0
    return response.replace(body=(text[:at] + _HEAD + text[at:]).encode("utf-8"), encoding="utf-8")


def open_in_browser(response: Response, **kwargs: Any) -> Any:
    """Scrapy's ``open_in_browser`` for a page rewritten by :func:`without_loads`: what a callback (or the shell's
    ``view``) calls in a project that uses consentcrawl. A response that is not text (an image, an SVG document:
    a browser renders it, and an SVG loads what it names) is not opened."""
    import webbrowser

    from scrapy.http import TextResponse
    from scrapy.utils.response import open_in_browser as scrapy_open_in_browser

    if not isinstance(response, TextResponse):
        logger.error("consentcrawl: only a text or HTML response is opened in a browser")
        return False
    kwargs.setdefault("_openfunc", webbrowser.open)  # Scrapy's default opens nothing (:func:`refuse_to_open`)
    return scrapy_open_in_browser(without_loads(response), **kwargs)


def refuse_to_open(url: str) -> bool:
    """What Scrapy's own ``open_in_browser`` opens with in a process that runs consentcrawl: nothing. It writes the
    page as it came (the browser would load what the page names, other people's pages and images, outside the
    crawl and its checks, and follow its refresh); the file is removed, and one ERROR line says what to call."""
    logger.error("consentcrawl: scrapy.utils.response.open_in_browser opens nothing in a crawl that uses "
                 "consentcrawl (the browser would load what the page names, outside the crawl's checks); call "
                 "consentcrawl.viewing.open_in_browser instead")
    Path(url.removeprefix("file://")).unlink(missing_ok=True)
    return False
