"""Whose page a request is: the URL's platform and person, read every way a server or a service could read it.

Pure: no Scrapy, no I/O, no clock. The engine (:mod:`consentcrawl.policy`) asks :func:`resolve` once per URL
(cached) and :func:`with_body` for a request with a body. When unsure whose page it is, the answer is ambiguous
and the engine denies:

- the URL itself, strictly and as a lenient server reads it (:meth:`Platform.read_subject`);
- a URL embedded in it (``api.example/fetch?url=http%3A%2F%2Fpeople.example%2Fu%2F107``: a fetch-through service
  or an archive fetches that page for us), decoded once and twice: its person is the request's person. Found by
  the platform's domain, not by a scheme, because the services repair what a WHATWG URL parser repairs:
  ``//people.example/u/107``, ``http:/people.example/…``, backslashes, and no scheme at all
  (``/web/2024/people.example/u/111``, as the Wayback Machine spells it);
- the same in a request body (``FormRequest(".../fetch", formdata={"url": ...})``), and with JSON's string
  escapes undone (``{"url": "http:\\u002f\\u002fpeople.example/u/107"}``: the service's JSON parser reads it so)
  and XML's character references (``people&#46;example``), and in the encoding its reader decodes it in (a
  declared charset, UTF-16 or UTF-32 as JSON parsers detect); a host is also read as IDNA maps it (NFKC, the
  ideographic full stop), as the services' WHATWG URL parsers do;
- a form body (urlencoded or multipart), which a PHP-style server reads like the query; a body of another type
  that mentions a query template's parameter is ambiguous.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from dataclasses import dataclass
from email.message import EmailMessage, Message, MIMEPart
from email.parser import BytesParser
from email.policy import HTTP
from typing import cast
from urllib.parse import unquote, urlencode

from .terms.platforms import Platform, PlatformRegistry, SubjectReading
from .terms.readings import is_plain, readings, render
from .urls import CanonicalURL, canonicalize, registered_domain

__all__ = ["Resolved", "embedded", "form_text", "resolve", "robots_paths", "with_body"]

#: where an embedded URL ends: what cannot be inside one written in a query value or a body
_END = re.compile(r"[\s\"'<>&]")
_patterns: dict[frozenset[str], re.Pattern[str] | None] = {}


@dataclass(slots=True)
class Resolved:
    """What a URL resolves to, kept by :class:`~consentcrawl.facts.FactReader`'s memo and copied into each
    request's facts; nothing assigns to one after :func:`resolve` makes it."""

    canonical: CanonicalURL
    platform: Platform | None
    reading: SubjectReading | None  #: None: on no platform
    unlisted_host: bool  #: an IP address, or a name with no registrable domain (``localhost``), no platform lists
    robots_paths: tuple[str, ...] = ()  #: the path+query spellings checked against robots.txt
    via: tuple[str, ...] = ()  #: the platform pages a fetch-through service would fetch for it (:func:`embedded`)


def resolve(platforms: PlatformRegistry, url: str) -> Resolved:
    """The URL's canonical form, its platform and whose page it is. Raises ValueError for an unreadable URL."""
    canonical = canonicalize(url)
    domain = registered_domain(canonical.host)
    platform = platforms.by_domain(domain)
    reading = platform.read_subject(url, canonical) if platform is not None else None
    unlisted = platform is None and (domain == "" or _is_ip(canonical.host))
    paths = robots_paths(url, canonical, platform)
    rest = url[url.find("://") + 3:]
    cut = min((i for i in (rest.find(c) for c in "/?#\\") if i >= 0), default=len(rest))
    platform, reading, via = embedded(platforms, rest[cut:], platform, reading)  # after the URL's own host
    unlisted = unlisted or (platform is None and embeds_unlisted_host(platforms, rest[cut:]))
    return Resolved(canonical, platform, reading, unlisted, paths, via)


def _domain_pattern(platforms: PlatformRegistry) -> re.Pattern[str] | None:
    """A platform's domain (or a subdomain of it) standing as a host: not inside a longer name, followed by the
    end of a host (after the trailing dot of a fully qualified name, ``people.example.``, which is the same host)."""
    domains = platforms.domains()
    if domains not in _patterns:
        names = "|".join(re.escape(d) for d in sorted(domains, key=len, reverse=True))
        _patterns[domains] = re.compile(rf"(?<![a-z0-9.-])(?:[a-z0-9-]+\.)*(?:{names})(?=\.?(?:[/\\:?#]|$))",
                                        re.IGNORECASE) if names else None
    return _patterns[domains]


