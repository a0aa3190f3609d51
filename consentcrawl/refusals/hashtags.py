"""Finding refusal hashtags (``#nobot``, ``#noai``, ``#no<token>``, ...) in a field of a person's profile.

A job of its own, apart from deciding which fields are the person's (:mod:`consentcrawl.refusals.forms`): the
same matching runs over an h-card property, an ActivityPub ``summary`` and a Bluesky ``description``, and the
ways a tag can be disguised are the same in each. Pure: no I/O.

Hashtags are read in the text a reader sees: HTML stripped (entities decoded by the parser; a plain-text field is
not decoded, so a literal ``&#35;nobot`` there is not a tag), NFKC-normalised (``#nobot`` in full-width letters is
``#nobot``), soft hyphens and zero-width characters removed, URLs removed (``https://x.example/#nobot`` is no
hashtag), matched ignoring case on word boundaries as Mastodon delimits hashtags: not after a letter, digit,
``_``, ``/``, ``=``, ``)`` or ``&``, and not followed by a letter, digit or ``_`` (``#nobotany`` is not ``#nobot``).
Every normalisation can only add a match, never hide one.
"""

from __future__ import annotations

import re
import unicodedata

from .purposes import HASHTAGS

EXCERPT = 40  #: characters of context kept on each side of a hashtag (evidence, not the whole bio)

_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u034f\u180e\u200b\u200c\u200d\u2060\ufeff"))
_URL = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)\S+", re.IGNORECASE)
_TAG_CACHE: dict[str, re.Pattern[str]] = {}


def _tag_pattern(token: str) -> re.Pattern[str]:
    pattern = _TAG_CACHE.get(token)
    if pattern is None:
        names = list(HASHTAGS)
        own = f"no{token.lower()}" if token else ""
        if own and own not in names:
            names.append(own)
        names.sort(key=len, reverse=True)
        pattern = re.compile(r"(?<![\w/=)&#])#(" + "|".join(map(re.escape, names)) + r")(?!\w)", re.IGNORECASE)
        _TAG_CACHE[token] = pattern
    return pattern


def _visible(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    return _URL.sub(" ", text)


def hashtags(text: str, token: str) -> list[tuple[str, str]]:
    """The refusal hashtags in ``text`` (already stripped of HTML): ``(form, excerpt)`` in order of appearance."""
    if "#" not in text and "\uff03" not in text and "\ufe5f" not in text:  # full-width and small number signs
        return []
    seen = _visible(text)
    out = []
    for m in _tag_pattern(token).finditer(seen):
        name = m.group(1).lower()
        form = f"hashtag.{name}" if name in HASHTAGS else "hashtag.no-token"
        start, end = max(0, m.start() - EXCERPT), min(len(seen), m.end() + EXCERPT)
        excerpt = " ".join(seen[start:end].split())
        out.append((form, excerpt))
    return out
