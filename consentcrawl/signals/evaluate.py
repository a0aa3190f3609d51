"""Every signal for one URL, from what the adapters fetched: the glue a site check, the response phase and
``consentcrawl check`` (phase 2) call, so that all three read the same signals in the same way.

Pure: the files are fetched already (:class:`SiteFiles`); nothing here does I/O or reads the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..pagehead import head_tags
from ._common import header_lines, url_path
from .ai_txt import site_ai_txt
from .base import SignalResult
from .content_signal import response_content_signal, site_content_signal
from .content_usage import response_content_usage, site_content_usage
from .fetch import unavailable
from .files import SiteFiles, licence_links
from .pathkey import PathKey, PathKeys
from .rsl import RslLink, response_rsl_links, site_rsl
from .tdmrep import ResearchException, response_tdmrep, site_tdmrep

if TYPE_CHECKING:
    from ..urls import CanonicalURL

__all__ = ["RESPONSE_HEADERS", "PathKey", "PathKeys", "SignalOptions", "SiteFiles", "licence_links", "path_free",
           "response_results", "response_silent", "response_spellings", "site_results", "spelled_urls"]

#: every response header a response-level signal reads (lower case)
RESPONSE_HEADERS = frozenset({"content-usage", "content-signal", "content-signals", "link", "tdm-reservation",
                              "tdm-policy"})


@dataclass(frozen=True)
class SignalOptions:
    """How the operator's crawl reads signals (settings and ``platforms.yaml`` in phase 2)."""

    token: str = "consentcrawl"  #: product token: robots.txt group selection
    conservative: bool = True  #: ``CONSENTCRAWL_CONSERVATIVE``: legacy AIPREF labels and ai.txt deny
    stores_items: bool = True  #: the crawl persists items (Content-Signal ``use=immediate`` then denies)
    research_exception: ResearchException | None = None
    licence_held: str | None = None  #: a recorded RSL licence reference for this site
    licence_source: str = ""  #: where it was recorded: the setting, or ``platforms.yaml`` and its line


def _rsl(links: list[RslLink], files: SiteFiles, url: str, options: SignalOptions) -> list[SignalResult]:
    out = []
    for link in links:
        licence = files.licences.get(link.url)
        if licence is None:  # discovered but never fetched: fail closed, the adapter must fetch it
            licence = unavailable("rsl", link.url, files.robots.fetched_at if files.robots else datetime.min,
                                  "licence not fetched")
        out.append(site_rsl(licence, url, link, licence_held=options.licence_held,
                            licence_source=options.licence_source))
    return out


def site_results(url: str, files: SiteFiles, options: SignalOptions = SignalOptions()) -> list[SignalResult]:
    """The site-level signals for ``url``: decided before the fetch."""
    token = options.token
    return [
        site_tdmrep(files.tdmrep, url, research_exception=options.research_exception, policies=files.policies),
        site_content_usage(files.robots, url, token, conservative=options.conservative),
        site_content_signal(files.robots, token, stores_items=options.stores_items),
        *_rsl(licence_links(files), files, url, options),
        site_ai_txt(files.ai_txt, url, token, conservative=options.conservative),
    ]


def spelled_urls(canonical: CanonicalURL, paths: Sequence[str] = ()) -> tuple[tuple[str, str], ...]:
    """``(path, url)`` of each spelling of a request's page the site-level signals are decided for: the canonical
    URL first, then the page's origin with each other path+query of ``paths`` (the spellings the robots check
    matches, ``RequestFacts.robots_paths``: the trailing slash as written, the lenient readings).

    The canonical form drops a trailing slash, but ``Content-Usage: /private/ search=n`` (or a tdmrep.json
    ``/private/*``, an ai.txt ``Disallow: /private/``, an RSL ``<content url="/private/*">``) is about the page
    ``/private/`` the server is asked for, as robots.txt's own rules are; so the page is denied if any spelling is.
    """
    first = canonical.path_query
    if not paths or (len(paths) == 1 and paths[0] == first):
        return ((first, canonical.url),)
    origin = canonical.origin
    return ((first, canonical.url), *((p, origin + p) for p in paths if p != first))


def response_spellings(url: str, canonical: CanonicalURL, paths: Sequence[str] = ()) -> tuple[tuple[str, str], ...]:
    """:func:`spelled_urls`, and ``url`` as the response was fetched when its path+query is none of them: what the
    response phase decides (any spelling's deny wins, as before the fetch), never less than the URL itself."""
    spelled = spelled_urls(canonical, paths)
    own = url_path(url)
    if any(path == own for path, _url in spelled):
        return spelled
    return (*spelled, (own, url))


def response_results(url: str, headers: Any, body: bytes | str | None, files: SiteFiles,
                     options: SignalOptions = SignalOptions(), *, fetched_at: datetime | None = None,
                     encoding: str = "utf-8") -> list[SignalResult]:
    """The response-level signals (headers, meta, ``Link``); RSL licences they point to must be in
    ``files.licences`` (a missing one denies as unavailable)."""
    site_links = {link.url for link in licence_links(files)}
    links = [link for link in response_rsl_links(url, headers, body, encoding) if link.url not in site_links]
    return [
        response_tdmrep(url, headers, body, file=files.tdmrep, fetched_at=fetched_at, encoding=encoding,
                        research_exception=options.research_exception, policies=files.policies),
        response_content_usage(url, headers, fetched_at=fetched_at, conservative=options.conservative),
        response_content_signal(url, headers, fetched_at=fetched_at, stores_items=options.stores_items),
        *_rsl(links, files, url, options),
    ]


def path_free(files: SiteFiles, token: str = "consentcrawl") -> bool:
    """Whether no file says anything that depends on the page's path (then one decision serves the origin)."""
    return PathKey(files, token).origin_wide


def response_silent(headers: Any, body: bytes | str | None, encoding: str = "utf-8") -> bool:
    """Whether a response carries nothing any response-level signal reads: none of :data:`RESPONSE_HEADERS`, no
    ``<meta name="tdm-...">`` and no ``<link rel="license">`` in its head (read as :func:`head_tags` reads it, the
    same reader the signals use, so a tag they would see is never missed here).

    When it is silent, :func:`response_results` says nothing (no finding, no note), whatever the page and its
    URL: the response phase's decision is then a function of the site-level files alone, and can be remembered
    per origin (:class:`~consentcrawl.signals.policy.ResponseSignals`). Any doubt is "not silent".
    """
    for _name in header_lines(headers, RESPONSE_HEADERS):
        return False
    if body is None:
        return True
    for tag, attrs, _raw in head_tags(body, encoding):
        if tag == "link":
            if "license" in attrs.get("rel", "").lower():
                return False
        elif attrs.get("name", "").strip().lower().startswith("tdm-"):
            return False
    return True