def embedded(platforms: PlatformRegistry, text: str, platform: Platform | None, reading: SubjectReading | None
             ) -> tuple[Platform | None, SubjectReading | None, tuple[str, ...]]:
    """The platform and reading once the platform URLs embedded in ``text`` count (the rest of a URL after its
    host, or a request body), and, when they make an off-platform request a platform page's, those pages (a
    fetch-through service fetches them: their own robots.txt counts too)."""
    pattern = _domain_pattern(platforms)
    if pattern is None or not text:
        return platform, reading, ()
    seen: dict[str, tuple[Platform, SubjectReading]] = {}
    variants = {text, unquote(text), unquote(unquote(text))}
    if "\\" in text or "%5c" in text or "%5C" in text:  # JSON escapes, as a service's JSON parser undoes them
        variants |= {_json_unescaped(v) for v in variants}
        variants |= {unquote(v) for v in variants}
    if any("&" in v and ";" in v for v in variants):  # XML character references (``&#46;``) undone
        variants |= {html.unescape(v) for v in variants}
    if not all(v.isascii() for v in variants):  # a host as IDNA maps it (``people\u3002example``, fullwidth letters)
        variants |= {unicodedata.normalize("NFKC", v).translate(_IDNA_DOTS) for v in variants}
    for variant in variants:
        variant = variant.replace("\\", "/")
        for match in pattern.finditer(variant):
            end = _END.search(variant, match.end())
            inner = "http://" + variant[match.start():end.start() if end else len(variant)]
            try:
                canonical = canonicalize(inner)
            except ValueError:
                continue
            found = platforms.by_domain(registered_domain(canonical.host))
            if found is not None:
                seen[canonical.url] = (found, found.read_subject(inner, canonical))
    if not seen:
        return platform, reading, ()
    named = [(p, r) for p, r in seen.values() if r.ambiguous or r.subject is not None]
    if platform is None and len({p.name for p, _ in seen.values()}) == 1 and len(
            {(r.subject, r.ambiguous) for _, r in named}) <= 1:
        # an off-platform service fetching one platform's page for us: that page's platform and person
        inner_platform, inner_reading = named[0] if named else next(iter(seen.values()))
        return inner_platform, inner_reading, tuple(sorted(seen))
    if all(p is platform for p, _ in seen.values()) and all(r == reading for _, r in named):
        return platform, reading, ()  # links back to the same platform, naming no one else
    evidence = tuple((f"embedded {u}", r.subject) for u, (_, r) in seen.items())
    return platform, SubjectReading(None, True, (*(reading.readings if reading else ()), *evidence)), ()


