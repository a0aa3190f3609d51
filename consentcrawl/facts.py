"""What a URL is about, resolved once: its canonical form, platform, the person it names, robots paths.

Pure, like the rest of the core: :class:`FactReader` reads a URL against the configured platforms and gives the
:class:`RequestFacts` the checks decide on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from .terms.platforms import Platform, PlatformRegistry, SubjectReading
from .urls import CanonicalURL, canonicalize, registered_domain

__all__ = ["FactReader", "RequestFacts"]


@dataclass(frozen=True)
class RequestFacts:
    """Everything the core needs to know about one request, resolved once by :meth:`PolicyEngine.facts`."""

    url: str
    canonical: CanonicalURL
    purpose: str
    token: str
    now: datetime
    platform: Platform | None
    subject: str | None
    subject_source: str | None = None  #: "url" (a profile template matched) or "meta" (named by the request)
    robots_paths: tuple[str, ...] = ()  #: the path+query spellings checked against robots.txt
    #: the readings of an URL that a lenient server could take for another person (``subject.ambiguous-url``)
    ambiguous: SubjectReading | None = None
    #: why the person or platform named in meta is not the URL's (``subject.mismatch``)
    mismatch: str | None = None
    ip_host: bool = False  #: the host is an IP address no platform lists (``terms.ip-host``)


class FactReader:
    """Reads URLs into :class:`RequestFacts` for one configuration of platforms and one product token."""

    def __init__(self, platforms: PlatformRegistry, token: str) -> None:
        self.platforms = platforms
        self.token = token
        #: what a URL resolves to (a crawl decides the same URL when it is linked, scheduled and fetched)
        self._resolve = functools.lru_cache(maxsize=8192)(self._resolve_url)

    def facts(self, url: str, purpose: str, now: datetime, subject: str | None = None,
              body: bytes | None = None) -> RequestFacts:
        """Resolve a URL into facts. ``subject`` names the person when the URL does not (``platform:id`` or id).

        Raises ``ValueError`` for a URL that cannot be canonicalised.
        """
        if type(url) is not str:
            raise ValueError(f"URL must be a str, not {type(url).__name__}")
        canonical, platform, reading, paths, ip_host = self._resolve(url)
        if body and platform is not None and reading is not None:
            reading = _with_body(platform, url, body, reading)
        ambiguous = reading if reading is not None and reading.ambiguous else None
        from_url = reading.subject if reading is not None and ambiguous is None else None
        if subject is None:
            return RequestFacts(url, canonical, purpose, self.token, now, platform, from_url,
                                "url" if from_url is not None else None, paths, ambiguous, None, ip_host)
        # meta may name the person only where the URL names none or the same one: it never replaces the URL's
        named_platform, sep, ident = str(subject).partition(":")
        if not sep or named_platform not in self.platforms:
            named_platform, ident = "", str(subject)
        mismatch = None
        if named_platform and platform is None:
            # an URL on no platform (a CDN, say) named as a platform's person: only ever stricter than off-platform
            platform = self.platforms.get(named_platform)
        elif named_platform and platform is not None and platform.name != named_platform:
            mismatch = f"meta names platform {named_platform!r}, the URL's host is on {platform.name!r}"
        key = platform.subject_key(ident) if platform is not None else ident
        if mismatch is None and from_url is not None and from_url != key:
            mismatch = "meta names another person than the URL"
        if mismatch is not None:
            return RequestFacts(url, canonical, purpose, self.token, now, platform, from_url or key, "meta",
                                paths, ambiguous, mismatch, ip_host)
        return RequestFacts(url, canonical, purpose, self.token, now, platform, key,
                            "url" if from_url is not None else "meta", paths, ambiguous, None, ip_host)

    def _resolve_url(self, url: str) -> tuple[CanonicalURL, Platform | None, SubjectReading | None,
                                              tuple[str, ...], bool]:
        """The URL's canonical form, platform, subject reading, robots paths, and whether it is an unlisted IP."""
        canonical = canonicalize(url)
        platform = self.platforms.by_domain(registered_domain(canonical.host))
        reading = platform.read_subject(url, canonical) if platform is not None else None
        ip_host = platform is None and _is_ip(canonical.host)
        return canonical, platform, reading, _robots_paths(url, canonical), ip_host


def _robots_paths(url: str, canonical: CanonicalURL) -> tuple[str, ...]:
    """The spellings robots rules are checked against: the canonical path with the trailing slash as written.

    The canonical form drops a trailing slash for subject matching, but ``Disallow: /private/`` must still
    match ``/private/``; when the two spellings differ, both are checked and either one disallowing denies.
    """
    path = canonical.path_query
    if "/?" not in url and "/#" not in url and url[-1:] != "/":
        return (path,)  # no trailing slash written: the common case, without splitting the URL
    before_query = url.split("#", 1)[0].split("?", 1)[0]
    if before_query.endswith("/") and canonical.path != "/":
        return (canonical.path + "/" + (f"?{canonical.query}" if canonical.query else ""), path)
    return (path,)


def _with_body(platform: Platform, url: str, body: bytes, reading: SubjectReading) -> SubjectReading:
    """A form body can name the person as a query would (a PHP ``$_REQUEST``): read the URL with the body's
    parameters too, on a platform with query templates; a reading that differs makes the URL ambiguous."""
    if not any(t.is_query for t in platform.profiles):
        return reading
    base = url.partition("#")[0]
    merged = base + ("&" if "?" in base else "?") + body.decode("latin-1")
    with_body = platform.read_subject(merged, canonicalize(merged))
    if with_body == reading:
        return reading
    return SubjectReading(None, True, (*reading.readings, *with_body.readings,
                                       ("form body", with_body.subject)))


def _is_ip(host: str) -> bool:
    """A canonical host that is an IP address (dotted quad, or IPv6 without brackets)."""
    return ":" in host or (host[-1:].isdigit() and host.replace(".", "").isdigit())
