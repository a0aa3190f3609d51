"""Spawning ``/ai.txt``: robots.txt grammar about the AI use of a site's media, honoured in conservative mode.

Not a standard, so it is read only when ``CONSENTCRAWL_CONSERVATIVE`` is on, and then only ever denies: a path the
file disallows for our product token is an ai-training denial (``terms.signal.ai-txt``); an allowed path says
nothing. The file is parsed by our RFC 9309 parser (:mod:`consentcrawl.robots.rules`), so groups, ``*`` and ``$``
behave as in robots.txt; a leading ``*`` (``Disallow: *.jpg``) matches anywhere in the path. A file with rules but
no ``User-Agent`` line (as some generators write) is read as one group for every crawler.
"""

from __future__ import annotations

import codecs
import re
from functools import lru_cache

from ..robots.rules import RobotsRules
from ..robots.widetext import narrow
from ._common import url_path
from .base import Finding, Level, SignalResult, SignalVerdict, Statement
from .fetch import SignalFile, SignalFileStatus
from .purposes import VOCABULARY

__all__ = ["parse_ai_txt", "site_ai_txt"]

SIGNAL = "ai-txt"
DENIES = VOCABULARY["ai-txt"]["disallow"]
_USER_AGENT = re.compile(rb"^[ \t]*user[- ]?agent[ \t]*:", re.IGNORECASE | re.MULTILINE)


def parse_ai_txt(body: bytes | str, cut: bool = False) -> RobotsRules:
    """Parse an ai.txt body with the robots.txt parser (``cut``: the body is the start of a longer file, as a
    :class:`~consentcrawl.signals.fetch.SignalFile` says). Never raises."""
    return _parse(body, cut)[0]


def _parse(body: bytes | str, cut: bool = False) -> tuple[RobotsRules, int]:
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    return _parse_bytes(raw, cut)


@lru_cache(maxsize=64)
def _parse_bytes(raw: bytes, cut: bool) -> tuple[RobotsRules, int]:
    """The rules, and how many lines were added in front (line numbers in evidence are the file's own); remembered
    per body, so a fetched file is parsed once. A file in UTF-16 or UTF-32 is read in it (``robots.widetext.narrow``),
    and a UTF-8 one loses its byte order mark, before a line is put in front: the mark would no longer be at the
    start, where the parser drops it, but begin the file's first rule, which would then be no rule.

    A ``cut`` file is read up to the cut, as robots.txt is (RFC 9309 §2.5), whatever its encoding: a wide one cut
    inside a character (half a surrogate pair) leaves that character out, as the rest of the file is (read as a
    whole file, it does not decode with a byte order mark, and without one it is read as bytes, where no line is a
    rule). Its last line, cut, counts as robots.txt's does (:meth:`RobotsRules.parse`'s ``cut``)."""
    narrowed = narrow(raw, whole=not cut)
    if narrowed is None:
        return RobotsRules.parse(raw), 0  # one that does not decode disallows all, and says why
    raw = narrowed.removeprefix(codecs.BOM_UTF8)
    if _USER_AGENT.search(raw) is None:
        return RobotsRules.parse(b"User-Agent: *\n" + raw, cut=cut), 1
    return RobotsRules.parse(raw, cut=cut), 0


def site_ai_txt(file: SignalFile | None, url: str, token: str, *, conservative: bool = True) -> SignalResult:
    """The ai.txt verdict for ``url``. Outside conservative mode it is not read at all."""
    if not conservative:
        return SignalResult(SIGNAL, Level.SITE, source=file.url if file else "",
                            notes=("ai.txt is read in conservative mode only",))
    if file is None or file.status is SignalFileStatus.ABSENT:
        return SignalResult(SIGNAL, Level.SITE, source=file.url if file else "",
                            fetched_at=file.fetched_at if file else None)
    if file.status is SignalFileStatus.UNAVAILABLE:
        return SignalResult(SIGNAL, Level.SITE, unavailable=file.cause or "unavailable", covers=DENIES,
                            source=file.url, fetched_at=file.fetched_at)
    rules, shift = _parse(file.body, file.cut)
    path = url_path(url)
    match = rules.match(path, token)
    if match.allowed:
        return SignalResult(SIGNAL, Level.SITE, source=file.url, fetched_at=file.fetched_at,
                            notes=tuple(rules.warnings[:5]))
    statement = Statement(SIGNAL, Level.SITE, file.url, f"line {match.line - shift}" if match.line else "ai.txt",
                          match.rule or "", file.fetched_at, {"group": match.group})
    note = "ai.txt (Spawning, not a standard) disallows it: a training denial in conservative mode"
    return SignalResult(SIGNAL, Level.SITE, tuple(Finding(p, SignalVerdict.DENY, statement, note)
                                                  for p in sorted(DENIES)),
                        source=file.url, fetched_at=file.fetched_at)
