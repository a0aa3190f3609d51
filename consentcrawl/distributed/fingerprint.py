"""Canonical duplicates: a request fingerprinter that makes every spelling of one page one request.

Opt in with ``REQUEST_FINGERPRINTER_CLASS = "consentcrawl.distributed.fingerprint.CanonicalRequestFingerprinter"``.
Scrapy's dupefilter, scrapy-redis's (through :class:`consentcrawl.distributed.scheduler.ConsentRedisDupeFilter`),
the HTTP cache and every other component that asks ``crawler.request_fingerprinter`` then see:

- the URL in consentcrawl's canonical form (:func:`consentcrawl.urls.canonicalize`: WHATWG parsing, RFC 3986
  normalisation), so ``/u/%31%30%30%31`` is ``/u/1001``;
- a person's profile page, on a configured platform, as the person: a GET whose whole path (a trailing slash
  aside) is one of the platform's profile templates for one id is the same request on any host of the platform
  and under any template (``m.microblog.example/u/1001/``, ``/profile/1001``, ``http://microblog.example/u/1001``).
  A page *below* a profile (``/u/1001/followers``) is its own page.

It can only merge requests, never tell the consent checks anything: which spelling is fetched is still decided
like any other. A URL it cannot read falls back to Scrapy's fingerprint. The cost of merging: when the first
spelling is denied (robots.txt disallows it, say), the others are not tried.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from typing import TYPE_CHECKING, Any

from scrapy.utils.request import fingerprint as scrapy_fingerprint

from ..urls import canonicalize, registered_domain

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from typing_extensions import Self

    from ..terms.platforms import Platform, PlatformRegistry


class CanonicalRequestFingerprinter:
    """``REQUEST_FINGERPRINTER_CLASS`` on consentcrawl's canonical URL and profile templates (module doc)."""

    def __init__(self, crawler: Crawler | None = None, platforms: PlatformRegistry | None = None) -> None:
        self.crawler = crawler
        self._platforms = platforms
        self._cache: weakref.WeakKeyDictionary[Request, bytes] = weakref.WeakKeyDictionary()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    @property
    def platforms(self) -> PlatformRegistry | None:
        """The crawl's platforms, read from its runtime when first needed (built after this fingerprinter)."""
        if self._platforms is None and self.crawler is not None:
            from ..runtime import get_runtime

            runtime = get_runtime(self.crawler)
            if runtime is not None:
                self._platforms = runtime.config.platforms
        return self._platforms

    def fingerprint(self, request: Request) -> bytes:
        cached = self._cache.get(request)
        if cached is None:
            cached = self._cache[request] = self._fingerprint(request)
        return cached

    def _fingerprint(self, request: Request) -> bytes:
        key = self.key(request.url, request.method, bool(request.body))
        if key is None:
            return scrapy_fingerprint(request)
        if request.meta.get("redirect_times"):
            # the target of a redirect is not a duplicate of the spelling that redirected to it
            # (``/profile/1001`` -> ``/u/1001`` is one person): it is fetched once, as the redirect's target
            key += " redirected"
        data = json.dumps([request.method, key, (request.body or b"").hex()])
        return hashlib.sha1(data.encode(), usedforsecurity=False).digest()

    def key(self, url: str, method: str = "GET", has_body: bool = False) -> str | None:
        """What identifies the page: ``profile PLATFORM SUBJECT-KEY`` or the canonical URL; None if unreadable."""
        try:
            canonical = canonicalize(url)
        except ValueError:
            return None
        platforms = self.platforms
        if platforms is not None and method in ("GET", "HEAD") and not has_body:
            platform = platforms.by_domain(registered_domain(canonical.host))
            if platform is not None:
                subject = profile_subject(platform, canonical.path_query)
                if subject is not None:
                    return f"profile {platform.name} {platform.subject_key(subject)}"
        return canonical.url


def profile_subject(platform: Platform, path_query: str) -> str | None:
    """The id when ``path_query`` is exactly one of the platform's profile pages (a trailing slash aside)."""
    path, sep, query = path_query.partition("?")
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    wanted = f"{path}{sep}{query}"
    for template in platform.profiles:
        ident: Any = template.subject_of(wanted)  # the id as written: a case-sensitive platform keeps its case
        if ident and template.template.replace("{subject}", ident).casefold() == wanted.casefold():
            return str(ident)
    return None
