"""Page-level robots rules: ``X-Robots-Tag`` and ``Robots-Tag`` headers and ``<meta name="robots">``, pure.

No Scrapy, no I/O, no clock (``now`` is passed in). Scrapy reads none of these (scrapy/scrapy#4866) and the one
consumer library, ``datadiligence``, reads one header line case-sensitively; these are operator terms, so every
header line and every meta tag counts, and a directive scoped to another crawler never relaxes a global one.

Decisions, each one for a reason:

* Everything is a union. Several header lines and several meta tags add up; a directive scoped to our product
  token adds to the global ones. Nothing here ever removes a directive (``index``/``all`` are kept but mean nothing).
* ``X-Robots-Tag`` items are split on commas, and ``NAME: rest`` is a user-agent scope only when NAME is not a
  known rule (``unavailable_after``, ``max-snippet`` ...) and ``rest`` starts with a known rule; the scope then
  lasts to the end of the line or the next ``UA:`` item (Google's reading). Anything else is a rule with a value,
  so an unknown ``max-foo: bar`` never scopes the rules after it away from us. ``unavailable_after`` takes every
  following comma-separated part that does not start a rule, so ``Friday, 25-Jun-2010 15:00:00 GMT`` stays one
  date. A proxy that folds two header lines into one can move a global rule into a preceding scope: that cannot be
  undone here.
* User agents are cut to their product token (leading letters, digits, ``-``, ``_``; ``ConsentCrawl/1.0`` ->
  ``consentcrawl``) and compared ignoring case, as in :mod:`consentcrawl.robots.rules`. ``*`` means everyone.
* ``Robots-Tag`` (draft-illyes-repext) is an RFC 9651 List of product tokens whose Parameters are the rules. It is
  parsed strictly, one header line at a time: a malformed line yields nothing and a note in ``warnings`` (RFC 9651
  would drop all the lines of the field together; per line gives the same result on valid input and keeps the
  valid lines' restrictions otherwise). Parameter keys must be lower case there, as RFC 9651 requires. Three
  lenient readings, each of which can only add restrictions: the draft's own example ends a member with a bare
  ``;`` (``ExampleBot;``), which is accepted; a member that is a known rule with no parameters (``Robots-Tag:
  noindex``, X-Robots-Tag habits) is read as that rule for everyone, with a warning; an inner list
  ``(a b);noindex`` gives the rules to every token in it. A line that is malformed only by upper-case keys or
  empty members (``*;NoIndex``, ``*;noindex,``) is read again with the keys lower-cased and the empty members
  left out, with a warning: a site's restriction is not lost to its spelling (X-Robots-Tag ignores case too).
* Meta tags count only in the document's head: the scan stops at ``<body`` (a head longer than
  :data:`META_SCAN_BYTES` is read in wider windows, pagehead.py), and skips comments and raw-text elements
  (``<script>``, ``<style>``, ``<title>``...) so a commented-out or quoted ``<meta>`` never counts. A meta
  between ``</head>`` and ``<body>`` counts (HTML puts it in the head).
* ``none`` is kept as ``none``; :func:`denials` and :func:`nofollow` read it as ``noindex`` + ``nofollow``.
* ``unavailable_after`` dates are read by :mod:`consentcrawl.robots.dates` (ISO 8601, RFC 822/850/asctime, a
  bare day, month and year; no zone means UTC). An unparseable date is ignored.
* Nothing here raises on any header value or body (fuzzed); :func:`denials` raises ``ValueError`` only for an
  unknown purpose, a programming error.

Speed, measured with CPython 3.11 (best of 15 x 2000 runs, CPU time, on a loaded 2-core machine) on a 21 KB page
whose head holds 30 tags, an inline script and a style, and whose body holds 160 paragraphs:
:func:`parse_meta_robots` without any robots meta takes about 35 µs (the pre-check: lower-casing the bytes and two
byte searches); with a ``<meta name="robots">`` about 85 µs (the head scan, about 2 µs per tag); ``html.parser``
merely tokenising the same page takes about 3 ms. :func:`parse_robots_headers` takes about 3 µs for seven headers
without a robots one and about 16 µs with two ``X-Robots-Tag`` lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from consentcrawl.decision import Evidence
from consentcrawl.pagehead import HEAD_SCAN_BYTES
from consentcrawl.purposes import check_purpose

from .dates import parse_date
from .structured_fields import sf_list

RAW_MAX = 300  #: characters of a header line or meta tag kept in :attr:`RobotsDirective.raw`
META_SCAN_BYTES = HEAD_SCAN_BYTES  #: the first window searched for a document's head (pagehead.py)
HEADER_MAX = 64 * 1024  #: longest header value parsed (the Robots-Tag draft asks for at least 8 KiB)

SOURCE_X_ROBOTS_TAG = "X-Robots-Tag"
SOURCE_ROBOTS_TAG = "Robots-Tag"
SOURCE_META = "meta"

#: rules written ``name: value``; a ``name:`` in this set is never taken for a user agent
VALUED_RULES: frozenset[str] = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})
#: every rule we know of (Google, Bing, Yandex and the de-facto AI ones); unknown rules are kept too
KNOWN_RULES: frozenset[str] = VALUED_RULES | frozenset({
    "all", "index", "follow", "noindex", "nofollow", "none", "noarchive", "nocache", "nosnippet", "noimageindex",
    "notranslate", "indexifembedded", "noai", "noimageai", "noml", "noodp", "noydir", "noyaca",
    "nositelinkssearchbox",
})
_ALIASES = {"unavailable-after": "unavailable_after"}
#: rules that stand for others
IMPLIES: dict[str, frozenset[str]] = {"none": frozenset({"noindex", "nofollow"})}

#: purpose -> the rules that deny it (signals.md, "Purpose mapping"). ``none`` is listed wherever ``noindex`` is,
#: although :data:`IMPLIES` would find it anyway. ``unavailable_after`` denies only once its date has passed.
PURPOSE_DENIALS: dict[str, frozenset[str]] = {
    "search-indexing": frozenset({"noindex", "none", "unavailable_after"}),
    "ai-training": frozenset({"noai", "noimageai", "noml"}),  # noml: "no machine learning"
    "ai-input": frozenset({"noai", "noarchive"}),  # Bing reads noarchive as "no AI use"
    "commercial-profiling": frozenset({"noindex", "none", "noarchive", "unavailable_after"}),
    "archiving": frozenset({"noarchive", "none", "noindex"}),
    "research": frozenset(),
}

#: rules that deny only when the operator opts in (``CONSENTCRAWL_ROBOTS_TAG_OPTIONS``): rule -> the purposes it then
#: denies. Neither says anything about use by itself: ``nosnippet`` forbids showing an excerpt, and a generated
#: answer quotes or paraphrases the page (Google applies it to its AI answers); ``nocache`` is the older spelling of
#: ``noarchive`` some sites still write, read like it.
OPTIONAL_DENIALS: dict[str, frozenset[str]] = {
    "nosnippet": frozenset({"ai-input"}),
    "nocache": frozenset({"ai-input", "commercial-profiling", "archiving"}),
}


@dataclass(frozen=True)
class RobotsDirective:
    """One rule as found, with where it came from, so a denial can name its evidence."""

    name: str  #: lower-case rule: "noindex", "none", "noai", "unavailable_after", "max-snippet", ...
    value: str | None  #: "25 Jun 2010 15:00:00 PST" for ``unavailable_after: 25 Jun 2010 15:00:00 PST``
    source: str  #: "X-Robots-Tag", "Robots-Tag" or "meta"
    scope: str | None  #: the product token it was scoped to, None when it applies to every crawler
    raw: str  #: the header line or meta tag as received, cut to 300 characters

    def to_evidence(self, url: str) -> Evidence:
        """This directive as decision evidence for the page at ``url``."""
        detail: dict[str, Any] = {"directive": self.name, "value": self.value, "scope": self.scope, "raw": self.raw}
        return Evidence(kind=self.source if self.source != SOURCE_META else "meta-robots", source=url, detail=detail)


# --- shared helpers -----------------------------------------------------------------------------------------------

_PRODUCT = re.compile(r"[A-Za-z0-9_-]+")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}\Z")
_WORD_SEP = re.compile(r"[\s;]+")
_RULE_END = re.compile(r"[\s:;]")
_PARAM_KEY = re.compile(r";\s*([A-Za-z][A-Za-z0-9_.*-]*)")


def product_token(user_agent: str) -> str:
    """``ConsentCrawl/1.0 (+https://...)`` -> ``consentcrawl``; "" when there is none."""
    m = _PRODUCT.match(user_agent.strip()) if isinstance(user_agent, str) else None
    return m.group().lower() if m else ""


def _norm(name: str) -> str:
    name = name.strip().lower()
    return _ALIASES.get(name, name)


def _split(piece: str) -> tuple[str, str | None]:
    """``"name: value"`` -> ``("name", "value")``; ``"name"`` -> ``("name", None)``."""
    head, sep, rest = piece.partition(":")
    return head.strip(), (rest.strip() if sep else None)


def _scope_of(head: str) -> str | None:
    """The scope a ``UA:`` prefix names: None for ``*``, else the product token."""
    head = head.strip()
    return None if head == "*" else product_token(head)


def _is_scope(head: str, rest: str | None) -> bool:
    """Whether ``head: rest`` is a user-agent prefix rather than a rule with a value.

    Only when ``rest`` starts with a known rule: ``otherbot: futurerule, noindex`` then keeps ``noindex`` global,
    which can only be stricter than reading ``otherbot`` as the scope of the rest of the line.
    """
    if rest is None or not rest[:1].isalpha() or _norm(head) in KNOWN_RULES:
        return False
    if _norm(_RULE_END.split(rest, maxsplit=1)[0]) not in KNOWN_RULES:
        return False
    return head.strip() == "*" or bool(product_token(head))


def _starts_rule(piece: str, scoped: bool) -> bool:
    """Whether a comma-separated part after an ``unavailable_after`` date starts a new rule (else: more date)."""
    head, rest = _split(piece)
    if _norm(head) in KNOWN_RULES:
        return True
    if rest is None:
        words = [w for w in _WORD_SEP.split(head) if w]
        return bool(words) and all(_norm(w) in KNOWN_RULES for w in words)
    return scoped and _is_scope(head, rest)


def _parse_rules(text: str, *, scoped: bool) -> list[list[Any]]:
    """Comma-separated rules -> ``[scope, name, value]`` lists; ``scoped`` lets ``UA:`` prefixes switch scope."""
    out: list[list[Any]] = []
    scope: str | None = None
    date_rule: list[Any] | None = None  # the unavailable_after rule still taking comma-separated date parts
    for part in text.split(","):
        piece = part.strip()
        if not piece:
            continue
        if date_rule is not None:
            if not _starts_rule(piece, scoped):
                if len(date_rule[2] or "") < 200:  # a date is short; past that it is junk (and stays linear)
                    date_rule[2] = f"{date_rule[2]}, {piece}" if date_rule[2] else piece
                continue
            date_rule = None
        head, rest = _split(piece)
        if scoped and _is_scope(head, rest):
            scope = _scope_of(head)
            head, rest = _split(rest or "")
        if rest is None:
            for word in _WORD_SEP.split(head):  # "noindex nofollow" or "noindex;nofollow", slips for a comma
                name = _norm(word)
                if _NAME.match(name):
                    out.append([scope, name, None])
            continue
        name = _norm(head)
        if not _NAME.match(name):
            continue
        rule = [scope, name, rest or None]
        out.append(rule)
        if name == "unavailable_after":
            date_rule = rule
    return out


def header_text(value: object) -> str | None:
    """A header name or value as text (UTF-8, else Latin-1); None for anything that is not str or bytes."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    return None


_HEADER_NAMES = frozenset({"x-robots-tag", "robots-tag"})


def header_lines(headers: Any, names: frozenset[str]) -> Iterator[tuple[str, str, str]]:
    """(lower-case name, name as sent, value) of every header line named in ``names`` (lower case), in order.

    ``headers`` is a list of pairs, a dict, Scrapy ``Headers`` (a list of values per name) or httpx ``Headers``;
    anything else yields nothing, and other headers are not even decoded. Never raises. The robots tags and the
    operator signals (:mod:`consentcrawl.signals`) both read a response's headers with it.
    """
    if headers is None:
        return
    try:
        if hasattr(headers, "multi_items"):  # httpx: items() would join repeated lines
            items = headers.multi_items()
        elif hasattr(headers, "items"):
            items = headers.items()
        else:
            items = headers
        iterator = iter(items)
    except Exception:  # noqa: BLE001 - a broken header object is no statement
        return
    for entry in iterator:
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            continue
        name = header_text(entry[0])
        if name is None or len(name) > 64:
            continue
        lname = name.strip().lower()
        if lname not in names:
            continue
        values = entry[1] if isinstance(entry[1], (list, tuple)) else (entry[1],)
        for value in values:
            text = header_text(value)
            if text is not None:
                yield lname, name.strip(), text


def _directives(rules: list[list[Any]], source: str, raw: str, token: str) -> list[RobotsDirective]:
    raw = raw[:RAW_MAX]
    return [RobotsDirective(name, value, source, scope, raw) for scope, name, value in rules
            if scope is None or (token and scope == token)]


# --- headers ------------------------------------------------------------------------------------------------------

def parse_robots_headers(headers: Iterable[tuple[str, str]], token: str, *,
                         warnings: list[str] | None = None) -> list[RobotsDirective]:
    """All X-Robots-Tag and Robots-Tag directives that apply to ``token`` (global ones and ones scoped to it).

    ``headers`` is any iterable of (name, value) pairs, str or bytes; Scrapy and httpx header objects work too.
    A malformed Robots-Tag line, or a value over :data:`HEADER_MAX`, is noted in ``warnings`` when given.
    """
    token = product_token(token)
    found: list[RobotsDirective] = []
    for lname, name, value in header_lines(headers, _HEADER_NAMES):
        raw = f"{name}: {value}"
        if len(value) > HEADER_MAX:
            if warnings is not None:
                warnings.append(f"{name}: value of {len(value)} characters, only the first {HEADER_MAX} read")
            value = value[:HEADER_MAX]
        if lname == "x-robots-tag":
            found += _directives(_parse_rules(value, scoped=True), SOURCE_X_ROBOTS_TAG, raw, token)
            continue
        members = sf_list(value)
        if members is None:
            members = sf_list(_mended(value))
            if warnings is not None:
                warnings.append(f"Robots-Tag: malformed structured field {'read leniently' if members else 'ignored'}"
                                f": {value[:RAW_MAX]!r}")
            if not members:
                continue
        rules: list[list[Any]] = []
        for agent, params in members:
            if not params and _norm(agent) in KNOWN_RULES - {"all", "index", "follow"}:
                # `Robots-Tag: noindex` (X-Robots-Tag habits): valid, but literally "no rules for a bot called
                # noindex". Read it as the global rule the operator meant; it can only add a restriction.
                rules.append([None, _norm(agent), None])
                if warnings is not None:
                    warnings.append(f"Robots-Tag: {agent!r} has no parameters; read as a global rule")
                continue
            scope = _scope_of(agent)
            if scope == "":
                continue
            for key, param in params.items():
                if param is not False:
                    rules.append([scope, _norm(key), None if param is True else str(param)])
        found += _directives(rules, SOURCE_ROBOTS_TAG, raw, token)
    return list(dict.fromkeys(found))


def _mended(value: str) -> str:
    """A Robots-Tag value with its parameter keys lower-cased and its empty list members left out: the two
    slips that make a plainly meant restriction invalid RFC 9651. Anything else stays malformed."""
    value = _PARAM_KEY.sub(lambda m: ";" + m.group(1).lower(), value)
    return ",".join(member for member in value.split(",") if member.strip())


# --- decisions ----------------------------------------------------------------------------------------------------

def denying_rules(purposes: Iterable[str], options: Iterable[str] = ()) -> frozenset[str]:
    """The rules that deny a crawl judged as ``purposes`` (a custom purpose: every built-in purpose it counts as),
    with the opt-in rules of ``options`` (:data:`OPTIONAL_DENIALS`). Raises ``ValueError`` for an unknown purpose or
    option."""
    wanted = {check_purpose(p) for p in purposes}
    rules: set[str] = set()
    for purpose in wanted:
        rules |= PURPOSE_DENIALS[purpose]
    for option in options:
        if option not in OPTIONAL_DENIALS:
            raise ValueError(f"unknown robots tag option {option!r} (known: {', '.join(sorted(OPTIONAL_DENIALS))})")
        if OPTIONAL_DENIALS[option] & wanted:
            rules.add(option)
    return frozenset(rules)


def denials(directives: Iterable[RobotsDirective], purpose: str, now: datetime, *,
            rules: frozenset[str] | None = None) -> list[RobotsDirective]:
    """The directives that deny ``purpose`` (empty: none does), by :data:`PURPOSE_DENIALS`, or by ``rules`` when
    given (:func:`denying_rules`: a custom purpose, opt-in rules).

    ``unavailable_after`` denies once its date is at or before ``now`` (naive ``now`` is read as UTC); an
    unparseable date is ignored. Raises ``ValueError`` for an unknown purpose.
    """
    denying = PURPOSE_DENIALS[check_purpose(purpose)] if rules is None else rules
    if not denying:
        return []
    out: list[RobotsDirective] = []
    for d in directives:
        if d.name == "unavailable_after":
            if "unavailable_after" in denying and _expired(d.value, now):
                out.append(d)
        elif d.name in denying or IMPLIES.get(d.name, frozenset()) & denying:
            out.append(d)
    return out


def nofollow(directives: Iterable[RobotsDirective]) -> bool:
    """Whether the links of the page must not be followed (``nofollow`` or ``none``)."""
    return any(d.name == "nofollow" or "nofollow" in IMPLIES.get(d.name, ()) for d in directives)


def _expired(value: str | None, now: datetime) -> bool:
    when = parse_date(value) if value else None
    if when is None:
        return False
    try:
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        return when <= now
    except (OverflowError, ValueError, TypeError, AttributeError):
        return False
