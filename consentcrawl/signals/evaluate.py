"""Every signal for one URL, from what the adapters fetched: the glue a site check, the response phase and
``consentcrawl check`` (phase 2) call, so that all three read the same signals in the same way.

Pure: the files are fetched already (:class:`SiteFiles`); nothing here does I/O or reads the clock.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..recent import Recent
from ..robots.fetch import RobotsFile, RobotsStatus
from ..robots.matcher import _pieces
from ._common import PLAIN, PagePath, SlashSight, canonical_path, head_tags, header_lines, spelled_path, url_path
from .ai_txt import parse_ai_txt, site_ai_txt
from .base import SignalResult
from .content_signal import response_content_signal, site_content_signal
from .content_usage import response_content_usage, selected_rules, site_content_usage, usage_rules
from .fetch import SignalFile, SignalFileStatus, unavailable
from .rsl import (
    RslDocument,
    RslLink,
    content_pattern,
    parse_rsl,
    response_rsl_links,
    selected_contents,
    site_rsl,
    site_rsl_links,
)
from .tdmrep import ResearchException, parse_tdmrep_file, response_tdmrep, site_tdmrep

if TYPE_CHECKING:
    from ..urls import CanonicalURL

__all__ = ["RESPONSE_HEADERS", "PathKey", "PathKeys", "SignalOptions", "SiteFiles", "licence_links", "path_free",
           "response_results", "response_silent", "response_spellings", "site_results", "spelled_urls"]

OK = SignalFileStatus.OK

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


@dataclass(frozen=True)
class SiteFiles:
    """The per-origin files, as fetched (``None``: not fetched; a 404 is a :class:`SignalFile` that is absent)."""

    robots: RobotsFile | None = None
    tdmrep: SignalFile | None = None
    ai_txt: SignalFile | None = None
    licences: Mapping[str, SignalFile] = field(default_factory=dict)  #: RSL licence URL -> its fetch
    #: TDMRep ``tdm-policy`` URL -> its fetch (evidence only: a policy never changes a verdict)
    policies: Mapping[str, SignalFile] = field(default_factory=dict)


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


#: marks a key made of several spellings' selections (a selection alone is a tuple that never starts with it)
_SPELLINGS = object()


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


class PathKey:
    """What of a page's URL the site-level outcome depends on, for one set of files and one product token.

    Each path-scoped statement selects, for a URL, one part of its file, and :func:`site_results` reads nothing
    else of the URL; so URLs that select the same parts have the same site-level outcome (the findings cite the
    file, its line or entry, never the page). :meth:`key` is that selection:

    - tdmrep.json: the index of the first entry whose ``location`` matches (None: none);
    - robots.txt ``Content-Usage`` rules of our group: whether the path may be crawled, and the lines of the rules
      with the longest matching pattern (:func:`~consentcrawl.signals.content_usage.selected_rules`);
    - each RSL licence robots.txt names: the ``<content>`` elements that apply
      (:func:`~consentcrawl.signals.rsl.selected_contents`);
    - ai.txt: the rule that disallows the path (its line, text and group), or None.

    ``origin_wide``: no file says anything path-scoped, every URL of the origin has the same outcome. Built once per
    set of files (the parsing is done here, not per URL); the files are read as :func:`site_results` reads them.
    """

    __slots__ = ("_ai", "_canonical", "_known", "_licences", "_patterns", "_robots", "_sight", "_tdmrep", "_token",
                 "_usage", "origin_wide")

    def __init__(self, files: SiteFiles, token: str) -> None:
        self._token = token
        self._known: Recent[str, tuple[Hashable, ...]] = Recent(1024)
        self._canonical: Recent[int, tuple[CanonicalURL, tuple[str, ...], Hashable]] = Recent(1024)
        tdmrep = files.tdmrep
        self._tdmrep = parse_tdmrep_file(tdmrep.body) if tdmrep is not None and tdmrep.status is OK else None
        robots = files.robots
        self._robots = robots.rules if robots is not None and robots.status is RobotsStatus.OK else None
        self._usage = usage_rules(robots, token) if robots is not None and self._robots is not None else []
        self._licences: list[RslDocument] = []
        for link in licence_links(files):
            licence = files.licences.get(link.url)
            if licence is not None and licence.status is OK:
                document = parse_rsl(licence.body)
                if document.error is None:
                    self._licences.append(document)
        ai_txt = files.ai_txt
        self._ai = parse_ai_txt(ai_txt.body) if ai_txt is not None and ai_txt.status is OK else None
        self._patterns = self._tdmrep is not None or bool(self._usage) or bool(self._licences)
        self.origin_wide = not self._patterns and self._ai is None
        self._sight: SlashSight | None = None  #: built the first time a request has a trailing-slash spelling

    def key(self, url: str) -> Hashable:
        """The parts of the files ``url`` selects (None for every URL when :attr:`origin_wide`). Remembered for the
        URLs seen last: a request is decided more than once (the link, the request phase, send time)."""
        if self.origin_wide:
            return None
        known = self._known.get(url)
        if known is None:
            known = self._select(url, url_path(url), False)
            self._known.put(url, known)
        return known

    def canonical_key(self, canonical: CanonicalURL, allowed: tuple[str, ...] = (),
                      paths: tuple[str, ...] = ()) -> Hashable:
        """:meth:`key` of ``canonical.url``, from what a request's facts know already rather than by splitting and
        matching the URL again: its path read off the canonical form (:func:`canonical_path`, which is what
        :func:`site_results` reads), and ``allowed``, the paths the robots.txt this key maker was built with
        allows for its token (the robots check's match, ``CheckContext.robots_allowed``).

        ``paths``: the request's other spellings (:func:`spelled_urls`). Where one selects other parts of the files
        than the canonical URL, the key is every spelling's selection in that order (the decision is the first
        spelling's that denies); where all select the same, it is the canonical URL's alone, whose decision it is.
        """
        if self.origin_wide:
            return None
        # by identity: hashing no text, and the fact reader hands out one canonical object per URL (its resolver
        # is cached), so a request's later decisions find it; the object is kept, so a reused id is no hit
        entry = self._canonical.get(id(canonical))
        if entry is not None and entry[0] is canonical and entry[1] is paths:
            return entry[2]
        path = canonical_path(canonical)
        known: Hashable = self._select(canonical, path, path in allowed)
        if (len(paths) > 1 or (paths and paths[0] != canonical.path_query)) and not self._slash_blind(
                canonical, path, paths, allowed):
            first = canonical.path_query
            spelled = []
            for spelling in paths:  # in spelled_urls' order
                if spelling != first:
                    url, page = spelled_path(canonical, spelling)  # what site_results reads of that URL
                    spelled.append(self._select(url, page, page in allowed))
            if any(part != known for part in spelled):
                known = (_SPELLINGS, known, *spelled)
        self._canonical.put(id(canonical), (canonical, paths, known))
        return known

    def _slash_blind(self, canonical: CanonicalURL, path: str, paths: tuple[str, ...],
                     allowed: tuple[str, ...]) -> bool:
        """Whether the request's only other spelling is its canonical path with the trailing slash as written, and
        no pattern of the files can tell the two apart (:class:`SlashSight`): then both select the same parts and
        the canonical selection is the key, without matching the spelling against every pattern.

        Only for a plain path read back unchanged (each pattern compares it as it is, literal and normal alike) on a
        host that is no IPv6 address (a spelling there is read by splitting its URL), and, where ``Content-Usage``
        rules are read, with both spellings allowed by robots.txt (which can tell them apart)."""
        first = canonical.path_query
        if len(paths) != 2 or paths[1] != first or path != first or ":" in canonical.host \
                or PLAIN.fullmatch(first) is None:
            return False
        spelling = paths[0]
        cut = first.find("?")
        if spelling != (first + "/" if cut < 0 else first[:cut] + "/" + first[cut:]):
            return False
        if self._usage and allowed is not paths and not (first in allowed and spelling in allowed):
            return False
        sight = self._sight
        if sight is None:
            sight = self._sight = self._slash_sight()
        return not (sight.tells_apart(first, False) if cut < 0 else sight.tells_apart(first[:cut], True))

    def _slash_sight(self) -> SlashSight:
        patterns = []
        if self._tdmrep is not None:
            patterns += [(e.pattern.pieces, e.pattern.anchored) for e in self._tdmrep.entries]
        patterns += [(r.pattern.pieces, r.pattern.anchored) for r in self._usage]
        for document in self._licences:
            for content in document.contents:
                pattern = content_pattern(content)
                if pattern is not None:
                    patterns.append((pattern.pieces, pattern.anchored))
        exact: tuple[str, ...] = ()
        if self._ai is not None:
            patterns += [_pieces(p) for p in self._ai.patterns(self._token)]
            exact = ("/robots.txt",)  # always allowed, which /robots.txt/ is not
        return SlashSight(patterns, exact)

    def _select(self, url: str | CanonicalURL, path: str, crawlable: bool) -> tuple[Hashable, ...]:
        parts: list[Hashable] = []
        if self._patterns:  # the path normalised once for every pattern (ai.txt is matched as robots.txt is)
            page = PagePath(url, path)
            if self._tdmrep is not None:
                entry = self._tdmrep.match(page)
                parts.append(entry.index if entry is not None else None)
            if self._usage:
                assert self._robots is not None
                if crawlable or self._robots.match(path, self._token).allowed:
                    parts.append(tuple([r.line for r in selected_rules(self._usage, page)]))
                else:
                    parts.append(False)  # no usage preferences apply to a path that may not be crawled
            for document in self._licences:
                parts.append(tuple([c.index for c in selected_contents(document, page)]))
        if self._ai is not None:
            match = self._ai.match(path, self._token)
            parts.append(None if match.allowed else (match.line, match.rule, match.group))
        return tuple(parts)

class PathKeys:
    """The :class:`PathKey` of each set of files decided lately, by identity (the memo's rule: a refetched file is a
    new :class:`SiteFiles`, so a key is never built from stale files). A crawl interleaves origins, so one per
    origin is kept rather than the last one only, which each switch would rebuild (parsing the rules again and
    forgetting the URLs' keys)."""

    __slots__ = ("_keys", "_last")

    def __init__(self, size: int = 256) -> None:
        self._keys: Recent[tuple[int, int, str], tuple[SiteFiles, object, str, PathKey]] = Recent(size)
        #: the one used last, checked first (a crawl often decides one origin's pages in runs)
        self._last: tuple[SiteFiles, object, str, PathKey] | None = None

    def of(self, files: SiteFiles, token: str, robots: RobotsFile | None = None) -> PathKey:
        """The key maker for ``files`` as decided with ``robots`` (default: the files' own robots.txt)."""
        if robots is None:
            robots = files.robots
        hit = self._last
        if hit is not None and hit[0] is files and hit[1] is robots and hit[2] == token:
            return hit[3]
        index = (id(files), id(robots), token)
        hit = self._keys.get(index)
        if hit is None or hit[0] is not files or hit[1] is not robots:
            keyer = PathKey(files if files.robots is robots else replace(files, robots=robots), token)
            hit = (files, robots, token, keyer)
            self._keys.put(index, hit)
        self._last = hit
        return hit[3]


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
