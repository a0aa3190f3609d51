"""RSL 1.0 (Really Simple Licensing): finding a site's licence, reading it safely, resolving it per purpose.

Discovery (:func:`site_rsl_links`, :func:`response_rsl_links`):

- robots.txt ``License: ABSOLUTE-URL``: global, outside groups, for every crawler (site level);
- the header ``Link: <URL>; rel="license"; type="application/rsl+xml"`` and the HTML
  ``<link rel="license" type="application/rsl+xml" href="URL">`` (response level). A ``rel="license"`` link of
  another type (a Creative Commons page) is not an RSL licence and is not followed.

The licence document (:func:`parse_rsl`) is parsed with ``defusedxml`` with DTDs forbidden outright: no entity
expansion, no external entities, no network. A document that is not RSL XML cannot be read, which is treated like
an unreachable licence: the site said there are terms, we cannot tell what they are (``terms.signal-unavailable.rsl``).

Per purpose (:func:`evaluate_rsl`), for the ``<content>`` whose ``url`` matches (robots-style pattern or full URL;
the longest match wins, ties apply together):

- usage (``all``, ``ai-all``, ``ai-train``, ``ai-input``, ``ai-index``, ``search``) speaks about ai-training,
  ai-input and search-indexing; user classes (``commercial``, ``non-commercial``, ``education``, ...) about who
  we are: research is ``education``/``non-commercial``, every other purpose ``commercial`` (conservative);
- a ``<prohibits>`` naming the purpose or our class denies; a ``<permits>`` of a type that does not name it denies
  (only the listed uses are granted); a licence that names neither says nothing about research or archiving;
- a ``server`` attribute (a licence must be obtained, even a free one) denies every purpose, and a ``<payment>``
  (other than ``type="free"``) denies what the licence would grant, until the operator records a licence for the
  site (``licence_held``, phase 2 wires it to ``platforms.yaml``);
- several ``<license>`` elements are alternatives: any one that allows is enough; commercial-profiling is never
  allowed by RSL (only an agreement in the platform terms file can); a licence limited by geography (``type="geo"``)
  never allows, since the crawl's location is not known (it still denies what it prohibits).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET

from ..pagehead import head_tags
from ._common import PagePath, PathPattern, header_lines, origin_of, url_path
from .base import Finding, Level, SignalResult, SignalVerdict, Statement
from .fetch import SignalFile, SignalFileStatus
from .purposes import BASE_PURPOSES, PROFILING, VOCABULARY

__all__ = ["MAX_LICENCES", "RslContent", "RslDocument", "RslLicense", "RslLink", "content_pattern", "evaluate_rsl",
           "licences_to_fetch", "parse_rsl", "response_rsl_links", "selected_contents", "site_rsl", "site_rsl_links"]

SIGNAL = "rsl"
NAMESPACE = "https://rslstandard.org/rsl"
MEDIA_TYPE = "application/rsl+xml"
#: distinct licence URLs fetched for one robots.txt or one response: a site names them, so it could aim the crawler
#: at anyone with thousands; the ones left unfetched deny what RSL covers, as an unavailable licence does
MAX_LICENCES = 16
USAGE = VOCABULARY["rsl-usage"]
USERS = VOCABULARY["rsl-user"]
#: the purposes RSL usage tokens speak about
USAGE_PURPOSES = frozenset().union(*USAGE.values())
_TOKENS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class RslLink:
    """Where a licence was found."""

    url: str  #: the licence document's absolute URL
    level: Level
    source: str  #: robots.txt URL, or the page
    where: str  #: "line 3", "header Link", "<link rel=license>"
    raw: str
    #: a ``License:`` line with a relative URL (RSL asks for an absolute one): read, since the site plainly names
    #: its licence, but only for what it denies; a malformed line never grants anything.
    denials_only: bool = False


@dataclass(frozen=True)
class RslLicense:
    index: int
    permits: dict[str, frozenset[str]] = field(default_factory=dict)  #: type -> tokens
    prohibits: dict[str, frozenset[str]] = field(default_factory=dict)
    payment: str | None = None  #: the payment type ("" when untyped); None: no <payment>, free


@dataclass(frozen=True)
class RslContent:
    url: str
    server: str | None
    licenses: tuple[RslLicense, ...]
    index: int

    def pattern_length(self, page_url: str | PagePath) -> int | None:
        """The length of this content's pattern when it matches ``page_url``, else None."""
        page = page_url if isinstance(page_url, PagePath) else PagePath(page_url)
        full, origin, pattern = _scope(self.url)
        if pattern is None or (full and origin != page.origin):
            return None
        return pattern.length if pattern.matches_page(page) else None