#: the full stops IDNA (and so a WHATWG URL parser) reads as the dot between a host's labels, after NFKC
_IDNA_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
#: a JSON string's escapes: ``\\uXXXX`` (any character, ``/`` and the host's letters too) and ``\\/``, ``\\\\``...
_JSON_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|([\"\\/bfnrt]))")
_JSON_SIMPLE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _json_unescaped(text: str) -> str:
    """``text`` with JSON's string escapes undone: a fetch-through service that takes its target in a JSON body
    (``{"url": "http:\\u002f\\u002fpeople.example/u/107"}``) reads the URL its parser gives back, which names a
    platform's host that the text as written does not."""
    def one(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return chr(int(match.group(1), 16))
        return _JSON_SIMPLE.get(match.group(2), match.group(2))

    return _JSON_ESCAPE.sub(one, text)


#: a URL's host inside a text (after ``http:``, any number of slashes, or after a bare ``//``), userinfo skipped
_EMBEDDED_HOST = re.compile(r"(?i)(https?:[/\\]*|(?<![a-z0-9.:-])[/\\]{2})(?:[^/\\?#\s\"'<>@]*@)?"
                            r"(\[[^\]\s/\\]*\]|[^/\\?#\s\"'<>:&;]+)"
                            # an IPv4 address without a scheme, as a value or a path segment (a service adds http:)
                            r"|(?<=[/\\=])(\d{1,3}(?:\.\d{1,3}){3})(?=[/\\:?#&]|$)")


def embeds_unlisted_host(platforms: PlatformRegistry, text: str) -> bool:
    """Whether ``text`` (the rest of an off-platform URL after its host, or a request body) embeds a URL whose host
    is an IP address, or ``localhost``, that no platform lists: a fetch-through service would fetch that address
    for us, and whose server it is cannot be told (``terms.ip-host``, as for the URL itself). After a bare ``//``
    only an address or ``localhost`` counts (``/a//b`` is a path); without either, a dotted IPv4 address as a
    value or a path segment (``?url=127.0.0.1/u/1``, ``/web/2024/127.0.0.1/u/1``)."""
    if "/" not in text and "\\" not in text and "%" not in text:
        return False
    for variant in {text, unquote(text), unquote(unquote(text))}:
        for match in _EMBEDDED_HOST.finditer(variant):
            try:
                host = canonicalize("http://" + (match.group(2) or match.group(3)) + "/").host
            except ValueError:
                continue
            named = (match.group(1) or "")[:1] in ("h", "H")
            if (_is_ip(host) or host == "localhost" or (named and not registered_domain(host))) and \
                    platforms.by_domain(registered_domain(host)) is None:
                return True
    return False


def form_text(body: bytes, content_type: str) -> tuple[str, bool]:
    """A request body as urlencoded form text, and whether it was a form at all.

    urlencoded (or no type) is taken as it is; multipart/form-data is read part by part (files included, by
    name); any other body (and one without a type in UTF-16 or UTF-32) is not a form, and is returned decoded for
    :func:`with_body` to search. The type is read as PHP reads it: up to the first ``;``, ``,`` or space, in any
    case (``application/x-www-form-urlencoded, charset=UTF-8`` is a form to it).
    """
    kind = _TYPE_END.split(content_type.strip(), maxsplit=1)[0].lower()
    if kind == "" and json.detect_encoding(body) != "utf-8":  # UTF-16/32 is no form: a JSON parser reads it
        return "\n".join(_as_its_readers_read(body, content_type)), False
    if kind in ("", "application/x-www-form-urlencoded"):
        return body.decode("latin-1"), True
    if kind == "multipart/form-data":
        # the type's parameters as Python reads them (whatever came between the type and them), and the boundary
        # PHP reads when it is another one: every part a server may split the body into is read
        messages = [_multipart(body, content_type.partition(";")[2].strip())]
        php = _php_boundary(content_type)
        if php is not None and php != messages[0].get_boundary():
            messages.append(_multipart(body, 'boundary="{}"'.format(php.replace("\\", "\\\\").replace('"', '\\"'))))
        pairs: list[tuple[str, str]] = []
        for message in messages:
            for part in message.iter_parts() if message.is_multipart() else ():
                names = _part_names(part)
                if names:
                    pairs += [(name, value) for value in _part_values(part) for name in names
                              if (name, value) not in pairs]
        return urlencode(pairs), True
    return "\n".join(_as_its_readers_read(body, content_type)), False


def _part_values(part: MIMEPart) -> dict[str, None]:
    """A form part's value as sent (servers ignore a part's ``Content-Transfer-Encoding``, RFC 7578: PHP and busboy
    read ``107`` in a part that says ``base64``) and as decoded by that header."""
    decoded = part.get_payload(decode=True)
    values = [decoded.decode("utf-8", "replace") if isinstance(decoded, bytes) else ""]
    raw = part.get_payload(decode=False) if part.get("Content-Transfer-Encoding") is not None else None
    if isinstance(raw, str):  # its ASCII as sent (what is not ASCII in a part that claims an encoding is lost)
        values.append(raw)
    return dict.fromkeys(values)


def _multipart(body: bytes, params: str) -> EmailMessage:
    """``body`` parsed as ``multipart/form-data`` with these type parameters (its ``boundary``)."""
    return cast(EmailMessage, BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: multipart/form-data; " + params.encode("latin-1") + b"\r\n\r\n" + body))


def _php_boundary(content_type: str) -> str | None:
    """The boundary PHP reads in a body's type: the value after the first ``=`` that follows the first
    ``boundary`` anywhere in it (``xboundary=A`` too), up to ``,`` or ``;``, or in quotes; None for none."""
    at = content_type.find("boundary")
    at = at if at >= 0 else content_type.lower().find("boundary")
    equals = content_type.find("=", at) if at >= 0 else -1
    if equals < 0:
        return None
    rest = content_type[equals + 1:]
    return rest[1:].partition('"')[0] if rest.startswith('"') else _BOUNDARY_END.split(rest, maxsplit=1)[0]


#: where PHP ends an unquoted boundary
_BOUNDARY_END = re.compile(r"[,;]")
#: where PHP ends a request's media type (``SAPI``: the first ``;``, ``,`` or space)
_TYPE_END = re.compile(r"[;, ]")
#: one ``name=`` parameter of a ``Content-Disposition`` as written: its value in double quotes, single quotes or none
_PART_NAME = re.compile(r"""(?:^|;)\s*name\s*=\s*(?:"([^"]*)"|'([^']*)'|([^;\s]*))""", re.I)


def _part_names(part: Message) -> list[str]:
    """Every name a server may register a form part under: Python's reading of its ``Content-Disposition`` (the
    first ``name``, RFC 2231 ``name*`` decoded) and each ``name=`` as written, single quotes stripped (PHP takes
    the last one, and reads ``name='id'`` as ``id``). Names that differ make the part a parameter of each: a
    reading that names another person is then ambiguous."""
    name = part.get_param("name", header="content-disposition")
    names = [name] if isinstance(name, str) else []
    for header, raw in part.raw_items():  # as written: the parsed header keeps only the first of two names
        if header.lower() != "content-disposition":
            continue
        for found in _PART_NAME.finditer(str(raw).strip()):
            written = next(g for g in found.groups() if g is not None)
            if written not in names:
                names.append(written)
    return names


def _as_its_readers_read(body: bytes, content_type: str) -> dict[str, None]:
    """A body that is not a form in every way the service reading it may decode it: as Latin-1 (byte for byte),
    in the charset its type declares, in UTF-16 or UTF-32 as a JSON parser detects by itself (RFC 8259 section
    8.1, Python's ``json.loads`` of bytes), and with JSON's string escapes undone. Read as Latin-1 only,
    ``{"url": "http://people.example/u/107"}`` in UTF-16 names no host and ``{"\\u0069d": 108}`` no ``id``."""
    charset = next((p.split("=", 1)[1].strip().strip('"') for p in content_type.split(";")[1:]
                    if p.strip().lower().startswith("charset=")), "")
    readings = dict.fromkeys((body.decode("latin-1"),))
    for encoding in dict.fromkeys((charset, json.detect_encoding(body))):
        try:
            readings[body.decode(encoding, "replace")] = None
        except LookupError:  # a charset Python does not know (or none): no service is likely to read it either
            continue
    for text in [t for t in readings if "\\" in t]:
        readings[_json_unescaped(text)] = None
    return readings


def with_body(platform: Platform, url: str, form: str, is_form: bool, reading: SubjectReading) -> SubjectReading:
    """A body can name the person as a query would (PHP's ``$_REQUEST``): read the URL with the form's
    parameters too, on a platform with query templates; a reading that differs makes the URL ambiguous. A body
    that is not a form but mentions a template's parameter name is ambiguous."""
    params = {t.param for t in platform.profiles if t.param is not None}
    if not params or not form:
        return reading
    if not is_form:
        lowered = form.lower()
        if any(re.search(rf"\b{re.escape(p.lower())}\b", lowered) for p in params):
            return SubjectReading(None, True, (*reading.readings, ("a body that is not a form names a parameter",
                                                                   None)))
        return reading
    base = url.partition("#")[0]
    merged = base + ("&" if "?" in base else "?") + form
    read = platform.read_subject(merged, canonicalize(merged))
    if read == reading:
        return reading
    return SubjectReading(None, True, (*reading.readings, *read.readings, ("form body", read.subject)))


def _is_ip(host: str) -> bool:
    """A canonical host that is an IP address (dotted quad, or IPv6 without brackets)."""
    return ":" in host or (host[-1:].isdigit() and host.replace(".", "").isdigit())


def robots_paths(url: str, canonical: CanonicalURL, platform: Platform | None) -> tuple[str, ...]:
    """The spellings robots rules are checked against; any one of them disallowed denies.

    The canonical path with the trailing slash as written (the canonical form drops it for subject matching, but
    ``Disallow: /private/`` must still match ``/private/``); every lenient reading a server could serve
    (``/private%2Fx``, ``/private;a/x``, ``/x/..%2Fprivate/x`` are ``/private/x`` to many servers: RFC 9309
    matches the path as sent, and the site's rule is about the page it serves); and, on a platform whose ids
    are case-insensitive, the path in lower case (``Disallow: /@alice`` is about ``/@Alice`` too).
    """
    path = canonical.path_query
    if "/?" not in url and "/#" not in url and url[-1:] != "/":
        paths: tuple[str, ...] = (path,)  # no trailing slash written: the common case, without splitting the URL
    else:
        before_query = url.split("#", 1)[0].split("?", 1)[0]
        if before_query.endswith("/") and canonical.path != "/":
            paths = (canonical.path + "/" + (f"?{canonical.query}" if canonical.query else ""), path)
        else:
            paths = (path,)
    if not is_plain(url, canonical):
        paths += tuple(dict.fromkeys(r for r in (render(x.segments, x.params) for x in readings(url, canonical))
                                     if r not in paths))
    if _SCRIPT_ROUTE.match(path):  # a PHP front controller serves the path after the script as the site's own
        paths += tuple(dict.fromkeys(r for r in (_routed(p) for p in paths) if r is not None and r not in paths))
    if platform is not None and not platform.case_sensitive:
        paths += tuple(dict.fromkeys(p.lower() for p in paths if p.lower() != p and p.lower() not in paths))
    return paths


#: a path whose first segment is a PHP script with a path after it: a front controller's route (PATH_INFO)
_SCRIPT_ROUTE = re.compile(r"/[^/?]*\.php(?=/[^?])", re.I)


def _routed(path: str) -> str | None:
    """The route a front controller serves for ``path`` (``/index.php/u/1`` is ``/u/1``), or None."""
    found = _SCRIPT_ROUTE.match(path)
    return path[found.end():] if found else None
