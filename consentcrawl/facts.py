"""What a URL is about, resolved once: its canonical form, platform, the person it names, robots paths.

Pure, like the rest of the core: :class:`FactReader` reads a URL against the configured platforms and gives the
:class:`RequestFacts` the checks decide on.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .bodyreading import body_values, with_body_values
from .meta_keys import META_SUBJECT
from .onevalue import one_value, several
from .resolve import embedded, embeds_unlisted_host, form_text, resolve, with_body
from .robots.body import decoded_body
from .terms.platforms import Platform, PlatformRegistry, SubjectReading
from .urls import CanonicalURL, canonicalize

__all__ = ["FRAMING_HEADERS", "REWRITE_HEADERS", "FactReader", "Mismatch", "RequestFacts", "read_headers",
           "request_inputs"]


@dataclass(frozen=True)
class Mismatch:
    """Why a request goes to another person's page than its URL names (``subject.mismatch``), and what of the
    request says so: the evidence the deny cites (``kind``, ``name``: a request header, or a meta key)."""

    cause: str
    kind: str = "request-meta"
    name: str = "consentcrawl_subject"


@dataclass(slots=True)
class RequestFacts:
    """Everything the core needs to know about one request, resolved once by :meth:`PolicyEngine.facts`.

    Not frozen: a request's facts are read several times per response, and a frozen dataclass sets each of these
    fields through ``object.__setattr__``. Nothing assigns to one after it is made (a changed fact is a new object,
    ``dataclasses.replace``): each read makes a new object, never shared between requests, and what is kept of one
    is copied out before any check runs (the consent key) or compared with a fresh read by ``==`` (the send-time
    change check), so a change in place could only make a request be decided again. Not hashable (``eq`` without
    ``frozen``): nothing keys by it.
    """

    url: str
    canonical: CanonicalURL
    purpose: str
    token: str
    now: datetime
    platform: Platform | None
    subject: str | None
    #: "url" (a profile template matched), "body" (a value of the request's body) or "meta" (named by the request)
    subject_source: str | None = None
    robots_paths: tuple[str, ...] = ()  #: the path+query spellings checked against robots.txt
    #: the readings of an URL that a lenient server could take for another person (``subject.ambiguous-url``)
    ambiguous: SubjectReading | None = None
    #: why the person or platform named in meta, or a header or proxy the request sets, is not the URL's
    mismatch: Mismatch | None = None
    #: the host is an IP address, or a name with no registrable domain (``localhost``), no platform lists
    ip_host: bool = False
    #: the platform pages a fetch-through service fetches for this off-platform request (embedded in its URL or
    #: body): each is decided as a request of its own too (its origin's robots.txt), :mod:`consentcrawl.fetchthrough`
    via: tuple[str, ...] = ()


class FactReader:
    """Reads URLs into :class:`RequestFacts` for one configuration of platforms and one product token."""

    def __init__(self, platforms: PlatformRegistry, token: str) -> None:
        self.platforms = platforms
        self.token = token
        #: what a URL resolves to (a crawl decides the same URL when it is linked, scheduled and fetched)
        self._resolve = functools.lru_cache(maxsize=8192)(functools.partial(resolve, platforms))

    def facts(self, url: str, purpose: str, now: datetime, subject: str | None = None, *,
              form: str | None = None, is_form: bool = True, host: str | None = None,
              rewrites: tuple[tuple[str, str], ...] = (), proxy: str | None = None,
              values: tuple[str, ...] | None = ()) -> RequestFacts:
        """Resolve a URL into facts: its platform and whose page it is (:mod:`consentcrawl.resolve`).

        ``subject`` is the request's ``consentcrawl_subject`` (``platform:id`` or id): it may name the person only
        where the URL names none or the same one. ``form`` is the request body as form text (``is_form`` False for
        a body of another type); ``host`` the request's own ``Host`` header, if it sets one; ``rewrites`` the
        (name, value) of its headers that a front end routes by instead of the URL (:data:`REWRITE_HEADERS`), and of
        framing headers the spider set itself (:data:`FRAMING_HEADERS`); ``proxy`` the proxy the request goes
        through (``meta["proxy"]``); ``values`` the values its body hands the server (None: a body that cannot be
        read), :mod:`consentcrawl.bodyreading`.
        Raises ``ValueError`` for a URL that cannot be canonicalised; :meth:`decide_url` turns that into a deny.
        """
        if type(url) is not str:
            raise ValueError(f"URL must be a str, not {type(url).__name__}")
        resolved = self._resolve(url)
        canonical, platform, reading = resolved.canonical, resolved.platform, resolved.reading
        paths = resolved.robots_paths
        if form and platform is not None and reading is not None:
            reading = with_body(platform, url, form, is_form, reading)
        by_body = False
        if platform is not None and (values is None or values):  # a body that names a person: theirs
            reading, by_body = with_body_values(platform, values, reading)
        unlisted, via = resolved.unlisted_host, resolved.via
        if form:  # a fetch-through service given the platform URL in the body fetches that page
            platform, reading, in_body = embedded(self.platforms, form, platform, reading)
            unlisted = unlisted or (platform is None and embeds_unlisted_host(self.platforms, form))
            via = tuple(dict.fromkeys((*via, *in_body)))
        mismatch = _host_mismatch(canonical, host) if host is not None else None
        if rewrites and mismatch is None:
            mismatch = _rewrite_mismatch(canonical, rewrites)
        if proxy and mismatch is None:
            mismatch = self._proxy_mismatch(platform, proxy)
        ambiguous = reading if reading is not None and reading.ambiguous else None
        from_url = reading.subject if reading is not None and ambiguous is None else None
        source = None if from_url is None else "body" if by_body else "url"
        if subject is None or mismatch is not None:
            return RequestFacts(url, canonical, purpose, self.token, now, platform, from_url, source, paths,
                                ambiguous, mismatch, unlisted, via)
        if several(subject) and ambiguous is None:  # a list of several values: which person it means is not told
            ambiguous = SubjectReading(None, True, ((f"meta {META_SUBJECT}", None),))
        # meta may name the person only where the URL names none or the same one: it never replaces the URL's
        named_platform, sep, ident = str(subject).partition(":")
        if not sep or named_platform not in self.platforms:
            named_platform, ident = "", str(subject)
        if named_platform and platform is None:
            # an URL on no platform (a CDN, say) named as a platform's person: only ever stricter than off-platform
            platform = self.platforms.get(named_platform)
        elif named_platform and platform is not None and platform.name != named_platform:
            mismatch = Mismatch(f"meta names platform {named_platform!r}, the URL's host is on {platform.name!r}")
        key = platform.subject_key(ident) if platform is not None else ident
        conflict = platform.subject_conflict(ident) if platform is not None else ""
        if conflict and ambiguous is None:  # a server may have two accounts the meta's id could be (straße)
            ambiguous = SubjectReading(None, True, ((f"meta {META_SUBJECT}", None), (conflict, None)))
        if mismatch is None and from_url is not None and from_url != key:
            mismatch = Mismatch("meta names another person than the URL")
        return RequestFacts(url, canonical, purpose, self.token, now, platform,
                            from_url if mismatch is not None and from_url is not None else key,
                            source or "meta", paths, ambiguous, mismatch,
                            unlisted, via)

    def _proxy_mismatch(self, platform: Platform | None, proxy: str) -> Mismatch | None:
        """Why the request's proxy takes it to another platform's server than its URL's, or None.

        A proxy on a platform's host (a name or an address it lists) is that platform's server: it answers the
        request itself, as many servers do, by the path whatever host the request names."""
        try:
            named = self._resolve(proxy if "://" in proxy else f"http://{proxy}").platform
        except ValueError:
            return Mismatch("the request's proxy cannot be read", "request-meta", "proxy")
        if named is not None and named is not platform:
            return Mismatch(f"the request's proxy is a host of platform {named.name!r}: its server would answer the "
                            "request", "request-meta", "proxy")
        return None


#: request headers some front ends route by in place of the URL's path and query (IIS URL Rewrite and Symfony read
#: ``X-Original-URL`` and ``X-Rewrite-URL``; nginx set-ups pass ``X-Original-URI``, Traefik ``X-Forwarded-Uri``)
REWRITE_HEADERS = ("X-Original-URL", "X-Rewrite-URL", "X-Original-URI", "X-Forwarded-Uri")
#: framing headers the HTTP client writes itself: one the spider sets too (a ``Transfer-Encoding``, a
#: ``Content-Length`` other than the body's) lets a server end the body early and read the rest as another request
#: on the connection (request smuggling), for a page nothing decided
FRAMING_HEADERS = ("Transfer-Encoding", "Content-Length")

#: the headers :func:`read_headers` picks out, by their name in lower case: Host, Cookie, then each rewrite and
#: framing header with its place in :data:`REWRITE_HEADERS` + :data:`FRAMING_HEADERS`
_ROUTING = {name.lower().encode(): (place, name) for place, name in enumerate((*REWRITE_HEADERS, *FRAMING_HEADERS))}
_HOST, _COOKIE = b"host", b"cookie"
#: headers a front end that trusts its clients picks the site by, as a server picks it by ``Host``: Django's
#: ``USE_X_FORWARDED_HOST``, many reverse proxies; RFC 7239 ``Forwarded`` names it in its ``host=`` parameter
_FORWARDED_HOST, _FORWARDED = b"x-forwarded-host", b"forwarded"


def _forwarded_hosts(value: bytes) -> list[bytes]:
    """The ``host=`` parameters of a ``Forwarded`` value (RFC 7239), read leniently: every element, every pair."""
    return [v.strip().strip(b'"') for element in value.split(b",") for pair in element.split(b";")
            for k, _, v in (pair.partition(b"="),) if k.strip().lower() == b"host"]


def read_headers(headers: Mapping[bytes, Sequence[bytes]],
                 body: bytes) -> tuple[list[bytes], list[bytes], tuple[tuple[str, str], ...]]:
    """A request's ``Host`` values (then the hosts its ``X-Forwarded-Host`` and ``Forwarded: host=`` name, which a
    front end may pick the site by), its ``Cookie`` values and the (name, value) of its rewrite and framing headers
    (:data:`REWRITE_HEADERS`, :data:`FRAMING_HEADERS`; a ``Content-Length`` equal to the body's is the client's own
    and left out), in one pass over the headers.

    The request is read as it is, not asked for each name: every header it holds is compared by its name in lower
    case, so a name in any spelling counts, also one put in the mapping without the normalising its class does.
    The pairs come in the order of those two lists, each header's values in their order; the names as the lists
    spell them."""
    hosts: list[bytes] = []
    forwarded: list[bytes] = []  #: X-Forwarded-Host's hosts
    forwarded_param: list[bytes] = []  #: Forwarded's host= values
    cookies: list[bytes] = []
    found: list[tuple[int, str, bytes]] | None = None
    for key, values in (dict.items(headers) if isinstance(headers, dict) else headers.items()):
        lower = (key.encode("latin-1") if isinstance(key, str) else key).lower()
        if lower == _HOST:
            hosts += values
        elif lower == _COOKIE:
            cookies += values
        elif lower == _FORWARDED_HOST:
            forwarded += (host.strip() for value in values for host in value.split(b","))
        elif lower == _FORWARDED:
            forwarded_param += (host for value in values for host in _forwarded_hosts(value))
        elif lower in _ROUTING:
            place, name = _ROUTING[lower]
            found = found if found is not None else []
            found += ((place, name, value) for value in values)
    hosts += forwarded + forwarded_param
    if found is None:
        return hosts, cookies, ()
    found.sort(key=lambda hit: hit[0])  # stable: each header's values stay in their order
    length = str(len(body)).encode()
    return hosts, cookies, tuple((name, value.decode("latin-1")) for _, name, value in found
                                 if name != "Content-Length" or value.strip() != length)


def request_inputs(meta: Mapping[str, Any], headers: Mapping[bytes, Sequence[bytes]], body: bytes,
                   content_type: bytes | None, content_encoding: bytes | None = None) -> dict[str, Any]:
    """What a request says besides its URL about whose page it is, as :meth:`FactReader.facts` takes it: its
    ``consentcrawl_subject``, its body as form text and the values it hands the server, the hosts, rewrite and
    framing headers it sets, and its proxy.

    One reading for a request about to be sent and for one read back from a crawl's disk queue (a purge), so that
    both find the same person. ``content_type`` and ``content_encoding``: the request's headers of those names
    (read only when it has a body: it is read as the server reads it, decompressed). Raises for a header that
    cannot be read (a bare str or bytes put past ``Headers``' checks), and for a body whose coding cannot be undone."""
    subject = one_value(meta.get(META_SUBJECT))  # a list of one (an ItemLoader's value) is that value
    form: str | None = None
    is_form = True
    values: tuple[str, ...] | None = ()
    if body:
        decoded = decoded_body(body, content_encoding)
        form, is_form = form_text(decoded, (content_type or b"").decode("latin-1"))
        values = body_values(decoded, form, is_form)
    proxy = meta.get("proxy")  # set by HttpProxyMiddleware (or the spider): seen at send time
    # cookies are set by CookiesMiddleware: seen at send time
    hosts, cookies, rewrites = read_headers(headers, body)
    # every value: a handler that sends two Host lines reaches the site a server picks by either of them
    host = ", ".join(dict.fromkeys(h.decode("latin-1") for h in hosts)) if hosts else None
    if cookies:  # PHP's $_REQUEST can read cookies as it reads the query (variables_order "EGPCS")
        pairs = "&".join(p.strip() for c in cookies for p in c.decode("latin-1").split(";") if p.strip())
        form = f"{form}&{pairs}" if form else pairs
    return {"subject": subject, "form": form, "is_form": is_form, "host": host, "rewrites": rewrites,
            "proxy": str(proxy) if proxy else None, "values": values}


def _rewrite_mismatch(canonical: CanonicalURL, rewrites: tuple[tuple[str, str], ...]) -> Mismatch | None:
    """Why a header that a front end may route by names another page than the URL, or a framing header the spider
    set lets its body be read as another request, or None.

    The server then serves the header's page, not the one decided; any other page than the URL's own denies
    (reading the header as a URL of its own would miss how each front end joins it)."""
    for name, value in rewrites:
        if name in FRAMING_HEADERS:
            return Mismatch(f"the request's {name} header lets a server read its body as another request",
                            "request-header", name)
        value = value.strip()
        try:
            named = canonicalize(f"{canonical.scheme}://{canonical.host}/{value.lstrip('/')}").url
        except ValueError:
            return Mismatch(f"the request's {name} header cannot be read", "request-header", name)
        if named != canonical.url or not value.startswith("/"):
            return Mismatch(f"the request's {name} header names another page than its URL", "request-header", name)
    return None

def _host_mismatch(canonical: CanonicalURL, host: str) -> Mismatch | None:
    """Why a request's own ``Host`` header makes it go to another site than its URL's host, or None.

    Scrapy sends the spider's ``Host`` header instead of its own, and a server picks the site by it: the page
    served is then the header's host's, not the one decided. Several values come joined by ``, ``: never a host."""
    try:
        named = canonicalize(f"{canonical.scheme}://{host.strip()}/").host
    except ValueError:
        return Mismatch("the request's Host header cannot be read", "request-header", "Host")
    if named == canonical.host:
        return None
    return Mismatch("the request's Host header names another host than its URL", "request-header", "Host")
