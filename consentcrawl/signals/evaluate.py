"""Every signal for one URL, from what the adapters fetched: the glue a site check, the response phase and
``consentcrawl check`` (phase 2) call, so that all three read the same signals in the same way.

Pure: the files are fetched already (:class:`SiteFiles`); nothing here does I/O or reads the clock.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..robots.fetch import RobotsFile, RobotsStatus
from ._common import head_tags, header_lines
from .ai_txt import site_ai_txt
from .base import SignalResult
from .content_signal import response_content_signal, site_content_signal
from .content_usage import response_content_usage, site_content_usage
from .fetch import SignalFile, SignalFileStatus, unavailable
from .rsl import RslLink, response_rsl_links, site_rsl, site_rsl_links
from .tdmrep import ResearchException, parse_tdmrep_file, response_tdmrep, site_tdmrep

__all__ = ["RESPONSE_HEADERS", "SignalOptions", "SiteFiles", "licence_links", "path_free", "path_key",
           "path_scope", "response_results",
           "response_silent", "site_results"]

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


@dataclass(frozen=True)
class SiteFiles:
    """The per-origin files, as fetched (``None``: not fetched; a 404 is a :class:`SignalFile` that is absent)."""

    robots: RobotsFile | None = None
    tdmrep: SignalFile | None = None
    ai_txt: SignalFile | None = None
    licences: Mapping[str, SignalFile] = field(default_factory=dict)  #: RSL licence URL -> its fetch


def licence_links(files: SiteFiles) -> list[RslLink]:
    """The RSL licences robots.txt names (what a site-level fetcher fetches next)."""
    robots = files.robots
    if robots is None or robots.status is not RobotsStatus.OK:
        return []
    return site_rsl_links(robots.url, robots.rules.global_lines("license"))


def _rsl(links: list[RslLink], files: SiteFiles, url: str, options: SignalOptions) -> list[SignalResult]:
    out = []
    for link in links:
        licence = files.licences.get(link.url)
        if licence is None:  # discovered but never fetched: fail closed, the adapter must fetch it
            licence = unavailable("rsl", link.url, files.robots.fetched_at if files.robots else datetime.min,
                                  "licence not fetched")
        out.append(site_rsl(licence, url, link, licence_held=options.licence_held))
    return out


def site_results(url: str, files: SiteFiles, options: SignalOptions = SignalOptions()) -> list[SignalResult]:
    """The site-level signals for ``url``: decided before the fetch."""
    token = options.token
    return [
        site_tdmrep(files.tdmrep, url, research_exception=options.research_exception),
        site_content_usage(files.robots, url, token, conservative=options.conservative),
        site_content_signal(files.robots, token, stores_items=options.stores_items),
        *_rsl(licence_links(files), files, url, options),
        site_ai_txt(files.ai_txt, url, token, conservative=options.conservative),
    ]


def response_results(url: str, headers: Any, body: bytes | str | None, files: SiteFiles,
                     options: SignalOptions = SignalOptions(), *, fetched_at: datetime | None = None,
                     encoding: str = "utf-8") -> list[SignalResult]:
    """The response-level signals (headers, meta, ``Link``); RSL licences they point to must be in
    ``files.licences`` (a missing one denies as unavailable)."""
    site_links = {link.url for link in licence_links(files)}
    links = [link for link in response_rsl_links(url, headers, body, encoding) if link.url not in site_links]
    return [
        response_tdmrep(url, headers, body, file=files.tdmrep, fetched_at=fetched_at, encoding=encoding,
                        research_exception=options.research_exception),
        response_content_usage(url, headers, fetched_at=fetched_at, conservative=options.conservative),
        response_content_signal(url, headers, fetched_at=fetched_at, stores_items=options.stores_items),
        *_rsl(links, files, url, options),
    ]


def path_free(files: SiteFiles) -> bool:
    """Whether no file says anything that depends on the page's path (then one decision serves the origin)."""
    return path_scope(files) == "origin"


def path_scope(files: SiteFiles) -> str:
    """What of a page's URL the site-level signals' outcome depends on, besides the files themselves:

    - ``"origin"``: nothing (no tdmrep.json entries, no ``Content-Usage``/``License`` lines, no ai.txt rules);
    - ``"tdmrep"``: only which tdmrep.json entry the URL selects (the file is the only path-scoped statement);
    - ``"url"``: the URL as a whole.
    """
    robots = files.robots
    if robots is not None and robots.status is RobotsStatus.OK:
        rules = robots.rules
        if rules.global_lines("content-usage") or rules.global_lines("license"):
            return "url"
    if files.ai_txt is not None and files.ai_txt.status is SignalFileStatus.OK:
        return "url"
    if files.tdmrep is not None and files.tdmrep.status is SignalFileStatus.OK:
        return "tdmrep"
    return "origin"


def path_key(files: SiteFiles, scope: str, url: str) -> Hashable:
    """The part of ``url`` the site-level outcome depends on, for files of ``scope`` (:func:`path_scope`): None
    for the whole origin, the index of the tdmrep.json entry the URL selects (None: no entry), else the URL.

    ``site_tdmrep`` reads nothing of the URL but the entry it selects, and cites the file, not the page; so URLs
    that select the same entry have the same site-level outcome."""
    if scope == "origin":
        return None
    if scope == "tdmrep" and files.tdmrep is not None:
        entry = parse_tdmrep_file(files.tdmrep.body).match(url)
        return ("tdmrep", entry.index if entry is not None else None)
    return url


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
