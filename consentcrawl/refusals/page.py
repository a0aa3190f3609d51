"""Reading a person's page for the refusals on it: which kind of document it is (an ActivityPub actor, a Bluesky
profile, an HTML profile), read as a spider's callback would read it (``json.loads(response.text)``,
``response.css``), in the page's charset. The forms themselves are read by :mod:`consentcrawl.refusals.forms`.
Pure: no Scrapy, no I/O, no clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from ..pagehead import scans_as_bytes
from .forms import Found, PageReading, html_profile, is_activitypub, read_actor, read_bluesky, read_meta_robots

__all__ = ["read_page"]

#: a body that starts like a JSON object (after a byte order mark and white space)
_JSON_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*\{")


def _json_text(body: bytes) -> str | None:
    """The body as text, when it starts like a JSON object in the encoding ``json.loads`` reads bytes in (UTF-8,
    -16 or -32, by the byte order mark or the zero bytes, as a spider's ``json.loads(response.body)`` does), else
    None."""
    encoding = json.detect_encoding(body[:4])
    if encoding.startswith("utf-8"):
        return body.decode("utf-8-sig") if _JSON_START.match(body) else None
    text = body.decode(encoding, "replace")
    return text if text.lstrip("\ufeff \t\r\n").startswith("{") else None


def read_page(url: str, status: int, content_type: str, body: bytes, token: str, *, encoding: str = "utf-8",
              meta_directives: Iterable[Any] = (), activitypub_requested: bool = False,
              case_sensitive: bool = False) -> PageReading:
    """What a person's profile page says about them (``case_sensitive``: on a platform whose people differ by
    case, as its cards are read). Raises ``ValueError`` for an ActivityPub body that is not
    JSON (the person's say cannot be read: the adapter denies)."""
    ct = (content_type or "").lower()
    if status == 401 and activitypub_requested:
        return PageReading((Found("activitypub.not-public", "HTTP status", "401 to an unsigned ActivityPub fetch"),),
                           None, "activitypub", profile=True)
    # any other status is read like a 200: a spider that handles every status (``handle_httpstatus_all``) gets the
    # body, and a platform may show a locked or limited profile with a 403 or a 404
    # what the type claims does not decide what a callback makes of the body (``json.loads(response.text)``,
    # ``response.css``): a JSON object is read as JSON whatever its type, anything else that is not JSON as HTML
    # ``response.text``, where the page's charset makes it other text than its bytes: ``json.loads`` of it reads a
    # document the bytes do not show
    declared = None if scans_as_bytes(encoding or "utf-8") else body.decode(encoding, "replace")
    as_text = declared is not None and declared.lstrip("\ufeff \t\r\n").startswith("{")
    if ("json" in ct or _JSON_START.match(body) or body[:1] in (b"\xff", b"\xfe", b"\x00") or body[1:2] == b"\x00"
            or as_text):
        try:
            text = _json_text(body)
            if text is None and as_text:
                text = declared
            doc = json.loads(text if text is not None else body.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if is_activitypub(ct):
                raise ValueError(f"the ActivityPub document is not JSON: {exc}") from None
        else:
            return read_actor(doc, token) or read_bluesky(doc, token) or PageReading()
    # XML too: Scrapy hands the callback an XmlResponse whose ``.css()`` finds a card's classes all the same
    fields, profile, actor = html_profile(body, url, token, encoding, case_sensitive)
    return PageReading(tuple(read_meta_robots(meta_directives) + fields), None, "html", profile=profile,
                       actor=actor)
