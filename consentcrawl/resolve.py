"""Whose page a request is: the URL's platform and person, read every way a server or a service could read it.

Pure: no Scrapy, no I/O, no clock. The engine (:mod:`consentcrawl.policy`) asks :func:`resolve` once per URL
(cached) and :func:`with_body` for a request with a body. When unsure whose page it is, the answer is ambiguous
and the engine denies:

- the URL itself, strictly and as a lenient server reads it (:meth:`Platform.read_subject`);
- a URL embedded in it (``api.example/fetch?url=http%3A%2F%2Fpeople.example%2Fu%2F107``: a fetch-through service
  or an archive fetches that page for us), decoded once and twice: its person is the request's person;
- a form body (urlencoded or multipart), which a PHP-style server reads like the query; a body of another type
  that mentions a query template's parameter is ambiguous.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import unquote, urlencode

from .terms.platforms import Platform, PlatformRegistry, SubjectReading
from .urls import CanonicalURL, canonicalize, registered_domain

__all__ = ["Resolved", "form_text", "resolve", "with_body"]

#: an absolute http(s) URL inside another URL's path or query (after decoding)
_EMBEDDED = re.compile(r"https?://[^\s\"'<>&]+", re.IGNORECASE)


@dataclass(frozen=True)
class Resolved:
    canonical: CanonicalURL
    platform: Platform | None
    reading: SubjectReading | None  #: None: on no platform
    unlisted_host: bool  #: an IP address, or a name with no registrable domain (``localhost``), no platform lists


def resolve(platforms: PlatformRegistry, url: str) -> Resolved:
    """The URL's canonical form, its platform and whose page it is. Raises ValueError for an unreadable URL."""
    canonical = canonicalize(url)
    domain = registered_domain(canonical.host)
    platform = platforms.by_domain(domain)
    reading = platform.read_subject(url, canonical) if platform is not None else None
    unlisted = platform is None and (domain == "" or _is_ip(canonical.host))
    start = url.find("://")
    if "://" in url[start + 3:] or "%3a" in url.lower():
        platform, reading = _with_embedded(platforms, url[start + 3:], platform, reading)
    return Resolved(canonical, platform, reading, unlisted)


def _with_embedded(platforms: PlatformRegistry, rest: str, platform: Platform | None,
                   reading: SubjectReading | None) -> tuple[Platform | None, SubjectReading | None]:
    """The platform and reading once the platform URLs embedded in ``rest`` (the URL after its scheme) count."""
    seen: dict[str, tuple[Platform, SubjectReading]] = {}
    for text in {rest, unquote(rest), unquote(unquote(rest))}:
        for match in _EMBEDDED.finditer(text):
            inner = match.group()
            try:
                canonical = canonicalize(inner)
            except ValueError:
                continue
            found = platforms.by_domain(registered_domain(canonical.host))
            if found is not None:
                seen[canonical.url] = (found, found.read_subject(inner, canonical))
    if not seen:
        return platform, reading
    named = [(p, r) for p, r in seen.values() if r.ambiguous or r.subject is not None]
    if platform is None and len({p.name for p, _ in seen.values()}) == 1 and len(
            {(r.subject, r.ambiguous) for _, r in named}) <= 1:
        # an off-platform service fetching one platform's page for us: that page's platform and person
        inner_platform, inner_reading = named[0] if named else next(iter(seen.values()))
        return inner_platform, inner_reading
    if all(p is platform for p, _ in seen.values()) and all(r == reading for _, r in named):
        return platform, reading  # links back to the same platform, naming no one else
    evidence = tuple((f"embedded {u}", r.subject) for u, (_, r) in seen.items())
    return platform, SubjectReading(None, True, (*(reading.readings if reading else ()), *evidence))


def form_text(body: bytes, content_type: str) -> tuple[str, bool]:
    """A request body as urlencoded form text, and whether it was a form at all.

    urlencoded (or no type) is taken as it is; multipart/form-data is read part by part (files included, by
    name); any other body is not a form, and is returned decoded for :func:`with_body` to search.
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in ("", "application/x-www-form-urlencoded"):
        return body.decode("latin-1"), True
    if kind == "multipart/form-data":
        message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1")
                                                      + b"\r\n\r\n" + body)
        pairs = []
        for part in message.iter_parts() if message.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str):
                payload = part.get_payload(decode=True)
                value = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
                pairs.append((name, value))
        return urlencode(pairs), True
    return body.decode("latin-1"), False


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