def content_pattern(content: RslContent) -> PathPattern | None:
    """The path pattern of a ``<content url>`` (None: it names no path and matches no page)."""
    return _scope(content.url)[2]


def content_scope(content: RslContent) -> tuple[bool, str | None, PathPattern | None]:
    """A ``<content url>`` as :meth:`RslContent.pattern_length` reads it: whether it is a full URL (then it applies
    on that origin only), its origin, and its path pattern (None: it names no path and matches no page)."""
    return _scope(content.url)


@lru_cache(maxsize=1024)
def _scope(target: str) -> tuple[bool, str | None, PathPattern | None]:
    """A ``<content url>`` read once: whether it is a full URL, its origin, and its path pattern (None: it names
    no path, so it matches no page)."""
    full = target.startswith(("http://", "https://"))
    origin = None
    if full:
        origin, target = origin_of(target), url_path(target)
    return full, origin, PathPattern(target) if target.startswith(("/", "*")) else None


@dataclass(frozen=True)
class RslDocument:
    contents: tuple[RslContent, ...] = ()
    error: str | None = None  #: why the document could not be read (then it has no contents)


def _local(tag: object) -> str | None:
    """The element's local name in the RSL namespace, or with no namespace at all (lenient: a document written
    without ``xmlns`` is still unmistakably RSL); None for any other namespace."""
    if not isinstance(tag, str):
        return None
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return local if ns.rstrip("/") == NAMESPACE else None
    return tag


def _children(element: Element, name: str) -> list[Element]:
    return [child for child in element if _local(child.tag) == name]


def _tokens(element: Element) -> frozenset[str]:
    return frozenset(t.lower() for t in _TOKENS.split(element.text or "") if t)


def parse_rsl(body: bytes | str) -> RslDocument:
    """Parse an RSL licence document. Never raises; a document it cannot read has ``error`` set.

    Remembered per body (a fetched licence is parsed once, not once per request)."""
    if isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    return _parse_rsl(body)


@lru_cache(maxsize=64)
def _parse_rsl(body: bytes | str) -> RslDocument:
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure (ParseError, DTDForbidden, ...) is "unreadable"
        return RslDocument(error=f"not readable XML ({type(exc).__name__})")
    roots = [root] if _local(root.tag) == "rsl" else [e for e in root.iter() if _local(e.tag) == "rsl"]
    if not roots:
        return RslDocument(error="no <rsl> element in the RSL namespace")
    contents: list[RslContent] = []
    for rsl in roots:
        for content in _children(rsl, "content"):
            url = (content.get("url") or "").strip()
            if not url:
                continue
            licenses: list[RslLicense] = []
            for index, lic in enumerate(_children(content, "license")):
                permits: dict[str, frozenset[str]] = {}
                prohibits: dict[str, frozenset[str]] = {}
                for tag, into in (("permits", permits), ("prohibits", prohibits)):
                    for el in _children(lic, tag):
                        kind = (el.get("type") or "usage").strip().lower()
                        into[kind] = into.get(kind, frozenset()) | _tokens(el)
                payments = _children(lic, "payment")
                payment = None
                if payments:
                    types = {(p.get("type") or "").strip().lower() for p in payments}
                    payment = "free" if types == {"free"} else ",".join(sorted(t for t in types if t != "free"))
                licenses.append(RslLicense(index, permits, prohibits, payment))
            server = (content.get("server") or "").strip() or None
            contents.append(RslContent(url, server, tuple(licenses), len(contents)))
    if not contents:
        return RslDocument(error="no <content url> element")
    return RslDocument(tuple(contents))


def _classes(purpose: str) -> frozenset[str]:
    return frozenset(token for token, purposes in USERS.items() if purpose in purposes)


def _judge(lic: RslLicense, purpose: str, server: str | None, held: bool) -> tuple[SignalVerdict, str]:
    classes = _classes(purpose)
    usage_purpose = purpose in USAGE_PURPOSES
    prohibited_usage = {t for t in lic.prohibits.get("usage", ()) if purpose in USAGE.get(t, ())}
    if prohibited_usage:
        return SignalVerdict.DENY, f"prohibits usage {', '.join(sorted(prohibited_usage))}"
    prohibited_users = lic.prohibits.get("user", frozenset()) & classes
    if prohibited_users:
        return SignalVerdict.DENY, f"prohibits user {', '.join(sorted(prohibited_users))}"
    if usage_purpose and "usage" in lic.permits and not any(purpose in USAGE.get(t, ()) for t in lic.permits["usage"]):
        return SignalVerdict.DENY, f"permits only usage {', '.join(sorted(lic.permits['usage'])) or '(none)'}"
    if "user" in lic.permits and not lic.permits["user"] & classes:
        return SignalVerdict.DENY, f"permits only user {', '.join(sorted(lic.permits['user'])) or '(none)'}"
    granted = usage_purpose or bool(lic.permits.get("user", frozenset()) & classes)
    if server and not held:
        return SignalVerdict.DENY, f"a licence must be obtained from the licence server {server}"
    if not granted:
        return SignalVerdict.UNKNOWN, "the licence does not speak about this purpose"
    if lic.payment not in (None, "free") and not held:
        return SignalVerdict.DENY, f"payment required ({lic.payment or 'untyped'}): no licence recorded for the site"
    if purpose == PROFILING:
        return SignalVerdict.UNKNOWN, "RSL never grants commercial profiling (only a recorded agreement can)"
    if "geo" in lic.permits or "geo" in lic.prohibits:
        return SignalVerdict.UNKNOWN, "the licence is limited by geography, and the crawl's location is not known"
    return SignalVerdict.ALLOW, "permitted" + (" under the recorded licence" if held and (server or lic.payment)
                                               else "")


def selected_contents(document: RslDocument, page_url: str | PagePath) -> list[RslContent]:
    """The ``<content>`` elements that apply to ``page_url``: those with the longest matching pattern, together.
    Nothing else of the page's URL counts, so two pages that select the same elements have the same outcome."""
    page = page_url if isinstance(page_url, PagePath) else PagePath(page_url)
    longest, chosen = -1, []
    for content in document.contents:  # one pass: this runs for every new URL of a site with a licence
        n = content.pattern_length(page)
        if n is not None:
            if n > longest:
                longest, chosen = n, [content]
            elif n == longest:
                chosen.append(content)
    return chosen


def evaluate_rsl(document: RslDocument, page_url: str, link: RslLink, *, fetched_at: datetime | None = None,
                 licence_held: str | None = None, licence_source: str = "") -> SignalResult:
    """The licence's verdict per purpose for ``page_url``. ``licence_held``: the operator's recorded licence
    reference for this site, which lifts ``server`` and ``<payment>`` (never a prohibition); ``licence_source``:
    where the operator recorded it (cited with it)."""
    chosen = selected_contents(document, page_url)
    if not chosen:
        return SignalResult(SIGNAL, link.level, source=link.url, fetched_at=fetched_at,
                            notes=(f"no <content url> matches {url_path(page_url)}",))
    findings: list[Finding] = []
    held = bool(licence_held and licence_held.strip())
    for content in chosen:
        detail: dict[str, Any] = {"content_url": content.url, "found_by": f"{link.where} of {link.source}"}
        if content.server:
            detail["server"] = content.server
        if held:
            detail["licence_held"] = licence_held
            if licence_source:
                detail["licence_held_in"] = licence_source
        for purpose in sorted(BASE_PURPOSES):
            judged: list[tuple[RslLicense | None, SignalVerdict, str]] = [
                (lic, *_judge(lic, purpose, content.server, held)) for lic in content.licenses]
            if not judged:
                if content.server and not held:
                    judged = [(None, SignalVerdict.DENY, f"a licence must be obtained from {content.server}")]
                else:
                    continue
            allows = [j for j in judged if j[1] is SignalVerdict.ALLOW]
            denies = [j for j in judged if j[1] is SignalVerdict.DENY]
            if link.denials_only and not denies:
                continue
            lic, verdict, why = (denies if link.denials_only else allows or denies or judged)[0]
            where = f"<content url={content.url!r}>" + (f" <license> {lic.index + 1}" if lic is not None else "")
            raw = content.url if lic is None else _describe(lic)
            statement = Statement(SIGNAL, link.level, link.url, where, raw, fetched_at, detail)
            findings.append(Finding(purpose, verdict, statement, why))
    return SignalResult(SIGNAL, link.level, tuple(findings), source=link.url, fetched_at=fetched_at)


def _describe(lic: RslLicense) -> str:
    parts = [f"permits {k}: {' '.join(sorted(v))}" for k, v in sorted(lic.permits.items())]
    parts += [f"prohibits {k}: {' '.join(sorted(v))}" for k, v in sorted(lic.prohibits.items())]
    if lic.payment is not None:
        parts.append(f"payment {lic.payment or '(untyped)'}")
    return "; ".join(parts) or "(no terms)"


def site_rsl(file: SignalFile | None, page_url: str, link: RslLink, *,
             licence_held: str | None = None, licence_source: str = "") -> SignalResult:
    """A licence file's verdict: 4xx is no statement; unavailable or unreadable denies every purpose
    (``terms.signal-unavailable.rsl``)."""
    if file is None or file.status is SignalFileStatus.ABSENT:
        return SignalResult(SIGNAL, link.level, source=link.url, fetched_at=file.fetched_at if file else None,
                            notes=(f"licence {link.url} not found",) if file else ())
    if file.status is SignalFileStatus.UNAVAILABLE:
        return SignalResult(SIGNAL, link.level, unavailable=file.cause or "unavailable", covers=BASE_PURPOSES,
                            source=link.url, fetched_at=file.fetched_at)
    document = parse_rsl(file.body)
    if document.error is not None:
        return SignalResult(SIGNAL, link.level, unavailable=f"licence unreadable: {document.error}",
                            covers=BASE_PURPOSES, source=link.url, fetched_at=file.fetched_at)
    return evaluate_rsl(document, page_url, link, fetched_at=file.fetched_at, licence_held=licence_held,
                        licence_source=licence_source)


# -- discovery ---------------------------------------------------------------------------------------------------

def licences_to_fetch(urls: Iterable[str]) -> list[str]:
    """The licence URLs to fetch: each once, in the order named, at most :data:`MAX_LICENCES` (the others are left
    unfetched, and deny as unavailable when the decision reads them)."""
    return list(dict.fromkeys(urls))[:MAX_LICENCES]


def site_rsl_links(robots_url: str, license_lines: Iterable[tuple[int, str]]) -> list[RslLink]:
    """``License:`` lines of robots.txt (``RobotsRules.global_lines("license")``) as licence links."""
    out: list[RslLink] = []
    for line, value in license_lines:
        value = value.strip()
        if not value:
            continue
        url = _web(_join(robots_url, value))
        if url:
            relative = not _web(value)
            where = f"line {line}" + (" (a relative URL: read for its denials only)" if relative else "")
            out.append(RslLink(url, Level.SITE, robots_url, where, f"License: {value}", denials_only=relative))
    return out


def _web(url: str) -> str:
    """``url`` with its scheme in lower case if it is an absolute http(s) URL (RFC 3986: schemes are
    case-insensitive, so ``HTTPS://`` names a licence as well as ``https://``), else ``""``."""
    head = url[:8].lower()
    for scheme in ("http://", "https://"):
        if head.startswith(scheme):
            return scheme + url[len(scheme):]
    return ""


_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,=\s]+\s*(?:=\s*(?:\"[^\"]*\"|[^;,\s]*))?)*)")
_PARAM = re.compile(r";\s*([^;,=\s]+)\s*(?:=\s*(?:\"([^\"]*)\"|([^;,\s]*)))?")


def _link_header(value: str) -> Iterable[tuple[str, dict[str, str]]]:
    for m in _LINK.finditer(value[:16384]):
        params: dict[str, str] = {}
        for p in _PARAM.finditer(m.group(2)):
            key = p.group(1).lower()
            if key not in params:
                params[key] = p.group(2) if p.group(2) is not None else (p.group(3) or "")
        yield m.group(1).strip(), params


def _is_rsl(rel: str, media_type: str) -> bool:
    return "license" in rel.lower().split() and media_type.strip().lower() == MEDIA_TYPE


def response_rsl_links(url: str, headers: Any = None, body: bytes | str | None = None,
                       encoding: str = "utf-8") -> list[RslLink]:
    """RSL licences a response points to: ``Link`` headers and ``<link rel="license">`` in its head."""
    out: list[RslLink] = []
    for _l, _name, value in header_lines(headers, frozenset({"link"})):
        for target, params in _link_header(value):
            if _is_rsl(params.get("rel", ""), params.get("type", "")):
                out.append(RslLink(_join(url, target), Level.RESPONSE, url, "header Link", value))
    if body is not None:
        for tag, attrs, raw in head_tags(body, encoding):
            if tag == "link" and attrs.get("href") and _is_rsl(attrs.get("rel", ""), attrs.get("type", "")):
                out.append(RslLink(_join(url, attrs["href"].strip()), Level.RESPONSE, url, "<link rel=license>",
                                   raw))
    return [replace(link, url=url) for link in out if (url := _web(link.url))]


def _join(base: str, target: str) -> str:
    """``target`` read against ``base``. One no parser reads (``http://[bad/licence.xml``) is kept as written, with
    the base's scheme where it has none: the site named a licence, so its fetch is tried, fails, and the page is
    denied as its licence is unavailable, never read as naming none."""
    try:
        return urljoin(base, target)
    except ValueError:
        return target if "://" in target else f"{base.partition(':')[0]}:{target}"
